-- Flyway-style name: V<version>__<name>.sql works beside <version>_<name>.sql.
CREATE TABLE currencies (code text PRIMARY KEY);
INSERT INTO currencies (code) VALUES ('EUR'), ('USD');

-- The table of tests/tests/repository.rs.
CREATE TABLE users (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name text NOT NULL,
    email_address text NOT NULL UNIQUE,
    tags text[] NOT NULL DEFAULT '{}',
    profile jsonb NOT NULL,
    age int,
    created_at timestamptz NOT NULL DEFAULT now()
);

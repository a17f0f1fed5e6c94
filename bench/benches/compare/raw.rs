//! The floor: hand-written tokio-postgres, statements prepared once, rows mapped by index.

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row, Statement};

use crate::workloads::BenchUser;

pub const COLUMNS: &str = "id, name, email, age, active, meta, tags, created_at";

pub struct Raw {
    pub client: Client,
    pub insert: Statement,
    pub get: Statement,
    pub update: Statement,
    pub select_all: Statement,
    pub find_email: Statement,
    pub page_after: Statement,
}

pub fn map(row: &Row) -> BenchUser {
    BenchUser {
        id: row.get(0),
        name: row.get(1),
        email: row.get(2),
        age: row.get(3),
        active: row.get(4),
        meta: row.get(5),
        tags: row.get(6),
        created_at: row.get(7),
    }
}

impl Raw {
    pub async fn new(client: Client) -> Result<Raw, tokio_postgres::Error> {
        let insert = client
            .prepare(&format!(
                "INSERT INTO bench_users (name, email, age, meta, tags) VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
            ))
            .await?;
        let get = client
            .prepare(&format!("SELECT {COLUMNS} FROM bench_users WHERE id = $1"))
            .await?;
        let update = client
            .prepare(&format!(
                "UPDATE bench_users SET name = $1, age = $2 WHERE id = $3 RETURNING {COLUMNS}"
            ))
            .await?;
        let select_all = client
            .prepare(&format!("SELECT {COLUMNS} FROM bench_users"))
            .await?;
        let find_email = client
            .prepare(&format!(
                "SELECT {COLUMNS} FROM bench_users WHERE email = $1 LIMIT 1"
            ))
            .await?;
        let page_after = client
            .prepare(&format!(
                "SELECT {COLUMNS} FROM bench_users WHERE id > $1 ORDER BY id LIMIT $2"
            ))
            .await?;
        Ok(Raw {
            client,
            insert,
            get,
            update,
            select_all,
            find_email,
            page_after,
        })
    }

    pub async fn insert(&self, u: &BenchUser) -> Result<BenchUser, tokio_postgres::Error> {
        let row = self
            .client
            .query_one(&self.insert, &[&u.name, &u.email, &u.age, &u.meta, &u.tags])
            .await?;
        Ok(map(&row))
    }

    pub async fn find_email(
        &self,
        email: &str,
    ) -> Result<Option<BenchUser>, tokio_postgres::Error> {
        Ok(self
            .client
            .query_opt(&self.find_email, &[&email])
            .await?
            .as_ref()
            .map(map))
    }

    /// The page of `size` rows after id `after`, and the id the next one starts after.
    pub async fn page_after(
        &self,
        after: i64,
        size: i64,
    ) -> Result<(Vec<BenchUser>, Option<i64>), tokio_postgres::Error> {
        let rows = self
            .client
            .query(&self.page_after, &[&after, &(size + 1)])
            .await?;
        let mut users: Vec<BenchUser> = rows.iter().map(map).collect();
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        let next = (users.len() > size).then(|| users[size - 1].id);
        users.truncate(size);
        Ok((users, next))
    }

    /// Every row through `query_raw`, mapped as it arrives; returns how many.
    pub async fn stream_all(&self) -> Result<usize, tokio_postgres::Error> {
        use futures_util::TryStreamExt;
        let rows = self
            .client
            .query_raw(&self.select_all, std::iter::empty::<&(dyn ToSql + Sync)>())
            .await?;
        let mut rows = std::pin::pin!(rows);
        let mut n = 0;
        while let Some(row) = rows.try_next().await? {
            std::hint::black_box(map(&row));
            n += 1;
        }
        Ok(n)
    }

    pub async fn get(&self, id: i64) -> Result<BenchUser, tokio_postgres::Error> {
        Ok(map(&self.client.query_one(&self.get, &[&id]).await?))
    }

    /// The same read as one unnamed statement with its parameter type given: what
    /// `StatementMode::Unnamed` sends, and the floor of that mode.
    pub async fn get_unnamed(&self, id: i64) -> Result<Option<BenchUser>, tokio_postgres::Error> {
        let rows = self
            .client
            .query_typed(
                &format!("SELECT {COLUMNS} FROM bench_users WHERE id = $1"),
                &[(&id, tokio_postgres::types::Type::INT8)],
            )
            .await?;
        Ok(rows.first().map(map))
    }

    pub async fn update(
        &self,
        id: i64,
        name: &str,
        age: i32,
    ) -> Result<BenchUser, tokio_postgres::Error> {
        Ok(map(&self
            .client
            .query_one(&self.update, &[&name, &Some(age), &id])
            .await?))
    }

    pub async fn select_all(&self) -> Result<Vec<BenchUser>, tokio_postgres::Error> {
        Ok(self
            .client
            .query(&self.select_all, &[])
            .await?
            .iter()
            .map(map)
            .collect())
    }

    /// Binary COPY straight into the table: the fastest way in, returning nothing.
    pub async fn copy_in(&self, users: &[BenchUser]) -> Result<u64, tokio_postgres::Error> {
        self.copy_into("bench_users", users).await
    }

    async fn copy_into(
        &self,
        table: &str,
        users: &[BenchUser],
    ) -> Result<u64, tokio_postgres::Error> {
        use tokio_postgres::binary_copy::BinaryCopyInWriter;
        use tokio_postgres::types::Type;
        let statement =
            format!("COPY {table} (name, email, age, meta, tags) FROM STDIN (FORMAT binary)");
        let sink = self.client.copy_in(&statement).await?;
        let types = [
            Type::TEXT,
            Type::TEXT,
            Type::INT4,
            Type::JSONB,
            Type::TEXT_ARRAY,
        ];
        let mut writer = std::pin::pin!(BinaryCopyInWriter::new(sink, &types));
        for u in users {
            writer
                .as_mut()
                .write(&[&u.name, &u.email, &u.age, &u.meta, &u.tags])
                .await?;
        }
        writer.finish().await
    }

    /// Multi-row VALUES with RETURNING, in chunks under the 65,535-parameter limit, in one
    /// transaction: what a careful hand-written bulk insert returning rows looks like.
    pub async fn values_returning(
        &self,
        users: &[BenchUser],
    ) -> Result<Vec<BenchUser>, tokio_postgres::Error> {
        const CHUNK: usize = 10_000;
        self.client.batch_execute("BEGIN").await?;
        let mut out = Vec::with_capacity(users.len());
        for chunk in users.chunks(CHUNK) {
            let mut sql =
                String::from("INSERT INTO bench_users (name, email, age, meta, tags) VALUES ");
            let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(chunk.len() * 5);
            for (i, u) in chunk.iter().enumerate() {
                let b = i * 5;
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!(
                    "(${}, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5
                ));
                params.extend_from_slice(&[&u.name, &u.email, &u.age, &u.meta, &u.tags]);
            }
            sql.push_str(&format!(" RETURNING {COLUMNS}"));
            out.extend(self.client.query(&sql, &params).await?.iter().map(map));
        }
        self.client.batch_execute("COMMIT").await?;
        Ok(out)
    }

    /// Where create_bulk's time goes: the same three steps by hand, each timed.
    pub async fn bulk_phases(
        &self,
        users: &[BenchUser],
    ) -> Result<[std::time::Duration; 4], tokio_postgres::Error> {
        use std::time::Instant;
        let cols = "name, email, age, meta, tags";
        let t = Instant::now();
        self.client
            .batch_execute(&format!(
                "CREATE TEMPORARY TABLE phase_tmp AS SELECT {cols} FROM bench_users WITH NO DATA"
            ))
            .await?;
        self.copy_into("phase_tmp", users).await?;
        let copy = t.elapsed();
        let t = Instant::now();
        self.client
            .batch_execute(&format!(
                "INSERT INTO bench_users ({cols}) SELECT {cols} FROM phase_tmp"
            ))
            .await?;
        let insert_only = t.elapsed();
        let t = Instant::now();
        let rows = self
            .client
            .query(&format!("INSERT INTO bench_users ({cols}) SELECT {cols} FROM phase_tmp RETURNING {COLUMNS}"), &[])
            .await?;
        let insert_returning = t.elapsed();
        let t = Instant::now();
        let mapped: Vec<BenchUser> = rows.iter().map(map).collect();
        let decode = t.elapsed();
        std::hint::black_box(mapped);
        self.client.batch_execute("DROP TABLE phase_tmp").await?;
        Ok([copy, insert_only, insert_returning, decode])
    }
}

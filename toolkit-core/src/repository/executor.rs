//! Where a repository runs its statements: a database (one checkout per call), a pooled
//! connection, a transaction or savepoint, or a plain driver client. Each call turns its
//! executor into a [`Session`], the one path of every statement (`pool/session.rs`).

use tokio_postgres::Client;

use crate::pool::Session;
use crate::{Connection, Database, Pool, Result, Savepoint, Transaction};

/// Something a [`Repository`](crate::Repository) can run statements on.
pub trait Executor: Sync {
    /// The executor as the repository sees it.
    fn executor(&self) -> ExecutorRef<'_>;
}

/// A borrowed executor of any kind; see [`Executor`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum ExecutorRef<'a> {
    /// Checks out a pooled connection for each call.
    Database(&'a Database),
    /// Checks out a connection from this pool for each call.
    Pool(&'a Pool),
    /// A pooled connection (with its prepared-statement cache).
    Connection(&'a Connection),
    /// A transaction: statements see its uncommitted writes.
    Transaction(&'a Transaction),
    /// A plain driver client: no statement cache, statements prepared per call.
    Client(&'a Client),
}

impl Executor for Database {
    fn executor(&self) -> ExecutorRef<'_> {
        ExecutorRef::Database(self)
    }
}

impl Executor for Pool {
    fn executor(&self) -> ExecutorRef<'_> {
        ExecutorRef::Pool(self)
    }
}

impl Executor for Connection {
    fn executor(&self) -> ExecutorRef<'_> {
        ExecutorRef::Connection(self)
    }
}

impl Executor for Transaction {
    fn executor(&self) -> ExecutorRef<'_> {
        ExecutorRef::Transaction(self)
    }
}

impl Executor for Savepoint<'_> {
    fn executor(&self) -> ExecutorRef<'_> {
        ExecutorRef::Transaction(self)
    }
}

impl Executor for Client {
    fn executor(&self) -> ExecutorRef<'_> {
        ExecutorRef::Client(self)
    }
}

/// What a statement does, which decides where a `Database` sends it: reads may go to a
/// replica, writes go to the primary and make the handle's later reads wait for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intent {
    Read,
    Write,
}

impl<'a> ExecutorRef<'a> {
    /// A session for one statement: from a database or pool, possibly sharing its connection
    /// with other pipelined statements.
    pub(crate) async fn acquire(self, intent: Intent) -> Result<Session<'a>> {
        Ok(match (self, intent) {
            (ExecutorRef::Database(db), Intent::Read) => {
                let (lent, on_replica) = db.read_lent().await?;
                Session::lent(lent).with_fallback(on_replica.then_some(db))
            }
            (ExecutorRef::Database(db), Intent::Write) => {
                let (lent, mark) = db.write_lent().await?;
                Session::lent(lent).with_write_mark(mark)
            }
            (ExecutorRef::Pool(pool), _) => Session::lent(pool.get_for_statement().await?),
            (other, _) => other.acquire_exclusive().await?,
        })
    }

    /// A session no other statement runs on meanwhile, for work spanning several statements;
    /// on a `Database`, the primary's (`connection()` marks it as writing).
    pub(crate) async fn acquire_exclusive(self) -> Result<Session<'a>> {
        Ok(match self {
            ExecutorRef::Database(db) => Session::owned(db.connection().await?),
            ExecutorRef::Pool(pool) => Session::owned(pool.get().await?),
            ExecutorRef::Connection(conn) => Session::borrowed(conn),
            ExecutorRef::Transaction(tx) => tx.session().await?,
            ExecutorRef::Client(client) => Session::client_only(client),
        })
    }
}

//! Throwaway databases for tests: a SQLite file in a temporary directory, or
//! a fresh PostgreSQL database on the server named by
//! `FANGKONG_TEST_POSTGRES`, dropped when the guard goes.

use sqlx::{Connection, Executor};
use uuid::Uuid;

use crate::{EventStore, StoreError};

/// The variable naming the PostgreSQL server tests may use.
pub const POSTGRES_ENV: &str = "FANGKONG_TEST_POSTGRES";

/// One test's own database.
#[derive(Debug)]
pub struct TestDb {
    url: String,
    guard: Guard,
}

#[derive(Debug)]
enum Guard {
    // Held for its Drop: the directory and the file go with the test.
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres { admin_url: String, name: String },
}

impl TestDb {
    /// A new SQLite file in its own temporary directory.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("a temporary directory for the test database");
        let url = format!("sqlite://{}", dir.path().join("fangkong.db").display());
        TestDb {
            url,
            guard: Guard::Sqlite(dir),
        }
    }

    /// A new PostgreSQL database, or `None` when no server is configured.
    ///
    /// # Panics
    /// When `CI` is set and `FANGKONG_TEST_POSTGRES` is not: CI must not pass
    /// by skipping the PostgreSQL half of the suite.
    pub async fn postgres() -> Option<TestDb> {
        let Ok(admin_url) = std::env::var(POSTGRES_ENV) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "{POSTGRES_ENV} is not set under CI: the PostgreSQL tests must run"
            );
            eprintln!("{POSTGRES_ENV} not set: skipping a PostgreSQL test");
            return None;
        };
        let name = format!("fangkong_test_{}", Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connect to FANGKONG_TEST_POSTGRES");
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create a test database");
        let _ = admin.close().await;
        Some(TestDb {
            url: with_database(&admin_url, &name),
            guard: Guard::Postgres { admin_url, name },
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn backend(&self) -> &'static str {
        match self.guard {
            Guard::Sqlite(_) => "sqlite",
            Guard::Postgres { .. } => "postgres",
        }
    }

    pub async fn open(&self) -> Result<EventStore, StoreError> {
        EventStore::open(&self.url).await
    }

    /// Runs raw SQL on the database behind the store's back, as an intruder
    /// (or an operator) with direct access would.
    pub async fn execute_raw(&self, sql: &str) -> Result<u64, sqlx::Error> {
        match self.guard {
            Guard::Sqlite(_) => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await?;
                let done = conn.execute(sql).await?;
                conn.close().await?;
                Ok(done.rows_affected())
            }
            Guard::Postgres { .. } => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await?;
                let done = conn.execute(sql).await?;
                conn.close().await?;
                Ok(done.rows_affected())
            }
        }
    }

    /// Runs `sql` with `bytes` bound to its one parameter (`$1`).
    pub async fn execute_with_bytes(&self, sql: &str, bytes: &[u8]) -> Result<u64, sqlx::Error> {
        match self.guard {
            Guard::Sqlite(_) => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await?;
                let done = sqlx::query(&sql.replace("$1", "?"))
                    .bind(bytes)
                    .execute(&mut conn)
                    .await?;
                conn.close().await?;
                Ok(done.rows_affected())
            }
            Guard::Postgres { .. } => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await?;
                let done = sqlx::query(sql).bind(bytes).execute(&mut conn).await?;
                conn.close().await?;
                Ok(done.rows_affected())
            }
        }
    }

    /// The first column of the first row `sql` answers, as text.
    pub async fn fetch_text(&self, sql: &str) -> Result<Option<String>, sqlx::Error> {
        self.fetch_scalar(sql).await
    }

    /// The first column of the first row `sql` answers, as bytes.
    pub async fn fetch_bytes(&self, sql: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
        self.fetch_scalar(sql).await
    }

    async fn fetch_scalar<T>(&self, sql: &str) -> Result<Option<T>, sqlx::Error>
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Sqlite>
            + sqlx::Type<sqlx::Sqlite>
            + for<'r> sqlx::Decode<'r, sqlx::Postgres>
            + sqlx::Type<sqlx::Postgres>
            + Send
            + Unpin,
    {
        match self.guard {
            Guard::Sqlite(_) => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await?;
                let value = sqlx::query_scalar(sql).fetch_optional(&mut conn).await?;
                conn.close().await?;
                Ok(value)
            }
            Guard::Postgres { .. } => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await?;
                let value = sqlx::query_scalar(sql).fetch_optional(&mut conn).await?;
                conn.close().await?;
                Ok(value)
            }
        }
    }

    /// Takes the store's write lock from another connection and holds it
    /// for `held` (PostgreSQL: the events table locked against everything;
    /// SQLite: a write transaction), as a stuck administrator would.
    /// Answers once the lock is taken.
    pub async fn hold_lock(&self, held: std::time::Duration) -> Result<(), sqlx::Error> {
        let (taken_tx, taken) = tokio::sync::oneshot::channel();
        match self.guard {
            Guard::Sqlite(_) => {
                let mut conn = sqlx::SqliteConnection::connect(&self.url).await?;
                conn.execute("BEGIN IMMEDIATE").await?;
                tokio::spawn(async move {
                    let _ = taken_tx.send(());
                    tokio::time::sleep(held).await;
                    let _ = conn.execute("ROLLBACK").await;
                    let _ = conn.close().await;
                });
            }
            Guard::Postgres { .. } => {
                let mut conn = sqlx::PgConnection::connect(&self.url).await?;
                conn.execute("BEGIN").await?;
                conn.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")
                    .await?;
                tokio::spawn(async move {
                    let _ = taken_tx.send(());
                    tokio::time::sleep(held).await;
                    let _ = conn.execute("ROLLBACK").await;
                    let _ = conn.close().await;
                });
            }
        }
        let _ = taken.await;
        Ok(())
    }

    /// The SQLite database file, for tests that act on the file itself.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        match self.guard {
            Guard::Sqlite(_) => self
                .url
                .strip_prefix("sqlite://")
                .map(|p| std::path::PathBuf::from(p.split('?').next().unwrap_or(p))),
            Guard::Postgres { .. } => None,
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Guard::Postgres { admin_url, name } = &self.guard else {
            return;
        };
        let (admin_url, name) = (admin_url.clone(), name.clone());
        // Drop may run inside a runtime: do the async work on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await?;
                admin.close().await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop a test database; it is left behind");
        }
    }
}

/// `admin_url` with its database name replaced by `name`.
fn with_database(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (admin_url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// Runs each test once on SQLite and once on PostgreSQL: the one way every
/// suite of the workspace does it. Without `FANGKONG_TEST_POSTGRES` the
/// PostgreSQL half says so and returns; under CI it fails instead.
///
/// - `each_backend!(a, b)`: each `async fn a(db: Arc<TestDb>)`;
/// - `each_backend!(threads = 4; [by_ref]; a, b)`: each `async fn a(db: &TestDb)`;
/// - `each_backend!(threads = 2; [fixture = start]; a, b)`: each
///   `async fn a(f: &F)`, where `async fn start(db: Arc<TestDb>) -> F`.
#[macro_export]
macro_rules! each_backend {
    (threads = $t:literal; $how:tt; $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = $t)]
                async fn $name() {
                    let db = std::sync::Arc::new($crate::testing::TestDb::sqlite());
                    $crate::each_backend!(@call $how; $name, db);
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = $t)]
                async fn $name() {
                    let Some(db) = $crate::testing::TestDb::postgres().await else {
                        return;
                    };
                    let db = std::sync::Arc::new(db);
                    $crate::each_backend!(@call $how; $name, db);
                }
            )*
        }
    };
    (@call [owned]; $name:ident, $db:ident) => {
        super::$name($db).await
    };
    (@call [by_ref]; $name:ident, $db:ident) => {
        super::$name(&$db).await
    };
    (@call [fixture = $setup:ident]; $name:ident, $db:ident) => {{
        let fixture = super::$setup($db).await;
        super::$name(&fixture).await
    }};
    ($($name:ident),* $(,)?) => {
        $crate::each_backend!(threads = 2; [owned]; $($name),*);
    };
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_name_is_replaced_and_the_options_kept() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}

//! A database of its own for a test: a fresh PostgreSQL database on the
//! local server (127.0.0.1:5432, user postgres), dropped when the test ends.

use crate::data::Location;

/// The server the tests use; `NEBULA_TEST_PG` overrides it.
fn server() -> String {
    std::env::var("NEBULA_TEST_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

impl Kind {
    /// A fresh database for PostgreSQL; `None` for SQLite (a file in the app's folder).
    pub fn database(self) -> Option<TestDb> {
        (self == Kind::Postgres).then(TestDb::create)
    }
}

pub struct TestDb {
    name: String,
}

impl TestDb {
    pub fn create() -> TestDb {
        let name = format!("nebula_test_{:016x}", rand::random::<u64>());
        admin(&format!("CREATE DATABASE {name}"));
        TestDb { name }
    }

    pub fn url(&self) -> String {
        format!("{}/{}", server(), self.name)
    }

    pub fn location(&self) -> Location {
        Location::Postgres(self.url())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        admin(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// Runs one statement on the server's `postgres` database.
fn admin(sql: &str) {
    let url = format!("{}/postgres", server());
    let sql = sql.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| {
                    panic!("{url}: {e} (is PostgreSQL running? .ci/run starts it)")
                });
            tokio::spawn(conn);
            client
                .batch_execute(&sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        })
    })
    .join()
    .unwrap();
}

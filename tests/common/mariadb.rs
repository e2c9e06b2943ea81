//! A MariaDB database of its own per test, made with `lunasip db init`.

use std::process::Command;

/// One SQL batch in database `db` through the `mariadb` client; its
/// output, tab-separated, without column names.
pub fn sql(db: &str, q: &str) -> String {
    let out = Command::new("mariadb")
        .args(["-uroot", "-h127.0.0.1", "-N", "-B", db, "-e", q])
        .output()
        .expect("mariadb");
    assert!(
        out.status.success(),
        "{q}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A new database `name` with every table `lunasip db init` makes:
/// its URL and what `db init` printed. Dropped when the value is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub init_output: String,
}

impl TestDb {
    pub fn new(name: &str) -> TestDb {
        sql(
            "test",
            &format!("DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}"),
        );
        let url = format!("mysql://root@127.0.0.1:3306/{name}");
        let out = Command::new(env!("CARGO_BIN_EXE_lunasip"))
            .args(["db", "init", &url])
            .output()
            .expect("db init");
        let init_output = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "db init: {init_output}");
        TestDb {
            name: name.to_string(),
            url,
            init_output,
        }
    }

    pub fn sql(&self, q: &str) -> String {
        sql(&self.name, q)
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = Command::new("mariadb")
            .args(["-uroot", "-h127.0.0.1", "test", "-e"])
            .arg(format!("DROP DATABASE IF EXISTS {}", self.name))
            .output();
    }
}

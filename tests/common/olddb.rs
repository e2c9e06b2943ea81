//! A database of a test's own holding the tables an older OpenSIPS branch
//! created (tests/fixtures/opensips-BRANCH-DIALECT.sql, made by
//! opensips-schema.sh), on MariaDB, PostgreSQL or SQLite, read through
//! each server's own client (tests/db_migrate.rs).

use super::mariadb::sql;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Backend {
    Maria,
    Pg,
    Lite,
}

/// A database of the test's own holding the tables an older OpenSIPS
/// branch creates (tests/fixtures/opensips-BRANCH-DIALECT.sql), dropped
/// at the end.
pub struct OldDb {
    pub backend: Backend,
    pub name: String,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

pub fn psql(db: &str, args: &[&str]) -> String {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            db,
            "-v",
            "ON_ERROR_STOP=1",
        ])
        .args(["-q", "-At", "-F", "\t"])
        .args(args)
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl OldDb {
    pub fn new(backend: Backend, branch: &str) -> OldDb {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "lunasip_mig{}_{}_{}",
            branch.replace('.', ""),
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let dialect = match backend {
            Backend::Maria => "mysql",
            Backend::Pg => "postgres",
            Backend::Lite => "sqlite",
        };
        let fixture = format!(
            "{}/tests/fixtures/opensips-{branch}-{dialect}.sql",
            env!("CARGO_MANIFEST_DIR")
        );
        let (url, dir) = match backend {
            Backend::Maria => {
                sql(
                    "test",
                    &format!("DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}"),
                );
                sql(&name, &std::fs::read_to_string(&fixture).expect("fixture"));
                (format!("mysql://root@127.0.0.1:3306/{name}"), None)
            }
            Backend::Pg => {
                psql("test", &["-c", &format!("CREATE DATABASE {name}")]);
                psql(&name, &["-f", &fixture]);
                (format!("postgres://postgres@127.0.0.1:5432/{name}"), None)
            }
            Backend::Lite => {
                let d = tempfile::tempdir().expect("dir");
                let file = d.path().join("opensips.db");
                let st = Command::new("sqlite3")
                    .arg(&file)
                    .stdin(Stdio::from(std::fs::File::open(&fixture).expect("fixture")))
                    .status()
                    .expect("sqlite3");
                assert!(st.success(), "sqlite3 < {fixture}");
                (format!("sqlite://{}", file.display()), Some(d))
            }
        };
        OldDb {
            backend,
            name,
            url,
            _dir: dir,
        }
    }

    /// One SQL batch through the backend's own client: rows of
    /// tab-separated values.
    pub fn sql(&self, q: &str) -> String {
        match self.backend {
            Backend::Maria => sql(&self.name, q),
            Backend::Pg => psql(&self.name, &["-c", q]),
            Backend::Lite => {
                let file = self.url.trim_start_matches("sqlite://");
                let out = Command::new("sqlite3")
                    .args(["-separator", "\t", file, q])
                    .output()
                    .expect("sqlite3");
                assert!(
                    out.status.success(),
                    "{q}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            }
        }
    }

    /// A column's type as the backend names it, lowercase ("" when the
    /// column is not there).
    pub fn col_type(&self, table: &str, col: &str) -> String {
        let q = match self.backend {
            Backend::Maria => format!(
                "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{}' \
                 AND TABLE_NAME = '{table}' AND COLUMN_NAME = '{col}'",
                self.name
            ),
            Backend::Pg => format!(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
                 WHERE attrelid = '{table}'::regclass AND attname = '{col}' AND NOT attisdropped"
            ),
            Backend::Lite => {
                format!("SELECT type FROM pragma_table_info('{table}') WHERE name = '{col}'")
            }
        };
        self.sql(&q).to_lowercase()
    }

    /// A table's columns and their types, lowercase, in table order.
    pub fn columns(&self, table: &str) -> Vec<(String, String)> {
        let q = match self.backend {
            Backend::Maria => format!(
                "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = '{}' \
                 AND TABLE_NAME = '{table}' ORDER BY ORDINAL_POSITION",
                self.name
            ),
            Backend::Pg => format!(
                "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute \
                 WHERE attrelid = '{table}'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
            ),
            Backend::Lite => format!("SELECT name, type FROM pragma_table_info('{table}')"),
        };
        self.sql(&q)
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(c, t)| (c.to_string(), t.to_lowercase()))
            .collect()
    }

    pub fn versions(&self) -> String {
        let mut v: Vec<String> = self
            .sql("SELECT table_name, table_version FROM version")
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v.join("\n")
    }
}

impl Drop for OldDb {
    fn drop(&mut self) {
        match self.backend {
            Backend::Maria => {
                let _ = Command::new("mariadb")
                    .args(["-uroot", "-h127.0.0.1", "test", "-e"])
                    .arg(format!("DROP DATABASE IF EXISTS {}", self.name))
                    .output();
            }
            Backend::Pg => {
                let _ = Command::new("psql")
                    .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-c"])
                    .arg(format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        self.name
                    ))
                    .output();
            }
            Backend::Lite => {}
        }
    }
}

/// Runs `lunasip db migrate URL EXTRA…`: whether it succeeded, its
/// stdout, its stderr.
pub fn migrate(url: &str, extra: &[&str]) -> (bool, String, String) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_lunasip"))
        .args(["db", "migrate", url])
        .args(extra)
        .output()
        .expect("lunasip db migrate");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

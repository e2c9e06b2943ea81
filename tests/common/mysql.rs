//! OpenSIPS 3.4 tables of one test on MariaDB (127.0.0.1:3306, db
//! `test`), made by `lunasip db init` under names of their own so tests
//! run in parallel, dropped at the end; and the server's own client.

use std::process::Command;

pub const URL: &str = "mysql://root@127.0.0.1:3306/test";

/// One SQL statement through `mariadb` in database `test`; its
/// tab-separated answer.
pub fn sql(q: &str) -> String {
    super::mariadb::sql("test", q)
}

/// The tables `lunasip db init` makes, named `<kind>_<tag>_<pid>`.
pub struct Tables {
    pub location: String,
    pub subscriber: String,
    pub domain: String,
    pub uri: String,
    pub dbaliases: String,
    pub address: String,
    pub usr_preferences: String,
    /// What `db init` printed.
    pub init_output: String,
}

impl Tables {
    pub fn new(tag: &str) -> Tables {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("{tag}_{}_{n}", std::process::id());
        let mut t = Tables {
            location: format!("loc_{id}"),
            subscriber: format!("sub_{id}"),
            domain: format!("dom_{id}"),
            uri: format!("uri_{id}"),
            dbaliases: format!("ali_{id}"),
            address: format!("adr_{id}"),
            usr_preferences: format!("pref_{id}"),
            init_output: String::new(),
        };
        let out = Command::new(env!("CARGO_BIN_EXE_lunasip"))
            .args(["db", "init", URL])
            .args([
                "--location-table",
                &t.location,
                "--subscriber-table",
                &t.subscriber,
            ])
            .args(["--domain-table", &t.domain, "--uri-table", &t.uri])
            .args([
                "--dbaliases-table",
                &t.dbaliases,
                "--address-table",
                &t.address,
                "--usr-preferences-table",
                &t.usr_preferences,
            ])
            .output()
            .expect("lunasip db init");
        t.init_output = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}", t.init_output);
        t
    }

    /// `lunasip db add-user` into the subscriber table.
    pub fn add_user(&self, user_at_domain: &str, password: &str) {
        let out = Command::new(env!("CARGO_BIN_EXE_lunasip"))
            .args([
                "db",
                "add-user",
                URL,
                user_at_domain,
                password,
                "--table",
                &self.subscriber,
            ])
            .output()
            .expect("lunasip db add-user");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tables {
    fn drop(&mut self) {
        for t in [
            &self.location,
            &self.subscriber,
            &self.domain,
            &self.uri,
            &self.dbaliases,
            &self.address,
            &self.usr_preferences,
        ] {
            let _ = std::panic::catch_unwind(|| {
                sql(&format!("DROP TABLE IF EXISTS {t}"));
                sql(&format!("DELETE FROM version WHERE table_name = '{t}'"));
            });
        }
    }
}

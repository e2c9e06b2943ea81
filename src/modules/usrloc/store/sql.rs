//! A table's statements, each text made once: SELECT of an AoR (by
//! `use_domain`), INSERT, UPDATE and DELETE of a contact.

use std::sync::OnceLock;

use super::super::contact::{split_aor, COLUMNS};
use super::super::UlConf;
use super::Domain;
use crate::db::Value;

/// A table's SELECT (by use_domain), INSERT, UPDATE and DELETE texts.
#[derive(Default)]
pub(super) struct Statements {
    select: [OnceLock<String>; 2],
    insert: OnceLock<String>,
    update: OnceLock<String>,
    delete: OnceLock<String>,
}

impl Domain {
    pub(super) fn select_sql(&self, c: &UlConf) -> &str {
        self.sql.select[usize::from(c.use_domain)].get_or_init(|| {
            let cols = COLUMNS.join(", ");
            match c.use_domain {
                true => format!(
                    "SELECT {cols} FROM {} WHERE username = ? AND domain = ?",
                    self.table
                ),
                false => format!("SELECT {cols} FROM {} WHERE username = ?", self.table),
            }
        })
    }

    pub(super) fn key_params(aor: &str, c: &UlConf) -> Vec<Value> {
        let (u, d) = split_aor(aor, c.use_domain);
        match c.use_domain {
            true => vec![Value::text(u), Value::text(d.unwrap_or(""))],
            false => vec![Value::text(u)],
        }
    }

    pub(super) fn insert_sql(&self) -> &str {
        self.sql.insert.get_or_init(|| {
            let marks = vec!["?"; COLUMNS.len()].join(", ");
            format!(
                "INSERT INTO {} ({}) VALUES ({marks})",
                self.table,
                COLUMNS.join(", ")
            )
        })
    }

    pub(super) fn update_sql(&self) -> &str {
        self.sql.update.get_or_init(|| {
            let set: Vec<String> = COLUMNS[1..].iter().map(|c| format!("{c} = ?")).collect();
            format!(
                "UPDATE {} SET {} WHERE contact_id = ?",
                self.table,
                set.join(", ")
            )
        })
    }

    pub(super) fn delete_sql(&self) -> &str {
        self.sql.delete.get_or_init(|| format!("DELETE FROM {} WHERE contact_id = ?", self.table))
    }
}

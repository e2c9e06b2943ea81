//! Typed values going into and coming out of every backend, and the rows
//! they form. Getters convert where backends differ (an unsigned MySQL
//! integer, a PostgreSQL REAL, SQLite's text dates), so a module reads a
//! column the same way on all three.

use std::sync::Arc;

/// One parameter or column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    /// A date and time as Unix seconds; written as the local civil time
    /// (DATETIME / TIMESTAMP WITHOUT TIME ZONE), as OpenSIPS does.
    Time(i64),
}

impl Value {
    pub fn text(s: impl Into<String>) -> Value {
        Value::Text(s.into())
    }

    /// `Some(s)` as text, `None` as NULL.
    pub fn opt_text(s: Option<&str>) -> Value {
        s.map_or(Value::Null, |s| Value::Text(s.to_string()))
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Float(f) => Some(*f as i64),
            Value::Text(s) => s.trim().parse().ok(),
            Value::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
            Value::Time(t) => Some(*t),
            Value::Null => None,
        }
    }

    pub fn as_float(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Text(s) => s.trim().parse().ok(),
            Value::Bytes(b) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn as_text(&self) -> Option<String> {
        match self {
            Value::Null => None,
            Value::Int(i) => Some(i.to_string()),
            Value::Float(f) => Some(f.to_string()),
            Value::Text(s) => Some(s.clone()),
            Value::Bytes(b) => Some(String::from_utf8_lossy(b).into_owned()),
            Value::Time(t) => Some(civil_text(*t)),
        }
    }
}

/// A result row: values by position, column names shared by all rows of
/// one result.
#[derive(Debug, Clone)]
pub struct Row {
    cols: Arc<[String]>,
    vals: Vec<Value>,
}

impl Row {
    pub fn new(cols: Arc<[String]>, vals: Vec<Value>) -> Row {
        Row { cols, vals }
    }

    /// The value of column `name` (case-insensitive); NULL when absent.
    pub fn get(&self, name: &str) -> &Value {
        const NULL: &Value = &Value::Null;
        self.cols
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
            .and_then(|i| self.vals.get(i))
            .unwrap_or(NULL)
    }

    pub fn at(&self, i: usize) -> &Value {
        const NULL: &Value = &Value::Null;
        self.vals.get(i).unwrap_or(NULL)
    }

    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name).as_int()
    }

    pub fn float(&self, name: &str) -> Option<f64> {
        self.get(name).as_float()
    }

    /// Text of a column; NULL and empty text are None.
    pub fn text(&self, name: &str) -> Option<String> {
        self.get(name).as_text().filter(|s| !s.is_empty())
    }

    pub fn columns(&self) -> &[String] {
        &self.cols
    }

    pub fn len(&self) -> usize {
        self.vals.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vals.is_empty()
    }
}

/// Unix seconds as a local civil date and time.
pub fn civil(secs: i64) -> jiff::civil::DateTime {
    let tz = jiff::tz::TimeZone::system();
    tz.to_datetime(jiff::Timestamp::from_second(secs).unwrap_or(jiff::Timestamp::UNIX_EPOCH))
}

/// A local civil date and time as Unix seconds.
pub fn from_civil(dt: jiff::civil::DateTime) -> i64 {
    let tz = jiff::tz::TimeZone::system();
    tz.to_timestamp(dt).map(|t| t.as_second()).unwrap_or(0)
}

/// `YYYY-MM-DD HH:MM:SS` in local time (SQLite's DATETIME text).
pub fn civil_text(secs: i64) -> String {
    civil(secs).strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// Parses `YYYY-MM-DD HH:MM:SS` (local time).
pub fn parse_civil(s: &str) -> Option<i64> {
    let dt: jiff::civil::DateTime = s.trim().replace(' ', "T").parse().ok()?;
    Some(from_civil(dt))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions() {
        assert_eq!(Value::Text(" 42 ".into()).as_int(), Some(42));
        assert_eq!(Value::Bytes(b"0.5".to_vec()).as_float(), Some(0.5));
        assert_eq!(Value::Null.as_text(), None);
        let t = 1_700_000_000;
        assert_eq!(parse_civil(&civil_text(t)), Some(t));
        let r = Row::new(
            Arc::from(vec!["A".to_string(), "b".to_string()]),
            vec![Value::Int(1), Value::Text(String::new())],
        );
        assert_eq!(r.int("a"), Some(1));
        assert_eq!(r.text("b"), None);
        assert_eq!(r.get("c"), &Value::Null);
    }
}

//! Tests of the lean MySQL client: the protocol helpers alone, then
//! against the MariaDB every test machine runs.

use super::*;

#[test]
fn lenenc_reads_each_width() {
    assert_eq!(lenenc(&[0x05]), Some((5, 1)));
    assert_eq!(lenenc(&[0xFC, 0x34, 0x12]), Some((0x1234, 3)));
    assert_eq!(lenenc(&[0xFD, 1, 2, 3]), Some((0x030201, 4)));
    assert_eq!(lenenc(&[0xFE, 1, 0, 0, 0, 0, 0, 0, 0]), Some((1, 9)));
    assert_eq!(lenenc(&[0xFC, 1]), None);
    assert_eq!(lenenc(&[0xFF]), None);
    assert_eq!(lenenc(&[]), None);
}

#[test]
fn end_status_reads_ok_and_eof_forms() {
    // OK form: header, affected 0, insert id 0, status, warnings.
    let ok = [0xFE, 0, 0, 0x08, 0x00, 0, 0];
    assert!(
        end_status(true, &ok).is_some_and(|s| s.contains(StatusFlags::SERVER_MORE_RESULTS_EXISTS))
    );
    // EOF form: header, warnings, status.
    let eof = [0xFE, 0, 0, 0x02, 0x00];
    let s = end_status(false, &eof);
    assert!(s.is_some_and(|s| !s.contains(StatusFlags::SERVER_MORE_RESULTS_EXISTS)));
    assert!(end_status(true, &[0xFE, 0]).is_none());
}

#[test]
fn server_errors_read_as_mysql_async_shows_them() {
    let mut p = vec![0xFF, 0x7A, 0x04, b'#'];
    p.extend_from_slice(b"42S02");
    p.extend_from_slice(b"Table 'test.nope' doesn't exist");
    assert_eq!(
        server_error(CapabilityFlags::CLIENT_PROTOCOL_41, &p),
        "ERROR 1146 (42S02): Table 'test.nope' doesn't exist"
    );
    assert!(matches!(
        refused(CapabilityFlags::CLIENT_PROTOCOL_41, &p),
        WireError::Server(_)
    ));
    let mut killed = vec![0xFF, 0x87, 0x07, b'#'];
    killed.extend_from_slice(b"70100Connection was killed");
    assert!(matches!(
        refused(CapabilityFlags::CLIENT_PROTOCOL_41, &killed),
        WireError::Broken(_)
    ));
}

// Against the MariaDB every test machine runs (TESTING.md): what the
// lean client reads must be what mysql_async's `exec` reads.

const URL: &str = "mysql://root@127.0.0.1:3306/test";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn opts(url: &str) -> mysql_async::Opts {
    super::super::mysql::opts(url, url).expect("opts")
}

async fn general(sql: &str, params: &[Value]) -> Vec<Vec<Value>> {
    use mysql_async::prelude::Queryable;
    let mut c = mysql_async::Conn::new(opts(URL)).await.expect("conn");
    let p: Vec<_> = params
        .iter()
        .cloned()
        .map(super::super::mysql::to_my)
        .collect();
    let rows: Vec<mysql_async::Row> = c.exec(sql, p).await.expect("exec");
    rows.iter()
        .map(|r| {
            (0..r.len())
                .map(|i| {
                    r.as_ref(i)
                        .map_or(Value::Null, super::super::mysql::from_my)
                })
                .collect()
        })
        .collect()
}

fn values(rows: &[Row], n: usize) -> Vec<Vec<Value>> {
    rows.iter()
        .map(|r| (0..n).map(|i| r.at(i).clone()).collect())
        .collect()
}

async fn setup(sql: &[&str]) {
    use mysql_async::prelude::Queryable;
    let mut c = mysql_async::Conn::new(opts(URL)).await.expect("conn");
    for s in sql {
        c.query_drop(*s).await.expect(s);
    }
}

#[test]
fn reads_every_column_type_as_mysql_async_does() {
    rt().block_on(async {
        let t = format!("wire_types_{}", std::process::id());
        setup(&[
            &format!("DROP TABLE IF EXISTS {t}"),
            &format!(
                "CREATE TABLE {t} (i TINYINT, u SMALLINT UNSIGNED, m MEDIUMINT, n INT, \
                 b BIGINT, bu BIGINT UNSIGNED, f FLOAT, d DOUBLE, dc DECIMAL(10,2), \
                 dt DATETIME, da DATE, ts TIMESTAMP NULL, tm TIME, y YEAR, v VARCHAR(20), \
                 tx TEXT, bl BLOB, nul INT NULL)"
            ),
            &format!(
                "INSERT INTO {t} VALUES (-5, 65535, -8388608, 2147483647, -9007199254740993, \
                 18446744073709551615, 1.5, -2.25, 12345.67, '2026-12-07 03:04:05', \
                 '2026-01-31', '2026-06-01 12:00:00', '-12:34:56', 2026, 'ann', 'é text', \
                 X'00FF10', NULL), (0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, NULL, NULL, NULL, NULL, \
                 'bob', '', X'', 7)"
            ),
        ])
        .await;
        let sql = format!("SELECT * FROM {t} WHERE v <> ? ORDER BY v");
        let params = [Value::text("nobody")];
        let mut w = Wire::connect(&opts(URL)).await.expect("connect");
        let got = w.read(&sql, &params).await.expect("read");
        assert_eq!(got.len(), 2);
        let want = general(&sql, &params).await;
        assert_eq!(values(&got, 18), want);
        assert_eq!(got[0].get("v"), &Value::text("ann"));
        assert_eq!(got[0].int("bu"), Some(i64::MAX));
        assert_eq!(got[1].int("nul"), Some(7));
        assert_eq!(got[0].get("bl"), &Value::Bytes(vec![0, 0xFF, 0x10]));
        // Again on the same statement: the kept one, the same rows.
        let again = w.read(&sql, &params).await.expect("read");
        assert_eq!(values(&again, 18), want);
        // NULL, integers, floats, bytes and times as parameters.
        let sql2 = "SELECT ? AS a, ? AS b, ? AS c, ? AS d, ? AS e, ? AS f";
        let p2 = [
            Value::Null,
            Value::Int(-3),
            Value::Float(0.5),
            Value::Bytes(vec![1, 2, 255]),
            Value::Time(1_800_000_000),
            Value::text("x'; DROP TABLE t; --"),
        ];
        let got = w.read(sql2, &p2).await.expect("read");
        assert_eq!(values(&got, 6), general(sql2, &p2).await);
        assert_eq!(got[0].get("f"), &Value::text("x'; DROP TABLE t; --"));
        setup(&[&format!("DROP TABLE {t}")]).await;
    });
}

#[test]
fn server_errors_leave_the_connection_usable() {
    rt().block_on(async {
        let mut w = Wire::connect(&opts(URL)).await.expect("connect");
        // Refused at prepare.
        match w
            .read(
                "SELECT * FROM wire_no_such_table WHERE a = ?",
                &[Value::Int(1)],
            )
            .await
        {
            Err(WireError::Server(e)) => assert!(e.starts_with("ERROR 1146 (42S02)"), "{e}"),
            other => panic!("{other:?}"),
        }
        // Refused while executing.
        let sql = "SELECT ? + (SELECT 1 UNION SELECT 2) AS x";
        match w.read(sql, &[Value::Int(1)]).await {
            Err(WireError::Server(e)) => assert!(e.contains("1242"), "{e}"),
            other => panic!("{other:?}"),
        }
        // Parameters that do not fit the statement.
        assert!(matches!(
            w.read("SELECT ? AS x", &[]).await,
            Err(WireError::Server(_))
        ));
        // A statement without a result set, then a read again.
        assert!(w
            .read("DO ?", &[Value::Int(1)])
            .await
            .expect("do")
            .is_empty());
        let got = w
            .read("SELECT ? AS x", &[Value::Int(41)])
            .await
            .expect("read");
        assert_eq!(got[0].int("x"), Some(41));
    });
}

#[test]
fn many_statement_texts_stay_bounded() {
    rt().block_on(async {
        let mut w = Wire::connect(&opts(URL)).await.expect("connect");
        for i in 0..MAX_STMTS + 40 {
            let got = w
                .read(&format!("SELECT ? + {i} AS x"), &[Value::Int(1)])
                .await
                .expect("read");
            assert_eq!(got[0].int("x"), Some(i as i64 + 1));
            assert!(w.stmts.len() <= MAX_STMTS);
        }
    });
}

#[test]
fn a_password_user_connects_and_a_wrong_password_is_declined() {
    rt().block_on(async {
        setup(&[
            "CREATE USER IF NOT EXISTS 'lunasip_wire'@'127.0.0.1' IDENTIFIED BY 'wire pw'",
            "GRANT SELECT ON test.* TO 'lunasip_wire'@'127.0.0.1'",
        ])
        .await;
        let good = "mysql://lunasip_wire:wire%20pw@127.0.0.1:3306/test";
        let mut w = Wire::connect(&opts(good)).await.expect("connect");
        let got = w
            .read("SELECT CURRENT_USER() AS u, ? AS x", &[Value::Int(2)])
            .await
            .expect("read");
        assert_eq!(got[0].text("u").as_deref(), Some("lunasip_wire@127.0.0.1"));
        let bad = "mysql://lunasip_wire:nope@127.0.0.1:3306/test";
        match Wire::connect(&opts(bad)).await {
            Err(WireError::Unsupported(e)) => assert!(e.contains("1045"), "{e}"),
            Err(e) => panic!("{e:?}"),
            Ok(_) => panic!("a wrong password connected"),
        }
        // What it leaves to mysql_async.
        let tls = mysql_async::OptsBuilder::from_opts(opts(URL))
            .ssl_opts(mysql_async::SslOpts::default());
        match Wire::connect(&tls.into()).await {
            Err(WireError::Unsupported(e)) => assert!(e.contains("TLS"), "{e}"),
            _ => panic!("TLS is left to mysql_async"),
        }
    });
}

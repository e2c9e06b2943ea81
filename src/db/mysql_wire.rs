//! A lean MySQL client for the workers' reads: one TCP connection that
//! speaks the client/server protocol's prepared statements (COM_STMT_PREPARE
//! and COM_STMT_EXECUTE, the binary row format) and nothing else.
//!
//! Why: the client side of a query was a fifth of a worker's user time on
//! an authenticated REGISTER (bench/RESULTS.md, Sessions 16–18), most of it
//! mysql_async's general machinery (its routines, buffers, statement cache
//! and result-set state) around one small SELECT. Here a read is one write
//! and, usually, one read of the socket, its packets parsed in place with
//! mysql_common's own parsers and its values turned straight into
//! [`Value`].
//!
//! What it does not do, it declines ([`WireError::Unsupported`]) and the
//! caller uses mysql_async as before: TLS, Unix sockets, compression,
//! `init`/`setup` statements, a session `wait_timeout`, authentication
//! other than `mysql_native_password` and the fast path of
//! `caching_sha2_password`, packets of 16 MB or more.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use mysql_common::constants::{CapabilityFlags, ColumnFlags, ColumnType, StatusFlags};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{
    AuthPlugin, AuthSwitchRequest, ComStmtExecuteRequestBuilder, ErrPacket, HandshakePacket,
    HandshakeResponse, StmtPacket,
};
use mysql_common::proto::{MyDeserialize, MySerialize};
use mysql_common::value::{BinValue, ValueDeserializer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Row, Value};

/// Statements kept prepared per connection; past this the connection
/// closes them all and starts again (a script that builds its SQL text
/// per call would otherwise fill the server's `max_prepared_stmt_count`).
const MAX_STMTS: usize = 256;

/// A payload of this length continues in the next packet (protocol
/// "sending more than 16 MB"): not handled here.
const MAX_PAYLOAD: usize = 0xFF_FFFF;

/// Commands (protocol "Command Phase").
const COM_STMT_PREPARE: u8 = 0x16;
const COM_STMT_CLOSE: u8 = 0x19;

#[derive(Debug)]
pub(super) enum WireError {
    /// The server refused the statement (an ERR packet); the connection
    /// stays usable.
    Server(String),
    /// The connection cannot be used any more: an I/O error, the server
    /// closed it, or a packet this client could not follow.
    Broken(String),
    /// This server, URL or statement needs what this client does not do;
    /// the connection (if any) stays usable.
    Unsupported(String),
}

/// A statement prepared on this connection.
struct Stmt {
    id: u32,
    params: usize,
    /// Its result's column names, shared by all its rows and kept
    /// between executes while they stay the same.
    names: Option<Arc<[String]>>,
}

/// One result column: what decoding a binary value needs.
struct Col {
    ty: ColumnType,
    flags: ColumnFlags,
}

pub(super) struct Wire {
    io: TcpStream,
    /// Bytes read and not yet consumed: `buf[head..tail]`.
    buf: Vec<u8>,
    head: usize,
    tail: usize,
    /// The sequence id of the last packet read.
    seq: u8,
    out: Vec<u8>,
    caps: CapabilityFlags,
    stmts: HashMap<String, Stmt, ahash::RandomState>,
}

fn broken(e: impl std::fmt::Display) -> WireError {
    WireError::Broken(e.to_string())
}

/// Whether `opts` asks for anything this client leaves to mysql_async.
pub(super) fn declined(opts: &mysql_async::Opts) -> Option<&'static str> {
    if opts.ssl_opts().is_some() {
        Some("TLS")
    } else if opts.prefer_socket() || opts.socket().is_some() {
        Some("a Unix socket")
    } else if opts.compression().is_some() {
        Some("compression")
    } else if !opts.init().is_empty() || !opts.setup().is_empty() {
        Some("init or setup statements")
    } else if opts.wait_timeout().is_some() {
        Some("a session wait_timeout")
    } else {
        None
    }
}

/// The capabilities this client asks for (the server's answer narrows
/// them): the 4.1 protocol, its authentication, OK in place of EOF.
fn wanted(db: bool) -> CapabilityFlags {
    let mut c = CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_LONG_PASSWORD
        | CapabilityFlags::CLIENT_TRANSACTIONS
        | CapabilityFlags::CLIENT_MULTI_RESULTS
        | CapabilityFlags::CLIENT_PS_MULTI_RESULTS
        | CapabilityFlags::CLIENT_DEPRECATE_EOF
        | CapabilityFlags::CLIENT_PLUGIN_AUTH;
    if db {
        c |= CapabilityFlags::CLIENT_CONNECT_WITH_DB;
    }
    c
}

/// Errors a server sends as it closes the connection (MariaDB's
/// ER_CONNECTION_KILLED, MySQL's ER_CLIENT_INTERACTION_TIMEOUT, and
/// ER_SERVER_SHUTDOWN): the read goes again on another connection.
const CLOSING: [u16; 3] = [1927, 4031, 1053];

/// An ERR packet: a refusal of the statement, or the server closing.
fn refused(caps: CapabilityFlags, payload: &[u8]) -> WireError {
    let code = payload.get(1..3).map(|c| u16::from_le_bytes([c[0], c[1]]));
    let text = server_error(caps, payload);
    if code.is_some_and(|c| CLOSING.contains(&c)) {
        WireError::Broken(text)
    } else {
        WireError::Server(text)
    }
}

/// The text mysql_async gives a server error, so messages read the same
/// whichever client ran the statement.
fn server_error(caps: CapabilityFlags, payload: &[u8]) -> String {
    match ParseBuf(payload).parse::<ErrPacket>(caps) {
        Ok(ErrPacket::Error(e)) => {
            let state = e
                .sql_state_ref()
                .map(|s| String::from_utf8_lossy(&s.as_bytes()).into_owned())
                .unwrap_or_else(|| "HY000".to_string());
            format!("ERROR {} ({state}): {}", e.error_code(), e.message_str())
        }
        Ok(ErrPacket::Progress(_)) => "an unexpected progress report".to_string(),
        Err(e) => format!("an unreadable error packet: {e}"),
    }
}

/// A length-encoded integer at the start of `b` (protocol "Integer
/// Types"), with the bytes it took.
fn lenenc(b: &[u8]) -> Option<(u64, usize)> {
    match *b.first()? {
        n @ 0..=0xFA => Some((u64::from(n), 1)),
        0xFC => Some((u64::from(u16::from_le_bytes([*b.get(1)?, *b.get(2)?])), 3)),
        0xFD => Some((
            u64::from(u32::from_le_bytes([*b.get(1)?, *b.get(2)?, *b.get(3)?, 0])),
            4,
        )),
        0xFE => Some((u64::from_le_bytes(b.get(1..9)?.try_into().ok()?), 9)),
        _ => None,
    }
}

/// The status flags of the packet that ends a result set: an OK packet
/// (with CLIENT_DEPRECATE_EOF) or an EOF packet.
fn end_status(deprecate_eof: bool, p: &[u8]) -> Option<StatusFlags> {
    let at = if deprecate_eof {
        let (_, a) = lenenc(p.get(1..)?)?;
        let (_, b) = lenenc(p.get(1 + a..)?)?;
        1 + a + b
    } else {
        3
    };
    let s = u16::from_le_bytes([*p.get(at)?, *p.get(at + 1)?]);
    Some(StatusFlags::from_bits_truncate(s))
}

/// An OK packet's status flags (after header, affected rows, insert id).
fn ok_status(p: &[u8]) -> Option<StatusFlags> {
    end_status(true, p)
}

/// A column definition's name and type (protocol "Column Definition"):
/// catalog, schema, table, original table, name, original name as
/// length-encoded strings, then the fixed-length fields.
fn column_def(p: &[u8]) -> Option<(&[u8], Col)> {
    let mut at = 0;
    let mut name: &[u8] = &[];
    for i in 0..6 {
        let (len, n) = lenenc(p.get(at..)?)?;
        let start = at + n;
        at = start.checked_add(usize::try_from(len).ok()?)?;
        if i == 4 {
            name = p.get(start..at)?;
        }
    }
    // 0x0C (the fixed fields' length), character set (2), column length (4).
    let fixed = p.get(at..at + 10)?;
    let ty = ColumnType::try_from(*fixed.get(7)?).ok()?;
    let flags =
        ColumnFlags::from_bits_truncate(u16::from_le_bytes([*fixed.get(8)?, *fixed.get(9)?]));
    Some((name, Col { ty, flags }))
}

impl Wire {
    /// Connects and authenticates. `Unsupported` when the server asks for
    /// what this client does not do (mysql_async then reports whatever the
    /// real trouble is, such as a refused password).
    pub(super) async fn connect(opts: &mysql_async::Opts) -> Result<Wire, WireError> {
        if let Some(what) = declined(opts) {
            return Err(WireError::Unsupported(format!("the URL asks for {what}")));
        }
        let io = TcpStream::connect((opts.ip_or_hostname(), opts.tcp_port()))
            .await
            .map_err(broken)?;
        io.set_nodelay(true).map_err(broken)?;
        let mut w = Wire {
            io,
            buf: vec![0; 16 * 1024],
            head: 0,
            tail: 0,
            seq: 0,
            out: Vec::with_capacity(1024),
            caps: CapabilityFlags::empty(),
            stmts: HashMap::default(),
        };
        w.handshake(opts).await?;
        Ok(w)
    }

    /// Protocol "Connection Phase": the server's greeting, our answer,
    /// then at most one switch of authentication method.
    async fn handshake(&mut self, opts: &mysql_async::Opts) -> Result<(), WireError> {
        let p = self.packet().await?;
        let greeting = &self.buf[p];
        if greeting.first() == Some(&0xFF) {
            return Err(WireError::Broken(server_error(
                CapabilityFlags::empty(),
                greeting,
            )));
        }
        let hs = ParseBuf(greeting)
            .parse::<HandshakePacket>(())
            .map_err(broken)?;
        let mut nonce = hs.scramble_1_ref().to_vec();
        nonce.extend_from_slice(hs.scramble_2_ref().unwrap_or(&[]));
        nonce.resize(20, 0);
        let needed = CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_PLUGIN_AUTH;
        if !hs.capabilities().contains(needed) {
            return Err(WireError::Unsupported(
                "a server without the 4.1 protocol".into(),
            ));
        }
        self.caps = hs.capabilities() & wanted(opts.db_name().is_some());
        let version = hs
            .maria_db_server_version_parsed()
            .or_else(|| hs.server_version_parsed())
            .unwrap_or((0, 0, 0));
        let mut plugin = match hs.auth_plugin() {
            Some(AuthPlugin::CachingSha2Password) => AuthPlugin::CachingSha2Password,
            _ => AuthPlugin::MysqlNativePassword,
        };
        let data = plugin.gen_data(opts.pass(), &nonce);
        let answer = HandshakeResponse::new(
            data.as_deref(),
            version,
            opts.user().map(str::as_bytes),
            opts.db_name().map(str::as_bytes),
            Some(plugin.clone()),
            self.caps,
            opts.connect_attributes().cloned(),
            opts.max_allowed_packet().unwrap_or(16 * 1024 * 1024) as u32,
        );
        self.begin();
        answer.serialize(&mut self.out);
        self.send(self.seq.wrapping_add(1)).await?;
        let mut switched = false;
        loop {
            let p = self.packet().await?;
            let pl = &self.buf[p];
            match (pl.first(), pl.get(1)) {
                (Some(0x00), _) => return Ok(()),
                (Some(0xFF), _) => {
                    return Err(WireError::Unsupported(server_error(self.caps, pl)));
                }
                (Some(0xFE), _) if !switched => {
                    switched = true;
                    let req = ParseBuf(pl)
                        .parse::<AuthSwitchRequest>(())
                        .map_err(broken)?;
                    plugin = match req.auth_plugin() {
                        AuthPlugin::MysqlNativePassword => AuthPlugin::MysqlNativePassword,
                        AuthPlugin::CachingSha2Password => AuthPlugin::CachingSha2Password,
                        other => {
                            return Err(WireError::Unsupported(format!(
                                "authentication by {}",
                                String::from_utf8_lossy(other.as_bytes())
                            )));
                        }
                    };
                    let data = plugin.gen_data(opts.pass(), req.plugin_data());
                    self.begin();
                    if let Some(d) = data {
                        d.serialize(&mut self.out);
                    }
                    self.send(self.seq.wrapping_add(1)).await?;
                }
                // caching_sha2_password: "fast authentication succeeded",
                // the OK follows.
                (Some(0x01), Some(0x03)) if plugin == AuthPlugin::CachingSha2Password => {}
                _ => {
                    return Err(WireError::Unsupported(
                        "authentication beyond a scramble (caching_sha2_password's full \
                         authentication needs TLS or the server's key)"
                            .into(),
                    ));
                }
            }
        }
    }

    /// Runs a SELECT-like statement with bound parameters and returns its
    /// rows (those of its first result; any further ones are read and
    /// dropped, as mysql_async's `exec` does).
    pub(super) async fn read(
        &mut self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<Row>, WireError> {
        let (id, count, kept) = match self.stmts.get(sql) {
            Some(s) => (s.id, s.params, s.names.clone()),
            None => {
                let (id, count) = self.prepare(sql).await?;
                (id, count, None)
            }
        };
        if count != params.len() {
            return Err(WireError::Server(format!(
                "the statement has {count} parameters, {} were given",
                params.len()
            )));
        }
        let values: Vec<mysql_async::Value> =
            params.iter().cloned().map(super::mysql::to_my).collect();
        let (req, long) = ComStmtExecuteRequestBuilder::new(id).build(&values);
        if long {
            return Err(WireError::Unsupported("parameters of 16 MB or more".into()));
        }
        self.begin();
        req.serialize(&mut self.out);
        self.send(0).await?;
        let (rows, mut more, names) = self.result(kept.clone()).await?;
        // New or changed column names are kept for the next execute.
        if !kept.is_some_and(|k| Arc::ptr_eq(&k, &names)) {
            if let Some(s) = self.stmts.get_mut(sql) {
                s.names = Some(names);
            }
        }
        // Further results (a CALL's), read to the end and dropped.
        while more {
            more = self.result(None).await?.1;
        }
        Ok(rows)
    }

    /// Reads one result: its rows, whether another result follows, and
    /// its column names (`kept`, the statement's last ones, when the same).
    async fn result(
        &mut self,
        kept: Option<Arc<[String]>>,
    ) -> Result<(Vec<Row>, bool, Arc<[String]>), WireError> {
        let p = self.packet().await?;
        let first = &self.buf[p];
        let ncols = match first.first() {
            Some(0x00) => {
                let more = ok_status(first).ok_or_else(|| broken("a short OK packet"))?;
                return Ok((
                    Vec::new(),
                    more.contains(StatusFlags::SERVER_MORE_RESULTS_EXISTS),
                    kept.unwrap_or_else(|| Arc::from([])),
                ));
            }
            Some(0xFF) => return Err(refused(self.caps, first)),
            Some(0xFB) => return Err(broken("the server asked for a local file")),
            _ => lenenc(first).ok_or_else(|| broken("a bad column count"))?.0 as usize,
        };
        let deprecate_eof = self.caps.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF);
        let mut cols = Vec::with_capacity(ncols);
        let mut names: Vec<String> = Vec::new();
        let mut same = kept.as_ref().is_some_and(|k| k.len() == ncols);
        for i in 0..ncols {
            let p = self.packet().await?;
            let (name, col) =
                column_def(&self.buf[p]).ok_or_else(|| broken("a bad column definition"))?;
            cols.push(col);
            if same && kept.as_ref().is_some_and(|k| k[i].as_bytes() == name) {
                continue;
            }
            if same {
                // The first name that differs: the ones before it were the same.
                same = false;
                names.extend(kept.iter().flat_map(|k| k[..i].iter().cloned()));
            }
            names.push(String::from_utf8_lossy(name).into_owned());
        }
        let names: Arc<[String]> = match kept {
            Some(k) if same => k,
            _ => names.into(),
        };
        if !deprecate_eof {
            self.packet().await?;
        }
        let bitmap = (ncols + 7 + 2) / 8;
        let mut rows = Vec::new();
        loop {
            let p = self.packet().await?;
            let pl = &self.buf[p];
            match pl.first() {
                Some(0x00) => {
                    let mut vals = Vec::with_capacity(ncols);
                    let nulls = pl.get(1..1 + bitmap).ok_or_else(|| broken("a short row"))?;
                    let mut data = ParseBuf(&pl[1 + bitmap..]);
                    for (i, c) in cols.iter().enumerate() {
                        let bit = i + 2;
                        if nulls[bit / 8] & (1 << (bit % 8)) != 0 {
                            vals.push(Value::Null);
                            continue;
                        }
                        let v =
                            ValueDeserializer::<BinValue>::deserialize((c.ty, c.flags), &mut data)
                                .map_err(broken)?
                                .0;
                        vals.push(super::mysql::from_my(&v));
                    }
                    rows.push(Row::new(names.clone(), vals));
                }
                Some(0xFE) if pl.len() < MAX_PAYLOAD => {
                    let s = end_status(deprecate_eof, pl)
                        .ok_or_else(|| broken("a short end of rows"))?;
                    return Ok((
                        rows,
                        s.contains(StatusFlags::SERVER_MORE_RESULTS_EXISTS),
                        names,
                    ));
                }
                Some(0xFF) => return Err(refused(self.caps, pl)),
                _ => return Err(broken("an unexpected packet among the rows")),
            }
        }
    }

    /// COM_STMT_PREPARE: the statement's id and parameter count, kept for
    /// the next execute.
    async fn prepare(&mut self, sql: &str) -> Result<(u32, usize), WireError> {
        if self.stmts.len() >= MAX_STMTS {
            // COM_STMT_CLOSE has no answer: one write closes them all.
            self.out.clear();
            for s in self.stmts.values() {
                self.out.extend_from_slice(&[5, 0, 0, 0, COM_STMT_CLOSE]);
                self.out.extend_from_slice(&s.id.to_le_bytes());
            }
            self.io.write_all(&self.out).await.map_err(broken)?;
            self.stmts.clear();
        }
        self.begin();
        self.out.push(COM_STMT_PREPARE);
        self.out.extend_from_slice(sql.as_bytes());
        self.send(0).await?;
        let p = self.packet().await?;
        let pl = &self.buf[p];
        if pl.first() == Some(&0xFF) {
            return Err(refused(self.caps, pl));
        }
        let st = ParseBuf(pl).parse::<StmtPacket>(()).map_err(broken)?;
        let (id, params, cols) = (
            st.statement_id(),
            usize::from(st.num_params()),
            usize::from(st.num_columns()),
        );
        let eof = !self.caps.contains(CapabilityFlags::CLIENT_DEPRECATE_EOF);
        // The parameters' and columns' definitions: not needed here (the
        // execute's answer describes its columns again).
        for n in [params, cols] {
            for _ in 0..n + usize::from(eof && n > 0) {
                self.packet().await?;
            }
        }
        self.stmts.insert(
            sql.to_string(),
            Stmt {
                id,
                params,
                names: None,
            },
        );
        Ok((id, params))
    }

    /// Starts a packet in `out` (its 4-byte header is filled by `send`).
    fn begin(&mut self) {
        self.out.clear();
        self.out.extend_from_slice(&[0; 4]);
    }

    /// Sends the packet in `out` with sequence id `seq`.
    async fn send(&mut self, seq: u8) -> Result<(), WireError> {
        let len = self.out.len() - 4;
        if len >= MAX_PAYLOAD {
            return Err(WireError::Unsupported("a packet of 16 MB or more".into()));
        }
        let l = (len as u32).to_le_bytes();
        self.out[..4].copy_from_slice(&[l[0], l[1], l[2], seq]);
        self.io.write_all(&self.out).await.map_err(broken)
    }

    /// The next packet's payload, as a range of `buf` valid until the next
    /// read.
    async fn packet(&mut self) -> Result<Range<usize>, WireError> {
        self.fill(4).await?;
        let h = &self.buf[self.head..self.head + 4];
        let len = u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize;
        self.seq = h[3];
        if len == MAX_PAYLOAD {
            return Err(broken("a packet of 16 MB or more"));
        }
        self.fill(4 + len).await?;
        let start = self.head + 4;
        self.head = start + len;
        Ok(start..start + len)
    }

    /// Reads until `buf[head..]` holds at least `need` bytes.
    async fn fill(&mut self, need: usize) -> Result<(), WireError> {
        if self.head == self.tail {
            self.head = 0;
            self.tail = 0;
        }
        if self.head + need > self.buf.len() {
            self.buf.copy_within(self.head..self.tail, 0);
            self.tail -= self.head;
            self.head = 0;
            if need > self.buf.len() {
                self.buf.resize(need.next_power_of_two(), 0);
            }
        }
        while self.tail - self.head < need {
            let n = self
                .io
                .read(&mut self.buf[self.tail..])
                .await
                .map_err(broken)?;
            if n == 0 {
                return Err(broken("the server closed the connection"));
            }
            self.tail += n;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "mysql_wire_tests.rs"]
mod tests;

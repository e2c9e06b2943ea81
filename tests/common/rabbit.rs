//! A RabbitMQ consumer for the tests (the broker at 127.0.0.1:5672,
//! guest/guest): a queue of its own bound to `amq.direct` with a key.

use lapin::message::BasicGetMessage;
use lapin::options::{BasicGetOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use std::time::{Duration, Instant};

/// The consumer's connection and its exclusive queue named `key`.
pub struct Consumer {
    rt: tokio::runtime::Runtime,
    _conn: Connection,
    ch: Channel,
    key: String,
}

impl Consumer {
    /// Declares the queue `key` on the machine's broker (exclusive) and
    /// binds it to `amq.direct` with `key`.
    pub fn bind(key: &str) -> Consumer {
        Consumer::bind_at("amqp://guest:guest@127.0.0.1:5672/%2f", key, false)
    }

    /// The same on the broker at `uri`; a `durable` queue outlives the
    /// consumer and a broker restart.
    pub fn bind_at(uri: &str, key: &str, durable: bool) -> Consumer {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (conn, ch) = rt.block_on(async {
            let props = ConnectionProperties::default()
                .with_executor(tokio_executor_trait::Tokio::current())
                .with_reactor(tokio_reactor_trait::Tokio::current());
            let conn = Connection::connect(uri, props)
                .await
                .unwrap_or_else(|e| panic!("RabbitMQ at {uri}: {e}"));
            let ch = conn.create_channel().await.expect("channel");
            let opts = QueueDeclareOptions {
                exclusive: !durable,
                auto_delete: !durable,
                durable,
                ..Default::default()
            };
            ch.queue_declare(key, opts, FieldTable::default())
                .await
                .expect("queue");
            ch.queue_bind(
                key,
                "amq.direct",
                key,
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind");
            (conn, ch)
        });
        Consumer {
            rt,
            _conn: conn,
            ch,
            key: key.to_string(),
        }
    }

    /// Takes every message in the queue; the count.
    pub fn drain(&self) -> u64 {
        self.rt.block_on(async {
            let mut n = 0;
            while let Some(_m) = self
                .ch
                .basic_get(self.key.as_str(), BasicGetOptions { no_ack: true })
                .await
                .expect("basic_get")
            {
                n += 1;
            }
            n
        })
    }

    /// The next message, waiting up to 10 s.
    pub fn next(&self) -> Option<BasicGetMessage> {
        self.rt.block_on(async {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let m = self
                    .ch
                    .basic_get(self.key.as_str(), BasicGetOptions { no_ack: true })
                    .await
                    .expect("basic_get");
                if m.is_some() || Instant::now() > deadline {
                    break m;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }
}

/// A RabbitMQ node of the test's own (Debian's rabbitmq-server on a free
/// port, its data under a temporary directory), so that stopping it does
/// not disturb other tests using the machine's broker.
pub struct PrivateBroker {
    pub port: u16,
    dir: std::path::PathBuf,
    env: Vec<(String, String)>,
}

impl PrivateBroker {
    pub fn start() -> PrivateBroker {
        let port = crate::common::free_port();
        let dist = crate::common::free_port();
        let dir = std::env::temp_dir().join(format!("lunasip-rmq-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("broker dir");
        // The server drops to the rabbitmq user; its data must be its own.
        let _ = std::process::Command::new("chown")
            .args(["-R", "rabbitmq"])
            .arg(&dir)
            .status();
        let d = dir.display();
        // Its own config: the machine's names the machine's port.
        let conf = dir.join("rabbitmq.conf");
        std::fs::write(&conf, format!("listeners.tcp.local = 127.0.0.1:{port}\n"))
            .expect("broker config");
        let env = vec![
            ("RABBITMQ_CONFIG_FILE".into(), format!("{d}/rabbitmq.conf")),
            (
                "RABBITMQ_NODENAME".into(),
                format!("lunasip{port}@localhost"),
            ),
            ("RABBITMQ_NODE_PORT".into(), port.to_string()),
            ("RABBITMQ_DIST_PORT".into(), dist.to_string()),
            ("RABBITMQ_MNESIA_BASE".into(), format!("{d}/mnesia")),
            ("RABBITMQ_LOG_BASE".into(), format!("{d}/log")),
            ("RABBITMQ_PID_FILE".into(), format!("{d}/pid")),
        ];
        let b = PrivateBroker { port, dir, env };
        b.up();
        b
    }

    /// Starts the node and waits for its AMQP port.
    pub fn up(&self) {
        let st = std::process::Command::new("rabbitmq-server")
            .arg("-detached")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("rabbitmq-server (Debian's rabbitmq-server package)");
        assert!(st.success(), "rabbitmq-server -detached: {st}");
        assert!(
            self.wait_port(true),
            "private broker on {} did not start",
            self.port
        );
    }

    /// Stops the node (SIGTERM to the Erlang VM) and waits for its port to
    /// close.
    pub fn down(&self) {
        let pid = std::fs::read_to_string(self.dir.join("pid")).unwrap_or_default();
        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
        assert!(
            self.wait_port(false),
            "private broker on {} did not stop",
            self.port
        );
    }

    fn wait_port(&self, open: bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let is = std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok();
            if is == open {
                return true;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        false
    }

    pub fn uri(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.dir.join("pid")).unwrap_or_default();
        let _ = std::process::Command::new("kill")
            .args(["-9", pid.trim()])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

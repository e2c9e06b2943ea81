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
    /// Declares the queue `key` and binds it to `amq.direct` with `key`.
    pub fn bind(key: &str) -> Consumer {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let (conn, ch) = rt.block_on(async {
            let props = ConnectionProperties::default()
                .with_executor(tokio_executor_trait::Tokio::current())
                .with_reactor(tokio_reactor_trait::Tokio::current());
            let conn = Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", props)
                .await
                .expect("RabbitMQ at 127.0.0.1:5672");
            let ch = conn.create_channel().await.expect("channel");
            let opts = QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
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

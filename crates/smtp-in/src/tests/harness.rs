//! A server with the embedded default configuration (edited per test), an empty registry and a
//! spool in a temporary folder; clients talk to a session over an in-memory stream.

use std::sync::Arc;

use postern_config::Config;
use postern_mailmsg::{MailMsg, QueueIdGenerator};
use postern_queue::{Spool, SpoolOptions};
use postern_sink_host::{Catalog, Host};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::{End, Server};

pub(super) struct Harness {
    pub(super) server: Arc<Server>,
    /// Messages the sessions accepted, in order.
    pub(super) accepted: mpsc::Receiver<MailMsg>,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// The embedded default with `edit` applied, its data folder a fresh temporary one.
    pub(super) async fn new(edit: impl FnOnce(&mut Config)) -> Harness {
        Self::build(edit, false).await
    }

    /// As [`Harness::new`], with STARTTLS on the self-signed default certificate.
    pub(super) async fn with_tls(edit: impl FnOnce(&mut Config)) -> Harness {
        Self::build(edit, true).await
    }

    async fn build(edit: impl FnOnce(&mut Config), tls: bool) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::embedded_default();
        config.data_dir = dir.path().join("data");
        config.hostname = "mx.test".into();
        config.bindings_file = config.data_dir.join("bindings.toml");
        edit(&mut config);
        let host = Host::load(&config.bindings_file, Catalog::new()).unwrap();
        let (spool, _) = Spool::open(&config.data_dir.join("queue"), SpoolOptions::default())
            .await
            .unwrap();
        let (stop, shutdown) = watch::channel(false);
        let (inbox, accepted) = mpsc::channel(64);
        let server = Server::new(
            Arc::new(config),
            Arc::new(host),
            spool,
            Arc::new(QueueIdGenerator::new(1)),
            shutdown,
            inbox,
        );
        let server = if tls {
            let tls = crate::Tls::load(&server.config).unwrap();
            server.with_tls(Arc::new(tls))
        } else {
            server
        };
        Harness {
            server: Arc::new(server),
            accepted,
            _stop: stop,
            _dir: dir,
        }
    }

    /// A client whose greeting has been read, and the session's task.
    pub(super) async fn connect(&self) -> (Client, JoinHandle<End>) {
        let (ours, theirs) = tokio::io::duplex(256 * 1024);
        let server = self.server.clone();
        let remote = "192.0.2.7:40000".parse().unwrap();
        let local = "192.0.2.1:25".parse().unwrap();
        let session = tokio::spawn(crate::session::run(server, theirs, remote, local));
        let (read, write) = tokio::io::split(ours);
        let mut client = Client {
            read: BufReader::new(read),
            write,
        };
        assert_eq!(client.reply().await.0, 220);
        (client, session)
    }
}

/// The client end of a session.
pub(super) struct Client {
    read: BufReader<ReadHalf<DuplexStream>>,
    pub(super) write: WriteHalf<DuplexStream>,
}

impl Client {
    /// Sends bytes as they are.
    pub(super) async fn send_raw(&mut self, bytes: &[u8]) {
        self.write.write_all(bytes).await.unwrap();
    }

    /// Sends a command line (CRLF added).
    pub(super) async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    /// Reads one reply: its code and its lines joined by newlines. Code 0 when the session
    /// closed the stream.
    pub(super) async fn reply(&mut self) -> (u16, String) {
        let mut text = Vec::new();
        loop {
            let mut line = String::new();
            if self.read.read_line(&mut line).await.unwrap() == 0 {
                return (0, text.join("\n"));
            }
            let line = line.trim_end();
            let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            let last = line.as_bytes().get(3) != Some(&b'-');
            text.push(line.to_owned());
            if last {
                return (code, text.join("\n"));
            }
        }
    }

    /// Sends a line and checks that the reply starts with `want` (a code, with or without an
    /// enhanced code).
    pub(super) async fn expect(&mut self, line: &str, want: &str) {
        self.send(line).await;
        let (_, text) = self.reply().await;
        let last = text.lines().last().unwrap_or("");
        assert!(
            last.starts_with(want),
            "{line:?}: wanted {want:?}, got {text:?}"
        );
    }

    /// Runs a transcript: each line sent and the start of the reply it must get.
    pub(super) async fn transcript(&mut self, steps: &[(&str, &str)]) {
        for (line, want) in steps {
            self.expect(line, want).await;
        }
    }
}

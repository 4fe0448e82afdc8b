//! The SMTP server's families: connections, sessions, commands by verb, replies by class.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Verbs counted by name; anything else counts as `other`, so a client cannot grow the label set.
const VERBS: [&str; 14] = [
    "EHLO", "HELO", "LHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "QUIT", "VRFY", "HELP",
    "AUTH", "STARTTLS",
];

type Labels = [(&'static str, &'static str); 1];

/// The SMTP counters.
#[derive(Debug, Default)]
pub(crate) struct Smtp {
    pub(crate) connections: Counter,
    pub(crate) open: Gauge,
    pub(crate) sessions: Counter,
    commands: Family<Labels, Counter>,
    replies: Family<Labels, Counter>,
}

impl Smtp {
    pub(crate) fn register(&self, registry: &mut Registry) {
        registry.register(
            "postern_smtp_connections",
            "SMTP connections accepted",
            self.connections.clone(),
        );
        registry.register(
            "postern_smtp_connections_open",
            "SMTP connections open now",
            self.open.clone(),
        );
        registry.register(
            "postern_smtp_sessions",
            "SMTP sessions that got a greeting",
            self.sessions.clone(),
        );
        registry.register(
            "postern_smtp_commands",
            "SMTP commands received, by verb",
            self.commands.clone(),
        );
        registry.register(
            "postern_smtp_replies",
            "SMTP replies sent, by class (2xx, 3xx, 4xx, 5xx)",
            self.replies.clone(),
        );
    }

    pub(crate) fn command(&self, verb: &str) {
        let verb = VERBS
            .iter()
            .find(|v| v.eq_ignore_ascii_case(verb))
            .copied()
            .unwrap_or("other");
        self.commands.get_or_create(&[("verb", verb)]).inc();
    }

    pub(crate) fn reply(&self, code: u16) {
        let class = match code / 100 {
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        };
        self.replies.get_or_create(&[("class", class)]).inc();
    }
}

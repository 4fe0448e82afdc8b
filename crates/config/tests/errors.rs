//! Every kind of configuration error names the right file, line and field.

use std::path::PathBuf;

use postern_config::{Config, ConfigError, Source};

/// A listener and a local domain, so that a case only adds what it is about.
const BASE: &str = "[[listener]]\naddress = \"127.0.0.1:2525\"\n\n[[domain]]\nname = \"localhost\"\nusers = \"*\"\n";

/// The line of `BASE` after which a case's own text starts.
const BASE_LINES: usize = 6;

/// Where a case's text goes.
#[derive(Clone, Copy)]
enum Placement {
    /// After `BASE`, inside its last table.
    After,
    /// Before `BASE`, for top-level keys.
    Before,
    /// Without `BASE`.
    Alone,
}

struct Case {
    name: &'static str,
    text: &'static str,
    placement: Placement,
    /// Line within `text` (from 1), column, field, and a piece of the message.
    want: (usize, usize, &'static str, &'static str),
}

const fn case(
    name: &'static str,
    text: &'static str,
    want: (usize, usize, &'static str, &'static str),
) -> Case {
    Case {
        name,
        text,
        placement: Placement::After,
        want,
    }
}

const fn top(
    name: &'static str,
    text: &'static str,
    want: (usize, usize, &'static str, &'static str),
) -> Case {
    Case {
        placement: Placement::Before,
        ..case(name, text, want)
    }
}

const fn alone(
    name: &'static str,
    text: &'static str,
    want: (usize, usize, &'static str, &'static str),
) -> Case {
    Case {
        placement: Placement::Alone,
        ..case(name, text, want)
    }
}

const CASES: &[Case] = &[
    case(
        "auth: allow_plaintext not a boolean",
        "[auth]\nallow_plaintext = \"yes\"\n",
        (2, 19, "auth.allow_plaintext", "boolean"),
    ),
    case(
        "auth: zero failures",
        "[auth]\nmax_failures = 0\n",
        (2, 16, "auth.max_failures", "between 1 and"),
    ),
    case(
        "auth: lockout without a unit",
        "[auth]\nlockout = \"15\"\n",
        (2, 11, "auth.lockout", "missing unit"),
    ),
    case(
        "limits: negative message rate",
        "[limits]\nmessage_rate_per_ip = -1\n",
        (2, 23, "limits.message_rate_per_ip", "count per minute"),
    ),
    case(
        "limits: greeting delay not a duration",
        "[limits]\ngreeting_delay = \"soon\"\n",
        (2, 18, "limits.greeting_delay", "invalid duration"),
    ),
    case(
        "queue: percentage over 100",
        "[queue]\ndisk_reserve = \"150%\"\n",
        (2, 16, "queue.disk_reserve", "from 0 to 100"),
    ),
    case(
        "queue: reserve with an unknown unit",
        "[queue]\ndisk_reserve = \"1GB\"\n",
        (2, 16, "queue.disk_reserve", "unknown suffix `GB`"),
    ),
    case(
        "queue: segment too small",
        "[queue]\nsegment_size = \"1k\"\n",
        (2, 16, "queue.segment_size", "outside 64K..4G"),
    ),
    case(
        "queue: unknown key",
        "[queue]\nsegment = \"1M\"\n",
        (2, 1, "queue.segment", "unknown field"),
    ),
    case(
        "syntax: unquoted value",
        "[limits]\nmax_errors = ten\n",
        (2, 14, "limits.max_errors", "invalid TOML"),
    ),
    case(
        "syntax: value missing",
        "[limits]\ncommand_timeout =\n",
        (2, 18, "limits.command_timeout", "invalid TOML"),
    ),
    case(
        "syntax: unclosed header",
        "[limits\nmax_errors = 3\n",
        (1, 8, "limits", "invalid TOML"),
    ),
    case(
        "syntax: table defined twice",
        "[log]\n[log]\n",
        (2, 2, "log", "duplicate key"),
    ),
    case(
        "unknown key",
        "[limits]\nmax_recipents = 5\n",
        (
            2,
            1,
            "limits.max_recipents",
            "unknown field `max_recipents`",
        ),
    ),
    top(
        "unknown top-level key",
        "hostnme = \"mx.example.com\"\n",
        (1, 1, "hostnme", "unknown field `hostnme`"),
    ),
    case(
        "unknown table",
        "[limit]\n",
        (1, 2, "limit", "unknown field `limit`"),
    ),
    case(
        "unknown key in an array table",
        "[[route]]\ndomain = \"*\"\nsmarthost = \"relay.example.net\"\nport = 587\n",
        (4, 1, "route[0].port", "unknown field `port`"),
    ),
    case(
        "wrong type: string for a count",
        "[limits]\nmax_recipients = \"many\"\n",
        (2, 18, "limits.max_recipients", "expected an integer"),
    ),
    top(
        "wrong type: integer for a string",
        "hostname = 5\n",
        (1, 12, "hostname", "expected a string"),
    ),
    top(
        "wrong type: a table is an integer",
        "limits = 5\n",
        (1, 10, "limits", "expected a table"),
    ),
    case(
        "wrong type: networks not an array",
        "[relay]\nnetworks = \"10.0.0.0/8\"\n",
        (2, 12, "relay.networks", "expected an array"),
    ),
    case(
        "wrong type: a user is an integer",
        "[[domain]]\nname = \"example.org\"\nusers = [\"alice\", 7]\n",
        (3, 19, "domain[1].users[1]", "expected a string"),
    ),
    case(
        "wrong type: a duration is a float",
        "[limits]\ndata_timeout = 1.5\n",
        (2, 16, "limits.data_timeout", "invalid type"),
    ),
    case(
        "missing field",
        "[[route]]\ndomain = \"*\"\n",
        (1, 1, "route[0].smarthost", "missing field `smarthost`"),
    ),
    case(
        "bad CIDR",
        "[relay]\nnetworks = [\"10.0.0.0/8\", \"192.168.0.0/33\"]\n",
        (2, 27, "relay.networks[1]", "invalid network"),
    ),
    case(
        "bad duration",
        "[limits]\ncommand_timeout = \"5 minutes\"\n",
        (2, 19, "limits.command_timeout", "unknown unit `minutes`"),
    ),
    case(
        "duration without unit",
        "[limits]\ndata_timeout = \"600\"\n",
        (2, 16, "limits.data_timeout", "missing unit"),
    ),
    case(
        "zero duration",
        "[limits]\ncommand_timeout = 0\n",
        (2, 19, "limits.command_timeout", "greater than zero"),
    ),
    case(
        "bad size",
        "[limits]\nmax_message_size = \"25MB\"\n",
        (2, 20, "limits.max_message_size", "unknown suffix `MB`"),
    ),
    case(
        "zero size",
        "[limits]\nmax_message_size = 0\n",
        (2, 20, "limits.max_message_size", "greater than zero"),
    ),
    case(
        "zero limit",
        "[limits]\nmax_recipients = 0\n",
        (2, 18, "limits.max_recipients", "at least 1"),
    ),
    case(
        "negative limit",
        "[limits]\nmax_connections = -4\n",
        (2, 19, "limits.max_connections", "at least 1"),
    ),
    case(
        "limit too large",
        "[limits]\nmax_errors = 9999999999\n",
        (2, 14, "limits.max_errors", "too large"),
    ),
    case(
        "memory budget too small",
        "[limits]\nmemory_budget = \"16k\"\n",
        (2, 17, "limits.memory_budget", "at least \"64k\""),
    ),
    case(
        "memory budget not a size",
        "[limits]\nmemory_budget = \"plenty\"\n",
        (2, 17, "limits.memory_budget", "invalid size"),
    ),
    case(
        "spill threshold zero",
        "[limits]\nspill_threshold = 0\n",
        (2, 19, "limits.spill_threshold", "greater than zero"),
    ),
    case(
        "duplicate domain",
        "[[domain]]\nname = \"LocalHost\"\nusers = \"*\"\n",
        (
            2,
            8,
            "domain[1].name",
            "duplicate domain `localhost` (first on line 5)",
        ),
    ),
    case(
        "bad domain name",
        "[[domain]]\nname = \"exa mple.org\"\nusers = \"*\"\n",
        (2, 8, "domain[1].name", "invalid domain"),
    ),
    case(
        "users: empty string",
        "[[domain]]\nname = \"example.org\"\nusers = [\"alice\", \"\"]\n",
        (
            3,
            19,
            "domain[1].users[1]",
            "invalid local part \"\": empty",
        ),
    ),
    case(
        "users: empty list",
        "[[domain]]\nname = \"example.org\"\nusers = []\n",
        (3, 9, "domain[1].users", "empty list"),
    ),
    case(
        "users: a string other than *",
        "[[domain]]\nname = \"example.org\"\nusers = \"alice\"\n",
        (3, 9, "domain[1].users", "expected \"*\""),
    ),
    case(
        "users: missing",
        "[[domain]]\nname = \"example.org\"\n",
        (1, 1, "domain[1].users", "missing field `users`"),
    ),
    case(
        "bad smarthost: bare IPv6",
        "[[route]]\ndomain = \"*\"\nsmarthost = \"2001:db8::1:25\"\n",
        (3, 13, "route[0].smarthost", "in brackets"),
    ),
    case(
        "bad smarthost: port",
        "[[route]]\ndomain = \"*\"\nsmarthost = \"relay.example.net:99999\"\n",
        (3, 13, "route[0].smarthost", "port"),
    ),
    case(
        "bad route pattern",
        "[[route]]\ndomain = \"ex*.org\"\nsmarthost = \"relay.example.net\"\n",
        (2, 10, "route[0].domain", "invalid domain pattern"),
    ),
    case(
        "duplicate route",
        "[[route]]\ndomain = \"*\"\nsmarthost = \"a.example\"\n[[route]]\ndomain = \"*\"\nsmarthost = \"b.example\"\n",
        (5, 10, "route[1].domain", "duplicate route for `*`"),
    ),
    case(
        "route for a local domain",
        "[[route]]\ndomain = \"localhost\"\nsmarthost = \"relay.example.net\"\n",
        (2, 10, "route[0].domain", "local domain"),
    ),
    case(
        "bad listener address",
        "[[listener]]\naddress = \"localhost:25\"\n",
        (2, 11, "listener[1].address", "invalid socket address"),
    ),
    case(
        "duplicate listener",
        "[[listener]]\naddress = \"127.0.0.1:2525\"\n",
        (2, 11, "listener[1].address", "duplicate listener"),
    ),
    case(
        "unknown listener mode",
        "[[listener]]\naddress = \"127.0.0.1:587\"\nmode = \"smtps\"\n",
        (3, 8, "listener[1].mode", "unknown listener mode \"smtps\""),
    ),
    case(
        "tls certificate without its key",
        "[tls]\ncertificate = \"cert.pem\"\n",
        (2, 15, "tls.key", "needs its private key"),
    ),
    case(
        "tls key without its certificate",
        "[tls]\nkey = \"key.pem\"\n",
        (2, 7, "tls.certificate", "needs its certificate"),
    ),
    case(
        "empty tls certificate",
        "[tls]\ncertificate = \"\"\nkey = \"key.pem\"\n",
        (2, 15, "tls.certificate", "must not be empty"),
    ),
    top(
        "bad host name",
        "hostname = \"mx_1.example\"\n",
        (1, 12, "hostname", "invalid host name"),
    ),
    top(
        "empty data_dir",
        "data_dir = \"\"\n",
        (1, 12, "data_dir", "must not be empty"),
    ),
    case(
        "bad log format",
        "[log]\nformat = \"xml\"\n",
        (2, 10, "log.format", "\"text\" or \"json\""),
    ),
    case(
        "log level that tracing cannot read",
        "[log]\nlevel = \"nonsense=[[[\"\n",
        (2, 9, "log.level", "invalid log level"),
    ),
    case(
        "decision log size not a size",
        "[log]\ndecisions_max_size = \"big\"\n",
        (2, 22, "log.decisions_max_size", ""),
    ),
    case(
        "negative decision log count",
        "[log]\ndecisions_keep = -1\n",
        (2, 18, "log.decisions_keep", "from 0 to 1000"),
    ),
    case(
        "empty bindings file",
        "[bindings]\nfile = \"\"\n",
        (2, 8, "bindings.file", "must not be empty"),
    ),
    case(
        "dns server not an address",
        "[dns]\nservers = [\"ns.example\"]\n",
        (2, 12, "dns.servers[0]", "invalid DNS server"),
    ),
    case(
        "smtp port out of range",
        "[delivery]\nsmtp_port = 70000\n",
        (2, 13, "delivery.smtp_port", "invalid port"),
    ),
    case(
        "retry interval without unit",
        "[delivery]\nretry_intervals = [\"5m\", \"10\"]\n",
        (2, 26, "delivery.retry_intervals[1]", "missing unit"),
    ),
    case(
        "no retry interval",
        "[delivery]\nretry_intervals = []\n",
        (2, 19, "delivery.retry_intervals", "at least one"),
    ),
    case(
        "zero max age",
        "[delivery]\nmax_age = \"0s\"\n",
        (2, 11, "delivery.max_age", "greater than zero"),
    ),
    case(
        "route tls policy unknown",
        "[[route]]\ndomain = \"*\"\nsmarthost = \"relay.example\"\ntls = \"always\"\n",
        (4, 7, "route[0].tls", "\"opportunistic\" or \"required\""),
    ),
    alone(
        "no listener at all",
        "[[domain]]\nname = \"localhost\"\nusers = \"*\"\n",
        (1, 1, "listener", "no listener"),
    ),
    alone(
        "empty listener list",
        "listener = []\n",
        (1, 12, "listener", "no listener"),
    ),
];

#[test]
fn each_error_names_its_line_and_field() {
    for case in CASES {
        let (text, offset) = match case.placement {
            Placement::After => (format!("{BASE}{}", case.text), BASE_LINES),
            Placement::Before => (format!("{}{BASE}", case.text), 0),
            Placement::Alone => (case.text.to_owned(), 0),
        };
        let origin = Source::File(PathBuf::from("postern.toml"));
        let errors = match Config::parse(&text, origin.clone()) {
            Ok(_) => panic!("case {}: parsed without error", case.name),
            Err(errors) => errors.into_vec(),
        };
        let (line, column, field, message) = case.want;
        assert_eq!(errors.len(), 1, "case {}: {errors:?}", case.name);
        let error = &errors[0];
        assert_eq!(error.origin, origin, "case {}", case.name);
        let position = error.position.expect("a parse error has a position");
        assert_eq!(
            (position.line, position.column, error.field.as_deref()),
            (line + offset, column, Some(field)),
            "case {}: {error}",
            case.name
        );
        assert!(
            error.message.contains(message),
            "case {}: {:?} does not contain {message:?}",
            case.name,
            error.message
        );
        let shown = error.to_string();
        let prefix = format!("postern.toml:{}:{column}: field `{field}`: ", line + offset);
        assert!(shown.starts_with(&prefix), "case {}: {shown}", case.name);
    }
}

#[test]
fn validation_reports_every_problem() {
    let text = "[[listener]]\naddress = \"nowhere\"\n\
                [[domain]]\nname = \"a..b\"\nusers = [\"\"]\n\
                [relay]\nnetworks = [\"x\", \"10.0.0.0/8\", \"y\"]\n\
                [limits]\nmax_errors = 0\ncommand_timeout = \"soon\"\n";
    let errors = Config::parse(text, Source::Embedded).expect_err("invalid");
    let fields: Vec<_> = errors
        .errors()
        .iter()
        .map(|e: &ConfigError| e.field.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        fields,
        [
            "listener[0].address",
            "domain[0].users[0]",
            "domain[0].name",
            "relay.networks[0]",
            "relay.networks[2]",
            "limits.max_errors",
            "limits.command_timeout",
        ]
    );
    let shown = errors.to_string();
    assert_eq!(shown.lines().count(), 7, "{shown}");
    assert!(
        shown.starts_with("<embedded default>:2:11: field `listener[0].address`: "),
        "{shown}"
    );
}

#[test]
fn load_of_a_missing_file_names_the_file() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("absent.toml");
    let errors = Config::load(&path).expect_err("the file does not exist");
    let [error] = errors.errors() else {
        panic!("one error wanted: {errors:?}");
    };
    assert_eq!(error.origin, Source::File(path.clone()));
    assert!(error.position.is_none() && error.field.is_none());
    let shown = error.to_string();
    assert!(
        shown.starts_with(&format!("{}: cannot read", path.display())),
        "{shown}"
    );
}

//! Parsing valid configurations, the lookups the server makes, and command-line overrides.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use postern_config::{
    Auth, Config, Delivery, DiskReserve, Dns, DomainPattern, EMBEDDED, HopProtocol, Limits,
    Listener, ListenerMode, LocalDomain, Log, LogFormat, Overrides, Position, Queue, Route,
    RouteTls, Source, Tls, TlsFiles, Users,
};

const FULL: &str = r#"
hostname = "mx.example.com"
data_dir = "/var/lib/postern"

[[listener]]
address = "0.0.0.0:25"

[[listener]]
address = "[::]:587"
mode = "submission"

[[domain]]
name = "Example.COM"
users = ["Alice", "bob"]

[[domain]]
name = "localhost"
users = "*"

[relay]
networks = ["192.168.0.0/16", "::1/128", "10.1.2.3"]

[[route]]
domain = "*"
smarthost = "relay.example.net:587"

[[route]]
domain = "example.org"
smarthost = "[192.0.2.7]"

[[route]]
domain = "*.example.org"
smarthost = "[2001:db8::25]:2525"

[[route]]
domain = "*.eu.example.org"
smarthost = "eu-relay.example.net"
tls = "required"
ca_file = "relay-ca.pem"

[dns]
servers = ["127.0.0.1:5353", "::1"]

[delivery]
smtp_port = 2526
retry_intervals = ["30s", "2m", 600]
max_age = "2d"
delay_warning = "0"
connections_per_host = 4
idle_connection_time = "0s"

[limits]
max_message_size = "10M"
max_recipients = 50
max_errors = 3
command_timeout = "250ms"
data_timeout = 120
max_connections = 500
max_connections_per_ip = 20
shutdown_grace = "0s"
memory_budget = "1G"
spill_threshold = "256k"
message_rate_per_ip = 30
recipient_rate_per_ip = 120
message_rate_per_user = 10
recipient_rate_per_user = 40
greeting_delay = "2s"

[bindings]
file = "/etc/postern/bindings.toml"

[log]
format = "json"
level = "postern_smtp_in=debug,info"

[auth]
allow_plaintext = true
max_failures = 3
failure_delay = "200ms"
lockout = "10m"

[queue]
segment_size = "8MiB"
disk_reserve = "7%"

[tls]
certificate = "/etc/postern/cert.pem"
key = "tls/key.pem"
"#;

/// The position of the first `needle` in `text`.
fn position_of(text: &str, needle: &str) -> Position {
    let offset = text.find(needle).expect("needle");
    let before = &text[..offset];
    Position {
        line: before.matches('\n').count() + 1,
        column: before.len() - before.rfind('\n').map_or(0, |n| n + 1) + 1,
    }
}

fn full() -> Config {
    Config::parse(FULL, Source::File(PathBuf::from("postern.toml"))).expect("FULL is valid")
}

fn route(domain: DomainPattern, host: &str, port: u16) -> Route {
    Route {
        domain,
        host: host.to_owned(),
        port,
        protocol: HopProtocol::Smtp,
        tls: RouteTls::Opportunistic,
        ca_file: None,
    }
}

#[test]
fn full_example_parses_to_the_expected_values() {
    let users = |names: &[&str]| Users::List(names.iter().map(|n| n.to_string()).collect());
    let want = Config {
        hostname: "mx.example.com".to_owned(),
        data_dir: PathBuf::from("/var/lib/postern"),
        listeners: vec![
            Listener {
                address: "0.0.0.0:25".parse().expect("address"),
                mode: ListenerMode::Smtp,
            },
            Listener {
                address: "[::]:587".parse().expect("address"),
                mode: ListenerMode::Submission,
            },
        ],
        domains: vec![
            LocalDomain {
                name: "example.com".to_owned(),
                users: users(&["alice", "bob"]),
                aliases: None,
                recipient_delimiter: "+".to_owned(),
            },
            LocalDomain {
                name: "localhost".to_owned(),
                users: Users::Any,
                aliases: None,
                recipient_delimiter: "+".to_owned(),
            },
        ],
        relay_networks: ["192.168.0.0/16", "::1/128", "10.1.2.3/32"]
            .iter()
            .map(|n| n.parse().expect("network"))
            .collect(),
        routes: vec![
            route(DomainPattern::Any, "relay.example.net", 587),
            route(DomainPattern::Exact("example.org".into()), "192.0.2.7", 25),
            route(
                DomainPattern::Subdomains("example.org".into()),
                "2001:db8::25",
                2525,
            ),
            Route {
                tls: RouteTls::Required,
                ca_file: Some(PathBuf::from("relay-ca.pem")),
                ..route(
                    DomainPattern::Subdomains("eu.example.org".into()),
                    "eu-relay.example.net",
                    25,
                )
            },
        ],
        limits: Limits {
            max_message_size: 10 << 20,
            max_recipients: 50,
            max_errors: 3,
            command_timeout: Duration::from_millis(250),
            data_timeout: Duration::from_secs(120),
            max_connections: 500,
            max_connections_per_ip: 20,
            shutdown_grace: Duration::ZERO,
            memory_budget: 1 << 30,
            spill_threshold: 256 << 10,
            message_rate_per_ip: Some(30),
            recipient_rate_per_ip: Some(120),
            message_rate_per_user: Some(10),
            recipient_rate_per_user: Some(40),
            greeting_delay: Duration::from_secs(2),
        },
        bindings_file: PathBuf::from("/etc/postern/bindings.toml"),
        log: Log {
            format: LogFormat::Json,
            level: "postern_smtp_in=debug,info".to_owned(),
            decisions_max_size: 64 << 20,
            decisions_keep: 5,
        },
        dns: Dns {
            servers: vec![
                "127.0.0.1:5353".parse().expect("address"),
                "[::1]:53".parse().expect("address"),
            ],
        },
        delivery: Delivery {
            smtp_port: 2526,
            retry_intervals: vec![
                Duration::from_secs(30),
                Duration::from_secs(120),
                Duration::from_secs(600),
            ],
            max_age: Duration::from_secs(2 * 86_400),
            delay_warning: None,
            connections_per_host: 4,
            idle_connection_time: Duration::ZERO,
        },
        queue: Queue {
            segment_size: 8 << 20,
            disk_reserve: Some(DiskReserve::Percent(7)),
        },
        tls: Tls {
            files: Some(TlsFiles {
                certificate: PathBuf::from("/etc/postern/cert.pem"),
                key: PathBuf::from("tls/key.pem"),
                certificate_at: position_of(FULL, "\"/etc/postern/cert.pem\""),
                key_at: position_of(FULL, "\"tls/key.pem\""),
            }),
        },
        auth: Auth {
            allow_plaintext: true,
            max_failures: 3,
            failure_delay: Duration::from_millis(200),
            lockout: Duration::from_secs(600),
        },
        categorizer: postern_config::Categorizer::default(),
        admin: postern_config::Admin::default(),
        source: Source::File(PathBuf::from("postern.toml")),
    };
    assert_eq!(full(), want);
    assert_eq!(
        want.tls_files(),
        Some((
            PathBuf::from("/etc/postern/cert.pem"),
            PathBuf::from("/var/lib/postern/tls/key.pem")
        ))
    );
}

#[test]
fn embedded_default_parses() {
    let config = Config::embedded_default();
    assert_eq!(config.source, Source::Embedded);
    assert!(!config.hostname.is_empty());
    assert_eq!(config.data_dir, Path::new("postern-data"));
    assert_eq!(
        config.listeners,
        [Listener {
            address: SocketAddr::from(([127, 0, 0, 1], 2525)),
            mode: ListenerMode::Smtp,
        }]
    );
    assert_eq!(
        config.domains,
        [LocalDomain {
            name: "localhost".to_owned(),
            users: Users::Any,
            aliases: None,
            recipient_delimiter: "+".to_owned(),
        }]
    );
    assert!(config.relay_networks.is_empty());
    assert!(config.routes.is_empty());
    assert_eq!(config.limits, Limits::default());
    assert_eq!(
        config.bindings_file,
        Path::new("postern-data/bindings.toml")
    );
    assert_eq!(config.log, Log::default());
    assert_eq!(config.queue, Queue::default());
    assert_eq!(config.queue.segment_size, 32 << 20);
    assert_eq!(Config::parse(EMBEDDED, Source::Embedded), Ok(config));
}

#[test]
fn defaults_fill_what_is_left_out() {
    let text = "[[listener]]\naddress = \"127.0.0.1:25\"\n";
    let config = Config::parse(text, Source::Embedded).expect("valid");
    let limits = Limits::default();
    assert_eq!(limits.max_message_size, 26_214_400);
    assert_eq!(limits.max_recipients, 100);
    assert_eq!(limits.max_errors, 10);
    assert_eq!(limits.command_timeout, Duration::from_secs(300));
    assert_eq!(limits.data_timeout, Duration::from_secs(600));
    assert_eq!(limits.max_connections, 10_000);
    assert_eq!(limits.max_connections_per_ip, 200);
    assert_eq!(limits.shutdown_grace, Duration::from_secs(30));
    assert_eq!(limits.memory_budget, 512 << 20);
    assert_eq!(limits.spill_threshold, 1 << 20);
    assert_eq!(config.limits, limits);
    assert!(config.domains.is_empty());
    assert_eq!(
        config.bindings_file,
        Path::new("postern-data/bindings.toml")
    );
    assert_eq!(config.log.format, LogFormat::Text);
    assert_eq!(config.log.level, "info");
    assert_eq!(config.log.decisions_max_size, 64 << 20);
    assert_eq!(config.log.decisions_keep, 5);
}

#[test]
fn local_domain_and_accepts() {
    let config = full();
    let cases: &[(&str, &str, &str, Option<bool>)] = &[
        ("listed user", "example.com", "alice", Some(true)),
        (
            "listed user, other case",
            "EXAMPLE.com",
            "ALICE",
            Some(true),
        ),
        ("unlisted user", "example.com", "carol", Some(false)),
        ("any user", "localhost", "whoever", Some(true)),
        ("trailing dot", "example.com.", "bob", Some(true)),
        ("not local", "example.org", "alice", None),
        ("subdomain is not local", "mail.example.com", "alice", None),
    ];
    for (name, domain, user, want) in cases {
        let got = config.local_domain(domain).map(|d| d.accepts(user));
        assert_eq!(got, *want, "case {name}");
    }
}

#[test]
fn is_relay_client() {
    let config = full();
    let cases: &[(&str, &str, bool)] = &[
        ("inside an IPv4 network", "192.168.4.20", true),
        ("outside", "192.0.2.1", false),
        ("single address", "10.1.2.3", true),
        ("next to the single address", "10.1.2.4", false),
        ("IPv6 loopback", "::1", true),
        ("other IPv6", "2001:db8::1", false),
        ("IPv4-mapped IPv6 inside", "::ffff:192.168.1.1", true),
        ("IPv4-mapped IPv6 outside", "::ffff:192.0.2.1", false),
    ];
    for (name, ip, want) in cases {
        let ip: IpAddr = ip.parse().expect("address");
        assert_eq!(config.is_relay_client(ip), *want, "case {name}");
    }
    assert!(!Config::embedded_default().is_relay_client("127.0.0.1".parse().expect("address")));
}

#[test]
fn route_for() {
    let config = full();
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("exact before *", "example.org", Some("192.0.2.7")),
        ("exact, other case", "EXAMPLE.ORG", Some("192.0.2.7")),
        ("subdomain", "mail.example.org", Some("2001:db8::25")),
        (
            "longest parent wins",
            "mx.eu.example.org",
            Some("eu-relay.example.net"),
        ),
        (
            "the parent itself is exact",
            "eu.example.org",
            Some("2001:db8::25"),
        ),
        (
            "anything else takes *",
            "example.net",
            Some("relay.example.net"),
        ),
        (
            "look-alike is not a subdomain",
            "badexample.org",
            Some("relay.example.net"),
        ),
        ("local domain never routes", "example.com", None),
    ];
    for (name, domain, want) in cases {
        let got = config.route_for(domain).map(|r| r.host.as_str());
        assert_eq!(got, *want, "case {name}");
    }
    let no_star = Config::parse(
        "[[listener]]\naddress = \"127.0.0.1:25\"\n\
         [[route]]\ndomain = \"*.example.org\"\nsmarthost = \"relay.example.net\"\n",
        Source::Embedded,
    )
    .expect("valid");
    assert!(no_star.route_for("example.net").is_none());
    assert!(no_star.route_for("example.org").is_none());
}

#[test]
fn domain_pattern_matches() {
    let sub = DomainPattern::Subdomains("example.org".into());
    let exact = DomainPattern::Exact("example.org".into());
    let cases: &[(&str, &DomainPattern, &str, bool)] = &[
        ("any", &DomainPattern::Any, "whatever.example", true),
        ("exact", &exact, "Example.Org", true),
        ("exact is not a subdomain", &exact, "a.example.org", false),
        ("subdomain", &sub, "a.b.EXAMPLE.org", true),
        ("parent is not its subdomain", &sub, "example.org", false),
        ("suffix without a dot", &sub, "xexample.org", false),
        ("empty label", &sub, ".example.org", false),
        (
            "non-ASCII input does not panic",
            &sub,
            "é.example.org",
            true,
        ),
        ("non-ASCII look-alike", &exact, "exämple.org", false),
    ];
    for (name, pattern, domain, want) in cases {
        assert_eq!(pattern.matches(domain), *want, "case {name}");
    }
}

#[test]
fn overrides() {
    let relative = Config::embedded_default();
    let absolute = full();
    let listen: Vec<SocketAddr> = vec!["[::1]:2626".parse().expect("address")];
    struct Case<'a> {
        name: &'a str,
        config: &'a Config,
        overrides: Overrides,
        data_dir: &'a str,
        bindings_file: &'a str,
        listeners: Vec<SocketAddr>,
        hostname: &'a str,
    }
    let cases = [
        Case {
            name: "nothing",
            config: &relative,
            overrides: Overrides::default(),
            data_dir: "postern-data",
            bindings_file: "postern-data/bindings.toml",
            listeners: vec![SocketAddr::from(([127, 0, 0, 1], 2525))],
            hostname: &relative.hostname,
        },
        Case {
            name: "relative bindings follow the data folder",
            config: &relative,
            overrides: Overrides {
                data_dir: Some(PathBuf::from("/srv/mail")),
                listen: listen.clone(),
                hostname: Some("mx.example.net".into()),
                ..Overrides::default()
            },
            data_dir: "/srv/mail",
            bindings_file: "/srv/mail/bindings.toml",
            listeners: listen.clone(),
            hostname: "mx.example.net",
        },
        Case {
            name: "absolute bindings outside the data folder stay",
            config: &absolute,
            overrides: Overrides {
                data_dir: Some(PathBuf::from("elsewhere")),
                ..Overrides::default()
            },
            data_dir: "elsewhere",
            bindings_file: "/etc/postern/bindings.toml",
            listeners: absolute.listeners.iter().map(|l| l.address).collect(),
            hostname: "mx.example.com",
        },
    ];
    for case in cases {
        let mut config = case.config.clone();
        config
            .apply_overrides(&case.overrides)
            .unwrap_or_else(|e| panic!("case {}: {e}", case.name));
        assert_eq!(
            config.data_dir,
            Path::new(case.data_dir),
            "case {}",
            case.name
        );
        assert_eq!(
            config.bindings_file,
            Path::new(case.bindings_file),
            "case {}",
            case.name
        );
        let listeners: Vec<_> = config.listeners.iter().map(|l| l.address).collect();
        assert_eq!(listeners, case.listeners, "case {}", case.name);
        assert_eq!(config.hostname, case.hostname, "case {}", case.name);
    }
}

#[test]
fn load_reads_a_file_and_names_it_in_errors() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "[[listener]]\naddress = \"127.0.0.1:25\"\n").expect("write");
    let config = Config::load(&good).expect("valid file");
    assert_eq!(config.source, Source::File(good.clone()));

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[listener]]\naddress = \"127.0.0.1:25\"\n[limits]\nmax_errors = 0\n",
    )
    .expect("write");
    let errors = Config::load(&bad).expect_err("invalid file");
    assert_eq!(
        errors.to_string(),
        format!(
            "{}:4:14: field `limits.max_errors`: must be at least 1, not 0",
            bad.display()
        )
    );
}

#[test]
fn a_host_name_override_is_checked_like_the_file() {
    let mut config = Config::embedded_default();
    let before = config.clone();
    let overrides = Overrides {
        hostname: Some("bad name".into()),
        data_dir: Some(PathBuf::from("elsewhere")),
        ..Overrides::default()
    };
    let why = config.apply_overrides(&overrides).unwrap_err();
    assert!(why.contains("invalid host name \"bad name\""), "{why}");
    assert_eq!(config, before, "nothing applied");
}

#[test]
fn sizes_read_the_same_in_either_case() {
    assert_eq!(postern_config::parse_size("50m"), Ok(50 << 20));
    assert_eq!(postern_config::parse_size("50M"), Ok(50 << 20));
    let config = Config::parse(
        "[[listener]]\naddress = \"127.0.0.1:25\"\n[limits]\nmax_message_size = \"50m\"\n",
        Source::Embedded,
    )
    .expect("50m is a size");
    assert_eq!(config.limits.max_message_size, 50 << 20);
}

#[test]
fn disk_reserve_is_a_size_or_a_percentage() {
    let cases: &[(&str, DiskReserve)] = &[
        ("\"1GiB\"", DiskReserve::Octets(1 << 30)),
        ("\"500M\"", DiskReserve::Octets(500 << 20)),
        ("4096", DiskReserve::Octets(4096)),
        ("\"5%\"", DiskReserve::Percent(5)),
        ("\"100%\"", DiskReserve::Percent(100)),
        ("\"0%\"", DiskReserve::Percent(0)),
    ];
    for (value, want) in cases {
        let text =
            format!("[[listener]]\naddress = \"127.0.0.1:25\"\n[queue]\ndisk_reserve = {value}\n");
        let config = Config::parse(&text, Source::Embedded).expect(value);
        assert_eq!(config.queue.disk_reserve, Some(*want), "{value}");
    }
}

//! From the file as written to a [`Config`]: defaults filled in, every value checked, every
//! problem recorded with its field rather than stopping at the first.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use crate::error::Problems;
use crate::inbound::ListenerMode;
use crate::model::{
    Config, DiskReserve, DomainPattern, Limits, Listener, LocalDomain, Log, LogFormat, Queue,
    Route, Source, Users,
};
use crate::names;
use crate::raw::{
    RawBindings, RawConfig, RawDomain, RawLimits, RawListener, RawLog, RawQueue, RawUsers,
};
use crate::security::{any_duration, rate};
use crate::units::{self, Amount};

pub(crate) const DEFAULT_DATA_DIR: &str = "postern-data";
pub(crate) const DEFAULT_BINDINGS_FILE: &str = "bindings.toml";

/// Checks `raw` and builds the configuration. Values that fail a check are recorded in
/// `problems` and replaced by their default, so the result is only meaningful when `problems`
/// stays empty.
pub(crate) fn validate(raw: RawConfig, source: Source, problems: &mut Problems<'_>) -> Config {
    let hostname = match raw.hostname {
        Some(hostname) => {
            if let Err(why) = names::domain_syntax(hostname.get_ref()) {
                let message = format!("invalid host name {:?}: {why}", hostname.get_ref());
                problems.at(hostname.span(), "hostname", message);
            }
            hostname.into_inner()
        }
        None => system_hostname(),
    };
    let data_dir = match raw.data_dir {
        Some(dir) if dir.get_ref().is_empty() => {
            problems.at(dir.span(), "data_dir", "must not be empty");
            PathBuf::from(DEFAULT_DATA_DIR)
        }
        Some(dir) => PathBuf::from(dir.into_inner()),
        None => PathBuf::from(DEFAULT_DATA_DIR),
    };
    let listeners = listeners(raw.listener, problems);
    let categorizer = crate::categorize::categorizer(raw.categorizer, problems);
    let mut domains = domains(raw.domain, problems);
    crate::categorize::attach(&mut domains, &data_dir, &categorizer);
    let relay_networks = raw
        .relay
        .networks
        .iter()
        .enumerate()
        .filter_map(|(i, net)| {
            names::network(net.get_ref())
                .map_err(|why| problems.at(net.span(), format!("relay.networks[{i}]"), why))
                .ok()
        })
        .collect();
    let routes = routes(raw.route, &domains, problems);
    let limits = limits(raw.limits, problems);
    let bindings_file = data_dir.join(bindings_file(raw.bindings, problems));
    let log = log(raw.log, problems);
    let dns = crate::outbound::dns(raw.dns, problems);
    let delivery = crate::outbound::delivery(raw.delivery, problems);
    let queue = queue(raw.queue, problems);
    let tls = crate::inbound::tls(raw.tls, problems);
    let auth = crate::security::auth(raw.auth, problems);
    let admin = crate::admin::admin(raw.admin, problems);
    Config {
        hostname,
        data_dir,
        listeners,
        domains,
        relay_networks,
        routes,
        limits,
        bindings_file,
        log,
        dns,
        delivery,
        queue,
        tls,
        auth,
        categorizer,
        admin,
        source,
    }
}

/// The system's host name when it is a valid domain, else `localhost`.
pub(crate) fn system_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| names::domain_syntax(name).is_ok())
        .unwrap_or_else(|| "localhost".to_owned())
}

fn listeners(raw: Option<Spanned<Vec<RawListener>>>, problems: &mut Problems<'_>) -> Vec<Listener> {
    const NONE: &str = "no listener: add a [[listener]] table with an address such as \
                        \"127.0.0.1:2525\"";
    let Some(raw) = raw else {
        problems.at(0..0, "listener", NONE);
        return Vec::new();
    };
    if raw.get_ref().is_empty() {
        problems.at(raw.span(), "listener", NONE);
    }
    let mut seen: Vec<(SocketAddr, ListenerMode, Range<usize>)> = Vec::new();
    for (i, listener) in raw.into_inner().into_iter().enumerate() {
        let mode = crate::inbound::mode(listener.mode, i, problems);
        let field = format!("listener[{i}].address");
        let (text, span) = (listener.address.get_ref(), listener.address.span());
        match text.parse::<SocketAddr>() {
            Ok(address) => {
                // Port 0 asks the system for a free port: two of those never collide.
                let first = seen
                    .iter()
                    .find(|(other, _, _)| *other == address && address.port() != 0);
                if let Some((_, _, first)) = first {
                    let line = problems.line_of(first.start);
                    problems.at(
                        span,
                        field,
                        format!("duplicate listener {address} (first on line {line})"),
                    );
                } else {
                    seen.push((address, mode, span));
                }
            }
            Err(_) => problems.at(
                span,
                field,
                format!(
                    "invalid socket address {text:?}: expected IP:port, such as \
                     \"127.0.0.1:2525\" or \"[::1]:2525\""
                ),
            ),
        }
    }
    seen.into_iter()
        .map(|(address, mode, _)| Listener { address, mode })
        .collect()
}

fn domains(raw: Vec<RawDomain>, problems: &mut Problems<'_>) -> Vec<LocalDomain> {
    let mut domains: Vec<(LocalDomain, usize)> = Vec::new();
    for (i, domain) in raw.into_iter().enumerate() {
        let users = users(domain.users, i, problems);
        let field = format!("domain[{i}].name");
        let (text, span) = (domain.name.get_ref(), domain.name.span());
        let name = match names::domain(text) {
            Ok(name) => name,
            Err(why) => {
                problems.at(span, field, why);
                continue;
            }
        };
        if let Some((_, first)) = domains.iter().find(|(d, _)| d.name == name) {
            let line = problems.line_of(*first);
            problems.at(
                span,
                field,
                format!("duplicate domain `{name}` (first on line {line})"),
            );
            continue;
        }
        let aliases = crate::categorize::aliases_path(domain.aliases, i, problems);
        domains.push((
            LocalDomain {
                name,
                users,
                aliases,
                recipient_delimiter: String::new(),
            },
            span.start,
        ));
    }
    domains.into_iter().map(|(domain, _)| domain).collect()
}

fn users(raw: Spanned<RawUsers>, domain: usize, problems: &mut Problems<'_>) -> Users {
    let field = format!("domain[{domain}].users");
    let span = raw.span();
    match raw.into_inner() {
        RawUsers::Text(text) if text == "*" => Users::Any,
        RawUsers::Text(text) => {
            problems.at(
                span,
                field,
                format!(
                    "expected \"*\" or an array of local parts such as [\"alice\"], not {text:?}"
                ),
            );
            Users::Any
        }
        RawUsers::List(list) => {
            if list.is_empty() {
                problems.at(
                    span,
                    &field,
                    "an empty list accepts no one; write \"*\" to accept any local part",
                );
            }
            let mut users = std::collections::BTreeSet::new();
            for (j, user) in list.iter().enumerate() {
                match names::local_part(user.get_ref()) {
                    Ok(user) => {
                        users.insert(user);
                    }
                    Err(why) => problems.at(user.span(), format!("{field}[{j}]"), why),
                }
            }
            Users::List(users)
        }
    }
}

fn routes(
    raw: Vec<crate::raw::RawRoute>,
    domains: &[LocalDomain],
    problems: &mut Problems<'_>,
) -> Vec<Route> {
    let mut routes: Vec<(Route, usize)> = Vec::new();
    for (i, route) in raw.into_iter().enumerate() {
        let field = format!("route[{i}].domain");
        let span = route.domain.span();
        let pattern = names::domain_pattern(route.domain.get_ref())
            .map_err(|why| problems.at(span.clone(), &field, why));
        let smarthost = names::route_hop(route.smarthost.get_ref()).map_err(|why| {
            problems.at(route.smarthost.span(), format!("route[{i}].smarthost"), why)
        });
        let tls = crate::outbound::route_tls(route.tls, format!("route[{i}].tls"), problems);
        let ca_file = route.ca_file.map(|f| PathBuf::from(f.into_inner()));
        let (Ok(domain), Ok((host, port, protocol))) = (pattern, smarthost) else {
            continue;
        };
        if let Some((_, first)) = routes.iter().find(|(r, _)| r.domain == domain) {
            let line = problems.line_of(*first);
            problems.at(
                span,
                field,
                format!("duplicate route for `{domain}` (first on line {line})"),
            );
            continue;
        }
        if let DomainPattern::Exact(name) = &domain
            && domains.iter().any(|local| local.name == *name)
        {
            problems.at(
                span,
                field,
                format!("`{name}` is a local domain: its mail is delivered locally, never routed"),
            );
            continue;
        }
        routes.push((
            Route {
                domain,
                host,
                port,
                protocol,
                tls,
                ca_file,
            },
            span.start,
        ));
    }
    routes.into_iter().map(|(route, _)| route).collect()
}

fn limits(raw: RawLimits, problems: &mut Problems<'_>) -> Limits {
    let default = Limits::default();
    Limits {
        max_message_size: size(
            raw.max_message_size,
            "max_message_size",
            default.max_message_size,
            problems,
        ),
        max_recipients: count(
            raw.max_recipients,
            "max_recipients",
            default.max_recipients,
            problems,
        ),
        max_errors: count(raw.max_errors, "max_errors", default.max_errors, problems),
        command_timeout: duration(
            raw.command_timeout,
            "command_timeout",
            default.command_timeout,
            problems,
        ),
        data_timeout: duration(
            raw.data_timeout,
            "data_timeout",
            default.data_timeout,
            problems,
        ),
        max_connections: count(
            raw.max_connections,
            "max_connections",
            default.max_connections,
            problems,
        ),
        max_connections_per_ip: count(
            raw.max_connections_per_ip,
            "max_connections_per_ip",
            default.max_connections_per_ip,
            problems,
        ),
        // Zero is meaningful here: close at once without waiting.
        shutdown_grace: match raw.shutdown_grace {
            None => default.shutdown_grace,
            Some(raw) => units::duration(raw.get_ref()).unwrap_or_else(|why| {
                problems.at(raw.span(), "limits.shutdown_grace", why);
                default.shutdown_grace
            }),
        },
        memory_budget: memory_budget(raw.memory_budget, default.memory_budget, problems),
        spill_threshold: size(
            raw.spill_threshold,
            "spill_threshold",
            default.spill_threshold,
            problems,
        ),
        message_rate_per_ip: rate(raw.message_rate_per_ip, "message_rate_per_ip", problems),
        recipient_rate_per_ip: rate(raw.recipient_rate_per_ip, "recipient_rate_per_ip", problems),
        message_rate_per_user: rate(raw.message_rate_per_user, "message_rate_per_user", problems),
        recipient_rate_per_user: rate(
            raw.recipient_rate_per_user,
            "recipient_rate_per_user",
            problems,
        ),
        greeting_delay: any_duration(
            raw.greeting_delay,
            "limits.greeting_delay",
            default.greeting_delay,
            problems,
        ),
    }
}

/// The least memory budget: a few transfers must be able to start at once.
pub(crate) const MIN_MEMORY_BUDGET: u64 = 64 << 10;

/// The memory budget: a size of at least [`MIN_MEMORY_BUDGET`].
fn memory_budget(raw: Option<Spanned<Amount>>, default: u64, problems: &mut Problems<'_>) -> u64 {
    let Some(raw) = raw else { return default };
    match units::size(raw.get_ref()) {
        Ok(size) if size < MIN_MEMORY_BUDGET => problems.at(
            raw.span(),
            "limits.memory_budget",
            format!("must be at least \"64k\" ({MIN_MEMORY_BUDGET} octets), not {size}"),
        ),
        Ok(size) => return size,
        Err(why) => problems.at(raw.span(), "limits.memory_budget", why),
    }
    default
}

/// A size limit: positive.
fn size(
    raw: Option<Spanned<Amount>>,
    name: &str,
    default: u64,
    problems: &mut Problems<'_>,
) -> u64 {
    let Some(raw) = raw else { return default };
    match units::size(raw.get_ref()) {
        Ok(0) => problems.at(
            raw.span(),
            format!("limits.{name}"),
            "must be greater than zero",
        ),
        Ok(size) => return size,
        Err(why) => problems.at(raw.span(), format!("limits.{name}"), why),
    }
    default
}

/// A timeout: positive, or nothing would ever be waited for.
fn duration(
    raw: Option<Spanned<Amount>>,
    name: &str,
    default: Duration,
    problems: &mut Problems<'_>,
) -> Duration {
    let Some(raw) = raw else { return default };
    match units::duration(raw.get_ref()) {
        Ok(Duration::ZERO) => problems.at(
            raw.span(),
            format!("limits.{name}"),
            "must be greater than zero",
        ),
        Ok(duration) => return duration,
        Err(why) => problems.at(raw.span(), format!("limits.{name}"), why),
    }
    default
}

/// A count limit: at least 1, and small enough for its type.
fn count<T: TryFrom<i64>>(
    raw: Option<Spanned<i64>>,
    name: &str,
    default: T,
    problems: &mut Problems<'_>,
) -> T {
    let Some(raw) = raw else { return default };
    let n = *raw.get_ref();
    if n < 1 {
        problems.at(
            raw.span(),
            format!("limits.{name}"),
            format!("must be at least 1, not {n}"),
        );
        return default;
    }
    T::try_from(n).unwrap_or_else(|_| {
        problems.at(
            raw.span(),
            format!("limits.{name}"),
            format!("{n} is too large"),
        );
        default
    })
}

fn bindings_file(raw: RawBindings, problems: &mut Problems<'_>) -> PathBuf {
    match raw.file {
        Some(file) if file.get_ref().is_empty() => {
            problems.at(file.span(), "bindings.file", "must not be empty");
            PathBuf::from(DEFAULT_BINDINGS_FILE)
        }
        Some(file) => PathBuf::from(file.into_inner()),
        None => PathBuf::from(DEFAULT_BINDINGS_FILE),
    }
}

fn log(raw: RawLog, problems: &mut Problems<'_>) -> Log {
    let default = Log::default();
    let format = match raw.format {
        None => default.format,
        Some(format) => match format.get_ref().as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => {
                problems.at(
                    format.span(),
                    "log.format",
                    format!("expected \"text\" or \"json\", not {other:?}"),
                );
                default.format
            }
        },
    };
    let level = match raw.level {
        None => default.level,
        Some(level) if level.get_ref().trim().is_empty() => {
            problems.at(
                level.span(),
                "log.level",
                "must not be empty; for example \"info\"",
            );
            default.level
        }
        Some(level) => match log_filter(level.get_ref()) {
            Ok(()) => level.into_inner().trim().to_owned(),
            Err(why) => {
                problems.at(level.span(), "log.level", why);
                default.level
            }
        },
    };
    let decisions_max_size = match raw.decisions_max_size {
        None => default.decisions_max_size,
        Some(raw) => match units::size(raw.get_ref()) {
            Ok(size) if size >= 1 => size,
            Ok(_) => {
                problems.at(
                    raw.span(),
                    "log.decisions_max_size",
                    "must be at least 1 octet",
                );
                default.decisions_max_size
            }
            Err(why) => {
                problems.at(raw.span(), "log.decisions_max_size", why);
                default.decisions_max_size
            }
        },
    };
    let decisions_keep = match raw.decisions_keep {
        None => default.decisions_keep,
        Some(raw) => match usize::try_from(*raw.get_ref()) {
            Ok(keep) if keep <= 1000 => keep,
            _ => {
                problems.at(
                    raw.span(),
                    "log.decisions_keep",
                    format!(
                        "must be a whole number from 0 to 1000, not {}",
                        raw.get_ref()
                    ),
                );
                default.decisions_keep
            }
        },
    };
    Log {
        format,
        level,
        decisions_max_size,
        decisions_keep,
    }
}

/// Checks a log level as `tracing`'s `EnvFilter` reads it, so that a level the server would
/// refuse at start is refused here, with its field.
pub(crate) fn log_filter(text: &str) -> Result<(), String> {
    tracing_subscriber::EnvFilter::builder()
        .parse(text.trim())
        .map(drop)
        .map_err(|e| {
            format!(
                "invalid log level {text:?}: {e}; write a level (error, warn, info, debug, \
                 trace) or directives such as \"postern_smtp_in=debug,info\""
            )
        })
}

/// The smallest and largest spool segment: below, rotation would run every few messages; above,
/// one spare costs more disk than most spools hold.
const SEGMENT_SIZE_RANGE: (u64, u64) = (64 << 10, 4 << 30);

fn queue(raw: RawQueue, problems: &mut Problems<'_>) -> Queue {
    let default = Queue::default();
    let segment_size = match raw.segment_size {
        None => default.segment_size,
        Some(raw) => match units::size(raw.get_ref()) {
            Ok(size) if (SEGMENT_SIZE_RANGE.0..=SEGMENT_SIZE_RANGE.1).contains(&size) => size,
            Ok(size) => {
                problems.at(
                    raw.span(),
                    "queue.segment_size",
                    format!("{size} octets is outside 64K..4G"),
                );
                default.segment_size
            }
            Err(why) => {
                problems.at(raw.span(), "queue.segment_size", why);
                default.segment_size
            }
        },
    };
    let disk_reserve = raw.disk_reserve.and_then(|raw| {
        disk_reserve(raw.get_ref())
            .map_err(|why| problems.at(raw.span(), "queue.disk_reserve", why))
            .ok()
    });
    Queue {
        segment_size,
        disk_reserve,
    }
}

/// A percentage of the file system (`"5%"`) or a size (`"1GiB"`, `"500M"`, integer octets).
fn disk_reserve(amount: &Amount) -> Result<DiskReserve, String> {
    if let Amount::Text(text) = amount
        && let Some(number) = text.trim().strip_suffix('%')
    {
        return match number.trim().parse::<u8>() {
            Ok(percent) if percent <= 100 => Ok(DiskReserve::Percent(percent)),
            _ => Err(format!(
                "invalid percentage {text:?}: expected a whole number from 0 to 100, such as \"5%\""
            )),
        };
    }
    units::size(amount).map(DiskReserve::Octets)
}

//! The settings of the sending half: `[dns]` and `[delivery]`, and the TLS policy of a route.

use std::net::SocketAddr;
use std::time::Duration;

use toml::Spanned;

use crate::error::Problems;
use crate::model::{Delivery, Dns, RouteTls};
use crate::raw::{RawDelivery, RawDns};
use crate::units::{self, Amount};

/// `[dns]`: the resolver's servers, `IP` or `IP:PORT` (port 53 when not given).
pub(crate) fn dns(raw: RawDns, problems: &mut Problems<'_>) -> Dns {
    let servers = raw
        .servers
        .iter()
        .enumerate()
        .filter_map(|(i, text)| {
            server(text.get_ref())
                .map_err(|why| problems.at(text.span(), format!("dns.servers[{i}]"), why))
                .ok()
        })
        .collect();
    Dns { servers }
}

fn server(text: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    text.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("invalid DNS server {text:?}: expected an IP address with an optional port, such as \"127.0.0.1:5353\""))
}

/// `[delivery]`.
pub(crate) fn delivery(raw: RawDelivery, problems: &mut Problems<'_>) -> Delivery {
    let default = Delivery::default();
    let smtp_port = match raw.smtp_port {
        None => default.smtp_port,
        Some(port) => match u16::try_from(*port.get_ref()) {
            Ok(p) if p > 0 => p,
            _ => {
                problems.at(
                    port.span(),
                    "delivery.smtp_port",
                    format!("invalid port {}: expected 1 to 65535", port.get_ref()),
                );
                default.smtp_port
            }
        },
    };
    let retry_intervals = match raw.retry_intervals {
        None => default.retry_intervals.clone(),
        Some(list) if list.get_ref().is_empty() => {
            problems.at(
                list.span(),
                "delivery.retry_intervals",
                "must name at least one interval",
            );
            default.retry_intervals.clone()
        }
        Some(list) => list
            .into_inner()
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| {
                positive(&item, &format!("delivery.retry_intervals[{i}]"), problems)
            })
            .collect(),
    };
    let max_age = raw
        .max_age
        .and_then(|a| positive(&a, "delivery.max_age", problems))
        .unwrap_or(default.max_age);
    // "0" turns the delay warning off.
    let delay_warning = match raw.delay_warning {
        None => default.delay_warning,
        Some(raw) => match zero_or_duration(raw.get_ref()) {
            Ok(d) if d.is_zero() => None,
            Ok(d) => Some(d),
            Err(why) => {
                problems.at(raw.span(), "delivery.delay_warning", why);
                default.delay_warning
            }
        },
    };
    let connections_per_host = match raw.connections_per_host {
        None => default.connections_per_host,
        Some(n) => match usize::try_from(*n.get_ref()) {
            Ok(n) if n >= 1 => n,
            _ => {
                problems.at(
                    n.span(),
                    "delivery.connections_per_host",
                    format!("must be at least 1, not {}", n.get_ref()),
                );
                default.connections_per_host
            }
        },
    };
    // Zero is meaningful: a connection is closed after its message.
    let idle_connection_time = match raw.idle_connection_time {
        None => default.idle_connection_time,
        Some(raw) => zero_or_duration(raw.get_ref()).unwrap_or_else(|why| {
            problems.at(raw.span(), "delivery.idle_connection_time", why);
            default.idle_connection_time
        }),
    };
    Delivery {
        smtp_port,
        retry_intervals,
        max_age,
        delay_warning,
        connections_per_host,
        idle_connection_time,
    }
}

/// A duration that may be written as a bare `"0"` (off) as well as with a unit.
fn zero_or_duration(amount: &Amount) -> Result<Duration, String> {
    match amount {
        Amount::Text(text) if text.trim() == "0" => Ok(Duration::ZERO),
        other => units::duration(other),
    }
}

fn positive(raw: &Spanned<Amount>, field: &str, problems: &mut Problems<'_>) -> Option<Duration> {
    match units::duration(raw.get_ref()) {
        Ok(Duration::ZERO) => {
            problems.at(raw.span(), field, "must be greater than zero");
            None
        }
        Ok(d) => Some(d),
        Err(why) => {
            problems.at(raw.span(), field, why);
            None
        }
    }
}

/// A route's `tls`: `"opportunistic"` (the default) or `"required"`.
pub(crate) fn route_tls(
    raw: Option<Spanned<String>>,
    field: String,
    problems: &mut Problems<'_>,
) -> RouteTls {
    let Some(raw) = raw else {
        return RouteTls::Opportunistic;
    };
    match raw.get_ref().as_str() {
        "opportunistic" => RouteTls::Opportunistic,
        "required" => RouteTls::Required,
        other => {
            problems.at(
                raw.span(),
                field,
                format!("invalid TLS policy {other:?}: expected \"opportunistic\" or \"required\""),
            );
            RouteTls::Opportunistic
        }
    }
}

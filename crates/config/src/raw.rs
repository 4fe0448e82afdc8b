//! The configuration file as written: serde structs that keep the span of every value so that
//! validation can point at it. Unknown keys are refused here; meaning is checked in
//! `validate`.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use toml::Spanned;

use crate::units::Amount;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawConfig {
    pub(crate) hostname: Option<Spanned<String>>,
    pub(crate) data_dir: Option<Spanned<String>>,
    /// Kept as an option with its span: a missing list and an empty one are both errors.
    pub(crate) listener: Option<Spanned<Vec<RawListener>>>,
    pub(crate) domain: Vec<RawDomain>,
    pub(crate) relay: RawRelay,
    pub(crate) route: Vec<RawRoute>,
    pub(crate) limits: RawLimits,
    pub(crate) bindings: RawBindings,
    pub(crate) log: RawLog,
    pub(crate) dns: RawDns,
    pub(crate) delivery: RawDelivery,
    pub(crate) queue: RawQueue,
    pub(crate) tls: RawTls,
    pub(crate) auth: RawAuth,
    pub(crate) admin: crate::admin::RawAdmin,
    pub(crate) categorizer: RawCategorizer,
}

/// `[categorizer]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawCategorizer {
    pub(crate) max_depth: Option<Spanned<i64>>,
    pub(crate) recipient_delimiter: Option<Spanned<String>>,
}

/// `[tls]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawTls {
    pub(crate) certificate: Option<Spanned<String>>,
    pub(crate) key: Option<Spanned<String>>,
}

/// `[dns]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawDns {
    pub(crate) servers: Vec<Spanned<String>>,
}

/// `[delivery]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawDelivery {
    pub(crate) smtp_port: Option<Spanned<i64>>,
    pub(crate) retry_intervals: Option<Spanned<Vec<Spanned<Amount>>>>,
    pub(crate) max_age: Option<Spanned<Amount>>,
    pub(crate) delay_warning: Option<Spanned<Amount>>,
    pub(crate) connections_per_host: Option<Spanned<i64>>,
    pub(crate) idle_connection_time: Option<Spanned<Amount>>,
}

/// `[[listener]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table with an address")]
pub(crate) struct RawListener {
    pub(crate) address: Spanned<String>,
    #[serde(default)]
    pub(crate) mode: Option<Spanned<String>>,
}

/// `[[domain]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a table with a name and users")]
pub(crate) struct RawDomain {
    pub(crate) name: Spanned<String>,
    pub(crate) users: Spanned<RawUsers>,
    #[serde(default)]
    pub(crate) aliases: Option<Spanned<String>>,
}

/// A domain's `users`: `"*"` or a list of local parts.
#[derive(Debug)]
pub(crate) enum RawUsers {
    /// A string; only `"*"` is valid.
    Text(String),
    List(Vec<Spanned<String>>),
}

/// `[relay]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawRelay {
    pub(crate) networks: Vec<Spanned<String>>,
}

/// `[[route]]`.
#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a table with a domain and a smarthost"
)]
pub(crate) struct RawRoute {
    pub(crate) domain: Spanned<String>,
    pub(crate) smarthost: Spanned<String>,
    #[serde(default)]
    pub(crate) tls: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) ca_file: Option<Spanned<String>>,
}

/// `[limits]`; counts are read as any integer so that a negative one is reported with the
/// other range errors.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawLimits {
    pub(crate) max_message_size: Option<Spanned<Amount>>,
    pub(crate) max_recipients: Option<Spanned<i64>>,
    pub(crate) max_errors: Option<Spanned<i64>>,
    pub(crate) command_timeout: Option<Spanned<Amount>>,
    pub(crate) data_timeout: Option<Spanned<Amount>>,
    pub(crate) max_connections: Option<Spanned<i64>>,
    pub(crate) max_connections_per_ip: Option<Spanned<i64>>,
    pub(crate) shutdown_grace: Option<Spanned<Amount>>,
    pub(crate) memory_budget: Option<Spanned<Amount>>,
    pub(crate) spill_threshold: Option<Spanned<Amount>>,
    pub(crate) message_rate_per_ip: Option<Spanned<i64>>,
    pub(crate) recipient_rate_per_ip: Option<Spanned<i64>>,
    pub(crate) message_rate_per_user: Option<Spanned<i64>>,
    pub(crate) recipient_rate_per_user: Option<Spanned<i64>>,
    pub(crate) greeting_delay: Option<Spanned<Amount>>,
}

/// `[auth]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawAuth {
    pub(crate) allow_plaintext: Option<Spanned<bool>>,
    pub(crate) max_failures: Option<Spanned<i64>>,
    pub(crate) failure_delay: Option<Spanned<Amount>>,
    pub(crate) lockout: Option<Spanned<Amount>>,
}

/// `[bindings]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawBindings {
    pub(crate) file: Option<Spanned<String>>,
}

/// `[queue]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawQueue {
    pub(crate) segment_size: Option<Spanned<Amount>>,
    pub(crate) disk_reserve: Option<Spanned<Amount>>,
}

/// `[log]`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawLog {
    pub(crate) format: Option<Spanned<String>>,
    pub(crate) level: Option<Spanned<String>>,
    pub(crate) decisions_max_size: Option<Spanned<Amount>>,
    pub(crate) decisions_keep: Option<Spanned<i64>>,
}

// Hand-written rather than `#[serde(untagged)]`: untagged enums buffer their input and lose the
// spans of the list's elements.
impl<'de> Deserialize<'de> for RawUsers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RawUsers, D::Error> {
        struct UsersVisitor;

        impl<'de> Visitor<'de> for UsersVisitor {
            type Value = RawUsers;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"*\" or an array of local parts")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<RawUsers, E> {
                Ok(RawUsers::Text(text.to_owned()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawUsers, A::Error> {
                let mut users = Vec::new();
                while let Some(user) = seq.next_element()? {
                    users.push(user);
                }
                Ok(RawUsers::List(users))
            }
        }

        deserializer.deserialize_any(UsersVisitor)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Amount, D::Error> {
        struct AmountVisitor;

        impl Visitor<'_> for AmountVisitor {
            type Value = Amount;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string with a unit, such as \"30s\" or \"25M\"")
            }

            fn visit_i64<E: de::Error>(self, n: i64) -> Result<Amount, E> {
                Ok(Amount::Integer(n))
            }

            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Amount, E> {
                Ok(Amount::Integer(i64::try_from(n).unwrap_or(i64::MAX)))
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Amount, E> {
                Ok(Amount::Text(text.to_owned()))
            }
        }

        deserializer.deserialize_any(AmountVisitor)
    }
}

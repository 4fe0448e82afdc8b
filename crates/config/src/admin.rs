//! `[admin]`: the admin API's listener (`address`, `""` turns it off).

use std::net::{Ipv4Addr, SocketAddr};

use serde::Deserialize;
use toml::Spanned;

use crate::error::Problems;

/// The port of the admin listener when `[admin]` is not written.
pub const DEFAULT_ADMIN_PORT: u16 = 8025;

/// `[admin]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a table")]
pub(crate) struct RawAdmin {
    pub(crate) address: Option<Spanned<String>>,
}

/// `[admin]`: where the admin API (and its `/metrics`) listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// The listener's address; `None` when `address = ""` turned the API off.
    pub address: Option<SocketAddr>,
}

impl Default for Admin {
    fn default() -> Admin {
        Admin {
            // Loopback only: the token is the only guard, so it is not offered to the network
            // unless the administrator asks for it.
            address: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, DEFAULT_ADMIN_PORT))),
        }
    }
}

/// Parses an admin address as `--admin-listen` and `[admin] address` take it: `""` is off.
pub fn admin_address(text: &str) -> Result<Option<SocketAddr>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|_| {
        format!("invalid address {text:?}: expected IP:PORT such as \"127.0.0.1:8025\", or \"\" to turn the admin API off")
    })
}

/// Validates `[admin]`.
pub(crate) fn admin(raw: RawAdmin, problems: &mut Problems<'_>) -> Admin {
    match raw.address {
        None => Admin::default(),
        Some(address) => match admin_address(address.get_ref()) {
            Ok(address) => Admin { address },
            Err(why) => {
                problems.at(address.span(), "admin.address", why);
                Admin::default()
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use crate::{Config, Source};

    #[test]
    fn admin_address_default_empty_and_bad() {
        let base = "[[listener]]\naddress = \"127.0.0.1:2525\"\n";
        let config = Config::parse(base, Source::Embedded).expect("parses");
        assert_eq!(
            config.admin.address,
            Some("127.0.0.1:8025".parse().expect("addr"))
        );
        let off = format!("{base}[admin]\naddress = \"\"\n");
        let config = Config::parse(&off, Source::Embedded).expect("parses");
        assert_eq!(config.admin.address, None);
        let bad = format!("{base}[admin]\naddress = \"nowhere\"\n");
        let errors = Config::parse(&bad, Source::Embedded).expect_err("refused");
        assert!(errors.to_string().contains("admin.address"), "{errors}");
        let unknown = format!("{base}[admin]\nport = 1\n");
        assert!(Config::parse(&unknown, Source::Embedded).is_err());
    }
}

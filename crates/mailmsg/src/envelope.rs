//! The envelope: the reverse-path and forward-paths with their ESMTP parameters, and the state of
//! each recipient as the message moves through categorization, routing and delivery.

use crate::properties::Properties;

/// The body type declared with MAIL BODY= (RFC 6152, RFC 3030).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Body {
    /// Not declared, or `BODY=7BIT`.
    #[default]
    SevenBit,
    /// `BODY=8BITMIME`.
    EightBitMime,
    /// `BODY=BINARYMIME` (needs CHUNKING).
    BinaryMime,
}

/// `RET=` of MAIL (RFC 3461): how much of the message a DSN returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnRet {
    /// `RET=FULL`.
    Full,
    /// `RET=HDRS`.
    Headers,
}

/// `NOTIFY=` of RCPT (RFC 3461), as flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DsnNotify {
    /// `SUCCESS` was asked for.
    pub success: bool,
    /// `FAILURE` was asked for.
    pub failure: bool,
    /// `DELAY` was asked for.
    pub delay: bool,
    /// `NEVER` was asked for (exclusive of the others).
    pub never: bool,
}

impl DsnNotify {
    /// Whether the client gave a NOTIFY parameter at all.
    pub fn is_set(&self) -> bool {
        self.success || self.failure || self.delay || self.never
    }
}

/// The parameters of MAIL FROM that the server keeps with the envelope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailParams {
    /// `SIZE=` (RFC 1870), the size the client declared.
    pub size: Option<u64>,
    /// `BODY=`.
    pub body: Body,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// `RET=` (RFC 3461).
    pub ret: Option<DsnRet>,
    /// `ENVID=` (RFC 3461), decoded from xtext.
    pub envid: Option<String>,
}

/// The reverse-path of the message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sender {
    /// The address; empty for the null reverse-path `<>`.
    pub address: String,
    /// MAIL parameters.
    pub params: MailParams,
}

/// The parameters of RCPT TO that the server keeps with the recipient.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RcptParams {
    /// `NOTIFY=` (RFC 3461).
    pub notify: DsnNotify,
    /// `ORCPT=` (RFC 3461), as `addr-type;address` decoded from xtext.
    pub orcpt: Option<String>,
}

/// Where a recipient is on its way.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum RecipientStatus {
    /// Not yet delivered or failed.
    #[default]
    Pending,
    /// Delivered (locally stored, or accepted by the next hop).
    Delivered,
    /// A temporary failure; delivery will be tried again.
    Deferred {
        /// The reply or reason, for the log and a delay DSN.
        reason: String,
    },
    /// A permanent failure; the recipient is done and a DSN is due.
    Failed {
        /// The reply or reason, for the log and the DSN.
        reason: String,
    },
}

impl RecipientStatus {
    /// Whether nothing more will be done for this recipient.
    pub fn is_final(&self) -> bool {
        matches!(self, Self::Delivered | Self::Failed { .. })
    }
}

/// One forward-path and everything the transport learns about it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Recipient {
    /// The address as resolved so far (categorization may rewrite it).
    pub address: String,
    /// The address exactly as RCPT gave it.
    pub original: String,
    /// RCPT parameters.
    pub params: RcptParams,
    /// Delivery state.
    pub status: RecipientStatus,
    /// The next hop chosen by the route event (`local:DOMAIN`, `smtp:HOST`, …).
    pub next_hop: Option<String>,
    /// Properties of this recipient alone.
    pub properties: Properties,
}

impl Recipient {
    /// A pending recipient with no parameters.
    pub fn new(address: impl Into<String>) -> Self {
        let address = address.into();
        Self {
            original: address.clone(),
            address,
            ..Self::default()
        }
    }

    /// The local part of the address (everything before the last `@`).
    pub fn local_part(&self) -> &str {
        split_address(&self.address).0
    }

    /// The domain of the address, as written.
    pub fn domain(&self) -> &str {
        split_address(&self.address).1
    }
}

/// Splits an address at its last `@` into local part and domain; an address without `@` is all
/// local part.
pub fn split_address(address: &str) -> (&str, &str) {
    match address.rfind('@') {
        Some(at) => (&address[..at], &address[at + 1..]),
        None => (address, ""),
    }
}

/// Two addresses are the same mailbox when the local parts are equal and the domains are equal
/// ignoring ASCII case (RFC 5321 §2.4: only the domain is case-insensitive in general).
pub fn same_address(a: &str, b: &str) -> bool {
    let (la, da) = split_address(a);
    let (lb, db) = split_address(b);
    la == lb && da.eq_ignore_ascii_case(db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_last_at_sign() {
        assert_eq!(
            split_address("\"a@b\"@example.com"),
            ("\"a@b\"", "example.com")
        );
        assert_eq!(split_address("postmaster"), ("postmaster", ""));
    }

    #[test]
    fn domains_compare_without_case_local_parts_with() {
        assert!(same_address("Joe@Example.COM", "Joe@example.com"));
        assert!(!same_address("joe@example.com", "Joe@example.com"));
    }
}

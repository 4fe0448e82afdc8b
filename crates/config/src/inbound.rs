//! The settings of the receiving half that concern encryption: each listener's role
//! (`mode`) and the `[tls]` certificate.

use std::path::PathBuf;

use toml::Spanned;

use crate::error::{Position, Problems};
use crate::raw::RawTls;

/// What a listener is for, which decides what it requires of its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ListenerMode {
    /// Mail from other servers (port 25): STARTTLS offered, never required.
    #[default]
    Smtp,
    /// Mail from the server's users (port 587, RFC 6409): STARTTLS before AUTH, AUTH before
    /// MAIL.
    Submission,
    /// Submission over implicit TLS (port 465, RFC 8314): TLS from the first octet, AUTH
    /// before MAIL.
    Submissions,
}

impl ListenerMode {
    /// The name written in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerMode::Smtp => "smtp",
            ListenerMode::Submission => "submission",
            ListenerMode::Submissions => "submissions",
        }
    }

    /// Whether clients must authenticate before MAIL.
    pub fn requires_auth(self) -> bool {
        !matches!(self, ListenerMode::Smtp)
    }
}

/// `[tls]`: the server's certificate. Without one, a self-signed certificate is made in
/// `DATA/tls/` at the first start.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tls {
    /// The configured certificate chain and key, when both are given.
    pub files: Option<TlsFiles>,
}

/// The PEM files named by `[tls]`, as written (relative paths are relative to the data
/// folder: see [`Config::tls_files`](crate::Config::tls_files)), with where each was written
/// so that a file that cannot be loaded is reported at its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub certificate: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Where `tls.certificate` is in the configuration text.
    pub certificate_at: Position,
    /// Where `tls.key` is in the configuration text.
    pub key_at: Position,
}

pub(crate) fn mode(
    raw: Option<Spanned<String>>,
    i: usize,
    problems: &mut Problems<'_>,
) -> ListenerMode {
    let Some(raw) = raw else {
        return ListenerMode::Smtp;
    };
    match raw.get_ref().as_str() {
        "smtp" => ListenerMode::Smtp,
        "submission" => ListenerMode::Submission,
        "submissions" => ListenerMode::Submissions,
        other => {
            problems.at(
                raw.span(),
                format!("listener[{i}].mode"),
                format!(
                    "unknown listener mode {other:?}: expected \"smtp\", \"submission\" or \
                     \"submissions\""
                ),
            );
            ListenerMode::Smtp
        }
    }
}

pub(crate) fn tls(raw: RawTls, problems: &mut Problems<'_>) -> Tls {
    let mut path = |value: &Option<Spanned<String>>, field: &str| {
        let value = value.as_ref()?;
        if value.get_ref().trim().is_empty() {
            problems.at(value.span(), field, "must not be empty");
            return None;
        }
        Some((
            PathBuf::from(value.get_ref()),
            problems.position(value.span().start),
        ))
    };
    let certificate = path(&raw.certificate, "tls.certificate");
    let key = path(&raw.key, "tls.key");
    match (certificate, key, &raw.certificate, &raw.key) {
        (Some((certificate, certificate_at)), Some((key, key_at)), _, _) => Tls {
            files: Some(TlsFiles {
                certificate,
                key,
                certificate_at,
                key_at,
            }),
        },
        (_, _, Some(given), None) => {
            problems.at(
                given.span(),
                "tls.key",
                "a certificate needs its private key: add `key = \"…\"` to [tls]",
            );
            Tls::default()
        }
        (_, _, None, Some(given)) => {
            problems.at(
                given.span(),
                "tls.certificate",
                "a private key needs its certificate: add `certificate = \"…\"` to [tls]",
            );
            Tls::default()
        }
        _ => Tls::default(),
    }
}

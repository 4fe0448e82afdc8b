//! The HTTP client: connection pooling from reqwest, TLS from rustls with the ring provider and
//! the system's roots (plus a binding's own CA file).

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;

use crate::error::Error;

/// How long connecting may take. The whole call is bounded by the binding's timeout, applied
/// by the dispatcher; this only makes an unreachable hook fail before that.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long an idle pooled connection is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The client of every binding without a CA file of its own: one connection pool for all.
pub(crate) fn shared() -> Result<reqwest::Client, Error> {
    static SHARED: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| build(None).map_err(|e| e.to_string()))
        .clone()
        .map_err(Error::Config)
}

/// A client that also trusts the certificates of `ca_file` (PEM).
pub(crate) fn with_ca(ca_file: &Path) -> Result<reqwest::Client, Error> {
    build(Some(ca_file))
}

fn build(ca_file: Option<&Path>) -> Result<reqwest::Client, Error> {
    let mut roots = RootCertStore::empty();
    // Unreadable system certificates are skipped: a hook on loopback needs none of them.
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<_, _>>())
            .map_err(|e| Error::Config(format!("property `ca_file`: {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(Error::Config(format!(
                "property `ca_file`: {}: no certificate in it",
                path.display()
            )));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| {
                Error::Config(format!("property `ca_file`: {}: {e}", path.display()))
            })?;
        }
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error::Config(format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(CONNECT_TIMEOUT)
        .pool_idle_timeout(IDLE_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("postern/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| Error::Config(format!("HTTP client: {}", crate::error::chain(&e))))
}

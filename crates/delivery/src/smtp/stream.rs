//! The byte stream under an outbound session: TCP, then perhaps TLS after STARTTLS. Boxed so a
//! session can be upgraded in place and tests can run it over an in-memory duplex.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};

/// What an outbound session runs over.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A boxed stream.
pub type BoxStream = Box<dyn Stream>;

/// The TLS client settings of delivery: one for opportunistic TLS (no verification, RFC 7435:
/// encryption against passive listeners is better than none) and one per trust store for
/// required TLS.
#[derive(Clone)]
pub struct TlsClients {
    opportunistic: Arc<ClientConfig>,
    verified: Arc<ClientConfig>,
}

impl TlsClients {
    /// Loads the system's roots (a missing or unreadable store leaves required TLS able to
    /// verify nothing, which defers such routes rather than sending in clear).
    pub fn new() -> Self {
        let mut roots = RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        Self {
            opportunistic: Arc::new(opportunistic()),
            verified: Arc::new(verified(roots)),
        }
    }

    /// The configuration that accepts any certificate.
    pub fn opportunistic(&self) -> Arc<ClientConfig> {
        self.opportunistic.clone()
    }

    /// A verifying configuration: the system roots, plus the PEM certificates of `ca_file`.
    pub fn verified(&self, ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
        let Some(path) = ca_file else {
            return Ok(self.verified.clone());
        };
        let mut roots = RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("bad certificate in {}: {e}", path.display()))?;
        }
        Ok(Arc::new(verified(roots)))
    }
}

impl Default for TlsClients {
    fn default() -> Self {
        Self::new()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn verified(roots: RootCertStore) -> ClientConfig {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map(|b| b.with_root_certificates(roots).with_no_client_auth())
        // The ring provider supports the default versions; this cannot fail.
        .unwrap_or_else(|_| unreachable_config())
}

fn opportunistic() -> ClientConfig {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map(|b| {
            b.dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider())))
                .with_no_client_auth()
        })
        .unwrap_or_else(|_| unreachable_config())
}

fn unreachable_config() -> ClientConfig {
    // Only reached if ring lacked TLS 1.2 and 1.3, which it does not; a config with an empty
    // root store then makes every verified handshake fail rather than the server panic.
    ClientConfig::builder()
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth()
}

/// Accepts any certificate, still checking that the handshake is signed by its key.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

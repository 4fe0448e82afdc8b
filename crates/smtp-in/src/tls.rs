//! The server's certificate for STARTTLS and implicit TLS: the PEM files named by `[tls]`, or
//! a self-signed certificate made in `DATA/tls/` at the first start. The files are looked at
//! before each handshake and loaded again when they changed, so a renewed certificate is
//! served without a restart.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use postern_config::Config;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tracing::{info, warn};

/// The folder, in the data folder, of the self-signed default.
pub const SELF_SIGNED_DIR: &str = "tls";
/// The self-signed certificate's file in [`SELF_SIGNED_DIR`].
pub const SELF_SIGNED_CERTIFICATE: &str = "cert.pem";
/// The self-signed key's file in [`SELF_SIGNED_DIR`].
pub const SELF_SIGNED_KEY: &str = "key.pem";

/// Why a certificate could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The certificate file holds no PEM certificate.
    #[error("{}: no certificate in the file (expected a PEM \"BEGIN CERTIFICATE\" block)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no PEM private key.
    #[error("{}: no private key in the file (expected a PEM \"BEGIN PRIVATE KEY\", \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\" block)", path.display())]
    NoKey {
        /// The file.
        path: PathBuf,
    },
    /// The certificate and key were read but cannot be used together.
    #[error("{} with {}: {why}", certificate.display(), key.display())]
    Unusable {
        /// The certificate file.
        certificate: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        why: String,
    },
    /// The self-signed default could not be made.
    #[error("cannot make the self-signed certificate in {}: {why}", dir.display())]
    SelfSigned {
        /// Where it was to go.
        dir: PathBuf,
        /// Why.
        why: String,
    },
}

/// The certificate in force, and where it comes from.
pub struct Tls {
    certificate: PathBuf,
    key: PathBuf,
    /// What was last loaded, with the state of the files it was loaded from. Held only to
    /// compare and swap, never across a handshake.
    current: Mutex<Loaded>,
}

struct Loaded {
    stamp: Stamp,
    acceptor: TlsAcceptor,
}

/// What tells that a file changed: replaced (inode), rewritten (time, length).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    certificate: Option<(u64, u64, SystemTime)>,
    key: Option<(u64, u64, SystemTime)>,
}

impl Stamp {
    fn of(certificate: &Path, key: &Path) -> Stamp {
        let one = |path: &Path| {
            fs::metadata(path).ok().map(|m| {
                (
                    m.ino(),
                    m.len(),
                    m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                )
            })
        };
        Stamp {
            certificate: one(certificate),
            key: one(key),
        }
    }
}

impl Tls {
    /// The configured certificate, or the self-signed default (made when it does not exist).
    pub fn load(config: &Config) -> Result<Tls, TlsError> {
        let (certificate, key) = match config.tls_files() {
            Some(files) => files,
            None => self_signed(&config.data_dir, &config.hostname)?,
        };
        let stamp = Stamp::of(&certificate, &key);
        let acceptor = acceptor(&certificate, &key)?;
        info!(certificate = %certificate.display(), key = %key.display(), "TLS certificate loaded");
        Ok(Tls {
            current: Mutex::new(Loaded { stamp, acceptor }),
            certificate,
            key,
        })
    }

    /// Whether a certificate and key can be loaded from these files (for `check-config`).
    pub fn check(certificate: &Path, key: &Path) -> Result<(), TlsError> {
        acceptor(certificate, key).map(|_| ())
    }

    /// The acceptor for the next handshake, loaded again first if the files changed. When the
    /// new files cannot be used (half written, say), the previous certificate stays in force
    /// and the files are tried again at the next handshake.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        let stamp = Stamp::of(&self.certificate, &self.key);
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.stamp != stamp {
            match acceptor(&self.certificate, &self.key) {
                Ok(acceptor) => {
                    info!(certificate = %self.certificate.display(), "TLS certificate reloaded");
                    *current = Loaded { stamp, acceptor };
                }
                Err(e) => {
                    warn!("TLS certificate not reloaded, the previous one stays: {e}");
                    // Not tried again until the files change once more.
                    current.stamp = stamp;
                }
            }
        }
        current.acceptor.clone()
    }
}

/// Reads the files and builds an acceptor (ring provider, TLS 1.2 and 1.3).
fn acceptor(certificate: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let read = |path: &Path| {
        fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(certificate)?)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: certificate.to_owned(),
        });
    }
    let private = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|_| TlsError::NoKey {
        path: key.to_owned(),
    })?;
    let unusable = |why: rustls::Error| TlsError::Unusable {
        certificate: certificate.to_owned(),
        key: key.to_owned(),
        why: why.to_string(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .map_err(unusable)?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(unusable)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The self-signed default's files, made when either is missing.
fn self_signed(data_dir: &Path, hostname: &str) -> Result<(PathBuf, PathBuf), TlsError> {
    let dir = data_dir.join(SELF_SIGNED_DIR);
    let certificate = dir.join(SELF_SIGNED_CERTIFICATE);
    let key = dir.join(SELF_SIGNED_KEY);
    if certificate.exists() && key.exists() {
        return Ok((certificate, key));
    }
    let failed = |why: String| TlsError::SelfSigned {
        dir: dir.clone(),
        why,
    };
    let mut params = rcgen::CertificateParams::new(vec![hostname.to_owned()])
        .map_err(|e| failed(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, hostname);
    let pair = rcgen::KeyPair::generate().map_err(|e| failed(e.to_string()))?;
    let cert = params
        .self_signed(&pair)
        .map_err(|e| failed(e.to_string()))?;
    fs::create_dir_all(&dir).map_err(|e| failed(e.to_string()))?;
    // The key first, readable by the server's user only; the certificate last, so that a
    // start interrupted in between makes a new pair rather than pairing mismatched files.
    write_new(&key, pair.serialize_pem().as_bytes(), 0o600).map_err(|e| failed(e.to_string()))?;
    write_new(&certificate, cert.pem().as_bytes(), 0o644).map_err(|e| failed(e.to_string()))?;
    info!(certificate = %certificate.display(), "made a self-signed TLS certificate");
    Ok((certificate, key))
}

/// Writes a file through a temporary name and renames it into place.
fn write_new(path: &Path, content: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    let temp = path.with_extension("new");
    let mut file = fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(mode)
        .open(&temp)?;
    file.write_all(content)?;
    file.sync_all()?;
    fs::rename(&temp, path)
}

//! The user store: `DATA/users.toml`, names and argon2id password hashes, read by AUTH and
//! written by `postern user`.
//!
//! ```toml
//! # Managed by `postern user`; hashes are argon2id (PHC strings).
//! [users]
//! alice = "$argon2id$v=19$m=19456,t=2,p=1$…"
//! ```
//!
//! The file is read at every AUTH, so `postern user add` takes effect without a restart; it is
//! written whole to a new file that replaces the old one (mode 0600), so a reader never sees
//! half of it. Hashing and verifying are deliberately slow: callers in the server run them on
//! the blocking pool.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};

/// The file's name in the data folder.
pub const FILE: &str = "users.toml";

/// A verification that never matches, run for an unknown user so that a missing name takes as
/// long to refuse as a wrong password.
const DECOY: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$Q9V5yO8ydHH2mhXBuyO4A0v1vYx2nWL+IRhXHOmYBe0";

/// Why the user store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not a valid user store.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A user name that cannot be used.
    #[error("invalid user name {0:?}: use 1 to 255 printable characters without spaces")]
    BadName(String),
    /// The password could not be hashed.
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

/// The file as written (a versioned wire format of its own: the table is all there is).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    users: BTreeMap<String, String>,
}

/// The users and their password hashes.
#[derive(Debug, Default)]
pub struct Users {
    users: BTreeMap<String, String>,
}

impl Users {
    /// The store's path in `data_dir`.
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join(FILE)
    }

    /// Reads the store; a missing file is an empty store.
    pub fn load(path: &Path) -> Result<Users, UsersError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Users::default()),
            Err(source) => {
                return Err(UsersError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        let file: File = toml::from_str(&text).map_err(|e| UsersError::Syntax {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        Ok(Users { users: file.users })
    }

    /// Writes the store to a new file that replaces `path`, readable by its owner only.
    pub fn save(&self, path: &Path) -> Result<(), UsersError> {
        let io = |source| UsersError::Io {
            path: path.to_owned(),
            source,
        };
        let file = File {
            users: self.users.clone(),
        };
        let body = toml::to_string(&file).map_err(|e| UsersError::Hash(e.to_string()))?;
        let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
        // NamedTempFile is created 0600: the hashes stay private.
        tmp.write_all(b"# Managed by `postern user`; hashes are argon2id (PHC strings).\n")
            .and_then(|()| tmp.write_all(body.as_bytes()))
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }

    /// The user names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// Whether `name` is a user.
    pub fn contains(&self, name: &str) -> bool {
        self.users.contains_key(name)
    }

    /// Sets `name`'s password (adding the user when new).
    pub fn set_password(&mut self, name: &str, password: &str) -> Result<(), UsersError> {
        check_name(name)?;
        // 16 random octets from the operating system's generator (through `rand`'s thread RNG,
        // a CSPRNG seeded from it).
        let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
            .map_err(|e| UsersError::Hash(e.to_string()))?;
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| UsersError::Hash(e.to_string()))?;
        self.users.insert(name.to_owned(), hash.to_string());
        Ok(())
    }

    /// Removes `name`; whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        self.users.remove(name).is_some()
    }

    /// Whether `password` is `name`'s. Slow by design (argon2id): call it off the runtime's
    /// threads. An unknown user costs the same time as a wrong password.
    pub fn verify(&self, name: &str, password: &str) -> bool {
        let stored = self.users.get(name);
        let Ok(hash) = PasswordHash::new(stored.map_or(DECOY, String::as_str)) else {
            return false;
        };
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok();
        matches && stored.is_some()
    }
}

/// A user name: what a client can send in PLAIN or LOGIN and a TOML key can hold.
fn check_name(name: &str) -> Result<(), UsersError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name.chars().all(|c| !c.is_control() && !c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(UsersError::BadName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_store_verifies_its_passwords_after_loading() {
        let dir = tempfile::tempdir().unwrap();
        let path = Users::path(dir.path());
        let mut users = Users::load(&path).unwrap();
        users.set_password("alice", "s3cret").unwrap();
        users.save(&path).unwrap();
        let users = Users::load(&path).unwrap();
        assert!(users.verify("alice", "s3cret"));
        assert!(!users.verify("alice", "wrong"));
        assert!(!users.verify("bob", "s3cret"));
        assert!(users.load_text().starts_with("$argon2id$"));
    }

    #[test]
    fn the_decoy_is_a_valid_hash() {
        assert!(PasswordHash::new(DECOY).is_ok());
    }

    #[test]
    fn names_with_spaces_or_controls_are_refused() {
        let mut users = Users::default();
        for bad in ["", "a b", "a\tb", "a\u{7f}"] {
            assert!(users.set_password(bad, "x").is_err(), "{bad:?}");
        }
    }

    impl Users {
        fn load_text(&self) -> &str {
            self.users.values().next().map_or("", String::as_str)
        }
    }
}

//! The bearer token: made on first start in `DATA/admin.token` (32 random octets in hex, mode
//! 0600) and read back on every later start, so scripts keep working across restarts.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use crate::AdminError;

/// The token file's name in the data folder.
pub const TOKEN_FILE: &str = "admin.token";

/// Reads the token in `data_dir`, making it first when there is none. A file that is there
/// but empty or readable by others is refused rather than trusted.
pub fn load_or_create(data_dir: &Path) -> Result<String, AdminError> {
    let path = data_dir.join(TOKEN_FILE);
    let io = |source| AdminError::Token {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let mode = std::fs::metadata(&path).map_err(io)?.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(AdminError::TokenUnsafe {
                    path,
                    why: format!(
                        "mode {:o} lets other users read it: chmod 600 it",
                        mode & 0o777
                    ),
                });
            }
            let token = text.trim().to_owned();
            if token.is_empty() {
                return Err(AdminError::TokenUnsafe {
                    path,
                    why: "it is empty: delete it to have a new one made".to_owned(),
                });
            }
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token: String = rand::random::<[u8; 32]>()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            // Created with 0600 from the start: no moment where another user could read it.
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(io)?;
            file.write_all(format!("{token}\n").as_bytes())
                .map_err(io)?;
            file.sync_all().map_err(io)?;
            Ok(token)
        }
        Err(e) => Err(io(e)),
    }
}

/// Reads an existing token (for the command line, which never makes one).
pub fn read(data_dir: &Path) -> Result<String, AdminError> {
    let path = data_dir.join(TOKEN_FILE);
    let text = std::fs::read_to_string(&path).map_err(|source| AdminError::Token {
        path: path.clone(),
        source,
    })?;
    Ok(text.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_made_once_with_mode_0600() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = load_or_create(dir.path()).expect("made");
        assert_eq!(first.len(), 64);
        let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
            .expect("file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create(dir.path()).expect("read"), first);
        assert_eq!(read(dir.path()).expect("read"), first);
    }
}

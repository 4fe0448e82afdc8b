//! Making a file's directory entry durable: the one directory sync every crate that writes
//! files (the queue, the Maildir driver, the transport's badmail, the binding registry) shares.

use std::io;
use std::path::Path;

/// Syncs a directory, so that the creation, renaming or removal of its entries survives a
/// crash (a synced file is not enough: its name lives in the directory).
#[cfg(unix)]
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Directories cannot be opened for syncing here; the file system orders metadata itself.
#[cfg(not(unix))]
pub fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syncs_a_folder_and_names_a_missing_one_in_its_error() {
        let dir = std::env::temp_dir();
        sync_dir(&dir).unwrap();
        let missing = dir.join("postern-no-such-folder-for-sync");
        assert_eq!(
            sync_dir(&missing).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }
}

//! `DataDirLock`: one router a data directory. An exclusive `flock` on `paas.lock` in the
//! directory, taken at start and held for the process's life (the kernel lets go of it when
//! the process ends, however it ends); the file says the holder's pid, so that a second
//! `paas logplex` or `paas up` on the same directory is refused with a message naming it,
//! before it reads or writes anything there.
//!
//! `flock` (not `fcntl` locks): it belongs to the open file, so nothing else in the process
//! that opens and closes the file can drop it, and children do not inherit it past `exec`
//! (the file is opened close-on-exec).

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "paas.lock";

/// Why the data directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "data directory {dir} is in use by another paas (pid {holder}); stop it, or give this one another --data-dir"
    )]
    Held {
        /// The directory.
        dir: PathBuf,
        /// The holder's pid as its lock file says it (`unknown` if it does not).
        holder: String,
    },
    /// The lock file could not be opened, locked or written.
    #[error("locking data directory {dir}: {source}")]
    Io {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// An exclusive lock on a data directory, held until dropped.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Locks `dir` (which must exist), or says who holds it. Never waits.
    pub fn acquire(dir: &Path) -> Result<DataDirLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            dir: dir.to_owned(),
            source,
        };
        // Not truncated on open: the holder's pid stays readable to whoever is refused.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => pid.to_string(),
                    Err(_) => "unknown".to_owned(),
                };
                return Err(LockError::Held {
                    dir: dir.to_owned(),
                    holder,
                });
            }
            Err(e) => return Err(io(e.into())),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes())
            .map_err(io)?;
        file.sync_data().map_err(io)?;
        Ok(DataDirLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "paas-lock-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_free_once_dropped() {
        let dir = temp();
        let held = DataDirLock::acquire(&dir).unwrap();
        let text = std::fs::read_to_string(held.path()).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        // flock conflicts between two opens of the file even in one process.
        match DataDirLock::acquire(&dir) {
            Err(LockError::Held { holder, .. }) => {
                assert_eq!(holder, std::process::id().to_string())
            }
            other => panic!("expected Held, got {other:?}"),
        }
        drop(held);
        let again = DataDirLock::acquire(&dir).unwrap();
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

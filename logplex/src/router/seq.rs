//! Keeping each app's `seq` monotonic across restarts: a small file per app,
//! `DATA_DIR/seq/<app-id>`, holding the highest `seq` the app may have used. Lines are
//! numbered inside a block reserved ahead: before the first line past the reservation, the
//! channel writes (atomically, synced) a new end `SEQ_BLOCK` further, so a crash at any point
//! leaves a file at or above every `seq` a reader could have seen, and the next start numbers
//! on from there (a jump of at most one block after a crash). A clean stop writes the exact
//! last `seq`, so the next start continues without a jump. Format v1: `paas-seq 1\n<N>\n`.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// How many `seq` numbers a channel reserves at once: one synced write per this many lines.
pub const SEQ_BLOCK: u64 = 1_000_000;

const MAGIC: &str = "paas-seq 1\n";

/// Why a seq file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SeqFileError {
    /// Reading it failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not a seq file of a version this build reads.
    #[error("{path}: not a paas seq file (version 1)")]
    Damaged {
        /// The file.
        path: PathBuf,
    },
}

/// The seq directory under a data directory.
pub fn seq_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("seq")
}

/// One app's seq file.
#[derive(Clone, Debug)]
pub struct SeqFile {
    path: PathBuf,
}

impl SeqFile {
    /// The seq file of the app whose id is `app_id`, in `dir` (see `seq_dir`).
    pub fn new(dir: &Path, app_id: &str) -> Self {
        SeqFile {
            path: dir.join(app_id),
        }
    }

    /// The highest `seq` the app may have used; 0 when there is no file (a new app).
    pub fn read(&self) -> Result<u64, SeqFileError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(source) => {
                return Err(SeqFileError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
        };
        text.strip_prefix(MAGIC)
            .and_then(|rest| rest.strip_suffix('\n'))
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| SeqFileError::Damaged {
                path: self.path.clone(),
            })
    }

    /// Records `upto` as the highest `seq` the app may use, atomically and durably (0600 in a
    /// 0700 directory).
    pub fn write(&self, upto: u64) -> std::io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(self.path.file_name().unwrap_or_default());
        tmp_name.push(".tmp");
        let tmp = dir.join(tmp_name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(format!("{MAGIC}{upto}\n").as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        std::fs::File::open(dir)?.sync_all()
    }

    /// Removes the file (the app is deleted).
    pub fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seq_file_round_trips_and_damage_is_an_error() {
        let dir = std::env::temp_dir().join(format!("logplex-seq-{}", std::process::id()));
        let f = SeqFile::new(&dir, "app-id");
        assert_eq!(f.read().unwrap(), 0, "no file: a new app");
        f.write(1_000_042).unwrap();
        assert_eq!(f.read().unwrap(), 1_000_042);
        std::fs::write(dir.join("app-id"), "paas-seq 1\nnot a number\n").unwrap();
        assert!(matches!(f.read(), Err(SeqFileError::Damaged { .. })));
        f.remove();
        assert_eq!(f.read().unwrap(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! Errors of the tree engine. Every variant names the archive entry or file concerned.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// An I/O error on a file of the tree being read or restored.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The archive is malformed (truncated, bad header, bad checksum, ...).
    #[error("corrupt archive at {entry}: {reason}")]
    Format { entry: String, reason: String },
    /// An entry would write outside the restore directory, or through a symlink.
    #[error("refusing unsafe entry {entry}: {reason}")]
    Unsafe { entry: String, reason: String },
    /// Something the format cannot represent or imgport cannot do on this side: a
    /// file export cannot encode, a restore stopped by a failing writer. Not a defect
    /// of the archive (exit 1).
    #[error("{entry}: {reason}")]
    Unsupported { entry: String, reason: String },
    /// The entry asked for (`cat`) is not in the archive.
    #[error("{entry}: not in {archive}")]
    NotInArchive { entry: String, archive: String },
    /// The archive holds something imgport does not read or will not restore (another
    /// cpio dialect, an oversized meta header, a GNU multi-volume entry, an entry
    /// replacing a non-empty directory, an owner id chown cannot set): bundle content,
    /// so the bundle is refused like a malformed one (exit 4).
    #[error("{entry}: {reason}")]
    UnsupportedInput { entry: String, reason: String },
}

impl TreeError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> TreeError {
        TreeError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Shows raw path bytes to a user (lossy, but escapes newlines and controls).
pub fn display_path(path: &[u8]) -> String {
    String::from_utf8_lossy(path).escape_debug().to_string()
}

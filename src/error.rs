//! The library's error type. Each module has its own typed error; this one wraps them
//! and adds the path or field a user must be told about.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The bundle lacks a file its manifest needs (kernel, raw image, tree, extra...),
    /// whatever the message text, which is xCAT's where xCAT has one.
    #[error("{0}")]
    Incomplete(String),
    /// Reading the bundle stream failed inside `what` (a member, or the bundle's first
    /// bytes): cut short, bad compression, or a failing read of the bundle itself. A
    /// failing write on the MN is [`Error::Io`] instead.
    #[error("{what}: {source}")]
    BundleRead {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The image or bundle asked for does not exist (xCAT's "Cannot find ..." texts).
    #[error("{0}")]
    NotFound(String),
    /// A path from a manifest, table or bundle that would leave the target root.
    #[error("refusing path {path}: {reason}")]
    UnsafePath { path: String, reason: String },
    /// The bundle stream is not a readable tar (or gzip'd tar).
    #[error("corrupt bundle: {0}")]
    Bundle(String),
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),
    #[error(transparent)]
    Tree(#[from] crate::tree::TreeError),
    /// A `-R` transfer through ssh failed (the message carries ssh's own lines).
    #[error(transparent)]
    Remote(#[from] crate::remote::RemoteError),
    /// A condition xCAT reports with a fixed message text (kept byte-exact for scripts).
    #[error("{0}")]
    Xcat(String),
    /// Another run holds the MN lock and `--no-wait` was given.
    #[error("the MN is busy: the lock on {} is held by {holder} (--no-wait)", path.display())]
    Locked { path: PathBuf, holder: String },
    /// An interrupted import left a journal this run cannot act on (a reader on a
    /// root it cannot write).
    #[error("{0}")]
    Interrupted(String),
}

/// What kind of failure an error is, for exit codes scripts can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The image or bundle does not exist.
    NotFound,
    /// The bundle is unreadable, malformed, incomplete, or refused as unsafe.
    Corrupt,
    /// Anything else (I/O on the MN, catalog, ssh, xCAT's own refusals).
    Failed,
}

impl Error {
    /// Classifies the error by the kind of failure (see [`Failure`]), never by which
    /// module built it: every kind of bundle defect is [`Failure::Corrupt`].
    pub fn failure(&self) -> Failure {
        use crate::tree::TreeError;
        match self {
            Error::NotFound(_) | Error::Tree(TreeError::NotInArchive { .. }) => Failure::NotFound,
            Error::Bundle(_)
            | Error::BundleRead { .. }
            | Error::Incomplete(_)
            | Error::Manifest(_)
            | Error::UnsafePath { .. } => Failure::Corrupt,
            Error::Tree(
                TreeError::Format { .. }
                | TreeError::Unsafe { .. }
                | TreeError::UnsupportedInput { .. },
            ) => Failure::Corrupt,
            _ => Failure::Failed,
        }
    }

    /// A failing read of the bundle stream inside `what` (see [`Error::BundleRead`]).
    pub fn bundle_read(what: impl Into<String>, source: std::io::Error) -> Error {
        Error::BundleRead {
            what: what.into(),
            source,
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

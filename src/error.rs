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
    /// The bundle lacks a file its manifest needs.
    #[error("{0}")]
    Incomplete(String),
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
}

/// What kind of failure an error is, for exit codes scripts can branch on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The image or bundle does not exist.
    NotFound,
    /// The bundle is unreadable, malformed, or refused as unsafe.
    Corrupt,
    /// Anything else (I/O, catalog, xCAT's own refusals).
    Failed,
}

impl Error {
    /// Classifies the error (see [`Failure`]).
    pub fn failure(&self) -> Failure {
        use crate::tree::TreeError;
        match self {
            Error::NotFound(_) => Failure::NotFound,
            Error::Bundle(_)
            | Error::Incomplete(_)
            | Error::Manifest(_)
            | Error::UnsafePath { .. } => Failure::Corrupt,
            Error::Tree(TreeError::Format { .. } | TreeError::Unsafe { .. }) => Failure::Corrupt,
            _ => Failure::Failed,
        }
    }

    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

//! The statelite root tree (`<rootimgdir>/rootimg`): walk it, encode it into an
//! archive, decode archives (our pax tar and xCAT's cpio newc), restore them.
//!
//! This module owns "tree → bytes" and "bytes → tree". It never writes outside the
//! directory it is given to restore into: every entry is created relative to directory
//! file descriptors, without following symlinks the archive created.

pub mod archive;
pub mod codec;
pub mod encode;
pub mod entry;
pub mod error;
pub mod format;
pub mod restore;

pub use entry::{Entry, Kind, Timestamp};
pub use error::TreeError;

// The old flat paths, kept only while callers move to the new layout.
pub use codec::{gzip as member, zstd_seekable as seekable};
pub use encode::{walk, writer};
pub use format::{index, newc as cpio, tar_decode as reader, tar_header as pax};
pub use restore::{units as inflate, zstd_stream as zstd_restore};

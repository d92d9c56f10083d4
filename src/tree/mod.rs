//! The statelite root tree (`<rootimgdir>/rootimg`): walk it, encode it into an
//! archive, decode archives (our pax tar and xCAT's cpio newc), restore them.
//!
//! This module owns "tree → bytes" and "bytes → tree". It never writes outside the
//! directory it is given to restore into: every entry is created relative to directory
//! file descriptors, without following symlinks the archive created.

pub mod archive;
pub mod codec;
pub mod cpio;
pub mod error;
pub mod index;
pub mod inflate;
pub mod member;
pub mod meta;
pub mod pax;
mod pipeline;
pub mod reader;
pub mod restore;
pub mod seekable;
pub mod walk;
pub mod writer;
pub mod zstd_restore;

pub use error::TreeError;
pub use meta::{Entry, Kind, Timestamp};

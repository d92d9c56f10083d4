//! The statelite root tree (`<rootimgdir>/rootimg`): walk it, encode it into an
//! archive, decode archives (our pax tar and xCAT's cpio newc), restore them.
//!
//! This module owns "tree → bytes" and "bytes → tree". It never writes outside the
//! directory it is given to restore into: every entry is created relative to directory
//! file descriptors, without following symlinks the archive created. It knows nothing
//! of bundles: the bundle module finds a tree in a bundle and hands it over as a
//! stream or a `Read + Seek`.
//!
//! Layout, one job per file:
//!
//! - `entry.rs`, `error.rs`: the archived entry record every format shares; errors.
//! - `format/`: bytes only, both directions of each format: tar header, pax records,
//!   ACL text, tar decoder, cpio newc, the codec-neutral index model.
//! - `codec/`: how the tar is compressed: gzip members and their index trailer, zstd
//!   frames and the seekable trailer, each with its unit splitter; the `Codec` enum.
//! - `encode/`: tree → archive: the walk, the entry encoder, the parallel pipeline,
//!   the writers (pax tar, cpio newc).
//! - `restore/`: archive → tree: the ordered parallel unit decoder (one for every
//!   codec), format detection, the dispatcher, the file-writer pool, the `*at` helpers.
//! - `archive.rs`: random access (ls, cat) over any `Read + Seek`; `verify.rs`: the
//!   streaming, parallel verify over the same archive.
//! - `io.rs`, `threads.rs`: the read helpers and the one thread-count rule.
//!
//! Callers use the names re-exported here; the modules themselves are private to the
//! crate so files can move without breaking them.

pub(crate) mod archive;
pub(crate) mod codec;
pub(crate) mod encode;
pub(crate) mod entry;
pub(crate) mod error;
pub(crate) mod format;
pub(crate) mod io;
pub(crate) mod restore;
pub(crate) mod threads;
pub(crate) mod verify;

pub use archive::TreeArchive;
pub use codec::{read_tree_index, zstd_level, Codec};
pub use encode::newc::{
    prepare_newc, write_newc, write_newc_gz, NewcOptions, NewcStats, NewcTree, SpooledSidecar,
};
pub use encode::walk::{walk, Walk, WalkOptions, WalkStream};
pub use encode::writer::{
    measure, write_tar, write_tree, EntryEncoder, TreeStats, WriteOptions, ROOTIMG_TOP,
};
pub use entry::{Entry, Kind, Timestamp};
pub use error::{display_path, TreeError};
pub use format::index::{
    chunk_digest, cmp_paths, file_digest, share as share_source, EncodedIndex, Index, IndexBuilder,
    IndexEntry, IndexError, MemberInfo, SharedSource, StreamFormat, DIGEST_CHUNK_BYTES,
};
pub use format::newc::CpioReader;
pub use format::sidecar::{Record as SidecarRecord, SidecarReader, SIDECAR_MEMBER};
pub use format::tar_decode::{DataReader, EntryReader, TarReader};
pub use restore::{
    restore, restore_entries, restore_newc_with_sidecar, restore_stream, restore_zstd,
    RestoreOptions, RestoreStats,
};
pub use verify::{verify_archive, verify_with, VerifyOptions, VerifyReport};

/// Byte-level pieces of the formats, for the fuzz targets (`fuzz/`), the seed
/// generator (`examples/fuzz_seeds.rs`) and the format tests, which build and pick
/// apart raw gzip members, index trailers and tar headers. Library callers never need
/// them, and they are not a stable interface: hidden from the docs for that reason.
#[doc(hidden)]
pub mod internals {
    pub use super::codec::gzip;
    pub use super::codec::gzip_trailer;
    pub use super::codec::zstd_seekable;
    pub use super::format::index::v2 as index_v2;
    pub use super::format::tar_header;
}

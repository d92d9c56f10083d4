//! What every codec has in common: a tree's tar is cut into independent units (gzip
//! members, zstd frames), each compressed alone. These are the records both
//! directions pass around; the codecs produce and consume them, and the parallel
//! engines (the encoder's pipeline, the restore's ordered decoder) are written once
//! over them.

use std::io::{self, Read};

/// Largest unit (compressed or not) a reader accepts. Writers stay far below it (about
/// 1 MiB of entries or one 4 MiB file chunk per unit, see
/// [`Codec::unit_target_bytes`](super::Codec::unit_target_bytes)); the bound keeps a
/// hostile length field from allocating gigabytes.
pub const MAX_UNIT_BYTES: usize = 64 << 20;

/// One unit as the writer recorded it, for the codec's trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitRecord {
    pub compressed: u64,
    pub uncompressed: u64,
    /// The codec's own per-unit check value: for zstd the frame's content checksum (low
    /// 32 bits of XXH64), copied into the seek table; 0 for gzip.
    pub check: u32,
}

/// One whole compressed unit cut from a stream, not yet decoded.
#[derive(Debug)]
pub struct RawUnit {
    pub bytes: Vec<u8>,
    /// The decoded size the unit's own header announces, when it does (a zstd frame's
    /// content size; a gzip member says it in its trailer, which the decoder reads).
    pub content_size: Option<u64>,
    /// How errors name this unit, e.g. `gzip member 3 (at byte 1234 of the compressed
    /// stream)` or `zstd frame 3`.
    pub label: String,
}

/// The splitter a codec supplies to the ordered parallel decoder (gzp's
/// `BlockFormatSpec`): it finds where each unit ends from headers alone, without
/// decoding, so whole units can be decoded on other threads.
pub trait UnitSplitter {
    /// The sequential decoder for a part of the stream that cannot be split.
    type Tail: Read;

    /// The next whole unit, or `None` when no more units come: at the end of the
    /// stream, or where the rest must go through [`UnitSplitter::take_tail`]. Errors
    /// name the place in the stream.
    fn next_unit(&mut self) -> io::Result<Option<RawUnit>>;

    /// Once [`UnitSplitter::next_unit`] returned `None`: the rest of the stream,
    /// decoded sequentially, when the codec met something it cannot split (another
    /// writer's gzip member, which has no length to hop by). `None` means the end.
    fn take_tail(&mut self) -> Option<Self::Tail>;
}

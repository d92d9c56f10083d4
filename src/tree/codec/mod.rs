//! The two ways a tree's tar is compressed (FORMAT.md §2 gzip, §6 zstd), behind one
//! small interface so the parallel writer and the readers stay codec-agnostic.
//!
//! Like gzp's `FormatSpec`, a codec only says how one unit of tar bytes becomes one
//! independent compressed unit (a gzip member or a zstd frame), how large units should
//! be, how a stream is cut back into units (its [`UnitSplitter`]), how units are
//! decoded, and what trailer (index, footer, seek table) follows the units. Cutting
//! the tar, reading files, digesting, ordering and indexing are shared: the encoder's
//! pipeline and the restore's ordered decoder are each written once over this.
//!
//! Files: `gzip.rs` (one member), `gzip_trailer.rs` (the index members and footer),
//! `gzip_split.rs` (cutting a member stream); `zstd_seekable.rs` (the trailer: index
//! frames and seek table), `zstd_frames.rs` (cutting a frame stream, decoding a
//! frame); `unit.rs` (what both share).

use std::io::{self, Read, Seek, SeekFrom, Write};

use libdeflater::Crc;

pub mod gzip;
pub mod gzip_split;
pub mod gzip_trailer;
pub mod unit;
pub mod zstd_frames;
pub mod zstd_seekable;

use crate::tree::format::index::{EncodedIndex, Index, IndexError, MemberInfo, SharedSource};
use gzip::MemberError;
pub use unit::{RawUnit, UnitRecord, UnitSplitter, MAX_UNIT_BYTES};

/// How a tree's tar is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Codec {
    /// Multi-member gzip, `rootimgtree.gz` (FORMAT.md §2): every gzip reader and xCAT's
    /// tooling read it.
    #[default]
    Gzip,
    /// zstd seekable format, `rootimgtree.zst` (FORMAT.md §6): decodes several times
    /// faster than gzip and compresses better, but xCAT cannot read it.
    Zstd,
}

/// The tree's file name inside a bundle's image directory, per codec: the one table
/// of these names (xCAT's cpio newc tree is also a `rootimgtree.gz`).
const TREE_FILE_NAMES: [(Codec, &str); 2] = [
    (Codec::Gzip, "rootimgtree.gz"),
    (Codec::Zstd, "rootimgtree.zst"),
];

impl Codec {
    /// The tree's file name inside a bundle's image directory.
    pub fn tree_file_name(self) -> &'static str {
        TREE_FILE_NAMES
            .iter()
            .find(|(c, _)| *c == self)
            .map_or("rootimgtree.gz", |(_, name)| name)
    }

    /// The codec whose tree is named `name` (a bundle member's file name), if any.
    pub fn from_tree_file_name(name: &str) -> Option<Codec> {
        TREE_FILE_NAMES
            .iter()
            .find(|(_, n)| *n == name)
            .map(|(c, _)| *c)
    }

    /// The writer cuts a unit (gzip member, zstd frame) at the first entry boundary
    /// after this many tar bytes (FORMAT.md §2.1, §6), and also after every
    /// [`DIGEST_CHUNK_BYTES`](crate::tree::format::index::DIGEST_CHUNK_BYTES) of one
    /// file's data. gzip's 32 KiB window makes 1 MiB members nearly free (+0.04 % over
    /// one deflate stream); zstd's large window makes small frames costly (+3.9 % at
    /// 1 MiB, +0.7 % at 4 MiB, ARCHIVING.md §2), so its frames are
    /// 4 MiB. This is the only definition of the unit size.
    pub fn unit_target_bytes(self) -> u64 {
        match self {
            Codec::Gzip => 1 << 20,
            Codec::Zstd => 4 << 20,
        }
    }
}

/// The zstd level used for imgport's gzip-scale `level` (0–9), so that the default
/// (6, gzip's and xCAT's) gives zstd's own default (3) and each end of the scale maps
/// to the matching end of zstd's (1 fastest; 19 the strongest without `--ultra`,
/// whose decoders need no extra memory).
///
/// | level | 0–2 | 3–4 | 5–6 | 7 | 8  | 9  |
/// |-------|-----|-----|-----|---|----|----|
/// | zstd  | 1   | 2   | 3   | 6 | 12 | 19 |
pub fn zstd_level(level: u32) -> i32 {
    match level {
        0..=2 => 1,
        3..=4 => 2,
        5..=6 => 3,
        7 => 6,
        8 => 12,
        _ => 19,
    }
}

/// One worker's compressor: turns a unit's tar bytes into one independent unit.
pub(super) enum UnitEncoder {
    Gzip(libdeflater::Compressor),
    Zstd(zstd::bulk::Compressor<'static>),
}

/// A compressed unit and what the index and trailer need to know about it.
pub(super) struct EncodedUnit {
    pub bytes: Vec<u8>,
    pub info: MemberInfo,
    /// The codec's own per-unit check value for the trailer: for zstd the frame's
    /// content checksum (low 32 bits of XXH64), copied into the seek table; 0 for gzip.
    pub check: u32,
}

impl UnitEncoder {
    /// A compressor for `codec` at imgport's gzip-scale `level` (0–9).
    pub fn new(codec: Codec, level: u32) -> std::io::Result<UnitEncoder> {
        Ok(match codec {
            Codec::Gzip => UnitEncoder::Gzip(gzip::compressor(level)),
            Codec::Zstd => {
                let mut c = zstd::bulk::Compressor::new(zstd_level(level))?;
                // Every frame carries its content checksum, so `zstd -t` and every
                // decoder check each frame on their own; the seek table repeats it.
                c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))?;
                // Frames are decoded alone: a dictionary ID would only cost bytes.
                c.set_parameter(zstd::zstd_safe::CParameter::DictIdFlag(false))?;
                UnitEncoder::Zstd(c)
            }
        })
    }

    /// Compresses one unit.
    pub fn encode(&mut self, tar: &[u8]) -> std::io::Result<EncodedUnit> {
        match self {
            UnitEncoder::Gzip(c) => {
                let bytes = gzip::encode_data(c, tar);
                let info = MemberInfo {
                    compressed: bytes.len() as u64,
                    uncompressed: tar.len() as u64,
                    crc32: trailer_u32(&bytes, gzip::TRAILER_BYTES),
                    digest: Some(member_digest(tar)),
                };
                Ok(EncodedUnit {
                    bytes,
                    info,
                    check: 0,
                })
            }
            UnitEncoder::Zstd(c) => {
                // The bulk API knows the input size, so the frame header records the
                // content size: streaming readers size their buffers from it.
                let bytes = c.compress(tar)?;
                let mut crc = Crc::new();
                crc.update(tar);
                let info = MemberInfo {
                    compressed: bytes.len() as u64,
                    uncompressed: tar.len() as u64,
                    crc32: crc.sum(),
                    digest: Some(member_digest(tar)),
                };
                // The checksum flag puts XXH64's low 32 bits in the frame's last 4 bytes.
                let check = trailer_u32(&bytes, 4);
                Ok(EncodedUnit { bytes, info, check })
            }
        }
    }
}

/// A member's strong digest (FORMAT.md §3.4): BLAKE3 of its inflated bytes.
pub fn member_digest(content: &[u8]) -> [u8; 32] {
    *blake3::hash(content).as_bytes()
}

/// The u32 (LE) that starts `from_end` bytes before the end of `bytes`, or 0.
fn trailer_u32(bytes: &[u8], from_end: usize) -> u32 {
    let at = bytes.len().saturating_sub(from_end);
    bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

/// Writes what follows the data units of a tree written from offset 0 up to
/// `data_end`: the index, its footer and (zstd) the seek table. Returns the bytes
/// written.
pub(super) fn write_trailer<W: Write + ?Sized>(
    codec: Codec,
    index: &EncodedIndex,
    data_end: u64,
    units: &[UnitRecord],
    out: &mut W,
) -> std::io::Result<u64> {
    match codec {
        Codec::Gzip => gzip_trailer::write_gzip_trailer(index, data_end, out),
        Codec::Zstd => zstd_seekable::write_zstd_trailer(index, data_end, units, out),
    }
}

/// Which codec wrote the tree held in bytes `0..len` of `src`, from its last bytes:
/// a zstd seekable tree ends with the seekable magic, a gzip tree with the empty
/// footer member's zero trailer.
pub fn detect<R: Read + Seek + ?Sized>(src: &mut R, len: u64) -> std::io::Result<Codec> {
    if len < 4 {
        return Ok(Codec::Gzip);
    }
    let mut tail = [0u8; 4];
    src.seek(SeekFrom::Start(len - 4))?;
    src.read_exact(&mut tail)?;
    Ok(
        if u32::from_le_bytes(tail) == zstd_seekable::SEEKABLE_MAGIC {
            Codec::Zstd
        } else {
            Codec::Gzip
        },
    )
}

/// Reads the index of a tree of either codec held in bytes `0..len` of `src`; a v2
/// index keeps a handle on `src` to read its blocks when they are needed.
pub fn read_tree_index(src: SharedSource, len: u64) -> Result<(Codec, Index), IndexError> {
    let codec = detect(&mut *crate::tree::format::index::lock_source(&src), len)?;
    let index = match codec {
        Codec::Gzip => gzip_trailer::read_gzip_index(src, len)?,
        Codec::Zstd => zstd_seekable::read_zstd_index(src, len)?,
    };
    Ok((codec, index))
}

/// One thread's decompressor for data units.
pub(crate) enum UnitDecoder {
    Gzip(libdeflater::Decompressor),
    /// Created on first use: creating it can fail, and rayon's `map_init` cannot.
    Zstd(Option<zstd::bulk::Decompressor<'static>>),
}

impl UnitDecoder {
    pub fn new(codec: Codec) -> UnitDecoder {
        match codec {
            Codec::Gzip => UnitDecoder::Gzip(libdeflater::Decompressor::new()),
            Codec::Zstd => UnitDecoder::Zstd(None),
        }
    }

    /// Decodes one complete unit that the index describes as `info`, checking its
    /// size and CRC32 (gzip: against the member trailer; zstd: against the index, the
    /// frame's own XXH64 being checked by libzstd) and, for v2 indexes, its BLAKE3.
    pub fn decode(&mut self, unit: &[u8], info: &MemberInfo) -> Result<Vec<u8>, MemberError> {
        let data = match self {
            UnitDecoder::Gzip(d) => gzip::decode_data(d, unit)?,
            UnitDecoder::Zstd(ctx) => {
                if info.uncompressed > MAX_UNIT_BYTES as u64 {
                    return Err(MemberError::BadLength(info.uncompressed));
                }
                let data = zstd_frames::decompress_frame(ctx, unit, Some(info.uncompressed))
                    .map_err(|e| MemberError::Inflate(e.to_string()))?;
                let mut crc = Crc::new();
                crc.update(&data);
                if crc.sum() != info.crc32 {
                    return Err(MemberError::Crc {
                        expected: info.crc32,
                        actual: crc.sum(),
                    });
                }
                data
            }
        };
        if data.len() as u64 != info.uncompressed {
            return Err(MemberError::Size {
                expected: info.uncompressed.min(u32::MAX as u64) as u32,
                actual: data.len(),
            });
        }
        if info.digest.is_some_and(|d| d != member_digest(&data)) {
            return Err(MemberError::Digest);
        }
        Ok(data)
    }

    /// Decodes one unit cut from a stream, checked by its own means (gzip: the
    /// member's CRC32 and ISIZE; zstd: the frame checksum and the content size its
    /// header announced, `content_size`), into the recycled buffer `out`: returns the
    /// buffer and how much of it is the unit's content.
    pub fn decode_into(
        &mut self,
        unit: &[u8],
        content_size: Option<u64>,
        out: Vec<u8>,
    ) -> io::Result<(Vec<u8>, usize)> {
        match self {
            UnitDecoder::Gzip(d) => gzip::decode_into(d, unit, out).map_err(io::Error::other),
            UnitDecoder::Zstd(ctx) => {
                let data = zstd_frames::decompress_frame(ctx, unit, content_size)?;
                if content_size.is_some_and(|n| data.len() as u64 != n) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "zstd frame is shorter than its header says",
                    ));
                }
                let len = data.len();
                Ok((data, len))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_level_maps_to_zstd_default_and_the_scale_is_monotonic() {
        assert_eq!(zstd_level(6), 3);
        assert_eq!(zstd_level(1), 1);
        assert_eq!(zstd_level(9), 19);
        for l in 0..9 {
            assert!(zstd_level(l) <= zstd_level(l + 1));
        }
    }

    #[test]
    fn both_codecs_round_trip_a_unit() {
        let tar: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 977).to_le_bytes())
            .collect();
        for codec in [Codec::Gzip, Codec::Zstd] {
            let mut enc = UnitEncoder::new(codec, 6).unwrap();
            let unit = enc.encode(&tar).unwrap();
            assert_eq!(unit.info.uncompressed, tar.len() as u64);
            assert_eq!(unit.info.compressed, unit.bytes.len() as u64);
            let mut dec = UnitDecoder::new(codec);
            assert!(dec.decode(&unit.bytes, &unit.info).unwrap() == tar);
            let mut bad = unit.info;
            bad.crc32 ^= 1;
            if codec == Codec::Zstd {
                assert!(matches!(
                    dec.decode(&unit.bytes, &bad),
                    Err(MemberError::Crc { .. })
                ));
            }
        }
    }

    #[test]
    fn zstd_frames_are_plain_zstd_with_their_checksum_last() {
        let tar = vec![42u8; 100_000];
        let unit = UnitEncoder::new(Codec::Zstd, 6)
            .unwrap()
            .encode(&tar)
            .unwrap();
        assert_eq!(zstd::stream::decode_all(&unit.bytes[..]).unwrap(), tar);
        // Corrupting the stored checksum makes libzstd refuse the frame.
        let mut bad = unit.bytes.clone();
        let n = bad.len();
        bad[n - 1] ^= 0xff;
        assert!(zstd::stream::decode_all(&bad[..]).is_err());
    }
}

//! The zstd layout of a tree, `rootimgtree.zst` (FORMAT.md §6): the tar as independent
//! zstd frames, then the imgport index and footer in skippable frames, then the seek
//! table of the zstd seekable format (facebook/zstd `contrib/seekable_format`, v0.1.0).
//!
//! Every zstd decoder skips skippable frames, so `zstd -dc` yields exactly the tar and
//! `zstd -t` passes; seekable-format readers find every frame through the seek table;
//! imgport's readers find the index through the footer frame just before it. Cutting a
//! stream of these frames for the parallel decoder is `zstd_frames`' job.
//!
//! Nothing is allocated from a length read off the input without checking it against
//! the file's own length or a fixed bound.

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::sync::Arc;

use super::unit::UnitRecord;
use crate::tree::format::index::v2::{decompress_exact, EncodedIndex, MAX_BLOCK_BYTES};
use crate::tree::format::index::{
    lock_source, Index, IndexError, ReadSeekSend, SharedSource, MAX_INDEX_BYTES,
};

/// First of the 16 zstd skippable-frame magics (0x184D2A50..=0x184D2A5F).
pub const SKIPPABLE_MAGIC_BASE: u32 = 0x184D_2A50;
/// Skippable magic of the seek table frame (seekable format).
pub const SEEK_TABLE_MAGIC: u32 = 0x184D_2A5E;
/// `Seekable_Magic_Number`, the file's last 4 bytes.
pub const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;
/// Skippable magic of imgport's index and footer frames: a different one from the
/// seek table's, so neither can be taken for the other.
pub const IMGPORT_SKIPPABLE_MAGIC: u32 = 0x184D_2A59;
/// zstd frame magic.
pub const ZSTD_MAGIC: u32 = 0xFD2F_B528;
/// `Seek_Table_Footer`: number of frames, descriptor, seekable magic.
pub const SEEK_TABLE_FOOTER_BYTES: usize = 9;
/// `Checksum_Flag` in the seek table descriptor.
const CHECKSUM_FLAG: u8 = 0x80;
/// Descriptor bits 6–2, reserved: a decoder must refuse tables that set them.
const RESERVED_BITS: u8 = 0x7c;
/// The seekable format's own limit on frames.
const MAX_FRAMES: u64 = 0x800_0000;
/// Low 32 bits of XXH64 (seed 0) of empty input: the seek table checksum of the
/// skippable frames, whose decompressed content is empty.
pub const EMPTY_XXH64_LOW: u32 = 0x51D8_E999;

/// Magic at the start of the v1 index frame's payload.
const INDEX_MAGIC: &[u8; 8] = b"IMGPZIX1";
/// Magic at the start of the v1 footer frame's payload.
const FOOTER_MAGIC: &[u8; 8] = b"IMGPZTR1";
/// v1 footer payload: magic, index offset, data frames, blob length, index length, CRC.
pub const FOOTER_PAYLOAD_BYTES: usize = 8 + 8 + 4 + 8 + 8 + 4;
/// The v1 footer frame: skippable header (magic, size) and payload.
pub const FOOTER_FRAME_BYTES: usize = 8 + FOOTER_PAYLOAD_BYTES;
/// Magic at the start of the v2 index frame's payload.
const INDEX_MAGIC_V2: &[u8; 8] = b"IMGPZIX2";
/// Magic at the start of the v2 footer frame's payload.
const FOOTER_MAGIC_V2: &[u8; 8] = b"IMGPZTR2";
/// v2 footer payload: magic, index offset, data frames, blob length (the index
/// frame's payload after its magic), head blob length, head length, head CRC32.
pub const FOOTER_PAYLOAD_BYTES_V2: usize = 8 + 8 + 4 + 8 + 8 + 8 + 4;
/// The v2 footer frame.
pub const FOOTER_FRAME_BYTES_V2: usize = 8 + FOOTER_PAYLOAD_BYTES_V2;

/// One entry of the seek table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeekEntry {
    pub compressed: u32,
    pub decompressed: u32,
    pub checksum: Option<u32>,
}

fn corrupt(what: impl Into<String>) -> IndexError {
    IndexError::Corrupt(what.into())
}

fn skippable_header(magic: u32, size: usize) -> [u8; 8] {
    let mut h = [0u8; 8];
    h[..4].copy_from_slice(&magic.to_le_bytes());
    // Callers bound `size` far below 4 GiB (index ≤ MAX_INDEX_BYTES).
    h[4..].copy_from_slice(&(size.min(u32::MAX as usize) as u32).to_le_bytes());
    h
}

/// Writes what follows the data frames (`data_end` bytes, described by `frames`, in
/// order): the index frame (v2: the blocks back to back, then the head), the footer
/// frame, the seek table. Returns the bytes written. The blocks are streamed from the
/// index (which may have spilled them to a temporary file), not gathered in memory.
pub(super) fn write_zstd_trailer<W: Write + ?Sized>(
    index: &EncodedIndex,
    data_end: u64,
    frames: &[UnitRecord],
    sink: &mut W,
) -> io::Result<u64> {
    let head_blob = crate::tree::format::index::v2::compress(&mut None, &index.head);
    let mut crc = libdeflater::Crc::new();
    crc.update(&index.head);
    let blob_len = index.blocks_len() + head_blob.len() as u64;

    let index_frame = 8 + INDEX_MAGIC_V2.len() + blob_len as usize;
    let mut out = Vec::with_capacity(
        8 + INDEX_MAGIC_V2.len() + FOOTER_FRAME_BYTES_V2 + 12 * (frames.len() + 4),
    );
    out.extend_from_slice(&skippable_header(
        IMGPORT_SKIPPABLE_MAGIC,
        INDEX_MAGIC_V2.len() + blob_len as usize,
    ));
    out.extend_from_slice(INDEX_MAGIC_V2);
    sink.write_all(&out)?;
    index.for_each_block(|b| sink.write_all(b))?;
    out.clear();
    out.extend_from_slice(&head_blob);

    out.extend_from_slice(&skippable_header(
        IMGPORT_SKIPPABLE_MAGIC,
        FOOTER_PAYLOAD_BYTES_V2,
    ));
    out.extend_from_slice(FOOTER_MAGIC_V2);
    out.extend_from_slice(&data_end.to_le_bytes());
    out.extend_from_slice(&(frames.len() as u32).to_le_bytes());
    out.extend_from_slice(&blob_len.to_le_bytes());
    out.extend_from_slice(&(head_blob.len() as u64).to_le_bytes());
    out.extend_from_slice(&(index.head.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc.sum().to_le_bytes());

    // The seek table lists every frame before it, skippable ones included with a
    // decompressed size of 0 (as the format asks), so its compressed sizes add up to
    // exactly where it starts.
    let count = frames.len() + 2;
    out.extend_from_slice(&skippable_header(
        SEEK_TABLE_MAGIC,
        12 * count + SEEK_TABLE_FOOTER_BYTES,
    ));
    let mut entry = |c: u64, d: u64, check: u32| {
        // Data frames hold at most one unit (≤ MAX_UNIT_BYTES); the index frame is
        // bounded by MAX_INDEX_BYTES: both fit in u32.
        out.extend_from_slice(&(c.min(u32::MAX as u64) as u32).to_le_bytes());
        out.extend_from_slice(&(d.min(u32::MAX as u64) as u32).to_le_bytes());
        out.extend_from_slice(&check.to_le_bytes());
    };
    for f in frames {
        entry(f.compressed, f.uncompressed, f.check);
    }
    entry(index_frame as u64, 0, EMPTY_XXH64_LOW);
    entry(FOOTER_FRAME_BYTES_V2 as u64, 0, EMPTY_XXH64_LOW);
    out.extend_from_slice(&(count as u32).to_le_bytes());
    out.push(CHECKSUM_FLAG);
    out.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
    sink.write_all(&out)?;
    // The index frame's header and blocks went first; `out` holds the head onwards.
    Ok((index_frame - head_blob.len() + out.len()) as u64)
}

/// [`write_zstd_trailer`] into memory, for tests.
#[cfg(test)]
pub(super) fn encode_zstd_trailer(
    index: &EncodedIndex,
    data_end: u64,
    frames: &[UnitRecord],
) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    write_zstd_trailer(index, data_end, frames, &mut out)?;
    Ok(out)
}

fn read_at<R: Read + Seek + ?Sized>(src: &mut R, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    src.seek(SeekFrom::Start(offset))?;
    src.read_exact(&mut buf)?;
    Ok(buf)
}

pub(super) fn u32_at(b: &[u8], i: usize) -> u32 {
    b.get(i..i + 4)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u32::from_le_bytes)
}

pub(super) fn u64_at(b: &[u8], i: usize) -> u64 {
    b.get(i..i + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// Reads and checks the seek table of a seekable zstd file of `len` bytes: the table
/// frame must end the file and its compressed sizes must add up to where it starts.
/// Returns the entries and the table frame's offset.
pub fn read_seek_table<R: Read + Seek + ?Sized>(
    src: &mut R,
    len: u64,
) -> Result<(Vec<SeekEntry>, u64), IndexError> {
    if len < (8 + SEEK_TABLE_FOOTER_BYTES) as u64 {
        return Err(IndexError::Missing);
    }
    let foot = read_at(
        src,
        len - SEEK_TABLE_FOOTER_BYTES as u64,
        SEEK_TABLE_FOOTER_BYTES,
    )?;
    if u32_at(&foot, 5) != SEEKABLE_MAGIC {
        return Err(IndexError::Missing);
    }
    let count = u32_at(&foot, 0) as u64;
    let descriptor = foot[4];
    if descriptor & RESERVED_BITS != 0 {
        return Err(corrupt("seek table descriptor sets reserved bits"));
    }
    let entry_bytes: u64 = if descriptor & CHECKSUM_FLAG != 0 {
        12
    } else {
        8
    };
    let table_bytes = count * entry_bytes;
    let frame_bytes = 8 + table_bytes + SEEK_TABLE_FOOTER_BYTES as u64;
    if count > MAX_FRAMES || frame_bytes > len {
        return Err(corrupt("seek table is larger than the file"));
    }
    let table_at = len - frame_bytes;
    let frame = read_at(src, table_at, (8 + table_bytes) as usize)?;
    if u32_at(&frame, 0) != SEEK_TABLE_MAGIC
        || u32_at(&frame, 4) as u64 != table_bytes + SEEK_TABLE_FOOTER_BYTES as u64
    {
        return Err(corrupt("seek table frame header is wrong"));
    }
    let mut entries = Vec::with_capacity(count as usize);
    let mut sum = 0u64;
    for e in frame[8..].chunks_exact(entry_bytes as usize) {
        let entry = SeekEntry {
            compressed: u32_at(e, 0),
            decompressed: u32_at(e, 4),
            checksum: (entry_bytes == 12).then(|| u32_at(e, 8)),
        };
        sum += entry.compressed as u64;
        entries.push(entry);
    }
    if sum != table_at {
        return Err(corrupt(format!(
            "seek table frames add up to {sum} bytes, the table starts at {table_at}"
        )));
    }
    Ok((entries, table_at))
}

/// Where the index is, as the footer frame says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZstdFooter {
    pub index_offset: u64,
    pub data_frames: u32,
    pub blob_len: u64,
    pub index_len: u64,
    pub index_crc: u32,
}

/// Parses a footer frame ([`FOOTER_FRAME_BYTES`]); `None` when it is not imgport's.
pub fn parse_zstd_footer(frame: &[u8]) -> Option<ZstdFooter> {
    if frame.len() != FOOTER_FRAME_BYTES
        || u32_at(frame, 0) != IMGPORT_SKIPPABLE_MAGIC
        || u32_at(frame, 4) as usize != FOOTER_PAYLOAD_BYTES
        || &frame[8..16] != FOOTER_MAGIC
    {
        return None;
    }
    Some(ZstdFooter {
        index_offset: u64_at(frame, 16),
        data_frames: u32_at(frame, 24),
        blob_len: u64_at(frame, 28),
        index_len: u64_at(frame, 36),
        index_crc: u32_at(frame, 44),
    })
}

/// Where the v2 index is, as the footer frame says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZstdFooterV2 {
    pub index_offset: u64,
    pub data_frames: u32,
    pub blob_len: u64,
    pub head_blob_len: u64,
    pub head_len: u64,
    pub head_crc: u32,
}

/// Parses a v2 footer frame ([`FOOTER_FRAME_BYTES_V2`]); `None` when it is not one.
pub fn parse_zstd_footer_v2(frame: &[u8]) -> Option<ZstdFooterV2> {
    if frame.len() != FOOTER_FRAME_BYTES_V2
        || u32_at(frame, 0) != IMGPORT_SKIPPABLE_MAGIC
        || u32_at(frame, 4) as usize != FOOTER_PAYLOAD_BYTES_V2
        || &frame[8..16] != FOOTER_MAGIC_V2
    {
        return None;
    }
    Some(ZstdFooterV2 {
        index_offset: u64_at(frame, 16),
        data_frames: u32_at(frame, 24),
        blob_len: u64_at(frame, 28),
        head_blob_len: u64_at(frame, 36),
        head_len: u64_at(frame, 44),
        head_crc: u32_at(frame, 52),
    })
}

/// Reads the index (v2 or v1) of a `rootimgtree.zst` held in bytes `0..len` of `src`,
/// through the seek table and the footer frame, and checks that the seek table, the
/// footer and the index agree on every data frame. A v2 index keeps `src` to read
/// its blocks on demand.
pub fn read_zstd_index(src: SharedSource, len: u64) -> Result<Index, IndexError> {
    let (entries, table_at) = read_seek_table(&mut *lock_source(&src), len)?;
    let [data @ .., index_entry, footer_entry] = entries.as_slice() else {
        return Err(IndexError::Missing);
    };
    let data_end: u64 = data.iter().map(|e| e.compressed as u64).sum();
    let skippable_ok = index_entry.decompressed == 0
        && footer_entry.decompressed == 0
        && [index_entry, footer_entry]
            .iter()
            .all(|e| e.checksum.is_none_or(|c| c == EMPTY_XXH64_LOW));
    let index = match footer_entry.compressed as usize {
        FOOTER_FRAME_BYTES_V2 => {
            let frame = read_at(
                &mut *lock_source(&src),
                table_at - FOOTER_FRAME_BYTES_V2 as u64,
                FOOTER_FRAME_BYTES_V2,
            )?;
            let footer = parse_zstd_footer_v2(&frame).ok_or(IndexError::Missing)?;
            let index_frame = 16u64.saturating_add(footer.blob_len);
            if footer.data_frames as usize != data.len()
                || footer.index_offset != data_end
                || index_entry.compressed as u64 != index_frame
                || !skippable_ok
            {
                return Err(corrupt("footer and seek table disagree"));
            }
            if footer.head_blob_len > footer.blob_len
                || footer.head_blob_len > MAX_INDEX_BYTES
                || footer.head_len > MAX_INDEX_BYTES
            {
                return Err(corrupt("index is larger than imgport accepts"));
            }
            let head = {
                let mut g = lock_source(&src);
                let frame = read_at(&mut *g, footer.index_offset, 16)?;
                if u32_at(&frame, 0) != IMGPORT_SKIPPABLE_MAGIC
                    || u32_at(&frame, 4) as u64 != index_frame - 8
                    || &frame[8..16] != INDEX_MAGIC_V2
                {
                    return Err(corrupt("index frame header is wrong"));
                }
                let head_at = footer.index_offset + index_frame - footer.head_blob_len;
                read_at(&mut *g, head_at, footer.head_blob_len as usize)?
            };
            let head = decompress_exact(&head, footer.head_len, "index head")?;
            let mut crc = libdeflater::Crc::new();
            crc.update(&head);
            if crc.sum() != footer.head_crc {
                return Err(corrupt("index head CRC32 mismatch"));
            }
            let blocks_start = footer.index_offset + 16;
            let blocks_end = footer.index_offset + index_frame - footer.head_blob_len;
            let reader = Arc::clone(&src);
            let fetch = Arc::new(move |offset: u64, clen: u64| {
                if clen > MAX_BLOCK_BYTES || offset.saturating_add(clen) > blocks_end {
                    return Err(corrupt("index block lies outside the index frame"));
                }
                Ok(read_at(&mut *lock_source(&reader), offset, clen as usize)?)
            });
            Index::decode_v2(
                &head,
                footer.index_offset,
                (blocks_start, blocks_end),
                |c| c,
                fetch,
            )?
        }
        FOOTER_FRAME_BYTES => read_v1(
            &mut *lock_source(&src),
            table_at,
            (data_end, data.len()),
            index_entry,
            skippable_ok,
        )?,
        _ => return Err(IndexError::Missing),
    };
    let agree = index.members.len() == data.len()
        && index.members.iter().zip(data).all(|((m, _, _), e)| {
            m.compressed == e.compressed as u64 && m.uncompressed == e.decompressed as u64
        });
    if !agree {
        return Err(corrupt("index and seek table list different frames"));
    }
    Ok(index)
}

fn read_v1(
    src: &mut dyn ReadSeekSend,
    table_at: u64,
    (data_end, data_frames): (u64, usize),
    index_entry: &SeekEntry,
    skippable_ok: bool,
) -> Result<Index, IndexError> {
    let frame = read_at(
        src,
        table_at - FOOTER_FRAME_BYTES as u64,
        FOOTER_FRAME_BYTES,
    )?;
    let footer = parse_zstd_footer(&frame).ok_or(IndexError::Missing)?;
    let index_frame = 8 + INDEX_MAGIC.len() as u64 + footer.blob_len;
    if footer.data_frames as usize != data_frames
        || footer.index_offset != data_end
        || index_entry.compressed as u64 != index_frame
        || !skippable_ok
    {
        return Err(corrupt("footer and seek table disagree"));
    }
    if footer.blob_len > MAX_INDEX_BYTES || footer.index_len > MAX_INDEX_BYTES {
        return Err(corrupt("index is larger than imgport accepts"));
    }
    let frame = read_at(src, footer.index_offset, index_frame as usize)?;
    if u32_at(&frame, 0) != IMGPORT_SKIPPABLE_MAGIC
        || u32_at(&frame, 4) as u64 != index_frame - 8
        || &frame[8..16] != INDEX_MAGIC
    {
        return Err(corrupt("index frame header is wrong"));
    }
    let index = decompress_exact(&frame[16..], footer.index_len, "index")?;
    let mut crc = libdeflater::Crc::new();
    crc.update(&index);
    if crc.sum() != footer.index_crc {
        return Err(corrupt("index CRC32 mismatch"));
    }
    Index::decode(index, footer.index_offset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::codec::zstd_frames::{Frame, FrameScanner};
    use crate::tree::format::index::{share, IndexBuilder, MemberInfo};

    #[test]
    fn empty_xxh64_matches_what_libzstd_writes() {
        let mut c = zstd::bulk::Compressor::new(3).unwrap();
        c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
            .unwrap();
        let f = c.compress(b"").unwrap();
        assert_eq!(u32_at(&f, f.len() - 4), EMPTY_XXH64_LOW);
    }

    /// A fake tree: two zstd frames and the trailer.
    fn fake_tree() -> (Vec<u8>, Vec<Vec<u8>>) {
        let parts = [vec![1u8; 5000], b"second frame".repeat(100)];
        let mut file = Vec::new();
        let mut index = IndexBuilder::new();
        let mut records = Vec::new();
        for p in &parts {
            let mut c = zstd::bulk::Compressor::new(3).unwrap();
            c.set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
                .unwrap();
            let f = c.compress(p).unwrap();
            index.push_member(MemberInfo {
                compressed: f.len() as u64,
                uncompressed: p.len() as u64,
                crc32: 0,
                digest: Some([0; 32]),
            });
            records.push(UnitRecord {
                compressed: f.len() as u64,
                uncompressed: p.len() as u64,
                check: u32_at(&f, f.len() - 4),
            });
            file.extend_from_slice(&f);
        }
        let data_end = file.len() as u64;
        file.extend(encode_zstd_trailer(&index.finish(), data_end, &records).unwrap());
        (file, parts.to_vec())
    }

    #[test]
    fn trailer_round_trips_and_stays_plain_zstd() {
        let (file, parts) = fake_tree();
        let len = file.len() as u64;
        let (entries, table_at) = read_seek_table(&mut io::Cursor::new(&file), len).unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0].decompressed, 5000);
        assert_eq!((entries[2].decompressed, entries[3].decompressed), (0, 0));
        assert_eq!(entries[3].compressed as usize, FOOTER_FRAME_BYTES_V2);
        assert_eq!(table_at + 8 + 4 * 12 + 9, len);
        let index = read_zstd_index(share(io::Cursor::new(file.clone())), len).unwrap();
        assert_eq!(index.members.len(), 2);
        assert_eq!(
            index.data_end,
            entries[..2]
                .iter()
                .map(|e| e.compressed as u64)
                .sum::<u64>()
        );
        // A plain decoder sees only the frames' content.
        assert_eq!(zstd::stream::decode_all(&file[..]).unwrap(), parts.concat());
        // The scanner finds the two frames and three skippable ones.
        let mut s = FrameScanner::new(&file[..]);
        let mut kinds = Vec::new();
        while let Some(f) = s.next_frame().unwrap() {
            kinds.push(match f {
                Frame::Data { content_size, .. } => content_size,
                Frame::Skippable => None,
            });
        }
        assert_eq!(kinds, [Some(5000), Some(1200), None, None, None]);
    }

    #[test]
    fn a_spilled_index_writes_the_same_trailer() {
        use crate::tree::entry::{Entry, Kind};
        use crate::tree::format::index::IndexEntry;
        let fill = |mut b: IndexBuilder| {
            let mut at = 0;
            for i in 0..20_000u64 {
                let mut e = Entry::new(
                    format!("rootimg/d{:03}/f{i}", i / 700).into_bytes(),
                    Kind::File,
                    0o600,
                );
                e.size = i % 1777;
                b.push_entry(&IndexEntry::from_entry(&e, at, at + 512, None));
                at += 512 + e.size.div_ceil(512) * 512;
            }
            b
        };
        let kept = fill(IndexBuilder::new());
        let spilled = fill(IndexBuilder::new().spill_after(0));
        assert!(spilled.spilled() && !kept.spilled());
        let want = encode_zstd_trailer(&kept.finish(), 0, &[]).unwrap();
        let index = spilled.finish();
        let mut got = Vec::new();
        let n = write_zstd_trailer(&index, 0, &[], &mut got).unwrap();
        assert!(
            got == want,
            "same bytes whether the blocks were in memory or not"
        );
        assert_eq!(n, got.len() as u64);
        let read = read_zstd_index(share(io::Cursor::new(got)), n).unwrap();
        assert_eq!(read.len(), 20_000);
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let (file, _) = fake_tree();
        let len = file.len();
        // Not seekable at all.
        assert!(matches!(
            read_zstd_index(share(io::Cursor::new(vec![0u8; 100])), 100),
            Err(IndexError::Missing)
        ));
        // Data frames are checked when decoded, not here: flips in the trailer only.
        for at in [len - 10, len - 30, len - 60, len - 90, len - 120] {
            let mut bad = file.clone();
            bad[at] ^= 0x40;
            assert!(
                read_zstd_index(share(io::Cursor::new(bad)), len as u64).is_err(),
                "flip at {at}"
            );
        }
        // Truncated streams are errors for the scanner, never a clean end.
        for cut in [3, 10, 100, len - 5] {
            let mut s = FrameScanner::new(&file[..cut]);
            let mut r = Ok(Some(Frame::Skippable));
            while let Ok(Some(_)) = r {
                r = s.next_frame();
            }
            assert!(r.is_err(), "cut at {cut}");
        }
        assert!(FrameScanner::new(&b"not zstd"[..]).next_frame().is_err());
    }
}

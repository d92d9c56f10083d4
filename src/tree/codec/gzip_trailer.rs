//! How a `rootimgtree.gz` stores its index after the data members (FORMAT.md §2.2):
//! in empty gzip members (`IX`) that plain gunzip skips, then a fixed-size footer
//! member (`IF`) saying where they are. v2 (written): each index block in its own run
//! of `IX` members, so a block is read alone, then the zstd-compressed head, then a
//! 74-byte footer `IMGPTRE2`. v1 (still read): the whole deflated index, then a
//! 66-byte footer `IMGPTRE1`.
//!
//! Nothing is allocated from a length read off the input without checking it against
//! the file's own length or a fixed bound.

use std::io::{self, Read, SeekFrom, Write};
use std::sync::Arc;

use super::gzip::{self, Header, ID_FOOTER, ID_INDEX, MAX_DEFLATE_RATIO, MAX_SUBFIELD_PAYLOAD};
use crate::tree::format::index::v2::{decompress_exact, EncodedIndex, MAX_BLOCK_BYTES};
use crate::tree::format::index::{
    corrupt, lock_source, Index, IndexError, ReadSeekSend, SharedSource, MAX_INDEX_BYTES,
};

/// Magic at the start of the v1 footer payload.
const FOOTER_MAGIC: &[u8; 8] = b"IMGPTRE1";
/// Magic at the start of the v2 footer payload.
const FOOTER_MAGIC_V2: &[u8; 8] = b"IMGPTRE2";
/// v1 footer payload: magic, index offset, index members, blob length, index length, CRC.
pub const FOOTER_PAYLOAD_BYTES: usize = 8 + 8 + 4 + 8 + 8 + 4;
/// Bytes of the v1 footer member at the very end of a `rootimgtree.gz`.
pub const FOOTER_MEMBER_BYTES: usize = 12 + 4 + FOOTER_PAYLOAD_BYTES + 2 + 8;
/// v2 footer payload: magic, index offset, head offset, head members, head blob
/// length, head length, head CRC32.
pub const FOOTER_PAYLOAD_BYTES_V2: usize = 8 + 8 + 8 + 4 + 8 + 8 + 4;
/// Bytes of the v2 footer member.
pub const FOOTER_MEMBER_BYTES_V2: usize = 12 + 4 + FOOTER_PAYLOAD_BYTES_V2 + 2 + 8;

/// Bytes of the `IX` members that carry `len` payload bytes (at least one member).
pub fn ix_span(len: u64) -> u64 {
    let max = MAX_SUBFIELD_PAYLOAD as u64;
    let members = len.div_ceil(max).max(1);
    members * gzip::tagged_len(0) as u64 + len
}

/// Writes `payload` as `IX` members (at least one); returns how many and their bytes.
fn push_ix<W: Write + ?Sized>(out: &mut W, payload: &[u8]) -> io::Result<(u32, u64)> {
    if payload.is_empty() {
        let m = gzip::encode_tagged(ID_INDEX, &[]);
        out.write_all(&m)?;
        return Ok((1, m.len() as u64));
    }
    let (mut n, mut bytes) = (0, 0);
    for chunk in payload.chunks(MAX_SUBFIELD_PAYLOAD) {
        let m = gzip::encode_tagged(ID_INDEX, chunk);
        out.write_all(&m)?;
        n += 1;
        bytes += m.len() as u64;
    }
    Ok((n, bytes))
}

/// Writes what follows the data members of a tree written from offset 0 up to
/// `index_offset`: the index blocks, the head, the footer (v2). Returns the bytes
/// written. The blocks are streamed from the index (which may have spilled them to a
/// temporary file), not gathered in memory.
pub fn write_gzip_trailer<W: Write + ?Sized>(
    index: &EncodedIndex,
    index_offset: u64,
    out: &mut W,
) -> io::Result<u64> {
    let head_blob = crate::tree::format::index::v2::compress(&mut None, &index.head);
    let mut written = 0u64;
    index.for_each_block(|b| {
        written += push_ix(out, b)?.1;
        Ok(())
    })?;
    let head_offset = index_offset + written;
    let (head_members, head_bytes) = push_ix(out, &head_blob)?;
    written += head_bytes;
    let mut crc = libdeflater::Crc::new();
    crc.update(&index.head);
    let mut footer = Vec::with_capacity(FOOTER_PAYLOAD_BYTES_V2);
    footer.extend_from_slice(FOOTER_MAGIC_V2);
    footer.extend_from_slice(&index_offset.to_le_bytes());
    footer.extend_from_slice(&head_offset.to_le_bytes());
    footer.extend_from_slice(&head_members.to_le_bytes());
    footer.extend_from_slice(&(head_blob.len() as u64).to_le_bytes());
    footer.extend_from_slice(&(index.head.len() as u64).to_le_bytes());
    footer.extend_from_slice(&crc.sum().to_le_bytes());
    let footer = gzip::encode_tagged(ID_FOOTER, &footer);
    out.write_all(&footer)?;
    Ok(written + footer.len() as u64)
}

/// [`write_gzip_trailer`] into memory (tests, fuzz seeds). Fails only if the index's
/// blocks spilled to a temporary file that cannot be read back.
pub fn encode_gzip_trailer(index: &EncodedIndex, index_offset: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    write_gzip_trailer(index, index_offset, &mut out)?;
    Ok(out)
}

/// Where the v1 index is, as the `IF` footer member says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GzipFooter {
    pub index_offset: u64,
    pub index_members: u32,
    pub blob_len: u64,
    pub index_len: u64,
    pub index_crc: u32,
}

/// Where the v2 index is, as the `IF` footer member says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GzipFooterV2 {
    pub index_offset: u64,
    pub head_offset: u64,
    pub head_members: u32,
    pub head_blob_len: u64,
    pub head_len: u64,
    pub head_crc: u32,
}

fn footer_payload(bytes: &[u8], len: usize, magic: &[u8; 8]) -> Option<Vec<u8>> {
    match gzip::parse_header(bytes) {
        Ok(Header::Tagged { id, payload, .. })
            if id == ID_FOOTER && payload.len() == len && &payload[..8] == magic =>
        {
            Some(payload.to_vec())
        }
        _ => None,
    }
}

fn u64_at(p: &[u8], i: usize) -> u64 {
    u64::from_le_bytes(p[i..i + 8].try_into().unwrap_or([0; 8]))
}

fn u32_at(p: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(p[i..i + 4].try_into().unwrap_or([0; 4]))
}

/// Parses a v1 footer member (the last [`FOOTER_MEMBER_BYTES`] of a tree).
pub fn parse_gzip_footer(bytes: &[u8]) -> Result<GzipFooter, IndexError> {
    let p = footer_payload(bytes, FOOTER_PAYLOAD_BYTES, FOOTER_MAGIC).ok_or(IndexError::Missing)?;
    Ok(GzipFooter {
        index_offset: u64_at(&p, 8),
        index_members: u32_at(&p, 16),
        blob_len: u64_at(&p, 20),
        index_len: u64_at(&p, 28),
        index_crc: u32_at(&p, 36),
    })
}

/// Parses a v2 footer member (the last [`FOOTER_MEMBER_BYTES_V2`] of a tree).
pub fn parse_gzip_footer_v2(bytes: &[u8]) -> Result<GzipFooterV2, IndexError> {
    let p = footer_payload(bytes, FOOTER_PAYLOAD_BYTES_V2, FOOTER_MAGIC_V2)
        .ok_or(IndexError::Missing)?;
    Ok(GzipFooterV2 {
        index_offset: u64_at(&p, 8),
        head_offset: u64_at(&p, 16),
        head_members: u32_at(&p, 24),
        head_blob_len: u64_at(&p, 28),
        head_len: u64_at(&p, 36),
        head_crc: u32_at(&p, 44),
    })
}

/// Reads the index of a `rootimgtree.gz` held in `src` (bytes `0..len` of it are the
/// tree), v2 or v1. A v2 index keeps `src` to read its blocks on demand.
pub fn read_gzip_index(src: SharedSource, len: u64) -> Result<Index, IndexError> {
    let v2_tail = {
        let mut g = lock_source(&src);
        if len >= FOOTER_MEMBER_BYTES_V2 as u64 {
            let mut tail = vec![0u8; FOOTER_MEMBER_BYTES_V2];
            g.seek(SeekFrom::Start(len - FOOTER_MEMBER_BYTES_V2 as u64))?;
            g.read_exact(&mut tail)?;
            parse_gzip_footer_v2(&tail).ok()
        } else {
            None
        }
    };
    match v2_tail {
        Some(footer) => read_v2(src, len, footer),
        None => read_v1(&mut *lock_source(&src), len),
    }
}

/// Reads `members` `IX` members from the current position of `region`, returning
/// their payloads concatenated (at most `max` bytes).
fn read_ix_members<R: Read>(region: &mut R, members: u32, max: u64) -> Result<Vec<u8>, IndexError> {
    let cut = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => corrupt("index member cut short"),
        _ => IndexError::Io(e),
    };
    let mut blob = Vec::new();
    let mut head = vec![0u8; 12 + u16::MAX as usize];
    for _ in 0..members {
        region.read_exact(&mut head[..12]).map_err(cut)?;
        let xlen = u16::from_le_bytes([head[10], head[11]]) as usize;
        region.read_exact(&mut head[12..12 + xlen]).map_err(cut)?;
        match gzip::parse_header(&head[..12 + xlen]) {
            Ok(Header::Tagged { id, payload, total }) if id == ID_INDEX => {
                if (blob.len() + payload.len()) as u64 > max {
                    return Err(corrupt("index length differs from the footer's"));
                }
                blob.extend_from_slice(&payload);
                // The empty deflate block and the trailer follow the header.
                let rest = total.saturating_sub(12 + xlen as u64);
                if std::io::copy(&mut (&mut *region).take(rest), &mut std::io::sink())? < rest {
                    return Err(corrupt("index member cut short"));
                }
            }
            _ => return Err(corrupt("expected an index member")),
        }
    }
    Ok(blob)
}

fn read_v2(src: SharedSource, len: u64, footer: GzipFooterV2) -> Result<Index, IndexError> {
    let region_end = len - FOOTER_MEMBER_BYTES_V2 as u64;
    if footer.index_offset > footer.head_offset
        || footer.head_offset > region_end
        || footer.head_blob_len > MAX_INDEX_BYTES
        || footer.head_len > MAX_INDEX_BYTES
    {
        return Err(corrupt("footer points outside the archive"));
    }
    let blob = {
        let mut g = lock_source(&src);
        g.seek(SeekFrom::Start(footer.head_offset))?;
        let mut region = (&mut *g).take(region_end - footer.head_offset);
        read_ix_members(&mut region, footer.head_members, footer.head_blob_len)?
    };
    if blob.len() as u64 != footer.head_blob_len {
        return Err(corrupt("index head length differs from the footer's"));
    }
    let head = decompress_exact(&blob, footer.head_len, "index head")?;
    let mut crc = libdeflater::Crc::new();
    crc.update(&head);
    if crc.sum() != footer.head_crc {
        return Err(corrupt("index head CRC32 mismatch"));
    }
    let blocks_end = footer.head_offset;
    let reader = Arc::clone(&src);
    let fetch = Arc::new(
        move |offset: u64, clen: u64| -> Result<Vec<u8>, IndexError> {
            if clen > MAX_BLOCK_BYTES {
                return Err(corrupt("index block is larger than imgport accepts"));
            }
            let span = ix_span(clen);
            let members = clen.div_ceil(MAX_SUBFIELD_PAYLOAD as u64).max(1);
            if offset.saturating_add(span) > blocks_end {
                return Err(corrupt("index block extends past the index head"));
            }
            let mut g = lock_source(&reader);
            g.seek(SeekFrom::Start(offset))?;
            let mut region = (&mut *g).take(span);
            read_ix_members(&mut region, members as u32, clen)
        },
    );
    Index::decode_v2(
        &head,
        footer.index_offset,
        (footer.index_offset, blocks_end),
        ix_span,
        fetch,
    )
}

fn read_v1(src: &mut dyn ReadSeekSend, len: u64) -> Result<Index, IndexError> {
    if len < FOOTER_MEMBER_BYTES as u64 {
        return Err(IndexError::Missing);
    }
    let mut tail = vec![0u8; FOOTER_MEMBER_BYTES];
    src.seek(SeekFrom::Start(len - FOOTER_MEMBER_BYTES as u64))?;
    src.read_exact(&mut tail)?;
    let footer = parse_gzip_footer(&tail)?;
    let region_end = len - FOOTER_MEMBER_BYTES as u64;
    if footer.index_offset > region_end
        || footer.blob_len > MAX_INDEX_BYTES
        || footer.index_len > MAX_INDEX_BYTES
    {
        return Err(corrupt("footer points outside the archive"));
    }
    // Walk the index members straight from `src`, header by header, rather than
    // reading `index_offset..` into memory: a hostile footer pointing at offset 0 of a
    // 20 GiB tree must not make us buffer the tree. What is kept is payload, bounded by
    // the footer's `blob_len`.
    src.seek(SeekFrom::Start(footer.index_offset))?;
    let mut region = src.take(region_end - footer.index_offset);
    let blob = read_ix_members(&mut region, footer.index_members, footer.blob_len)?;
    if blob.len() as u64 != footer.blob_len {
        return Err(corrupt("index length differs from the footer's"));
    }
    // Deflate expands at most 1032:1 (a 258-byte match per two 1-bit codes), so a
    // larger `index_len` is a lie; checked before it sizes the output buffer.
    if footer.index_len > (blob.len() as u64).saturating_mul(MAX_DEFLATE_RATIO) {
        return Err(corrupt(
            "index length exceeds what its deflated size can hold",
        ));
    }
    let mut index = vec![0u8; footer.index_len as usize];
    let n = libdeflater::Decompressor::new()
        .deflate_decompress(&blob, &mut index)
        .map_err(|e| corrupt(format!("index does not inflate: {e}")))?;
    if n != index.len() {
        return Err(corrupt("index is shorter than the footer says"));
    }
    let mut crc = libdeflater::Crc::new();
    crc.update(&index);
    if crc.sum() != footer.index_crc {
        return Err(corrupt("index CRC32 mismatch"));
    }
    Index::decode(index, footer.index_offset)
}

/// The v1 trailer, kept for tests of v1 reading: the encoded v1 index deflated into
/// `IX` members, then the v1 footer.
#[cfg(test)]
pub(crate) fn encode_gzip_trailer_v1(index: &[u8], index_offset: u64) -> Vec<u8> {
    let mut c = gzip::compressor(6);
    let bound = c.deflate_compress_bound(index.len());
    let mut blob = vec![0u8; bound];
    let n = c.deflate_compress(index, &mut blob).unwrap_or(0);
    blob.truncate(n);
    let mut out = Vec::new();
    let mut chunks = 0u32;
    for chunk in blob.chunks(MAX_SUBFIELD_PAYLOAD) {
        out.extend_from_slice(&gzip::encode_tagged(ID_INDEX, chunk));
        chunks += 1;
    }
    let mut crc = libdeflater::Crc::new();
    crc.update(index);
    let mut footer = Vec::with_capacity(FOOTER_PAYLOAD_BYTES);
    footer.extend_from_slice(FOOTER_MAGIC);
    footer.extend_from_slice(&index_offset.to_le_bytes());
    footer.extend_from_slice(&chunks.to_le_bytes());
    footer.extend_from_slice(&(blob.len() as u64).to_le_bytes());
    footer.extend_from_slice(&(index.len() as u64).to_le_bytes());
    footer.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&gzip::encode_tagged(ID_FOOTER, &footer));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::entry::{Entry, Kind};
    use crate::tree::format::index::tests::sample;
    use crate::tree::format::index::v1::tests::encode_v1;
    use crate::tree::format::index::{share, IndexBuilder, IndexEntry, MemberInfo};
    use std::io::Seek;
    use std::sync::Mutex;

    fn read(file: Vec<u8>) -> Result<Index, IndexError> {
        let len = file.len() as u64;
        read_gzip_index(share(std::io::Cursor::new(file)), len)
    }

    fn members() -> [MemberInfo; 2] {
        [
            MemberInfo {
                compressed: 100,
                uncompressed: 5120,
                crc32: 1,
                digest: Some([1; 32]),
            },
            MemberInfo {
                compressed: 50,
                uncompressed: 1024,
                crc32: 2,
                digest: Some([2; 32]),
            },
        ]
    }

    #[test]
    fn garbage_is_missing_not_a_panic() {
        assert!(matches!(read(vec![0u8; 200]), Err(IndexError::Missing)));
    }

    #[test]
    fn v2_round_trips_through_the_trailer() {
        let mut b = IndexBuilder::new();
        for m in members() {
            b.push_member(m);
        }
        let entries = sample();
        for e in &entries {
            b.push_entry(e);
        }
        let mut file = vec![0u8; 150];
        file.extend_from_slice(&encode_gzip_trailer(&b.finish(), 150).unwrap());
        let index = read(file).unwrap();
        assert_eq!(index.version(), 2);
        let got: Vec<IndexEntry> = index.entries().map(|e| e.unwrap()).collect();
        let mut want = entries.clone();
        for w in want.iter_mut() {
            w.digest = None;
        }
        assert_eq!(got, want);
        assert_eq!(index.members.len(), 2);
        assert_eq!(index.members[1].0, members()[1]);
        assert_eq!(index.members[1].1, 100);
        assert_eq!(index.members[1].2, 5120);
        assert_eq!(index.members_covering(5000, 200), 0..2);
        assert_eq!(index.members_covering(5120, 1), 1..2);
        // The sample is not in path order: lookups scan, and still find.
        assert!(!index.sorted());
        assert_eq!(index.find(b"rootimg/dev/sda").unwrap().unwrap(), want[4]);
    }

    #[test]
    fn v1_round_trips_through_the_trailer() {
        let m = members().map(|mut m| {
            m.digest = None;
            m
        });
        let entries = sample();
        let mut file = vec![0u8; 150];
        file.extend_from_slice(&encode_gzip_trailer_v1(&encode_v1(&m, &entries), 150));
        let index = read(file).unwrap();
        assert_eq!(index.version(), 1);
        let got: Vec<IndexEntry> = index.entries().map(|e| e.unwrap()).collect();
        let mut want = entries.clone();
        for w in want.iter_mut() {
            if w.kind == Kind::File && w.digest.is_none() {
                w.digest = Some([0; 32]);
            }
        }
        assert_eq!(got, want);
        assert_eq!(index.members[1].0, m[1]);
    }

    /// `n` files in path order, 512-byte headers, dense data.
    fn many(n: u64) -> (IndexBuilder, Vec<IndexEntry>) {
        many_into(IndexBuilder::new(), n)
    }

    fn many_into(mut b: IndexBuilder, n: u64) -> (IndexBuilder, Vec<IndexEntry>) {
        let mut at = 0u64;
        let mut all = Vec::new();
        let mut seed = 1u64;
        for i in 0..n {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let mut e = Entry::new(
                format!("rootimg/d{:03}/f{:05}", i / 1000, i % 1000).into_bytes(),
                Kind::File,
                0o644,
            );
            e.size = (seed >> 33) % 3000;
            let ie = IndexEntry::from_entry(&e, at, at + 512, None);
            at = at + 512 + e.size.div_ceil(512) * 512;
            b.push_entry(&ie);
            all.push(ie);
        }
        (b, all)
    }

    #[test]
    fn large_indexes_are_blocks_and_a_lookup_reads_one() {
        let (b, all) = many(20_000);
        let trailer = encode_gzip_trailer(&b.finish(), 0).unwrap();
        let index = read(trailer.clone()).unwrap();
        assert_eq!(index.len(), 20_000);
        assert!(index.sorted());
        assert_eq!(index.blocks_read(), 0, "opening reads no block");
        let got: Vec<IndexEntry> = index.entries().map(Result::unwrap).collect();
        assert!(got == all, "every entry comes back, offsets derived");
        let blocks = index.blocks_read();
        assert!(blocks >= 4, "{blocks} blocks");
        let index = read(trailer).unwrap();
        assert_eq!(
            index.find(b"rootimg/d013/f00777").unwrap().as_ref(),
            Some(&all[13_777])
        );
        assert_eq!(index.find(b"rootimg/d013/f00777x").unwrap(), None);
        assert_eq!(index.find(b"rootimg/a").unwrap(), None);
        assert_eq!(index.blocks_read(), 3, "one block per lookup");
        let under: Vec<_> = index
            .entries_from(b"rootimg/d019")
            .map(Result::unwrap)
            .take_while(|e| e.path.starts_with(b"rootimg/d019/"))
            .collect();
        assert_eq!(under.len(), 1000);
    }

    #[test]
    fn a_spilled_index_writes_the_same_trailer() {
        let (kept, _) = many(20_000);
        assert!(!kept.spilled(), "20 000 entries stay under the bound");
        let (spilled, all) = many_into(IndexBuilder::new().spill_after(0), 20_000);
        assert!(spilled.spilled());
        let want = encode_gzip_trailer(&kept.finish(), 4096).unwrap();
        let got = encode_gzip_trailer(&spilled.finish(), 4096).unwrap();
        assert!(
            got == want,
            "same bytes whether the blocks were in memory or not"
        );
        let mut file = vec![0u8; 4096];
        file.extend_from_slice(&got);
        let index = read(file).unwrap();
        assert_eq!(index.len(), 20_000);
        assert_eq!(
            index.find(b"rootimg/d007/f00123").unwrap().as_ref(),
            Some(&all[7_123])
        );
    }

    #[test]
    fn a_failing_output_is_an_error_not_a_short_trailer() {
        struct Full(usize);
        impl Write for Full {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                if self.0 < b.len() {
                    return Err(io::Error::from(io::ErrorKind::StorageFull));
                }
                self.0 -= b.len();
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (b, _) = many_into(IndexBuilder::new().spill_after(0), 20_000);
        let index = b.finish();
        let err = write_gzip_trailer(&index, 0, &mut Full(1000)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        let n = write_gzip_trailer(&index, 0, &mut Full(usize::MAX)).unwrap();
        assert_eq!(n, encode_gzip_trailer(&index, 0).unwrap().len() as u64);
    }

    #[test]
    fn a_damaged_block_is_an_error_when_read() {
        let (b, _) = many(10_000);
        let mut trailer = encode_gzip_trailer(&b.finish(), 0).unwrap();
        trailer[40] ^= 0x10;
        let index = read(trailer).unwrap();
        let errs = index.entries().filter(|e| e.is_err()).count();
        assert_eq!(errs, 1, "the first block fails, iteration stops");
    }

    /// Rewrites the v1 footer (the last member) of `file` with `f` applied to it.
    fn with_footer(mut file: Vec<u8>, f: impl Fn(&mut GzipFooter)) -> Vec<u8> {
        let at = file.len() - FOOTER_MEMBER_BYTES;
        let mut footer = parse_gzip_footer(&file[at..]).unwrap();
        f(&mut footer);
        let mut payload = FOOTER_MAGIC.to_vec();
        payload.extend_from_slice(&footer.index_offset.to_le_bytes());
        payload.extend_from_slice(&footer.index_members.to_le_bytes());
        payload.extend_from_slice(&footer.blob_len.to_le_bytes());
        payload.extend_from_slice(&footer.index_len.to_le_bytes());
        payload.extend_from_slice(&footer.index_crc.to_le_bytes());
        file.truncate(at);
        file.extend_from_slice(&gzip::encode_tagged(ID_FOOTER, &payload));
        file
    }

    /// Rewrites the v2 footer of `file` with `f` applied to it.
    fn with_footer_v2(mut file: Vec<u8>, f: impl Fn(&mut GzipFooterV2)) -> Vec<u8> {
        let at = file.len() - FOOTER_MEMBER_BYTES_V2;
        let mut footer = parse_gzip_footer_v2(&file[at..]).unwrap();
        f(&mut footer);
        let mut payload = FOOTER_MAGIC_V2.to_vec();
        payload.extend_from_slice(&footer.index_offset.to_le_bytes());
        payload.extend_from_slice(&footer.head_offset.to_le_bytes());
        payload.extend_from_slice(&footer.head_members.to_le_bytes());
        payload.extend_from_slice(&footer.head_blob_len.to_le_bytes());
        payload.extend_from_slice(&footer.head_len.to_le_bytes());
        payload.extend_from_slice(&footer.head_crc.to_le_bytes());
        file.truncate(at);
        file.extend_from_slice(&gzip::encode_tagged(ID_FOOTER, &payload));
        file
    }

    /// A `Read + Seek` that counts the bytes read through it.
    struct Counting {
        inner: std::io::Cursor<Vec<u8>>,
        read: u64,
    }

    impl Read for Counting {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.read += n as u64;
            Ok(n)
        }
    }

    impl Seek for Counting {
        fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
            self.inner.seek(pos)
        }
    }

    fn counted(file: Vec<u8>) -> (Result<Index, IndexError>, u64) {
        let len = file.len() as u64;
        let src = Arc::new(Mutex::new(Counting {
            inner: std::io::Cursor::new(file),
            read: 0,
        }));
        let r = read_gzip_index(src.clone(), len);
        let n = src.lock().unwrap().read;
        (r, n)
    }

    #[test]
    fn hostile_footers_cannot_make_the_reader_allocate() {
        let data = vec![0x5au8; 8 << 20];
        // v1
        let mut file = data.clone();
        file.extend_from_slice(&encode_gzip_trailer_v1(
            &encode_v1(&[], &sample()[..1]),
            data.len() as u64,
        ));
        let (ok, _) = counted(file.clone());
        assert!(ok.is_ok());
        // A 1 GiB index claimed for a few bytes of deflate: refused before allocating.
        let (r, _) = counted(with_footer(file.clone(), |f| f.index_len = MAX_INDEX_BYTES));
        assert!(
            r.unwrap_err().to_string().contains("deflated size"),
            "index_len bound"
        );
        // The index said to start at offset 0, over 8 MiB of data: refused after reading
        // one member header, not after buffering the whole data region.
        let (r, n) = counted(with_footer(file, |f| f.index_offset = 0));
        assert!(r.is_err());
        assert!(n < 128 * 1024, "read {n} bytes for a bogus index offset");

        // v2
        let mut b = IndexBuilder::new();
        b.push_entry(&sample()[0]);
        let mut file = data.clone();
        file.extend_from_slice(&encode_gzip_trailer(&b.finish(), data.len() as u64).unwrap());
        let (ok, _) = counted(file.clone());
        assert!(ok.is_ok());
        let (r, _) = counted(with_footer_v2(file.clone(), |f| {
            f.head_len = MAX_INDEX_BYTES
        }));
        assert!(r.is_err(), "a head claimed larger than it inflates to");
        let (r, n) = counted(with_footer_v2(file.clone(), |f| f.head_offset = 0));
        assert!(r.is_err());
        assert!(n < 128 * 1024, "read {n} bytes for a bogus head offset");
        let (r, _) = counted(with_footer_v2(file, |f| f.index_offset += 1));
        assert!(r.is_err(), "blocks must fill the space before the head");
    }
}

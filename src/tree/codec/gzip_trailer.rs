//! How a `rootimgtree.gz` stores its index after the data members (FORMAT.md §2.2):
//! the encoded index deflated, in chunks, in empty gzip members (`IX`), then a
//! fixed-size footer member (`IF`) saying where they are. Plain gunzip sees none of it.
//!
//! Nothing is allocated from a length read off the input without checking it against
//! the file's own length or a fixed bound.

use std::io::{Read, Seek, SeekFrom};

use super::gzip::{self, Header, ID_FOOTER, ID_INDEX, MAX_DEFLATE_RATIO, MAX_SUBFIELD_PAYLOAD};
use crate::tree::format::index::{corrupt, Index, IndexError, MAX_INDEX_BYTES};

/// Magic at the start of the footer payload.
const FOOTER_MAGIC: &[u8; 8] = b"IMGPTRE1";
/// Footer payload: magic, index offset, index members, blob length, index length, CRC.
pub const FOOTER_PAYLOAD_BYTES: usize = 8 + 8 + 4 + 8 + 8 + 4;
/// Bytes of the footer member at the very end of a `rootimgtree.gz`.
pub const FOOTER_MEMBER_BYTES: usize = 12 + 4 + FOOTER_PAYLOAD_BYTES + 2 + 8;

/// The bytes to append after the data members of a tree written from offset 0 up to
/// `index_offset`: the index members and the footer.
pub fn encode_gzip_trailer(index: &[u8], index_offset: u64) -> Vec<u8> {
    let mut c = gzip::compressor(6);
    let bound = c.deflate_compress_bound(index.len());
    let mut blob = vec![0u8; bound];
    let n = c.deflate_compress(index, &mut blob).unwrap_or(0);
    blob.truncate(n);
    let mut out = Vec::with_capacity(blob.len() + 64 * (blob.len() / MAX_SUBFIELD_PAYLOAD + 2));
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

/// Where the index is, as the `IF` footer member says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GzipFooter {
    pub index_offset: u64,
    pub index_members: u32,
    pub blob_len: u64,
    pub index_len: u64,
    pub index_crc: u32,
}

/// Parses the footer member (the last [`FOOTER_MEMBER_BYTES`] of a tree).
pub fn parse_gzip_footer(bytes: &[u8]) -> Result<GzipFooter, IndexError> {
    let payload = match gzip::parse_header(bytes) {
        Ok(Header::Tagged { id, payload, .. }) if id == ID_FOOTER => payload,
        _ => return Err(IndexError::Missing),
    };
    if payload.len() != FOOTER_PAYLOAD_BYTES || &payload[..8] != FOOTER_MAGIC {
        return Err(IndexError::Missing);
    }
    let u64_at = |i: usize| u64::from_le_bytes(payload[i..i + 8].try_into().unwrap_or([0; 8]));
    let u32_at = |i: usize| u32::from_le_bytes(payload[i..i + 4].try_into().unwrap_or([0; 4]));
    Ok(GzipFooter {
        index_offset: u64_at(8),
        index_members: u32_at(16),
        blob_len: u64_at(20),
        index_len: u64_at(28),
        index_crc: u32_at(36),
    })
}

/// Reads the index of a `rootimgtree.gz` held in `src` (bytes `0..len` of it are the tree).
pub fn read_gzip_index<R: Read + Seek>(src: &mut R, len: u64) -> Result<Index, IndexError> {
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
    let cut = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => corrupt("index member cut short"),
        _ => IndexError::Io(e),
    };
    let mut blob = Vec::new();
    let mut head = vec![0u8; 12 + u16::MAX as usize];
    for _ in 0..footer.index_members {
        region.read_exact(&mut head[..12]).map_err(cut)?;
        let xlen = u16::from_le_bytes([head[10], head[11]]) as usize;
        region.read_exact(&mut head[12..12 + xlen]).map_err(cut)?;
        match gzip::parse_header(&head[..12 + xlen]) {
            Ok(Header::Tagged { id, payload, total }) if id == ID_INDEX => {
                if (blob.len() + payload.len()) as u64 > footer.blob_len {
                    return Err(corrupt("index length differs from the footer's"));
                }
                blob.extend_from_slice(&payload);
                // The empty deflate block and the trailer follow the header.
                let rest = total.saturating_sub(12 + xlen as u64);
                if std::io::copy(&mut (&mut region).take(rest), &mut std::io::sink())? < rest {
                    return Err(corrupt("index member cut short"));
                }
            }
            _ => return Err(corrupt("expected an index member")),
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::entry::{Entry, Kind};
    use crate::tree::format::index::tests::sample;
    use crate::tree::format::index::{IndexBuilder, IndexEntry, MemberInfo};

    #[test]
    fn garbage_is_missing_not_a_panic() {
        assert!(matches!(
            read_gzip_index(&mut std::io::Cursor::new(vec![0u8; 200]), 200),
            Err(IndexError::Missing)
        ));
    }

    #[test]
    fn round_trips_through_the_trailer() {
        let mut b = IndexBuilder::new();
        b.push_member(MemberInfo {
            compressed: 100,
            uncompressed: 5120,
            crc32: 1,
        });
        b.push_member(MemberInfo {
            compressed: 50,
            uncompressed: 1024,
            crc32: 2,
        });
        let entries = sample();
        for e in &entries {
            b.push_entry(e);
        }
        let encoded = b.finish();
        let mut file = vec![0u8; 150];
        file.extend_from_slice(&encode_gzip_trailer(&encoded, 150));
        let len = file.len() as u64;
        let index = read_gzip_index(&mut std::io::Cursor::new(file), len).unwrap();
        let mut got: Vec<IndexEntry> = index.entries().map(|e| e.unwrap()).collect();
        for e in got.iter_mut().chain(std::iter::empty()) {
            if e.kind != Kind::File {
                e.digest = None;
            }
        }
        let mut want = entries.clone();
        for w in want.iter_mut() {
            if w.kind == Kind::File && w.digest.is_none() {
                w.digest = Some([0; 32]);
            }
        }
        assert_eq!(got, want);
        assert_eq!(index.members.len(), 2);
        assert_eq!(index.members[1].1, 100);
        assert_eq!(index.members[1].2, 5120);
        assert_eq!(index.members_covering(5000, 200), 0..2);
        assert_eq!(index.members_covering(5120, 1), 1..2);
    }

    #[test]
    fn large_indexes_span_several_members() {
        let mut b = IndexBuilder::new();
        let mut seed = 1u64;
        for i in 0..20_000u64 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            let mut e = Entry::new(
                format!("rootimg/d{}/{seed:x}", i % 97).into_bytes(),
                Kind::File,
                0o644,
            );
            e.size = seed % 100_000;
            b.push_entry(&IndexEntry::from_entry(
                &e,
                i * 1024,
                i * 1024 + 512,
                Some([i as u8; 32]),
            ));
        }
        let encoded = b.finish();
        let trailer = encode_gzip_trailer(&encoded, 0);
        assert!(
            trailer.len() > 2 * MAX_SUBFIELD_PAYLOAD,
            "several index members"
        );
        let len = trailer.len() as u64;
        let index = read_gzip_index(&mut std::io::Cursor::new(trailer), len).unwrap();
        assert_eq!(index.len(), 20_000);
        assert_eq!(index.entries().filter(|e| e.is_ok()).count(), 20_000);
    }

    /// Rewrites the footer (the last member) of `file` with `f` applied to it.
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

    #[test]
    fn hostile_footers_cannot_make_the_reader_allocate() {
        let mut b = IndexBuilder::new();
        b.push_entry(&sample()[0]);
        let encoded = b.finish();
        let data = vec![0x5au8; 8 << 20];
        let mut file = data.clone();
        file.extend_from_slice(&encode_gzip_trailer(&encoded, data.len() as u64));
        let read = |file: Vec<u8>| {
            let len = file.len() as u64;
            let mut src = Counting {
                inner: std::io::Cursor::new(file),
                read: 0,
            };
            (read_gzip_index(&mut src, len), src.read)
        };
        let (ok, _) = read(file.clone());
        assert!(ok.is_ok());
        // A 1 GiB index claimed for a few bytes of deflate: refused before allocating.
        let (r, _) = read(with_footer(file.clone(), |f| f.index_len = MAX_INDEX_BYTES));
        assert!(
            r.unwrap_err().to_string().contains("deflated size"),
            "index_len bound"
        );
        // The index said to start at offset 0, over 8 MiB of data: refused after reading
        // one member header, not after buffering the whole data region.
        let (r, n) = read(with_footer(file, |f| f.index_offset = 0));
        assert!(r.is_err());
        assert!(n < 128 * 1024, "read {n} bytes for a bogus index offset");
    }
}

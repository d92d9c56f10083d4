//! Index v1 (`IMGPIDX1`, FORMAT.md §3.5), read only: one front-coded list of every
//! entry with a BLAKE3 per file, read whole. Writers moved to v2; bundles written
//! before it still verify and restore through this.

use std::sync::Arc;

use super::varint::{unzigzag, Cursor};
use super::{
    corrupt, place_members, Body, Index, IndexEntry, IndexError, MemberInfo, StreamFormat,
    TAG_BLOCK, TAG_CHAR, TAG_DIR, TAG_FIFO, TAG_FILE, TAG_HARDLINK, TAG_SYMLINK,
};
use crate::tree::entry::{Kind, Timestamp};

/// Magic at the start of an encoded v1 index.
const INDEX_MAGIC: &[u8; 8] = b"IMGPIDX1";

/// Digest of one piece (at most [`DIGEST_CHUNK_BYTES`](super::DIGEST_CHUNK_BYTES)) of
/// a file's stored data (v1).
pub fn chunk_digest(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

/// A file's v1 digest: BLAKE3 over the concatenated BLAKE3s of its stored data cut into
/// [`DIGEST_CHUNK_BYTES`](super::DIGEST_CHUNK_BYTES) pieces (BLAKE3 of nothing for an
/// empty file). Defined this way so pieces can be digested in parallel by whoever
/// compresses them.
pub fn file_digest(chunks: &[[u8; 32]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    for c in chunks {
        h.update(c);
    }
    *h.finalize().as_bytes()
}

/// Decodes an encoded v1 index whose data members end at `data_end`.
pub(super) fn decode(bytes: Vec<u8>, data_end: u64) -> Result<Index, IndexError> {
    let mut cur = Cursor { b: &bytes, at: 0 };
    if cur.take(8)? != INDEX_MAGIC {
        return Err(corrupt("bad index magic"));
    }
    let count = cur.varint()?;
    let mut infos = Vec::new();
    for _ in 0..count {
        let compressed = cur.varint()?;
        let uncompressed = cur.varint()?;
        let crc = cur.take(4)?;
        let crc32 = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        infos.push(MemberInfo {
            compressed,
            uncompressed,
            crc32,
            digest: None,
        });
    }
    let members = place_members(infos, data_end)?;
    let entries_count = cur.varint()?;
    let entries_at = cur.at;
    let index = Index {
        members,
        data_end,
        format: StreamFormat::Tar,
        entries_count,
        body: Body::V1 {
            bytes: Arc::new(bytes),
            entries_at,
        },
    };
    // Decode once so later iteration cannot fail half way.
    for e in index.entries() {
        e?;
    }
    Ok(index)
}

/// The entries of a v1 index, decoded one at a time from the front-coded list.
#[doc(hidden)]
pub struct Entries<'a> {
    cur: Cursor<'a>,
    last: Vec<u8>,
    left: u64,
}

impl<'a> Entries<'a> {
    /// The `count` entries encoded from `at` in `bytes`.
    pub(super) fn new(bytes: &'a [u8], at: usize, count: u64) -> Entries<'a> {
        Entries {
            cur: Cursor { b: bytes, at },
            last: Vec::new(),
            left: count,
        }
    }
}

impl Iterator for Entries<'_> {
    type Item = Result<IndexEntry, IndexError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let e = decode_entry(&mut self.cur, &mut self.last);
        if e.is_err() {
            self.left = 0;
        }
        Some(e)
    }
}

fn decode_entry(cur: &mut Cursor<'_>, last: &mut Vec<u8>) -> Result<IndexEntry, IndexError> {
    let shared = cur.varint()? as usize;
    if shared > last.len() {
        return Err(corrupt("path prefix longer than the previous path"));
    }
    let suffix = cur.bytes()?;
    last.truncate(shared);
    last.extend_from_slice(suffix);
    let tag = cur.take(1)?[0];
    let mode = cur.varint_u32()?;
    let uid = cur.varint_u32()?;
    let gid = cur.varint_u32()?;
    let secs = unzigzag(cur.varint()?);
    let nanos = cur.varint_u32()?;
    let header_offset = cur.varint()?;
    let data_offset = header_offset
        .checked_add(cur.varint()?)
        .ok_or_else(|| corrupt("data offset overflows"))?;
    let (mut size, mut stored, mut sparse, mut digest) = (0, 0, None, None);
    let kind = match tag {
        TAG_FILE => {
            size = cur.varint()?;
            stored = cur.varint()?;
            let n = cur.varint()?;
            if n > 0 {
                let mut map = Vec::new();
                for _ in 1..n {
                    map.push((cur.varint()?, cur.varint()?));
                }
                sparse = Some(map);
            }
            let d = cur.take(32)?;
            let mut arr = [0u8; 32];
            arr.copy_from_slice(d);
            digest = Some(arr);
            Kind::File
        }
        TAG_DIR => Kind::Dir,
        TAG_SYMLINK => Kind::Symlink(cur.bytes()?.to_vec()),
        TAG_HARDLINK => Kind::HardLink(cur.bytes()?.to_vec()),
        TAG_CHAR => Kind::CharDevice {
            major: cur.varint_u32()?,
            minor: cur.varint_u32()?,
        },
        TAG_BLOCK => Kind::BlockDevice {
            major: cur.varint_u32()?,
            minor: cur.varint_u32()?,
        },
        TAG_FIFO => Kind::Fifo,
        other => return Err(corrupt(format!("unknown entry kind {other}"))),
    };
    Ok(IndexEntry {
        path: last.clone(),
        kind,
        mode,
        uid,
        gid,
        mtime: Timestamp { secs, nanos },
        size,
        header_offset,
        data_offset,
        stored,
        sparse,
        digest,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::tree::format::index::tests::sample;
    use crate::tree::format::index::varint::{put_bytes, put_varint, zigzag};
    use crate::tree::format::index::{common_prefix, kind_parts};

    /// The v1 encoder, kept only to test that v1 indexes still read.
    pub(crate) fn encode_v1(members: &[MemberInfo], entries: &[IndexEntry]) -> Vec<u8> {
        let mut out = INDEX_MAGIC.to_vec();
        put_varint(&mut out, members.len() as u64);
        for m in members {
            put_varint(&mut out, m.compressed);
            put_varint(&mut out, m.uncompressed);
            out.extend_from_slice(&m.crc32.to_le_bytes());
        }
        put_varint(&mut out, entries.len() as u64);
        let mut last: &[u8] = &[];
        for e in entries {
            let shared = common_prefix(last, &e.path);
            put_varint(&mut out, shared as u64);
            put_bytes(&mut out, &e.path[shared..]);
            let (tag, link, dev) = kind_parts(&e.kind);
            out.push(tag);
            for v in [e.mode as u64, e.uid as u64, e.gid as u64] {
                put_varint(&mut out, v);
            }
            put_varint(&mut out, zigzag(e.mtime.secs));
            put_varint(&mut out, e.mtime.nanos as u64);
            put_varint(&mut out, e.header_offset);
            put_varint(&mut out, e.data_offset - e.header_offset);
            match tag {
                TAG_FILE => {
                    put_varint(&mut out, e.size);
                    put_varint(&mut out, e.stored);
                    match &e.sparse {
                        Some(map) => {
                            put_varint(&mut out, map.len() as u64 + 1);
                            for &(off, len) in map {
                                put_varint(&mut out, off);
                                put_varint(&mut out, len);
                            }
                        }
                        None => put_varint(&mut out, 0),
                    }
                    out.extend_from_slice(&e.digest.unwrap_or([0; 32]));
                }
                TAG_SYMLINK | TAG_HARDLINK => put_bytes(&mut out, link),
                TAG_CHAR | TAG_BLOCK => {
                    put_varint(&mut out, dev.0 as u64);
                    put_varint(&mut out, dev.1 as u64);
                }
                _ => {}
            }
            last = &e.path;
        }
        out
    }

    #[test]
    fn v1_still_decodes() {
        let entries = sample();
        let m = MemberInfo {
            compressed: 10,
            uncompressed: 8192,
            crc32: 3,
            digest: None,
        };
        let ix = Index::decode(encode_v1(&[m], &entries), 10).unwrap();
        assert_eq!(ix.version(), 1);
        let got: Vec<IndexEntry> = ix.entries().map(Result::unwrap).collect();
        assert_eq!(got.len(), entries.len());
        assert_eq!(got[1].digest, entries[1].digest);
        assert_eq!(
            ix.find(b"rootimg/etc/link").unwrap().unwrap().path,
            entries[3].path
        );
    }

    #[test]
    fn decoding_garbage_is_an_error_not_a_panic() {
        assert!(Index::decode(
            b"IMGPIDX1\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01".to_vec(),
            0
        )
        .is_err());
        assert!(Index::decode(b"IMGPIDX1\x00\x01\x05abc".to_vec(), 0).is_err());
    }
}

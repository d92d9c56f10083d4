//! The tree index (FORMAT.md §3): where every entry and every data unit (gzip member,
//! zstd frame) of a tree is, with each file's digest, so a reader can list the tree, pull one
//! file out of a 20 GiB bundle, or prove a restored tree equal, without inflating the
//! rest.
//!
//! The index is built incrementally in its encoded form (paths front-coded), so a tree
//! of a million entries costs tens of MiB, not a `Vec` of structs. This module is the
//! codec-neutral model and its encoding; how each codec stores it after the data is
//! the codec's business (`codec::gzip_trailer`, `codec::zstd_seekable`).

use crate::tree::entry::{Entry, Kind, Timestamp};

/// Magic at the start of the encoded index.
const INDEX_MAGIC: &[u8; 8] = b"IMGPIDX1";
/// Stored file content is digested in pieces of this size (FORMAT.md §3.3); it is also
/// the size at which writers split large files across members.
pub const DIGEST_CHUNK_BYTES: u64 = 4 << 20;
/// Largest encoded index a reader accepts (a million entries take about 60 MiB).
pub(crate) const MAX_INDEX_BYTES: u64 = 1 << 30;

/// Why an index could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("no imgport index (the archive has no footer member)")]
    Missing,
    #[error("corrupt index: {0}")]
    Corrupt(String),
    #[error("reading the index: {0}")]
    Io(#[from] std::io::Error),
}

pub(crate) fn corrupt(what: impl Into<String>) -> IndexError {
    IndexError::Corrupt(what.into())
}

/// One data member: its lengths and the CRC32 of its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberInfo {
    pub compressed: u64,
    pub uncompressed: u64,
    pub crc32: u32,
}

/// One entry as the index records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    pub path: Vec<u8>,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: Timestamp,
    /// Logical size (holes included) for files, 0 otherwise.
    pub size: u64,
    /// Offset in the uncompressed tar stream of the entry's first header block.
    pub header_offset: u64,
    /// Offset in the uncompressed tar stream of its first data byte.
    pub data_offset: u64,
    /// Bytes of data stored (data segments of sparse files).
    pub stored: u64,
    /// Sparse data segments, as in [`Entry::sparse`].
    pub sparse: Option<Vec<(u64, u64)>>,
    /// Digest of the stored data (files only), see [`file_digest`].
    pub digest: Option<[u8; 32]>,
}

/// Digest of one piece (at most [`DIGEST_CHUNK_BYTES`]) of a file's stored data.
pub fn chunk_digest(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

/// A file's digest: BLAKE3 over the concatenated BLAKE3s of its stored data cut into
/// [`DIGEST_CHUNK_BYTES`] pieces (BLAKE3 of nothing for an empty file). Defined this
/// way so pieces can be digested in parallel by whoever compresses them.
pub fn file_digest(chunks: &[[u8; 32]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    for c in chunks {
        h.update(c);
    }
    *h.finalize().as_bytes()
}

/// Builds an index as entries and members are written.
#[derive(Debug, Default)]
pub struct IndexBuilder {
    members: Vec<u8>,
    member_count: u64,
    entries: Vec<u8>,
    entry_count: u64,
    last_path: Vec<u8>,
}

impl IndexBuilder {
    pub fn new() -> IndexBuilder {
        IndexBuilder::default()
    }

    /// Records the next data member.
    pub fn push_member(&mut self, m: MemberInfo) {
        put_varint(&mut self.members, m.compressed);
        put_varint(&mut self.members, m.uncompressed);
        self.members.extend_from_slice(&m.crc32.to_le_bytes());
        self.member_count += 1;
    }

    /// Records the next entry (entries must be pushed in archive order).
    pub fn push_entry(&mut self, e: &IndexEntry) {
        let shared = common_prefix(&self.last_path, &e.path);
        let out = &mut self.entries;
        put_varint(out, shared as u64);
        put_bytes(out, &e.path[shared..]);
        let (tag, link, dev) = kind_parts(&e.kind);
        out.push(tag);
        put_varint(out, e.mode as u64);
        put_varint(out, e.uid as u64);
        put_varint(out, e.gid as u64);
        put_varint(out, zigzag(e.mtime.secs));
        put_varint(out, e.mtime.nanos as u64);
        put_varint(out, e.header_offset);
        put_varint(out, e.data_offset.saturating_sub(e.header_offset));
        match tag {
            TAG_FILE => {
                put_varint(out, e.size);
                put_varint(out, e.stored);
                match &e.sparse {
                    Some(map) => {
                        put_varint(out, map.len() as u64 + 1);
                        for &(off, len) in map {
                            put_varint(out, off);
                            put_varint(out, len);
                        }
                    }
                    None => put_varint(out, 0),
                }
                out.extend_from_slice(&e.digest.unwrap_or([0; 32]));
            }
            TAG_SYMLINK | TAG_HARDLINK => put_bytes(out, link),
            TAG_CHAR | TAG_BLOCK => {
                put_varint(out, dev.0 as u64);
                put_varint(out, dev.1 as u64);
            }
            _ => {}
        }
        self.entry_count += 1;
        self.last_path.clear();
        self.last_path.extend_from_slice(&e.path);
    }

    /// The encoded index.
    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.members.len() + self.entries.len());
        out.extend_from_slice(INDEX_MAGIC);
        put_varint(&mut out, self.member_count);
        out.extend_from_slice(&self.members);
        put_varint(&mut out, self.entry_count);
        out.extend_from_slice(&self.entries);
        out
    }
}

/// A decoded index: the member table, and the entries (decoded lazily).
#[derive(Debug, Clone)]
pub struct Index {
    /// Data members in order, with their offsets (compressed, uncompressed).
    pub members: Vec<(MemberInfo, u64, u64)>,
    /// Where the index members start: the end of the data members.
    pub data_end: u64,
    entries_count: u64,
    bytes: Vec<u8>,
    entries_at: usize,
}

impl Index {
    /// Decodes an encoded index (as [`IndexBuilder::finish`] gives).
    pub fn decode(bytes: Vec<u8>, data_end: u64) -> Result<Index, IndexError> {
        let mut cur = Cursor { b: &bytes, at: 0 };
        if cur.take(8)? != INDEX_MAGIC {
            return Err(corrupt("bad index magic"));
        }
        let count = cur.varint()?;
        let mut members = Vec::new();
        let (mut coff, mut uoff) = (0u64, 0u64);
        for _ in 0..count {
            let compressed = cur.varint()?;
            let uncompressed = cur.varint()?;
            let crc = cur.take(4)?;
            let crc32 = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
            members.push((
                MemberInfo {
                    compressed,
                    uncompressed,
                    crc32,
                },
                coff,
                uoff,
            ));
            coff = coff
                .checked_add(compressed)
                .ok_or_else(|| corrupt("member offsets overflow"))?;
            uoff = uoff
                .checked_add(uncompressed)
                .ok_or_else(|| corrupt("member offsets overflow"))?;
        }
        if coff > data_end {
            return Err(corrupt("members extend past the index"));
        }
        let entries_count = cur.varint()?;
        let entries_at = cur.at;
        let index = Index {
            members,
            data_end,
            entries_count,
            bytes,
            entries_at,
        };
        // Decode once so later iteration cannot fail half way.
        for e in index.entries() {
            e?;
        }
        Ok(index)
    }

    /// How many entries the index lists.
    pub fn len(&self) -> u64 {
        self.entries_count
    }

    pub fn is_empty(&self) -> bool {
        self.entries_count == 0
    }

    /// The entries in archive order.
    pub fn entries(&self) -> impl Iterator<Item = Result<IndexEntry, IndexError>> + '_ {
        let mut cur = Cursor {
            b: &self.bytes,
            at: self.entries_at,
        };
        let mut last: Vec<u8> = Vec::new();
        let mut left = self.entries_count;
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let e = decode_entry(&mut cur, &mut last);
            if e.is_err() {
                left = 0;
            }
            Some(e)
        })
    }

    /// The members whose uncompressed ranges cover `[offset, offset + len)`, as
    /// indexes into [`Index::members`].
    pub fn members_covering(&self, offset: u64, len: u64) -> std::ops::Range<usize> {
        let end = offset.saturating_add(len.max(1));
        let first = self
            .members
            .partition_point(|(m, _, u)| u + m.uncompressed <= offset);
        let last = self.members.partition_point(|(_, _, u)| *u < end);
        first..last.max(first)
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

impl IndexEntry {
    /// The index record of `entry`, whose header starts at `header_offset` and data at
    /// `data_offset` in the uncompressed stream.
    pub fn from_entry(
        entry: &Entry,
        header_offset: u64,
        data_offset: u64,
        digest: Option<[u8; 32]>,
    ) -> IndexEntry {
        IndexEntry {
            path: entry.path.clone(),
            kind: entry.kind.clone(),
            mode: entry.mode,
            uid: entry.uid,
            gid: entry.gid,
            mtime: entry.mtime,
            size: entry.size,
            header_offset,
            data_offset,
            stored: entry.stored_size(),
            sparse: entry.sparse.clone(),
            digest,
        }
    }
}

const TAG_FILE: u8 = 0;
const TAG_DIR: u8 = 1;
const TAG_SYMLINK: u8 = 2;
const TAG_HARDLINK: u8 = 3;
const TAG_CHAR: u8 = 4;
const TAG_BLOCK: u8 = 5;
const TAG_FIFO: u8 = 6;

fn kind_parts(kind: &Kind) -> (u8, &[u8], (u32, u32)) {
    match kind {
        Kind::File => (TAG_FILE, &[], (0, 0)),
        Kind::Dir => (TAG_DIR, &[], (0, 0)),
        Kind::Symlink(t) => (TAG_SYMLINK, t, (0, 0)),
        Kind::HardLink(t) => (TAG_HARDLINK, t, (0, 0)),
        Kind::CharDevice { major, minor } => (TAG_CHAR, &[], (*major, *minor)),
        Kind::BlockDevice { major, minor } => (TAG_BLOCK, &[], (*major, *minor)),
        Kind::Fifo => (TAG_FIFO, &[], (0, 0)),
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], IndexError> {
        let end = self
            .at
            .checked_add(n)
            .ok_or_else(|| corrupt("length overflows"))?;
        let s = self
            .b
            .get(self.at..end)
            .ok_or_else(|| corrupt("index is cut short"))?;
        self.at = end;
        Ok(s)
    }

    fn varint(&mut self) -> Result<u64, IndexError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.take(1)?[0];
            v |= ((byte & 0x7f) as u64)
                .checked_shl(shift)
                .ok_or_else(|| corrupt("varint too long"))?;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(corrupt("varint too long"))
    }

    fn varint_u32(&mut self) -> Result<u32, IndexError> {
        u32::try_from(self.varint()?).map_err(|_| corrupt("value out of range"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], IndexError> {
        let n = usize::try_from(self.varint()?).map_err(|_| corrupt("length out of range"))?;
        self.take(n)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A few entries of every shape, for the trailer tests of both codecs.
    pub(crate) fn sample() -> Vec<IndexEntry> {
        let mut e = Entry::new(b"rootimg".to_vec(), Kind::Dir, 0o755);
        e.mtime = Timestamp { secs: -5, nanos: 7 };
        let mut f = Entry::new(b"rootimg/etc/passwd".to_vec(), Kind::File, 0o644);
        f.size = 10;
        let mut s = Entry::new(b"rootimg/data/sparse".to_vec(), Kind::File, 0o600);
        s.size = 1 << 30;
        s.sparse = Some(vec![(4096, 10), (1 << 29, 5)]);
        let l = Entry::new(
            b"rootimg/etc/link".to_vec(),
            Kind::Symlink(b"../x".to_vec()),
            0o777,
        );
        let d = Entry::new(
            b"rootimg/dev/sda".to_vec(),
            Kind::BlockDevice { major: 8, minor: 0 },
            0o660,
        );
        vec![
            IndexEntry::from_entry(&e, 0, 512, None),
            IndexEntry::from_entry(
                &f,
                512,
                1024,
                Some(file_digest(&[chunk_digest(b"0123456789")])),
            ),
            IndexEntry::from_entry(&s, 1536, 3072, Some([9; 32])),
            IndexEntry::from_entry(&l, 4096, 4608, None),
            IndexEntry::from_entry(&d, 4608, 5120, None),
        ]
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

    #[test]
    fn varints_and_zigzag() {
        for v in [0u64, 1, 127, 128, 300, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(Cursor { b: &b, at: 0 }.varint().unwrap(), v);
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }
}

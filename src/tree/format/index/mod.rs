//! The tree index (FORMAT.md §3): where every entry and every data unit (gzip member,
//! zstd frame) of a tree is, so a reader can list the tree, pull one file out of a
//! 20 GiB bundle, or prove a restored tree equal, without inflating the rest.
//!
//! Two versions are read. v1 (`IMGPIDX1`) is one front-coded list of every entry with
//! a BLAKE3 per file, read whole. v2 (`IMGPIDX2`, what writers produce, [`v2`]) keeps
//! one strong digest per data member instead and cuts the entries into blocks, each
//! compressed on its own and read from the file on demand through a small head table,
//! so a lookup costs one block whatever the tree's size. This module is the
//! codec-neutral model and both encodings; how each codec stores them after the data
//! is the codec's business (`codec::gzip_trailer`, `codec::zstd_seekable`).

use std::cmp::Ordering;
use std::io::{Read, Seek};
use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::{Arc, Mutex};

use crate::tree::entry::{Entry, Kind, Timestamp};

pub mod v2;

pub use v2::{EncodedIndex, IndexBuilder};

/// Magic at the start of an encoded v1 index.
const INDEX_MAGIC: &[u8; 8] = b"IMGPIDX1";
/// v1 indexes digest stored file content in pieces of this size (FORMAT.md §3.5); it
/// is also the size at which writers split large files across members.
pub const DIGEST_CHUNK_BYTES: u64 = 4 << 20;
/// Largest encoded index (v1) or index head (v2) a reader accepts.
pub(crate) const MAX_INDEX_BYTES: u64 = 1 << 30;

/// Anything an index can be read from on demand: the tree archive's source, shared
/// with its reader of data members.
pub trait ReadSeekSend: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeekSend for T {}

/// A tree's bytes, shared between the index (which reads its blocks on demand) and
/// whoever reads the data members.
pub type SharedSource = Arc<Mutex<dyn ReadSeekSend>>;

/// Wraps `src` for sharing.
pub fn share<R: Read + Seek + Send + 'static>(src: R) -> SharedSource {
    Arc::new(Mutex::new(src))
}

/// Locks a shared source. A panic while another holder read leaves the reader where
/// it was; every use seeks first, so the poison is harmless.
pub fn lock_source(src: &SharedSource) -> std::sync::MutexGuard<'_, dyn ReadSeekSend + 'static> {
    src.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads the compressed bytes of one v2 index block: `(file offset, compressed
/// length)` to the block's payload, stripped of whatever the codec wraps it in.
pub type BlockFetch = Arc<dyn Fn(u64, u64) -> Result<Vec<u8>, IndexError> + Send + Sync>;

/// Which entry format the uncompressed stream holds, so readers decode the right
/// headers (v1 indexes only ever described pax tar).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamFormat {
    /// POSIX pax tar (FORMAT.md §4).
    #[default]
    Tar,
    /// cpio newc (FORMAT.md §5).
    Newc,
}

/// The order of entries in an archive, compared component by component: depth
/// first, siblings by raw name bytes. Equal to comparing the bytes with `/` ranked
/// below every other byte, which is what this does (names hold no NUL).
pub fn cmp_paths(a: &[u8], b: &[u8]) -> Ordering {
    let key = |c: u8| if c == b'/' { 0u16 } else { c as u16 + 1 };
    for (x, y) in a.iter().zip(b) {
        match key(*x).cmp(&key(*y)) {
            Ordering::Equal => continue,
            other => return other,
        }
    }
    a.len().cmp(&b.len())
}

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

/// One data member: its lengths, the CRC32 of its content and (v2) its BLAKE3.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberInfo {
    pub compressed: u64,
    pub uncompressed: u64,
    pub crc32: u32,
    /// BLAKE3 of the inflated member: every v2 member has one, v1 members none.
    pub digest: Option<[u8; 32]>,
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
    /// v1 only: digest of the stored data (files only), see [`file_digest`]. v2
    /// indexes leave it `None`: members carry the digests.
    pub digest: Option<[u8; 32]>,
}

/// Digest of one piece (at most [`DIGEST_CHUNK_BYTES`]) of a file's stored data (v1).
pub fn chunk_digest(bytes: &[u8]) -> [u8; 32] {
    *blake3::hash(bytes).as_bytes()
}

/// A file's v1 digest: BLAKE3 over the concatenated BLAKE3s of its stored data cut into
/// [`DIGEST_CHUNK_BYTES`] pieces (BLAKE3 of nothing for an empty file). Defined this
/// way so pieces can be digested in parallel by whoever compresses them.
pub fn file_digest(chunks: &[[u8; 32]]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    for c in chunks {
        h.update(c);
    }
    *h.finalize().as_bytes()
}

/// A decoded index: the member table, and the entries (decoded lazily).
#[derive(Clone)]
pub struct Index {
    /// Data members in order, with their offsets (compressed, uncompressed).
    pub members: Vec<(MemberInfo, u64, u64)>,
    /// Where the index starts: the end of the data members.
    pub data_end: u64,
    /// What the data members hold.
    pub format: StreamFormat,
    entries_count: u64,
    body: Body,
}

#[derive(Clone)]
enum Body {
    V1 {
        bytes: Arc<Vec<u8>>,
        entries_at: usize,
    },
    V2(v2::Blocks),
}

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("version", &self.version())
            .field("format", &self.format)
            .field("members", &self.members.len())
            .field("entries", &self.entries_count)
            .field("data_end", &self.data_end)
            .finish()
    }
}

/// Member offsets from their lengths, checked against `data_end`.
fn place_members(
    infos: Vec<MemberInfo>,
    data_end: u64,
) -> Result<Vec<(MemberInfo, u64, u64)>, IndexError> {
    let mut members = Vec::with_capacity(infos.len());
    let (mut coff, mut uoff) = (0u64, 0u64);
    for m in infos {
        members.push((m, coff, uoff));
        coff = coff
            .checked_add(m.compressed)
            .ok_or_else(|| corrupt("member offsets overflow"))?;
        uoff = uoff
            .checked_add(m.uncompressed)
            .ok_or_else(|| corrupt("member offsets overflow"))?;
    }
    if coff > data_end {
        return Err(corrupt("members extend past the index"));
    }
    Ok(members)
}

impl Index {
    /// Decodes an encoded v1 index (FORMAT.md §3.5) whose data members end at
    /// `data_end`.
    pub fn decode(bytes: Vec<u8>, data_end: u64) -> Result<Index, IndexError> {
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

    /// Decodes a v2 index head (FORMAT.md §3.1) whose blocks lie, back to back, from
    /// file offset `blocks_start` to `blocks_end`; a block of `c` compressed bytes
    /// takes `span(c)` bytes of the file, and `fetch` reads one. No block is read
    /// here.
    pub fn decode_v2(
        head: &[u8],
        data_end: u64,
        (blocks_start, blocks_end): (u64, u64),
        span: fn(u64) -> u64,
        fetch: BlockFetch,
    ) -> Result<Index, IndexError> {
        let h = v2::decode_head(head, (blocks_start, blocks_end), span, fetch)?;
        Ok(Index {
            members: place_members(h.members, data_end)?,
            data_end,
            format: h.format,
            entries_count: h.entries,
            body: Body::V2(h.blocks),
        })
    }

    /// 1 or 2.
    pub fn version(&self) -> u8 {
        match self.body {
            Body::V1 { .. } => 1,
            Body::V2(_) => 2,
        }
    }

    /// How many entries the index lists.
    pub fn len(&self) -> u64 {
        self.entries_count
    }

    pub fn is_empty(&self) -> bool {
        self.entries_count == 0
    }

    /// Whether entries are known to be in [`cmp_paths`] order, so lookups can
    /// binary-search (v2 indexes say so; v1 are scanned).
    pub fn sorted(&self) -> bool {
        matches!(&self.body, Body::V2(b) if b.sorted)
    }

    /// Index blocks read so far (v2; 0 for v1, which is read whole): what a lookup
    /// cost.
    pub fn blocks_read(&self) -> u64 {
        match &self.body {
            Body::V1 { .. } => 0,
            Body::V2(b) => b.reads.load(AtomicOrdering::Relaxed),
        }
    }

    /// The entries in archive order, decoded lazily (v2: one block at a time, read
    /// from the file when reached). An error ends the iteration.
    pub fn entries(&self) -> Entries<'_> {
        self.entries_from_block(0)
    }

    fn entries_from_block(&self, block: usize) -> Entries<'_> {
        match &self.body {
            Body::V1 { bytes, entries_at } => Entries::V1 {
                cur: Cursor {
                    b: bytes,
                    at: *entries_at,
                },
                last: Vec::new(),
                left: self.entries_count,
            },
            Body::V2(blocks) => Entries::V2 {
                blocks,
                next: block,
                cur: Vec::new().into_iter(),
                failed: false,
            },
        }
    }

    /// The entries in archive order from the first whose path is not before `path`
    /// (in [`cmp_paths`] order) when the index is [`sorted`](Index::sorted): only the
    /// blocks from there on are read. Unsorted indexes give every entry.
    pub fn entries_from<'a>(
        &'a self,
        path: &'a [u8],
    ) -> impl Iterator<Item = Result<IndexEntry, IndexError>> + 'a {
        let (block, skip) = match &self.body {
            Body::V2(b) if b.sorted => (b.block_for(path), true),
            _ => (0, false),
        };
        self.entries_from_block(block)
            .skip_while(move |e| skip && e.as_ref().is_ok_and(|e| cmp_paths(&e.path, path).is_lt()))
    }

    /// The entry named exactly `path`. A sorted v2 index reads one block; others are
    /// scanned.
    pub fn find(&self, path: &[u8]) -> Result<Option<IndexEntry>, IndexError> {
        for e in self.entries_from(path) {
            let e = e?;
            if e.path == path {
                return Ok(Some(e));
            }
            if self.sorted() && cmp_paths(&e.path, path).is_gt() {
                break;
            }
        }
        Ok(None)
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

/// The entries of an [`Index`], in archive order.
pub enum Entries<'a> {
    #[doc(hidden)]
    V1 {
        cur: Cursor<'a>,
        last: Vec<u8>,
        left: u64,
    },
    #[doc(hidden)]
    V2 {
        blocks: &'a v2::Blocks,
        next: usize,
        cur: std::vec::IntoIter<IndexEntry>,
        failed: bool,
    },
}

impl Iterator for Entries<'_> {
    type Item = Result<IndexEntry, IndexError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Entries::V1 { cur, last, left } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                let e = decode_entry(cur, last);
                if e.is_err() {
                    *left = 0;
                }
                Some(e)
            }
            Entries::V2 {
                blocks,
                next,
                cur,
                failed,
            } => loop {
                if let Some(e) = cur.next() {
                    return Some(Ok(e));
                }
                if *failed || *next >= blocks.len() {
                    return None;
                }
                match blocks.read(*next) {
                    Ok(entries) => *cur = entries.into_iter(),
                    Err(e) => {
                        *failed = true;
                        return Some(Err(e));
                    }
                }
                *next += 1;
            },
        }
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

pub(crate) const TAG_FILE: u8 = 0;
pub(crate) const TAG_DIR: u8 = 1;
pub(crate) const TAG_SYMLINK: u8 = 2;
pub(crate) const TAG_HARDLINK: u8 = 3;
pub(crate) const TAG_CHAR: u8 = 4;
pub(crate) const TAG_BLOCK: u8 = 5;
pub(crate) const TAG_FIFO: u8 = 6;

pub(crate) fn kind_parts(kind: &Kind) -> (u8, &[u8], (u32, u32)) {
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

pub(crate) fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

pub(crate) fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub(crate) fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(crate) fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

#[doc(hidden)]
pub struct Cursor<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) at: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], IndexError> {
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

    pub(crate) fn varint(&mut self) -> Result<u64, IndexError> {
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

    pub(crate) fn varint_u32(&mut self) -> Result<u32, IndexError> {
        u32::try_from(self.varint()?).map_err(|_| corrupt("value out of range"))
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], IndexError> {
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
    fn paths_compare_component_by_component() {
        assert!(cmp_paths(b"r/a/b", b"r/a.b").is_lt());
        assert!(cmp_paths(b"r/a", b"r/a/b").is_lt());
        assert!(cmp_paths(b"r/a/z", b"r/ab").is_lt());
        assert!(cmp_paths(b"r/b", b"r/a/z").is_gt());
        assert!(cmp_paths(b"r", b"r").is_eq());
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

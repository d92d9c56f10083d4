//! The tree index (FORMAT.md §3): where every entry and every data unit (gzip member,
//! zstd frame) of a tree is, so a reader can list the tree, pull one file out of a
//! 20 GiB bundle, or prove a restored tree equal, without inflating the rest.
//!
//! Two versions are read. v1 (`IMGPIDX1`, [`v1`]) is one front-coded list of every
//! entry with a BLAKE3 per file, read whole. v2 (`IMGPIDX2`, what writers produce,
//! [`v2`]) keeps one strong digest per data member instead and cuts the entries into
//! blocks, each compressed on its own and read from the file on demand through a small
//! head table, so a lookup costs one block whatever the tree's size. This module is the
//! codec-neutral model, the path order, and the choice between the two encodings
//! (their shared primitives are in `varint`); how each codec stores them after the
//! data is the codec's business (`codec::gzip_trailer`, `codec::zstd_seekable`).

use std::cmp::Ordering;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::sync::Arc;

use crate::tree::entry::{Entry, Kind, Timestamp};

mod block_store;
mod source;
pub mod v1;
pub mod v2;
pub(crate) mod varint;

pub use source::{lock_source, share, ReadSeekSend, SharedSource};
pub use v1::{chunk_digest, file_digest};
pub use v2::{EncodedIndex, IndexBuilder};

/// v1 indexes digest stored file content in pieces of this size (FORMAT.md §3.5); it
/// is also the size at which writers split large files across members.
pub const DIGEST_CHUNK_BYTES: u64 = 4 << 20;
/// Largest encoded index (v1) or index head (v2) a reader accepts.
pub(crate) const MAX_INDEX_BYTES: u64 = 1 << 30;

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
        v1::decode(bytes, data_end)
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
            Body::V1 { bytes, entries_at } => {
                Entries::V1(v1::Entries::new(bytes, *entries_at, self.entries_count))
            }
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
    V1(v1::Entries<'a>),
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
            Entries::V1(entries) => entries.next(),
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
            digest,
            ..IndexEntry::from_owned(entry.clone(), header_offset, data_offset)
        }
    }

    /// [`Self::from_entry`] without a digest, for an entry no longer needed: its path
    /// and sparse map move into the record (the encoder makes one per entry).
    pub fn from_owned(entry: Entry, header_offset: u64, data_offset: u64) -> IndexEntry {
        let stored = entry.stored_size();
        IndexEntry {
            path: entry.path,
            kind: entry.kind,
            mode: entry.mode,
            uid: entry.uid,
            gid: entry.gid,
            mtime: entry.mtime,
            size: entry.size,
            header_offset,
            data_offset,
            stored,
            sparse: entry.sparse,
            digest: None,
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    // Codec and verify tests build v1 indexes through this path.
    pub(crate) use super::v1::tests::encode_v1;

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
    fn paths_compare_component_by_component() {
        assert!(cmp_paths(b"r/a/b", b"r/a.b").is_lt());
        assert!(cmp_paths(b"r/a", b"r/a/b").is_lt());
        assert!(cmp_paths(b"r/a/z", b"r/ab").is_lt());
        assert!(cmp_paths(b"r/b", b"r/a/z").is_gt());
        assert!(cmp_paths(b"r", b"r").is_eq());
    }
}

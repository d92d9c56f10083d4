//! Index v2 (FORMAT.md §3.1–§3.4): entries in blocks, each compressed on its own,
//! column by column; a head with the member table (one BLAKE3 per member) and one
//! line per block (its first path, entry count, first header offset, lengths, CRC32).
//!
//! Why this shape: at 10^6 small files v1 cost 17 % of the compressed tree, mostly
//! one 32-byte digest per file, which no compressor can shrink. Columns of
//! mostly-equal modes, owners and times, front-coded sequential names and header
//! offsets derived from sizes leave little more than each file's size to store, and a
//! head of one line per block lets a lookup read one block.

use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;

use super::block_store::{BlockStore, StoredBlocks, SPILL_AFTER_BYTES};
use super::varint::{put_bytes, put_varint, unzigzag, zigzag, Cursor};
use super::{
    cmp_paths, common_prefix, corrupt, kind_parts, BlockFetch, IndexEntry, IndexError, MemberInfo,
    StreamFormat, TAG_BLOCK, TAG_CHAR, TAG_DIR, TAG_FIFO, TAG_FILE, TAG_HARDLINK, TAG_SYMLINK,
};
use crate::tree::entry::{Kind, Timestamp};

/// Magic at the start of a v2 index head.
pub const HEAD_MAGIC: &[u8; 8] = b"IMGPIDX2";
/// A block is closed once it holds this many entries...
pub const BLOCK_ENTRIES: usize = 4096;
/// ... or this many raw (uncompressed) bytes, whichever comes first.
pub const BLOCK_RAW_BYTES: usize = 128 << 10;
/// Largest block (raw or compressed) a reader accepts: a full block plus one entry
/// with the longest path and link target the tar decoder takes.
pub const MAX_BLOCK_BYTES: u64 = 16 << 20;
/// zstd level of the blocks and the head. The writer compresses each block on its
/// own thread as the block fills, so the level is kept moderate: at 6 the index of
/// 10^5 small files is 0.72 % of the tree (FORMAT.md §3.6).
const LEVEL: i32 = 6;
/// Head flag: every entry's path sorts after the previous one's ([`cmp_paths`]).
const FLAG_SORTED: u8 = 1;
/// The columns of a raw block, in order.
const COLUMNS: usize = 14;

/// The tar and newc streams pad data to these; `header_offset` of the next entry is
/// derived from them (FORMAT.md §3.3).
fn align(format: StreamFormat) -> u64 {
    match format {
        StreamFormat::Tar => 512,
        StreamFormat::Newc => 4,
    }
}

/// Bytes of an entry's data in the stream: stored file data, and for newc a symlink's
/// target.
fn data_len(format: StreamFormat, e: &IndexEntry) -> u64 {
    match (&e.kind, format) {
        (Kind::File, _) => e.stored,
        (Kind::Symlink(t), StreamFormat::Newc) => t.len() as u64,
        _ => 0,
    }
}

/// Where the entry after `e` should start if nothing sits between them.
fn derived_next(format: StreamFormat, e: &IndexEntry) -> u64 {
    let n = data_len(format, e);
    let a = align(format);
    e.data_offset.wrapping_add(n).wrapping_add((a - n % a) % a)
}

/// Compression and placement of one block, as the head lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockInfo {
    pub first_path: Vec<u8>,
    pub entries: u64,
    pub first_header_offset: u64,
    /// Compressed bytes (the zstd frame).
    pub clen: u64,
    pub raw_len: u64,
    /// CRC32 of the raw block.
    pub crc32: u32,
    /// File offset of the block (filled in by the reader).
    pub offset: u64,
}

/// An encoded v2 index: the compressed blocks, in order, and the raw head. The codec
/// trailer stores them (and compresses the head).
#[derive(Debug)]
pub struct EncodedIndex {
    blocks: std::io::Result<StoredBlocks>,
    block_lens: Vec<u64>,
    pub head: Vec<u8>,
}

impl EncodedIndex {
    /// Bytes of the compressed blocks.
    pub fn blocks_len(&self) -> u64 {
        self.block_lens.iter().sum()
    }

    /// Calls `f` with each compressed block, in order (a spilled block is read back
    /// into one reused buffer); fails first if spilling them failed.
    pub fn for_each_block(
        &self,
        f: impl FnMut(&[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        match &self.blocks {
            Ok(stored) => stored.for_each(&self.block_lens, f),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}

#[derive(Default)]
struct Columns {
    c: [Vec<u8>; COLUMNS],
}

const C_PATH: usize = 0;
const C_KIND: usize = 1;
const C_MODE: usize = 2;
const C_UID: usize = 3;
const C_GID: usize = 4;
const C_SECS: usize = 5;
const C_NANOS: usize = 6;
const C_HEADER: usize = 7;
const C_SIZE: usize = 8;
const C_HOLES: usize = 9;
const C_SPARSE: usize = 10;
const C_LINK: usize = 11;
const C_DEV: usize = 12;
const C_SKEW: usize = 13;

impl Columns {
    fn raw_len(&self) -> usize {
        self.c.iter().map(Vec::len).sum()
    }
}

/// Builds a v2 index as members and entries are written. Holds one open block, a line
/// per closed block, and the closed blocks up to [`SPILL_AFTER_BYTES`] (the rest in a
/// temporary file): nothing per entry (FORMAT.md §3.6).
pub struct IndexBuilder {
    format: StreamFormat,
    members: Vec<MemberInfo>,
    blocks: BlockStore,
    table: Vec<BlockInfo>,
    cols: Columns,
    n: usize,
    first_path: Vec<u8>,
    first_header_offset: u64,
    last_path: Vec<u8>,
    last_secs: i64,
    /// Where the entry after the last one pushed is expected to start.
    next_at: u64,
    sorted: bool,
    entries: u64,
    compressor: Option<zstd::bulk::Compressor<'static>>,
}

impl std::fmt::Debug for IndexBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexBuilder")
            .field("entries", &self.entries)
            .field("blocks", &self.table.len())
            .finish()
    }
}

impl Default for IndexBuilder {
    fn default() -> Self {
        IndexBuilder::new()
    }
}

impl IndexBuilder {
    /// A builder for a pax tar stream.
    pub fn new() -> IndexBuilder {
        IndexBuilder::for_format(StreamFormat::Tar)
    }

    /// A builder for a stream of `format` entries.
    pub fn for_format(format: StreamFormat) -> IndexBuilder {
        IndexBuilder {
            format,
            members: Vec::new(),
            blocks: BlockStore::new(SPILL_AFTER_BYTES),
            table: Vec::new(),
            cols: Columns::default(),
            n: 0,
            first_path: Vec::new(),
            first_header_offset: 0,
            last_path: Vec::new(),
            last_secs: 0,
            next_at: 0,
            sorted: true,
            entries: 0,
            compressor: None,
        }
    }

    /// Keeps at most `bytes` of closed blocks in memory (tests spill at once with 0).
    #[cfg(test)]
    pub(crate) fn spill_after(mut self, bytes: usize) -> IndexBuilder {
        self.blocks = BlockStore::new(bytes);
        self
    }

    /// Whether closed blocks have moved to the temporary file.
    #[cfg(test)]
    pub(crate) fn spilled(&self) -> bool {
        self.blocks.spilled()
    }

    /// Records the next data member.
    pub fn push_member(&mut self, m: MemberInfo) {
        self.members.push(m);
    }

    /// Records the next entry (entries must be pushed in archive order).
    pub fn push_entry(&mut self, e: &IndexEntry) {
        if self.entries > 0 && cmp_paths(&self.last_path, &e.path).is_ge() {
            self.sorted = false;
        }
        if self.n >= BLOCK_ENTRIES || self.cols.raw_len() >= BLOCK_RAW_BYTES {
            self.close_block();
        } else if self.n > 0 {
            // How far this entry starts from where the previous one's data ended
            // (padding included): 0 unless a writer put something in between.
            let skew = e.header_offset.wrapping_sub(self.next_at) as i64;
            put_varint(&mut self.cols.c[C_SKEW], zigzag(skew));
        }
        if self.n == 0 {
            self.first_path.clear();
            self.first_path.extend_from_slice(&e.path);
            self.first_header_offset = e.header_offset;
            self.last_path.clear();
            self.last_secs = 0;
        }
        let c = &mut self.cols.c;
        let shared = common_prefix(&self.last_path, &e.path);
        put_varint(&mut c[C_PATH], shared as u64);
        put_bytes(&mut c[C_PATH], &e.path[shared..]);
        let (tag, link, dev) = kind_parts(&e.kind);
        c[C_KIND].push(tag);
        put_varint(&mut c[C_MODE], e.mode as u64);
        put_varint(&mut c[C_UID], e.uid as u64);
        put_varint(&mut c[C_GID], e.gid as u64);
        put_varint(
            &mut c[C_SECS],
            zigzag(e.mtime.secs.wrapping_sub(self.last_secs)),
        );
        put_varint(&mut c[C_NANOS], e.mtime.nanos as u64);
        put_varint(
            &mut c[C_HEADER],
            e.data_offset.wrapping_sub(e.header_offset),
        );
        put_varint(&mut c[C_SIZE], e.size);
        put_varint(
            &mut c[C_HOLES],
            zigzag(e.size.wrapping_sub(e.stored) as i64),
        );
        match &e.sparse {
            Some(map) => {
                put_varint(&mut c[C_SPARSE], map.len() as u64 + 1);
                for &(off, len) in map {
                    put_varint(&mut c[C_SPARSE], off);
                    put_varint(&mut c[C_SPARSE], len);
                }
            }
            None => put_varint(&mut c[C_SPARSE], 0),
        }
        match tag {
            TAG_SYMLINK | TAG_HARDLINK => put_bytes(&mut c[C_LINK], link),
            TAG_CHAR | TAG_BLOCK => {
                put_varint(&mut c[C_DEV], dev.0 as u64);
                put_varint(&mut c[C_DEV], dev.1 as u64);
            }
            _ => {}
        }
        self.n += 1;
        self.entries += 1;
        self.last_secs = e.mtime.secs;
        self.last_path.clear();
        self.last_path.extend_from_slice(&e.path);
        self.next_at = derived_next(self.format, e);
    }

    fn close_block(&mut self) {
        if self.n == 0 {
            return;
        }
        // The last entry of a block has no successor inside it.
        put_varint(&mut self.cols.c[C_SKEW], 0);
        let mut raw = Vec::with_capacity(self.cols.raw_len() + 64);
        put_varint(&mut raw, self.n as u64);
        for col in &mut self.cols.c {
            put_varint(&mut raw, col.len() as u64);
            raw.extend_from_slice(col);
            col.clear();
        }
        let blob = compress(&mut self.compressor, &raw);
        let mut crc = libdeflater::Crc::new();
        crc.update(&raw);
        self.table.push(BlockInfo {
            first_path: std::mem::take(&mut self.first_path),
            entries: self.n as u64,
            first_header_offset: self.first_header_offset,
            clen: blob.len() as u64,
            raw_len: raw.len() as u64,
            crc32: crc.sum(),
            offset: 0,
        });
        self.blocks.push(&blob);
        self.n = 0;
    }

    /// The encoded index: compressed blocks and the raw head.
    pub fn finish(mut self) -> EncodedIndex {
        self.close_block();
        let mut head = Vec::with_capacity(64 + 48 * self.members.len() + 64 * self.table.len());
        head.extend_from_slice(HEAD_MAGIC);
        head.push(match self.format {
            StreamFormat::Tar => 0,
            StreamFormat::Newc => 1,
        });
        head.push(if self.sorted { FLAG_SORTED } else { 0 });
        put_varint(&mut head, self.members.len() as u64);
        for m in &self.members {
            put_varint(&mut head, m.compressed);
            put_varint(&mut head, m.uncompressed);
            head.extend_from_slice(&m.crc32.to_le_bytes());
            head.extend_from_slice(&m.digest.unwrap_or([0; 32]));
        }
        put_varint(&mut head, self.entries);
        put_varint(&mut head, self.table.len() as u64);
        let mut last: &[u8] = &[];
        for b in &self.table {
            let shared = common_prefix(last, &b.first_path);
            put_varint(&mut head, shared as u64);
            put_bytes(&mut head, &b.first_path[shared..]);
            put_varint(&mut head, b.entries);
            put_varint(&mut head, b.first_header_offset);
            put_varint(&mut head, b.clen);
            put_varint(&mut head, b.raw_len);
            head.extend_from_slice(&b.crc32.to_le_bytes());
            last = &b.first_path;
        }
        EncodedIndex {
            blocks: self.blocks.finish(),
            block_lens: self.table.iter().map(|b| b.clen).collect(),
            head,
        }
    }
}

/// zstd at [`LEVEL`], with the frame's content size (readers check it) and no
/// checksum (the head's CRC32 covers each block).
pub fn compress(c: &mut Option<zstd::bulk::Compressor<'static>>, raw: &[u8]) -> Vec<u8> {
    if c.is_none() {
        *c = zstd::bulk::Compressor::new(LEVEL).ok();
    }
    match c.as_mut().and_then(|c| c.compress(raw).ok()) {
        Some(blob) => blob,
        // Compressing to memory fails only on allocation failure, which aborts
        // before this: a stored copy keeps the index correct regardless.
        None => zstd::bulk::compress(raw, 1).unwrap_or_default(),
    }
}

/// Decompresses `blob` (zstd frames), accepting exactly `expected` bytes of output;
/// memory grows with what actually comes out, not with the claim.
pub fn decompress_exact(blob: &[u8], expected: u64, what: &str) -> Result<Vec<u8>, IndexError> {
    use std::io::Read;
    let mut d = zstd::stream::read::Decoder::with_buffer(blob)
        .map_err(|e| corrupt(format!("{what} does not decompress: {e}")))?;
    let mut out = Vec::with_capacity(expected.min(1 << 20) as usize);
    (&mut d)
        .take(expected.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| corrupt(format!("{what} does not decompress: {e}")))?;
    if out.len() as u64 != expected {
        return Err(corrupt(format!(
            "{what} length differs from the index head"
        )));
    }
    Ok(out)
}

/// The block table of a decoded v2 index, and how to read a block.
#[derive(Clone)]
pub struct Blocks {
    pub table: Vec<BlockInfo>,
    pub sorted: bool,
    format: StreamFormat,
    fetch: BlockFetch,
    pub(super) reads: Arc<AtomicU64>,
}

impl Blocks {
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The block that holds `path` if any does: the last whose first path is not
    /// after it.
    pub fn block_for(&self, path: &[u8]) -> usize {
        self.table
            .partition_point(|b| cmp_paths(&b.first_path, path).is_le())
            .saturating_sub(1)
    }

    /// Reads, checks and decodes block `i`.
    pub fn read(&self, i: usize) -> Result<Vec<IndexEntry>, IndexError> {
        let b = self
            .table
            .get(i)
            .ok_or_else(|| corrupt("no such index block"))?;
        self.reads.fetch_add(1, AtomicOrdering::Relaxed);
        let blob = (self.fetch)(b.offset, b.clen)?;
        if blob.len() as u64 != b.clen {
            return Err(corrupt(format!("index block {i} is cut short")));
        }
        let raw = decompress_exact(&blob, b.raw_len, &format!("index block {i}"))?;
        let mut crc = libdeflater::Crc::new();
        crc.update(&raw);
        if crc.sum() != b.crc32 {
            return Err(corrupt(format!("index block {i}: CRC32 mismatch")));
        }
        let entries = decode_block(&raw, b.first_header_offset, self.format)?;
        if entries.len() as u64 != b.entries
            || entries.first().map(|e| e.path.as_slice()) != Some(b.first_path.as_slice())
        {
            return Err(corrupt(format!("index block {i} differs from the head")));
        }
        Ok(entries)
    }
}

/// A decoded head.
pub(super) struct Head {
    pub members: Vec<MemberInfo>,
    pub format: StreamFormat,
    pub entries: u64,
    pub blocks: Blocks,
}

/// Decodes a raw head; see [`super::Index::decode_v2`].
pub(super) fn decode_head(
    head: &[u8],
    (blocks_start, blocks_end): (u64, u64),
    span: fn(u64) -> u64,
    fetch: BlockFetch,
) -> Result<Head, IndexError> {
    let mut cur = Cursor { b: head, at: 0 };
    if cur.take(8)? != HEAD_MAGIC {
        return Err(corrupt("bad index magic"));
    }
    let format = match cur.take(1)?[0] {
        0 => StreamFormat::Tar,
        1 => StreamFormat::Newc,
        other => return Err(corrupt(format!("unknown stream format {other}"))),
    };
    let flags = cur.take(1)?[0];
    if flags & !FLAG_SORTED != 0 {
        return Err(corrupt("unknown index flags"));
    }
    let count = cur.varint()?;
    // Each member takes at least 38 bytes: a claim larger than the head is a lie.
    if count > head.len() as u64 / 38 {
        return Err(corrupt("member count exceeds the index head"));
    }
    let mut members = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let compressed = cur.varint()?;
        let uncompressed = cur.varint()?;
        let crc = cur.take(4)?;
        let crc32 = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        let mut digest = [0u8; 32];
        digest.copy_from_slice(cur.take(32)?);
        members.push(MemberInfo {
            compressed,
            uncompressed,
            crc32,
            digest: Some(digest),
        });
    }
    let entries = cur.varint()?;
    let nblocks = cur.varint()?;
    if nblocks > head.len() as u64 / 8 {
        return Err(corrupt("block count exceeds the index head"));
    }
    let mut table = Vec::with_capacity(nblocks as usize);
    let mut last: Vec<u8> = Vec::new();
    let mut at = blocks_start;
    let mut total = 0u64;
    for i in 0..nblocks {
        let shared = cur.varint()? as usize;
        if shared > last.len() {
            return Err(corrupt("block path prefix longer than the previous path"));
        }
        let suffix = cur.bytes()?;
        last.truncate(shared);
        last.extend_from_slice(suffix);
        let b = BlockInfo {
            first_path: last.clone(),
            entries: cur.varint()?,
            first_header_offset: cur.varint()?,
            clen: cur.varint()?,
            raw_len: cur.varint()?,
            crc32: {
                let c = cur.take(4)?;
                u32::from_le_bytes([c[0], c[1], c[2], c[3]])
            },
            offset: at,
        };
        // Every entry takes more than one raw byte per column.
        if b.entries == 0
            || b.entries > b.raw_len
            || b.clen == 0
            || b.clen > MAX_BLOCK_BYTES
            || b.raw_len > MAX_BLOCK_BYTES
        {
            return Err(corrupt(format!("index block {i} has impossible lengths")));
        }
        if let Some(prev) = table.last() {
            let prev: &BlockInfo = prev;
            if cmp_paths(&prev.first_path, &b.first_path).is_ge() && flags & FLAG_SORTED != 0 {
                return Err(corrupt("index blocks are out of order"));
            }
        }
        at = at
            .checked_add(span(b.clen))
            .ok_or_else(|| corrupt("index block offsets overflow"))?;
        total = total.saturating_add(b.entries);
        table.push(b);
    }
    if cur.at != head.len() {
        return Err(corrupt("trailing bytes after the index head"));
    }
    if at != blocks_end {
        return Err(corrupt(
            "index blocks do not fill the space before the index head",
        ));
    }
    if total != entries {
        return Err(corrupt("index blocks hold a different number of entries"));
    }
    Ok(Head {
        members,
        format,
        entries,
        blocks: Blocks {
            table,
            sorted: flags & FLAG_SORTED != 0,
            format,
            fetch,
            reads: Arc::new(AtomicU64::new(0)),
        },
    })
}

/// Decodes a raw block whose first entry's header starts at `first_header_offset`.
pub fn decode_block(
    raw: &[u8],
    first_header_offset: u64,
    format: StreamFormat,
) -> Result<Vec<IndexEntry>, IndexError> {
    let mut cur = Cursor { b: raw, at: 0 };
    let n = cur.varint()?;
    if n > raw.len() as u64 {
        return Err(corrupt("index block entry count exceeds its size"));
    }
    let mut cols: Vec<Cursor<'_>> = Vec::with_capacity(COLUMNS);
    for _ in 0..COLUMNS {
        cols.push(Cursor {
            b: cur.bytes()?,
            at: 0,
        });
    }
    if cur.at != raw.len() {
        return Err(corrupt("trailing bytes in an index block"));
    }
    let mut out = Vec::with_capacity(n as usize);
    let mut path: Vec<u8> = Vec::new();
    let mut secs = 0i64;
    let mut header_offset = first_header_offset;
    for _ in 0..n {
        let c = &mut cols;
        let shared = c[C_PATH].varint()? as usize;
        if shared > path.len() {
            return Err(corrupt("path prefix longer than the previous path"));
        }
        let suffix = c[C_PATH].bytes()?;
        path.truncate(shared);
        path.extend_from_slice(suffix);
        let tag = c[C_KIND].take(1)?[0];
        let mode = c[C_MODE].varint_u32()?;
        let uid = c[C_UID].varint_u32()?;
        let gid = c[C_GID].varint_u32()?;
        secs = secs.wrapping_add(unzigzag(c[C_SECS].varint()?));
        let nanos = c[C_NANOS].varint_u32()?;
        let data_offset = header_offset
            .checked_add(c[C_HEADER].varint()?)
            .ok_or_else(|| corrupt("data offset overflows"))?;
        let size = c[C_SIZE].varint()?;
        let stored = size.wrapping_sub(unzigzag(c[C_HOLES].varint()?) as u64);
        let segments = c[C_SPARSE].varint()?;
        let sparse = if segments == 0 {
            None
        } else {
            // Each segment takes at least two bytes of the column.
            if segments - 1 > c[C_SPARSE].b.len() as u64 {
                return Err(corrupt("sparse map longer than its column"));
            }
            let mut map = Vec::with_capacity((segments - 1) as usize);
            for _ in 1..segments {
                map.push((c[C_SPARSE].varint()?, c[C_SPARSE].varint()?));
            }
            Some(map)
        };
        let kind = match tag {
            TAG_FILE => Kind::File,
            TAG_DIR => Kind::Dir,
            TAG_SYMLINK => Kind::Symlink(c[C_LINK].bytes()?.to_vec()),
            TAG_HARDLINK => Kind::HardLink(c[C_LINK].bytes()?.to_vec()),
            TAG_CHAR => Kind::CharDevice {
                major: c[C_DEV].varint_u32()?,
                minor: c[C_DEV].varint_u32()?,
            },
            TAG_BLOCK => Kind::BlockDevice {
                major: c[C_DEV].varint_u32()?,
                minor: c[C_DEV].varint_u32()?,
            },
            TAG_FIFO => Kind::Fifo,
            other => return Err(corrupt(format!("unknown entry kind {other}"))),
        };
        let skew = unzigzag(c[C_SKEW].varint()?);
        let e = IndexEntry {
            path: path.clone(),
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
            digest: None,
        };
        header_offset = derived_next(format, &e).wrapping_add(skew as u64);
        out.push(e);
    }
    if cols.iter().any(|c| c.at != c.b.len()) {
        return Err(corrupt("index block columns hold more than its entries"));
    }
    Ok(out)
}

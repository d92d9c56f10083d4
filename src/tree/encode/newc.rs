//! Writing a walked tree as cpio newc, for `export --compat xcat`: what
//! `cd <rootimgdir> && find rootimg | cpio -H newc -o` writes, closely enough that
//! real xCAT's `zcat rootimgtree.gz | cpio -idum` restores the tree the same way. The
//! header bytes come from the format module (`format::newc`); this module decides
//! what goes in them (inode numbers, link groups, lost metadata) and streams the data.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use libdeflater::Compressor;

use crate::tree::codec::gzip::{compressor, encode_data, TRAILER_BYTES};
use crate::tree::codec::gzip_trailer::encode_gzip_trailer;
use crate::tree::codec::member_digest;
use crate::tree::encode::entry::{output_error, EntryEncoder, IO_BUF_BYTES};
use crate::tree::encode::walk::{walk, Walk, WalkOptions};
use crate::tree::encode::writer::{DEFAULT_GZIP_LEVEL, MAX_GZIP_LEVEL, ROOTIMG_TOP};
use crate::tree::entry::{Entry, Kind, Timestamp};
use crate::tree::error::{display_path, TreeError};
use crate::tree::format::index::{IndexBuilder, IndexEntry, MemberInfo, StreamFormat};
use crate::tree::format::newc::{clamp_mtime, pad4, HEADER};
use crate::tree::format::newc::{
    encode_newc_header, NewcHeader, NEWC_MAX_SIZE, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK,
    S_IFREG, TRAILER,
};
use crate::tree::format::sidecar::{Record, SidecarBuilder};
use crate::tree::format::{padding, BLOCK_BYTES};
use crate::tree::threads;

/// How to write a newc archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewcOptions {
    /// gzip level 0..=9 for [`write_newc_gz`] (default 6, as `gzip -c` in xCAT);
    /// ignored by [`write_newc`].
    pub level: u32,
    /// Do not descend into other file systems (default true). xCAT's plain
    /// `find rootimg` would descend, but a root image being built often has /proc or
    /// a bind mount inside it, and archiving those is never wanted.
    pub one_file_system: bool,
    /// Compression threads for [`write_newc_gz`] (0: one per core). The output is
    /// the same bytes whatever the count: members are cut by stream position only.
    pub threads: usize,
}

impl Default for NewcOptions {
    fn default() -> Self {
        NewcOptions {
            level: DEFAULT_GZIP_LEVEL,
            one_file_system: true,
            threads: 0,
        }
    }
}

/// What a newc write produced, and what the format could not carry, so the caller
/// can tell the user exactly what `--compat xcat` lost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewcStats {
    /// Entries archived (the trailer, sockets and vanished entries excluded).
    pub entries: u64,
    /// Uncompressed newc bytes: headers, names, data, padding, trailer, final block
    /// padding. For [`write_newc`] this is the output length.
    pub bytes: u64,
    /// Extended attributes dropped, one per (inode, name) pair: newc has no place
    /// for any xattr (capabilities, SELinux labels, ACLs, `user.*`).
    pub dropped_xattrs: u64,
    /// Dropped xattrs by name (lossy UTF-8) → number of inodes that had it.
    pub dropped_xattr_names: BTreeMap<String, u64>,
    /// Sparse files written with their holes as zeros (newc has no hole map).
    pub sparse_expanded: u64,
    /// Sockets the walk left out (see [`write_newc`]).
    pub sockets_skipped: u64,
    /// Walk and read warnings and clamped mtimes, each naming the entry.
    pub warnings: Vec<String>,
}

/// Walks `dir` (the `rootimg` directory itself) and writes it as an uncompressed cpio
/// newc archive to `out`, entries named `rootimg`, `rootimg/...` whatever `dir` is
/// called, as `cd <rootimgdir> && find rootimg | cpio -H newc -o` does (XCAT.md §4.3).
///
/// What is written, field by field, and where it departs from GNU cpio:
/// * magic `070701`, 13 fields of 8 upper-case hex digits, checksum 0;
/// * `ino` renumbered from 1 in archive order and `devmajor`/`devminor` 0 (GNU
///   cpio's `--renumber-inodes --ignore-devno`): the real numbers mean nothing on
///   the importing node, and stable numbers make the output reproducible;
/// * hard links: every path of a link group has the same `ino` and `nlink` = the
///   number of its paths in the archive (links from outside the tree are not
///   counted, so a reader never waits for members that will not come). For regular
///   files the data is stored only with the *last* path of the group and the earlier
///   ones have `filesize` 0, the convention `cpio -i` relies on to link them. GNU
///   cpio emits a group's members together where its last link is found; we keep
///   walk order, which `cpio -i` restores identically;
/// * directories' `nlink` is 2 + their archived subdirectories;
/// * symlink targets as data; device numbers in `rdevmajor`/`rdevminor`;
/// * `mtime` in 32 bits: times before 1970 or after 2106 are clamped, with a warning;
/// * names NUL-terminated, header + name padded to 4 bytes, data padded to 4, then
///   `TRAILER!!!` and zeros up to a multiple of 512 bytes, as GNU cpio ends.
///
/// Order: the [`walk`] order (depth first, siblings sorted by raw name bytes), first
/// entry `rootimg`. `find` lists in readdir order instead, so the two archives hold
/// the same set of names in a different order, which `cpio -i` does not care about.
///
/// Lost, and counted in the returned [`NewcStats`]: every xattr (including
/// `security.capability`, `security.selinux`, POSIX ACLs), sparseness (holes are
/// written as zeros), sub-second mtimes. Sockets are left out by the walk (GNU cpio
/// would archive them; the services that own them recreate them).
///
/// Errors, before anything is written: a regular file of 4 GiB or more
/// ([`TreeError::Unsupported`] naming it; newc sizes are 32 bits, so xCAT's own
/// `imgexport` cannot carry it either), walk errors. While writing: unreadable files
/// ([`TreeError::Io`] naming them), a failing `out` (path `<archive output>`).
/// Files that change size while being read keep the size the header announced (see
/// [`EntryEncoder::write_entry`]), with a warning. After an error raised while
/// writing, `out` holds an incomplete archive and must be discarded.
///
/// Cost: the walk, then one sequential read of every file's data; memory: the walk's
/// entry list plus ~30 bytes of plan per entry and the 512 KiB of I/O buffers.
pub fn write_newc(dir: &Path, out: impl Write, opts: &NewcOptions) -> Result<NewcStats, TreeError> {
    let prepared = prepare(dir, opts)?;
    let mut buffered = BufWriter::with_capacity(IO_BUF_BYTES, out);
    let stats = write_newc_stream(prepared, &mut buffered)?;
    buffered.flush().map_err(output_error)?;
    Ok(stats)
}

/// Like [`write_newc`], compressed at `opts.level` on `opts.threads` threads as a
/// sequence of gzip members (FORMAT.md §5), which xCAT's `zcat` reads as one
/// stream, as it reads `| gzip -c`'s single member, followed by the index in empty
/// members and the footer (FORMAT.md §2.2, §3; stream format newc), which `zcat`
/// reads as nothing: `imgport ls`, `cat` and `verify` work on it as on the pax tree.
///
/// Errors: those of [`write_newc`], or a level above 9 ([`TreeError::Unsupported`]).
pub fn write_newc_gz(
    dir: &Path,
    out: impl Write,
    opts: &NewcOptions,
) -> Result<NewcStats, TreeError> {
    prepare_newc(dir, opts)?.write_gz(out)
}

/// Header facts that depend on other entries: link groups and subdirectory counts.
#[derive(Debug)]
struct NewcLayout {
    /// Per entry: the index of the entry whose metadata it uses (itself, or for a
    /// hard link the first path of its inode).
    leader: Vec<usize>,
    ino: Vec<u32>,
    nlink: Vec<u32>,
    /// Per entry: whether its header carries the file data (regular files only).
    carries_data: Vec<bool>,
}

/// Computes the [`NewcLayout`] and refuses, before any byte is written, what newc cannot
/// store (files of 4 GiB or more, more than 2^32-1 inodes).
fn lay_out(entries: &[(Entry, PathBuf)]) -> Result<NewcLayout, TreeError> {
    let n = entries.len();
    // Only paths that some hard link names need an index; the walk guarantees the
    // target comes first.
    let targets: HashSet<&[u8]> = entries
        .iter()
        .filter_map(|(e, _)| match &e.kind {
            Kind::HardLink(t) => Some(t.as_slice()),
            _ => None,
        })
        .collect();
    let mut index_of: HashMap<&[u8], usize> = HashMap::with_capacity(targets.len());
    let mut dir_index: HashMap<&[u8], usize> = HashMap::new();
    // Link group leader → index of its last member.
    let mut last_member: HashMap<usize, usize> = HashMap::with_capacity(targets.len());
    let mut p = NewcLayout {
        leader: Vec::with_capacity(n),
        ino: Vec::with_capacity(n),
        nlink: vec![1; n],
        carries_data: vec![false; n],
    };
    let mut next_ino: u32 = 0;
    for (i, (e, _)) in entries.iter().enumerate() {
        if let Kind::HardLink(t) = &e.kind {
            let Some(&l) = index_of.get(t.as_slice()) else {
                return Err(TreeError::Unsupported {
                    entry: display_path(&e.path),
                    reason: format!(
                        "hard link to {}, which is not archived before it",
                        display_path(t)
                    ),
                });
            };
            p.leader.push(l);
            p.ino.push(p.ino[l]);
            p.nlink[l] = p.nlink[l].saturating_add(1);
            last_member.insert(l, i);
            continue;
        }
        next_ino = next_ino
            .checked_add(1)
            .ok_or_else(|| TreeError::Unsupported {
                entry: display_path(&e.path),
                reason: "more than 4294967295 inodes, the limit of cpio newc".into(),
            })?;
        p.leader.push(i);
        p.ino.push(next_ino);
        if targets.contains(e.path.as_slice()) {
            index_of.insert(&e.path, i);
        }
        match e.kind {
            Kind::Dir => {
                p.nlink[i] = 2;
                dir_index.insert(&e.path, i);
                // A directory's ".." is one more link of its parent.
                if let Some(slash) = e.path.iter().rposition(|&c| c == b'/') {
                    if let Some(&parent) = dir_index.get(&e.path[..slash]) {
                        p.nlink[parent] = p.nlink[parent].saturating_add(1);
                    }
                }
            }
            Kind::File if e.size > NEWC_MAX_SIZE => {
                return Err(TreeError::Unsupported {
                    entry: display_path(&e.path),
                    reason: format!(
                        "file of {} bytes: cpio newc (xCAT's rootimgtree.gz) stores sizes in \
                         32 bits, so files of 4 GiB or more cannot be exported in it (xCAT's \
                         own imgexport has the same limit); use the pax form \
                         (IMGPORT_TREE_FORMAT=pax imgexport ..., or imgport export without \
                         --compat xcat)",
                        e.size
                    ),
                });
            }
            _ => {}
        }
    }
    for i in 0..n {
        let l = p.leader[i];
        p.nlink[i] = p.nlink[l];
        if entries[l].0.kind == Kind::File {
            p.carries_data[i] = last_member.get(&l).copied().unwrap_or(l) == i;
        }
    }
    Ok(p)
}

/// Clamps an mtime into newc's unsigned 32-bit field, warning when it had to.
fn newc_mtime(e: &Entry, warnings: &mut Vec<String>) -> u32 {
    match u32::try_from(e.mtime.secs) {
        Ok(t) => t,
        Err(_) => {
            let clamped = clamp_mtime(e.mtime.secs);
            warnings.push(format!(
                "{}: mtime {} is outside the 32-bit range of cpio newc; stored as {clamped}",
                display_path(&e.path),
                e.mtime.secs
            ));
            clamped
        }
    }
}

/// A walked and planned tree, checked for what newc cannot store.
struct Prepared {
    walk: Walk,
    layout: NewcLayout,
    stats: NewcStats,
}

/// Walks and plans `dir`. Done before any output is created, so a refusal (a file
/// of 4 GiB or more) leaves `out` untouched: a `GzEncoder` would otherwise write a
/// complete, valid-looking gzip stream when dropped on the error path.
fn prepare(dir: &Path, opts: &NewcOptions) -> Result<Prepared, TreeError> {
    let walk_opts = WalkOptions {
        one_file_system: opts.one_file_system,
        atime: false,
    };
    let mut w = walk(dir, ROOTIMG_TOP, &walk_opts)?;
    let layout = lay_out(&w.entries)?;
    let stats = NewcStats {
        entries: w.entries.len() as u64,
        sockets_skipped: w.sockets_skipped,
        warnings: std::mem::take(&mut w.warnings),
        ..NewcStats::default()
    };
    Ok(Prepared {
        walk: w,
        layout,
        stats,
    })
}

/// One entry's newc framing: its header (name and padding included) and what
/// follows it.
struct Framed<'a> {
    header: Vec<u8>,
    data_len: u64,
    link_target: Option<&'a [u8]>,
}

/// The header of entry `i`, with the metadata of its link group's leader and the
/// already clamped `mtime`. Pure, so the sidecar's digest pass and the writing pass
/// produce the same bytes.
fn frame<'a>(
    i: usize,
    entries: &'a [(Entry, PathBuf)],
    layout: &NewcLayout,
    mtime: u32,
) -> Result<Framed<'a>, TreeError> {
    let entry = &entries[i].0;
    let meta = &entries[layout.leader[i]].0;
    let (type_bits, rdev, link_target) = match &meta.kind {
        Kind::File => (S_IFREG, (0, 0), None),
        Kind::Dir => (S_IFDIR, (0, 0), None),
        Kind::Symlink(t) => (S_IFLNK, (0, 0), Some(t.as_slice())),
        Kind::CharDevice { major, minor } => (S_IFCHR, (*major, *minor), None),
        Kind::BlockDevice { major, minor } => (S_IFBLK, (*major, *minor), None),
        Kind::Fifo => (S_IFIFO, (0, 0), None),
        // The plan resolved every link to its first path, which is never a link.
        Kind::HardLink(t) => {
            return Err(TreeError::Unsupported {
                entry: display_path(&entry.path),
                reason: format!("hard link to a hard link ({})", display_path(t)),
            })
        }
    };
    let data_len: u64 = match link_target {
        Some(t) => t.len() as u64,
        None if layout.carries_data[i] => meta.size,
        None => 0,
    };
    let header = encode_newc_header(
        &NewcHeader {
            ino: layout.ino[i],
            mode: type_bits | (meta.mode & 0o7777),
            uid: meta.uid,
            gid: meta.gid,
            nlink: layout.nlink[i],
            mtime,
            // The plan refused files above NEWC_MAX_SIZE; symlink targets are
            // at most PATH_MAX.
            filesize: u32::try_from(data_len).unwrap_or(u32::MAX),
            rdevmajor: rdev.0,
            rdevminor: rdev.1,
        },
        &entry.path,
    );
    Ok(Framed {
        header,
        data_len,
        link_target,
    })
}

/// The header digest of the sidecar: a header's fixed part and its NUL-terminated name,
/// padding left out (FORMAT.md §7).
fn digest_header(hasher: &mut blake3::Hasher, header: &[u8], name_len: usize) {
    let end = (HEADER + name_len + 1).min(header.len());
    hasher.update(&header[..end]);
}

/// GNU cpio's trailer: everything 0 but nlink 1 and the name.
fn trailer() -> Vec<u8> {
    encode_newc_header(
        &NewcHeader {
            ino: 0,
            mode: 0,
            uid: 0,
            gid: 0,
            nlink: 1,
            mtime: 0,
            filesize: 0,
            rdevmajor: 0,
            rdevminor: 0,
        },
        TRAILER,
    )
}

/// A tree walked and checked for newc, ready to give its metadata sidecar and then
/// its gzip'd newc stream (`export --compat xcat`, FORMAT.md §7). The sidecar comes
/// first so a bundle can carry it before the tree, and a streaming import has it in
/// hand when the tree arrives.
pub struct NewcTree {
    prepared: Prepared,
    level: u32,
    threads: usize,
}

/// Walks `dir` and checks it for newc as [`write_newc`] does (files of 4 GiB or more
/// are refused, naming the file), writing nothing.
pub fn prepare_newc(dir: &Path, opts: &NewcOptions) -> Result<NewcTree, TreeError> {
    check_level(dir, opts.level)?;
    Ok(NewcTree {
        prepared: prepare(dir, opts)?,
        level: opts.level,
        threads: threads::resolve(opts.threads),
    })
}

impl NewcTree {
    /// The sidecar (FORMAT.md §7): one record per inode in the order the newc decoder
    /// hands inodes out (a regular file's link group at its data-bearing, last path;
    /// any other inode at its first path), then the BLAKE3 of the headers
    /// [`NewcTree::write_gz`] will write.
    pub fn sidecar(&self) -> Result<Vec<u8>, TreeError> {
        let Prepared { walk, layout, .. } = &self.prepared;
        let mut builder = SidecarBuilder::default();
        let mut hasher = blake3::Hasher::new();
        for (i, (entry, _)) in walk.entries.iter().enumerate() {
            let l = layout.leader[i];
            let meta = &walk.entries[l].0;
            let mtime = clamp_mtime(meta.mtime.secs);
            let framed = frame(i, &walk.entries, layout, mtime)?;
            digest_header(&mut hasher, &framed.header, entry.path.len());
            let owns_inode = match meta.kind {
                Kind::File => layout.carries_data[i],
                _ => l == i,
            };
            if owns_inode {
                builder.push(&Record {
                    path: entry.path.clone(),
                    mtime: meta.mtime,
                    uname: meta.uname.clone(),
                    gname: meta.gname.clone(),
                    xattrs: meta.xattrs.clone(),
                    sparse: meta.sparse.clone(),
                });
            }
        }
        digest_header(&mut hasher, &trailer(), TRAILER.len());
        Ok(builder.finish(*hasher.finalize().as_bytes()))
    }

    /// Writes the tree as [`write_newc_gz`] does.
    pub fn write_gz(self, out: impl Write) -> Result<NewcStats, TreeError> {
        let mut members = Members::new(out, self.level, self.threads);
        let stats = write_newc_stream(self.prepared, &mut members)?;
        members.finish().map_err(output_error)?;
        Ok(stats)
    }
}

fn check_level(dir: &Path, level: u32) -> Result<(), TreeError> {
    if level > MAX_GZIP_LEVEL {
        return Err(TreeError::Unsupported {
            entry: dir.display().to_string(),
            reason: format!("gzip level {level} is above {MAX_GZIP_LEVEL}"),
        });
    }
    Ok(())
}

/// Where the newc stream goes: a writer told where each entry ends, so a compressing
/// sink can cut its members there, and what each entry is, so it can index them.
trait NewcSink: Write {
    /// The stream is at an entry boundary.
    fn boundary(&mut self) -> std::io::Result<()> {
        Ok(())
    }

    /// The next index entry, in the order the newc decoder yields entries.
    fn index(&mut self, _entry: &IndexEntry) {}
}

impl<W: Write> NewcSink for BufWriter<W> {}

/// A member is cut at the first entry boundary once it holds this much, as the pax
/// form's units are (FORMAT.md §2.1).
const MEMBER_TARGET: usize = 1 << 20;
/// A member is cut here even inside a file's data, so one big file is compressed in
/// parallel too and memory stays bounded (`zcat` does not care where members end).
const MEMBER_MAX: usize = 4 << 20;

/// Cuts the newc stream into gzip members (FORMAT.md §5) and compresses them on
/// `threads` threads, a batch of `2 × threads` members at a time, written in stream
/// order, then the index. Cut points depend on stream positions alone, so the output
/// is the same for any thread count.
struct Members<W: Write> {
    out: W,
    level: u32,
    threads: usize,
    current: Vec<u8>,
    batch: Vec<Vec<u8>>,
    /// One compressor per thread, reused across batches.
    compressors: Vec<Compressor>,
    index: IndexBuilder,
    /// Compressed bytes written so far: where the index starts in the end.
    written: u64,
}

impl<W: Write> Members<W> {
    fn new(out: W, level: u32, threads: usize) -> Self {
        Members {
            out,
            level,
            threads: threads.max(1),
            current: Vec::with_capacity(MEMBER_TARGET),
            batch: Vec::new(),
            compressors: Vec::new(),
            index: IndexBuilder::for_format(StreamFormat::Newc),
            written: 0,
        }
    }

    fn cut(&mut self) -> std::io::Result<()> {
        if self.current.is_empty() {
            return Ok(());
        }
        let unit = std::mem::replace(&mut self.current, Vec::with_capacity(MEMBER_TARGET));
        self.batch.push(unit);
        if self.batch.len() >= 2 * self.threads {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> std::io::Result<()> {
        let batch = std::mem::take(&mut self.batch);
        if batch.is_empty() {
            return Ok(());
        }
        let level = self.level;
        while self.compressors.len() < self.threads {
            self.compressors.push(compressor(level));
        }
        let per = batch.len().div_ceil(self.threads);
        let encoded: Vec<Vec<(Vec<u8>, MemberInfo)>> = if self.threads == 1 {
            let c = &mut self.compressors[0];
            vec![batch.iter().map(|u| encode_member(c, u)).collect()]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = batch
                    .chunks(per)
                    .zip(self.compressors.iter_mut())
                    .map(|(units, c)| {
                        s.spawn(move || units.iter().map(|u| encode_member(c, u)).collect())
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                    .collect()
            })
        };
        for (member, info) in encoded.iter().flatten() {
            self.out.write_all(member)?;
            self.index.push_member(*info);
            self.written += info.compressed;
        }
        Ok(())
    }

    /// Compresses what is left, writes the index and footer, and flushes `out`.
    fn finish(mut self) -> std::io::Result<()> {
        self.cut()?;
        self.flush_batch()?;
        let trailer = encode_gzip_trailer(&self.index.finish(), self.written);
        self.out.write_all(&trailer)?;
        self.out.flush()
    }
}

/// One data member and its index record: lengths, the CRC32 from its trailer, the
/// BLAKE3 of its content.
fn encode_member(c: &mut Compressor, unit: &[u8]) -> (Vec<u8>, MemberInfo) {
    let bytes = encode_data(c, unit);
    let at = bytes.len().saturating_sub(TRAILER_BYTES);
    let crc32 = bytes
        .get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u32::from_le_bytes);
    let info = MemberInfo {
        compressed: bytes.len() as u64,
        uncompressed: unit.len() as u64,
        crc32,
        digest: Some(member_digest(unit)),
    };
    (bytes, info)
}

impl<W: Write> Write for Members<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = MEMBER_MAX - self.current.len();
        let n = buf.len().min(room);
        self.current.extend_from_slice(&buf[..n]);
        if self.current.len() >= MEMBER_MAX {
            self.cut()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<W: Write> NewcSink for Members<W> {
    fn boundary(&mut self) -> std::io::Result<()> {
        if self.current.len() >= MEMBER_TARGET {
            self.cut()?;
        }
        Ok(())
    }

    fn index(&mut self, entry: &IndexEntry) {
        self.index.push_entry(entry);
    }
}

/// Index entries of one newc stream, handed to the sink in the order `CpioReader`
/// yields entries: a regular file's hard-link group comes out at its data-bearing
/// (last) path as the file, then its earlier paths as links to it, in stream order.
#[derive(Default)]
struct NewcIndexer {
    /// Earlier paths of regular-file link groups, by leader, until the last comes.
    waiting: BTreeMap<usize, Vec<IndexEntry>>,
}

impl NewcIndexer {
    /// Records entry `i`, framed at `header_offset` with a header of `header_len`
    /// bytes and `data_len` bytes of data, with the clamped `mtime`.
    #[allow(clippy::too_many_arguments)]
    fn entry<W: NewcSink>(
        &mut self,
        out: &mut W,
        entries: &[(Entry, PathBuf)],
        layout: &NewcLayout,
        i: usize,
        (header_offset, header_len, data_len): (u64, u64, u64),
        mtime: u32,
    ) {
        let entry = &entries[i].0;
        let l = layout.leader[i];
        let meta = &entries[l].0;
        let mut record = IndexEntry {
            path: entry.path.clone(),
            kind: meta.kind.clone(),
            mode: meta.mode & 0o7777,
            uid: meta.uid,
            gid: meta.gid,
            mtime: Timestamp {
                secs: i64::from(mtime),
                nanos: 0,
            },
            size: 0,
            header_offset,
            data_offset: header_offset + header_len,
            stored: 0,
            sparse: None,
            digest: None,
        };
        if meta.kind == Kind::File {
            if !layout.carries_data[i] {
                record.kind = Kind::HardLink(Vec::new());
                self.waiting.entry(l).or_default().push(record);
                return;
            }
            record.size = data_len;
            record.stored = data_len;
            out.index(&record);
            for mut link in self.waiting.remove(&l).unwrap_or_default() {
                link.kind = Kind::HardLink(entry.path.clone());
                out.index(&link);
            }
            return;
        }
        if l != i {
            record.kind = Kind::HardLink(meta.path.clone());
        }
        out.index(&record);
    }

    /// Groups whose data-bearing path never came (not possible from a walk, kept in
    /// step with the decoder): its last path as the file, the others linked to it.
    fn finish<W: NewcSink>(&mut self, out: &mut W) {
        for (_, mut group) in std::mem::take(&mut self.waiting) {
            let Some(mut file) = group.pop() else {
                continue;
            };
            file.kind = Kind::File;
            out.index(&file);
            for mut link in group {
                link.kind = Kind::HardLink(file.path.clone());
                out.index(&link);
            }
        }
    }
}

/// Every entry, trailer, final block padding.
fn write_newc_stream<W: NewcSink>(prepared: Prepared, out: &mut W) -> Result<NewcStats, TreeError> {
    let Prepared {
        walk: w,
        layout,
        mut stats,
    } = prepared;
    // Link members reuse their leader's clamped mtime; the warning is given once.
    let mut mtimes: Vec<u32> = Vec::with_capacity(w.entries.len());
    let mut enc = EntryEncoder::new();
    let mut indexer = NewcIndexer::default();
    for (i, (entry, source)) in w.entries.iter().enumerate() {
        let l = layout.leader[i];
        let meta = &w.entries[l].0;
        let mtime = if l == i {
            for (name, _) in &meta.xattrs {
                stats.dropped_xattrs += 1;
                *stats
                    .dropped_xattr_names
                    .entry(String::from_utf8_lossy(name).into_owned())
                    .or_insert(0) += 1;
            }
            newc_mtime(meta, &mut stats.warnings)
        } else {
            mtimes[l]
        };
        mtimes.push(mtime);

        let Framed {
            header,
            data_len,
            link_target,
        } = frame(i, &w.entries, &layout, mtime)?;
        out.write_all(&header).map_err(output_error)?;
        match link_target {
            Some(t) => out.write_all(t).map_err(output_error)?,
            None if data_len > 0 => {
                // Always dense: holes are read back as zeros.
                if meta.sparse.is_some() {
                    stats.sparse_expanded += 1;
                }
                let mut dense = Entry::new(entry.path.clone(), Kind::File, meta.mode);
                dense.size = data_len;
                enc.write_data(&dense, source, out, &mut stats.warnings)?;
            }
            None => {}
        }
        let pad = pad4(data_len);
        out.write_all(&[0u8; 4][..pad as usize])
            .map_err(output_error)?;
        indexer.entry(
            out,
            &w.entries,
            &layout,
            i,
            (stats.bytes, header.len() as u64, data_len),
            mtime,
        );
        stats.bytes += header.len() as u64 + data_len + pad;
        out.boundary().map_err(output_error)?;
    }
    indexer.finish(out);

    let trailer = trailer();
    out.write_all(&trailer).map_err(output_error)?;
    stats.bytes += trailer.len() as u64;
    // GNU cpio pads the whole archive to its 512-byte I/O block; we match its length.
    let tail = padding(stats.bytes);
    out.write_all(&[0u8; BLOCK_BYTES][..tail])
        .map_err(output_error)?;
    stats.bytes += tail as u64;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::format::newc::CpioReader;
    use crate::tree::format::tar_decode::EntryReader;
    use std::fs;
    use std::io::Read;

    fn e(path: &str, kind: Kind, size: u64) -> (Entry, PathBuf) {
        let mut x = Entry::new(path.as_bytes().to_vec(), kind, 0o644);
        x.size = size;
        (x, PathBuf::from(path))
    }

    fn link(path: &str, to: &str) -> (Entry, PathBuf) {
        e(path, Kind::HardLink(to.as_bytes().to_vec()), 0)
    }

    #[test]
    fn layout_numbers_inodes_links_and_directory_nlink() {
        let entries = vec![
            e("rootimg", Kind::Dir, 0),
            e("rootimg/a", Kind::Dir, 0),
            e("rootimg/a/f", Kind::File, 3),
            e("rootimg/a/sub", Kind::Dir, 0),
            e("rootimg/b", Kind::Dir, 0),
            link("rootimg/b/g", "rootimg/a/f"),
            e("rootimg/c", Kind::File, 0),
            link("rootimg/h", "rootimg/a/f"),
            e("rootimg/z", Kind::File, 9),
        ];
        let p = lay_out(&entries).unwrap();
        assert_eq!(p.ino, [1, 2, 3, 4, 5, 3, 6, 3, 7]);
        assert_eq!(p.nlink, [4, 3, 3, 2, 2, 3, 1, 3, 1]);
        assert_eq!(
            p.carries_data,
            [false, false, false, false, false, false, true, true, true]
        );
        assert_eq!(p.leader[7], 2);
    }

    #[test]
    fn layout_refuses_4_gib_files_and_dangling_links() {
        let ok = lay_out(&[e("rootimg/f", Kind::File, u64::from(u32::MAX))]);
        assert!(ok.is_ok());
        let err = lay_out(&[e("rootimg/f", Kind::File, 1 << 32)]).unwrap_err();
        assert!(matches!(err, TreeError::Unsupported { .. }));
        assert!(err.to_string().contains("rootimg/f"), "{err}");
        let err = lay_out(&[link("rootimg/g", "rootimg/nope")]).unwrap_err();
        assert!(err.to_string().contains("rootimg/nope"), "{err}");
    }

    #[test]
    fn decoder_reads_what_the_encoder_writes() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("src");
        fs::create_dir_all(root.join("d")).unwrap();
        fs::write(root.join("d/one"), b"shared").unwrap();
        fs::hard_link(root.join("d/one"), root.join("two")).unwrap();
        fs::write(root.join("e1"), b"").unwrap();
        fs::hard_link(root.join("e1"), root.join("e2")).unwrap();
        std::os::unix::fs::symlink("d/one", root.join("s")).unwrap();
        let mut out = Vec::new();
        let stats = write_newc(&root, &mut out, &NewcOptions::default()).unwrap();
        assert_eq!(stats.bytes, out.len() as u64);
        assert_eq!(out.len() % 512, 0);
        assert_eq!(stats.entries, 7);

        let mut r = CpioReader::new(out.as_slice());
        let mut got = Vec::new();
        while let Some(x) = r.next_entry().unwrap() {
            let mut data = Vec::new();
            r.copy_data(&mut data).unwrap();
            got.push((String::from_utf8(x.path).unwrap(), x.kind, data));
        }
        let hl = |t: &str| Kind::HardLink(t.as_bytes().to_vec());
        assert_eq!(
            got,
            vec![
                ("rootimg".into(), Kind::Dir, vec![]),
                ("rootimg/d".into(), Kind::Dir, vec![]),
                // Data rides on the last link ("two"), so the decoder makes it the file.
                ("rootimg/e2".into(), Kind::File, vec![]),
                ("rootimg/e1".into(), hl("rootimg/e2"), vec![]),
                (
                    "rootimg/s".into(),
                    Kind::Symlink(b"d/one".to_vec()),
                    b"".to_vec()
                ),
                ("rootimg/two".into(), Kind::File, b"shared".to_vec()),
                ("rootimg/d/one".into(), hl("rootimg/two"), vec![]),
            ]
        );
    }

    #[test]
    fn gzip_wraps_the_same_bytes_and_rejects_bad_levels() {
        let t = tempfile::tempdir().unwrap();
        fs::write(t.path().join("f"), vec![7u8; 5000]).unwrap();
        let mut plain = Vec::new();
        write_newc(t.path(), &mut plain, &NewcOptions::default()).unwrap();
        let mut gz = Vec::new();
        write_newc_gz(t.path(), &mut gz, &NewcOptions::default()).unwrap();
        let mut unzipped = Vec::new();
        flate2::read::MultiGzDecoder::new(gz.as_slice())
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, plain);
        let opts = NewcOptions {
            level: 10,
            ..NewcOptions::default()
        };
        let mut out = Vec::new();
        assert!(write_newc_gz(t.path(), &mut out, &opts).is_err());
        assert!(out.is_empty());
    }
}

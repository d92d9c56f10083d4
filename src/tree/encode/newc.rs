//! Writing a walked tree as cpio newc, for `export --compat xcat`: what
//! `cd <rootimgdir> && find rootimg | cpio -H newc -o` writes, closely enough that
//! real xCAT's `zcat rootimgtree.gz | cpio -idum` restores the tree the same way. The
//! header bytes come from the format module (`format::newc`); this module decides
//! what goes in them (inode numbers, link groups, lost metadata) and streams the data.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{BufReader, BufWriter, Chain, Cursor, Read, Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use libdeflater::Compressor;

use crate::tree::codec::gzip::{compressor, encode_data, TRAILER_BYTES};
use crate::tree::codec::gzip_trailer::write_gzip_trailer;
use crate::tree::codec::member_digest;
use crate::tree::encode::entry::{output_error, EntryEncoder, IO_BUF_BYTES};
use crate::tree::encode::spill::{temp_error, temp_file, Spill, SpillReader, SpillWriter};
use crate::tree::encode::walk::{WalkOptions, WalkStream};
use crate::tree::encode::writer::{DEFAULT_GZIP_LEVEL, MAX_GZIP_LEVEL, ROOTIMG_TOP};
use crate::tree::entry::{Entry, Kind, Timestamp};
use crate::tree::error::{display_path, TreeError};
use crate::tree::format::index::{IndexBuilder, IndexEntry, MemberInfo, StreamFormat};
use crate::tree::format::newc::{clamp_mtime, pad4, HEADER};
use crate::tree::format::newc::{
    encode_newc_header, NewcHeader, NEWC_MAX_SIZE, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK,
    S_IFREG, TRAILER,
};
use crate::tree::format::sidecar::{Record, SidecarParts, SidecarWriter};
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
/// Cost: the walk, spilled to `$TMPDIR` and replayed (see [`NewcTree`]), then one
/// sequential read of every file's data; memory: a few bytes per directory and per
/// hard-linked inode, the 512 KiB of I/O buffers, nothing per file.
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

/// The walk of a tree, spilled to a temporary file, with what a header needs to know
/// about later entries: how many subdirectories a directory has and how many paths
/// an inode has in the archive. Memory: a `u32` per directory, a path per link group
/// (an inode with more than one path in the tree), the directories of the current
/// path; nothing per file.
struct Prepared {
    /// The `rootimg` directory walked.
    dir: PathBuf,
    spill: Spill,
    /// Archived subdirectories of each directory, directories in walk order.
    subdirs: Vec<u32>,
    /// First path of each link group → number of its other paths in the archive.
    links: HashMap<Vec<u8>, u64>,
    /// Entries, sockets skipped and the walk's warnings.
    stats: NewcStats,
}

/// Builds a [`Prepared`] entry by entry, refusing what newc cannot store as soon as
/// it is seen.
struct Counter {
    spill: SpillWriter,
    subdirs: Vec<u32>,
    /// The directories on the current path of the walk, with their index in
    /// `subdirs`: a directory's parent is always among them.
    open_dirs: Vec<(Vec<u8>, usize)>,
    links: HashMap<Vec<u8>, u64>,
    inodes: u32,
    entries: u64,
}

impl Counter {
    fn new() -> Result<Counter, TreeError> {
        Ok(Counter {
            spill: SpillWriter::new()?,
            subdirs: Vec::new(),
            open_dirs: Vec::new(),
            links: HashMap::new(),
            inodes: 0,
            entries: 0,
        })
    }

    /// Counts and spills the next entry in walk order.
    fn add(&mut self, e: &Entry) -> Result<(), TreeError> {
        match &e.kind {
            Kind::HardLink(t) => {
                let n = self.links.entry(t.clone()).or_insert(0);
                *n = n.saturating_add(1);
            }
            kind => {
                self.inodes = next_inode(self.inodes, e)?;
                match kind {
                    Kind::Dir => self.add_dir(&e.path),
                    Kind::File if e.size > NEWC_MAX_SIZE => return Err(too_big(e)),
                    _ => {}
                }
            }
        }
        self.entries += 1;
        self.spill.push(e)
    }

    /// A directory's ".." is one more link of its parent.
    fn add_dir(&mut self, path: &[u8]) {
        if let Some(slash) = path.iter().rposition(|&c| c == b'/') {
            let parent = &path[..slash];
            while self.open_dirs.last().is_some_and(|(p, _)| p != parent) {
                self.open_dirs.pop();
            }
            if let Some(&(_, at)) = self.open_dirs.last() {
                self.subdirs[at] = self.subdirs[at].saturating_add(1);
            }
        }
        self.open_dirs.push((path.to_vec(), self.subdirs.len()));
        self.subdirs.push(0);
    }

    fn finish(
        self,
        dir: &Path,
        sockets_skipped: u64,
        warnings: Vec<String>,
    ) -> Result<Prepared, TreeError> {
        Ok(Prepared {
            dir: dir.to_path_buf(),
            spill: self.spill.finish()?,
            subdirs: self.subdirs,
            links: self.links,
            stats: NewcStats {
                entries: self.entries,
                sockets_skipped,
                warnings,
                ..NewcStats::default()
            },
        })
    }
}

/// The inode number after `last`, for `e`.
fn next_inode(last: u32, e: &Entry) -> Result<u32, TreeError> {
    last.checked_add(1).ok_or_else(|| TreeError::Unsupported {
        entry: display_path(&e.path),
        reason: "more than 4294967295 inodes, the limit of cpio newc".into(),
    })
}

fn too_big(e: &Entry) -> TreeError {
    TreeError::Unsupported {
        entry: display_path(&e.path),
        reason: format!(
            "file of {} bytes: cpio newc (xCAT's rootimgtree.gz) stores sizes in \
             32 bits, so files of 4 GiB or more cannot be exported in it (xCAT's \
             own imgexport has the same limit); use the pax form \
             (IMGPORT_TREE_FORMAT=pax imgexport ..., or imgport export without \
             --compat xcat)",
            e.size
        ),
    }
}

/// An entry with the header facts that depend on other entries.
struct Planned {
    entry: Entry,
    /// For a hard link: the entry of its inode's first path, whose metadata it uses.
    leader: Option<Rc<Entry>>,
    ino: u32,
    nlink: u32,
    /// Whether its header carries the file data (regular files only: the last path
    /// of a link group, so `cpio -i` links the earlier ones to it).
    carries_data: bool,
}

impl Planned {
    /// The entry whose metadata the header carries.
    fn meta(&self) -> &Entry {
        self.leader.as_deref().unwrap_or(&self.entry)
    }

    /// Whether this is its inode's first path (not a hard link).
    fn is_first(&self) -> bool {
        self.leader.is_none()
    }
}

/// A link group whose last path is still to come.
struct Group {
    meta: Rc<Entry>,
    ino: u32,
    nlink: u32,
    paths: u64,
    seen: u64,
}

/// The spill replayed in walk order as [`Planned`] entries: inodes numbered from 1
/// in archive order, links resolved to their first path. Memory: the link groups
/// whose last path is still ahead (each with its first path's entry).
struct Plan<'a> {
    prepared: &'a Prepared,
    reader: SpillReader<'a>,
    next_ino: u32,
    next_dir: usize,
    open: HashMap<Vec<u8>, Group>,
}

impl Prepared {
    fn plan(&self) -> Result<Plan<'_>, TreeError> {
        Ok(Plan {
            prepared: self,
            reader: self.spill.replay()?,
            next_ino: 0,
            next_dir: 0,
            open: HashMap::new(),
        })
    }

    /// Where the data of the entry at archive path `path` is read from: what the walk
    /// joined for it.
    fn source(&self, path: &[u8]) -> PathBuf {
        match path
            .strip_prefix(ROOTIMG_TOP)
            .and_then(|p| p.strip_prefix(b"/"))
        {
            Some(rel) => self.dir.join(OsStr::from_bytes(rel)),
            None => self.dir.clone(),
        }
    }
}

impl Plan<'_> {
    fn next_planned(&mut self) -> Result<Option<Planned>, TreeError> {
        let Some(entry) = self.reader.next_entry()? else {
            return Ok(None);
        };
        if let Kind::HardLink(t) = &entry.kind {
            let Some(g) = self.open.get_mut(t.as_slice()) else {
                return Err(TreeError::Unsupported {
                    entry: display_path(&entry.path),
                    reason: format!(
                        "hard link to {}, which is not archived before it",
                        display_path(t)
                    ),
                });
            };
            g.seen += 1;
            let last = g.seen >= g.paths;
            let (meta, ino, nlink) = (Rc::clone(&g.meta), g.ino, g.nlink);
            if last {
                self.open.remove(t.as_slice());
            }
            return Ok(Some(Planned {
                carries_data: last && meta.kind == Kind::File,
                entry,
                leader: Some(meta),
                ino,
                nlink,
            }));
        }
        self.next_ino = next_inode(self.next_ino, &entry)?;
        let ino = self.next_ino;
        let mut planned = Planned {
            carries_data: entry.kind == Kind::File,
            ino,
            nlink: 1,
            leader: None,
            entry,
        };
        let links = &self.prepared.links;
        if planned.entry.kind == Kind::Dir {
            let subdirs = self.prepared.subdirs.get(self.next_dir).copied();
            self.next_dir += 1;
            planned.nlink = 2u32.saturating_add(subdirs.unwrap_or(0));
        } else if let Some(&others) = links.get(planned.entry.path.as_slice()) {
            let paths = others.saturating_add(1);
            planned.nlink = u32::try_from(paths).unwrap_or(u32::MAX);
            planned.carries_data = false;
            let group = Group {
                meta: Rc::new(planned.entry.clone()),
                ino,
                nlink: planned.nlink,
                paths,
                seen: 1,
            };
            self.open.insert(planned.entry.path.clone(), group);
        }
        Ok(Some(planned))
    }
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

/// Walks `dir` into a spill, counting what headers need. Done before any output is
/// created, so a refusal (a file of 4 GiB or more) leaves `out` untouched: a
/// `GzEncoder` would otherwise write a complete, valid-looking gzip stream when
/// dropped on the error path.
fn prepare(dir: &Path, opts: &NewcOptions) -> Result<Prepared, TreeError> {
    let walk_opts = WalkOptions {
        one_file_system: opts.one_file_system,
        atime: false,
    };
    let mut stream = WalkStream::new(dir, ROOTIMG_TOP, &walk_opts)?;
    let mut counter = Counter::new()?;
    for item in &mut stream {
        counter.add(&item?.0)?;
    }
    let warnings = stream.take_warnings();
    counter.finish(dir, stream.sockets_skipped(), warnings)
}

/// One entry's newc framing: its header (name and padding included) and what
/// follows it.
struct Framed<'a> {
    header: Vec<u8>,
    data_len: u64,
    link_target: Option<&'a [u8]>,
}

/// The header of `p`, with the metadata of its link group's first path and the
/// already clamped `mtime`. Pure, so the sidecar's digest pass and the writing pass
/// produce the same bytes.
fn frame(p: &Planned, mtime: u32) -> Result<Framed<'_>, TreeError> {
    let meta = p.meta();
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
                entry: display_path(&p.entry.path),
                reason: format!("hard link to a hard link ({})", display_path(t)),
            })
        }
    };
    let data_len: u64 = match link_target {
        Some(t) => t.len() as u64,
        None if p.carries_data => meta.size,
        None => 0,
    };
    let header = encode_newc_header(
        &NewcHeader {
            ino: p.ino,
            mode: type_bits | (meta.mode & 0o7777),
            uid: meta.uid,
            gid: meta.gid,
            nlink: p.nlink,
            mtime,
            // The walk refused files above NEWC_MAX_SIZE; symlink targets are
            // at most PATH_MAX.
            filesize: u32::try_from(data_len).unwrap_or(u32::MAX),
            rdevmajor: rdev.0,
            rdevminor: rdev.1,
        },
        &p.entry.path,
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
///
/// Design: the sidecar (which must precede the tree) holds the digest of every newc
/// header, and a header needs facts about later entries (a directory's subdirectory
/// count, whether a path is its inode's last), so the tree is visited three times.
/// The walk happens once: its entries go to an unnamed file in `$TMPDIR` (the metadata
/// only, a few dozen bytes per entry plus xattrs), counted on the way; the sidecar
/// pass and the writing pass replay that file. A single walk means the sidecar and the
/// tree describe the same snapshot of a live tree by construction: both are computed
/// from the same replayed metadata, only file data is read later, as before (a file
/// that changes size keeps the announced size, with a warning). Walking three times
/// instead would cost two more metadata walks (several syscalls per entry) and need
/// checks that the tree did not change between them.
///
/// Memory: a `u32` per directory, per link group (inode with more than one path in
/// the tree) its first path and, while its last path is ahead, its entry; the
/// directory listings on the current path during the walk; I/O and member buffers.
/// Nothing else grows per file but the index, held compressed until the end as in
/// the pax form (FORMAT.md §3.6; 1.5 MB at 10^6 files). Disk: the spill in `$TMPDIR`
/// (the walk's metadata: 38 MB for 10^6 small files with short names) and the
/// sidecar spooled there by [`NewcTree::spool_sidecar`]; both deleted when dropped.
pub struct NewcTree {
    prepared: Prepared,
    level: u32,
    threads: usize,
}

/// Walks `dir` and checks it for newc as [`write_newc`] does (files of 4 GiB or more
/// are refused, naming the file), writing nothing but the spill (see [`NewcTree`]).
pub fn prepare_newc(dir: &Path, opts: &NewcOptions) -> Result<NewcTree, TreeError> {
    check_level(dir, opts.level)?;
    Ok(NewcTree {
        prepared: prepare(dir, opts)?,
        level: opts.level,
        threads: threads::resolve(opts.threads),
    })
}

/// The CRC32 that ends a sidecar.
type SidecarTail = [u8; 4];
/// A sidecar's head in memory, then its records from the spool.
type HeadAndBody = Chain<Cursor<Vec<u8>>, BufReader<File>>;

/// The sidecar of a [`NewcTree`] spooled in `$TMPDIR`, read back as one stream.
pub struct SpooledSidecar {
    len: u64,
    reader: Chain<HeadAndBody, Cursor<SidecarTail>>,
}

impl SpooledSidecar {
    /// Bytes of the whole sidecar.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Never: a sidecar has at least its head and CRC.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Reads fill `buf` whole (but at the end), as reads from the in-memory sidecar did:
/// the bundle's deflate output depends on how its input is cut into writes, and a
/// bundle must not change with how the sidecar was produced.
impl Read for SpooledSidecar {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        crate::tree::io::fill(&mut self.reader, buf)
    }
}

const SIDECAR_SPOOL: &str = "rootimgtree.meta spool";

impl NewcTree {
    /// The sidecar (FORMAT.md §7) in memory; see [`NewcTree::sidecar_to`].
    pub fn sidecar(&self) -> Result<Vec<u8>, TreeError> {
        Ok(self.sidecar_to(Vec::new())?.into_bytes())
    }

    /// The sidecar spooled to a temporary file, for trees whose sidecar is too big
    /// to hold (it grows with the tree: every inode's path and xattrs).
    pub fn spool_sidecar(&self) -> Result<SpooledSidecar, TreeError> {
        let err = |e| temp_error(SIDECAR_SPOOL, e);
        let body = BufWriter::with_capacity(IO_BUF_BYTES, temp_file(SIDECAR_SPOOL)?);
        let parts = self.sidecar_to(body)?;
        let len = parts.len();
        let mut file = parts.body.into_inner().map_err(|e| err(e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(err)?;
        let reader = Cursor::new(parts.head)
            .chain(BufReader::with_capacity(IO_BUF_BYTES, file))
            .chain(Cursor::new(parts.tail));
        Ok(SpooledSidecar { len, reader })
    }

    /// Writes the sidecar's records to `body`: one record per inode in the order the
    /// newc decoder hands inodes out (a regular file's link group at its data-bearing,
    /// last path; any other inode at its first path), framed by the returned parts
    /// with the BLAKE3 of the headers [`NewcTree::write_gz`] will write.
    pub fn sidecar_to<W: Write>(&self, body: W) -> Result<SidecarParts<W>, TreeError> {
        let mut builder = SidecarWriter::new(body);
        let mut hasher = blake3::Hasher::new();
        let mut plan = self.prepared.plan()?;
        while let Some(p) = plan.next_planned()? {
            let meta = p.meta();
            let framed = frame(&p, clamp_mtime(meta.mtime.secs))?;
            digest_header(&mut hasher, &framed.header, p.entry.path.len());
            let owns_inode = match meta.kind {
                Kind::File => p.carries_data,
                _ => p.is_first(),
            };
            if owns_inode {
                let record = Record {
                    path: p.entry.path.clone(),
                    mtime: meta.mtime,
                    uname: meta.uname.clone(),
                    gname: meta.gname.clone(),
                    xattrs: meta.xattrs.clone(),
                    sparse: meta.sparse.clone(),
                };
                builder
                    .push(&record)
                    .map_err(|e| temp_error(SIDECAR_SPOOL, e))?;
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
    /// Unit buffers of compressed batches, reused: allocating and freeing a megabyte
    /// per member makes glibc raise its mmap threshold and serve later ones from a
    /// heap that then fragments, so peak RSS crept up with the tree's size.
    spare: Vec<Vec<u8>>,
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
            spare: Vec::new(),
            compressors: Vec::new(),
            index: IndexBuilder::for_format(StreamFormat::Newc),
            written: 0,
        }
    }

    fn cut(&mut self) -> std::io::Result<()> {
        if self.current.is_empty() {
            return Ok(());
        }
        let fresh = self
            .spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(MEMBER_TARGET));
        let unit = std::mem::replace(&mut self.current, fresh);
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
        for mut unit in batch {
            unit.clear();
            self.spare.push(unit);
        }
        Ok(())
    }

    /// Compresses what is left, writes the index and footer, and flushes `out`.
    fn finish(mut self) -> std::io::Result<()> {
        self.cut()?;
        self.flush_batch()?;
        write_gzip_trailer(&self.index.finish(), self.written, &mut self.out)?;
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
    /// Earlier paths of regular-file link groups, by inode number, until the last
    /// comes.
    waiting: BTreeMap<u32, Vec<IndexEntry>>,
}

impl NewcIndexer {
    /// Records `p`, framed at `header_offset` with a header of `header_len` bytes and
    /// `data_len` bytes of data, with the clamped `mtime`.
    fn entry<W: NewcSink>(
        &mut self,
        out: &mut W,
        p: &Planned,
        (header_offset, header_len, data_len): (u64, u64, u64),
        mtime: u32,
    ) {
        let meta = p.meta();
        let mut record = IndexEntry {
            path: p.entry.path.clone(),
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
            if !p.carries_data {
                record.kind = Kind::HardLink(Vec::new());
                self.waiting.entry(p.ino).or_default().push(record);
                return;
            }
            record.size = data_len;
            record.stored = data_len;
            out.index(&record);
            for mut link in self.waiting.remove(&p.ino).unwrap_or_default() {
                link.kind = Kind::HardLink(p.entry.path.clone());
                out.index(&link);
            }
            return;
        }
        if !p.is_first() {
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
fn write_newc_stream<W: NewcSink>(
    mut prepared: Prepared,
    out: &mut W,
) -> Result<NewcStats, TreeError> {
    let mut stats = std::mem::take(&mut prepared.stats);
    let mut enc = EntryEncoder::new();
    let mut indexer = NewcIndexer::default();
    let mut plan = prepared.plan()?;
    while let Some(p) = plan.next_planned()? {
        let meta = p.meta();
        // Links reuse their first path's clamped mtime; the warning is given once.
        let mtime = if p.is_first() {
            for (name, _) in &meta.xattrs {
                stats.dropped_xattrs += 1;
                *stats
                    .dropped_xattr_names
                    .entry(String::from_utf8_lossy(name).into_owned())
                    .or_insert(0) += 1;
            }
            newc_mtime(meta, &mut stats.warnings)
        } else {
            clamp_mtime(meta.mtime.secs)
        };

        let Framed {
            header,
            data_len,
            link_target,
        } = frame(&p, mtime)?;
        out.write_all(&header).map_err(output_error)?;
        match link_target {
            Some(t) => out.write_all(t).map_err(output_error)?,
            None if data_len > 0 => {
                // Always dense: holes are read back as zeros.
                if meta.sparse.is_some() {
                    stats.sparse_expanded += 1;
                }
                let mut dense = Entry::new(p.entry.path.clone(), Kind::File, meta.mode);
                dense.size = data_len;
                let source = prepared.source(&p.entry.path);
                enc.write_data(&dense, &source, out, &mut stats.warnings)?;
            }
            None => {}
        }
        let pad = pad4(data_len);
        out.write_all(&[0u8; 4][..pad as usize])
            .map_err(output_error)?;
        indexer.entry(out, &p, (stats.bytes, header.len() as u64, data_len), mtime);
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

    fn e(path: &str, kind: Kind, size: u64) -> Entry {
        let mut x = Entry::new(path.as_bytes().to_vec(), kind, 0o644);
        x.size = size;
        x
    }

    fn link(path: &str, to: &str) -> Entry {
        e(path, Kind::HardLink(to.as_bytes().to_vec()), 0)
    }

    /// Counts and spills `entries` as the walk would hand them over.
    fn prepared(entries: &[Entry]) -> Result<Prepared, TreeError> {
        let mut c = Counter::new()?;
        for x in entries {
            c.add(x)?;
        }
        c.finish(Path::new("/nonexistent"), 0, Vec::new())
    }

    /// (ino, nlink, carries_data, first path) of every planned entry.
    fn plan_of(p: &Prepared) -> Result<Vec<(u32, u32, bool, String)>, TreeError> {
        let mut plan = p.plan()?;
        let mut out = Vec::new();
        while let Some(x) = plan.next_planned()? {
            let first = String::from_utf8_lossy(&x.meta().path).into_owned();
            out.push((x.ino, x.nlink, x.carries_data, first));
        }
        Ok(out)
    }

    #[test]
    fn plan_numbers_inodes_links_and_directory_nlink() {
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
        let got = plan_of(&prepared(&entries).unwrap()).unwrap();
        let ino: Vec<u32> = got.iter().map(|x| x.0).collect();
        let nlink: Vec<u32> = got.iter().map(|x| x.1).collect();
        let data: Vec<bool> = got.iter().map(|x| x.2).collect();
        assert_eq!(ino, [1, 2, 3, 4, 5, 3, 6, 3, 7]);
        assert_eq!(nlink, [4, 3, 3, 2, 2, 3, 1, 3, 1]);
        assert_eq!(
            data,
            [false, false, false, false, false, false, true, true, true]
        );
        assert_eq!(got[7].3, "rootimg/a/f");
        // A second replay gives the same plan (the sidecar and the tree passes).
        let p = prepared(&entries).unwrap();
        assert_eq!(plan_of(&p).unwrap(), plan_of(&p).unwrap());
    }

    #[test]
    fn directory_nlink_counts_only_direct_subdirectories_after_deep_ones() {
        let entries = vec![
            e("rootimg", Kind::Dir, 0),
            e("rootimg/a", Kind::Dir, 0),
            e("rootimg/a/b", Kind::Dir, 0),
            e("rootimg/a/b/c", Kind::Dir, 0),
            e("rootimg/a/b/c/f", Kind::File, 0),
            e("rootimg/a/d", Kind::Dir, 0),
            e("rootimg/e", Kind::Dir, 0),
            e("rootimg/e/x", Kind::File, 0),
            e("rootimg/f", Kind::Dir, 0),
        ];
        let got = plan_of(&prepared(&entries).unwrap()).unwrap();
        let nlink: Vec<u32> = got.iter().map(|x| x.1).collect();
        assert_eq!(nlink, [5, 4, 3, 2, 1, 2, 2, 1, 2]);
    }

    #[test]
    fn refuses_4_gib_files_and_dangling_links() {
        assert!(prepared(&[e("rootimg/f", Kind::File, u64::from(u32::MAX))]).is_ok());
        let err = prepared(&[e("rootimg/f", Kind::File, 1 << 32)])
            .err()
            .unwrap();
        assert!(matches!(err, TreeError::Unsupported { .. }));
        assert!(err.to_string().contains("rootimg/f"), "{err}");
        let p = prepared(&[link("rootimg/g", "rootimg/nope")]).unwrap();
        let err = plan_of(&p).unwrap_err();
        assert!(err.to_string().contains("rootimg/nope"), "{err}");
    }

    /// Name, ino, nlink, filesize.
    type Header = (String, u32, u32, u32);

    /// Name, ino, nlink, filesize of every header of an uncompressed newc stream, the
    /// trailer included, read field by field (independently of the encoder), and the
    /// BLAKE3 of the headers as the sidecar takes it (FORMAT.md §7).
    fn headers(newc: &[u8]) -> (Vec<Header>, [u8; 32]) {
        let mut out = Vec::new();
        let mut hasher = blake3::Hasher::new();
        let mut at = 0;
        let field = |at: usize, i: usize| {
            let s = std::str::from_utf8(&newc[at + 6 + 8 * i..at + 14 + 8 * i]).unwrap();
            u32::from_str_radix(s, 16).unwrap()
        };
        loop {
            assert_eq!(&newc[at..at + 6], b"070701");
            let (ino, nlink, size, namesize) =
                (field(at, 0), field(at, 4), field(at, 6), field(at, 11));
            let name_end = at + 110 + namesize as usize;
            hasher.update(&newc[at..name_end]);
            let name = String::from_utf8_lossy(&newc[at + 110..name_end - 1]).into_owned();
            out.push((name.clone(), ino, nlink, size));
            if name == "TRAILER!!!" {
                return (out, *hasher.finalize().as_bytes());
            }
            at = (name_end + 3) & !3;
            at = (at + size as usize + 3) & !3;
        }
    }

    #[test]
    fn links_across_directories_and_empty_directories() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("src");
        for d in ["a", "b/empty", "z/deep/er", "e"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        // The first path in walk order is rootimg/a/x; the last, carrying the data,
        // is deep in a later directory; a second group starts deep and ends shallow.
        fs::write(root.join("a/x"), b"group").unwrap();
        fs::hard_link(root.join("a/x"), root.join("z/deep/er/y")).unwrap();
        fs::hard_link(root.join("a/x"), root.join("b/w")).unwrap();
        fs::write(root.join("z/deep/f"), b"second").unwrap();
        fs::hard_link(root.join("z/deep/f"), root.join("zz")).unwrap();
        std::os::unix::fs::symlink("a/x", root.join("s")).unwrap();
        fs::hard_link(root.join("s"), root.join("e/s2")).unwrap();
        let mut out = Vec::new();
        write_newc(&root, &mut out, &NewcOptions::default()).unwrap();
        let (got, _) = headers(&out);
        let got: Vec<(&str, u32, u32, u32)> = got
            .iter()
            .map(|(n, i, l, s)| (n.as_str(), *i, *l, *s))
            .collect();
        assert_eq!(
            got,
            [
                ("rootimg", 1, 6, 0),
                ("rootimg/a", 2, 2, 0),
                ("rootimg/a/x", 3, 3, 0),
                ("rootimg/b", 4, 3, 0),
                ("rootimg/b/empty", 5, 2, 0),
                ("rootimg/b/w", 3, 3, 0),
                ("rootimg/e", 6, 2, 0),
                ("rootimg/e/s2", 7, 2, 3),
                ("rootimg/s", 7, 2, 3),
                ("rootimg/z", 8, 3, 0),
                ("rootimg/z/deep", 9, 3, 0),
                ("rootimg/z/deep/er", 10, 2, 0),
                ("rootimg/z/deep/er/y", 3, 3, 5),
                ("rootimg/z/deep/f", 11, 2, 0),
                ("rootimg/zz", 11, 2, 6),
                ("TRAILER!!!", 0, 1, 0),
            ]
        );
        // Sidecar records at the data-bearing path of a file group, at the first
        // path of any other inode.
        let tree = prepare_newc(&root, &NewcOptions::default()).unwrap();
        let meta = tree.sidecar().unwrap();
        let mut r = crate::tree::format::sidecar::SidecarReader::new(meta.as_slice()).unwrap();
        let mut paths = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            paths.push(String::from_utf8(rec.path).unwrap());
        }
        assert!(
            paths.contains(&"rootimg/z/deep/er/y".to_string()),
            "{paths:?}"
        );
        assert!(paths.contains(&"rootimg/e/s2".to_string()), "{paths:?}");
        assert!(!paths.iter().any(|p| p == "rootimg/a/x" || p == "rootimg/s"));
        assert_eq!(paths.len(), 11);
    }

    /// The walk is taken once: what changes in the tree after it cannot make the
    /// sidecar disagree with the tree; data that changed size or vanished keeps the
    /// header the walk gave it, with a warning.
    #[test]
    fn tree_changing_after_the_walk_keeps_sidecar_and_tree_in_step() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("src");
        fs::create_dir_all(root.join("d")).unwrap();
        fs::write(root.join("d/grows"), b"1234").unwrap();
        fs::write(root.join("gone"), b"x").unwrap();
        let tree = prepare_newc(&root, &NewcOptions::default()).unwrap();
        let meta = tree.sidecar().unwrap();
        fs::write(root.join("d/grows"), b"123456789").unwrap();
        fs::write(root.join("new"), b"late").unwrap();
        fs::create_dir(root.join("d/newdir")).unwrap();
        let spooled = {
            let mut s = tree.spool_sidecar().unwrap();
            // Reads fill the buffer across the head's end (49 bytes), as the
            // in-memory sidecar's did: the bundle's deflate bytes depend on it.
            let mut v = vec![0u8; 64];
            assert_eq!(s.read(&mut v).unwrap(), 64);
            s.read_to_end(&mut v).unwrap();
            assert_eq!(v.len() as u64, s.len());
            v
        };
        assert_eq!(spooled, meta);
        let mut gz = Vec::new();
        let stats = tree.write_gz(&mut gz).unwrap();
        assert!(
            stats.warnings.iter().any(|w| w.contains("rootimg/d/grows")),
            "{:?}",
            stats.warnings
        );
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(gz.as_slice())
            .read_to_end(&mut plain)
            .unwrap();
        let (got, digest) = headers(&plain);
        let names: Vec<&str> = got.iter().map(|x| x.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "rootimg",
                "rootimg/d",
                "rootimg/d/grows",
                "rootimg/gone",
                "TRAILER!!!"
            ]
        );
        assert_eq!(got[1].2, 2, "d's nlink counts what was walked");
        assert_eq!(got[2].3, 4, "the size the walk saw");
        let r = crate::tree::format::sidecar::SidecarReader::new(meta.as_slice()).unwrap();
        assert_eq!(r.digest(), digest);

        // A file removed after the walk keeps its header, its data zeros, warned.
        let tree = prepare_newc(&root, &NewcOptions::default()).unwrap();
        let meta = tree.sidecar().unwrap();
        fs::remove_file(root.join("gone")).unwrap();
        let mut plain = Vec::new();
        let stats = write_newc_stream(tree.prepared, &mut BufWriter::new(&mut plain)).unwrap();
        assert!(
            stats.warnings.iter().any(|w| w.contains("rootimg/gone")),
            "{:?}",
            stats.warnings
        );
        let (got, digest) = headers(&plain);
        assert!(got
            .iter()
            .any(|x| x == &("rootimg/gone".to_string(), 5, 1, 1)));
        let r = crate::tree::format::sidecar::SidecarReader::new(meta.as_slice()).unwrap();
        assert_eq!(r.digest(), digest);
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

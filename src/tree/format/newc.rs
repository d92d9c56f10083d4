//! The cpio **newc** format, both directions: the pull decoder [`CpioReader`] for
//! newc (`070701`) and its `crc` variant (`070702`), the format of xCAT's
//! `rootimgtree.gz` (`find rootimg | cpio -H newc -o`, spec §3.3), and the encoder
//! [`write_newc`] / [`write_newc_gz`] for `export --compat xcat` (at the end of the
//! file; see its own docs).
//!
//! Layout: a 110-byte ASCII header (magic + 13 eight-digit hex fields), the name with
//! its NUL padded so header+name is a multiple of 4, then the data padded to 4. The
//! archive ends with an entry named `TRAILER!!!`.
//!
//! Hard links: GNU cpio writes every member of a link group (same dev and inode,
//! nlink > 1) but stores the data only with the last one written, giving the earlier
//! ones size 0. The decoder turns each group into one [`Kind::File`] carrying the data
//! followed by [`Kind::HardLink`] entries to it, buffering the earlier names until the
//! data-bearing member arrives.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};

use crate::tree::entry::{Entry, Kind, Timestamp};
use crate::tree::error::{display_path, TreeError};
use crate::tree::format::tar_decode::{clean_name, EntryReader, MAX_NAME};
use crate::tree::io::{fill, read_capped};

const HEADER: usize = 110;
/// Longest symlink target we accept (Linux caps targets at PATH_MAX = 4096).
const MAX_LINK: u64 = 64 * 1024;

const S_IFMT: u32 = 0o170000;
const S_IFSOCK: u32 = 0o140000;
const S_IFLNK: u32 = 0o120000;
const S_IFREG: u32 = 0o100000;
const S_IFBLK: u32 = 0o060000;
const S_IFDIR: u32 = 0o040000;
const S_IFCHR: u32 = 0o020000;
const S_IFIFO: u32 = 0o010000;

/// Identity of an inode in the archive: (devmajor, devminor, ino).
type InodeKey = (u32, u32, u32);

/// Earlier members of a hard-link group that arrived without data.
struct Pending {
    nlink: u32,
    entries: Vec<Entry>,
}

/// Pull decoder of a cpio newc/crc stream; see the module docs. Same interface as
/// [`crate::tree::format::tar_decode::TarReader`] through [`EntryReader`].
///
/// The source should be buffered (e.g. [`std::io::BufReader`]).
pub struct CpioReader<R: Read> {
    inner: R,
    offset: u64,
    remaining: u64,
    padding: u64,
    /// For `070702`: (checksum stored in the header, running sum of data bytes).
    crc: Option<(u32, u32)>,
    current: String,
    /// Entries decoded but not yet returned (hard links released by a group leader).
    queue: VecDeque<Entry>,
    pending: HashMap<InodeKey, Pending>,
    /// Link groups already materialized: inode → archive path of the file holding it.
    leaders: HashMap<InodeKey, Vec<u8>>,
    done: bool,
    warnings: Vec<String>,
}

impl<R: Read> CpioReader<R> {
    /// Creates a decoder reading the cpio stream from `inner`.
    pub fn new(inner: R) -> CpioReader<R> {
        CpioReader {
            inner,
            offset: 0,
            remaining: 0,
            padding: 0,
            crc: None,
            current: "<start of archive>".into(),
            queue: VecDeque::new(),
            pending: HashMap::new(),
            leaders: HashMap::new(),
            done: false,
            warnings: Vec::new(),
        }
    }

    /// Gives back the underlying stream, positioned after what was decoded.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn format(&self, reason: impl Into<String>) -> TreeError {
        TreeError::Format {
            entry: self.current.clone(),
            reason: reason.into(),
        }
    }

    fn read_err(&self, e: io::Error) -> TreeError {
        self.format(format!("read error at byte offset {}: {e}", self.offset))
    }

    fn truncated(&self) -> TreeError {
        self.format(format!(
            "archive truncated at byte offset {} ({} bytes of data missing)",
            self.offset, self.remaining
        ))
    }

    fn skip_padding(&mut self, n: u64) -> Result<(), TreeError> {
        let got = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())
            .map_err(|e| self.read_err(e))?;
        self.offset = self.offset.saturating_add(got);
        if got < n {
            return Err(self.format(format!(
                "archive truncated in padding at byte offset {}",
                self.offset
            )));
        }
        Ok(())
    }

    /// Consumes the current entry's unread data (checksummed) and its padding.
    fn finish_entry(&mut self) -> Result<(), TreeError> {
        let mut buf = [0u8; 8192];
        while self.remaining > 0 {
            self.read_data(&mut buf)?;
        }
        let pad = self.padding;
        self.padding = 0;
        self.skip_padding(pad)
    }

    /// Called when the current entry's data has been fully consumed.
    fn check_crc(&mut self) -> Result<(), TreeError> {
        if let Some((want, got)) = self.crc.take() {
            if want != got {
                return Err(self.format(format!(
                    "data checksum mismatch (header {want:08x}, data {got:08x})"
                )));
            }
        }
        Ok(())
    }

    fn decode(&mut self) -> Result<Option<Entry>, TreeError> {
        loop {
            let header_offset = self.offset;
            let mut h = [0u8; HEADER];
            let got = fill(&mut self.inner, &mut h).map_err(|e| self.read_err(e))?;
            self.offset = self.offset.saturating_add(got as u64);
            if got == 0 {
                return Err(self.format("archive ends without a TRAILER!!! entry"));
            }
            if got < HEADER {
                return Err(self.format(format!(
                    "archive truncated inside a header at byte offset {header_offset}"
                )));
            }
            let with_crc = match &h[..6] {
                b"070701" => false,
                b"070702" => true,
                _ => {
                    return Err(self.format(format!(
                    "bad cpio magic {:?} at byte offset {header_offset} (only newc is supported)",
                    String::from_utf8_lossy(&h[..6])
                )))
                }
            };
            let mut f = [0u32; 13];
            for (i, v) in f.iter_mut().enumerate() {
                let field = &h[6 + i * 8..14 + i * 8];
                *v = parse_hex(field).ok_or_else(|| {
                    self.format(format!(
                        "bad hex field at byte offset {}",
                        header_offset + 6 + i as u64 * 8
                    ))
                })?;
            }
            let [ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor, namesize, check] =
                f;
            if namesize == 0 || u64::from(namesize) > MAX_NAME {
                return Err(self.format(format!(
                    "name size {namesize} out of range at byte offset {header_offset}"
                )));
            }
            let mut name =
                read_capped(&mut self.inner, u64::from(namesize)).map_err(|e| self.read_err(e))?;
            self.offset = self.offset.saturating_add(name.len() as u64);
            if name.len() < namesize as usize {
                return Err(self.format("archive truncated inside a name"));
            }
            if name.pop() != Some(0) {
                return Err(self.format(format!(
                    "name not NUL-terminated at byte offset {header_offset}"
                )));
            }
            self.current = display_path(&name);
            self.skip_padding(pad4(HEADER as u64 + u64::from(namesize)))?;
            self.remaining = u64::from(filesize);
            self.padding = pad4(u64::from(filesize));
            self.crc = with_crc.then_some((check, 0));

            if name == b"TRAILER!!!" {
                self.finish_entry()?;
                return Ok(None);
            }
            let name = clean_name(name);
            self.current = display_path(&name);

            let kind = match mode & S_IFMT {
                S_IFREG => Kind::File,
                S_IFDIR => Kind::Dir,
                S_IFLNK => {
                    if u64::from(filesize) > MAX_LINK {
                        return Err(self.format(format!("symlink target of {filesize} bytes")));
                    }
                    let mut target = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        let n = self.read_data(&mut chunk)?;
                        if n == 0 {
                            break;
                        }
                        target.extend_from_slice(&chunk[..n]);
                    }
                    Kind::Symlink(target)
                }
                S_IFCHR => Kind::CharDevice {
                    major: rdevmajor,
                    minor: rdevminor,
                },
                S_IFBLK => Kind::BlockDevice {
                    major: rdevmajor,
                    minor: rdevminor,
                },
                S_IFIFO => Kind::Fifo,
                S_IFSOCK => {
                    // A socket is recreated by whoever listens on it; tar skips them too.
                    self.warnings
                        .push(format!("{}: socket skipped", self.current));
                    self.finish_entry()?;
                    continue;
                }
                other => {
                    self.warnings.push(format!(
                        "{}: skipped entry of unknown file type {other:o}",
                        self.current
                    ));
                    self.finish_entry()?;
                    continue;
                }
            };
            let mut e = Entry::new(name, kind, mode & 0o7777);
            e.uid = uid;
            e.gid = gid;
            e.mtime = Timestamp {
                secs: i64::from(mtime),
                nanos: 0,
            };
            if e.kind == Kind::File {
                e.size = u64::from(filesize);
            }

            if nlink > 1 && e.kind != Kind::Dir {
                let key = (devmajor, devminor, ino);
                if let Some(r) = self.link_group(key, nlink, e) {
                    return Ok(Some(r));
                }
                continue;
            }
            return Ok(Some(e));
        }
    }

    /// Files one member of a hard-link group; returns what to emit now, if anything
    /// (further entries may be queued behind it).
    fn link_group(&mut self, key: InodeKey, nlink: u32, e: Entry) -> Option<Entry> {
        if let Some(leader) = self.leaders.get(&key) {
            // The group's file exists already (its data came first, or this is a
            // repeated device/symlink node): link to it. Any data is skipped.
            let mut link = e;
            link.kind = Kind::HardLink(leader.clone());
            link.size = 0;
            return Some(link);
        }
        if e.kind != Kind::File {
            // Only regular files have their data deferred; other kinds are complete
            // in their first member, which becomes the group's target.
            self.leaders.insert(key, e.path.clone());
            return Some(e);
        }
        if e.size > 0 {
            self.leaders.insert(key, e.path.clone());
            if let Some(p) = self.pending.remove(&key) {
                self.queue
                    .extend(p.entries.into_iter().map(|m| as_link(m, &e.path)));
            }
            return Some(e);
        }
        let p = self.pending.entry(key).or_insert(Pending {
            nlink,
            entries: Vec::new(),
        });
        p.entries.push(e);
        if p.entries.len() as u64 >= u64::from(p.nlink) {
            // All members seen and none had data: an empty file with several names.
            if let Some(p) = self.pending.remove(&key) {
                let mut group = self.release(key, p).into_iter();
                let file = group.next();
                self.queue.extend(group);
                return file;
            }
        }
        None
    }

    /// Materializes a group whose data-bearing member never came: its last member
    /// becomes the (empty) file, returned first, then links to it.
    fn release(&mut self, key: InodeKey, mut p: Pending) -> Vec<Entry> {
        let Some(file) = p.entries.pop() else {
            return Vec::new();
        };
        self.leaders.insert(key, file.path.clone());
        let target = file.path.clone();
        let mut out = vec![file];
        out.extend(p.entries.into_iter().map(|m| as_link(m, &target)));
        out
    }
}

fn as_link(mut m: Entry, target: &[u8]) -> Entry {
    m.kind = Kind::HardLink(target.to_vec());
    m.size = 0;
    m
}

impl<R: Read> EntryReader for CpioReader<R> {
    fn next_entry(&mut self) -> Result<Option<Entry>, TreeError> {
        self.finish_entry()?;
        loop {
            if let Some(e) = self.queue.pop_front() {
                self.current = display_path(&e.path);
                return Ok(Some(e));
            }
            if self.done {
                return Ok(None);
            }
            match self.decode() {
                Ok(Some(e)) => return Ok(Some(e)),
                Ok(None) => {
                    self.done = true;
                    // Groups cut short (members outside the archived tree): release
                    // them in a stable order.
                    let mut rest: Vec<_> = self.pending.drain().collect();
                    rest.sort_by_key(|g| g.0);
                    for (key, p) in rest {
                        let group = self.release(key, p);
                        self.queue.extend(group);
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            }
        }
    }

    fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, TreeError> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = loop {
            match self.inner.read(&mut buf[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.read_err(e)),
            }
        };
        if n == 0 {
            return Err(self.truncated());
        }
        self.offset = self.offset.saturating_add(n as u64);
        self.remaining -= n as u64;
        if let Some((_, sum)) = &mut self.crc {
            for &b in &buf[..n] {
                *sum = sum.wrapping_add(u32::from(b));
            }
        }
        if self.remaining == 0 {
            self.check_crc()?;
        }
        Ok(n)
    }

    fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }
}

fn pad4(n: u64) -> u64 {
    (4 - n % 4) % 4
}

fn parse_hex(f: &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    for &c in f {
        let d = (c as char).to_digit(16)?;
        v = (v << 4) | d;
    }
    Some(v)
}

// =====================================================================================
// Encoder: a walked tree → cpio newc, for `export --compat xcat`.
//
// Separate from the decoder above on purpose: it shares only the format constants
// (header size, type bits, padding rule). Its job is to write what
// `cd <rootimgdir> && find rootimg | cpio -H newc -o` writes, closely enough that
// real xCAT's `zcat rootimgtree.gz | cpio -idum` restores the tree the same way.
// =====================================================================================

use std::collections::{BTreeMap, HashSet};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::tree::encode::walk::{walk, Walk, WalkOptions};
use crate::tree::encode::writer::{
    output_error, EntryEncoder, DEFAULT_GZIP_LEVEL, IO_BUF_BYTES, MAX_GZIP_LEVEL, ROOTIMG_TOP,
};

/// Magic of the newc format (`cpio -H newc`); the `crc` variant is never written
/// because xCAT writes plain newc.
const NEWC_MAGIC: &[u8; 6] = b"070701";
/// Name of the end-of-archive entry.
const TRAILER: &[u8] = b"TRAILER!!!";
/// GNU cpio pads the whole archive to its 512-byte I/O block; we match its length.
const ARCHIVE_BLOCK: u64 = 512;
/// Largest file size a newc header can carry (8 hex digits).
const NEWC_MAX_SIZE: u64 = u32::MAX as u64;

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
}

impl Default for NewcOptions {
    fn default() -> Self {
        NewcOptions {
            level: DEFAULT_GZIP_LEVEL,
            one_file_system: true,
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
/// called, as `cd <rootimgdir> && find rootimg | cpio -H newc -o` does (spec §3.3).
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

/// Like [`write_newc`], compressed as one gzip member (flate2, level `opts.level`),
/// which is what xCAT's `| gzip -c` produces and its `zcat` reads.
///
/// Errors: those of [`write_newc`], or a level above 9 ([`TreeError::Unsupported`]).
pub fn write_newc_gz(
    dir: &Path,
    out: impl Write,
    opts: &NewcOptions,
) -> Result<NewcStats, TreeError> {
    if opts.level > MAX_GZIP_LEVEL {
        return Err(TreeError::Unsupported {
            entry: dir.display().to_string(),
            reason: format!("gzip level {} is above {MAX_GZIP_LEVEL}", opts.level),
        });
    }
    let prepared = prepare(dir, opts)?;
    let gz = GzEncoder::new(out, Compression::new(opts.level));
    let mut buffered = BufWriter::with_capacity(IO_BUF_BYTES, gz);
    let stats = write_newc_stream(prepared, &mut buffered)?;
    let gz = buffered
        .into_inner()
        .map_err(|e| output_error(e.into_error()))?;
    let mut out = gz.finish().map_err(output_error)?;
    out.flush().map_err(output_error)?;
    Ok(stats)
}

/// The header fields that vary between entries (the rest are constant here).
struct NewcHeader {
    ino: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    mtime: u32,
    filesize: u32,
    rdevmajor: u32,
    rdevminor: u32,
}

/// Header, name, NUL and the padding that brings header + name to a multiple of 4.
fn encode_newc_header(h: &NewcHeader, name: &[u8]) -> Vec<u8> {
    let namesize = name.len() + 1;
    let pad = pad4((HEADER + namesize) as u64) as usize;
    let mut out = Vec::with_capacity(HEADER + namesize + pad);
    out.extend_from_slice(NEWC_MAGIC);
    // Name sizes are bounded by Linux path lengths, far below 4 GiB; saturate
    // rather than wrap if that ever stops being true.
    let namesize32 = u32::try_from(namesize).unwrap_or(u32::MAX);
    // devmajor/devminor and the checksum are always 0 (see `write_newc`).
    for v in [
        h.ino,
        h.mode,
        h.uid,
        h.gid,
        h.nlink,
        h.mtime,
        h.filesize,
        0,
        0,
        h.rdevmajor,
        h.rdevminor,
        namesize32,
        0,
    ] {
        put_hex8(&mut out, v);
    }
    out.extend_from_slice(name);
    out.push(0);
    out.resize(out.len() + pad, 0);
    out
}

/// Appends `v` as 8 upper-case hex digits, as GNU cpio writes newc fields.
fn put_hex8(out: &mut Vec<u8>, v: u32) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for shift in (0..8).rev() {
        out.push(DIGITS[((v >> (shift * 4)) & 0xf) as usize]);
    }
}

/// Header facts that depend on other entries: link groups and subdirectory counts.
#[derive(Debug)]
struct Plan {
    /// Per entry: the index of the entry whose metadata it uses (itself, or for a
    /// hard link the first path of its inode).
    leader: Vec<usize>,
    ino: Vec<u32>,
    nlink: Vec<u32>,
    /// Per entry: whether its header carries the file data (regular files only).
    carries_data: Vec<bool>,
}

/// Computes the [`Plan`] and refuses, before any byte is written, what newc cannot
/// store (files of 4 GiB or more, more than 2^32-1 inodes).
fn plan(entries: &[(Entry, PathBuf)]) -> Result<Plan, TreeError> {
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
    let mut p = Plan {
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
                         32 bits, so files of 4 GiB or more cannot be exported with \
                         --compat xcat (xCAT's own imgexport has the same limit); \
                         use the native format",
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
            let clamped = if e.mtime.secs < 0 { 0 } else { u32::MAX };
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
    plan: Plan,
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
    let plan = plan(&w.entries)?;
    let stats = NewcStats {
        entries: w.entries.len() as u64,
        sockets_skipped: w.sockets_skipped,
        warnings: std::mem::take(&mut w.warnings),
        ..NewcStats::default()
    };
    Ok(Prepared {
        walk: w,
        plan,
        stats,
    })
}

/// Every entry, trailer, final block padding.
fn write_newc_stream<W: Write>(prepared: Prepared, out: &mut W) -> Result<NewcStats, TreeError> {
    let Prepared {
        walk: w,
        plan,
        mut stats,
    } = prepared;
    // Link members reuse their leader's clamped mtime; the warning is given once.
    let mut mtimes: Vec<u32> = Vec::with_capacity(w.entries.len());
    let mut enc = EntryEncoder::new();
    for (i, (entry, source)) in w.entries.iter().enumerate() {
        let l = plan.leader[i];
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
            None if plan.carries_data[i] => meta.size,
            None => 0,
        };
        let header = encode_newc_header(
            &NewcHeader {
                ino: plan.ino[i],
                mode: type_bits | (meta.mode & 0o7777),
                uid: meta.uid,
                gid: meta.gid,
                nlink: plan.nlink[i],
                mtime,
                // The plan refused files above NEWC_MAX_SIZE; symlink targets are
                // at most PATH_MAX.
                filesize: u32::try_from(data_len).unwrap_or(u32::MAX),
                rdevmajor: rdev.0,
                rdevminor: rdev.1,
            },
            &entry.path,
        );
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
        stats.bytes += header.len() as u64 + data_len + pad;
    }

    // GNU cpio's trailer: everything 0 but nlink 1 and the name.
    let trailer = encode_newc_header(
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
    );
    out.write_all(&trailer).map_err(output_error)?;
    stats.bytes += trailer.len() as u64;
    let tail = (ARCHIVE_BLOCK - stats.bytes % ARCHIVE_BLOCK) % ARCHIVE_BLOCK;
    out.write_all(&[0u8; ARCHIVE_BLOCK as usize][..tail as usize])
        .map_err(output_error)?;
    stats.bytes += tail;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct M<'a> {
        name: &'a str,
        mode: u32,
        ino: u32,
        nlink: u32,
        data: &'a [u8],
    }

    fn m<'a>(name: &'a str, mode: u32, ino: u32, nlink: u32, data: &'a [u8]) -> M<'a> {
        M {
            name,
            mode,
            ino,
            nlink,
            data,
        }
    }

    fn newc(magic: &str, members: &[M<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        let trailer = m("TRAILER!!!", 0, 0, 1, b"");
        for x in members.iter().chain(std::iter::once(&trailer)) {
            let check: u32 = x.data.iter().map(|&b| u32::from(b)).sum();
            let fields = [
                x.ino,
                x.mode,
                1234,
                5678,
                x.nlink,
                1_700_000_000,
                x.data.len() as u32,
                8,
                1,
                if x.mode & S_IFMT == S_IFCHR { 1 } else { 0 },
                if x.mode & S_IFMT == S_IFCHR { 3 } else { 0 },
                x.name.len() as u32 + 1,
                if magic == "070702" { check } else { 0 },
            ];
            out.extend(magic.as_bytes());
            for f in fields {
                out.extend(format!("{f:08X}").as_bytes());
            }
            out.extend(x.name.as_bytes());
            out.push(0);
            while out.len() % 4 != 0 {
                out.push(0);
            }
            out.extend(x.data);
            while out.len() % 4 != 0 {
                out.push(0);
            }
        }
        out.extend([0u8; 300]); // GNU cpio pads the archive to 512 bytes
        out
    }

    type Decoded = (Vec<(Entry, Vec<u8>)>, Vec<String>);

    fn all(data: &[u8]) -> Result<Decoded, TreeError> {
        let mut r = CpioReader::new(data);
        let mut out = Vec::new();
        while let Some(e) = r.next_entry()? {
            let mut d = Vec::new();
            r.copy_data(&mut d)?;
            out.push((e, d));
        }
        Ok((out, r.take_warnings()))
    }

    #[test]
    fn kinds_and_fields() {
        let a = newc(
            "070701",
            &[
                m("rootimg", 0o40755, 1, 3, b""),
                m("./rootimg/f", 0o104755, 2, 1, b"hello"),
                m("rootimg/l", 0o120777, 3, 1, b"../target"),
                m("rootimg/null", 0o20666, 4, 1, b""),
                m("rootimg/fifo", 0o10600, 5, 1, b""),
                m("rootimg/sock", 0o140755, 6, 1, b""),
            ],
        );
        let (got, warnings) = all(&a).unwrap();
        let names: Vec<_> = got.iter().map(|(e, _)| e.path.clone()).collect();
        assert_eq!(
            names,
            [
                &b"rootimg"[..],
                b"rootimg/f",
                b"rootimg/l",
                b"rootimg/null",
                b"rootimg/fifo"
            ]
        );
        assert_eq!(got[0].0.kind, Kind::Dir);
        let f = &got[1].0;
        assert_eq!((f.mode, f.uid, f.gid, f.size), (0o4755, 1234, 5678, 5));
        assert_eq!(f.mtime.secs, 1_700_000_000);
        assert_eq!(got[1].1, b"hello");
        assert_eq!(got[2].0.kind, Kind::Symlink(b"../target".to_vec()));
        assert_eq!(got[3].0.kind, Kind::CharDevice { major: 1, minor: 3 });
        assert_eq!(got[4].0.kind, Kind::Fifo);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("socket"));
    }

    #[test]
    fn hard_link_groups_get_their_data_first() {
        // GNU cpio order: earlier links with size 0, data on the last member.
        let a = newc(
            "070701",
            &[
                m("rootimg", 0o40755, 1, 2, b""),
                m("rootimg/a", 0o100644, 7, 3, b""),
                m("rootimg/x", 0o100644, 8, 1, b"x"),
                m("rootimg/b", 0o100644, 7, 3, b""),
                m("rootimg/c", 0o100644, 7, 3, b"three"),
                // Empty file with two names: no member has data.
                m("rootimg/e1", 0o100600, 9, 2, b""),
                m("rootimg/e2", 0o100600, 9, 2, b""),
                // Group cut short (second name outside the archive): released at the end.
                m("rootimg/lone", 0o100600, 10, 2, b""),
            ],
        );
        let (got, _) = all(&a).unwrap();
        let view: Vec<(String, Kind, Vec<u8>)> = got
            .into_iter()
            .map(|(e, d)| (String::from_utf8(e.path).unwrap(), e.kind, d))
            .collect();
        let link = |t: &str| Kind::HardLink(t.as_bytes().to_vec());
        assert_eq!(
            view,
            vec![
                ("rootimg".into(), Kind::Dir, vec![]),
                ("rootimg/x".into(), Kind::File, b"x".to_vec()),
                ("rootimg/c".into(), Kind::File, b"three".to_vec()),
                ("rootimg/a".into(), link("rootimg/c"), vec![]),
                ("rootimg/b".into(), link("rootimg/c"), vec![]),
                ("rootimg/e2".into(), Kind::File, vec![]),
                ("rootimg/e1".into(), link("rootimg/e2"), vec![]),
                ("rootimg/lone".into(), Kind::File, vec![]),
            ]
        );
    }

    #[test]
    fn crc_variant_verified() {
        let good = newc("070702", &[m("rootimg/f", 0o100644, 2, 1, b"data")]);
        assert!(all(&good).is_ok());
        let mut bad = good.clone();
        let pos = bad.windows(4).position(|w| w == b"data").unwrap();
        bad[pos] = b'D';
        let err = all(&bad).unwrap_err().to_string();
        assert!(
            err.contains("checksum") && err.contains("rootimg/f"),
            "{err}"
        );
        // Skipping the data unread must verify too.
        let mut r = CpioReader::new(&bad[..]);
        r.next_entry().unwrap();
        assert!(r.next_entry().is_err());
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(all(b"070707000000").is_err());
        let mut a = newc("070701", &[m("rootimg/f", 0o100644, 2, 1, b"data")]);
        a[20] = b'g'; // not hex
        assert!(all(&a).unwrap_err().to_string().contains("hex"));
        // No trailer.
        let a = newc("070701", &[m("rootimg/f", 0o100644, 2, 1, b"data")]);
        let cut = a.windows(10).position(|w| w == b"TRAILER!!!").unwrap() - 110;
        assert!(all(&a[..cut]).unwrap_err().to_string().contains("TRAILER"));
        // Huge name size claim.
        let mut a = newc("070701", &[m("rootimg/f", 0o100644, 2, 1, b"data")]);
        a[94..102].copy_from_slice(b"FFFFFFFF");
        assert!(all(&a).unwrap_err().to_string().contains("name size"));
    }

    #[test]
    fn garbage_never_panics() {
        let base = newc(
            "070702",
            &[
                m("rootimg", 0o40755, 1, 2, b""),
                m("rootimg/a", 0o100644, 7, 2, b""),
                m("rootimg/b", 0o100644, 7, 2, b"xyz"),
                m("rootimg/l", 0o120777, 3, 1, b"t"),
            ],
        );
        let mut seed: u64 = 99;
        for _ in 0..3000 {
            let mut a = base.clone();
            for _ in 0..3 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let pos = (seed >> 33) as usize % a.len();
                // Mostly hex digits, so headers stay parseable and reach deeper code.
                a[pos] = b"0123456789abcdef\x00\xff"[(seed >> 20) as usize % 18];
            }
            let _ = all(&a);
        }
    }
}

#[cfg(test)]
mod encoder_tests {
    use super::*;
    use std::fs;

    fn e(path: &str, kind: Kind, size: u64) -> (Entry, PathBuf) {
        let mut x = Entry::new(path.as_bytes().to_vec(), kind, 0o644);
        x.size = size;
        (x, PathBuf::from(path))
    }

    fn link(path: &str, to: &str) -> (Entry, PathBuf) {
        e(path, Kind::HardLink(to.as_bytes().to_vec()), 0)
    }

    #[test]
    fn header_layout_and_padding() {
        let h = NewcHeader {
            ino: 1,
            mode: 0o100644,
            uid: 1234,
            gid: 5678,
            nlink: 1,
            mtime: 1_700_000_000,
            filesize: 5,
            rdevmajor: 0xab,
            rdevminor: 0xcd,
        };
        let out = encode_newc_header(&h, b"rootimg/f");
        let text = String::from_utf8(out[..HEADER].to_vec()).unwrap();
        assert_eq!(
            text,
            "07070100000001000081A4000004D20000162E000000016553F1000000000500000000000000000000\
             00AB000000CD0000000A00000000"
        );
        // 110 + 10 bytes is already a multiple of 4: no padding.
        assert_eq!(&out[HEADER..], b"rootimg/f\0");
        // header + name + NUL padded to 4 for every name length.
        for len in 1..9 {
            let name = vec![b'n'; len];
            let out = encode_newc_header(&h, &name);
            assert_eq!(out.len() % 4, 0);
            assert!(out.len() - (HEADER + len + 1) < 4);
        }
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
        let p = plan(&entries).unwrap();
        assert_eq!(p.ino, [1, 2, 3, 4, 5, 3, 6, 3, 7]);
        assert_eq!(p.nlink, [4, 3, 3, 2, 2, 3, 1, 3, 1]);
        assert_eq!(
            p.carries_data,
            [false, false, false, false, false, false, true, true, true]
        );
        assert_eq!(p.leader[7], 2);
    }

    #[test]
    fn plan_refuses_4_gib_files_and_dangling_links() {
        let ok = plan(&[e("rootimg/f", Kind::File, u64::from(u32::MAX))]);
        assert!(ok.is_ok());
        let err = plan(&[e("rootimg/f", Kind::File, 1 << 32)]).unwrap_err();
        assert!(matches!(err, TreeError::Unsupported { .. }));
        assert!(err.to_string().contains("rootimg/f"), "{err}");
        let err = plan(&[link("rootimg/g", "rootimg/nope")]).unwrap_err();
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
        flate2::read::GzDecoder::new(gz.as_slice())
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

//! Restore a root-tree archive (tar or cpio newc) into a directory, as root, safely
//! and losslessly.
//!
//! Safety: every entry is created relative to directory file descriptors opened
//! with `O_DIRECTORY|O_NOFOLLOW`, walking from the destination one component at a
//! time, so no path is ever resolved through a symlink (or anything else) the
//! archive created. Names are checked before use (`..`, absolute, NUL, outside the
//! top directory), and hard links may only point at earlier entries of the same
//! archive.
//!
//! Fidelity: per entry, data → owner → mode → xattrs → times, because chown and
//! write clear setuid bits and `security.capability`, and chmod rewrites the ACL
//! mask. Directory metadata is applied last, children before parents, because
//! creating entries changes a directory's mtime.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, BufReader, Cursor, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rustix::fs::{
    self as rfs, AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;

use super::cpio::CpioReader;
use super::error::{display_path, TreeError};
use super::meta::{Entry, Kind, Timestamp};
use super::reader::{fill, is_tar_header, EntryReader, TarReader};

/// Read buffer between the (decompressed) archive and the decoders.
const STREAM_BUF: usize = 256 * 1024;
/// Buffer for copying file data.
const DATA_BUF: usize = 256 * 1024;

/// How to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Restore owners by the archived numbers (a root image carries its own passwd,
    /// so this is what imgport always does). When false, an owner *name* found in
    /// the restoring host's `/etc/passwd` / `/etc/group` wins over the number.
    pub numeric_owner: bool,
    /// Also restore access times when the archive has them (otherwise left as the
    /// creation time).
    pub atime: bool,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            numeric_owner: true,
            atime: false,
        }
    }
}

/// What a restore did.
#[derive(Debug, Clone, Default)]
pub struct RestoreStats {
    /// Entries restored (including the top directory and hard links).
    pub entries: u64,
    /// File data bytes written (for sparse files, the data segments only).
    pub bytes: u64,
    /// Non-fatal problems, e.g. an xattr the filesystem does not support.
    pub warnings: Vec<String>,
}

/// Restores an uncompressed archive read from `input` into `dest`, which must be an
/// existing (normally empty) directory standing for the archive's `top` directory
/// (`rootimg`): the `top` entry's metadata is applied to `dest` itself, and entries
/// outside `top/` are refused.
///
/// The format is detected from the first bytes: tar (ustar magic at offset 257, or a
/// valid old-style header) or cpio newc/crc (`07070[12]`).
pub fn restore(
    mut input: impl Read,
    dest: &Path,
    top: &[u8],
    opts: &RestoreOptions,
) -> Result<RestoreStats, TreeError> {
    let mut head = vec![0u8; 512];
    let n = fill(&mut input, &mut head).map_err(|e| TreeError::Format {
        entry: "<start of archive>".into(),
        reason: format!("read error: {e}"),
    })?;
    head.truncate(n);
    let is_tar = is_tar_header(&head);
    let is_cpio = head.starts_with(b"070701") || head.starts_with(b"070702");
    let stream = BufReader::with_capacity(STREAM_BUF, Cursor::new(head.clone()).chain(input));
    if is_tar {
        let mut r = TarReader::new(stream);
        let stats = restore_entries(&mut r, dest, top, opts)?;
        drain(r.into_inner())?;
        Ok(stats)
    } else if is_cpio {
        let mut r = CpioReader::new(stream);
        let stats = restore_entries(&mut r, dest, top, opts)?;
        drain(r.into_inner())?;
        Ok(stats)
    } else if head.is_empty() {
        Err(TreeError::Format {
            entry: "<start of archive>".into(),
            reason: "empty archive".into(),
        })
    } else if head.starts_with(b"070707") {
        Err(TreeError::Unsupported {
            entry: "<start of archive>".into(),
            reason: "old portable (odc) cpio; only newc is supported".into(),
        })
    } else {
        Err(TreeError::Format {
            entry: "<start of archive>".into(),
            reason: "neither a tar nor a cpio newc archive".into(),
        })
    }
}

/// Like [`restore`], for a gzip-compressed archive; multi-member gzip (pigz,
/// concatenated members, our own parallel writer) is read to the end.
///
/// Inflating runs on a helper thread, overlapping with file creation on the
/// calling thread (hence `Send`); memory in flight is bounded to a few chunks.
pub fn restore_gz(
    input: impl Read + Send,
    dest: &Path,
    top: &[u8],
    opts: &RestoreOptions,
) -> Result<RestoreStats, TreeError> {
    let (full_tx, full_rx) = crossbeam_channel::bounded::<io::Result<Vec<u8>>>(INFLATE_DEPTH);
    let (free_tx, free_rx) = crossbeam_channel::bounded::<Vec<u8>>(INFLATE_DEPTH + 2);
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut gz = flate2::read::MultiGzDecoder::new(input);
            loop {
                let mut buf = free_rx.try_recv().unwrap_or_default();
                buf.resize(INFLATE_CHUNK, 0);
                let msg = match fill(&mut gz, &mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        buf.truncate(n);
                        Ok(buf)
                    }
                    Err(e) => Err(e),
                };
                let failed = msg.is_err();
                // A send error means the restore stopped early: nothing left to do.
                if full_tx.send(msg).is_err() || failed {
                    break;
                }
            }
        });
        // `restore` owns the reader and drops it (and so the receiver) when it
        // returns, which also unblocks the inflater on an early error.
        let reader = ChunkReader {
            rx: full_rx,
            free: free_tx,
            cur: Vec::new(),
            pos: 0,
            failed: false,
        };
        restore(reader, dest, top, opts)
    })
}

/// Chunks of inflated data in flight between the inflater thread and the restore.
const INFLATE_DEPTH: usize = 4;
const INFLATE_CHUNK: usize = 1 << 20;

/// [`Read`] over chunks received from the inflater thread; returns spent chunks
/// for reuse so steady state allocates nothing.
struct ChunkReader {
    rx: crossbeam_channel::Receiver<io::Result<Vec<u8>>>,
    free: crossbeam_channel::Sender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    /// Set once the inflater reported an error: it has stopped, and a closed
    /// channel must not then pass for a clean end of stream.
    failed: bool,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other("gzip stream failed earlier"));
        }
        if self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(next)) => {
                    let spent = std::mem::replace(&mut self.cur, next);
                    self.pos = 0;
                    let _ = self.free.try_send(spent);
                }
                Ok(Err(e)) => {
                    self.failed = true;
                    return Err(e);
                }
                // The inflater finished: end of stream.
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Reads what follows the end-of-archive marker, so a corrupt or truncated gzip
/// trailer (CRC, length) is reported instead of silently accepted.
fn drain(mut rest: impl Read) -> Result<(), TreeError> {
    io::copy(&mut rest, &mut io::sink())
        .map(|_| ())
        .map_err(|e| TreeError::Format {
            entry: "<end of archive>".into(),
            reason: format!("stream error after the last entry: {e}"),
        })
}

/// Restores the entries of an already opened decoder into `dest`; see [`restore`].
pub fn restore_entries<E: EntryReader>(
    reader: &mut E,
    dest: &Path,
    top: &[u8],
    opts: &RestoreOptions,
) -> Result<RestoreStats, TreeError> {
    let top_comps: Vec<Vec<u8>> = top
        .split(|&c| c == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
        .collect();
    if top_comps.is_empty() || top_comps.iter().any(|c| c == b"..") || top.contains(&0) {
        return Err(TreeError::Unsupported {
            entry: display_path(top),
            reason: "invalid top directory name".into(),
        });
    }
    let dest_fd = rfs::open(
        dest,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| TreeError::io(dest, e.into()))?;
    let mut r = Restorer {
        dirs: DirCache {
            dest: dest_fd,
            stack: Vec::new(),
        },
        top: top_comps,
        opts: opts.clone(),
        seen: HashSet::new(),
        deferred: HashMap::new(),
        stats: RestoreStats::default(),
        buf: vec![0u8; DATA_BUF],
        host_ids: None,
    };
    while let Some(e) = reader.next_entry()? {
        r.stats.warnings.extend(reader.take_warnings());
        r.entry(reader, e)?;
        r.stats.entries += 1;
    }
    r.stats.warnings.extend(reader.take_warnings());
    r.finish_dirs()?;
    Ok(r.stats)
}

/// The destination fd plus the open chain of directories leading to the current
/// entry's parent, reused while consecutive entries share it (archives list
/// directories in order, so most entries hit the cache).
struct DirCache {
    dest: OwnedFd,
    stack: Vec<(Vec<u8>, OwnedFd)>,
}

impl DirCache {
    fn cur(&self) -> BorrowedFd<'_> {
        match self.stack.last() {
            Some((_, fd)) => fd.as_fd(),
            None => self.dest.as_fd(),
        }
    }

    /// Makes the stack hold exactly `parents`, opening each missing level without
    /// following symlinks. A missing level is created (the archive lacks the
    /// directory entry; GNU tar does the same).
    fn descend(
        &mut self,
        parents: &[&[u8]],
        entry: &[u8],
        warnings: &mut Vec<String>,
    ) -> Result<(), TreeError> {
        let common = self
            .stack
            .iter()
            .zip(parents)
            .take_while(|((have, _), want)| have.as_slice() == **want)
            .count();
        self.stack.truncate(common);
        for (depth, comp) in parents.iter().enumerate().skip(common) {
            let base = self.cur();
            let fd = match open_dir(base, comp) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    mkdir_at(base, comp, 0o755).map_err(|e| io_err(entry, "mkdir parent", e))?;
                    warnings.push(format!(
                        "{}: parent directory {} missing from the archive, created",
                        display_path(entry),
                        display_path(&parents[..=depth].join(&b'/'))
                    ));
                    open_dir(self.cur(), comp).map_err(|e| io_err(entry, "open parent", e))?
                }
                Err(e) => return Err(parent_error(entry, &parents[..=depth], e)),
            };
            self.stack.push((comp.to_vec(), fd));
        }
        Ok(())
    }
}

struct Restorer {
    dirs: DirCache,
    top: Vec<Vec<u8>>,
    opts: RestoreOptions,
    /// Non-directory entries restored so far (paths below top): the only allowed
    /// hard link targets.
    seen: HashSet<Vec<u8>>,
    /// Directory metadata applied at the end; a later entry for the same directory
    /// replaces the earlier one.
    deferred: HashMap<Vec<u8>, Entry>,
    stats: RestoreStats,
    buf: Vec<u8>,
    host_ids: Option<HostIds>,
}

impl Restorer {
    /// Checks an archived name and returns it relative to the top directory
    /// (empty for the top itself), with `.` and empty components dropped.
    fn relative(&self, name: &[u8], entry: &[u8], what: &str) -> Result<Vec<u8>, TreeError> {
        let unsafe_err = |reason: String| TreeError::Unsafe {
            entry: display_path(entry),
            reason,
        };
        if name.is_empty() {
            return Err(unsafe_err(format!("empty {what}")));
        }
        if name.contains(&0) {
            return Err(unsafe_err(format!("NUL byte in {what}")));
        }
        if name[0] == b'/' {
            return Err(unsafe_err(format!(
                "absolute {what} {}",
                display_path(name)
            )));
        }
        let comps: Vec<&[u8]> = name
            .split(|&c| c == b'/')
            .filter(|c| !c.is_empty() && *c != b".")
            .collect();
        if comps.iter().any(|c| *c == b"..") {
            return Err(unsafe_err(format!("'..' in {what} {}", display_path(name))));
        }
        if comps.len() < self.top.len()
            || comps.iter().zip(&self.top).any(|(a, b)| *a != b.as_slice())
        {
            return Err(unsafe_err(format!(
                "{what} {} is outside {}/",
                display_path(name),
                display_path(&self.top.join(&b'/'))
            )));
        }
        Ok(comps[self.top.len()..].join(&b'/'))
    }

    fn entry<E: EntryReader>(&mut self, reader: &mut E, e: Entry) -> Result<(), TreeError> {
        let rel = self.relative(&e.path, &e.path, "name")?;
        if rel.is_empty() {
            if e.kind != Kind::Dir {
                return Err(TreeError::Unsafe {
                    entry: display_path(&e.path),
                    reason: "the top entry must be a directory".into(),
                });
            }
            self.deferred.insert(rel, e);
            return Ok(());
        }
        let comps: Vec<&[u8]> = rel.split(|&c| c == b'/').collect();
        let (name, parents) = match comps.split_last() {
            Some(x) => x,
            None => return Ok(()),
        };
        let times = self.times(&e);
        let (uid, gid) = self.owner(&e)?;
        self.dirs
            .descend(parents, &e.path, &mut self.stats.warnings)?;
        let pfd = self.dirs.cur();
        let path = &e.path;

        if e.kind == Kind::Dir {
            match mkdir_at(pfd, name, 0o700) {
                Ok(()) => {}
                Err(Errno::EXIST) => {
                    let st = rfs::statat(pfd, *name, AtFlags::SYMLINK_NOFOLLOW)
                        .map_err(|er| io_err(path, "stat", er))?;
                    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                        remove(pfd, name, path)?;
                        mkdir_at(pfd, name, 0o700).map_err(|er| io_err(path, "mkdir", er))?;
                    }
                }
                Err(er) => return Err(io_err(path, "mkdir", er)),
            }
            self.seen.remove(&rel);
            self.deferred.insert(rel, e);
            return Ok(());
        }

        // Any other kind replaces what an earlier entry left under this name.
        self.deferred.remove(&rel);
        match &e.kind {
            Kind::File => {
                let file = create_file(pfd, name, path)?;
                let written = write_data(reader, &file, &e, &mut self.buf)?;
                self.stats.bytes += written;
                meta_fd(file.as_fd(), &e, uid, gid, &times, &mut self.stats.warnings)?;
            }
            Kind::Symlink(target) => {
                if target.contains(&0) || target.is_empty() {
                    return Err(TreeError::Format {
                        entry: display_path(path),
                        reason: "empty symlink target or NUL byte in it".into(),
                    });
                }
                retry_exist(pfd, name, path, "symlink", || {
                    rfs::symlinkat(target.as_slice(), pfd, *name)
                })?;
                meta_at(pfd, name, &e, uid, gid, &times, &mut self.stats.warnings)?;
            }
            Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } => {
                let ft = if matches!(e.kind, Kind::CharDevice { .. }) {
                    FileType::CharacterDevice
                } else {
                    FileType::BlockDevice
                };
                let dev = rfs::makedev(*major, *minor);
                retry_exist(pfd, name, path, "mknod", || {
                    rfs::mknodat(pfd, *name, ft, Mode::from_raw_mode(0o600), dev)
                })?;
                meta_at(pfd, name, &e, uid, gid, &times, &mut self.stats.warnings)?;
            }
            Kind::Fifo => {
                retry_exist(pfd, name, path, "mkfifo", || {
                    rfs::mknodat(pfd, *name, FileType::Fifo, Mode::from_raw_mode(0o600), 0)
                })?;
                meta_at(pfd, name, &e, uid, gid, &times, &mut self.stats.warnings)?;
            }
            Kind::HardLink(target) => {
                let trel = self.relative(target, path, "hard link target")?;
                if trel.is_empty() || !self.seen.contains(&trel) {
                    return Err(TreeError::Unsafe {
                        entry: display_path(path),
                        reason: format!(
                            "hard link target {} is not an earlier entry of this archive",
                            display_path(target)
                        ),
                    });
                }
                if trel != rel {
                    let tcomps: Vec<&[u8]> = trel.split(|&c| c == b'/').collect();
                    let (tname, tparents) = match tcomps.split_last() {
                        Some(x) => x,
                        None => return Ok(()),
                    };
                    // The target's directory is opened by the same no-follow walk,
                    // so a symlink swapped in since cannot redirect the link.
                    let owned;
                    let tfd = if tparents == parents {
                        pfd
                    } else {
                        owned = open_walk(self.dirs.dest.as_fd(), tparents, path)?;
                        owned.as_fd()
                    };
                    retry_exist(pfd, name, path, "link", || {
                        rfs::linkat(tfd, *tname, pfd, *name, AtFlags::empty())
                    })?;
                }
            }
            Kind::Dir => {}
        }
        self.seen.insert(rel);
        Ok(())
    }

    /// Applies deferred directory metadata, children before parents (reverse of a
    /// component-wise sort keeps siblings together, so the fd cache still helps).
    fn finish_dirs(&mut self) -> Result<(), TreeError> {
        let mut dirs: Vec<(Vec<u8>, Entry)> = self.deferred.drain().collect();
        dirs.sort_by(|a, b| a.0.split(|&c| c == b'/').cmp(b.0.split(|&c| c == b'/')));
        for (rel, e) in dirs.into_iter().rev() {
            let times = self.times(&e);
            let (uid, gid) = self.owner(&e)?;
            if rel.is_empty() {
                self.dirs.stack.clear();
                let fd = self.dirs.dest.as_fd();
                meta_fd(fd, &e, uid, gid, &times, &mut self.stats.warnings)?;
                continue;
            }
            let comps: Vec<&[u8]> = rel.split(|&c| c == b'/').collect();
            let Some((name, parents)) = comps.split_last() else {
                continue;
            };
            self.dirs
                .descend(parents, &e.path, &mut self.stats.warnings)?;
            let fd =
                open_dir(self.dirs.cur(), name).map_err(|er| parent_error(&e.path, &comps, er))?;
            meta_fd(fd.as_fd(), &e, uid, gid, &times, &mut self.stats.warnings)?;
        }
        self.dirs.stack.clear();
        Ok(())
    }

    fn times(&self, e: &Entry) -> Timestamps {
        let omit = Timespec {
            tv_sec: 0,
            tv_nsec: rfs::UTIME_OMIT,
        };
        Timestamps {
            last_access: match (self.opts.atime, e.atime) {
                (true, Some(t)) => timespec(t),
                _ => omit,
            },
            last_modification: timespec(e.mtime),
        }
    }

    fn owner(&mut self, e: &Entry) -> Result<(Uid, Gid), TreeError> {
        let (mut uid, mut gid) = (e.uid, e.gid);
        if !self.opts.numeric_owner {
            let ids = self.host_ids.get_or_insert_with(HostIds::load);
            if let Some(u) = e.uname.as_ref().and_then(|n| ids.users.get(n)) {
                uid = *u;
            }
            if let Some(g) = e.gname.as_ref().and_then(|n| ids.groups.get(n)) {
                gid = *g;
            }
        }
        // -1 means "leave unchanged" to chown, so it cannot be restored.
        if uid == u32::MAX || gid == u32::MAX {
            return Err(TreeError::Unsupported {
                entry: display_path(&e.path),
                reason: "owner id 4294967295 cannot be set".into(),
            });
        }
        Ok((Uid::from_raw(uid), Gid::from_raw(gid)))
    }
}

fn timespec(t: Timestamp) -> Timespec {
    Timespec {
        tv_sec: t.secs,
        tv_nsec: t.nanos.min(999_999_999).into(),
    }
}

fn io_err(entry: &[u8], op: &str, e: impl Into<io::Error>) -> TreeError {
    let e: io::Error = e.into();
    TreeError::io(
        PathBuf::from(OsStr::from_bytes(entry)),
        io::Error::new(e.kind(), format!("{op}: {e}")),
    )
}

fn parent_error(entry: &[u8], parents: &[&[u8]], e: Errno) -> TreeError {
    if e == Errno::LOOP || e == Errno::NOTDIR {
        TreeError::Unsafe {
            entry: display_path(entry),
            reason: format!(
                "{} (below the top directory) is a symlink or not a directory",
                display_path(&parents.join(&b'/'))
            ),
        }
    } else {
        io_err(entry, "open directory", e)
    }
}

fn open_dir(base: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    rfs::openat(
        base,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Opens `comps` below `base` one no-follow step at a time.
fn open_walk(base: BorrowedFd<'_>, comps: &[&[u8]], entry: &[u8]) -> Result<OwnedFd, TreeError> {
    let mut cur: Option<OwnedFd> = None;
    for (i, comp) in comps.iter().enumerate() {
        let b = cur.as_ref().map_or(base, |f| f.as_fd());
        let next = open_dir(b, comp).map_err(|e| parent_error(entry, &comps[..=i], e))?;
        cur = Some(next);
    }
    match cur {
        Some(fd) => Ok(fd),
        None => rustix::io::fcntl_dupfd_cloexec(base, 0).map_err(|e| io_err(entry, "dup", e)),
    }
}

fn mkdir_at(base: BorrowedFd<'_>, name: &[u8], mode: u32) -> Result<(), Errno> {
    rfs::mkdirat(base, name, Mode::from_raw_mode(mode))
}

/// Removes whatever an earlier entry put under `name` (an empty directory, or any
/// non-directory), without following it.
fn remove(pfd: BorrowedFd<'_>, name: &[u8], entry: &[u8]) -> Result<(), TreeError> {
    let st = match rfs::statat(pfd, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(io_err(entry, "stat", e)),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        rfs::unlinkat(pfd, name, AtFlags::REMOVEDIR).map_err(|e| {
            if e == Errno::NOTEMPTY {
                TreeError::Unsupported {
                    entry: display_path(entry),
                    reason: "would replace a non-empty directory".into(),
                }
            } else {
                io_err(entry, "rmdir", e)
            }
        })
    } else {
        rfs::unlinkat(pfd, name, AtFlags::empty()).map_err(|e| io_err(entry, "unlink", e))
    }
}

/// Runs a creating call; if the name exists (a later entry of the same name),
/// removes the old one and tries once more.
fn retry_exist(
    pfd: BorrowedFd<'_>,
    name: &[u8],
    entry: &[u8],
    what: &str,
    mut op: impl FnMut() -> Result<(), Errno>,
) -> Result<(), TreeError> {
    match op() {
        Err(Errno::EXIST) => {
            remove(pfd, name, entry)?;
            op().map_err(|e| io_err(entry, what, e))
        }
        r => r.map_err(|e| io_err(entry, what, e)),
    }
}

fn create_file(pfd: BorrowedFd<'_>, name: &[u8], entry: &[u8]) -> Result<File, TreeError> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let open = || rfs::openat(pfd, name, flags, Mode::from_raw_mode(0o600));
    let fd = match open() {
        Err(Errno::EXIST) => {
            remove(pfd, name, entry)?;
            open()
        }
        r => r,
    }
    .map_err(|e| io_err(entry, "create", e))?;
    Ok(File::from(fd))
}

/// Writes the entry's stored data: sequentially for a dense file; for a sparse one,
/// each segment at its offset and then the real length, so holes stay holes.
fn write_data<E: EntryReader>(
    reader: &mut E,
    file: &File,
    e: &Entry,
    buf: &mut [u8],
) -> Result<u64, TreeError> {
    let werr = |er: io::Error| io_err(&e.path, "write", er);
    let mut total = 0u64;
    match &e.sparse {
        None => {
            let mut out: &File = file;
            loop {
                let n = reader.read_data(buf)?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n]).map_err(werr)?;
                total += n as u64;
            }
        }
        Some(map) => {
            for &(off, len) in map {
                let mut pos = off;
                let mut left = len;
                while left > 0 {
                    let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let n = reader.read_data(&mut buf[..want])?;
                    if n == 0 {
                        return Err(TreeError::Format {
                            entry: display_path(&e.path),
                            reason: "sparse map describes more data than stored".into(),
                        });
                    }
                    file.write_all_at(&buf[..n], pos).map_err(werr)?;
                    pos = pos.checked_add(n as u64).ok_or_else(|| TreeError::Format {
                        entry: display_path(&e.path),
                        reason: "sparse segment beyond the largest file offset".into(),
                    })?;
                    left -= n as u64;
                    total += n as u64;
                }
            }
            file.set_len(e.size)
                .map_err(|er| io_err(&e.path, "truncate", er))?;
        }
    }
    Ok(total)
}

/// Xattrs in the order to set them: plain ones first, ACLs after (they must come
/// after chmod, which rewrites the ACL mask; keeping them last is the simple rule).
fn ordered_xattrs(e: &Entry) -> impl Iterator<Item = &(Vec<u8>, Vec<u8>)> {
    let is_acl = |n: &[u8]| n.starts_with(b"system.posix_acl_");
    e.xattrs
        .iter()
        .filter(move |(n, _)| !is_acl(n))
        .chain(e.xattrs.iter().filter(move |(n, _)| is_acl(n)))
}

/// A failed xattr is fatal unless the filesystem cannot hold it at all, or it is an
/// SELinux label the host's policy rejects: those become warnings, as with GNU tar.
fn xattr_result(
    r: Result<(), Errno>,
    e: &Entry,
    name: &[u8],
    warnings: &mut Vec<String>,
) -> Result<(), TreeError> {
    match r {
        Ok(()) => Ok(()),
        Err(er) if er == Errno::OPNOTSUPP || name == b"security.selinux" => {
            warnings.push(format!(
                "{}: xattr {} not restored: {}",
                display_path(&e.path),
                display_path(name),
                io::Error::from(er)
            ));
            Ok(())
        }
        Err(er) => Err(io_err(
            &e.path,
            &format!("setxattr {}", display_path(name)),
            er,
        )),
    }
}

/// Owner, mode, xattrs and times through an open fd (regular files, directories).
fn meta_fd(
    fd: BorrowedFd<'_>,
    e: &Entry,
    uid: Uid,
    gid: Gid,
    times: &Timestamps,
    warnings: &mut Vec<String>,
) -> Result<(), TreeError> {
    rfs::fchown(fd, Some(uid), Some(gid)).map_err(|er| io_err(&e.path, "chown", er))?;
    rfs::fchmod(fd, Mode::from_raw_mode(e.mode & 0o7777))
        .map_err(|er| io_err(&e.path, "chmod", er))?;
    for (name, value) in ordered_xattrs(e) {
        let r = rfs::fsetxattr(fd, name.as_slice(), value, XattrFlags::empty());
        xattr_result(r, e, name, warnings)?;
    }
    rfs::futimens(fd, times).map_err(|er| io_err(&e.path, "utimens", er))
}

/// Owner, mode, xattrs and times by name in the parent directory, never following
/// the final component (symlinks, devices, FIFOs).
fn meta_at(
    pfd: BorrowedFd<'_>,
    name: &[u8],
    e: &Entry,
    uid: Uid,
    gid: Gid,
    times: &Timestamps,
    warnings: &mut Vec<String>,
) -> Result<(), TreeError> {
    rfs::chownat(pfd, name, Some(uid), Some(gid), AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|er| io_err(&e.path, "chown", er))?;
    if !matches!(e.kind, Kind::Symlink(_)) {
        // Linux has no chmod for symlinks; for the node we just created by name
        // in a directory we hold open, fchmodat is exact.
        rfs::chmodat(
            pfd,
            name,
            Mode::from_raw_mode(e.mode & 0o7777),
            AtFlags::empty(),
        )
        .map_err(|er| io_err(&e.path, "chmod", er))?;
    }
    if !e.xattrs.is_empty() {
        // /proc/self/fd/<dirfd> resolves to our open parent directory; lsetxattr then
        // acts on `name` itself without following it.
        let mut p = format!("/proc/self/fd/{}/", pfd.as_raw_fd()).into_bytes();
        p.extend_from_slice(name);
        for (xname, value) in ordered_xattrs(e) {
            let r = rfs::lsetxattr(p.as_slice(), xname.as_slice(), value, XattrFlags::empty());
            xattr_result(r, e, xname, warnings)?;
        }
    }
    rfs::utimensat(pfd, name, times, AtFlags::SYMLINK_NOFOLLOW)
        .map_err(|er| io_err(&e.path, "utimensat", er))
}

/// The restoring host's user and group names, for `numeric_owner: false`.
struct HostIds {
    users: HashMap<Vec<u8>, u32>,
    groups: HashMap<Vec<u8>, u32>,
}

impl HostIds {
    fn load() -> HostIds {
        fn parse(path: &str) -> HashMap<Vec<u8>, u32> {
            let Ok(text) = std::fs::read(path) else {
                return HashMap::new();
            };
            text.split(|&c| c == b'\n')
                .filter_map(|line| {
                    let mut f = line.split(|&c| c == b':');
                    let name = f.next()?;
                    let id = f.nth(1)?;
                    let id: u32 = std::str::from_utf8(id).ok()?.parse().ok()?;
                    Some((name.to_vec(), id))
                })
                .collect()
        }
        HostIds {
            users: parse("/etc/passwd"),
            groups: parse("/etc/group"),
        }
    }
}

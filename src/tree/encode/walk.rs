//! Walking a root tree into a deterministic stream of [`Entry`] records.
//!
//! The walk reads metadata only (lstat, xattrs, link targets, hole maps); file contents
//! are read later by the writer. Keeping the two apart lets the parallel writer cut the
//! stream into units and encode them concurrently while the archive order stays fixed.
//!
//! Order: depth-first, a directory before its children, siblings sorted by raw name
//! bytes. This is not the same as sorting whole paths (`a/b` vs `a-c`), and it is what
//! makes a hard link's target always precede the link.
//!
//! [`WalkStream`] yields entries one at a time and holds only the sorted listings of the
//! directories on the current path plus the hard-link map, so its memory does not grow
//! with the size of the tree; [`walk`] collects the same stream into a `Vec`.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, SeekFrom, Stat};
use rustix::io::Errno;

use crate::tree::entry::{Entry, Kind, Timestamp};
use crate::tree::error::{display_path, TreeError};

/// Size in bytes of the st_blocks unit (POSIX fixes it at 512 on Linux).
const STAT_BLOCK_BYTES: u64 = 512;
/// First guess for an xattr name list or value buffer; grown on ERANGE.
const XATTR_BUF_BYTES: usize = 4096;

/// What to include while walking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkOptions {
    /// Do not descend into directories on another device than the top (default true):
    /// a root image may have /proc or a bind mount mounted inside it while being built.
    pub one_file_system: bool,
    /// Record access times (default false: they change on every read and make two
    /// exports of the same tree differ).
    pub atime: bool,
}

impl Default for WalkOptions {
    fn default() -> Self {
        WalkOptions {
            one_file_system: true,
            atime: false,
        }
    }
}

/// The result of [`walk`]: every entry to archive, in archive order.
#[derive(Debug, Default)]
pub struct Walk {
    /// Entries with the on-disk path their data and metadata come from.
    pub entries: Vec<(Entry, PathBuf)>,
    /// Non-fatal problems (skipped sockets, mount points not descended, entries that
    /// vanished during the walk), each naming the entry.
    pub warnings: Vec<String>,
    /// Number of sockets skipped: tar cannot carry them and they are recreated by the
    /// services that own them.
    pub sockets_skipped: u64,
}

/// Walks the directory `dir`, naming its entries `top`, `top/...`, and collects every
/// entry: [`WalkStream`] gathered into a [`Walk`].
///
/// Same metadata, order, warnings and errors as [`WalkStream`]. Memory: all entries
/// are held (a few hundred bytes each; ~300 MB for 10^6 entries), so large trees
/// should be streamed instead.
pub fn walk(dir: &Path, top: &[u8], opts: &WalkOptions) -> Result<Walk, TreeError> {
    let mut stream = WalkStream::new(dir, top, opts)?;
    let mut entries = Vec::new();
    for item in &mut stream {
        entries.push(item?);
    }
    Ok(Walk {
        entries,
        warnings: stream.take_warnings(),
        sockets_skipped: stream.sockets_skipped(),
    })
}

/// A streaming walk of a tree: an iterator of `(entry, on-disk path)` in archive order.
///
/// Metadata comes from lstat (symlinks are never followed, including for xattrs):
/// kind, permission bits, uid/gid, mtime with nanoseconds, atime if `opts.atime`, size,
/// all xattrs of every namespace sorted by name, device numbers, raw link targets.
/// A second path of an inode with nlink > 1 becomes [`Kind::HardLink`] to the first
/// (hard-link entries carry no xattrs, as in GNU tar: they share the first's inode).
/// Regular files with fewer allocated blocks than their size are probed with
/// SEEK_DATA/SEEK_HOLE; `Entry::sparse` is set only if the file really has a hole.
/// Owner names come from the tree's own `etc/passwd` and `etc/group`, if they are
/// regular files: the image's users, not the host's. Sockets are skipped with a
/// warning; with `one_file_system`, directories on another device are yielded but not
/// descended (warned about too).
///
/// Cost: every lookup is relative to the open parent directory, never a whole path
/// again. A regular file (by readdir's d_type) is opened and fstat'ed, others are
/// lstat'ed with `statat`; then one listxattr per entry (on the fd when open), one
/// getxattr per xattr, a readlink per symlink, a few lseeks per file that looks
/// sparse; one open + readdir + sort per directory. With
/// [`WalkStream::prefetch_small_files`], one read per small file too. Memory: the sorted name lists of the directories on
/// the current path (a directory of n entries costs its n names while it is being
/// walked), the hard-link map (one path per inode with nlink > 1), and the warnings.
/// Nothing else grows with the tree.
///
/// Errors: any I/O error other than an entry vanishing between readdir and lstat
/// (that one is a warning), as [`TreeError::Io`] naming the path. After an error the
/// iterator is finished (it returns `None`).
pub struct WalkStream {
    walker: Walker,
    /// The top directory's entry, yielded first.
    top: Option<(Entry, PathBuf)>,
    /// An explicit stack of directory listings instead of recursion: a hostile or
    /// machine-generated tree can be thousands of levels deep, and that must not
    /// overflow the thread's stack.
    stack: Vec<Level>,
    warnings: Vec<String>,
    sockets_skipped: u64,
    /// Regular files of at most this many bytes are read by the walk itself (see
    /// [`WalkStream::next_prefetched`]); 0 reads none.
    prefetch_max: u64,
}

/// File data the walk read while it had the file open for its metadata: a small
/// regular file read whole in one go, so the encoder does not open it again by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prefetched {
    /// The bytes read: the entry's size, or fewer if the file shrank since its fstat.
    pub data: Vec<u8>,
    /// The file's size when it was read (differs from the entry's size if it changed).
    pub now: u64,
}

/// An entry, the on-disk path it comes from, and its data if the walk read it.
pub type PrefetchedItem = (Entry, PathBuf, Option<Prefetched>);

/// One directory being walked: where it is, its archive name, the names left.
struct Level {
    src: PathBuf,
    arch: Vec<u8>,
    /// The directory itself: its children are looked up relative to it, not by
    /// resolving their whole path again.
    fd: OwnedFd,
    /// Names and the type readdir gave (`Unknown` on file systems without d_type).
    names: std::vec::IntoIter<(OsString, FileType)>,
}

/// The metadata of one path as the walk uses it, from lstat, statat or fstat.
#[derive(Debug, Clone, Copy)]
struct Md {
    file_type: FileType,
    mode: u32,
    dev: u64,
    ino: u64,
    nlink: u64,
    uid: u32,
    gid: u32,
    rdev: u64,
    size: u64,
    blocks: u64,
    atime: (i64, i64),
    mtime: (i64, i64),
}

impl Md {
    // The field types of `struct stat` differ between architectures; the casts are
    // lossless on every Linux one.
    #[allow(clippy::unnecessary_cast, clippy::useless_conversion)]
    fn new(st: &Stat) -> Md {
        Md {
            file_type: FileType::from_raw_mode(st.st_mode as _),
            mode: st.st_mode as u32,
            dev: st.st_dev as u64,
            ino: st.st_ino as u64,
            nlink: st.st_nlink as u64,
            uid: st.st_uid as u32,
            gid: st.st_gid as u32,
            rdev: st.st_rdev as u64,
            size: u64::try_from(st.st_size).unwrap_or(0),
            blocks: u64::try_from(st.st_blocks).unwrap_or(0),
            atime: (st.st_atime as i64, st.st_atime_nsec as i64),
            mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
        }
    }
}

impl WalkStream {
    /// Starts a walk of `dir`, whose entries are named `top`, `top/...`: reads the
    /// top's metadata, the tree's `etc/passwd` and `etc/group`, and lists the top.
    ///
    /// Errors: `dir` not a directory (ENOTDIR naming it), or I/O errors on those reads.
    pub fn new(dir: &Path, top: &[u8], opts: &WalkOptions) -> Result<WalkStream, TreeError> {
        let err = |e: Errno| TreeError::io(dir, io::Error::from(e));
        let top_md = Md::new(&rustix::fs::lstat(dir).map_err(err)?);
        if top_md.file_type != FileType::Directory {
            // ENOTDIR: the message names the path, as every walk error does.
            return Err(err(Errno::NOTDIR));
        }
        let fd = rustix::fs::open(dir, dir_flags(), Mode::empty()).map_err(err)?;
        let mut walker = Walker {
            opts: opts.clone(),
            root_dev: top_md.dev,
            users: read_id_names(&dir.join("etc/passwd"))?,
            groups: read_id_names(&dir.join("etc/group"))?,
            links: HashMap::new(),
        };
        let top_entry = walker.entry(dir, top.to_vec(), &top_md, Some(fd.as_fd()))?;
        let names = sorted_names(fd.as_fd(), dir)?.into_iter();
        let stack = vec![Level {
            src: dir.to_path_buf(),
            arch: top.to_vec(),
            fd,
            names,
        }];
        Ok(WalkStream {
            walker,
            top: Some((top_entry, dir.to_path_buf())),
            stack,
            warnings: Vec::new(),
            sockets_skipped: 0,
            prefetch_max: 0,
        })
    }

    /// Makes [`WalkStream::next_prefetched`] read regular files of at most `max`
    /// bytes (0: none) while the walk has them open for their metadata: one open,
    /// fstat, flistxattr and read per small file instead of an lstat and an
    /// llistxattr by path here and an open, two fstats and a read by path later.
    pub fn prefetch_small_files(&mut self, max: u64) {
        self.prefetch_max = max;
    }

    /// Warnings so far (skipped sockets, mount points not descended, vanished entries),
    /// in walk order.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Takes the warnings gathered so far, leaving none.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Sockets skipped so far.
    pub fn sockets_skipped(&self) -> u64 {
        self.sockets_skipped
    }

    /// The next entry as the iterator yields it, plus the data of a small regular
    /// file if [`WalkStream::prefetch_small_files`] asked for it (`None` for other
    /// entries, empty files and files that look sparse). Same order, errors and
    /// fusing as `next`.
    pub fn next_prefetched(&mut self) -> Option<Result<PrefetchedItem, TreeError>> {
        match self.advance() {
            Ok(item) => item.map(Ok),
            Err(e) => {
                // Fused after an error: a caller that keeps iterating gets `None`, not
                // a walk resumed past a directory it could not read.
                self.top = None;
                self.stack.clear();
                Some(Err(e))
            }
        }
    }

    /// The next entry, or `None` at the end; `Err` ends the walk.
    fn advance(&mut self) -> Result<Option<PrefetchedItem>, TreeError> {
        if let Some((top, src)) = self.top.take() {
            return Ok(Some((top, src, None)));
        }
        while let Some(level) = self.stack.last_mut() {
            let Some((name, dtype)) = level.names.next() else {
                self.stack.pop();
                continue;
            };
            let src = level.src.join(&name);
            let mut arch = Vec::with_capacity(level.arch.len() + 1 + name.len());
            arch.extend_from_slice(&level.arch);
            arch.push(b'/');
            arch.extend_from_slice(name.as_bytes());
            let dir_fd = level.fd.as_fd();

            // A regular file (as readdir says) is opened first and its metadata taken
            // from the open fd; anything else, or a file replaced since readdir, is
            // looked at without opening it (opening a device or FIFO has effects).
            let opened = if dtype == FileType::RegularFile {
                match open_regular_at(dir_fd, &name) {
                    Ok(found) => found,
                    Err(Errno::NOENT) => {
                        self.warnings.push(vanished(&arch));
                        continue;
                    }
                    Err(e) => return Err(TreeError::io(&src, e.into())),
                }
            } else {
                None
            };
            let (md, file_fd) = match opened {
                Some((fd, md)) => (md, Some(fd)),
                None => match rustix::fs::statat(dir_fd, &*name, AtFlags::SYMLINK_NOFOLLOW) {
                    Ok(st) => (Md::new(&st), None),
                    Err(Errno::NOENT) => {
                        self.warnings.push(vanished(&arch));
                        continue;
                    }
                    Err(e) => return Err(TreeError::io(&src, e.into())),
                },
            };
            if md.file_type == FileType::Socket {
                self.warnings
                    .push(format!("{}: socket not archived", display_path(&arch)));
                self.sockets_skipped += 1;
                continue;
            }
            let descend = if md.file_type == FileType::Directory {
                if self.walker.opts.one_file_system && md.dev != self.walker.root_dev {
                    self.warnings.push(format!(
                        "{}: mount point of another file system, its contents are not archived",
                        display_path(&arch)
                    ));
                    false
                } else {
                    true
                }
            } else {
                false
            };
            // Between readdir/lstat and reading xattrs, link targets or hole maps, a live
            // tree can lose the entry: warn and leave it out rather than fail the export.
            let fd_ref = file_fd.as_ref().map(|f| f.as_fd());
            let entry = match self.walker.entry(&src, arch.clone(), &md, fd_ref) {
                Ok(e) => e,
                Err(e) if is_not_found(&e) => {
                    self.warnings.push(vanished(&arch));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let prefetched = match &file_fd {
                Some(fd)
                    if entry.kind == Kind::File
                        && entry.sparse.is_none()
                        && entry.size > 0
                        && entry.size <= self.prefetch_max =>
                {
                    Some(read_whole(fd.as_fd(), entry.size).map_err(|e| TreeError::io(&src, e))?)
                }
                _ => None,
            };
            if descend {
                // The directory's entry is archived even if it vanished before it could
                // be listed (its metadata was read); only its contents are lost.
                let listed = rustix::fs::openat(dir_fd, &*name, dir_flags(), Mode::empty())
                    .map_err(|e| TreeError::io(&src, e.into()))
                    .and_then(|fd| Ok((sorted_names(fd.as_fd(), &src)?, fd)));
                match listed {
                    Ok((names, fd)) => self.stack.push(Level {
                        src: src.clone(),
                        arch,
                        fd,
                        names: names.into_iter(),
                    }),
                    Err(e) if is_not_found(&e) => self.warnings.push(vanished(&arch)),
                    Err(e) => return Err(e),
                }
            }
            return Ok(Some((entry, src, prefetched)));
        }
        Ok(None)
    }
}

impl Iterator for WalkStream {
    type Item = Result<(Entry, PathBuf), TreeError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_prefetched()
            .map(|item| item.map(|(entry, src, _)| (entry, src)))
    }
}

/// Flags for opening a directory of the tree: never through a symlink.
fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Opens `name` in `dir` for reading if it is still a regular file, with its fstat:
/// `None` if it is something else now (a symlink, FIFO, device or directory swapped
/// in since readdir: the caller then lstats it). Same flags as the encoder's
/// [`open_source`](crate::tree::encode::entry::open_source): no symlink following,
/// no blocking open, no atime update where permitted.
fn open_regular_at(dir: BorrowedFd<'_>, name: &OsStr) -> Result<Option<(OwnedFd, Md)>, Errno> {
    let base =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    let opened = match rustix::fs::openat(dir, name, base | OFlags::NOATIME, Mode::empty()) {
        // O_NOATIME needs file ownership or CAP_FOWNER.
        Err(Errno::PERM) => rustix::fs::openat(dir, name, base, Mode::empty()),
        other => other,
    };
    let fd = match opened {
        Ok(fd) => fd,
        // A symlink (O_NOFOLLOW), a FIFO or device without a reader, or a file this
        // process may not read (its metadata is still archived; the encoder reports
        // the read error as before): let lstat decide.
        Err(Errno::LOOP | Errno::NXIO | Errno::ACCESS | Errno::PERM) => return Ok(None),
        Err(e) => return Err(e),
    };
    let md = Md::new(&rustix::fs::fstat(&fd)?);
    Ok((md.file_type == FileType::RegularFile).then_some((fd, md)))
}

/// Reads a whole small file of `size` bytes in one read (plus one to see growth).
/// The data is cut to `size`; `now` is the size found: fewer bytes if it shrank,
/// the fstat size if it grew.
fn read_whole(fd: BorrowedFd<'_>, size: u64) -> io::Result<Prefetched> {
    let want = usize::try_from(size).map_err(io::Error::other)?;
    let mut data = vec![0u8; want + 1];
    let mut got = 0;
    while got < data.len() {
        match rustix::io::pread(fd, &mut data[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => {
                got += n;
                // Exactly the fstat size and the growth probe byte left empty: the
                // file ends where fstat said, and asking again only to be told 0 was
                // one syscall in six per small file. A shorter read (a file that
                // shrank, or a file system giving short reads) still asks again, so
                // only a read of 0 ever ends a file early.
                if got == want {
                    break;
                }
            }
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let now = if got > want {
        Md::new(&rustix::fs::fstat(fd)?).size
    } else {
        got as u64
    };
    data.truncate(got.min(want));
    Ok(Prefetched { data, now })
}

fn vanished(arch: &[u8]) -> String {
    format!(
        "{}: vanished during the walk, not archived",
        display_path(arch)
    )
}

fn is_not_found(e: &TreeError) -> bool {
    matches!(e, TreeError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
}

struct Walker {
    opts: WalkOptions,
    root_dev: u64,
    users: HashMap<u32, Vec<u8>>,
    groups: HashMap<u32, Vec<u8>>,
    /// (dev, ino) → archive path of the first entry of a multiply-linked inode, and
    /// how many of its other links are still to come. An inode is forgotten once all
    /// its links were seen, so the map holds only inodes with links still ahead.
    links: HashMap<(u64, u64), (Vec<u8>, u64)>,
}

impl Walker {
    /// The first path of an inode already archived, counting this link as seen.
    fn first_link(&mut self, dev: u64, ino: u64) -> Option<Vec<u8>> {
        let slot = self.links.get_mut(&(dev, ino))?;
        slot.1 = slot.1.saturating_sub(1);
        if slot.1 == 0 {
            // The last link: nothing later can need the path, so it is moved out.
            return self.links.remove(&(dev, ino)).map(|(path, _)| path);
        }
        Some(slot.0.clone())
    }

    /// Builds the entry for one path from its metadata; `fd`, if given, is the path
    /// opened (xattrs and holes are then read through it, not by path again).
    fn entry(
        &mut self,
        src: &Path,
        arch: Vec<u8>,
        md: &Md,
        fd: Option<BorrowedFd<'_>>,
    ) -> Result<Entry, TreeError> {
        let ft = md.file_type;
        let multiply_linked = ft != FileType::Directory && md.nlink > 1;
        let hard_link = if multiply_linked {
            self.first_link(md.dev, md.ino)
        } else {
            None
        };
        let is_first_link = multiply_linked && hard_link.is_none();
        let kind = if let Some(first) = hard_link {
            Kind::HardLink(first)
        } else {
            match ft {
                FileType::Directory => Kind::Dir,
                FileType::RegularFile => Kind::File,
                FileType::Symlink => {
                    let target = fs::read_link(src).map_err(|e| TreeError::io(src, e))?;
                    Kind::Symlink(target.into_os_string().into_vec())
                }
                FileType::CharacterDevice => Kind::CharDevice {
                    major: rustix::fs::major(md.rdev),
                    minor: rustix::fs::minor(md.rdev),
                },
                FileType::BlockDevice => Kind::BlockDevice {
                    major: rustix::fs::major(md.rdev),
                    minor: rustix::fs::minor(md.rdev),
                },
                FileType::Fifo => Kind::Fifo,
                _ => {
                    return Err(TreeError::Unsupported {
                        entry: display_path(&arch),
                        reason: "unknown file type".to_string(),
                    })
                }
            }
        };

        let mut e = Entry::new(arch, kind, md.mode & 0o7777);
        e.uid = md.uid;
        e.gid = md.gid;
        e.uname = self.users.get(&e.uid).cloned();
        e.gname = self.groups.get(&e.gid).cloned();
        e.mtime = timestamp(md.mtime.0, md.mtime.1);
        if self.opts.atime {
            e.atime = Some(timestamp(md.atime.0, md.atime.1));
        }
        if e.kind == Kind::File {
            e.size = md.size;
            // Cheap pre-check before opening the file: a file with a hole has fewer
            // allocated blocks than its length. (Inline or tail-packed data can look
            // sparse too; the SEEK_DATA probe then finds no hole and we keep it dense.)
            if md.blocks.saturating_mul(STAT_BLOCK_BYTES) < e.size {
                e.sparse = match fd {
                    Some(fd) => data_segments(fd, src, e.size)?,
                    None => data_segments_of(src, e.size)?,
                };
            }
        }
        if !matches!(e.kind, Kind::HardLink(_)) {
            e.xattrs = match fd {
                Some(fd) => read_xattrs(XattrSource::Fd(fd), src)?,
                None => read_xattrs(XattrSource::Path(src), src)?,
            };
        }
        // Registered only once the entry is complete: a first path that vanished
        // mid-way must not become the target of later hard links.
        if is_first_link {
            self.links
                .insert((md.dev, md.ino), (e.path.clone(), md.nlink - 1));
        }
        Ok(e)
    }
}

fn timestamp(secs: i64, nsec: i64) -> Timestamp {
    Timestamp {
        secs,
        // The kernel guarantees 0..1e9; clamp rather than trust blindly.
        nanos: nsec.clamp(0, 999_999_999) as u32,
    }
}

/// Directory entry names of the open directory `dir` (at `path`, for errors) with
/// the type readdir reports, sorted by raw bytes (deterministic archive order).
fn sorted_names(dir: BorrowedFd<'_>, path: &Path) -> Result<Vec<(OsString, FileType)>, TreeError> {
    let err = |e: Errno| TreeError::io(path, io::Error::from(e));
    let mut rd = rustix::fs::Dir::read_from(dir).map_err(err)?;
    let mut names = Vec::new();
    while let Some(de) = rd.read() {
        let de = de.map_err(err)?;
        let name = de.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        names.push((OsStr::from_bytes(name).to_os_string(), de.file_type()));
    }
    names.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(names)
}

/// Parses an `etc/passwd` or `etc/group` file of the tree: `name:x:id:...` per line.
/// The first name for an id wins (as getpwuid does). Missing or non-regular files
/// (a symlink could point at the host's file) give an empty map.
fn read_id_names(path: &Path) -> Result<HashMap<u32, Vec<u8>>, TreeError> {
    let mut map = HashMap::new();
    match fs::symlink_metadata(path) {
        Ok(md) if md.is_file() => {}
        Ok(_) => return Ok(map),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(map),
        Err(e) => return Err(TreeError::io(path, e)),
    }
    let text = fs::read(path).map_err(|e| TreeError::io(path, e))?;
    for line in text.split(|&b| b == b'\n') {
        let mut fields = line.split(|&b| b == b':');
        let (Some(name), Some(_), Some(id)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if name.is_empty() || name.starts_with(b"#") {
            continue;
        }
        let Some(id) = std::str::from_utf8(id)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        map.entry(id).or_insert_with(|| name.to_vec());
    }
    Ok(map)
}

/// Name → raw value pairs, as stored in [`Entry::xattrs`].
type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// Where xattrs are read from: an open fd, or a path never followed if a symlink.
#[derive(Clone, Copy)]
enum XattrSource<'a> {
    Fd(BorrowedFd<'a>),
    Path(&'a Path),
}

impl XattrSource<'_> {
    fn list(self, buf: &mut [u8]) -> Result<usize, Errno> {
        match self {
            XattrSource::Fd(fd) => rustix::fs::flistxattr(fd, buf),
            XattrSource::Path(p) => rustix::fs::llistxattr(p, buf),
        }
    }

    fn list_len(self) -> Result<usize, Errno> {
        match self {
            XattrSource::Fd(fd) => rustix::fs::flistxattr_query(fd),
            XattrSource::Path(p) => rustix::fs::llistxattr_query(p),
        }
    }

    fn get(self, name: &OsStr, buf: &mut [u8]) -> Result<usize, Errno> {
        match self {
            XattrSource::Fd(fd) => rustix::fs::fgetxattr(fd, name, buf),
            XattrSource::Path(p) => rustix::fs::lgetxattr(p, name, buf),
        }
    }

    fn get_len(self, name: &OsStr) -> Result<usize, Errno> {
        match self {
            XattrSource::Fd(fd) => rustix::fs::fgetxattr_query(fd, name),
            XattrSource::Path(p) => rustix::fs::lgetxattr_query(p, name),
        }
    }
}

/// All xattrs of `from` (a path's own, never its symlink target's; `path` names it in
/// errors), sorted by name so two copies of a tree encode identically whatever order
/// the file system lists them in. File systems without xattr support give an empty
/// list; an xattr removed between list and get is skipped.
fn read_xattrs(from: XattrSource<'_>, path: &Path) -> Result<Xattrs, TreeError> {
    let err = |e: Errno| TreeError::io(path, io::Error::from(e));
    // Most files have no xattrs: a small stack buffer answers those without a heap
    // allocation.
    let mut small = [0u8; 256];
    let mut list;
    let (list, len) = match from.list(&mut small) {
        Ok(0) => return Ok(Vec::new()),
        Ok(n) => (&small[..], n),
        Err(Errno::NOTSUP) => return Ok(Vec::new()),
        Err(Errno::RANGE) => {
            list = vec![0u8; XATTR_BUF_BYTES];
            let n = loop {
                match from.list(&mut list[..]) {
                    Ok(n) => break n,
                    Err(Errno::RANGE) => {
                        let need = from.list_len().map_err(err)?;
                        list.resize(need.max(list.len() * 2), 0);
                    }
                    Err(e) => return Err(err(e)),
                }
            };
            (&list[..], n)
        }
        Err(e) => return Err(err(e)),
    };
    let mut names: Vec<&[u8]> = list[..len]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .collect();
    names.sort_unstable();
    let mut out = Vec::with_capacity(names.len());
    let mut value = vec![0u8; XATTR_BUF_BYTES];
    for name in names {
        let cname = OsStr::from_bytes(name);
        let n = loop {
            match from.get(cname, &mut value[..]) {
                Ok(n) => break Some(n),
                Err(Errno::RANGE) => {
                    let need = from.get_len(cname).map_err(err)?;
                    value.resize(need.max(value.len() * 2), 0);
                }
                Err(Errno::NODATA) => break None,
                Err(e) => return Err(err(e)),
            }
        };
        if let Some(n) = n {
            out.push((name.to_vec(), value[..n].to_vec()));
        }
    }
    Ok(out)
}

/// [`data_segments`] of a file given by path, opened without following symlinks.
fn data_segments_of(path: &Path, size: u64) -> Result<Option<Vec<(u64, u64)>>, TreeError> {
    let fd = match rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        // Replaced by a symlink since the lstat: treat as dense; the writer warns.
        Err(Errno::LOOP) => return Ok(None),
        Err(e) => return Err(TreeError::io(path, io::Error::from(e))),
    };
    data_segments(fd.as_fd(), path, size)
}

/// The data segments of an open regular file via SEEK_DATA/SEEK_HOLE, up to `size`
/// (the lstat size; later growth is the writer's concern). `None` if the file has no
/// hole or the file system cannot tell (EINVAL) — then it is archived densely.
fn data_segments(
    fd: BorrowedFd<'_>,
    path: &Path,
    size: u64,
) -> Result<Option<Vec<(u64, u64)>>, TreeError> {
    let err = |e: Errno| TreeError::io(path, io::Error::from(e));
    let mut segments = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let data = match rustix::fs::seek(fd, SeekFrom::Data(pos)) {
            Ok(d) => d,
            Err(Errno::NXIO) => break, // only a hole remains up to EOF
            Err(Errno::INVAL) => return Ok(None),
            Err(e) => return Err(err(e)),
        };
        if data >= size {
            break;
        }
        let hole = rustix::fs::seek(fd, SeekFrom::Hole(data))
            .map_err(err)?
            .min(size);
        segments.push((data, hole - data));
        pos = hole;
    }
    if segments.len() == 1 && segments[0] == (0, size) {
        return Ok(None);
    }
    Ok(Some(segments))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn order_is_depth_first_with_sorted_siblings() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("rootimg");
        for d in ["a/b", "a-c", "z"] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(root.join("a/b/f"), b"x").unwrap();
        fs::write(root.join("a0"), b"").unwrap();
        fs::write(root.join("B"), b"").unwrap();
        let w = walk(&root, b"rootimg", &WalkOptions::default()).unwrap();
        let names: Vec<String> = w
            .entries
            .iter()
            .map(|(e, _)| String::from_utf8(e.path.clone()).unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "rootimg",
                "rootimg/B",
                "rootimg/a",
                "rootimg/a/b",
                "rootimg/a/b/f",
                "rootimg/a-c",
                "rootimg/a0",
                "rootimg/z"
            ]
        );
    }

    #[test]
    fn hard_links_symlinks_and_owner_names_from_tree() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("r");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(
            root.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nimguser:x:4321:99::/:/bin/sh\n",
        )
        .unwrap();
        fs::write(root.join("etc/group"), "root:x:0:\nimggrp:x:99:\n").unwrap();
        fs::write(root.join("f"), b"data").unwrap();
        fs::hard_link(root.join("f"), root.join("etc/g")).unwrap();
        symlink("/nowhere\nat/all", root.join("s")).unwrap();
        std::os::unix::fs::lchown(root.join("s"), Some(4321), Some(99)).unwrap();
        let w = walk(&root, b"r", &WalkOptions::default()).unwrap();
        let get = |p: &str| {
            w.entries
                .iter()
                .find(|(e, _)| e.path == p.as_bytes())
                .map(|(e, _)| e.clone())
                .unwrap()
        };
        // "r/etc/g" sorts before "r/f", so it is the first path of the inode.
        assert_eq!(get("r/etc/g").kind, Kind::File);
        assert_eq!(get("r/f").kind, Kind::HardLink(b"r/etc/g".to_vec()));
        let s = get("r/s");
        assert_eq!(s.kind, Kind::Symlink(b"/nowhere\nat/all".to_vec()));
        assert_eq!(s.uname.as_deref(), Some(&b"imguser"[..]));
        assert_eq!(s.gname.as_deref(), Some(&b"imggrp"[..]));
        assert_eq!(get("r").uname.as_deref(), Some(&b"root"[..]));
    }

    #[test]
    fn the_stream_forgets_inodes_whose_links_were_all_seen() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("r");
        fs::create_dir_all(root.join("d")).unwrap();
        fs::write(root.join("a"), b"three links").unwrap();
        fs::hard_link(root.join("a"), root.join("b")).unwrap();
        fs::hard_link(root.join("a"), root.join("d/c")).unwrap();
        fs::write(root.join("d/e"), b"two links").unwrap();
        fs::hard_link(root.join("d/e"), root.join("z")).unwrap();
        let mut s = WalkStream::new(&root, b"r", &WalkOptions::default()).unwrap();
        let mut kinds = Vec::new();
        while let Some(item) = s.next() {
            let (e, _) = item.unwrap();
            kinds.push((String::from_utf8(e.path).unwrap(), e.kind));
            if kinds.len() == 3 {
                // After r, r/a, r/b: one link of a's inode is still ahead.
                assert_eq!(s.walker.links.len(), 1);
            }
        }
        assert!(s.walker.links.is_empty(), "{:?}", s.walker.links);
        let link = |t: &str| Kind::HardLink(t.as_bytes().to_vec());
        assert_eq!(
            kinds,
            [
                ("r".into(), Kind::Dir),
                ("r/a".into(), Kind::File),
                ("r/b".into(), link("r/a")),
                ("r/d".into(), Kind::Dir),
                ("r/d/c".into(), link("r/a")),
                ("r/d/e".into(), Kind::File),
                ("r/z".into(), link("r/d/e")),
            ]
        );
        assert!(s.next().is_none(), "fused at the end");
    }

    #[test]
    fn sparse_detection() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("r");
        fs::create_dir(&root).unwrap();
        let f = fs::File::create(root.join("holey")).unwrap();
        f.set_len(8 << 20).unwrap();
        std::os::unix::fs::FileExt::write_at(&f, b"x", 1 << 20).unwrap();
        drop(f);
        fs::File::create(root.join("allhole"))
            .unwrap()
            .set_len(1 << 20)
            .unwrap();
        fs::write(root.join("dense"), vec![1u8; 100_000]).unwrap();
        let w = walk(&root, b"r", &WalkOptions::default()).unwrap();
        let get = |p: &str| {
            w.entries
                .iter()
                .find(|(e, _)| e.path == p.as_bytes())
                .map(|(e, _)| e.clone())
                .unwrap()
        };
        let holey = get("r/holey").sparse.unwrap();
        assert_eq!(holey.len(), 1);
        assert!(holey[0].0 <= 1 << 20 && holey[0].0 + holey[0].1 > 1 << 20);
        assert_eq!(get("r/allhole").sparse, Some(vec![]));
        assert_eq!(get("r/dense").sparse, None);
    }

    #[test]
    fn small_regular_files_come_with_their_data_when_asked() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("r");
        fs::create_dir(&root).unwrap();
        fs::write(root.join("big"), vec![7u8; 5000]).unwrap();
        fs::write(root.join("empty"), b"").unwrap();
        fs::write(root.join("small"), b"hello").unwrap();
        symlink("small", root.join("sym")).unwrap();
        let mut s = WalkStream::new(&root, b"r", &WalkOptions::default()).unwrap();
        s.prefetch_small_files(4096);
        let mut got = Vec::new();
        while let Some(item) = s.next_prefetched() {
            let (e, _, data) = item.unwrap();
            got.push((String::from_utf8(e.path).unwrap(), data));
        }
        let small = Prefetched {
            data: b"hello".to_vec(),
            now: 5,
        };
        assert_eq!(
            got,
            [
                ("r".to_string(), None),
                ("r/big".to_string(), None),
                ("r/empty".to_string(), None),
                ("r/small".to_string(), Some(small)),
                ("r/sym".to_string(), None),
            ]
        );
        // Without asking, nothing is read: the plain iterator is unchanged.
        let mut s = WalkStream::new(&root, b"r", &WalkOptions::default()).unwrap();
        assert!(std::iter::from_fn(|| s.next_prefetched()).all(|i| i.unwrap().2.is_none()));
    }

    #[test]
    fn a_file_that_grew_or_shrank_is_read_to_its_size_and_says_so() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("f");
        fs::write(&f, b"0123456789").unwrap();
        let fd = fs::File::open(&f).unwrap();
        let grew = read_whole(fd.as_fd(), 4).unwrap();
        assert_eq!((grew.data, grew.now), (b"0123".to_vec(), 10));
        let shrank = read_whole(fd.as_fd(), 20).unwrap();
        assert_eq!((shrank.data, shrank.now), (b"0123456789".to_vec(), 10));
        let same = read_whole(fd.as_fd(), 10).unwrap();
        assert_eq!((same.data.len(), same.now), (10, 10));
    }

    #[test]
    fn top_must_be_a_directory() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("file");
        fs::write(&f, b"").unwrap();
        let err = walk(&f, b"rootimg", &WalkOptions::default()).unwrap_err();
        assert!(err.to_string().contains("file"), "{err}");
    }
}

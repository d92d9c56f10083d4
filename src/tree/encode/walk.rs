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
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, SeekFrom};
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
/// Cost: one lstat and one llistxattr per entry, plus one lgetxattr per xattr, a
/// readlink per symlink and an open + a few lseeks per file that looks sparse; one
/// readdir + sort per directory. Memory: the sorted name lists of the directories on
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
}

/// One directory being walked: where it is, its archive name, the names left.
struct Level {
    src: PathBuf,
    arch: Vec<u8>,
    names: std::vec::IntoIter<OsString>,
}

impl WalkStream {
    /// Starts a walk of `dir`, whose entries are named `top`, `top/...`: reads the
    /// top's metadata, the tree's `etc/passwd` and `etc/group`, and lists the top.
    ///
    /// Errors: `dir` not a directory (ENOTDIR naming it), or I/O errors on those reads.
    pub fn new(dir: &Path, top: &[u8], opts: &WalkOptions) -> Result<WalkStream, TreeError> {
        let top_md = fs::symlink_metadata(dir).map_err(|e| TreeError::io(dir, e))?;
        if !top_md.is_dir() {
            // ENOTDIR: the message names the path, as every walk error does.
            return Err(TreeError::io(dir, io::Error::from(Errno::NOTDIR)));
        }
        let mut walker = Walker {
            opts: opts.clone(),
            root_dev: top_md.dev(),
            users: read_id_names(&dir.join("etc/passwd"))?,
            groups: read_id_names(&dir.join("etc/group"))?,
            links: HashMap::new(),
        };
        let top_entry = walker.entry(dir, top.to_vec(), &top_md)?;
        let stack = vec![Level {
            src: dir.to_path_buf(),
            arch: top.to_vec(),
            names: sorted_names(dir)?.into_iter(),
        }];
        Ok(WalkStream {
            walker,
            top: Some((top_entry, dir.to_path_buf())),
            stack,
            warnings: Vec::new(),
            sockets_skipped: 0,
        })
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

    /// The next entry, or `None` at the end; `Err` ends the walk.
    fn advance(&mut self) -> Result<Option<(Entry, PathBuf)>, TreeError> {
        if let Some(top) = self.top.take() {
            return Ok(Some(top));
        }
        while let Some(level) = self.stack.last_mut() {
            let Some(name) = level.names.next() else {
                self.stack.pop();
                continue;
            };
            let src = level.src.join(&name);
            let mut arch = Vec::with_capacity(level.arch.len() + 1 + name.len());
            arch.extend_from_slice(&level.arch);
            arch.push(b'/');
            arch.extend_from_slice(name.as_bytes());

            let md = match fs::symlink_metadata(&src) {
                Ok(md) => md,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    self.warnings.push(vanished(&arch));
                    continue;
                }
                Err(e) => return Err(TreeError::io(&src, e)),
            };
            if md.file_type().is_socket() {
                self.warnings
                    .push(format!("{}: socket not archived", display_path(&arch)));
                self.sockets_skipped += 1;
                continue;
            }
            let descend = if md.is_dir() {
                if self.walker.opts.one_file_system && md.dev() != self.walker.root_dev {
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
            let entry = match self.walker.entry(&src, arch.clone(), &md) {
                Ok(e) => e,
                Err(e) if is_not_found(&e) => {
                    self.warnings.push(vanished(&arch));
                    continue;
                }
                Err(e) => return Err(e),
            };
            if descend {
                // The directory's entry is archived even if it vanished before it could
                // be listed (its metadata was read); only its contents are lost.
                match sorted_names(&src) {
                    Ok(names) => self.stack.push(Level {
                        src: src.clone(),
                        arch,
                        names: names.into_iter(),
                    }),
                    Err(e) if is_not_found(&e) => self.warnings.push(vanished(&arch)),
                    Err(e) => return Err(e),
                }
            }
            return Ok(Some((entry, src)));
        }
        Ok(None)
    }
}

impl Iterator for WalkStream {
    type Item = Result<(Entry, PathBuf), TreeError>;

    fn next(&mut self) -> Option<Self::Item> {
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

    /// Builds the entry for one path from its lstat result.
    fn entry(&mut self, src: &Path, arch: Vec<u8>, md: &Metadata) -> Result<Entry, TreeError> {
        let ft = md.file_type();
        let multiply_linked = !ft.is_dir() && md.nlink() > 1;
        let hard_link = if multiply_linked {
            self.first_link(md.dev(), md.ino())
        } else {
            None
        };
        let is_first_link = multiply_linked && hard_link.is_none();
        let kind = if let Some(first) = hard_link {
            Kind::HardLink(first)
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File
        } else if ft.is_symlink() {
            let target = fs::read_link(src).map_err(|e| TreeError::io(src, e))?;
            Kind::Symlink(target.into_os_string().into_vec())
        } else if ft.is_char_device() {
            let dev = md.rdev();
            Kind::CharDevice {
                major: rustix::fs::major(dev),
                minor: rustix::fs::minor(dev),
            }
        } else if ft.is_block_device() {
            let dev = md.rdev();
            Kind::BlockDevice {
                major: rustix::fs::major(dev),
                minor: rustix::fs::minor(dev),
            }
        } else if ft.is_fifo() {
            Kind::Fifo
        } else {
            return Err(TreeError::Unsupported {
                entry: display_path(&arch),
                reason: "unknown file type".to_string(),
            });
        };

        let mut e = Entry::new(arch, kind, md.mode() & 0o7777);
        e.uid = md.uid();
        e.gid = md.gid();
        e.uname = self.users.get(&e.uid).cloned();
        e.gname = self.groups.get(&e.gid).cloned();
        e.mtime = timestamp(md.mtime(), md.mtime_nsec());
        if self.opts.atime {
            e.atime = Some(timestamp(md.atime(), md.atime_nsec()));
        }
        if e.kind == Kind::File {
            e.size = md.len();
            // Cheap pre-check before opening the file: a file with a hole has fewer
            // allocated blocks than its length. (Inline or tail-packed data can look
            // sparse too; the SEEK_DATA probe then finds no hole and we keep it dense.)
            if md.blocks().saturating_mul(STAT_BLOCK_BYTES) < e.size {
                e.sparse = data_segments(src, e.size)?;
            }
        }
        if !matches!(e.kind, Kind::HardLink(_)) {
            e.xattrs = read_xattrs(src)?;
        }
        // Registered only once the entry is complete: a first path that vanished
        // mid-way must not become the target of later hard links.
        if is_first_link {
            self.links
                .insert((md.dev(), md.ino()), (e.path.clone(), md.nlink() - 1));
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

/// Directory entry names of `dir`, sorted by raw bytes (deterministic archive order).
fn sorted_names(dir: &Path) -> Result<Vec<OsString>, TreeError> {
    let rd = fs::read_dir(dir).map_err(|e| TreeError::io(dir, e))?;
    let mut names = Vec::new();
    for de in rd {
        names.push(de.map_err(|e| TreeError::io(dir, e))?.file_name());
    }
    names.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
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

/// All xattrs of `path` itself (never its symlink target), sorted by name so two
/// copies of a tree encode identically whatever order the file system lists them in.
/// File systems without xattr support give an empty list; an xattr removed between
/// list and get is skipped.
fn read_xattrs(path: &Path) -> Result<Xattrs, TreeError> {
    let err = |e: Errno| TreeError::io(path, io::Error::from(e));
    let mut list = vec![0u8; XATTR_BUF_BYTES];
    let len = loop {
        match rustix::fs::llistxattr(path, &mut list[..]) {
            Ok(n) => break n,
            Err(Errno::RANGE) => {
                let need = rustix::fs::llistxattr_query(path).map_err(err)?;
                list.resize(need.max(list.len() * 2), 0);
            }
            Err(Errno::NOTSUP) => return Ok(Vec::new()),
            Err(e) => return Err(err(e)),
        }
    };
    if len == 0 {
        return Ok(Vec::new());
    }
    let mut names: Vec<&[u8]> = list[..len]
        .split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .collect();
    names.sort_unstable();
    let mut out = Vec::with_capacity(names.len());
    let mut value = vec![0u8; XATTR_BUF_BYTES];
    for name in names {
        let cname = std::ffi::OsStr::from_bytes(name);
        let n = loop {
            match rustix::fs::lgetxattr(path, cname, &mut value[..]) {
                Ok(n) => break Some(n),
                Err(Errno::RANGE) => {
                    let need = rustix::fs::lgetxattr_query(path, cname).map_err(err)?;
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

/// The data segments of a regular file via SEEK_DATA/SEEK_HOLE, up to `size` (the
/// lstat size; later growth is the writer's concern). `None` if the file has no hole
/// or the file system cannot tell (EINVAL) — then it is archived densely.
fn data_segments(path: &Path, size: u64) -> Result<Option<Vec<(u64, u64)>>, TreeError> {
    let err = |e: Errno| TreeError::io(path, io::Error::from(e));
    let fd = match rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        // Replaced by a symlink since the lstat: treat as dense; the writer warns.
        Err(Errno::LOOP) => return Ok(None),
        Err(e) => return Err(err(e)),
    };
    let mut segments = Vec::new();
    let mut pos = 0u64;
    while pos < size {
        let data = match rustix::fs::seek(&fd, SeekFrom::Data(pos)) {
            Ok(d) => d,
            Err(Errno::NXIO) => break, // only a hole remains up to EOF
            Err(Errno::INVAL) => return Ok(None),
            Err(e) => return Err(err(e)),
        };
        if data >= size {
            break;
        }
        let hole = rustix::fs::seek(&fd, SeekFrom::Hole(data))
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
    fn top_must_be_a_directory() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("file");
        fs::write(&f, b"").unwrap();
        let err = walk(&f, b"rootimg", &WalkOptions::default()).unwrap_err();
        assert!(err.to_string().contains("file"), "{err}");
    }
}

//! The `*at` helpers of the restore: every file system call made relative to an open
//! directory fd and never following the final component, plus the metadata order
//! (owner → mode → xattrs → times) both the dispatcher and the file writers apply.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use rustix::fs::{
    self as rfs, AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;

use crate::tree::entry::{Entry, Kind, Timestamp};
use crate::tree::error::{display_path, TreeError};
use crate::tree::format::tar_decode::EntryReader;

pub(super) fn timespec(t: Timestamp) -> Timespec {
    Timespec {
        tv_sec: t.secs,
        tv_nsec: t.nanos.min(999_999_999).into(),
    }
}

pub(super) fn io_err(entry: &[u8], op: &str, e: impl Into<io::Error>) -> TreeError {
    let e: io::Error = e.into();
    TreeError::io(
        PathBuf::from(OsStr::from_bytes(entry)),
        io::Error::new(e.kind(), format!("{op}: {e}")),
    )
}

pub(super) fn parent_error(entry: &[u8], parents: &[&[u8]], e: Errno) -> TreeError {
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

pub(super) fn open_dir(base: BorrowedFd<'_>, name: &[u8]) -> Result<OwnedFd, Errno> {
    rfs::openat(
        base,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Opens `comps` below `base` one no-follow step at a time.
pub(super) fn open_walk(
    base: BorrowedFd<'_>,
    comps: &[&[u8]],
    entry: &[u8],
) -> Result<OwnedFd, TreeError> {
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

pub(super) fn mkdir_at(base: BorrowedFd<'_>, name: &[u8], mode: u32) -> Result<(), Errno> {
    rfs::mkdirat(base, name, Mode::from_raw_mode(mode))
}

/// Removes whatever an earlier entry put under `name` (an empty directory, or any
/// non-directory), without following it.
pub(super) fn remove(pfd: BorrowedFd<'_>, name: &[u8], entry: &[u8]) -> Result<(), TreeError> {
    let st = match rfs::statat(pfd, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(io_err(entry, "stat", e)),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        rfs::unlinkat(pfd, name, AtFlags::REMOVEDIR).map_err(|e| {
            if e == Errno::NOTEMPTY {
                TreeError::UnsupportedInput {
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
pub(super) fn retry_exist(
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

pub(super) fn create_file(
    pfd: BorrowedFd<'_>,
    name: &[u8],
    entry: &[u8],
    mode: Mode,
) -> Result<File, TreeError> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let open = || rfs::openat(pfd, name, flags, mode);
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
pub(super) fn write_data<E: EntryReader>(
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
pub(super) fn ordered_xattrs(e: &Entry) -> impl Iterator<Item = &(Vec<u8>, Vec<u8>)> {
    let is_acl = |n: &[u8]| n.starts_with(b"system.posix_acl_");
    e.xattrs
        .iter()
        .filter(move |(n, _)| !is_acl(n))
        .chain(e.xattrs.iter().filter(move |(n, _)| is_acl(n)))
}

/// A failed xattr is fatal unless the filesystem cannot hold it at all, or it is an
/// SELinux label the host's policy rejects: those become warnings, as with GNU tar.
pub(super) fn xattr_result(
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

/// The one thing the restore can take for granted about a file it creates: with
/// `open(O_CREAT, mode)`, a new file's owner is the process's (effective) uid and gid
/// and its mode is `mode & !umask`, unless its directory has the setgid bit or a
/// default ACL. [`CreateIds::exact`] says when creating with the entry's mode already
/// gives the archived owner and mode, so the `fchown` and `fchmod` after the data
/// (two of the six calls per small file) can be left out.
#[derive(Debug, Clone, Copy)]
pub(super) struct CreateIds {
    uid: u32,
    gid: u32,
    umask: u32,
}

impl CreateIds {
    /// For a restore into `dest` whose every directory below is created by the
    /// restore (`dest_empty`): those inherit neither a setgid bit nor a default ACL
    /// if `dest` has none. `None` when that cannot be known (the umask is read from
    /// /proc, as `umask(2)` cannot read it without setting it for every thread).
    pub(super) fn probe(dest: BorrowedFd<'_>, dest_empty: bool) -> Option<CreateIds> {
        if !dest_empty {
            return None;
        }
        let st = rfs::fstat(dest).ok()?;
        if st.st_mode & 0o2000 != 0 {
            return None;
        }
        match rfs::fgetxattr(dest, "system.posix_acl_default", &mut [0u8; 0][..]) {
            Err(Errno::NODATA | Errno::OPNOTSUPP) => {}
            _ => return None,
        }
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let umask = status
            .lines()
            .find_map(|l| l.strip_prefix("Umask:"))
            .and_then(|v| u32::from_str_radix(v.trim(), 8).ok())?;
        Some(CreateIds {
            uid: rustix::process::geteuid().as_raw(),
            gid: rustix::process::getegid().as_raw(),
            umask,
        })
    }

    /// Whether a file created with mode `mode & 0o777` ends up with exactly the
    /// entry's owner and mode. Never for setuid, setgid or sticky bits: those are set
    /// by the fchmod after the fchown, which would clear them (the order rule).
    pub(super) fn exact(&self, uid: Uid, gid: Gid, mode: u32) -> bool {
        uid.as_raw() == self.uid
            && gid.as_raw() == self.gid
            && mode & 0o7000 == 0
            && mode & self.umask & 0o777 == 0
    }
}

/// The mode to create a regular file with: the entry's own when `exact` (see
/// [`CreateIds::exact`]), else 0600 until its owner and mode are applied.
pub(super) fn create_mode(e: &Entry, exact: bool) -> Mode {
    Mode::from_raw_mode(if exact { e.mode & 0o777 } else { 0o600 })
}

/// Owner, mode, xattrs and times through an open fd (regular files, directories).
pub(super) fn meta_fd(
    fd: BorrowedFd<'_>,
    e: &Entry,
    uid: Uid,
    gid: Gid,
    times: &Timestamps,
    warnings: &mut Vec<String>,
) -> Result<(), TreeError> {
    meta_fd_created(fd, e, uid, gid, times, false, warnings)
}

/// [`meta_fd`] for a file just created with [`create_mode`]: when `exact`, owner and
/// mode are already right and only xattrs and times are applied.
pub(super) fn meta_fd_created(
    fd: BorrowedFd<'_>,
    e: &Entry,
    uid: Uid,
    gid: Gid,
    times: &Timestamps,
    exact: bool,
    warnings: &mut Vec<String>,
) -> Result<(), TreeError> {
    if !exact {
        rfs::fchown(fd, Some(uid), Some(gid)).map_err(|er| io_err(&e.path, "chown", er))?;
        rfs::fchmod(fd, Mode::from_raw_mode(e.mode & 0o7777))
            .map_err(|er| io_err(&e.path, "chmod", er))?;
    }
    for (name, value) in ordered_xattrs(e) {
        let r = rfs::fsetxattr(fd, name.as_slice(), value, XattrFlags::empty());
        xattr_result(r, e, name, warnings)?;
    }
    rfs::futimens(fd, times).map_err(|er| io_err(&e.path, "utimens", er))
}

/// Owner, mode, xattrs and times by name in the parent directory, never following
/// the final component (symlinks, devices, FIFOs).
pub(super) fn meta_at(
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

/// Creates directory `name` (mode 0700 until its metadata is applied at the end); an
/// existing directory is kept, anything else under the name is replaced.
pub(super) fn make_dir(pfd: BorrowedFd<'_>, name: &[u8], path: &[u8]) -> Result<(), TreeError> {
    match mkdir_at(pfd, name, 0o700) {
        Ok(()) => Ok(()),
        Err(Errno::EXIST) => {
            let st = rfs::statat(pfd, name, AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|er| io_err(path, "stat", er))?;
            if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                remove(pfd, name, path)?;
                mkdir_at(pfd, name, 0o700).map_err(|er| io_err(path, "mkdir", er))?;
            }
            Ok(())
        }
        Err(er) => Err(io_err(path, "mkdir", er)),
    }
}

/// Creates a symlink, device node or FIFO named `name` (replacing what an earlier
/// entry left there) and applies its metadata by name.
pub(super) fn make_special(
    pfd: BorrowedFd<'_>,
    name: &[u8],
    e: &Entry,
    (uid, gid): (Uid, Gid),
    times: &Timestamps,
    warnings: &mut Vec<String>,
) -> Result<(), TreeError> {
    let path = &e.path;
    match &e.kind {
        Kind::Symlink(target) => {
            if target.contains(&0) || target.is_empty() {
                return Err(TreeError::Format {
                    entry: display_path(path),
                    reason: "empty symlink target or NUL byte in it".into(),
                });
            }
            retry_exist(pfd, name, path, "symlink", || {
                rfs::symlinkat(target.as_slice(), pfd, name)
            })?;
        }
        Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } => {
            let ft = if matches!(e.kind, Kind::CharDevice { .. }) {
                FileType::CharacterDevice
            } else {
                FileType::BlockDevice
            };
            let dev = rfs::makedev(*major, *minor);
            retry_exist(pfd, name, path, "mknod", || {
                rfs::mknodat(pfd, name, ft, Mode::from_raw_mode(0o600), dev)
            })?;
        }
        Kind::Fifo => {
            retry_exist(pfd, name, path, "mkfifo", || {
                rfs::mknodat(pfd, name, FileType::Fifo, Mode::from_raw_mode(0o600), 0)
            })?;
        }
        Kind::File | Kind::Dir | Kind::HardLink(_) => return Ok(()),
    }
    meta_at(pfd, name, e, uid, gid, times, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_modes_the_umask_keeps_and_the_process_owner_skip_chown_and_chmod() {
        let ids = CreateIds {
            uid: 0,
            gid: 0,
            umask: 0o022,
        };
        let (root, rootg) = (Uid::from_raw(0), Gid::from_raw(0));
        assert!(ids.exact(root, rootg, 0o644));
        assert!(ids.exact(root, rootg, 0o755));
        assert!(ids.exact(root, rootg, 0o400));
        // The umask would clear group/other write bits: fchmod needed.
        assert!(!ids.exact(root, rootg, 0o664));
        // setuid, setgid, sticky: set by fchmod after fchown, always.
        assert!(!ids.exact(root, rootg, 0o4755));
        assert!(!ids.exact(root, rootg, 0o2755));
        assert!(!ids.exact(root, rootg, 0o1755));
        // Another owner or group: fchown needed.
        assert!(!ids.exact(Uid::from_raw(1000), rootg, 0o644));
        assert!(!ids.exact(root, Gid::from_raw(5), 0o644));
    }

    #[test]
    fn no_shortcut_into_a_non_empty_or_setgid_destination() {
        let t = tempfile::tempdir().unwrap();
        let fd = rfs::open(t.path(), OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        assert!(CreateIds::probe(fd.as_fd(), false).is_none());
        rfs::fchmod(&fd, Mode::from_raw_mode(0o2755)).unwrap();
        assert!(CreateIds::probe(fd.as_fd(), true).is_none());
        rfs::fchmod(&fd, Mode::from_raw_mode(0o755)).unwrap();
        assert!(CreateIds::probe(fd.as_fd(), true).is_some());
    }
}

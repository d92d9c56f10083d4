//! The MN lock: one `flock(2)` on the root directory itself (`/`, or `--root DIR`).
//! Writers (import, tabrestore, recover) hold it exclusively, readers (export,
//! tabdump, `import --dry-run`) shared, from before they read anything until they
//! exit; so an export never reads an image an import is replacing, and two imports
//! never interleave.
//!
//! Why the root directory and not a lock file: it always exists, so taking the lock
//! creates nothing (a dry run touches nothing, not even a lock file), and a directory
//! opened read-only can be locked, so a reader on a read-only root (a mounted
//! snapshot) still takes a real shared lock instead of falling back to none. Every
//! imgport on the MN agrees on it whatever `cfgloc`, `XCATCFG` or `site.installdir`
//! say. (On NFS, where `flock` is emulated with POSIX locks, an exclusive lock on a
//! directory fails: such a root fails loudly rather than going unlocked.)
//!
//! A lock held by a dead process is not a lock: the kernel drops a `flock` when the
//! last descriptor of its open file closes, which process death does, `kill -9`
//! included. There is no stale lock to clean up and no pid to trust. A writer records
//! `<pid> <command>` in `<root>/var/lib/imgport/holder` only for the line a waiting
//! run prints.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use crate::error::{Error, Result};
use crate::root::Root;

/// The MN directory holding the import journal and the holder note.
pub const STATE_DIR: &str = "/var/lib/imgport";
const HOLDER_NAME: &str = "holder";

/// How a run uses the MN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads only: many at a time.
    Shared,
    /// Changes files or rows: alone.
    Exclusive,
}

/// A held MN lock (released when dropped, or when the process dies).
#[derive(Debug)]
pub struct MnLock {
    dir: File,
    path: PathBuf,
    holder: PathBuf,
    /// What is held: `None` until the first [`MnLock::take`] succeeds.
    held: Option<Access>,
    /// Directories the holder note needed that did not exist, deepest last: removed
    /// again when empty, so a run leaves no empty `var/lib/imgport` behind.
    created: Vec<PathBuf>,
}

/// The host path of [`STATE_DIR`] under `root`.
pub fn state_dir(root: &Root) -> Result<PathBuf> {
    root.resolve_for_write(STATE_DIR)
}

impl MnLock {
    /// Takes the lock of `root` for `access`. When another run holds it, fails at once
    /// with `no_wait` ([`Error::Locked`]), else calls `waiting` with a line naming the
    /// holder and blocks until it is free. `command` is recorded for such lines.
    pub fn acquire(
        root: &Root,
        access: Access,
        no_wait: bool,
        command: &str,
        waiting: &mut dyn FnMut(&str),
    ) -> Result<MnLock> {
        let path = root.dir().to_path_buf();
        let dir = File::open(&path).map_err(|e| Error::io(&path, e))?;
        let mut lock = MnLock {
            dir,
            path,
            holder: state_dir(root)?.join(HOLDER_NAME),
            held: None,
            created: Vec::new(),
        };
        lock.take(access, no_wait, command, waiting)?;
        crate::testhook::point(match access {
            Access::Shared => "locked-shared",
            Access::Exclusive => "locked-exclusive",
        });
        Ok(lock)
    }

    /// The locked directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What is held (`None` only inside a failed acquisition).
    pub fn access(&self) -> Option<Access> {
        self.held
    }

    /// Converts the held lock to `access` (like `flock(2)`, not atomically: another
    /// run may take it in between, which is harmless since the caller re-checks).
    pub fn relock(
        &mut self,
        access: Access,
        no_wait: bool,
        command: &str,
        waiting: &mut dyn FnMut(&str),
    ) -> Result<()> {
        self.take(access, no_wait, command, waiting)
    }

    fn take(
        &mut self,
        access: Access,
        no_wait: bool,
        command: &str,
        waiting: &mut dyn FnMut(&str),
    ) -> Result<()> {
        let (try_op, op) = match access {
            Access::Shared => (
                FlockOperation::NonBlockingLockShared,
                FlockOperation::LockShared,
            ),
            Access::Exclusive => (
                FlockOperation::NonBlockingLockExclusive,
                FlockOperation::LockExclusive,
            ),
        };
        match flock(&self.dir, try_op) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                let holder = holder(&self.holder);
                if no_wait {
                    return Err(Error::Locked {
                        path: self.path.clone(),
                        holder,
                    });
                }
                waiting(&format!(
                    "waiting for the lock on {} held by {holder}",
                    self.path.display()
                ));
                flock(&self.dir, op).map_err(|e| Error::io(&self.path, e.into()))?;
            }
            Err(e) => return Err(Error::io(&self.path, e.into())),
        }
        if access == Access::Shared && self.held == Some(Access::Exclusive) {
            self.remove_holder();
        }
        self.held = Some(access);
        if access == Access::Exclusive {
            // Only for the line of a run that waits: a failure here costs nothing else.
            let _ = self.write_holder(command);
        }
        Ok(())
    }

    fn write_holder(&mut self, command: &str) -> std::io::Result<()> {
        if let Some(dir) = self.holder.parent() {
            let mut missing: Vec<PathBuf> = dir
                .ancestors()
                .take_while(|d| !d.exists())
                .map(Path::to_path_buf)
                .collect();
            missing.reverse();
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)?;
            self.created.extend(missing);
        }
        let mut f = File::create(&self.holder)?;
        writeln!(f, "{} {command}", std::process::id())
    }

    /// Removes the holder note, then the directories created for it if nothing else
    /// (an import journal) is in them.
    fn remove_holder(&mut self) {
        let _ = fs::remove_file(&self.holder);
        while let Some(dir) = self.created.pop() {
            if fs::remove_dir(&dir).is_err() {
                self.created.push(dir);
                break;
            }
        }
    }
}

impl Drop for MnLock {
    fn drop(&mut self) {
        if self.held == Some(Access::Exclusive) {
            self.remove_holder();
        }
    }
}

/// Who holds the lock: `pid N (command)` when the last writer's note names a live
/// process, else a plain description (the note is only a hint; readers write none).
fn holder(note: &Path) -> String {
    let text = fs::read_to_string(note).unwrap_or_default();
    let mut words = text.split_whitespace();
    if let (Some(pid), Some(cmd)) = (words.next(), words.next()) {
        if pid.parse::<u32>().is_ok() && Path::new("/proc").join(pid).exists() {
            return format!("pid {pid} ({cmd})");
        }
    }
    "another imgport (a reader: export, tabdump or a dry run)".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> (tempfile::TempDir, Root) {
        let t = tempfile::tempdir().unwrap();
        let r = Root::new(t.path()).unwrap();
        (t, r)
    }

    #[test]
    fn a_writer_leaves_no_directory_it_created_for_its_note() {
        let (t, r) = root();
        let mut never = |_: &str| panic!("nobody else holds it");
        let l = MnLock::acquire(&r, Access::Exclusive, true, "import", &mut never).unwrap();
        assert!(t.path().join("var/lib/imgport/holder").exists());
        drop(l);
        assert!(
            !t.path().join("var").exists(),
            "an empty var/ was left behind"
        );
        // A state directory that was there before is kept.
        fs::create_dir_all(t.path().join("var/lib/imgport")).unwrap();
        drop(MnLock::acquire(&r, Access::Exclusive, true, "import", &mut never).unwrap());
        assert!(t.path().join("var/lib/imgport").is_dir());
        assert!(!t.path().join("var/lib/imgport/holder").exists());
    }

    #[test]
    fn readers_share_and_a_writer_is_refused_with_no_wait() {
        // flock locks belong to open files, so two acquisitions in one process
        // conflict exactly as two processes would.
        let (_t, r) = root();
        let mut never = |_: &str| panic!("must not wait");
        let a = MnLock::acquire(&r, Access::Shared, true, "export", &mut never).unwrap();
        let b = MnLock::acquire(&r, Access::Shared, true, "export", &mut never).unwrap();
        let e = MnLock::acquire(&r, Access::Exclusive, true, "import", &mut never).unwrap_err();
        assert!(e.to_string().contains("a reader"), "{e}");
        drop((a, b));
        let w = MnLock::acquire(&r, Access::Exclusive, true, "import", &mut never).unwrap();
        let e = MnLock::acquire(&r, Access::Shared, true, "tabdump", &mut never).unwrap_err();
        assert!(e.to_string().contains("(import)"), "{e}");
        drop(w);
        assert!(!r.dir().join("var/lib/imgport/holder").exists());
    }
}

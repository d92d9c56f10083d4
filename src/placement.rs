//! Puts staged files into their final places on the MN, all or nothing.
//!
//! xCAT's rules (XCAT.md C16): parents are created with mode 0755, an existing file is renamed
//! `<path>.ORIG` first. On top of that every step is journaled so a failure later in
//! the import (another file, the table writes) puts the MN back as it was: moved files
//! are moved back, `.ORIG` backups restored, created directories removed. A `.ORIG`
//! that a new backup replaces is kept aside until the import commits.
//!
//! The in-memory journal covers failures imgport sees; each step is also written ahead
//! to the import's [`Journal`] so that [`crate::journal::recover`] can do the same
//! after the process died.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::journal::{Journal, Record};
use crate::testhook;

/// One undoable step.
#[derive(Debug)]
enum Step {
    CreatedDir(PathBuf),
    /// `staged` was renamed to `dest`; `backup` holds what was at `dest` before;
    /// `aside` an older `.ORIG` that the new backup displaced.
    Moved {
        dest: PathBuf,
        backup: Option<PathBuf>,
        aside: Option<(PathBuf, PathBuf)>,
    },
}

/// A journal of placements for one image.
#[derive(Debug, Default)]
pub struct Placement {
    steps: Vec<Step>,
    journal: Journal,
    /// This image's tag in `journal`.
    tag: u64,
}

/// `<path>.ORIG`.
pub fn orig_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(".ORIG");
    PathBuf::from(s)
}

impl Placement {
    pub fn new() -> Placement {
        Placement::default()
    }

    /// A placement whose steps are also written ahead to `journal` under `tag`.
    pub fn journaled(journal: Journal, tag: u64) -> Placement {
        Placement {
            steps: Vec::new(),
            journal,
            tag,
        }
    }

    /// Makes a staging directory `<parent>/<prefix>…` (parents made and journaled
    /// first) that a dead run's recovery removes.
    pub fn staging_dir(&mut self, parent: &Path, prefix: &str) -> Result<PathBuf> {
        self.create_dirs(parent)?;
        self.journal.staging_dir(self.tag, parent, prefix)
    }

    /// Records the rows about to be written and the table files their write will
    /// create: the commit point follows.
    pub fn intend_rows(
        &self,
        upserts: &[crate::catalog::Upsert],
        new_tables: &[String],
        new_dirs: &[PathBuf],
    ) -> Result<()> {
        self.journal.record(
            self.tag,
            Record::Rows {
                upserts,
                new_tables,
                new_dirs,
            },
        )
    }

    /// Flushes every filesystem this placement wrote to (file data, the renames and
    /// the directories made), so rows written next never name files a power loss
    /// could take back.
    pub fn sync(&self) -> Result<()> {
        let mut seen = std::collections::BTreeSet::new();
        for step in &self.steps {
            let dir = match step {
                Step::CreatedDir(d) => d.as_path(),
                Step::Moved { dest, .. } => dest.parent().unwrap_or(dest),
            };
            sync_fs(dir, &mut seen)?;
        }
        Ok(())
    }

    /// Creates `dir` and missing parents with mode 0755, journaling each one made.
    pub fn create_dirs(&mut self, dir: &Path) -> Result<()> {
        let mut missing = Vec::new();
        let mut cur = dir;
        while fs::symlink_metadata(cur).is_err() {
            missing.push(cur.to_path_buf());
            match cur.parent() {
                Some(p) => cur = p,
                None => break,
            }
        }
        for d in missing.into_iter().rev() {
            self.journal.record(self.tag, Record::Mkdir(&d))?;
            fs::DirBuilder::new()
                .mode(0o755)
                .create(&d)
                .map_err(|e| Error::io(&d, e))?;
            self.steps.push(Step::CreatedDir(d.clone()));
            testhook::point("did-mkdir");
            // The umask must not narrow xCAT's 0755.
            fs::set_permissions(&d, fs::Permissions::from_mode(0o755))
                .map_err(|e| Error::io(&d, e))?;
        }
        Ok(())
    }

    /// Moves `staged` (a file or a directory) to `dest`, backing up whatever is at
    /// `dest` as `dest.ORIG`. Returns whether a backup was made. Both paths should be
    /// on one filesystem; across filesystems a file is copied beside `dest` first so
    /// the final step is still a rename.
    pub fn put(&mut self, staged: &Path, dest: &Path) -> Result<bool> {
        if let Some(parent) = dest.parent() {
            self.create_dirs(parent)?;
        }
        let mut backup = None;
        let mut aside = None;
        if fs::symlink_metadata(dest).is_ok() {
            let orig = orig_path(dest);
            if fs::symlink_metadata(&orig).is_ok() {
                let parked = unique_sibling(&orig, ".imgport-old")?;
                self.journal.record(
                    self.tag,
                    Record::Park {
                        orig: &orig,
                        parked: &parked,
                    },
                )?;
                fs::rename(&orig, &parked).map_err(|e| Error::io(&orig, e))?;
                aside = Some((parked, orig.clone()));
                testhook::point("did-park");
            }
            let noted = self
                .journal
                .record(self.tag, Record::Backup { dest, orig: &orig });
            if let Err(e) =
                noted.and_then(|()| fs::rename(dest, &orig).map_err(|e| Error::io(dest, e)))
            {
                if let Some((parked, orig)) = &aside {
                    let _ = fs::rename(parked, orig);
                }
                return Err(e);
            }
            testhook::point("did-backup");
            backup = Some(orig);
        }
        let made_backup = backup.is_some();
        let noted = self.journal.record(
            self.tag,
            Record::Place {
                dest,
                backup: backup.as_deref(),
            },
        );
        let moved = noted.and_then(|()| match fs::rename(staged, dest) {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::XDEV.raw_os_error()) => {
                copy_then_rename(staged, dest, &self.journal, self.tag)
            }
            Err(e) => Err(Error::io(dest, e)),
        });
        self.steps.push(Step::Moved {
            dest: dest.to_path_buf(),
            backup,
            aside,
        });
        if let Err(e) = moved {
            // The journal entry restores the backup; nothing was placed.
            if let Some(Step::Moved { backup, aside, .. }) = self.steps.pop() {
                restore_backup(dest, backup, aside, false);
            }
            return Err(e);
        }
        testhook::point("did-place");
        Ok(made_backup)
    }

    /// Keeps everything placed (the rows are written): records the commit point, then
    /// drops the displaced older backups. A commit line that cannot be written is not
    /// an error: the rows are in, and recovery finds them there.
    pub fn commit(self) {
        let _ = self.journal.record(self.tag, Record::Commit);
        testhook::point("did-commit");
        for step in self.steps {
            if let Step::Moved {
                aside: Some((parked, _)),
                ..
            } = step
            {
                let _ = remove_any(&parked);
            }
        }
    }

    /// Undoes every step, newest first. Best effort: it keeps going past failures and
    /// returns the paths it could not restore.
    pub fn rollback(self) -> Vec<PathBuf> {
        let mut failed = Vec::new();
        let (journal, tag) = (self.journal, self.tag);
        for step in self.steps.into_iter().rev() {
            match step {
                Step::CreatedDir(d) => {
                    let _ = fs::remove_dir(&d);
                }
                Step::Moved {
                    dest,
                    backup,
                    aside,
                } => {
                    if !restore_backup(&dest, backup, aside, true) {
                        failed.push(dest);
                    }
                }
            }
        }
        // What could not be put back stays journaled for the next run to retry.
        if failed.is_empty() {
            let _ = journal.record(tag, Record::RolledBack);
        }
        failed
    }
}

/// Removes what was placed at `dest` (when `remove_new`) and moves the backups back.
fn restore_backup(
    dest: &Path,
    backup: Option<PathBuf>,
    aside: Option<(PathBuf, PathBuf)>,
    remove_new: bool,
) -> bool {
    let mut ok = true;
    if remove_new {
        ok &= remove_any(dest).is_ok();
    }
    if let Some(orig) = backup {
        ok &= fs::rename(&orig, dest).is_ok();
    }
    if let Some((parked, orig)) = aside {
        ok &= fs::rename(&parked, &orig).is_ok();
    }
    ok
}

fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A name beside `p` that does not exist yet.
fn unique_sibling(p: &Path, suffix: &str) -> Result<PathBuf> {
    for n in 0..1000 {
        let mut s = p.as_os_str().to_os_string();
        s.push(format!("{suffix}.{}.{n}", std::process::id()));
        let candidate = PathBuf::from(s);
        if fs::symlink_metadata(&candidate).is_err() {
            return Ok(candidate);
        }
    }
    Err(Error::io(
        p,
        io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free temporary name beside it",
        ),
    ))
}

/// `syncfs(2)` on the filesystem of `dir`, once per filesystem (`seen`: device ids).
fn sync_fs(dir: &Path, seen: &mut std::collections::BTreeSet<u64>) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = fs::metadata(dir) else {
        // Rolled back or never made: nothing of ours to flush there.
        return Ok(());
    };
    if seen.insert(meta.dev()) {
        let d = fs::File::open(dir).map_err(|e| Error::io(dir, e))?;
        rustix::fs::syncfs(&d).map_err(|e| Error::io(dir, e.into()))?;
    }
    Ok(())
}

/// Copies across filesystems into a sibling temporary name (journaled as staging),
/// then renames, so the final step is still atomic.
fn copy_then_rename(staged: &Path, dest: &Path, journal: &Journal, tag: u64) -> Result<()> {
    let tmp = unique_sibling(dest, ".imgport-tmp")?;
    journal.record(tag, Record::Staging(&tmp))?;
    fs::copy(staged, &tmp).map_err(|e| Error::io(&tmp, e))?;
    if let Err(e) = fs::rename(&tmp, dest) {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(dest, e));
    }
    let _ = fs::remove_file(staged);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_backs_up_and_rollback_restores() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("a/b/kernel");
        fs::create_dir_all(dest.parent().unwrap()).unwrap();
        fs::write(&dest, "old").unwrap();
        fs::write(orig_path(&dest), "older").unwrap();
        let staged = t.path().join("staged");
        fs::write(&staged, "new").unwrap();
        let mut p = Placement::new();
        assert!(p.put(&staged, &dest).unwrap());
        assert_eq!(fs::read_to_string(&dest).unwrap(), "new");
        assert_eq!(fs::read_to_string(orig_path(&dest)).unwrap(), "old");
        assert!(p.rollback().is_empty());
        assert_eq!(fs::read_to_string(&dest).unwrap(), "old");
        assert_eq!(fs::read_to_string(orig_path(&dest)).unwrap(), "older");
    }

    #[test]
    fn created_parents_are_0755_and_removed_on_rollback() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("x/y/file");
        let staged = t.path().join("staged");
        fs::write(&staged, "new").unwrap();
        let mut p = Placement::new();
        assert!(!p.put(&staged, &dest).unwrap());
        let mode = fs::metadata(t.path().join("x/y"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755);
        p.rollback();
        assert!(!t.path().join("x").exists());
    }

    #[test]
    fn commit_drops_the_displaced_backup() {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("f");
        fs::write(&dest, "old").unwrap();
        fs::write(orig_path(&dest), "older").unwrap();
        let staged = t.path().join("s");
        fs::write(&staged, "new").unwrap();
        let mut p = Placement::new();
        p.put(&staged, &dest).unwrap();
        p.commit();
        let names: Vec<_> = fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }
}

//! Import's intent journal and the recovery of a run that died.
//!
//! Before each visible change (a staging directory or directory made, a file moved
//! aside to `.ORIG`, an older `.ORIG` parked, a file or tree put in place, the rows
//! written) import appends one JSON line saying what it is about to do to
//! `<root>/var/lib/imgport/import.journal` and syncs it; the file's creation is synced
//! with its directory. Records are tagged by image (one bundle may hold several, each
//! committed on its own). An image's commit point is the commit of its rows, one
//! transaction across every table file (see `catalog::backend::sqlite`): once the
//! catalog holds them (a `commit` line, or, when the run died between the catalog
//! write and that line, the rows found in the catalog), the image is rolled forward;
//! before it, back. The `rows` line also names the table files and catalog
//! directories the write will create, which a roll-back removes again.
//!
//! Before it decides, [`recover`] settles the catalog ([`Catalog::settle`]): SQLite
//! rolls back a rows transaction killed before its commit point or drops the journals
//! of one killed after it, so the catalog read that decides sees all of the rows or
//! none, never some tables written and others not.
//!
//! [`recover`] reads a dead run's journal under the exclusive MN lock and, newest
//! record first, for an image before its commit point: removes what was put in place,
//! moves `.ORIG` backups back, returns parked older backups, removes the directories
//! it made; after it: drops the parked older backups only, which leaves exactly what a
//! successful import leaves (new files, their predecessors as `.ORIG`). Staging
//! directories go in both cases. Every undo step checks what is on disk first, so a
//! recovery that dies itself is simply run again. Paths are stored relative to the
//! root (a journal never makes recovery touch anything outside it), except a spool
//! directory outside the root, which recovery only removes if its name is imgport's.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};

use crate::catalog::{Catalog, ChangeKind, Upsert};
use crate::error::{Error, Result};
use crate::lock::state_dir;
use crate::root::Root;
use crate::testhook;

const JOURNAL_NAME: &str = "import.journal";

/// What an import is about to do (or, for `Commit`/`RolledBack`, has done).
#[derive(Debug, Clone, Copy)]
pub enum Record<'a> {
    /// An image directory of the bundle starts under this tag.
    Image(&'a str),
    /// A directory that exists only for this import and is removed whatever happens.
    Staging(&'a Path),
    /// A directory made on the way to a destination.
    Mkdir(&'a Path),
    /// An older `orig` is renamed `parked` to make room for a new backup.
    Park { orig: &'a Path, parked: &'a Path },
    /// `dest` is renamed `orig` (its `.ORIG`).
    Backup { dest: &'a Path, orig: &'a Path },
    /// A staged file or tree is renamed to `dest`; `backup`: where what was there
    /// before went (its `.ORIG`), if anything was.
    Place {
        dest: &'a Path,
        backup: Option<&'a Path>,
    },
    /// These rows are about to be written, creating the SQLite files of `new_tables`
    /// (tables whose file does not exist yet) and the directories `new_dirs`
    /// (outermost first).
    Rows {
        upserts: &'a [Upsert],
        new_tables: &'a [String],
        new_dirs: &'a [PathBuf],
    },
    /// The rows are written: the image is imported.
    Commit,
    /// The import undid this image itself.
    RolledBack,
}

/// The journal of the running import, shared by its phases (a disabled one records
/// nothing: `--dry-run`, unit tests of single steps).
#[derive(Debug, Clone, Default)]
pub struct Journal {
    inner: Option<Arc<Mutex<Writer>>>,
}

#[derive(Debug)]
struct Writer {
    file: File,
    path: PathBuf,
    root: PathBuf,
    next_tag: u64,
    /// Tags with changes and neither a commit nor a clean rollback yet.
    open: BTreeSet<u64>,
}

/// The journal's host path under `root`.
pub fn journal_path(root: &Root) -> Result<PathBuf> {
    Ok(state_dir(root)?.join(JOURNAL_NAME))
}

/// Whether a journal is waiting for [`recover`].
pub fn pending(root: &Root) -> Result<bool> {
    Ok(fs::symlink_metadata(journal_path(root)?).is_ok())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

impl Journal {
    pub fn disabled() -> Journal {
        Journal::default()
    }

    /// Starts the journal of an import. A journal left by a dead run must have been
    /// recovered first ([`recover`]); one still there is an error, never overwritten.
    pub fn begin(root: &Root) -> Result<Journal> {
        let path = journal_path(root)?;
        let dir = path.parent().unwrap_or(root.dir()).to_path_buf();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(&dir)
            .map_err(|e| Error::io(&dir, e))?;
        let mut file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let line = json!({"op": "begin", "pid": std::process::id()}).to_string();
        let written = writeln!(file, "{line}")
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::io(&path, e))
            .and_then(|()| sync_dir(&dir));
        if let Err(e) = written {
            // Nothing was changed yet: a journal that is not known to be on disk is
            // no journal, and a leftover one would only make the next run recover.
            let _ = fs::remove_file(&path);
            let _ = sync_dir(&dir);
            return Err(e);
        }
        testhook::point("journal-begun");
        Ok(Journal {
            inner: Some(Arc::new(Mutex::new(Writer {
                file,
                path,
                root: root.dir().to_path_buf(),
                next_tag: 1,
                open: BTreeSet::new(),
            }))),
        })
    }

    /// A new tag for an image directory named `name`.
    pub fn image(&self, name: &str) -> Result<u64> {
        let tag = match &self.inner {
            Some(w) => {
                let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
                w.next_tag += 1;
                w.next_tag - 1
            }
            None => return Ok(0),
        };
        self.record(tag, Record::Image(name))?;
        Ok(tag)
    }

    /// Appends `rec` for image `tag` (0: the import as a whole) and syncs it.
    pub fn record(&self, tag: u64, rec: Record<'_>) -> Result<()> {
        let Some(w) = &self.inner else {
            return Ok(());
        };
        let op = {
            let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
            let (op, mut line) = encode(&w.root, rec);
            line["t"] = json!(tag);
            match rec {
                Record::Commit => {
                    w.open.remove(&tag);
                }
                Record::RolledBack => {
                    w.open.remove(&tag);
                }
                Record::Staging(_) | Record::Image(_) => {}
                _ => {
                    w.open.insert(tag);
                }
            }
            let path = w.path.clone();
            writeln!(w.file, "{line}")
                .and_then(|()| w.file.sync_data())
                .map_err(|e| Error::io(&path, e))?;
            op
        };
        testhook::point(&format!("rec-{op}"));
        Ok(())
    }

    /// Makes a new directory `<parent>/<prefix><pid>-<n>`, recorded as staging first so
    /// that a dead run's is removed by [`recover`].
    pub fn staging_dir(&self, tag: u64, parent: &Path, prefix: &str) -> Result<PathBuf> {
        for n in 0..10_000u32 {
            let dir = parent.join(format!("{prefix}{}-{n}", std::process::id()));
            if fs::symlink_metadata(&dir).is_ok() {
                continue;
            }
            self.record(tag, Record::Staging(&dir))?;
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => {
                    testhook::point("did-staging");
                    return Ok(dir);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(&dir, e)),
            }
        }
        Err(Error::io(
            parent,
            io::Error::new(io::ErrorKind::AlreadyExists, "no free staging name"),
        ))
    }

    /// Ends the journal: removes it when every image either committed or was rolled
    /// back cleanly; keeps it for [`recover`] otherwise.
    pub fn finish(self) -> Result<()> {
        let Some(w) = self.inner else {
            return Ok(());
        };
        let w = w.lock().unwrap_or_else(|p| p.into_inner());
        if !w.open.is_empty() {
            return Ok(());
        }
        fs::remove_file(&w.path).map_err(|e| Error::io(&w.path, e))?;
        // Not an error when this sync fails: every image is committed or rolled back,
        // so a journal that a power loss brings back only makes the next run finish
        // what is already finished.
        if let Some(dir) = w.path.parent() {
            let _ = sync_dir(dir);
        }
        testhook::point("journal-done");
        Ok(())
    }
}

/// A directory removed when dropped (an import's spool): the journal's
/// [`Journal::staging_dir`] made it, [`recover`] removes it after a crash.
#[derive(Debug)]
pub struct StagingDir {
    path: PathBuf,
}

impl StagingDir {
    pub fn new(path: PathBuf) -> StagingDir {
        StagingDir { path }
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for StagingDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A path as stored: relative to the root (`mn`) when under it, else absolute
/// (`host`); a string when it is UTF-8, else its bytes.
fn path_value(root: &Path, p: &Path) -> Value {
    let (key, rel) = match p.strip_prefix(root) {
        Ok(rel) => ("mn", rel),
        Err(_) => ("host", p),
    };
    let bytes = rel.as_os_str().as_bytes();
    let v = match std::str::from_utf8(bytes) {
        Ok(s) => json!(s),
        Err(_) => json!(bytes),
    };
    json!({ key: v })
}

fn encode(root: &Path, rec: Record<'_>) -> (&'static str, Value) {
    let p = |x: &Path| path_value(root, x);
    match rec {
        Record::Image(name) => ("image", json!({"op": "image", "name": name})),
        Record::Staging(d) => ("staging", json!({"op": "staging", "dir": p(d)})),
        Record::Mkdir(d) => ("mkdir", json!({"op": "mkdir", "dir": p(d)})),
        Record::Park { orig, parked } => (
            "park",
            json!({"op": "park", "orig": p(orig), "parked": p(parked)}),
        ),
        Record::Backup { dest, orig } => (
            "backup",
            json!({"op": "backup", "dest": p(dest), "orig": p(orig)}),
        ),
        Record::Place { dest, backup } => (
            "place",
            json!({"op": "place", "dest": p(dest), "backup": backup.map(p)}),
        ),
        Record::Rows {
            upserts,
            new_tables,
            new_dirs,
        } => {
            let rows: Vec<Value> = upserts
                .iter()
                .map(|u| json!({"table": u.table, "key": u.key, "values": u.values}))
                .collect();
            let dirs: Vec<Value> = new_dirs.iter().map(|d| p(d)).collect();
            (
                "rows",
                json!({"op": "rows", "rows": rows, "new_tables": new_tables, "new_dirs": dirs}),
            )
        }
        Record::Commit => ("commit", json!({"op": "commit"})),
        Record::RolledBack => ("rolledback", json!({"op": "rolledback"})),
    }
}

/// What [`recover`] did.
#[derive(Debug, Clone, Default)]
pub struct Recovery {
    /// The journal read (removed now).
    pub journal: PathBuf,
    /// The pid of the run that died, if its first line says.
    pub pid: Option<u64>,
    /// Each image of the dead run and what became of it.
    pub images: Vec<RecoveredImage>,
    /// Every change made, in order, as MN paths.
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredImage {
    pub image: String,
    pub outcome: Outcome,
}

/// What recovery decided for one image of a dead run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Its rows were not written: the image is back to what it was.
    RolledBack,
    /// Its rows were written: the import is completed.
    RolledForward,
    /// The dead run had already undone it; only its staging was left.
    WasRolledBack,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::RolledBack => "rolled back",
            Outcome::RolledForward => "rolled forward",
            Outcome::WasRolledBack => "already rolled back",
        }
    }
}

/// One parsed journal line.
struct Line {
    tag: u64,
    op: String,
    v: Value,
}

/// Finishes or undoes what a dead import left, if its journal is there. The caller
/// holds the exclusive MN lock (no live import can own the journal then).
pub fn recover(root: &Root, catalog: &Catalog) -> Result<Option<Recovery>> {
    let path = journal_path(root)?;
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&path, e)),
    };
    let mut rec = Recovery {
        journal: path.clone(),
        ..Recovery::default()
    };
    // The table files first: a write killed inside its COMMIT is rolled back or
    // completed by SQLite itself here, so the catalog read below sees old or new
    // rows, never a half.
    for p in catalog.settle() {
        rec.actions.push(format!(
            "removed orphaned SQLite super-journal {}",
            root.display(&p)
        ));
    }
    let mut lines = Vec::new();
    for l in BufReader::new(file).lines() {
        let l = l.map_err(|e| Error::io(&path, e))?;
        // A line cut by the crash describes a step that was never started (each
        // step waits for its line to be synced).
        let Ok(v) = serde_json::from_str::<Value>(&l) else {
            continue;
        };
        let op = v["op"].as_str().unwrap_or_default().to_string();
        if op == "begin" {
            rec.pid = v["pid"].as_u64();
        }
        let tag = v["t"].as_u64().unwrap_or(0);
        lines.push(Line { tag, op, v });
    }
    let decisions = decide(&lines, catalog, &mut rec)?;
    let r = Recoverer { root, catalog };
    for line in lines.iter().rev() {
        let outcome = decisions.get(&line.tag).copied();
        r.apply(line, outcome, &mut rec.actions);
    }
    fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(Some(rec))
}

/// Rolls each image of the journal forward or back (see the module text).
fn decide(lines: &[Line], catalog: &Catalog, rec: &mut Recovery) -> Result<BTreeMap<u64, Outcome>> {
    let mut names: BTreeMap<u64, String> = BTreeMap::new();
    let mut state: BTreeMap<u64, Option<Outcome>> = BTreeMap::new();
    let mut rows: BTreeMap<u64, Vec<Upsert>> = BTreeMap::new();
    for l in lines.iter().filter(|l| l.tag != 0) {
        let s = state.entry(l.tag).or_insert(None);
        match l.op.as_str() {
            "image" => {
                names.insert(l.tag, l.v["name"].as_str().unwrap_or_default().into());
            }
            "commit" => *s = Some(Outcome::RolledForward),
            "rolledback" => *s = Some(Outcome::WasRolledBack),
            "rows" => {
                rows.insert(l.tag, upserts(&l.v["rows"]));
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    for (tag, s) in state {
        let outcome = match s {
            Some(o) => o,
            // Died between the catalog write and its `commit` line, or before the
            // write: the catalog says which.
            None => match rows.get(&tag) {
                Some(up) if rows_written(catalog, up)? => Outcome::RolledForward,
                _ => Outcome::RolledBack,
            },
        };
        rec.images.push(RecoveredImage {
            image: names
                .get(&tag)
                .cloned()
                .unwrap_or_else(|| format!("#{tag}")),
            outcome,
        });
        out.insert(tag, outcome);
    }
    Ok(out)
}

/// Whether the catalog already holds every row of `upserts`.
fn rows_written(catalog: &Catalog, upserts: &[Upsert]) -> Result<bool> {
    if upserts.is_empty() {
        return Ok(false);
    }
    let plan = catalog.plan(upserts)?;
    Ok(plan.changes.iter().all(|c| c.kind == ChangeKind::Unchanged))
}

fn upserts(v: &Value) -> Vec<Upsert> {
    let pairs = |v: &Value| -> Vec<(String, Value)> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| Some((p[0].as_str()?.to_string(), p[1].clone())))
                    .collect()
            })
            .unwrap_or_default()
    };
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|u| Upsert {
                    table: u["table"].as_str().unwrap_or_default().to_string(),
                    key: pairs(&u["key"])
                        .into_iter()
                        .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_string()))
                        .collect(),
                    values: pairs(&u["values"])
                        .into_iter()
                        .map(|(k, v)| (k, v.as_str().map(str::to_string)))
                        .collect(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Applies journal lines, newest first, under one root.
struct Recoverer<'a> {
    root: &'a Root,
    catalog: &'a Catalog,
}

impl Recoverer<'_> {
    /// A stored path, or `None` when it would leave the root (a damaged journal) or
    /// names, outside the root, anything but an imgport staging directory.
    fn path(&self, v: &Value) -> Option<PathBuf> {
        let decode = |x: &Value| -> Option<PathBuf> {
            match x {
                Value::String(s) => Some(PathBuf::from(s)),
                Value::Array(a) => {
                    let bytes: Option<Vec<u8>> =
                        a.iter().map(|b| b.as_u64().map(|b| b as u8)).collect();
                    Some(PathBuf::from(std::ffi::OsStr::from_bytes(&bytes?)))
                }
                _ => None,
            }
        };
        if let Some(rel) = v.get("mn").and_then(decode) {
            let clean = rel.components().all(|c| matches!(c, Component::Normal(_)));
            return (clean && !rel.as_os_str().is_empty()).then(|| self.root.dir().join(rel));
        }
        let host = v.get("host").and_then(decode)?;
        let ours = host
            .file_name()
            .is_some_and(|n| n.as_bytes().starts_with(b".imgport-"));
        let clean = host
            .components()
            .all(|c| !matches!(c, Component::ParentDir));
        (ours && clean && host.is_absolute()).then_some(host)
    }

    fn shown(&self, p: &Path) -> String {
        self.root.display(p)
    }

    fn apply(&self, line: &Line, outcome: Option<Outcome>, actions: &mut Vec<String>) {
        let v = &line.v;
        match line.op.as_str() {
            "staging" => {
                if let Some(d) = self.path(&v["dir"]) {
                    if fs::symlink_metadata(&d).is_ok() && remove_any(&d).is_ok() {
                        actions.push(format!("removed staging {}", self.shown(&d)));
                    }
                }
            }
            "park" => {
                let (Some(orig), Some(parked)) = (self.path(&v["orig"]), self.path(&v["parked"]))
                else {
                    return;
                };
                let forward = outcome == Some(Outcome::RolledForward);
                let back = outcome == Some(Outcome::RolledBack);
                if forward && exists(&parked) && remove_any(&parked).is_ok() {
                    actions.push(format!("removed displaced {}", self.shown(&parked)));
                } else if back
                    && exists(&parked)
                    && !exists(&orig)
                    && fs::rename(&parked, &orig).is_ok()
                {
                    actions.push(format!("restored {}", self.shown(&orig)));
                }
            }
            _ if outcome == Some(Outcome::RolledBack) => self.undo(line, actions),
            _ => {}
        }
    }

    /// Undoes one change of an image before its commit point, if it happened.
    fn undo(&self, line: &Line, actions: &mut Vec<String>) {
        let v = &line.v;
        match line.op.as_str() {
            "mkdir" => {
                if let Some(d) = self.path(&v["dir"]) {
                    // Only if empty: something else may have come to live there.
                    if fs::remove_dir(&d).is_ok() {
                        actions.push(format!("removed directory {}", self.shown(&d)));
                    }
                }
            }
            "backup" => {
                let (Some(dest), Some(orig)) = (self.path(&v["dest"]), self.path(&v["orig"]))
                else {
                    return;
                };
                if exists(&orig) && !exists(&dest) && fs::rename(&orig, &dest).is_ok() {
                    actions.push(format!("restored {} from its .ORIG", self.shown(&dest)));
                }
            }
            "place" => {
                let Some(dest) = self.path(&v["dest"]) else {
                    return;
                };
                // With a backup, what is at `dest` is new only while the backup is
                // still aside; without one, nothing was there before.
                let placed = match &v["backup"] {
                    Value::Null => true,
                    b => self.path(b).is_some_and(|orig| exists(&orig)),
                };
                if placed && exists(&dest) && remove_any(&dest).is_ok() {
                    actions.push(format!("removed new {}", self.shown(&dest)));
                }
            }
            "rows" => {
                // The write did not land: SQLite rolled the files it created back to
                // empty; they go too.
                for t in v["new_tables"].as_array().into_iter().flatten() {
                    let removed = t
                        .as_str()
                        .and_then(|t| self.catalog.remove_new_table_file(t));
                    if let Some(p) = removed {
                        actions.push(format!("removed new empty {}", self.shown(&p)));
                    }
                }
                let dirs = v["new_dirs"].as_array().into_iter().flatten();
                for d in dirs.rev().filter_map(|d| self.path(d)) {
                    // Only if empty: something else may have come to live there.
                    if fs::remove_dir(&d).is_ok() {
                        actions.push(format!("removed directory {}", self.shown(&d)));
                    }
                }
            }
            _ => {}
        }
    }
}

fn exists(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok()
}

fn remove_any(p: &Path) -> io::Result<()> {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(p),
        Ok(_) => fs::remove_file(p),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::Placement;
    use crate::testkit::Mn;

    #[test]
    fn a_placement_cut_off_before_its_rows_is_rolled_back_with_its_older_backup() {
        let mn = Mn::new();
        mn.write("/install/img/kernel", "v1");
        mn.write("/install/img/kernel.ORIG", "v0");
        mn.write("/install/staged", "v2");
        mn.write("/install/staged2", "new");
        let journal = Journal::begin(&mn.root).unwrap();
        let tag = journal.image("img").unwrap();
        let mut p = Placement::journaled(journal.clone(), tag);
        p.put(&mn.host("/install/staged"), &mn.host("/install/img/kernel"))
            .unwrap();
        p.put(&mn.host("/install/staged2"), &mn.host("/install/new/a/b"))
            .unwrap();
        // The process "dies": neither commit, rollback nor finish runs.
        std::mem::forget(p);
        std::mem::forget(journal);
        let done = recover(&mn.root, &mn.catalog).unwrap().unwrap();
        assert_eq!(done.images[0].outcome, Outcome::RolledBack);
        let read = |p: &str| fs::read_to_string(mn.host(p)).unwrap();
        assert_eq!(read("/install/img/kernel"), "v1");
        assert_eq!(read("/install/img/kernel.ORIG"), "v0");
        assert!(!mn.host("/install/new").exists(), "{:?}", done.actions);
        assert!(!pending(&mn.root).unwrap());
        assert!(recover(&mn.root, &mn.catalog).unwrap().is_none());
    }

    #[test]
    fn a_damaged_journal_never_leads_recovery_outside_the_root_and_a_torn_line_is_skipped() {
        let mn = Mn::new();
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("keep");
        fs::create_dir(&victim).unwrap();
        let inside = mn.host("/install/.imgport-import-1-0");
        fs::create_dir(&inside).unwrap();
        let path = journal_path(&mn.root).unwrap();
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let lines = [
            json!({"op": "begin", "pid": 1}).to_string(),
            json!({"op": "staging", "t": 0, "dir": {"mn": "../keep"}}).to_string(),
            json!({"op": "staging", "t": 0, "dir": {"host": victim}}).to_string(),
            json!({"op": "staging", "t": 0, "dir": {"mn": "install/.imgport-import-1-0"}})
                .to_string(),
            "{\"op\": \"place\", \"t\": 1, \"dest\": {\"mn\": \"ins".to_string(),
        ];
        fs::write(&path, lines.join("\n")).unwrap();
        let done = recover(&mn.root, &mn.catalog).unwrap().unwrap();
        assert!(victim.exists());
        assert!(!inside.exists());
        assert_eq!(done.pid, Some(1));
        assert_eq!(done.actions.len(), 1, "{:?}", done.actions);
    }
}

//! The dispatcher: restores entries in archive order, doing everything whose order
//! matters (name checks, the directory walk, directories, symlinks, devices, FIFOs,
//! hard links, replacing earlier entries, directory metadata at the end). Regular
//! files are written here in a sequential restore, or handed to the file-writer pool
//! in a parallel one; the two paths share everything else.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rustix::fs::{self as rfs, AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;

use super::at::{
    create_file, create_mode, io_err, make_dir, make_special, meta_fd, meta_fd_created, mkdir_at,
    open_dir, open_walk, parent_error, remove, retry_exist, timespec, write_data, CreateIds,
};
use super::options::{RestoreOptions, RestoreStats};
use super::pool::{stopped, BigFile, DataRuns, FileMeta, Job, Pool, JOB_CHUNK};
use crate::tree::entry::{Entry, Kind};
use crate::tree::error::{display_path, TreeError};
use crate::tree::format::tar_decode::EntryReader;

/// Buffer for copying file data.
const DATA_BUF: usize = 256 * 1024;

/// Restores the entries of an already opened decoder into `dest`; see
/// [`restore`](super::restore).
///
/// With `opts.threads` resolving to 1, everything happens on the calling thread in
/// archive order. Otherwise regular files are written by that many scoped worker
/// threads (see the module docs for the rules that keep this as safe and as faithful
/// as the sequential order); all have exited when this returns, also on error.
///
/// Errors: the first in archive order among the dispatcher's and the workers'. On
/// error nothing more is dispatched, queued jobs are dropped, and the directories
/// keep mode 0700 and root ownership (their metadata is applied only on success), so
/// the caller can remove `dest` whole.
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
    // Whether names may exist before the archive creates them; a fresh staging
    // directory (the normal case) spares the dispatcher a stat per file.
    let dest_empty = std::fs::read_dir(dest)
        .map_err(|e| TreeError::io(dest, e))?
        .next()
        .is_none();
    let create_ids = CreateIds::probe(dest_fd.as_fd(), dest_empty);
    let r = Restorer {
        dirs: DirCache {
            dest: Arc::new(dest_fd),
            stack: Vec::new(),
        },
        top: top_comps,
        opts: opts.clone(),
        // Into an empty destination every name was made by this restore, so the file
        // system itself says what exists; the set is kept only for other
        // destinations, where a name may predate the restore.
        seen: (!dest_empty).then(Seen::default),
        create_ids,
        deferred: HashMap::new(),
        stats: RestoreStats::default(),
        warning_seqs: Vec::new(),
        seq: 0,
        buf: Vec::new(),
        host_ids: None,
        pool: None,
    };
    match opts.effective_threads() {
        1 => run_sequential(r, reader),
        threads => run_parallel(r, reader, dest_empty, threads),
    }
}

/// Everything on the calling thread, in archive order.
fn run_sequential<E: EntryReader>(
    mut r: Restorer,
    reader: &mut E,
) -> Result<RestoreStats, TreeError> {
    r.buf = vec![0u8; DATA_BUF];
    r.run(reader).map_err(|(_, e)| e)?;
    r.finish_dirs()?;
    Ok(r.stats)
}

/// The dispatcher on the calling thread, regular files written by `threads` scoped
/// workers; all have exited when this returns.
fn run_parallel<E: EntryReader>(
    mut r: Restorer,
    reader: &mut E,
    dest_empty: bool,
    threads: usize,
) -> Result<RestoreStats, TreeError> {
    std::thread::scope(|s| {
        let (pool, workers) = Pool::start(s, threads, dest_empty);
        r.pool = Some(pool);
        let dispatched = r.run(reader);
        let pool = r.pool.take().ok_or_else(|| stopped(b"<restore>"))?;
        let (bytes, warnings) = pool.finish(workers, dispatched)?;
        r.stats.bytes = r.stats.bytes.saturating_add(bytes);
        r.merge_warnings(warnings);
        r.finish_dirs()?;
        Ok(r.stats)
    })
}

/// The destination fd plus the open chain of directories leading to the current
/// entry's parent, reused while consecutive entries share it (archives list
/// directories in order, so most entries hit the cache). Shared (`Arc`) so a
/// worker can keep a parent open after the dispatcher moved on.
struct DirCache {
    dest: Arc<OwnedFd>,
    stack: Vec<(Vec<u8>, Arc<OwnedFd>)>,
}

impl DirCache {
    fn cur(&self) -> BorrowedFd<'_> {
        match self.stack.last() {
            Some((_, fd)) => fd.as_fd(),
            None => self.dest.as_fd(),
        }
    }

    fn cur_shared(&self) -> Arc<OwnedFd> {
        match self.stack.last() {
            Some((_, fd)) => fd.clone(),
            None => self.dest.clone(),
        }
    }

    /// Makes the stack hold exactly `parents`, opening each missing level without
    /// following symlinks. A missing level is created (the archive lacks the
    /// directory entry; GNU tar does the same), unless `before_mkdir`, called with
    /// the level's path below the top, answers true: it waited for a worker that owns
    /// the name, and the level is opened again (a file now, so refused).
    fn descend(
        &mut self,
        parents: &[&[u8]],
        entry: &[u8],
        warnings: &mut Vec<String>,
        before_mkdir: &mut dyn FnMut(&[u8]) -> Result<bool, TreeError>,
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
                    let level = parents[..=depth].join(&b'/');
                    if before_mkdir(&level)? {
                        open_dir(self.cur(), comp)
                            .map_err(|e| parent_error(entry, &parents[..=depth], e))?
                    } else {
                        mkdir_at(base, comp, 0o755)
                            .map_err(|e| io_err(entry, "mkdir parent", e))?;
                        warnings.push(format!(
                            "{}: parent directory {} missing from the archive, created",
                            display_path(entry),
                            display_path(&level)
                        ));
                        open_dir(self.cur(), comp).map_err(|e| io_err(entry, "open parent", e))?
                    }
                }
                Err(e) => return Err(parent_error(entry, &parents[..=depth], e)),
            };
            self.stack.push((comp.to_vec(), Arc::new(fd)));
        }
        Ok(())
    }
}

/// The set of names (below top) of non-directory entries restored so far. It holds
/// keyed 64-bit hashes, not the names: 8 bytes an entry instead of the path's
/// allocation, which at 10^6 entries was most of the restore's memory. The keys are
/// random per restore, so an archive cannot be built to collide; an accidental
/// collision (odds about n²/2^65) would only let a hard link name an existing path
/// that no earlier entry created, which the no-follow walk still keeps inside the
/// destination.
#[derive(Default)]
struct Seen {
    keys: RandomState,
    hashes: HashSet<u64>,
}

impl Seen {
    fn hash(&self, rel: &[u8]) -> u64 {
        self.keys.hash_one(rel)
    }

    fn insert(&mut self, rel: &[u8]) {
        self.hashes.insert(self.hash(rel));
    }

    fn remove(&mut self, rel: &[u8]) {
        self.hashes.remove(&self.hash(rel));
    }

    fn contains(&self, rel: &[u8]) -> bool {
        self.hashes.contains(&self.hash(rel))
    }
}

/// An entry's resolved owner and times, as the metadata calls want them.
struct Ids {
    owner: (Uid, Gid),
    times: Timestamps,
}

struct Restorer {
    dirs: DirCache,
    top: Vec<Vec<u8>>,
    opts: RestoreOptions,
    /// Non-directory entries restored so far (paths below top): the only allowed
    /// hard link targets. `None` when `dest` was empty: then an existing
    /// non-directory is one (see [`Restorer::hard_link`]), and nothing grows with
    /// the number of entries.
    seen: Option<Seen>,
    /// What a file created by this restore gets without fchown/fchmod, if known.
    create_ids: Option<CreateIds>,
    /// Directory metadata applied at the end; a later entry for the same directory
    /// replaces the earlier one.
    deferred: HashMap<Vec<u8>, Entry>,
    stats: RestoreStats,
    /// Sequence number of the entry each of `stats.warnings` belongs to, for merging
    /// with the workers' warnings in archive order.
    warning_seqs: Vec<u64>,
    /// Index of the entry being restored, in archive order.
    seq: u64,
    buf: Vec<u8>,
    host_ids: Option<HostIds>,
    /// The worker pool, when restoring in parallel.
    pool: Option<Pool>,
}

impl Restorer {
    /// Restores every entry; on error returns it with the entry's sequence number.
    fn run<E: EntryReader>(&mut self, reader: &mut E) -> Result<(), (u64, TreeError)> {
        loop {
            let next = reader.next_entry();
            self.stats.warnings.extend(reader.take_warnings());
            let e = match next {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(er) => return Err((self.seq, er)),
            };
            self.entry(reader, e).map_err(|er| (self.seq, er))?;
            self.stats.entries += 1;
            self.warning_seqs
                .resize(self.stats.warnings.len(), self.seq);
            self.seq += 1;
            if let Some(pool) = self.pool.as_mut() {
                pool.poll();
                if !pool.errors.is_empty() {
                    return Err((self.seq, stopped(b"<restore>")));
                }
            }
        }
        self.stats.warnings.extend(reader.take_warnings());
        self.warning_seqs
            .resize(self.stats.warnings.len(), self.seq);
        Ok(())
    }

    /// Merges the workers' warnings into `stats.warnings` in archive order.
    fn merge_warnings(&mut self, from_workers: Vec<(u64, String)>) {
        if from_workers.is_empty() {
            return;
        }
        let mine = std::mem::take(&mut self.stats.warnings);
        let mut all: Vec<(u64, String)> = self
            .warning_seqs
            .drain(..)
            .zip(mine)
            .chain(from_workers)
            .collect();
        all.sort_by_key(|(seq, _)| *seq);
        self.stats.warnings = all.into_iter().map(|(_, w)| w).collect();
    }

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
        // A name a worker still owns is not touched until the worker is done.
        if let Some(pool) = self.pool.as_mut() {
            if !pool.pending.is_empty() && !pool.wait_for(&rel) {
                return Err(stopped(&e.path));
            }
        }
        let comps: Vec<&[u8]> = rel.split(|&c| c == b'/').collect();
        let Some((name, parents)) = comps.split_last() else {
            return Ok(());
        };
        let ids = Ids {
            times: self.times(&e),
            owner: self.owner(&e)?,
        };
        self.open_parent(parents, &e.path)?;
        if e.kind == Kind::Dir {
            make_dir(self.dirs.cur(), name, &e.path)?;
            if let Some(seen) = self.seen.as_mut() {
                seen.remove(&rel);
            }
            self.deferred.insert(rel, e);
            return Ok(());
        }
        // Any other kind replaces what an earlier entry left under this name. A
        // directory that files were dispatched into is not empty (sequentially the
        // rmdir would fail the same way), and removing it now would race with them.
        if self
            .pool
            .as_ref()
            .is_some_and(|pool| pool.busy.contains(&rel))
        {
            return Err(TreeError::UnsupportedInput {
                entry: display_path(&e.path),
                reason: "would replace a non-empty directory".into(),
            });
        }
        let was_dir = self.deferred.remove(&rel).is_some();
        if e.kind == Kind::File && self.pool.is_some() {
            let name = name.to_vec();
            return self.hand_over_file(reader, e, rel, name, was_dir, ids);
        }
        self.make_node(reader, name, parents, &rel, &e, &ids)?;
        if let Some(seen) = self.seen.as_mut() {
            seen.insert(&rel);
        }
        Ok(())
    }

    /// Makes the directory cache hold the entry's parents, creating missing ones
    /// unless a worker owns the name (then waits for it: the name is a file now, and
    /// opening it as a directory is refused).
    fn open_parent(&mut self, parents: &[&[u8]], path: &[u8]) -> Result<(), TreeError> {
        let pool = &mut self.pool;
        let mut before_mkdir = |level: &[u8]| -> Result<bool, TreeError> {
            let Some(pool) = pool.as_mut() else {
                return Ok(false);
            };
            if pool.pending.contains_key(level) {
                return if pool.wait_for(level) {
                    Ok(true)
                } else {
                    Err(stopped(path))
                };
            }
            pool.made_dirs.insert(level.to_vec());
            Ok(false)
        };
        self.dirs
            .descend(parents, path, &mut self.stats.warnings, &mut before_mkdir)
    }

    /// A regular file in a parallel restore: the name is freed here (when something
    /// may hold it) and the file goes to the workers.
    fn hand_over_file<E: EntryReader>(
        &mut self,
        reader: &mut E,
        e: Entry,
        rel: Vec<u8>,
        name: Vec<u8>,
        was_dir: bool,
        ids: Ids,
    ) -> Result<(), TreeError> {
        let Some(pool) = self.pool.as_ref() else {
            return Err(stopped(&e.path));
        };
        // With no set (an empty destination), an earlier file of the same name is
        // replaced by the worker, which finds it on create (see `FileMeta::replace`).
        let maybe_exists = self.seen.as_ref().is_some_and(|s| s.contains(&rel))
            || was_dir
            || !pool.dest_empty
            || pool.made_dirs.contains(&rel);
        if maybe_exists {
            remove(self.dirs.cur(), &name, &e.path)?;
        }
        let parent = self.dirs.cur_shared();
        if let Some(seen) = self.seen.as_mut() {
            seen.insert(&rel);
        }
        self.dispatch_file(reader, e, rel, parent, name, ids)
    }

    /// Creates a non-directory entry on this thread: a regular file (sequential
    /// restore), a symlink, device or FIFO, or a hard link.
    fn make_node<E: EntryReader>(
        &mut self,
        reader: &mut E,
        name: &[u8],
        parents: &[&[u8]],
        rel: &[u8],
        e: &Entry,
        ids: &Ids,
    ) -> Result<(), TreeError> {
        let (uid, gid) = ids.owner;
        match &e.kind {
            Kind::File => {
                let exact = self.exact(e, uid, gid);
                let file = create_file(self.dirs.cur(), name, &e.path, create_mode(e, exact))?;
                let written = write_data(reader, &file, e, &mut self.buf)?;
                self.stats.bytes += written;
                meta_fd_created(
                    file.as_fd(),
                    e,
                    uid,
                    gid,
                    &ids.times,
                    exact,
                    &mut self.stats.warnings,
                )
            }
            Kind::HardLink(target) => self.hard_link(name, parents, rel, target, &e.path),
            Kind::Dir => Ok(()),
            _ => make_special(
                self.dirs.cur(),
                name,
                e,
                (uid, gid),
                &ids.times,
                &mut self.stats.warnings,
            ),
        }
    }

    /// A hard link to an earlier, complete entry of this archive, reached by the same
    /// no-follow walk as everything else.
    fn hard_link(
        &mut self,
        name: &[u8],
        parents: &[&[u8]],
        rel: &[u8],
        target: &[u8],
        path: &[u8],
    ) -> Result<(), TreeError> {
        let trel = self.relative(target, path, "hard link target")?;
        let not_earlier = || TreeError::Unsafe {
            entry: display_path(path),
            reason: format!(
                "hard link target {} is not an earlier entry of this archive",
                display_path(target)
            ),
        };
        let listed = self.seen.as_ref().map(|s| s.contains(&trel));
        if trel.is_empty() || listed == Some(false) {
            return Err(not_earlier());
        }
        // The target's data and metadata are complete before it gains a name.
        if let Some(pool) = self.pool.as_mut() {
            if !pool.wait_for(&trel) {
                return Err(stopped(path));
            }
        }
        let tcomps: Vec<&[u8]> = trel.split(|&c| c == b'/').collect();
        let Some((tname, tparents)) = tcomps.split_last() else {
            return Ok(());
        };
        let pfd = self.dirs.cur();
        // The target's directory is opened by the same no-follow walk, so a symlink
        // swapped in since cannot redirect the link.
        let owned;
        let tfd = if tparents == parents {
            pfd
        } else if listed.is_some() {
            owned = open_walk(self.dirs.dest.as_fd(), tparents, path)?;
            owned.as_fd()
        } else {
            owned = open_walk(self.dirs.dest.as_fd(), tparents, path).map_err(|_| not_earlier())?;
            owned.as_fd()
        };
        if listed.is_none() {
            // An empty destination holds only what this restore made: an existing
            // non-directory there is an earlier entry (a directory never is one).
            match rfs::statat(tfd, *tname, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) != FileType::Directory => {}
                _ => return Err(not_earlier()),
            }
        }
        if trel == rel {
            return Ok(());
        }
        retry_exist(pfd, name, path, "link", || {
            rfs::linkat(tfd, *tname, pfd, name, AtFlags::empty())
        })
    }

    /// Hands a regular file to the workers: whole when its stored data fits in
    /// [`JOB_CHUNK`], else created here and sent in pieces. The name is free (any
    /// earlier entry of it was removed) and recorded as pending until done.
    fn dispatch_file<E: EntryReader>(
        &mut self,
        reader: &mut E,
        e: Entry,
        rel: Vec<u8>,
        parent: Arc<OwnedFd>,
        name: Vec<u8>,
        ids: Ids,
    ) -> Result<(), TreeError> {
        let (uid, gid) = ids.owner;
        let times = ids.times;
        let seq = self.seq;
        let exact = self.exact(&e, uid, gid);
        let Some(pool) = self.pool.as_mut() else {
            return Err(stopped(&e.path));
        };
        let mut runs = DataRuns::new(&e)?;
        // Only whole files are created by a worker with their own mode; a big one is
        // created here and finished with the full metadata.
        let exact = exact && runs.total <= JOB_CHUNK as u64;
        let parent_rel = match rel.iter().rposition(|&c| c == b'/') {
            Some(p) => &rel[..p],
            None => &[][..],
        };
        pool.mark_busy(parent_rel);
        pool.pending.insert(rel.clone(), seq);
        let replace = self.seen.is_none();
        let meta = |entry, exact| FileMeta {
            seq,
            rel,
            entry,
            uid,
            gid,
            times,
            exact,
            replace,
        };
        if runs.total <= JOB_CHUNK as u64 {
            let (data, runs) = pool.read_whole(reader, &mut runs, &e)?;
            let job = Job::Whole {
                meta: Box::new(meta(e, exact)),
                parent,
                name,
                data,
                runs,
            };
            return pool.send(job);
        }
        let file = create_file(parent.as_fd(), &name, &e.path, create_mode(&e, false))?;
        let big = Arc::new(BigFile {
            meta: meta(e, false),
            file,
            refs: AtomicUsize::new(1),
            bytes: AtomicU64::new(0),
            error: Mutex::new(None),
        });
        loop {
            let pieces = pool.read_piece(reader, &mut runs, &big.meta.entry)?;
            if pieces.len == 0 {
                break;
            }
            big.refs.fetch_add(1, Ordering::AcqRel);
            let job = Job::Piece {
                file: big.clone(),
                pieces,
            };
            pool.send(job)?;
        }
        if let Some(d) = big.release() {
            pool.handle(d);
        }
        Ok(())
    }

    /// Applies deferred directory metadata, children before parents (reverse of a
    /// component-wise sort keeps siblings together, so the fd cache still helps).
    /// Runs after every worker has finished: creating entries changes a directory's
    /// mtime, and modes like 0555 would stop them.
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
                .descend(parents, &e.path, &mut self.stats.warnings, &mut |_| {
                    Ok(false)
                })?;
            let fd =
                open_dir(self.dirs.cur(), name).map_err(|er| parent_error(&e.path, &comps, er))?;
            meta_fd(fd.as_fd(), &e, uid, gid, &times, &mut self.stats.warnings)?;
        }
        self.dirs.stack.clear();
        Ok(())
    }

    /// Whether creating `e` with its own mode gives its owner and mode.
    fn exact(&self, e: &Entry, uid: Uid, gid: Gid) -> bool {
        self.create_ids
            .is_some_and(|ids| ids.exact(uid, gid, e.mode))
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
            return Err(TreeError::UnsupportedInput {
                entry: display_path(&e.path),
                reason: "owner id 4294967295 cannot be set".into(),
            });
        }
        Ok((Uid::from_raw(uid), Gid::from_raw(gid)))
    }
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

#[cfg(test)]
mod tests {
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use crate::testkit::raw_tar_entry as entry;
    use crate::tree::restore::pool::JOB_CHUNK;
    use crate::tree::restore::{restore, RestoreOptions};

    fn run(entries: &[Vec<u8>], threads: usize) -> (tempfile::TempDir, Result<(), String>) {
        let mut tar = entries.concat();
        tar.extend_from_slice(&[0u8; 1024]);
        let dir = tempfile::tempdir().unwrap();
        let opts = RestoreOptions {
            threads,
            ..RestoreOptions::default()
        };
        let r = restore(&tar[..], dir.path(), b"rootimg", &opts).map(|_| ());
        (dir, r.map_err(|e| e.to_string()))
    }

    /// Into an empty destination no list of names is kept: the file system says what
    /// an earlier entry made. Replacing, linking and refusing must work as with it.
    #[test]
    fn an_empty_destination_answers_for_earlier_entries() {
        use tar::EntryType as T;
        let top = entry(b"rootimg/", T::Directory, b"", b"", 0o755);
        for threads in [1, 2] {
            let (dir, r) = run(
                &[
                    top.clone(),
                    entry(b"rootimg/f", T::Regular, b"first", b"", 0o644),
                    entry(b"rootimg/f", T::Regular, b"second", b"", 0o664),
                    entry(b"rootimg/h", T::Link, b"", b"rootimg/f", 0o644),
                ],
                threads,
            );
            r.unwrap();
            let f = dir.path().join("f");
            assert_eq!(fs::read(&f).unwrap(), b"second");
            let md = fs::metadata(&f).unwrap();
            assert_eq!((md.permissions().mode() & 0o7777, md.nlink()), (0o664, 2));
            // A directory is never a hard link target, even one the archive made.
            let (_, r) = run(
                &[
                    top.clone(),
                    entry(b"rootimg/d/", T::Directory, b"", b"", 0o755),
                    entry(b"rootimg/h", T::Link, b"", b"rootimg/d", 0o644),
                ],
                threads,
            );
            assert!(r.unwrap_err().contains("not an earlier entry"));
            // Nor a name below a directory that does not exist.
            let (_, r) = run(
                &[
                    top.clone(),
                    entry(b"rootimg/h", T::Link, b"", b"rootimg/no/such", 0o644),
                ],
                threads,
            );
            assert!(r.unwrap_err().contains("not an earlier entry"));
        }
    }

    /// Files travel to the workers in batches (pool.rs): many small files, files
    /// that fill a batch's bytes, a big file cut into pieces, and names the
    /// dispatcher must wait for (a file replaced, a file turned into a directory, a
    /// hard link) while their jobs may still sit in an unsent batch.
    #[test]
    fn batched_files_all_land_and_waits_see_unsent_jobs() {
        use tar::EntryType as T;
        let content = |i: usize| -> Vec<u8> {
            let len = match i % 7 {
                0 => 0,
                1 => 200 * 1024,
                _ => i * 13 % 5000,
            };
            (0..len).map(|k| (k * 31 + i) as u8).collect()
        };
        let big: Vec<u8> = (0..(2 * JOB_CHUNK + 12345))
            .map(|k| (k % 251) as u8)
            .collect();
        let mut entries = vec![entry(b"rootimg/", T::Directory, b"", b"", 0o755)];
        // First, waits on names whose jobs are still in the batch being filled.
        for name in [&b"rootimg/a"[..], b"rootimg/b", b"rootimg/c"] {
            entries.push(entry(name, T::Regular, b"tiny", b"", 0o644));
        }
        entries.push(entry(b"rootimg/a", T::Regular, b"replaced", b"", 0o640));
        entries.push(entry(b"rootimg/b/", T::Directory, b"", b"", 0o755));
        entries.push(entry(b"rootimg/b/in", T::Regular, b"inside", b"", 0o644));
        entries.push(entry(b"rootimg/link", T::Link, b"", b"rootimg/c", 0o644));
        for i in 0..300 {
            let name = format!("rootimg/f{i:03}");
            entries.push(entry(name.as_bytes(), T::Regular, &content(i), b"", 0o644));
        }
        entries.push(entry(b"rootimg/big", T::Regular, &big, b"", 0o600));
        for threads in [1, 2, 3] {
            // A job the dispatcher waits for but never sent deadlocks: fail, not hang.
            let (tx, rx) = std::sync::mpsc::channel();
            let all = entries.clone();
            std::thread::spawn(move || tx.send(run(&all, threads)));
            let (dir, r) = rx
                .recv_timeout(std::time::Duration::from_secs(120))
                .expect("the restore finished (a wait on an unsent job deadlocks)");
            r.unwrap();
            for i in 0..300 {
                let got = fs::read(dir.path().join(format!("f{i:03}"))).unwrap();
                assert_eq!(got, content(i), "f{i:03} with {threads} threads");
            }
            assert_eq!(fs::read(dir.path().join("big")).unwrap(), big);
            assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"replaced");
            assert_eq!(fs::read(dir.path().join("b/in")).unwrap(), b"inside");
            let link = fs::metadata(dir.path().join("link")).unwrap();
            assert_eq!(link.nlink(), 2);
            assert_eq!(fs::read(dir.path().join("c")).unwrap(), b"tiny");
        }
    }

    #[test]
    fn setuid_files_and_other_owners_keep_the_full_metadata_order() {
        use tar::EntryType as T;
        let mut suid = entry(b"rootimg/su", T::Regular, b"x", b"", 0o4755);
        let mut h = tar::Header::from_byte_slice(&suid[..512]).clone();
        h.set_uid(1234);
        h.set_gid(99);
        h.set_cksum();
        suid[..512].copy_from_slice(h.as_bytes());
        for threads in [1, 2] {
            let (dir, r) = run(
                &[
                    entry(b"rootimg/", T::Directory, b"", b"", 0o755),
                    suid.clone(),
                    entry(b"rootimg/g", T::Regular, b"y", b"", 0o2711),
                ],
                threads,
            );
            r.unwrap();
            let su = fs::metadata(dir.path().join("su")).unwrap();
            assert_eq!((su.mode() & 0o7777, su.uid(), su.gid()), (0o4755, 1234, 99));
            let g = fs::metadata(dir.path().join("g")).unwrap();
            assert_eq!(g.mode() & 0o7777, 0o2711);
        }
    }
}

//! The file-writer pool of a parallel restore: the dispatcher hands regular files
//! (whole, or in [`JOB_CHUNK`] pieces) to workers, which create them relative to the
//! parent directory fd it opened, write data and metadata, and report back. What the
//! dispatcher must know to keep the restore as strict as the sequential one (names a
//! worker still owns, directories files went into) is kept here too.
//!
//! Jobs travel in [`Batch`]es: on a tree of small files a channel message (and the
//! wakeup of a parked worker) per file cost more CPU than writing the file did
//! (17 % of an import of 10^5 files went to futex wakeups). A batch is sent when it
//! is full, and before the dispatcher waits for a worker, so nothing it waits for
//! can sit in an unsent batch.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::ops::Range;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{Scope, ScopedJoinHandle};

use crossbeam_channel::{Receiver, Sender};
use rustix::fs::{self as rfs, Gid, OFlags, Timestamps, Uid};
use rustix::io::Errno;

use super::at::{create_mode, io_err, meta_fd, meta_fd_created, remove};
use crate::tree::entry::Entry;
use crate::tree::error::{display_path, TreeError};
use crate::tree::format::tar_decode::EntryReader;

/// Batches queued per worker: enough to keep each busy while the dispatcher decodes.
pub(super) const JOBS_PER_WORKER: usize = 4;

/// Stored bytes of a file handed to a worker in one job; bigger files are split into
/// pieces of this size. Large enough that per-job overhead (a channel hop, a wakeup)
/// is small next to the write, small enough that queued jobs stay a few MiB.
pub const JOB_CHUNK: usize = 1 << 20;

/// A batch is sent once it holds this many jobs...
const BATCH_JOBS: usize = 64;
/// ... or this many bytes of file data (so queued data stays about
/// `JOBS_PER_WORKER × threads × (BATCH_BYTES + JOB_CHUNK)` at most).
const BATCH_BYTES: usize = 256 * 1024;

/// The error a dispatcher returns when it stops because a worker failed (the worker's
/// own error, earlier in archive order, is what the caller gets) or the workers are
/// gone.
pub(super) fn stopped(entry: &[u8]) -> TreeError {
    TreeError::Unsupported {
        entry: display_path(entry),
        reason: "restore stopped: a file writer failed".into(),
    }
}

/// Dispatcher-side state of the worker pool.
pub(super) struct Pool {
    /// The batch queue; `None` once closed.
    tx: Option<Sender<Batch>>,
    /// Jobs not sent yet.
    batch: Batch,
    pub(super) done: Receiver<Done>,
    /// Data buffers the workers are done with.
    spares: Receiver<Vec<u8>>,
    /// Set when the restore is lost: workers drop the jobs still queued.
    abort: Arc<AtomicBool>,
    /// `dest` was empty at the start: a name the archive has not created yet does
    /// not exist.
    pub(super) dest_empty: bool,
    /// Names (below top) a worker is still creating or writing, with the entry's
    /// sequence number.
    pub(super) pending: HashMap<Vec<u8>, u64>,
    /// Directories into which files were dispatched: never to be replaced.
    pub(super) busy: HashSet<Vec<u8>>,
    /// The last directory added to `busy` (consecutive files share it).
    pub(super) last_busy: Option<Vec<u8>>,
    /// Parent directories created because the archive lacked them.
    pub(super) made_dirs: HashSet<Vec<u8>>,
    /// Worker failures, by entry sequence number.
    pub(super) errors: Vec<(u64, TreeError)>,
    pub(super) warnings: Vec<(u64, String)>,
    pub(super) bytes: u64,
}

impl Pool {
    /// Starts `threads` workers in scope `s`, with a queue of
    /// `JOBS_PER_WORKER × threads` batches. `dest_empty`: the destination held nothing, so a
    /// name the archive has not created yet does not exist.
    pub(super) fn start<'scope>(
        s: &'scope Scope<'scope, '_>,
        threads: usize,
        dest_empty: bool,
    ) -> (Pool, Vec<ScopedJoinHandle<'scope, ()>>) {
        let depth = threads * JOBS_PER_WORKER;
        let (tx, rx) = crossbeam_channel::bounded::<Batch>(depth);
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<Done>();
        // Data buffers go back to the dispatcher for reuse: a fresh one costs a page
        // fault and a clear per 4 KiB, as much as the copy into it.
        let (spare_tx, spare_rx) = crossbeam_channel::bounded::<Vec<u8>>(depth + threads);
        let abort = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (rx, done, spares) = (rx.clone(), done_tx.clone(), spare_tx.clone());
                let abort = abort.clone();
                s.spawn(move || worker(rx, done, spares, &abort))
            })
            .collect();
        let pool = Pool {
            tx: Some(tx),
            batch: Batch::default(),
            done: done_rx,
            spares: spare_rx,
            abort,
            dest_empty,
            pending: HashMap::new(),
            busy: HashSet::new(),
            last_busy: None,
            made_dirs: HashSet::new(),
            errors: Vec::new(),
            warnings: Vec::new(),
            bytes: 0,
        };
        (pool, workers)
    }

    /// Stops the pool once the dispatcher is done (`dispatched`: how it ended): on
    /// error the workers drop what is queued. Returns the bytes the workers wrote and
    /// their warnings by entry, or the first error in archive order among the
    /// dispatcher's and the workers' (a dispatcher error of the same entry wins).
    pub(super) fn finish(
        mut self,
        workers: Vec<ScopedJoinHandle<'_, ()>>,
        dispatched: Result<(), (u64, TreeError)>,
    ) -> Result<(u64, Vec<(u64, String)>), TreeError> {
        let dispatched = match dispatched {
            Ok(()) => self.flush().map_err(|e| (u64::MAX, e)),
            Err(e) => Err(e),
        };
        if dispatched.is_err() {
            self.abort.store(true, Ordering::Relaxed);
        }
        // Closing the queue lets the workers run out; on error they drop what is left.
        self.tx = None;
        let mut panicked = false;
        for w in workers {
            panicked |= w.join().is_err();
        }
        while let Ok(d) = self.done.try_recv() {
            self.handle(d);
        }
        let mut errors = self.errors;
        if let Err((seq, e)) = dispatched {
            errors.insert(0, (seq, e));
        }
        if panicked {
            errors.push((u64::MAX, stopped(b"<restore worker>")));
        }
        // The sort is stable: the dispatcher's error, inserted first, wins a tie.
        errors.sort_by_key(|(seq, _)| *seq);
        if let Some((_, e)) = errors.into_iter().next() {
            return Err(e);
        }
        Ok((self.bytes, self.warnings))
    }

    pub(super) fn handle(&mut self, d: Done) {
        if self.pending.get(&d.rel) == Some(&d.seq) {
            self.pending.remove(&d.rel);
        }
        self.bytes = self.bytes.saturating_add(d.bytes);
        self.warnings
            .extend(d.warnings.into_iter().map(|w| (d.seq, w)));
        if let Err(e) = d.result {
            self.errors.push((d.seq, e));
        }
    }

    /// Takes in what the workers finished, without blocking.
    pub(super) fn poll(&mut self) {
        while let Ok(d) = self.done.try_recv() {
            self.handle(d);
        }
    }

    /// Blocks until no worker owns `rel`. False when the restore must stop instead
    /// (a worker failed, or all are gone).
    pub(super) fn wait_for(&mut self, rel: &[u8]) -> bool {
        if self.pending.contains_key(rel) && self.flush().is_err() {
            return false;
        }
        while self.pending.contains_key(rel) {
            if !self.errors.is_empty() {
                return false;
            }
            match self.done.recv() {
                Ok(d) => self.handle(d),
                Err(_) => return false,
            }
        }
        self.errors.is_empty()
    }

    /// Records that a file is being created in directory `parent`.
    pub(super) fn mark_busy(&mut self, parent: &[u8]) {
        if self.last_busy.as_deref() != Some(parent) {
            self.busy.insert(parent.to_vec());
            self.last_busy = Some(parent.to_vec());
        }
    }

    /// Reads all the stored data of `e`, at most [`JOB_CHUNK`] bytes, into the
    /// batch; returns where it is, for [`Job::Whole`].
    pub(super) fn read_whole<E: EntryReader>(
        &mut self,
        reader: &mut E,
        runs: &mut DataRuns,
        e: &Entry,
    ) -> Result<(Range<usize>, Range<usize>), TreeError> {
        let b = &mut self.batch;
        if b.data.capacity() == 0 {
            b.data = self.spares.try_recv().unwrap_or_default();
        }
        let (data_from, runs_from) = (b.used, b.runs.len());
        b.used += runs.next(reader, JOB_CHUNK, e, &mut b.data, b.used, &mut b.runs)?;
        Ok((data_from..b.used, runs_from..b.runs.len()))
    }

    /// Reads the next [`JOB_CHUNK`] stored bytes (fewer at the end) of the big file
    /// `e` into a buffer of their own, for [`Job::Piece`].
    pub(super) fn read_piece<E: EntryReader>(
        &mut self,
        reader: &mut E,
        runs: &mut DataRuns,
        e: &Entry,
    ) -> Result<Pieces, TreeError> {
        let mut data = self.spares.try_recv().unwrap_or_default();
        let mut pieces = Vec::new();
        let len = runs.next(reader, JOB_CHUNK, e, &mut data, 0, &mut pieces)?;
        Ok(Pieces {
            data,
            len,
            runs: pieces,
        })
    }

    /// Queues a job; the batch goes to the workers once full.
    pub(super) fn send(&mut self, job: Job) -> Result<(), TreeError> {
        if let Job::Piece { pieces, .. } = &job {
            self.batch.own_bytes += pieces.len;
        }
        self.batch.jobs.push(job);
        if self.batch.jobs.len() >= BATCH_JOBS
            || self.batch.used + self.batch.own_bytes >= BATCH_BYTES
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends the jobs queued so far. When the workers are gone, the error names the
    /// batch's last file.
    fn flush(&mut self) -> Result<(), TreeError> {
        if self.batch.jobs.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.batch);
        match &self.tx {
            Some(tx) => tx
                .send(batch)
                .map_err(|unsent| stopped(unsent.into_inner().last_path())),
            None => Err(stopped(batch.last_path())),
        }
    }
}

/// Jobs sent to the workers in one message, with the data of their whole files.
#[derive(Default)]
struct Batch {
    jobs: Vec<Job>,
    /// Stored data of the whole files, back to back in `data[..used]`: a recycled
    /// buffer, longer than what is used and never cleared (what it held is
    /// overwritten).
    data: Vec<u8>,
    used: usize,
    /// `(file offset, length)` runs of the whole files' data, in order.
    runs: Vec<(u64, usize)>,
    /// Data bytes of the big files' pieces in `jobs`.
    own_bytes: usize,
}

impl Batch {
    /// The archive path of the last file queued, for errors.
    fn last_path(&self) -> &[u8] {
        match self.jobs.last() {
            Some(Job::Whole { meta, .. }) => &meta.entry.path,
            Some(Job::Piece { file, .. }) => &file.meta.entry.path,
            None => b"<restore>",
        }
    }
}

/// What a worker needs to finish a file: the entry and its resolved owner and times.
pub(super) struct FileMeta {
    pub(super) seq: u64,
    pub(super) rel: Vec<u8>,
    pub(super) entry: Entry,
    pub(super) uid: Uid,
    pub(super) gid: Gid,
    pub(super) times: Timestamps,
    /// Creating the file with its own mode gives the right owner and mode
    /// ([`CreateIds::exact`](super::at::CreateIds::exact)).
    pub(super) exact: bool,
    /// The destination was empty, so the dispatcher keeps no list of names made:
    /// a name found on create is an earlier entry's (finished: the dispatcher waits
    /// for pending names) and is replaced, as the sequential restore does.
    pub(super) replace: bool,
}

/// Stored data for a file: `data[..len]` cut into `(file offset, length)` pieces in
/// order. `data` is a recycled buffer and may be longer than `len`.
pub(super) struct Pieces {
    pub(super) data: Vec<u8>,
    pub(super) len: usize,
    pub(super) runs: Vec<(u64, usize)>,
}

impl Pieces {
    /// The data read and where it goes.
    fn view(&self) -> Runs<'_> {
        Runs {
            data: &self.data[..self.len.min(self.data.len())],
            runs: &self.runs,
        }
    }
}

/// A file bigger than [`JOB_CHUNK`], created by the dispatcher and written in pieces.
pub(super) struct BigFile {
    pub(super) meta: FileMeta,
    pub(super) file: File,
    /// Pieces not yet written, plus one held by the dispatcher until it has sent
    /// them all; whoever drops it to zero applies the metadata.
    pub(super) refs: AtomicUsize,
    pub(super) bytes: AtomicU64,
    pub(super) error: Mutex<Option<TreeError>>,
}

pub(super) enum Job {
    /// A whole file: create it in `parent`, write, apply metadata. Its data is in
    /// the batch: `data` and `runs` say where.
    Whole {
        meta: Box<FileMeta>,
        parent: Arc<OwnedFd>,
        name: Vec<u8>,
        data: Range<usize>,
        runs: Range<usize>,
    },
    /// One piece of a [`BigFile`].
    Piece { file: Arc<BigFile>, pieces: Pieces },
}

/// A file finished (or failed) by a worker.
pub(super) struct Done {
    pub(super) seq: u64,
    pub(super) rel: Vec<u8>,
    pub(super) bytes: u64,
    pub(super) warnings: Vec<String>,
    pub(super) result: Result<(), TreeError>,
}

fn worker(
    batches: Receiver<Batch>,
    done: Sender<Done>,
    spares: Sender<Vec<u8>>,
    abort: &AtomicBool,
) {
    for mut batch in batches {
        for job in batch.jobs.drain(..) {
            // After a failure the restore is lost: drop the rest quickly. (Skipped
            // jobs send nothing; the dispatcher stops waiting once it has seen the
            // failure, which is sent before `abort` is set.)
            if abort.load(Ordering::Relaxed) {
                continue;
            }
            let msg = match job {
                Job::Whole {
                    meta,
                    parent,
                    name,
                    data,
                    runs,
                } => {
                    let mut warnings = Vec::new();
                    let bytes = data.len() as u64;
                    let result = match (batch.data.get(data), batch.runs.get(runs)) {
                        (Some(data), Some(runs)) => {
                            let file_data = Runs { data, runs };
                            write_whole(parent.as_fd(), &name, &meta, file_data, &mut warnings)
                        }
                        _ => Err(TreeError::Unsupported {
                            entry: display_path(&meta.entry.path),
                            reason: "internal error: the file's data is not in its batch".into(),
                        }),
                    };
                    drop(parent);
                    Done {
                        seq: meta.seq,
                        rel: meta.rel,
                        bytes,
                        warnings,
                        result,
                    }
                }
                Job::Piece { file, pieces } => {
                    if let Err(e) = write_runs(&file.file, pieces.view(), &file.meta.entry.path) {
                        file.fail(e);
                    }
                    file.bytes.fetch_add(pieces.len as u64, Ordering::Relaxed);
                    let _ = spares.try_send(pieces.data);
                    match file.release() {
                        Some(d) => d,
                        None => continue,
                    }
                }
            };
            let failed = msg.result.is_err();
            if done.send(msg).is_err() {
                return;
            }
            if failed {
                abort.store(true, Ordering::Relaxed);
            }
        }
        if batch.data.capacity() > 0 {
            let _ = spares.try_send(batch.data);
        }
    }
}

/// Stored data and the `(file offset, length)` runs it goes to, in order.
#[derive(Clone, Copy)]
pub(super) struct Runs<'a> {
    pub(super) data: &'a [u8],
    pub(super) runs: &'a [(u64, usize)],
}

/// Creates a fresh file in `parent`, writes its data, then its metadata.
pub(super) fn write_whole(
    parent: BorrowedFd<'_>,
    name: &[u8],
    meta: &FileMeta,
    data: Runs<'_>,
    warnings: &mut Vec<String>,
) -> Result<(), TreeError> {
    let e = &meta.entry;
    // Unless `meta.replace`, the dispatcher removed whatever an earlier entry left
    // under this name, so O_EXCL failing means someone else is writing into the
    // tree: an error.
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let open = || rfs::openat(parent, name, flags, create_mode(e, meta.exact));
    let fd = match open() {
        Err(Errno::EXIST) if meta.replace => {
            remove(parent, name, &e.path)?;
            open()
        }
        r => r,
    }
    .map_err(|er| io_err(&e.path, "create", er))?;
    let file = File::from(fd);
    write_runs(&file, data, &e.path)?;
    if e.sparse.is_some() {
        file.set_len(e.size)
            .map_err(|er| io_err(&e.path, "truncate", er))?;
    }
    meta_fd_created(
        file.as_fd(),
        e,
        meta.uid,
        meta.gid,
        &meta.times,
        meta.exact,
        warnings,
    )
}

pub(super) fn write_runs(file: &File, data: Runs<'_>, path: &[u8]) -> Result<(), TreeError> {
    let mut at = 0usize;
    for &(off, len) in data.runs {
        let end = at.saturating_add(len).min(data.data.len());
        file.write_all_at(&data.data[at..end], off)
            .map_err(|er| io_err(path, "write", er))?;
        at = end;
    }
    Ok(())
}

impl BigFile {
    pub(super) fn fail(&self, e: TreeError) {
        if let Ok(mut slot) = self.error.lock() {
            slot.get_or_insert(e);
        }
    }

    /// The real length (sparse files), then owner, mode, xattrs, times.
    pub(super) fn finish(&self, warnings: &mut Vec<String>) -> Result<(), TreeError> {
        let m = &self.meta;
        if m.entry.sparse.is_some() {
            self.file
                .set_len(m.entry.size)
                .map_err(|er| io_err(&m.entry.path, "truncate", er))?;
        }
        meta_fd(
            self.file.as_fd(),
            &m.entry,
            m.uid,
            m.gid,
            &m.times,
            warnings,
        )
    }

    /// Drops one reference; the last one applies the length and metadata and
    /// returns the file's [`Done`].
    pub(super) fn release(&self) -> Option<Done> {
        if self.refs.fetch_sub(1, Ordering::AcqRel) != 1 {
            return None;
        }
        let m = &self.meta;
        let mut warnings = Vec::new();
        let failed = self.error.lock().ok().and_then(|mut e| e.take());
        let result = match failed {
            Some(e) => Err(e),
            None => self.finish(&mut warnings),
        };
        Some(Done {
            seq: m.seq,
            rel: m.rel.clone(),
            bytes: self.bytes.load(Ordering::Relaxed),
            warnings,
            result,
        })
    }
}

/// Walks a file's stored data in order, mapping it onto file offsets.
pub(super) struct DataRuns {
    /// `(file offset, length)` of each stored run: `[(0, size)]` for a dense file,
    /// the non-empty sparse segments otherwise.
    pub(super) runs: Vec<(u64, u64)>,
    pub(super) i: usize,
    pub(super) done: u64,
    pub(super) total: u64,
}

impl DataRuns {
    pub(super) fn new(e: &Entry) -> Result<DataRuns, TreeError> {
        let bad = |reason: &str| TreeError::Format {
            entry: display_path(&e.path),
            reason: reason.into(),
        };
        let runs: Vec<(u64, u64)> = match &e.sparse {
            None => vec![(0, e.size)],
            Some(map) => map.iter().copied().filter(|&(_, len)| len > 0).collect(),
        };
        let mut total = 0u64;
        for &(off, len) in &runs {
            off.checked_add(len)
                .ok_or_else(|| bad("sparse segment beyond the largest file offset"))?;
            total = total
                .checked_add(len)
                .ok_or_else(|| bad("sparse map adds up to more than 2^64 bytes"))?;
        }
        Ok(DataRuns {
            runs,
            i: 0,
            done: 0,
            total,
        })
    }

    /// Reads up to `max` stored bytes (fewer at the end) from `reader` into `data`
    /// from `at` on, and appends their `(file offset, length)` runs to `runs`; returns
    /// the bytes read. `data` is a recycled buffer, grown as needed; what it holds is
    /// overwritten, never cleared.
    pub(super) fn next<E: EntryReader>(
        &mut self,
        reader: &mut E,
        max: usize,
        e: &Entry,
        data: &mut Vec<u8>,
        at: usize,
        runs: &mut Vec<(u64, usize)>,
    ) -> Result<usize, TreeError> {
        let mut filled = 0usize;
        while filled < max && self.i < self.runs.len() {
            let (off, len) = self.runs[self.i];
            let room = (max - filled) as u64;
            let want = (len - self.done).min(room) as usize;
            let start = at + filled;
            if data.len() < start + want {
                data.resize(start + want, 0);
            }
            let mut got = 0;
            while got < want {
                let n = reader.read_data(&mut data[start + got..start + want])?;
                if n == 0 {
                    return Err(TreeError::Format {
                        entry: display_path(&e.path),
                        reason: "the archive holds less data than the entry describes".into(),
                    });
                }
                got += n;
            }
            // off + len does not overflow (checked in `new`), and done < len.
            runs.push((off + self.done, want));
            filled += want;
            self.done += want as u64;
            if self.done == len {
                self.i += 1;
                self.done = 0;
            }
        }
        Ok(filled)
    }
}

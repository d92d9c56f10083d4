//! The parallel tree encoder behind
//! [`write_tree`](crate::tree::encode::writer::write_tree): it turns a
//! [`WalkStream`](crate::tree::encode::walk::WalkStream) into the data units and index
//! of a FORMAT.md v1 tree, gzip members (`rootimgtree.gz`, FORMAT.md §2) or zstd
//! frames (`rootimgtree.zst`, FORMAT.md §6); what differs between the two is behind
//! [`Codec`] and [`UnitEncoder`].
//!
//! Three roles, connected by bounded crossbeam channels:
//! - one **planner** thread walks the tree, encodes every entry's tar header, and cuts
//!   the tar stream into units where FORMAT.md §2.1 (§6 for zstd) says members start.
//!   A unit is a plan (headers, and which byte ranges of which files), not data;
//! - N **workers** read the file data of a unit (pread, O_NOFOLLOW), build its tar
//!   bytes, digest the unit (BLAKE3, for the index) and compress it into one gzip
//!   member or zstd frame;
//! - the **writer** (the calling thread) puts units in order, records them and the
//!   entries in the index, and writes the codec's trailer.
//!
//! What it must never do: let the output depend on the thread count or on timing (cut
//! points come from the tree alone; members are written in planning order), or hold
//! file data beyond the units in flight (a token per unit bounds planned + queued +
//! encoded + reordered units to `2 × workers`, whatever the file or tree size). Files
//! are read, never memory-mapped: a file truncated while mapped raises SIGBUS.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crossbeam_channel::{bounded, Receiver, Sender};
use rustix::io::Errno;

use crate::tree::codec::{self, Codec, UnitEncoder, UnitRecord};
use crate::tree::encode::entry::{open_source, output_error};
use crate::tree::encode::walk::{Prefetched, PrefetchedItem};
use crate::tree::entry::{Entry, Kind};
use crate::tree::error::{display_path, TreeError};
use crate::tree::format::index::{IndexBuilder, IndexEntry, MemberInfo, DIGEST_CHUNK_BYTES};
use crate::tree::format::tar_header::{
    encode_header_into, end_of_archive, padding, END_OF_ARCHIVE_BYTES,
};
use crate::tree::threads;

/// Units in flight per worker (planned but not yet written): enough to keep every
/// worker busy while the writer waits for a slow unit, few enough to bound memory
/// (each unit is at most about 5 MiB of tar bytes, plus its compressed form).
const UNITS_IN_FLIGHT_PER_WORKER: usize = 2;

/// Regular files up to this size are read by the walk while it has them open for
/// their metadata ([`WalkStream::prefetch_small_files`]): on a tree of many small
/// files, opening each by path again in a worker cost more system time than the walk.
/// The data then travels in the unit's plan, so it is bounded like a unit.
///
/// [`WalkStream::prefetch_small_files`]: crate::tree::encode::walk::WalkStream::prefetch_small_files
pub(super) const PREFETCH_MAX_BYTES: u64 = 64 * 1024;

/// What the pipeline produced besides the bytes written.
#[derive(Debug, Default)]
pub(super) struct PipelineStats {
    /// Entries archived (= index entries).
    pub entries: u64,
    /// Uncompressed tar bytes.
    pub bytes_in: u64,
    /// Bytes written to the output, index and footer included.
    pub bytes_out: u64,
    /// Data members written.
    pub members: u64,
    /// Read warnings (files that changed or vanished), in archive order.
    pub warnings: Vec<String>,
}

/// Encodes `entries` (in archive order, as a
/// [`WalkStream`](crate::tree::encode::walk::WalkStream) yields them; the first `Err`
/// ends the archive with that error) as `codec` data units at gzip-scale `level` on
/// `workers` threads (resolved by [`threads::resolve`]: 0 is one per core), then the
/// codec's trailer (index, footer, zstd seek table), onto `out`. The entries are
/// consumed on the planner thread, so a walk borrowed as `&mut stream` keeps its
/// warnings for the caller.
#[cfg(test)]
pub(super) fn encode<I, W>(
    entries: I,
    out: &mut W,
    codec: Codec,
    level: u32,
    workers: usize,
    progress: &crate::progress::Handle,
) -> Result<PipelineStats, TreeError>
where
    I: Iterator<Item = Result<(Entry, PathBuf), TreeError>> + Send,
    W: Write,
{
    let entries = entries.map(|item| item.map(|(entry, src)| (entry, src, None)));
    encode_prefetched(entries, out, codec, level, workers, progress)
}

/// [`encode`] for entries that may carry their file's data already read
/// ([`WalkStream::next_prefetched`]); such data must be the whole stored size or
/// less (a file that shrank), never more.
///
/// [`WalkStream::next_prefetched`]: crate::tree::encode::walk::WalkStream::next_prefetched
pub(super) fn encode_prefetched<I, W>(
    entries: I,
    out: &mut W,
    codec: Codec,
    level: u32,
    workers: usize,
    progress: &crate::progress::Handle,
) -> Result<PipelineStats, TreeError>
where
    I: Iterator<Item = Result<PrefetchedItem, TreeError>> + Send,
    W: Write,
{
    let workers = threads::resolve(workers);
    let in_flight = UNITS_IN_FLIGHT_PER_WORKER * workers;
    let (unit_tx, unit_rx) = bounded::<Unit>(workers);
    let (done_tx, done_rx) = bounded::<Result<Encoded, TreeError>>(in_flight);
    let (token_tx, token_rx) = bounded::<()>(in_flight);
    // Plan buffers go back to the planner: one per unit in flight, plus one per
    // worker being filled or emptied.
    let (spare_tx, spare_rx) = bounded::<Vec<u8>>(in_flight + workers);
    for _ in 0..in_flight {
        // Cannot fail: the channel has room for exactly these tokens and we hold its
        // receiver.
        let _ = token_tx.send(());
    }
    std::thread::scope(|scope| {
        let target = codec.unit_target_bytes();
        let planner =
            scope.spawn(move || run_planner(entries, unit_tx, token_rx, spare_rx, target));
        for _ in 0..workers {
            let units = unit_rx.clone();
            let done = done_tx.clone();
            let spares = spare_tx.clone();
            scope.spawn(move || work(units, done, spares, codec, level));
        }
        drop(spare_tx);
        // Only the threads may hold these ends: the writer must see the result channel
        // close when the workers are gone, and the workers when the planner is.
        drop(unit_rx);
        drop(done_tx);
        let written = write_members(done_rx, token_tx, out, codec, progress);
        let planned = planner
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p));
        match (written, planned) {
            (Ok(w), Ok(())) => Ok(PipelineStats {
                entries: w.entries,
                bytes_in: w.bytes_in,
                bytes_out: w.bytes_out,
                members: w.members,
                warnings: w.warnings,
            }),
            // The planner's own error explains why the members stopped coming.
            (Err(WriteError::Incomplete), Err(PlannerError::Tree(e))) => Err(e),
            (Err(WriteError::Tree(e)), _) => Err(e),
            (Err(WriteError::Incomplete), _) | (Ok(_), Err(_)) => Err(internal(
                "the encoder stopped before the end of the archive",
            )),
        }
    })
}

/// A file whose data some units read: where it is and how its stored bytes map onto
/// it. Shared by the units its pieces fall in.
struct Source {
    path: PathBuf,
    /// `(file offset, length)` of each stored segment: the whole file when dense.
    segments: Vec<(u64, u64)>,
    /// Stored-data offset at which each segment starts (prefix sums of the lengths).
    starts: Vec<u64>,
    /// Stored bytes in all (the header's promise).
    stored: u64,
}

impl Source {
    fn new(path: PathBuf, entry: &Entry) -> Source {
        let segments = match &entry.sparse {
            Some(map) => map.clone(),
            None => vec![(0, entry.size)],
        };
        let mut starts = Vec::with_capacity(segments.len());
        let mut at = 0u64;
        for &(_, len) in &segments {
            starts.push(at);
            at += len;
        }
        Source {
            path,
            segments,
            starts,
            stored: at,
        }
    }

    /// The file ranges `(file offset, length)` holding stored bytes
    /// `[start, start + len)`, in order.
    fn ranges(&self, start: u64, len: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        let end = start + len;
        let first = self
            .starts
            .partition_point(|&s| s <= start)
            .saturating_sub(1);
        self.segments[first..]
            .iter()
            .zip(&self.starts[first..])
            .take_while(move |(_, &s)| s < end)
            .filter_map(move |(&(off, seg_len), &s)| {
                let from = start.max(s);
                let to = end.min(s + seg_len);
                (from < to).then(|| (off + (from - s), to - from))
            })
    }
}

/// One piece of a unit's plan, in tar order.
enum Part {
    /// An entry starts: its header bytes (pax header, ustar block, sparse map), at
    /// `header` in the unit's `plan` bytes. `reads` says whether `Data` parts for it
    /// follow (regular files with stored data, and sparse files, whose size is
    /// checked even when all hole).
    Entry {
        record: Box<IndexEntry>,
        header: Range<usize>,
        reads: bool,
    },
    /// Stored bytes `[start, start + len)` of the current file; `last` adds the tar
    /// padding after them.
    Data {
        source: Arc<Source>,
        start: u64,
        len: u64,
        last: bool,
    },
    /// All the stored bytes of the current file, read by the walk: `data` in the
    /// unit's `plan` bytes (zeros after it up to `size` if the file shrank), then the
    /// tar padding.
    Inline {
        data: Range<usize>,
        size: u64,
        now: u64,
    },
    /// The end-of-archive blocks.
    End,
}

/// What the planner hands a worker: one future member.
struct Unit {
    seq: u64,
    parts: Vec<Part>,
    /// The headers and small files' data the parts point into, back to back: one
    /// recycled buffer per unit rather than an allocation per entry, which the
    /// planner made and a worker freed (glibc then locks the planner's arena).
    plan: Vec<u8>,
    /// Tar bytes the unit will hold (checked by the worker).
    tar_bytes: u64,
}

/// A unit part after encoding, for the writer's index.
enum Done {
    Entry {
        record: Box<IndexEntry>,
        reads: bool,
    },
    Piece(PieceRead),
    End,
}

/// How reading one file piece went.
#[derive(Debug, Default)]
struct PieceRead {
    /// The file could not be opened (gone, replaced by a symlink, directory or special
    /// file): why; the piece is zeros.
    unopenable: Option<String>,
    /// Bytes archived as zeros because the file could not be opened.
    zeroed: u64,
    /// The file ended before the piece did: the rest is zeros.
    short: bool,
    /// File size after reading the last piece, to notice growth.
    now: Option<u64>,
    last: bool,
}

/// A unit compressed into one member or frame.
struct Encoded {
    seq: u64,
    member: Vec<u8>,
    info: MemberInfo,
    /// The codec's check value for the trailer ([`codec::EncodedUnit::check`]).
    check: u32,
    done: Vec<Done>,
}

enum PlannerError {
    Tree(TreeError),
    /// The writer stopped taking units (it failed); its error is the one to report.
    Stopped,
}

impl From<TreeError> for PlannerError {
    fn from(e: TreeError) -> Self {
        PlannerError::Tree(e)
    }
}

/// Where the planner takes a file's stored data from.
enum DataFrom {
    /// Not a regular file, or one with no stored data.
    Nothing,
    /// The walk read it whole.
    Inline(Prefetched),
    /// A worker reads it.
    Read(Arc<Source>),
}

/// Cuts the tar stream into units as FORMAT.md §2.1 says, in archive order.
struct Cutter {
    units: Sender<Unit>,
    tokens: Receiver<()>,
    /// Plan buffers the workers are done with.
    spares: Receiver<Vec<u8>>,
    seq: u64,
    parts: Vec<Part>,
    plan: Vec<u8>,
    /// Tar offset of the next byte to plan.
    pos: u64,
    /// Tar offset where the current unit starts.
    unit_start: u64,
    /// The codec's unit size: cut at the first entry boundary after this many bytes.
    target: u64,
}

impl Cutter {
    /// Ends the current unit here and hands it to the workers, once a token says
    /// there is room for one more unit in flight.
    fn cut(&mut self) -> Result<(), PlannerError> {
        if self.parts.is_empty() {
            return Ok(());
        }
        self.tokens.recv().map_err(|_| PlannerError::Stopped)?;
        let plan = self.spares.try_recv().unwrap_or_default();
        let unit = Unit {
            seq: self.seq,
            parts: std::mem::take(&mut self.parts),
            plan: std::mem::replace(&mut self.plan, plan),
            tar_bytes: self.pos - self.unit_start,
        };
        self.units.send(unit).map_err(|_| PlannerError::Stopped)?;
        self.seq += 1;
        self.unit_start = self.pos;
        Ok(())
    }

    /// Plans one entry: its header, then its data cut at every
    /// [`DIGEST_CHUNK_BYTES`] of stored data.
    fn entry(
        &mut self,
        entry: Entry,
        src: PathBuf,
        prefetched: Option<Prefetched>,
    ) -> Result<(), PlannerError> {
        if self.pos - self.unit_start >= self.target {
            self.cut()?;
        }
        // Headers are encoded here, not in the workers: the cut points and the index
        // offsets depend on their lengths, and encoding twice would cost more than the
        // little the workers would gain.
        let header_at = self.plan.len();
        encode_header_into(&entry, &mut self.plan)?;
        let header = header_at..self.plan.len();
        let header_offset = self.pos;
        let data_offset = header_offset + header.len() as u64;
        let stored = entry.stored_size();
        let reads = entry.kind == Kind::File && (stored > 0 || entry.sparse.is_some());
        // Where the data comes from is settled before the entry moves into its record.
        let data = match prefetched {
            _ if !reads => DataFrom::Nothing,
            Some(p)
                if entry.sparse.is_none()
                    && stored <= DIGEST_CHUNK_BYTES
                    && p.data.len() as u64 <= stored =>
            {
                DataFrom::Inline(p)
            }
            _ => DataFrom::Read(Arc::new(Source::new(src, &entry))),
        };
        let record = Box::new(IndexEntry::from_owned(entry, header_offset, data_offset));
        self.pos = data_offset;
        self.parts.push(Part::Entry {
            record,
            header,
            reads,
        });
        let source = match data {
            DataFrom::Nothing => return Ok(()),
            DataFrom::Inline(Prefetched { data, now }) => {
                let at = self.plan.len();
                self.plan.extend_from_slice(&data);
                self.parts.push(Part::Inline {
                    data: at..self.plan.len(),
                    size: stored,
                    now,
                });
                self.pos += stored + padding(stored) as u64;
                return Ok(());
            }
            DataFrom::Read(source) => source,
        };
        let mut start = 0u64;
        loop {
            let len = (stored - start).min(DIGEST_CHUNK_BYTES);
            let last = start + len == stored;
            self.parts.push(Part::Data {
                source: Arc::clone(&source),
                start,
                len,
                last,
            });
            self.pos += len;
            if last {
                self.pos += padding(stored) as u64;
                return Ok(());
            }
            start += len;
            self.cut()?;
        }
    }
}

/// The planner: walks, plans every entry, ends with the end-of-archive blocks.
fn run_planner<I>(
    entries: I,
    units: Sender<Unit>,
    tokens: Receiver<()>,
    spares: Receiver<Vec<u8>>,
    target: u64,
) -> Result<(), PlannerError>
where
    I: Iterator<Item = Result<PrefetchedItem, TreeError>>,
{
    let mut cutter = Cutter {
        units,
        tokens,
        spares,
        seq: 0,
        parts: Vec::new(),
        plan: Vec::new(),
        pos: 0,
        unit_start: 0,
        target,
    };
    for item in entries {
        let (entry, src, prefetched) = item?;
        cutter.entry(entry, src, prefetched)?;
    }
    // The end-of-archive blocks belong to the last data member (FORMAT.md §2.1).
    cutter.parts.push(Part::End);
    cutter.pos += END_OF_ARCHIVE_BYTES as u64;
    cutter.cut()
}

/// Sends an error to the writer if the worker unwinds, so the writer stops instead of
/// waiting forever for the unit the worker held.
struct PanicGuard<'a>(&'a Sender<Result<Encoded, TreeError>>);

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.0.send(Err(internal("an encoder thread panicked")));
        }
    }
}

/// A worker: encodes units until there are none or the writer is gone.
fn work(
    units: Receiver<Unit>,
    done: Sender<Result<Encoded, TreeError>>,
    spares: Sender<Vec<u8>>,
    codec: Codec,
    level: u32,
) {
    let _guard = PanicGuard(&done);
    let mut compressor = match UnitEncoder::new(codec, level) {
        Ok(c) => c,
        Err(e) => {
            let _ = done.send(Err(output_error(e)));
            return;
        }
    };
    // Reused across units: it grows to the largest unit (about 5 MiB) once.
    let mut tar = Vec::new();
    for unit in units {
        let result = encode_unit(&mut compressor, &mut tar, unit, &spares);
        let failed = result.is_err();
        if done.send(result).is_err() || failed {
            return;
        }
    }
}

/// Builds a unit's tar bytes in `tar` and compresses it (the encoder digests it).
fn encode_unit(
    compressor: &mut UnitEncoder,
    tar: &mut Vec<u8>,
    unit: Unit,
    spares: &Sender<Vec<u8>>,
) -> Result<Encoded, TreeError> {
    tar.clear();
    let mut done = Vec::with_capacity(unit.parts.len());
    let plan = |range: Range<usize>| {
        unit.plan
            .get(range)
            .ok_or_else(|| internal("a unit's part lies outside its plan"))
    };
    for part in unit.parts {
        match part {
            Part::Entry {
                record,
                header,
                reads,
            } => {
                tar.extend_from_slice(plan(header)?);
                done.push(Done::Entry { record, reads });
            }
            Part::Data {
                source,
                start,
                len,
                last,
            } => {
                let piece = read_piece(&source, start, len, last, tar)?;
                if last {
                    tar.resize(tar.len() + padding(source.stored), 0);
                }
                done.push(Done::Piece(piece));
            }
            Part::Inline { data, size, now } => {
                let at = tar.len();
                let data = plan(data)?;
                tar.extend_from_slice(data);
                let short = (data.len() as u64) < size;
                // The plan's size is authoritative: a file that shrank is zero-filled.
                tar.resize(at + size as usize, 0);
                tar.resize(tar.len() + padding(size), 0);
                done.push(Done::Piece(PieceRead {
                    short,
                    now: Some(now),
                    last: true,
                    ..PieceRead::default()
                }));
            }
            Part::End => {
                tar.extend_from_slice(&end_of_archive());
                done.push(Done::End);
            }
        }
    }
    if tar.len() as u64 != unit.tar_bytes {
        return Err(internal("a unit's tar bytes differ from its plan"));
    }
    let mut spent = unit.plan;
    spent.clear();
    let _ = spares.try_send(spent);
    let unit_bytes = compressor.encode(tar).map_err(output_error)?;
    Ok(Encoded {
        seq: unit.seq,
        member: unit_bytes.bytes,
        info: unit_bytes.info,
        check: unit_bytes.check,
        done,
    })
}

/// Appends exactly `len` stored bytes of `source` from stored offset `start` to `tar`.
///
/// The header's sizes are authoritative: bytes the file no longer has are zeros, bytes
/// it gained are not read, and a file that cannot be opened as a regular file any more
/// is all zeros; the outcome says which, for the writer's warning.
fn read_piece(
    source: &Source,
    start: u64,
    len: u64,
    last: bool,
    tar: &mut Vec<u8>,
) -> Result<PieceRead, TreeError> {
    let at = tar.len();
    // Zero-filled up front: short reads then leave zeros without a second pass.
    tar.resize(at + len as usize, 0);
    let mut piece = PieceRead {
        last,
        ..PieceRead::default()
    };
    let file = match open_source(&source.path) {
        Ok(f) => f,
        // Gone, or replaced by a symlink (ELOOP with O_NOFOLLOW), a directory or a
        // special file since the walk.
        Err(e @ (Errno::NOENT | Errno::LOOP | Errno::ISDIR | Errno::NXIO)) => {
            piece.unopenable = Some(io::Error::from(e).to_string());
            piece.zeroed = len;
            return Ok(piece);
        }
        Err(e) => return Err(TreeError::io(&source.path, e.into())),
    };
    let mut dst = at;
    for (offset, n) in source.ranges(start, len) {
        let n = n as usize;
        let got = read_full_at(&file, &mut tar[dst..dst + n], offset)
            .map_err(|e| TreeError::io(&source.path, e))?;
        piece.short |= got < n;
        dst += n;
    }
    if last {
        let now = file
            .metadata()
            .map_err(|e| TreeError::io(&source.path, e))?;
        piece.now = Some(now.len());
    }
    Ok(piece)
}

/// Reads into all of `buf` from `offset`, stopping early only at end of file; returns
/// the bytes read.
fn read_full_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

enum WriteError {
    Tree(TreeError),
    /// The members stopped before the end of the archive (the planner failed).
    Incomplete,
}

impl From<TreeError> for WriteError {
    fn from(e: TreeError) -> Self {
        WriteError::Tree(e)
    }
}

#[derive(Default)]
struct WriteSummary {
    entries: u64,
    bytes_in: u64,
    bytes_out: u64,
    members: u64,
    warnings: Vec<String>,
}

/// A file whose pieces are still arriving: its record and what its pieces said.
struct OpenFile {
    record: Box<IndexEntry>,
    unopenable: Option<String>,
    zeroed: u64,
    short: bool,
}

/// The writer: members in `seq` order onto `out`, the index, then the trailer.
fn write_members<W: Write>(
    results: Receiver<Result<Encoded, TreeError>>,
    tokens: Sender<()>,
    out: &mut W,
    codec: Codec,
    progress: &crate::progress::Handle,
) -> Result<WriteSummary, WriteError> {
    let mut sum = WriteSummary::default();
    let mut index = IndexBuilder::new();
    // What the zstd seek table lists: 24 bytes a unit, a few KiB for a large tree.
    let mut units = Vec::new();
    let mut open: Option<OpenFile> = None;
    // Members that arrived before their turn; at most the units in flight.
    let mut early: BTreeMap<u64, Encoded> = BTreeMap::new();
    let mut next = 0u64;
    let mut ended = false;
    while !ended {
        let Some(enc) = early.remove(&next) else {
            let enc = results.recv().map_err(|_| WriteError::Incomplete)??;
            early.insert(enc.seq, enc);
            continue;
        };
        out.write_all(&enc.member).map_err(output_error)?;
        // The unit has left the pipeline: the planner may plan another.
        let _ = tokens.send(());
        index.push_member(enc.info);
        units.push(UnitRecord {
            compressed: enc.info.compressed,
            uncompressed: enc.info.uncompressed,
            check: enc.check,
        });
        sum.members += 1;
        sum.bytes_out += enc.info.compressed;
        sum.bytes_in += enc.info.uncompressed;
        let entries_before = sum.entries;
        next += 1;
        for d in enc.done {
            match d {
                Done::Entry { record, reads } => {
                    if open.is_some() {
                        return Err(internal("an entry started inside a file's data").into());
                    }
                    sum.entries += 1;
                    if reads {
                        open = Some(OpenFile {
                            record,
                            unopenable: None,
                            zeroed: 0,
                            short: false,
                        });
                    } else {
                        index.push_entry(&record);
                    }
                }
                Done::Piece(piece) => {
                    let Some(file) = open.as_mut() else {
                        return Err(internal("file data without its entry").into());
                    };
                    if file.unopenable.is_none() {
                        file.unopenable = piece.unopenable;
                    }
                    file.zeroed += piece.zeroed;
                    file.short |= piece.short;
                    if piece.last {
                        if let Some(file) = open.take() {
                            sum.warnings.extend(read_warning(&file, piece.now));
                            index.push_entry(&file.record);
                        }
                    }
                }
                Done::End => ended = true,
            }
        }
        progress.add(enc.info.uncompressed, sum.entries - entries_before);
    }
    sum.bytes_out += codec::write_trailer(codec, &index.finish(), sum.bytes_out, &units, out)
        .map_err(output_error)?;
    out.flush().map_err(output_error)?;
    Ok(sum)
}

/// The warning for a file whose data did not match its header, if any.
fn read_warning(file: &OpenFile, now: Option<u64>) -> Option<String> {
    let r = &file.record;
    // Formatted only for a warning: escaping every path cost ~2 % of an export of
    // small files.
    let name = || display_path(&r.path);
    if let Some(why) = &file.unopenable {
        return Some(if file.zeroed == r.stored {
            format!(
                "{}: could not be opened for reading ({why}); its {} bytes are archived as zeros",
                name(),
                r.stored
            )
        } else {
            format!(
                "{}: could not be opened for reading ({why}); {} of its {} bytes are archived as zeros",
                name(),
                file.zeroed, r.stored
            )
        });
    }
    let now = now.unwrap_or(r.size);
    if file.short {
        Some(format!(
            "{}: shrank while being read (now {now} bytes); zero-filled to the {} bytes recorded",
            name(),
            r.size
        ))
    } else if now != r.size {
        Some(format!(
            "{}: changed size while being read (now {now} bytes); archived as {} bytes",
            name(),
            r.size
        ))
    } else {
        None
    }
}

/// An invariant of the pipeline broke: a bug, reported rather than panicking.
fn internal(what: &str) -> TreeError {
    TreeError::io(
        Path::new("<archive output>"),
        io::Error::other(format!("internal error: {what}")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(size: u64, sparse: Option<Vec<(u64, u64)>>) -> Source {
        let mut e = Entry::new(b"r/f".to_vec(), Kind::File, 0o644);
        e.size = size;
        e.sparse = sparse;
        Source::new(PathBuf::from("/nonexistent"), &e)
    }

    #[test]
    fn stored_ranges_map_onto_sparse_segments() {
        let dense = source(10 << 20, None);
        assert_eq!(dense.stored, 10 << 20);
        assert_eq!(
            dense.ranges(4 << 20, 4 << 20).collect::<Vec<_>>(),
            [(4 << 20, 4 << 20)]
        );
        // Segments of 100, 50 and 200 bytes at 1000, 5000 and 9000.
        let s = source(20_000, Some(vec![(1000, 100), (5000, 50), (9000, 200)]));
        assert_eq!(s.stored, 350);
        assert_eq!(
            s.ranges(0, 350).collect::<Vec<_>>(),
            [(1000, 100), (5000, 50), (9000, 200)]
        );
        assert_eq!(
            s.ranges(90, 70).collect::<Vec<_>>(),
            [(1090, 10), (5000, 50), (9000, 10)]
        );
        assert_eq!(s.ranges(150, 10).collect::<Vec<_>>(), [(9000, 10)]);
        assert_eq!(s.ranges(100, 0).count(), 0);
        let holes = source(1 << 20, Some(vec![]));
        assert_eq!((holes.stored, holes.ranges(0, 0).count()), (0, 0));
    }

    #[test]
    fn vanished_files_are_zeros_and_say_why() {
        let s = source(3000, None);
        let mut tar = b"head".to_vec();
        let piece = read_piece(&s, 0, 3000, true, &mut tar).unwrap();
        assert_eq!(tar.len(), 3004);
        assert!(tar[4..].iter().all(|&b| b == 0));
        assert_eq!(piece.zeroed, 3000);
        assert!(piece.unopenable.is_some());
    }
}

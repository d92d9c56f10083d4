//! Parallel inflate of a `rootimgtree.gz` member stream (FORMAT.md §2).
//!
//! The compressed stream is read sequentially on the calling thread, because the
//! reader it comes from (a bundle member) is not `Send`. Reading a member is cheap
//! (its `IG` subfield says how long it is, so no inflating is needed to find its end);
//! inflating it is not, so whole members are handed to worker threads that inflate
//! them with libdeflate and check CRC32 and ISIZE (as [`gzip::decode_data`] does, but
//! into recycled buffers: fresh ones cost a page fault and a clear per 4 KiB). The
//! consumer, still on the calling thread, gets the inflated members back in order
//! through [`MemberReader`], an ordinary [`Read`].
//!
//! Ordering uses one single-use reply channel per member, queued in stream order (the
//! pigz/crabz scheme): the consumer waits on the oldest, so members finishing out of
//! order cost nothing but their memory. The queue holds at most `2 × threads` members,
//! which bounds memory to that many members (about 1–5 MiB each as the writer cuts
//! them; [`gzip::MAX_MEMBER_BYTES`] at worst), compressed plus inflated.
//!
//! Index and footer members (`IX`, `IF`, also the bundle's `IB`) inflate to nothing
//! and are skipped. A member without an `IG` subfield (anyone else's gzip) has no
//! length to hop by: from there on the rest of the stream goes through flate2's
//! streaming [`flate2::read::MultiGzDecoder`], single-threaded.

use std::collections::VecDeque;
use std::io::{self, Cursor, Read};

use crossbeam_channel::{Receiver, Sender};
use libdeflater::{Crc, Decompressor};

use crate::tree::codec::gzip::{
    self, Header, MemberError, DATA_HEADER_BYTES, MAX_MEMBER_BYTES, TRAILER_BYTES,
};
use crate::tree::format::tar_decode::fill;

/// Members queued (read, not yet consumed) per inflate thread. Two keep every worker
/// busy while the consumer works through the oldest one.
const DEPTH_PER_THREAD: usize = 2;
/// deflate's largest possible expansion: a 258-byte match costs at least 2 bits
/// (zlib's "maximum compression factor is 1032:1"). A member whose ISIZE claims more
/// than this times its compressed size is hostile or broken; checking before
/// inflating keeps a tiny member from allocating up to `MAX_MEMBER_BYTES`.
const MAX_DEFLATE_RATIO: usize = 1032;
/// The trailer of an empty member as [`gzip::encode_tagged`] writes it: the empty
/// deflate block, CRC32 0, ISIZE 0.
const EMPTY_BODY: [u8; 10] = [0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
/// Longest gzip header we read to classify a member: 10 fixed bytes, XLEN, FEXTRA.
const MAX_HEADER: usize = 12 + 65535;

/// Counters of what the inflater went through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InflateStats {
    /// imgport data members inflated.
    pub members: u64,
    /// Index, footer and other tagged empty members skipped.
    pub skipped: u64,
    /// Compressed bytes read (all members, foreign ones excluded).
    pub compressed: u64,
    /// Bytes the data members inflated to.
    pub inflated: u64,
    /// Whether the stream fell back to flate2 at a member without an `IG` length.
    pub foreign_tail: bool,
}

/// True when `head` (the first bytes of a stream, as many as are available up to
/// 512) starts with an imgport data, index or footer member, i.e. the stream can be
/// inflated in parallel. Any other gzip (xCAT's single member, pigz, GNU gzip) or
/// non-gzip input gives false. Costs one header parse, no allocation beyond a tagged
/// member's payload copy.
pub fn is_member_stream(head: &[u8]) -> bool {
    if head.len() < 4 || head[..3] != [0x1f, 0x8b, 8] || head[3] != 0x04 {
        return false;
    }
    match gzip::parse_header(head) {
        Ok(Header::Data { .. } | Header::Tagged { .. }) => true,
        // A long FEXTRA that did not fit in `head`: let the member reader look at it
        // whole; it falls back to flate2 if the member turns out foreign.
        Err(MemberError::Truncated) => true,
        // A bad `IG` length is ours and broken: the member reader reports it with
        // the member's index.
        Err(MemberError::BadLength(_)) => true,
        _ => false,
    }
}

/// Runs `consume` with a [`MemberReader`] over the members read from `input`, with
/// `threads` inflate workers (scoped: all have exited when this returns). With
/// `threads <= 1` members are inflated inline on the calling thread as they are
/// consumed, with no threads and a queue of one.
///
/// `input` must be positioned at the start of a member; [`is_member_stream`] tells
/// whether parallel inflate applies. Whatever `consume` leaves unread is not read.
/// Cost: one memcpy of the compressed stream into member buffers plus libdeflate
/// inflate (≈ 900 MB/s of output per core), spread over `threads`.
pub fn inflate_members<R: Read, T>(
    input: R,
    threads: usize,
    consume: impl FnOnce(&mut MemberReader<R>) -> T,
) -> T {
    if threads <= 1 {
        let mut reader = MemberReader::new(input, None, 1);
        return consume(&mut reader);
    }
    std::thread::scope(|s| {
        let depth = threads.saturating_mul(DEPTH_PER_THREAD);
        let (tx, rx) = crossbeam_channel::bounded::<Job>(depth);
        for _ in 0..threads {
            let rx = rx.clone();
            s.spawn(move || inflate_worker(rx));
        }
        drop(rx);
        let mut reader = MemberReader::new(input, Some(tx), depth);
        let out = consume(&mut reader);
        // Dropping the reader closes the job channel: the workers finish what they
        // hold (their replies go nowhere) and exit before the scope returns.
        drop(reader);
        out
    })
}

/// An inflated member: a buffer and how much of it is the member's content (the
/// rest is left over from the buffer's earlier use).
type Inflated = (Vec<u8>, usize);

/// One member for a worker: its position (for error messages), its bytes, a spent
/// buffer to inflate into, and where to send the result.
struct Job {
    index: u64,
    offset: u64,
    raw: Vec<u8>,
    out: Vec<u8>,
    reply: Sender<io::Result<Inflated>>,
}

fn inflate_worker(rx: Receiver<Job>) {
    let mut d = Decompressor::new();
    for job in rx {
        let out = inflate_one(&mut d, &job.raw, job.out)
            .map_err(|e| member_err(job.index, job.offset, e));
        drop(job.raw);
        // A closed reply channel means the consumer stopped early; nothing to do.
        let _ = job.reply.send(out);
    }
}

/// Inflates one complete data member into `out` (grown if needed, never shrunk or
/// cleared: only the first ISIZE bytes count) after checking that its ISIZE is
/// possible for its compressed length; checks size and CRC32.
fn inflate_one(
    d: &mut Decompressor,
    raw: &[u8],
    mut out: Vec<u8>,
) -> Result<Inflated, MemberError> {
    if raw.len() < DATA_HEADER_BYTES + TRAILER_BYTES {
        return Err(MemberError::Truncated);
    }
    // ISIZE is the trailer's last 4 bytes.
    let Some(isize_le) = raw
        .len()
        .checked_sub(TRAILER_BYTES)
        .and_then(|at| raw.get(at + 4..))
    else {
        return Err(MemberError::Truncated);
    };
    let isize = u32::from_le_bytes([isize_le[0], isize_le[1], isize_le[2], isize_le[3]]);
    let crc_at = raw.len() - TRAILER_BYTES;
    let expected = u32::from_le_bytes([
        raw[crc_at],
        raw[crc_at + 1],
        raw[crc_at + 2],
        raw[crc_at + 3],
    ]);
    let body = &raw[DATA_HEADER_BYTES..crc_at];
    let len = isize as usize;
    if len > MAX_MEMBER_BYTES || len > body.len().saturating_mul(MAX_DEFLATE_RATIO) {
        return Err(MemberError::BadLength(u64::from(isize)));
    }
    if out.len() < len {
        out.resize(len, 0);
    }
    let n = d
        .deflate_decompress(body, &mut out[..len])
        .map_err(|e| MemberError::Inflate(e.to_string()))?;
    if n != len {
        return Err(MemberError::Size {
            expected: isize,
            actual: n,
        });
    }
    let mut crc = Crc::new();
    crc.update(&out[..len]);
    if crc.sum() != expected {
        return Err(MemberError::Crc {
            expected,
            actual: crc.sum(),
        });
    }
    Ok((out, len))
}

fn member_err(index: u64, offset: u64, e: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!(
        "gzip member {index} (at byte {offset} of the compressed stream): {e}"
    ))
}

/// A member in the order queue.
enum Slot {
    /// Being inflated by a worker.
    Pending(Receiver<io::Result<Inflated>>),
    /// Inflated inline, or an error met while reading it; delivered in turn, so an
    /// error surfaces only after every member before it was consumed.
    Ready(io::Result<Inflated>),
}

/// [`Read`] over the inflated content of a member stream; see the module docs and
/// [`inflate_members`]. Errors name the member (index from 0 and compressed offset);
/// after one, every further read fails too.
pub struct MemberReader<R: Read> {
    input: Option<R>,
    /// After a foreign member: the rest of the stream, inflated by flate2.
    flate: Option<flate2::read::MultiGzDecoder<io::Chain<Cursor<Vec<u8>>, R>>>,
    /// The header bytes of a foreign member met while queueing; the switch to flate2
    /// happens once the members before it were consumed.
    foreign: Option<Vec<u8>>,
    jobs: Option<Sender<Job>>,
    inline: Decompressor,
    queue: VecDeque<Slot>,
    depth: usize,
    /// No more members to queue (end of input, an error, or a foreign member).
    exhausted: bool,
    failed: bool,
    /// The member being read: `cur[pos..cur_len]` is left.
    cur: Vec<u8>,
    cur_len: usize,
    pos: usize,
    /// Spent member buffers, handed to the next jobs to inflate into.
    spares: Vec<Vec<u8>>,
    index: u64,
    offset: u64,
    stats: InflateStats,
}

impl<R: Read> MemberReader<R> {
    fn new(input: R, jobs: Option<Sender<Job>>, depth: usize) -> Self {
        MemberReader {
            input: Some(input),
            flate: None,
            foreign: None,
            jobs,
            inline: Decompressor::new(),
            queue: VecDeque::new(),
            depth: depth.max(1),
            exhausted: false,
            failed: false,
            cur: Vec::new(),
            cur_len: 0,
            pos: 0,
            spares: Vec::new(),
            index: 0,
            offset: 0,
            stats: InflateStats::default(),
        }
    }

    /// What was read and inflated so far.
    pub fn stats(&self) -> InflateStats {
        self.stats
    }

    /// Reads members until the queue is full or no more can be queued.
    fn top_up(&mut self) {
        while !self.exhausted && self.queue.len() < self.depth {
            match self.read_member() {
                Ok(Some(slot)) => self.queue.push_back(slot),
                Ok(None) => self.exhausted = true,
                Err(e) => {
                    self.queue.push_back(Slot::Ready(Err(e)));
                    self.exhausted = true;
                }
            }
        }
    }

    /// Reads the next member: a data member becomes a slot, tagged members are
    /// skipped, a foreign one ends the queueing. `Ok(None)` when nothing more will be
    /// queued.
    fn read_member(&mut self) -> io::Result<Option<Slot>> {
        loop {
            let (index, offset) = (self.index, self.offset);
            let Some(input) = self.input.as_mut() else {
                return Ok(None);
            };
            let Some(head) = read_header(input).map_err(|e| member_err(index, offset, e))? else {
                return Ok(None);
            };
            let header = match gzip::parse_header(&head) {
                Ok(h) => h,
                Err(MemberError::NotGzip) => {
                    return Err(member_err(
                        index,
                        offset,
                        "not a gzip member (trailing garbage after the last member?)",
                    ))
                }
                Err(e) => return Err(member_err(index, offset, e)),
            };
            match header {
                Header::Foreign => {
                    self.foreign = Some(head);
                    return Ok(None);
                }
                Header::Tagged { total, .. } => {
                    let rest = usize::try_from(total)
                        .ok()
                        .and_then(|t| t.checked_sub(head.len()))
                        .filter(|&r| r == EMPTY_BODY.len())
                        .ok_or_else(|| member_err(index, offset, "tagged member length"))?;
                    let mut body = [0u8; EMPTY_BODY.len()];
                    let n = fill(input, &mut body[..rest])?;
                    if n < rest {
                        return Err(member_err(index, offset, "truncated index member"));
                    }
                    if body != EMPTY_BODY {
                        // It would inflate to data that `gzip -dc` sees and we would
                        // skip: refuse rather than read something else than gzip.
                        return Err(member_err(
                            index,
                            offset,
                            "index or footer member is not empty",
                        ));
                    }
                    self.index += 1;
                    self.offset = self.offset.saturating_add(total);
                    self.stats.skipped += 1;
                    self.stats.compressed = self.stats.compressed.saturating_add(total);
                }
                Header::Data { total } => {
                    // `total` is at most MAX_MEMBER_BYTES (parse_header checks), and the
                    // buffer grows only as bytes arrive.
                    let total_usize = usize::try_from(total)
                        .ok()
                        .filter(|&t| t <= MAX_MEMBER_BYTES && t >= head.len())
                        .ok_or_else(|| member_err(index, offset, MemberError::BadLength(total)))?;
                    let mut raw = Vec::with_capacity(total_usize.min(8 << 20));
                    raw.extend_from_slice(&head);
                    let want = (total_usize - head.len()) as u64;
                    input.by_ref().take(want).read_to_end(&mut raw)?;
                    if raw.len() < total_usize {
                        return Err(member_err(
                            index,
                            offset,
                            format!("truncated: {} of {total} bytes", raw.len()),
                        ));
                    }
                    self.index += 1;
                    self.offset = self.offset.saturating_add(total);
                    self.stats.members += 1;
                    self.stats.compressed = self.stats.compressed.saturating_add(total);
                    let out = self.spares.pop().unwrap_or_default();
                    return Ok(Some(match &self.jobs {
                        Some(jobs) => {
                            let (reply, rx) = crossbeam_channel::bounded(1);
                            let job = Job {
                                index,
                                offset,
                                raw,
                                out,
                                reply,
                            };
                            if jobs.send(job).is_err() {
                                return Err(member_err(index, offset, "inflate workers stopped"));
                            }
                            Slot::Pending(rx)
                        }
                        None => Slot::Ready(
                            inflate_one(&mut self.inline, &raw, out)
                                .map_err(|e| member_err(index, offset, e)),
                        ),
                    }));
                }
            }
        }
    }

    /// The next inflated member in order, `None` at the end of the members.
    fn next_member(&mut self) -> io::Result<Option<Inflated>> {
        self.top_up();
        let Some(slot) = self.queue.pop_front() else {
            return Ok(None);
        };
        let out = match slot {
            Slot::Ready(r) => r,
            Slot::Pending(rx) => rx
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("an inflate worker stopped"))),
        };
        let data = out?;
        self.stats.inflated = self.stats.inflated.saturating_add(data.1 as u64);
        // Refill while the consumer works on this member.
        self.top_up();
        Ok(Some(data))
    }

    /// Switches to flate2 for the rest of the stream, starting at the foreign
    /// member whose header was read.
    fn switch_to_flate(&mut self, head: Vec<u8>) -> bool {
        match self.input.take() {
            Some(input) => {
                self.stats.foreign_tail = true;
                self.flate = Some(flate2::read::MultiGzDecoder::new(
                    Cursor::new(head).chain(input),
                ));
                true
            }
            None => false,
        }
    }
}

impl<R: Read> Read for MemberReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.cur_len {
                let n = buf.len().min(self.cur_len - self.pos);
                buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if let Some(flate) = self.flate.as_mut() {
                return flate.read(buf);
            }
            if self.failed {
                return Err(io::Error::other("the gzip member stream failed earlier"));
            }
            if buf.is_empty() {
                return Ok(0);
            }
            match self.next_member() {
                Ok(Some((data, len))) => {
                    let spent = std::mem::replace(&mut self.cur, data);
                    // Enough spares for every queued job; more would only hold memory.
                    if self.spares.len() < self.depth && spent.capacity() > 0 {
                        self.spares.push(spent);
                    }
                    self.cur_len = len;
                    self.pos = 0;
                }
                Ok(None) => {
                    let switched = match self.foreign.take() {
                        Some(head) => self.switch_to_flate(head),
                        None => false,
                    };
                    if !switched {
                        return Ok(0);
                    }
                }
                Err(e) => {
                    self.failed = true;
                    self.queue.clear();
                    return Err(e);
                }
            }
        }
    }
}

/// Reads one gzip member header: the 10 fixed bytes and, when FEXTRA is set, XLEN
/// and the extra field (enough for [`gzip::parse_header`]). `None` at a clean end of
/// input; other flags' fields (FNAME, ...) are left for flate2.
fn read_header(input: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut head = vec![0u8; 12];
    let n = fill(input, &mut head[..10])?;
    if n == 0 {
        return Ok(None);
    }
    if n < 10 {
        return Err(io::Error::other(MemberError::Truncated));
    }
    if head[..3] != [0x1f, 0x8b, 8] || head[3] & 0x04 == 0 {
        head.truncate(10);
        return Ok(Some(head));
    }
    if fill(input, &mut head[10..12])? < 2 {
        return Err(io::Error::other(MemberError::Truncated));
    }
    let xlen = u16::from_le_bytes([head[10], head[11]]) as usize;
    debug_assert!(12 + xlen <= MAX_HEADER);
    head.resize(12 + xlen, 0);
    if fill(input, &mut head[12..])? < xlen {
        return Err(io::Error::other(MemberError::Truncated));
    }
    Ok(Some(head))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::codec::gzip::{compressor, encode_data, encode_tagged, ID_FOOTER, ID_INDEX};

    fn data(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                // Compressible but not trivially: text-like with noise.
                if i % 7 == 0 {
                    (x % 251) as u8
                } else {
                    b'a' + (i % 13) as u8
                }
            })
            .collect()
    }

    /// `parts` as data members, then an index member and a footer.
    fn stream(parts: &[Vec<u8>]) -> Vec<u8> {
        let mut c = compressor(6);
        let mut out = Vec::new();
        for p in parts {
            out.extend(encode_data(&mut c, p));
        }
        out.extend(encode_tagged(ID_INDEX, b"not really an index"));
        out.extend(encode_tagged(ID_FOOTER, &[0u8; 40]));
        out
    }

    fn read_all(bytes: &[u8], threads: usize) -> (io::Result<Vec<u8>>, InflateStats) {
        inflate_members(bytes, threads, |r| {
            let mut out = Vec::new();
            let res = r.read_to_end(&mut out).map(|_| out);
            (res, r.stats())
        })
    }

    #[test]
    fn members_come_back_in_order_with_any_thread_count() {
        let parts: Vec<Vec<u8>> = (0..40).map(|i| data(1000 + i * 3001, i as u32)).collect();
        let all: Vec<u8> = parts.concat();
        let bytes = stream(&parts);
        assert!(is_member_stream(&bytes));
        for threads in [1, 2, 3, 8] {
            let (out, stats) = read_all(&bytes, threads);
            assert_eq!(out.unwrap(), all, "threads={threads}");
            assert_eq!(stats.members, 40);
            assert_eq!(stats.skipped, 2);
            assert_eq!(stats.compressed, bytes.len() as u64);
            assert_eq!(stats.inflated, all.len() as u64);
        }
    }

    #[test]
    fn corrupt_member_is_named_and_earlier_ones_are_delivered() {
        let parts: Vec<Vec<u8>> = (0..10).map(|i| data(20_000, i)).collect();
        let mut c = compressor(6);
        let members: Vec<Vec<u8>> = parts.iter().map(|p| encode_data(&mut c, p)).collect();
        let offset: usize = members[..6].iter().map(Vec::len).sum();
        let mut bytes = members.concat();
        bytes[offset + 100] ^= 0x55;
        for threads in [1, 4] {
            inflate_members(&bytes[..], threads, |r| {
                let mut good = vec![0u8; 6 * 20_000];
                r.read_exact(&mut good).unwrap();
                assert_eq!(good, parts[..6].concat());
                let mut rest = Vec::new();
                let err = r.read_to_end(&mut rest).unwrap_err().to_string();
                assert!(
                    err.contains(&format!("gzip member 6 (at byte {offset} ")),
                    "{err}"
                );
                assert!(r.read(&mut [0u8; 10]).is_err());
            });
        }
    }

    #[test]
    fn hostile_lengths_are_refused_without_allocating() {
        let mut c = compressor(6);
        // ISIZE claims 60 MiB for a 30-byte member: refused before inflating.
        let mut m = encode_data(&mut c, b"x");
        let n = m.len();
        m[n - 4..].copy_from_slice(&(60u32 << 20).to_le_bytes());
        let (out, _) = read_all(&m, 2);
        let err = out.unwrap_err().to_string();
        assert!(
            err.contains("gzip member 0") && err.contains("out of bounds"),
            "{err}"
        );
        // IG length beyond MAX_MEMBER_BYTES.
        let mut m = encode_data(&mut c, b"x");
        m[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(is_member_stream(&m));
        let err = read_all(&m, 2).0.unwrap_err().to_string();
        assert!(err.contains("out of bounds"), "{err}");
        // IG claims 64 MiB but the stream ends: truncated, buffer grew only as read.
        let mut m = encode_data(&mut c, b"x");
        m[16..20].copy_from_slice(&(MAX_MEMBER_BYTES as u32).to_le_bytes());
        let err = read_all(&m, 2).0.unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        // IG shorter than the real member: the next "member" starts mid-deflate.
        let mut m = encode_data(&mut c, &data(50_000, 3));
        let short = (m.len() - 100) as u32;
        m[16..20].copy_from_slice(&short.to_le_bytes());
        assert!(read_all(&m, 1).0.is_err());
        assert!(read_all(&m, 3).0.is_err());
    }

    #[test]
    fn trailing_garbage_and_truncation_are_errors() {
        let mut bytes = stream(&[data(5000, 1)]);
        bytes.extend_from_slice(b"garbage!!!!!");
        let err = read_all(&bytes, 2).0.unwrap_err().to_string();
        assert!(err.contains("trailing garbage"), "{err}");
        let bytes = stream(&[data(5000, 1), data(5000, 2)]);
        for cut in [5, 15, 25, 300] {
            assert!(
                read_all(&bytes[..bytes.len() - cut], 2).0.is_err(),
                "cut {cut}"
            );
        }
        // A non-empty "index" member.
        let mut bytes = stream(&[data(10, 1)]);
        let n = bytes.len();
        bytes[n - 10] = 0x01;
        assert!(read_all(&bytes, 2).0.is_err());
    }

    #[test]
    fn foreign_member_after_ours_falls_back_to_flate2() {
        let a = data(70_000, 5);
        let b = data(30_000, 6);
        let mut bytes = encode_data(&mut compressor(6), &a);
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut e, &b).unwrap();
        bytes.extend(e.finish().unwrap());
        for threads in [1, 2] {
            let (out, stats) = read_all(&bytes, threads);
            assert_eq!(out.unwrap(), [a.clone(), b.clone()].concat());
            assert!(stats.foreign_tail);
        }
        // A stream starting foreign is not ours.
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        io::Write::write_all(&mut e, &b).unwrap();
        assert!(!is_member_stream(&e.finish().unwrap()));
        assert!(!is_member_stream(b"plain tar"));
    }

    #[test]
    fn stops_early_without_hanging() {
        let parts: Vec<Vec<u8>> = (0..64).map(|i| data(100_000, i)).collect();
        let bytes = stream(&parts);
        let got = inflate_members(&bytes[..], 4, |r| {
            let mut first = vec![0u8; 10];
            r.read_exact(&mut first).unwrap();
            first
        });
        assert_eq!(got, parts[0][..10]);
    }
}

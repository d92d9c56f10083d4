//! The ordered parallel unit decoder: one engine for every codec (gzp's lesson).
//!
//! A compressed tree is a run of independently decodable units (gzip members, zstd
//! frames). The codec supplies how to find them ([`UnitSplitter`], which reads unit
//! boundaries from headers without decompressing) and how to decode one
//! ([`UnitDecoder`]); this module is the rest, written once:
//!
//! - units are read on the calling thread, because the source (a bundle member) is not
//!   `Send`; reading one is cheap, decoding it is not, so whole units go to `threads`
//!   workers, each with its own decoder and recycled output buffers (a fresh buffer
//!   costs a page fault and a clear per 4 KiB);
//! - the consumer, still on the calling thread, reads the decoded bytes back in stream
//!   order through [`OrderedUnits`], an ordinary [`Read`].
//!
//! Ordering uses one single-use reply channel per unit, queued in stream order (the
//! pigz/crabz scheme): the consumer waits on the oldest, so units finishing out of
//! order cost nothing but their memory. The queue holds at most
//! [`UNITS_PER_THREAD`] × `threads` units, which bounds memory to that many units
//! (1–5 MiB each as imgport cuts them; `MAX_UNIT_BYTES` at worst), compressed plus
//! decoded.
//!
//! A codec may hand the rest of the stream to a sequential decoder instead
//! ([`UnitSplitter::take_tail`]): a gzip member without imgport's length field cannot be
//! split, so from there on flate2 streams the rest, single-threaded.

use std::collections::VecDeque;
use std::io::{self, Read};

use crossbeam_channel::{Receiver, Sender};

use crate::tree::codec::{Codec, RawUnit, UnitDecoder, UnitSplitter};

/// Units queued (read, not yet consumed) per decode thread. Two keep every worker busy
/// while the consumer works through the oldest one.
const UNITS_PER_THREAD: usize = 2;

/// A decoded unit: a buffer and how much of it is the unit's content (the rest is left
/// over from the buffer's earlier use).
type Decoded = (Vec<u8>, usize);

/// Runs `consume` with an [`OrderedUnits`] over the units `splitter` cuts, decoded by
/// `threads` workers of `codec` (scoped: all have exited when this returns). With
/// `threads <= 1` units are decoded inline on the calling thread as they are consumed,
/// with no threads and a queue of one. Whatever `consume` leaves unread is not read.
pub(crate) fn decode_units<S: UnitSplitter, T>(
    splitter: S,
    codec: Codec,
    threads: usize,
    consume: impl FnOnce(&mut OrderedUnits<S>) -> T,
) -> T {
    if threads <= 1 {
        let mut reader = OrderedUnits::new(splitter, None, UnitDecoder::new(codec), 1);
        return consume(&mut reader);
    }
    std::thread::scope(|s| {
        let depth = threads.saturating_mul(UNITS_PER_THREAD);
        let (tx, rx) = crossbeam_channel::bounded::<Job>(depth);
        for _ in 0..threads {
            let rx = rx.clone();
            s.spawn(move || worker(rx, UnitDecoder::new(codec)));
        }
        drop(rx);
        let mut reader = OrderedUnits::new(splitter, Some(tx), UnitDecoder::new(codec), depth);
        let out = consume(&mut reader);
        // Dropping the reader closes the job channel: the workers finish what they hold
        // (their replies go nowhere) and exit before the scope returns.
        drop(reader);
        out
    })
}

/// One unit for a worker: its bytes, a spent buffer to decode into, and where to send
/// the result.
struct Job {
    unit: RawUnit,
    out: Vec<u8>,
    reply: Sender<io::Result<Decoded>>,
}

fn worker(rx: Receiver<Job>, mut decoder: UnitDecoder) {
    for job in rx {
        let out = decode(&mut decoder, job.unit, job.out);
        // A closed reply channel means the consumer stopped early; nothing to do.
        let _ = job.reply.send(out);
    }
}

/// Decodes one unit; errors name it (the label its splitter gave it).
fn decode(decoder: &mut UnitDecoder, unit: RawUnit, out: Vec<u8>) -> io::Result<Decoded> {
    decoder
        .decode_into(&unit.bytes, unit.content_size, out)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", unit.label)))
}

/// A unit in the order queue.
enum Slot {
    /// Being decoded by a worker.
    Pending(Receiver<io::Result<Decoded>>),
    /// Decoded inline, or an error met while reading it; delivered in turn, so an error
    /// surfaces only after every unit before it was consumed.
    Ready(io::Result<Decoded>),
}

/// [`Read`] over the decoded content of a unit stream; see the module docs and
/// [`decode_units`]. Errors name the unit; after one, every further read fails too.
pub(crate) struct OrderedUnits<S: UnitSplitter> {
    splitter: S,
    /// After a part the codec cannot split: the rest of the stream, decoded in line.
    tail: Option<S::Tail>,
    jobs: Option<Sender<Job>>,
    inline: UnitDecoder,
    queue: VecDeque<Slot>,
    depth: usize,
    /// No more units to queue (end of input, an error, or the tail).
    exhausted: bool,
    failed: bool,
    /// The unit being read: `cur[pos..cur_len]` is left.
    cur: Vec<u8>,
    cur_len: usize,
    pos: usize,
    /// Spent unit buffers, handed to the next jobs to decode into.
    spares: Vec<Vec<u8>>,
    /// Units decoded and bytes they decoded to, for tests and diagnostics.
    units: u64,
    decoded: u64,
}

impl<S: UnitSplitter> OrderedUnits<S> {
    fn new(splitter: S, jobs: Option<Sender<Job>>, inline: UnitDecoder, depth: usize) -> Self {
        OrderedUnits {
            splitter,
            tail: None,
            jobs,
            inline,
            queue: VecDeque::new(),
            depth: depth.max(1),
            exhausted: false,
            failed: false,
            cur: Vec::new(),
            cur_len: 0,
            pos: 0,
            spares: Vec::new(),
            units: 0,
            decoded: 0,
        }
    }

    /// Units delivered so far, and the bytes they decoded to.
    #[cfg(test)]
    pub(crate) fn delivered(&self) -> (u64, u64) {
        (self.units, self.decoded)
    }

    /// Whether the stream went on through the codec's sequential tail decoder.
    #[cfg(test)]
    pub(crate) fn in_tail(&self) -> bool {
        self.tail.is_some()
    }

    /// Reads units until the queue is full or no more can be queued.
    fn top_up(&mut self) {
        while !self.exhausted && self.queue.len() < self.depth {
            match self.splitter.next_unit() {
                Ok(Some(unit)) => {
                    let slot = self.submit(unit);
                    self.queue.push_back(slot);
                }
                Ok(None) => self.exhausted = true,
                Err(e) => {
                    self.queue.push_back(Slot::Ready(Err(e)));
                    self.exhausted = true;
                }
            }
        }
    }

    /// Hands a unit to the workers, or decodes it here without them.
    fn submit(&mut self, unit: RawUnit) -> Slot {
        let out = self.spares.pop().unwrap_or_default();
        let Some(jobs) = &self.jobs else {
            return Slot::Ready(decode(&mut self.inline, unit, out));
        };
        let (reply, rx) = crossbeam_channel::bounded(1);
        let label = unit.label.clone();
        if jobs.send(Job { unit, out, reply }).is_err() {
            return Slot::Ready(Err(io::Error::other(format!(
                "{label}: decode workers stopped"
            ))));
        }
        Slot::Pending(rx)
    }

    /// The next decoded unit in order, `None` at the end of the units.
    fn next_unit(&mut self) -> io::Result<Option<Decoded>> {
        self.top_up();
        let Some(slot) = self.queue.pop_front() else {
            return Ok(None);
        };
        let out = match slot {
            Slot::Ready(r) => r,
            Slot::Pending(rx) => rx
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("a decode worker stopped"))),
        };
        let data = out?;
        self.units += 1;
        self.decoded = self.decoded.saturating_add(data.1 as u64);
        // Refill while the consumer works on this unit.
        self.top_up();
        Ok(Some(data))
    }
}

impl<S: UnitSplitter> Read for OrderedUnits<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.cur_len {
                let n = buf.len().min(self.cur_len - self.pos);
                buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if let Some(tail) = self.tail.as_mut() {
                return tail.read(buf);
            }
            if self.failed {
                return Err(io::Error::other("the compressed stream failed earlier"));
            }
            if buf.is_empty() {
                return Ok(0);
            }
            match self.next_unit() {
                Ok(Some((data, len))) => {
                    let spent = std::mem::replace(&mut self.cur, data);
                    // Enough spares for every queued job; more would only hold memory.
                    if self.spares.len() < self.depth && spent.capacity() > 0 {
                        self.spares.push(spent);
                    }
                    self.cur_len = len;
                    self.pos = 0;
                }
                Ok(None) => match self.splitter.take_tail() {
                    Some(tail) => self.tail = Some(tail),
                    None => return Ok(0),
                },
                Err(e) => {
                    self.failed = true;
                    self.queue.clear();
                    return Err(e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::codec::gzip::{
        compressor, encode_data, encode_tagged, ID_FOOTER, ID_INDEX, MAX_UNIT_BYTES,
    };
    use crate::tree::codec::gzip_split::{is_member_stream, MemberSplitter};
    use crate::tree::codec::zstd_frames::FrameScanner;

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

    /// Everything a gzip member stream decodes to, units delivered, and whether it
    /// went on through the flate2 tail.
    fn read_all(bytes: &[u8], threads: usize) -> (io::Result<Vec<u8>>, (u64, u64), bool) {
        decode_units(MemberSplitter::new(bytes), Codec::Gzip, threads, |r| {
            let mut out = Vec::new();
            let res = r.read_to_end(&mut out).map(|_| out);
            (res, r.delivered(), r.in_tail())
        })
    }

    #[test]
    fn members_come_back_in_order_with_any_thread_count() {
        let parts: Vec<Vec<u8>> = (0..40).map(|i| data(1000 + i * 3001, i as u32)).collect();
        let all: Vec<u8> = parts.concat();
        let bytes = stream(&parts);
        assert!(is_member_stream(&bytes));
        for threads in [1, 2, 3, 8] {
            let (out, (units, decoded), tail) = read_all(&bytes, threads);
            assert_eq!(out.unwrap(), all, "threads={threads}");
            assert_eq!(units, 40);
            assert_eq!(decoded, all.len() as u64);
            assert!(!tail);
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
            decode_units(MemberSplitter::new(&bytes[..]), Codec::Gzip, threads, |r| {
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
        let (out, _, _) = read_all(&m, 2);
        let err = out.unwrap_err().to_string();
        assert!(
            err.contains("gzip member 0") && err.contains("out of bounds"),
            "{err}"
        );
        // IG length beyond MAX_UNIT_BYTES.
        let mut m = encode_data(&mut c, b"x");
        m[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(is_member_stream(&m));
        let err = read_all(&m, 2).0.unwrap_err().to_string();
        assert!(err.contains("out of bounds"), "{err}");
        // IG claims 64 MiB but the stream ends: truncated, buffer grew only as read.
        let mut m = encode_data(&mut c, b"x");
        m[16..20].copy_from_slice(&(MAX_UNIT_BYTES as u32).to_le_bytes());
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
            let (out, _, tail) = read_all(&bytes, threads);
            assert_eq!(out.unwrap(), [a.clone(), b.clone()].concat());
            assert!(tail);
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
        let got = decode_units(MemberSplitter::new(&bytes[..]), Codec::Gzip, 4, |r| {
            let mut first = vec![0u8; 10];
            r.read_exact(&mut first).unwrap();
            first
        });
        assert_eq!(got, parts[0][..10]);
    }

    /// A zstd frame stream with a skippable frame in it, as a tree's frames and index.
    fn zstd_stream(parts: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in parts {
            out.extend(zstd::bulk::compress(p, 3).unwrap());
        }
        out.extend_from_slice(&0x184D_2A59u32.to_le_bytes());
        out.extend_from_slice(&4u32.to_le_bytes());
        out.extend_from_slice(b"skip");
        out
    }

    #[test]
    fn zstd_frames_come_back_in_order_and_a_damaged_one_stops_the_stream() {
        let parts: Vec<Vec<u8>> = (0..12).map(|i| data(30_000 + i * 977, i as u32)).collect();
        let bytes = zstd_stream(&parts);
        for threads in [1, 3] {
            let out = decode_units(FrameScanner::new(&bytes[..]), Codec::Zstd, threads, |r| {
                let mut out = Vec::new();
                r.read_to_end(&mut out).map(|_| out)
            });
            assert_eq!(out.unwrap(), parts.concat(), "threads={threads}");
        }
        // A frame cut short: everything before it is delivered, then the error.
        let cut = &bytes[..bytes.len() - 40];
        for threads in [1, 3] {
            decode_units(FrameScanner::new(cut), Codec::Zstd, threads, |r| {
                let mut first = vec![0u8; parts[0].len()];
                r.read_exact(&mut first).unwrap();
                assert_eq!(first, parts[0]);
                let err = r.read_to_end(&mut Vec::new()).unwrap_err().to_string();
                assert!(err.contains("cut short"), "{err}");
                assert!(r.read(&mut [0u8; 4]).is_err(), "stays failed");
            });
        }
    }
}

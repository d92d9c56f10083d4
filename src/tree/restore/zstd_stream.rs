//! Restoring a `rootimgtree.zst` (FORMAT.md §6) from a stream, its frames decompressed
//! in parallel.
//!
//! The tree usually arrives as a bundle member: a stream that cannot seek (stdin, ssh)
//! and whose reader is not `Send`. So the seek table at the end is of no use here;
//! instead the calling thread splits the stream into whole frames from their headers
//! ([`FrameScanner`]), `threads` workers decompress them, and a restore thread reads
//! the tar back in frame order and hands it to [`restore_entries`]. Skippable frames
//! (index, footer, seek table) are read past. Every frame's content checksum is
//! checked by libzstd.
//!
//! Memory is bounded: a frame holds at most about 8 MiB of tar, and a token per frame
//! limits frames read but not yet restored to `2 × threads + 2`, whatever the tree size.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::tree::codec::gzip::MAX_MEMBER_BYTES;
use crate::tree::codec::zstd_seekable::{Frame, FrameScanner};
use crate::tree::error::TreeError;
use crate::tree::format::tar_decode::TarReader;
use crate::tree::restore::{restore_entries, RestoreOptions, RestoreStats};

/// Most decode threads used, whatever `threads` asks for.
const MAX_WORKERS: usize = 64;

/// A decoded frame, or why the stream stopped at this frame, by sequence number.
type Decoded = (u64, io::Result<Vec<u8>>);

/// Restores the tar held in the zstd stream `input` (a `rootimgtree.zst`, or any
/// zstd stream of a pax tar) into `dest`, as [`crate::tree::restore::restore`] does for a
/// plain archive: `dest` stands for the archive's `top` directory. Frames are
/// decompressed on `threads` threads (0: one per core); the calling thread only reads.
///
/// Errors: a stream that is not zstd, is cut short or fails a checksum (reported as
/// a read error of the archive, even after the tar's last entry, so a damaged tail is
/// not silently accepted), and every restore error.
pub fn restore_zstd(
    input: &mut dyn Read,
    dest: &Path,
    top: &[u8],
    opts: &RestoreOptions,
    threads: usize,
) -> Result<RestoreStats, TreeError> {
    let workers = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
    .clamp(1, MAX_WORKERS);
    let in_flight = 2 * workers + 2;
    let (work_tx, work_rx) = bounded::<(u64, Vec<u8>, Option<u64>)>(workers);
    let (done_tx, done_rx) = bounded::<Decoded>(in_flight);
    let (token_tx, token_rx) = bounded::<()>(in_flight);
    for _ in 0..in_flight {
        // Cannot fail: the channel has room for exactly these tokens.
        let _ = token_tx.send(());
    }
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let work = work_rx.clone();
            let done = done_tx.clone();
            scope.spawn(move || decode_frames(work, done));
        }
        drop(work_rx);
        let restorer = scope.spawn(move || {
            let ordered = Ordered {
                rx: done_rx,
                tokens: token_tx,
                early: BTreeMap::new(),
                next: 0,
                cur: Vec::new(),
                pos: 0,
                failed: false,
            };
            let mut tar = TarReader::new(ordered);
            let stats = restore_entries(&mut tar, dest, top, opts)?;
            // Read the rest (end blocks, index, seek table) so a damaged or truncated
            // tail is reported, as the gzip path checks the last member's CRC.
            io::copy(&mut tar.into_inner(), &mut io::sink()).map_err(|e| TreeError::Format {
                entry: "<end of archive>".into(),
                reason: format!("stream error after the last entry: {e}"),
            })?;
            Ok(stats)
        });
        feed(input, &work_tx, &done_tx, &token_rx);
        // Closing these ends tells the workers, and then the restorer, that no more
        // frames come.
        drop(work_tx);
        drop(done_tx);
        restorer
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// The reading loop: splits `input` into frames and hands data frames to the workers
/// in order, each once a token says there is room for it. A stream error is passed on
/// in the place of the frame it stopped at, so the restore sees it there.
fn feed(
    input: &mut dyn Read,
    work: &Sender<(u64, Vec<u8>, Option<u64>)>,
    done: &Sender<Decoded>,
    tokens: &Receiver<()>,
) {
    let mut frames = FrameScanner::new(input);
    let mut seq = 0u64;
    loop {
        match frames.next_frame() {
            Ok(None) => return,
            Ok(Some(Frame::Skippable)) => {}
            Ok(Some(Frame::Data {
                bytes,
                content_size,
            })) => {
                // Either fails only when the restore has stopped: its error is the one
                // reported, and nothing more needs reading.
                if tokens.recv().is_err() || work.send((seq, bytes, content_size)).is_err() {
                    return;
                }
                seq += 1;
            }
            Err(e) => {
                let _ = done.send((seq, Err(e)));
                return;
            }
        }
    }
}

/// Sends an error for the frame a worker held if it unwinds, so the restore stops
/// instead of waiting for that frame forever.
struct PanicGuard<'a> {
    done: &'a Sender<Decoded>,
    seq: u64,
}

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.done.send((
                self.seq,
                Err(io::Error::other("a zstd decode thread panicked")),
            ));
        }
    }
}

/// A worker: decompresses frames until there are none or the restore is gone.
fn decode_frames(work: Receiver<(u64, Vec<u8>, Option<u64>)>, done: Sender<Decoded>) {
    let mut guard = PanicGuard {
        done: &done,
        seq: 0,
    };
    let mut ctx = None;
    for (seq, bytes, size) in work {
        guard.seq = seq;
        // Name the frame: "checksum mismatch" alone does not say where.
        let result = decode_frame(&mut ctx, &bytes, size)
            .map_err(|e| io::Error::new(e.kind(), format!("zstd frame {seq}: {e}")));
        if done.send((seq, result)).is_err() {
            return;
        }
    }
}

/// Decompresses one whole frame; libzstd checks its content checksum.
fn decode_frame(
    ctx: &mut Option<zstd::bulk::Decompressor<'static>>,
    frame: &[u8],
    content_size: Option<u64>,
) -> io::Result<Vec<u8>> {
    let too_large = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("zstd frame decompresses to more than {MAX_MEMBER_BYTES} bytes"),
        )
    };
    match content_size {
        Some(n) if n > MAX_MEMBER_BYTES as u64 => Err(too_large()),
        Some(n) => {
            let d = match ctx {
                Some(d) => d,
                None => ctx.insert(zstd::bulk::Decompressor::new()?),
            };
            let out = d.decompress(frame, n as usize)?;
            if out.len() as u64 != n {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "zstd frame is shorter than its header says",
                ));
            }
            Ok(out)
        }
        // imgport always records the size; other writers may not. Stream it, bounded.
        None => {
            let mut out = Vec::new();
            zstd::stream::read::Decoder::new(frame)?
                .single_frame()
                .take(MAX_MEMBER_BYTES as u64 + 1)
                .read_to_end(&mut out)?;
            if out.len() > MAX_MEMBER_BYTES {
                return Err(too_large());
            }
            Ok(out)
        }
    }
}

/// [`Read`] over the decoded frames in sequence order; returns a token for each frame
/// it moves past so the reader may read another.
struct Ordered {
    rx: Receiver<Decoded>,
    tokens: Sender<()>,
    /// Frames that arrived before their turn.
    early: BTreeMap<u64, io::Result<Vec<u8>>>,
    next: u64,
    cur: Vec<u8>,
    pos: usize,
    /// Set once an error was returned: the stream stopped, and must not later pass
    /// for a clean end.
    failed: bool,
}

impl Read for Ordered {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::Error::other("the zstd stream failed earlier"));
        }
        while self.pos == self.cur.len() {
            if let Some(result) = self.early.remove(&self.next) {
                self.next += 1;
                let _ = self.tokens.try_send(());
                match result {
                    Ok(data) => {
                        self.cur = data;
                        self.pos = 0;
                    }
                    Err(e) => {
                        self.failed = true;
                        return Err(e);
                    }
                }
                continue;
            }
            match self.rx.recv() {
                Ok((seq, result)) => {
                    self.early.insert(seq, result);
                }
                // Every sender is gone: the end, unless a frame never came.
                Err(_) if self.early.is_empty() => return Ok(0),
                Err(_) => {
                    self.failed = true;
                    return Err(io::Error::other(format!(
                        "zstd frame {} was never decoded",
                        self.next
                    )));
                }
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_come_back_in_order_and_errors_stop_the_stream() {
        let (tx, rx) = bounded(8);
        let (tok_tx, tok_rx) = bounded(8);
        tx.send((1, Ok(b"world".to_vec()))).unwrap();
        tx.send((0, Ok(b"hello ".to_vec()))).unwrap();
        tx.send((2, Err(io::Error::other("bad frame")))).unwrap();
        drop(tx);
        let mut r = Ordered {
            rx,
            tokens: tok_tx,
            early: BTreeMap::new(),
            next: 0,
            cur: Vec::new(),
            pos: 0,
            failed: false,
        };
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).unwrap_err();
        assert_eq!(out, b"hello world");
        assert!(err.to_string().contains("bad frame"));
        assert!(r.read(&mut [0u8; 4]).is_err(), "stays failed");
        assert_eq!(tok_rx.try_iter().count(), 3, "a token per frame passed");
    }

    #[test]
    fn frames_without_a_content_size_are_streamed() {
        let mut frame = Vec::new();
        {
            let mut e = zstd::stream::write::Encoder::new(&mut frame, 3).unwrap();
            io::Write::write_all(&mut e, &[5u8; 70_000]).unwrap();
            e.finish().unwrap();
        }
        let out = decode_frame(&mut None, &frame, None).unwrap();
        assert_eq!(out, vec![5u8; 70_000]);
        assert!(decode_frame(&mut None, &frame, Some(1 << 40)).is_err());
    }
}

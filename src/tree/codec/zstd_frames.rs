//! The zstd side of the ordered parallel decoder: cutting a stream of zstd frames
//! (a `rootimgtree.zst`, FORMAT.md §6) into whole frames from the frame and block
//! headers (RFC 8878 §3.1), without decompressing, and decompressing one frame.
//!
//! This is how a tree that arrives as a stream (a bundle on stdin or through ssh) is
//! read in parallel: the seek table at the end comes too late to help. Skippable
//! frames (imgport's index and footer, the seek table, anyone's) are read past.

use std::io::{self, Read};

use super::unit::{RawUnit, UnitSplitter, MAX_UNIT_BYTES};
use super::zstd_seekable::{u32_at, u64_at, SKIPPABLE_MAGIC_BASE, ZSTD_MAGIC};

/// One frame read off a stream by [`FrameScanner`].
#[derive(Debug)]
pub enum Frame {
    /// A complete zstd frame, and its content size when the header gives it.
    Data {
        bytes: Vec<u8>,
        content_size: Option<u64>,
    },
    /// A skippable frame (imgport's index and footer, the seek table, anyone's),
    /// already read past.
    Skippable,
}

/// Splits a stream of zstd frames into whole frames; see the module docs.
pub struct FrameScanner<R> {
    inner: R,
    /// Bytes consumed, for error messages.
    offset: u64,
    /// Data frames returned as units, for their labels.
    frames: u64,
}

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

impl<R: Read> FrameScanner<R> {
    pub fn new(inner: R) -> FrameScanner<R> {
        FrameScanner {
            inner,
            offset: 0,
            frames: 0,
        }
    }

    /// Appends exactly `n` bytes to `buf`, refusing frames past [`MAX_UNIT_BYTES`].
    fn take(&mut self, buf: &mut Vec<u8>, n: usize) -> io::Result<()> {
        if buf.len() + n > MAX_UNIT_BYTES {
            return Err(invalid(format!(
                "zstd frame at byte {} is larger than {MAX_UNIT_BYTES} bytes",
                self.offset
            )));
        }
        let at = buf.len();
        buf.resize(at + n, 0);
        self.inner.read_exact(&mut buf[at..]).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                invalid(format!(
                    "zstd stream cut short in the frame at byte {}",
                    self.offset
                ))
            } else {
                e
            }
        })
    }

    /// The next frame, or `None` at a clean end of the stream (between frames).
    pub fn next_frame(&mut self) -> io::Result<Option<Frame>> {
        let mut magic = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match self.inner.read(&mut magic[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => return Err(invalid("zstd stream ends inside a frame magic")),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let magic_value = u32::from_le_bytes(magic);
        if magic_value & 0xFFFF_FFF0 == SKIPPABLE_MAGIC_BASE {
            let mut size = [0u8; 4];
            self.inner.read_exact(&mut size)?;
            let size = u32::from_le_bytes(size) as u64;
            let skipped = io::copy(&mut (&mut self.inner).take(size), &mut io::sink())?;
            if skipped != size {
                return Err(invalid("zstd stream cut short in a skippable frame"));
            }
            self.offset += 8 + size;
            return Ok(Some(Frame::Skippable));
        }
        if magic_value != ZSTD_MAGIC {
            return Err(invalid(format!(
                "not a zstd frame at byte {} (magic {magic_value:08x})",
                self.offset
            )));
        }
        let mut buf = magic.to_vec();
        self.take(&mut buf, 1)?;
        let fhd = buf[4];
        if fhd & 0x08 != 0 {
            return Err(invalid("zstd frame header sets its reserved bit"));
        }
        let single_segment = fhd & 0x20 != 0;
        let checksum = fhd & 0x04 != 0;
        let dict_bytes = [0, 1, 2, 4][(fhd & 0x03) as usize];
        let fcs_bytes = match fhd >> 6 {
            0 => usize::from(single_segment),
            1 => 2,
            2 => 4,
            _ => 8,
        };
        let rest = usize::from(!single_segment) + dict_bytes + fcs_bytes;
        self.take(&mut buf, rest)?;
        let fcs = &buf[buf.len() - fcs_bytes..];
        let content_size = match fcs_bytes {
            0 => None,
            1 => Some(fcs[0] as u64),
            // The 2-byte form is offset by 256 (RFC 8878 §3.1.1.1.4).
            2 => Some(u16::from_le_bytes([fcs[0], fcs[1]]) as u64 + 256),
            4 => Some(u32_at(fcs, 0) as u64),
            _ => Some(u64_at(fcs, 0)),
        };
        loop {
            let at = buf.len();
            self.take(&mut buf, 3)?;
            let header = u32::from_le_bytes([buf[at], buf[at + 1], buf[at + 2], 0]);
            let last = header & 1 != 0;
            let size = (header >> 3) as usize;
            let payload = match (header >> 1) & 3 {
                0 | 2 => size,
                1 => 1,
                _ => return Err(invalid("zstd block of the reserved type")),
            };
            self.take(&mut buf, payload)?;
            if last {
                break;
            }
        }
        if checksum {
            self.take(&mut buf, 4)?;
        }
        self.offset += buf.len() as u64;
        Ok(Some(Frame::Data {
            bytes: buf,
            content_size,
        }))
    }
}

impl<R: Read> UnitSplitter for FrameScanner<R> {
    type Tail = io::Empty;

    fn next_unit(&mut self) -> io::Result<Option<RawUnit>> {
        loop {
            match self.next_frame()? {
                None => return Ok(None),
                Some(Frame::Skippable) => {}
                Some(Frame::Data {
                    bytes,
                    content_size,
                }) => {
                    let label = format!("zstd frame {}", self.frames);
                    self.frames += 1;
                    return Ok(Some(RawUnit {
                        bytes,
                        content_size,
                        label,
                    }));
                }
            }
        }
    }

    /// Every zstd frame can be split: there is never a tail.
    fn take_tail(&mut self) -> Option<io::Empty> {
        None
    }
}

/// Decompresses one whole frame (libzstd checks its content checksum), allocating at
/// most `size` bytes when the size is known (a frame header's content size, or the
/// index's record of the frame) and streaming it, bounded by [`MAX_UNIT_BYTES`], when
/// not (other writers may leave it out). The one place a frame is decompressed:
/// callers check the result against what they expected. `ctx` is the thread's
/// decompressor, created on first use.
pub fn decompress_frame(
    ctx: &mut Option<zstd::bulk::Decompressor<'static>>,
    frame: &[u8],
    size: Option<u64>,
) -> io::Result<Vec<u8>> {
    let too_large = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("zstd frame decompresses to more than {MAX_UNIT_BYTES} bytes"),
        )
    };
    match size {
        Some(n) if n > MAX_UNIT_BYTES as u64 => Err(too_large()),
        Some(n) => {
            let d = match ctx {
                Some(d) => d,
                None => ctx.insert(zstd::bulk::Decompressor::new()?),
            };
            d.decompress(frame, n as usize)
        }
        None => {
            let mut out = Vec::new();
            zstd::stream::read::Decoder::new(frame)?
                .single_frame()
                .take(MAX_UNIT_BYTES as u64 + 1)
                .read_to_end(&mut out)?;
            if out.len() > MAX_UNIT_BYTES {
                return Err(too_large());
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_without_a_content_size_are_streamed() {
        let mut frame = Vec::new();
        {
            let mut e = zstd::stream::write::Encoder::new(&mut frame, 3).unwrap();
            io::Write::write_all(&mut e, &[5u8; 70_000]).unwrap();
            e.finish().unwrap();
        }
        let out = decompress_frame(&mut None, &frame, None).unwrap();
        assert_eq!(out, vec![5u8; 70_000]);
        assert!(decompress_frame(&mut None, &frame, Some(1 << 40)).is_err());
    }

    #[test]
    fn units_are_the_data_frames_in_order() {
        let mut stream = Vec::new();
        for part in [&b"first"[..], b"second"] {
            stream.extend(zstd::bulk::compress(part, 3).unwrap());
            // A skippable frame between them is read past.
            stream.extend_from_slice(&SKIPPABLE_MAGIC_BASE.to_le_bytes());
            stream.extend_from_slice(&3u32.to_le_bytes());
            stream.extend_from_slice(b"abc");
        }
        let mut s = FrameScanner::new(&stream[..]);
        let a = s.next_unit().unwrap().unwrap();
        let b = s.next_unit().unwrap().unwrap();
        assert!(s.next_unit().unwrap().is_none());
        assert!(s.take_tail().is_none());
        assert_eq!(
            (a.label.as_str(), b.label.as_str()),
            ("zstd frame 0", "zstd frame 1")
        );
        assert_eq!(
            decompress_frame(&mut None, &b.bytes, b.content_size).unwrap(),
            b"second"
        );
    }
}

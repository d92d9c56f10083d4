//! Random access to a file carried in a stored member of a bundle (the statelite tree):
//! maps the file's offsets to bundle offsets through the fixed stored-block framing
//! (FORMAT.md §1.1) and reads straight from the bundle, inflating nothing.

use std::io::{self, Read, Seek, SeekFrom};

use super::layout::Location;

/// A `Read + Seek` view of one stored file inside a bundle.
pub struct StoredView<R> {
    bundle: R,
    loc: Location,
    pos: u64,
}

impl<R: Read + Seek> StoredView<R> {
    pub fn new(bundle: R, loc: Location) -> StoredView<R> {
        StoredView {
            bundle,
            loc,
            pos: 0,
        }
    }

    /// The file's length.
    pub fn len(&self) -> u64 {
        self.loc.len
    }

    pub fn is_empty(&self) -> bool {
        self.loc.len == 0
    }
}

impl<R: Read + Seek> Read for StoredView<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.loc.len.saturating_sub(self.pos);
        if left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let (at, in_block) = self.loc.map(self.pos);
        let want = (buf.len() as u64).min(left).min(in_block) as usize;
        self.bundle.seek(SeekFrom::Start(at))?;
        let n = self.bundle.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "bundle is truncated",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for StoredView<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let new = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.loc.len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos =
            new.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek out of range"))?;
        Ok(self.pos)
    }
}

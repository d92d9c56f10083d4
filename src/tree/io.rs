//! Small read helpers shared by the tree's decoders and readers.

use std::io::{self, Read};

/// Reads until `buf` is full or the stream ends; returns the count read.
pub fn fill<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// One `read` of at most `remaining` bytes into `buf`, retried on EINTR: the data step
/// of the tar and newc decoders, which must never read past an entry's data.
pub fn read_bounded<R: Read + ?Sized>(
    r: &mut R,
    buf: &mut [u8],
    remaining: u64,
) -> io::Result<usize> {
    let want = usize::try_from(remaining)
        .unwrap_or(usize::MAX)
        .min(buf.len());
    loop {
        match r.read(&mut buf[..want]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Reads exactly `len` bytes (`len` already capped by the caller) into a vector that
/// grows only as bytes arrive. Returns fewer bytes if the stream ends.
pub fn read_capped<R: Read + ?Sized>(r: &mut R, len: u64) -> io::Result<Vec<u8>> {
    let mut v = Vec::new();
    r.take(len).read_to_end(&mut v)?;
    Ok(v)
}

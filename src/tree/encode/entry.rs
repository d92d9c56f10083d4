//! One entry of the pax tar on any `Write`: its header, its file data read from the
//! tree, its padding. The sequential writer, the parallel pipeline's workers and the
//! cpio newc writer all read file data through here, so the live-tree rules (a file
//! that shrank, grew or vanished since the walk) are written once.
//!
//! File data is read with `pread(2)`, not memory-mapped: a file truncated by someone
//! else while mapped raises SIGBUS, and the archive must survive a live tree.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::tree::entry::{Entry, Kind};
use crate::tree::error::{display_path, TreeError};
use crate::tree::format::tar_header::encode_header;
use crate::tree::format::{padding, BLOCK_BYTES};

/// Read buffer for file data and the write buffer of `write_tar`, bytes. Large
/// enough to amortize syscalls, small enough to stay in L2.
pub(crate) const IO_BUF_BYTES: usize = 256 * 1024;

/// Encodes single entries (header, file data, padding) onto a writer, reusing one read
/// buffer across calls. One per thread; cheap to create (one 256 KiB buffer).
pub struct EntryEncoder {
    buf: Vec<u8>,
}

impl Default for EntryEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl EntryEncoder {
    /// A new encoder with its read buffer allocated.
    pub fn new() -> Self {
        EntryEncoder {
            buf: vec![0u8; IO_BUF_BYTES],
        }
    }

    /// Writes `entry` to `out`: its [`encode_header`] bytes, then for regular files the
    /// data read from `source` (only the data segments for sparse files), then zero
    /// padding to a 512-byte block. Returns the number of bytes written.
    ///
    /// The header's sizes are authoritative: if the file shrank since the walk, the
    /// missing bytes are zeros; if it grew, the excess is not written; if it vanished or
    /// was replaced by a non-file, its data is all zeros. Each case pushes a warning
    /// naming the entry onto `warnings`. The file is opened with O_NOFOLLOW (never
    /// through a symlink swapped in) and O_NOATIME where permitted (archiving does not
    /// disturb atimes).
    ///
    /// Errors: other read errors ([`TreeError::Io`] naming `source`), write errors on
    /// `out` (path `<archive output>`), header encoding errors.
    pub fn write_entry<W: Write + ?Sized>(
        &mut self,
        entry: &Entry,
        source: &Path,
        out: &mut W,
        warnings: &mut Vec<String>,
    ) -> Result<u64, TreeError> {
        let header = encode_header(entry)?;
        out.write_all(&header).map_err(output_error)?;
        let mut written = header.len() as u64;
        if entry.kind == Kind::File {
            let data = entry.stored_size();
            self.write_data(entry, source, out, warnings)?;
            let pad = padding(data);
            out.write_all(&[0u8; BLOCK_BYTES][..pad])
                .map_err(output_error)?;
            written += data + pad as u64;
        }
        Ok(written)
    }

    /// Writes exactly `entry.stored_size()` bytes of file data (no header, no
    /// padding), with the live-tree handling described at [`Self::write_entry`].
    /// Shared with the cpio newc encoder, which frames the data its own way.
    pub(crate) fn write_data<W: Write + ?Sized>(
        &mut self,
        entry: &Entry,
        source: &Path,
        out: &mut W,
        warnings: &mut Vec<String>,
    ) -> Result<(), TreeError> {
        let segments: Vec<(u64, u64)> = match &entry.sparse {
            Some(map) => map.clone(),
            None if entry.size == 0 => return Ok(()),
            None => vec![(0, entry.size)],
        };
        let file = match open_source(source) {
            Ok(f) => f,
            // Gone, or replaced by a symlink (ELOOP with O_NOFOLLOW) or a directory.
            Err(e @ (Errno::NOENT | Errno::LOOP | Errno::ISDIR | Errno::NXIO)) => {
                warnings.push(format!(
                    "{}: could not be opened for reading ({}); its {} bytes are archived as zeros",
                    display_path(&entry.path),
                    io::Error::from(e),
                    entry.stored_size()
                ));
                return write_zeros(out, entry.stored_size());
            }
            Err(e) => return Err(TreeError::io(source, e.into())),
        };
        let mut short = false;
        for (offset, len) in segments {
            let got = self.copy_range(&file, source, offset, len, out)?;
            if got < len {
                short = true;
                write_zeros(out, len - got)?;
            }
        }
        let now = file.metadata().map_err(|e| TreeError::io(source, e))?.len();
        if short {
            warnings.push(format!(
                "{}: shrank while being read (now {now} bytes); zero-filled to the {} bytes recorded",
                display_path(&entry.path),
                entry.size
            ));
        } else if now != entry.size {
            warnings.push(format!(
                "{}: changed size while being read (now {now} bytes); archived as {} bytes",
                display_path(&entry.path),
                entry.size
            ));
        }
        Ok(())
    }

    /// Copies up to `len` bytes at `offset` of `file` to `out`; returns the count
    /// actually read (less than `len` only at end of file).
    fn copy_range<W: Write + ?Sized>(
        &mut self,
        file: &File,
        source: &Path,
        offset: u64,
        len: u64,
        out: &mut W,
    ) -> Result<u64, TreeError> {
        let mut done = 0u64;
        while done < len {
            let want = (len - done).min(self.buf.len() as u64) as usize;
            let n = match file.read_at(&mut self.buf[..want], offset + done) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(TreeError::io(source, e)),
            };
            out.write_all(&self.buf[..n]).map_err(output_error)?;
            done += n as u64;
        }
        Ok(done)
    }
}

/// Opens a regular file for reading without following symlinks or touching atime.
/// A FIFO or device swapped in since the walk gives `ENXIO` (never blocks).
pub(crate) fn open_source(path: &Path) -> Result<File, Errno> {
    let base =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK;
    let fd = match rustix::fs::open(path, base | OFlags::NOATIME, Mode::empty()) {
        // O_NOATIME needs file ownership or CAP_FOWNER.
        Err(Errno::PERM) => rustix::fs::open(path, base, Mode::empty())?,
        other => other?,
    };
    let file = File::from(fd);
    // A FIFO or device swapped in since the walk would block or stream forever; only
    // regular files are read (NONBLOCK above keeps the open itself from blocking).
    match file.metadata() {
        Ok(md) if md.is_file() => Ok(file),
        Ok(_) => Err(Errno::NXIO),
        Err(e) => Err(e.raw_os_error().map_or(Errno::IO, Errno::from_raw_os_error)),
    }
}

fn write_zeros<W: Write + ?Sized>(out: &mut W, mut n: u64) -> Result<(), TreeError> {
    let zeros = [0u8; 8 * BLOCK_BYTES];
    while n > 0 {
        let k = n.min(zeros.len() as u64) as usize;
        out.write_all(&zeros[..k]).map_err(output_error)?;
        n -= k as u64;
    }
    Ok(())
}

/// An error writing the archive, named `<archive output>`.
pub(crate) fn output_error(e: io::Error) -> TreeError {
    TreeError::io(PathBuf::from("<archive output>"), e)
}

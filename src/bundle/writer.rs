//! Writes a bundle: tar entries into a sequence of gzip members.
//!
//! Each member is an ordinary gzip member, so the whole file is plain multi-member gzip
//! that `gzip -dc`, `tar -xzf` and xCAT's `tar zxf` read unchanged. A new member starts
//! whenever the compression level changes: already-compressed payloads go into level-0
//! members (stored deflate blocks, about 5 bytes per 64 KiB) instead of being deflated
//! twice.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::error::{Error, Result};

/// Bytes sniffed from a payload to decide whether it is already compressed.
const SNIFF_BYTES: usize = 0x210;

/// A writer whose output is a chain of gzip members, one per run of equal level.
struct Members<W: Write> {
    /// The member being written, or the bare writer between members.
    state: Option<State<W>>,
    level: u32,
}

enum State<W: Write> {
    Open(Box<GzEncoder<Counted<W>>>),
    Idle(Counted<W>),
}

/// Counts what reaches the real writer, so callers can report bytes out.
struct Counted<W: Write> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> Members<W> {
    fn new(out: W, level: u32) -> Members<W> {
        Members {
            state: Some(State::Idle(Counted {
                inner: out,
                count: 0,
            })),
            level,
        }
    }

    /// Makes later bytes go into a member of `level`; closes the current member when
    /// the level differs.
    fn set_level(&mut self, level: u32) -> io::Result<()> {
        if level != self.level {
            self.close_member()?;
            self.level = level;
        }
        Ok(())
    }

    fn close_member(&mut self) -> io::Result<()> {
        match self.state.take() {
            Some(State::Open(enc)) => self.state = Some(State::Idle(enc.finish()?)),
            other => self.state = other,
        }
        Ok(())
    }

    fn encoder(&mut self) -> io::Result<&mut GzEncoder<Counted<W>>> {
        self.state = match self.state.take() {
            Some(State::Idle(w)) => Some(State::Open(Box::new(GzEncoder::new(
                w,
                Compression::new(self.level),
            )))),
            other => other,
        };
        match self.state.as_mut() {
            Some(State::Open(enc)) => Ok(enc),
            _ => Err(io::Error::other("bundle writer used after finish")),
        }
    }

    fn finish(mut self) -> io::Result<(W, u64)> {
        self.close_member()?;
        match self.state.take() {
            Some(State::Idle(mut w)) => {
                w.flush()?;
                Ok((w.inner, w.count))
            }
            _ => Err(io::Error::other("bundle writer used after finish")),
        }
    }
}

impl<W: Write> Write for Members<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.encoder()?.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.state.as_mut() {
            Some(State::Open(enc)) => enc.flush(),
            Some(State::Idle(w)) => w.flush(),
            None => Ok(()),
        }
    }
}

/// What one bundle writer produced.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteStats {
    /// Payload bytes read from sources (tar data, headers excluded).
    pub bytes_in: u64,
    /// Bytes of the bundle file.
    pub bytes_out: u64,
    pub members: u64,
}

/// Builds a bundle. Entry names are given without the `./` prefix; the writer adds it.
pub struct BundleWriter<W: Write> {
    tar: tar::Builder<Members<W>>,
    level: u32,
    mtime: u64,
    stats: WriteStats,
}

impl<W: Write> BundleWriter<W> {
    /// A gzip bundle at `level` (0–9). `mtime` stamps generated entries (manifest,
    /// directories).
    pub fn new(out: W, level: u32, mtime: u64) -> BundleWriter<W> {
        BundleWriter {
            tar: tar::Builder::new(Members::new(out, level.min(9))),
            level: level.min(9),
            mtime,
            stats: WriteStats::default(),
        }
    }

    /// Writes the two directory entries xCAT's `tar czf . ` starts with: `./` (0700)
    /// and `./<image_dir>/` (0755).
    pub fn begin_image(&mut self, image_dir: &str, first: bool) -> Result<()> {
        if first {
            self.append_dir("./", 0o700)?;
        }
        self.append_dir(&format!("./{image_dir}/"), 0o755)
    }

    fn append_dir(&mut self, name: &str, mode: u32) -> Result<()> {
        let h = self.header(tar::EntryType::Directory, mode, 0);
        self.append_named(h, name, io::empty())
            .map_err(|e| Error::io(name, e))
    }

    /// Appends an entry under exactly `name`. The tar crate's path setters normalise
    /// `./x` to `x`; xCAT's bundles (and scripts that list them) have `./` names, so
    /// the name is written raw, with a GNU long-name record when it exceeds 100 bytes.
    fn append_named(&mut self, mut h: tar::Header, name: &str, data: impl Read) -> io::Result<()> {
        let bytes = name.as_bytes();
        if bytes.len() > NAME_FIELD_BYTES {
            let mut long = tar::Header::new_gnu();
            long.set_entry_type(tar::EntryType::GNULongName);
            long.set_size(bytes.len() as u64 + 1);
            long.set_mode(0o644);
            write_name(&mut long, b"././@LongLink");
            long.set_cksum();
            let mut payload = bytes.to_vec();
            payload.push(0);
            self.tar.append(&long, payload.as_slice())?;
        }
        write_name(&mut h, &bytes[..bytes.len().min(NAME_FIELD_BYTES)]);
        h.set_cksum();
        self.tar.append(&h, data)
    }

    fn header(&self, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(self.mtime);
        h.set_uid(0);
        h.set_gid(0);
        // Names as xCAT's bundles carry them (GNU tar run by root).
        let _ = h.set_username("root");
        let _ = h.set_groupname("root");
        h
    }

    /// Adds generated bytes (manifest.xml, litefile.csv) as `./<name>`.
    pub fn add_bytes(&mut self, name: &str, data: &[u8], mode: u32) -> Result<()> {
        self.use_level(self.level, name)?;
        let h = self.header(tar::EntryType::Regular, mode, data.len() as u64);
        self.append_named(h, &format!("./{name}"), data)
            .map_err(|e| Error::io(name, e))?;
        self.stats.bytes_in += data.len() as u64;
        Ok(())
    }

    /// Streams the file at `src` into the bundle as `./<name>`, with its mode and
    /// mtime. Already-compressed content is stored, not deflated again.
    pub fn add_file(&mut self, name: &str, src: &Path) -> Result<u64> {
        let mut f = File::open(src).map_err(|e| Error::io(src, e))?;
        let meta = f.metadata().map_err(|e| Error::io(src, e))?;
        if !meta.is_file() {
            return Err(Error::io(
                src,
                io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
            ));
        }
        let mut head = vec![0u8; SNIFF_BYTES];
        let got = read_up_to(&mut f, &mut head).map_err(|e| Error::io(src, e))?;
        head.truncate(got);
        let level = if super::is_precompressed(&head) {
            0
        } else {
            self.level
        };
        self.use_level(level, name)?;
        let size = meta.len();
        use std::os::unix::fs::MetadataExt;
        let mut h = self.header(tar::EntryType::Regular, meta.mode() & 0o7777, size);
        h.set_mtime(meta.mtime().max(0) as u64);
        // The header promised `size` bytes: a file that changes size while it is read
        // is padded or cut so the tar stays well-formed, and then reported.
        let mut data = Exact {
            inner: io::Cursor::new(head).chain(f),
            left: size,
            short: false,
        };
        self.append_named(h, &format!("./{name}"), &mut data)
            .map_err(|e| Error::io(src, e))?;
        let mut probe = [0u8; 1];
        if data.short || data.inner.read(&mut probe).map_err(|e| Error::io(src, e))? != 0 {
            return Err(Error::io(
                src,
                io::Error::other("file changed size while it was being exported"),
            ));
        }
        self.stats.bytes_in += size;
        Ok(size)
    }

    /// Adds an already-open stream of known `size` (e.g. a generated tree archive).
    pub fn add_reader(
        &mut self,
        name: &str,
        size: u64,
        mode: u32,
        compressible: bool,
        reader: impl Read,
    ) -> Result<()> {
        let level = if compressible { self.level } else { 0 };
        self.use_level(level, name)?;
        let h = self.header(tar::EntryType::Regular, mode, size);
        self.append_named(h, &format!("./{name}"), reader.take(size))
            .map_err(|e| Error::io(name, e))?;
        self.stats.bytes_in += size;
        Ok(())
    }

    /// Adds a directory entry `./<name>/` with the given mode and mtime.
    pub fn add_dir(&mut self, name: &str, mode: u32, mtime: u64) -> Result<()> {
        self.use_level(self.level, name)?;
        let mut h = self.header(tar::EntryType::Directory, mode, 0);
        h.set_mtime(mtime);
        self.append_named(h, &format!("./{name}/"), io::empty())
            .map_err(|e| Error::io(name, e))
    }

    /// Adds a symlink entry `./<name>` pointing at `target`.
    pub fn add_symlink(&mut self, name: &str, target: &Path, mtime: u64) -> Result<()> {
        let mut h = self.header(tar::EntryType::Symlink, 0o777, 0);
        h.set_mtime(mtime);
        let target = target.as_os_str().as_encoded_bytes();
        if target.len() > NAME_FIELD_BYTES {
            return Err(Error::io(
                name,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "symlink target longer than 100 bytes",
                ),
            ));
        }
        h.as_old_mut().linkname[..target.len()].copy_from_slice(target);
        self.append_named(h, &format!("./{name}"), io::empty())
            .map_err(|e| Error::io(name, e))
    }

    fn use_level(&mut self, level: u32, name: &str) -> Result<()> {
        let before = self.tar.get_ref().level;
        self.tar
            .get_mut()
            .set_level(level)
            .map_err(|e| Error::io(name, e))?;
        if before != level {
            self.stats.members += 1;
        }
        Ok(())
    }

    /// Ends the tar and the last gzip member; returns the writer and the statistics.
    pub fn finish(self) -> Result<(W, WriteStats)> {
        let mut stats = self.stats;
        let members = self.tar.into_inner().map_err(|e| Error::io("bundle", e))?;
        let (w, out) = members.finish().map_err(|e| Error::io("bundle", e))?;
        stats.bytes_out = out;
        stats.members += 1;
        Ok((w, stats))
    }
}

/// Yields exactly `left` bytes of `inner`, zero-padded if it ends early.
struct Exact<R> {
    inner: R,
    left: u64,
    short: bool,
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = if self.short {
            0
        } else {
            self.inner.read(&mut buf[..want])?
        };
        let n = if n == 0 {
            self.short = true;
            buf[..want].fill(0);
            want
        } else {
            n
        };
        self.left -= n as u64;
        Ok(n)
    }
}

/// Size of the ustar name field.
const NAME_FIELD_BYTES: usize = 100;

fn write_name(h: &mut tar::Header, name: &[u8]) {
    let field = &mut h.as_old_mut().name;
    field.fill(0);
    field[..name.len()].copy_from_slice(name);
}

/// Reads until `buf` is full or the source ends; returns the bytes read.
fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
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

//! Writes a bundle: tar entries into a sequence of gzip members.
//!
//! Each member is an ordinary gzip member, so the whole file is plain multi-member gzip
//! that `gzip -dc`, `tar -xzf` and xCAT's `tar zxf` read unchanged. A new member starts
//! whenever the compression level changes: already-compressed payloads go into level-0
//! members (stored deflate blocks, about 5 bytes per 64 KiB) instead of being deflated
//! twice.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;

use super::layout::{Location, GZIP_HEADER, STORED_BLOCK_BYTES, STORED_BLOCK_HEADER};
use crate::error::{Error, Result};
use crate::tree::format::padding;

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

    /// Closes any open member and hands out the bare writer, for a member written by
    /// hand ([`Stored`]).
    fn bare(&mut self) -> io::Result<&mut Counted<W>> {
        self.close_member()?;
        match self.state.as_mut() {
            Some(State::Idle(w)) => Ok(w),
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

/// A gzip member made of stored deflate blocks of exactly [`STORED_BLOCK_BYTES`]
/// (the last one shorter), so uncompressed offset `u` of the member is at bundle
/// offset `member + 10 + (u / 65535) * 65540 + 5 + u % 65535`.
struct Stored<'a, W: Write> {
    out: &'a mut Counted<W>,
    buf: Vec<u8>,
    /// CRC of everything after the first `skip` bytes (the tar header, which may be
    /// rewritten once the file's size is known).
    crc: crc32fast::Hasher,
    skip: usize,
    len: u64,
}

impl<'a, W: Write> Stored<'a, W> {
    fn start(out: &'a mut Counted<W>, header: &[u8]) -> io::Result<Stored<'a, W>> {
        out.write_all(&GZIP_HEADER)?;
        let mut s = Stored {
            out,
            buf: Vec::with_capacity(STORED_BLOCK_BYTES),
            crc: crc32fast::Hasher::new(),
            skip: header.len(),
            len: 0,
        };
        s.buf.extend_from_slice(header);
        s.len = header.len() as u64;
        Ok(s)
    }

    fn block(&mut self, last: bool) -> io::Result<()> {
        let n = self.buf.len() as u16;
        let mut head = [0u8; 5];
        head[0] = u8::from(last);
        head[1..3].copy_from_slice(&n.to_le_bytes());
        head[3..5].copy_from_slice(&(!n).to_le_bytes());
        self.out.write_all(&head)?;
        self.out.write_all(&self.buf)?;
        let hashed_from = self.skip.min(self.buf.len());
        self.crc.update(&self.buf[hashed_from..]);
        self.skip -= hashed_from;
        self.buf.clear();
        Ok(())
    }

    /// Ends the member; `header` is the final version of the first bytes (same
    /// length as at `start`).
    fn finish(mut self, header: &[u8]) -> io::Result<()> {
        self.block(true)?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(header);
        crc.combine(&self.crc);
        self.out.write_all(&crc.finalize().to_le_bytes())?;
        self.out.write_all(&(self.len as u32).to_le_bytes())
    }
}

impl<W: Write> Write for Stored<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = STORED_BLOCK_BYTES - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        self.len += n as u64;
        if self.buf.len() == STORED_BLOCK_BYTES {
            self.block(false)?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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
    /// The statelite tree's place, announced in the bundle footer.
    tree: Option<Location>,
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
            tree: None,
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

    /// The raw tar header block(s) of a regular file `name` of `size` bytes.
    fn header_bytes(&self, name: &str, size: u64, mode: u32) -> Vec<u8> {
        raw_header(
            gnu_header(self.mtime, tar::EntryType::Regular, mode, size),
            name,
        )
    }

    /// Adds `./<name>` of known `size` in its own stored member (FORMAT.md §1.1), so
    /// its bytes can later be read at computed bundle offsets.
    pub fn add_stored(
        &mut self,
        name: &str,
        size: u64,
        mode: u32,
        reader: impl Read,
    ) -> Result<Location> {
        let full = format!("./{name}");
        let header = self.header_bytes(&full, size, mode);
        let err = |e| Error::io(name, e);
        let out = self.tar.get_mut().bare().map_err(err)?;
        let member_offset = out.count;
        let mut stored = Stored::start(out, &header).map_err(err)?;
        let copied = io::copy(&mut reader.take(size), &mut stored).map_err(err)?;
        if copied != size {
            return Err(Error::io(
                name,
                io::Error::new(io::ErrorKind::UnexpectedEof, "source ended early"),
            ));
        }
        stored.write_all(&vec![0u8; padding(size)]).map_err(err)?;
        stored.finish(&header).map_err(err)?;
        self.stats.bytes_in += size;
        self.stats.members += 1;
        Ok(Location {
            member_offset,
            data_skip: header.len() as u64,
            len: size,
        })
    }

    /// Announces `loc` as the statelite tree in the bundle footer.
    pub fn set_tree(&mut self, loc: Location) {
        self.tree = Some(loc);
    }

    /// Appends an entry under exactly `name` (see [`raw_header`]).
    fn append_named(&mut self, h: tar::Header, name: &str, data: impl Read) -> io::Result<()> {
        let raw = raw_header(h, name);
        let (long, last) = raw.split_at(raw.len() - 512);
        self.tar.get_mut().write_all(long)?;
        self.tar.append(tar::Header::from_byte_slice(last), data)
    }

    fn header(&self, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        gnu_header(self.mtime, kind, mode, size)
    }

    /// Adds generated bytes (manifest.xml, litefile.csv) as `./<name>`.
    pub fn add_bytes(&mut self, name: &str, data: &[u8], mode: u32) -> Result<()> {
        self.add_reader(name, data.len() as u64, mode, data)
    }

    /// Adds `size` generated bytes read from `data` as `./<name>`, compressed as
    /// [`BundleWriter::add_bytes`] does, for content too big to hold (the newc
    /// sidecar). A `data` that ends before `size` bytes is an error.
    pub fn add_reader(&mut self, name: &str, size: u64, mode: u32, data: impl Read) -> Result<()> {
        self.use_level(self.level, name)?;
        let h = self.header(tar::EntryType::Regular, mode, size);
        let mut exact = Exact {
            inner: data,
            left: size,
            short: false,
        };
        self.append_named(h, &format!("./{name}"), &mut exact)
            .map_err(|e| Error::io(name, e))?;
        if exact.short {
            return Err(Error::io(
                name,
                io::Error::new(io::ErrorKind::UnexpectedEof, "source ended early"),
            ));
        }
        self.stats.bytes_in += size;
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
        let got = crate::tree::io::fill(&mut f, &mut head).map_err(|e| Error::io(src, e))?;
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

    /// Ends the tar and the last gzip member, then writes the bundle footer (an empty
    /// gzip member, invisible to gunzip) when a tree was announced; returns the writer
    /// and the statistics.
    pub fn finish(self) -> Result<(W, WriteStats)> {
        let mut stats = self.stats;
        let tree = self.tree;
        let mut members = self.tar.into_inner().map_err(|e| Error::io("bundle", e))?;
        if let Some(loc) = tree {
            let out = members.bare().map_err(|e| Error::io("bundle", e))?;
            out.write_all(&super::footer::encode(&loc))
                .map_err(|e| Error::io("bundle", e))?;
        }
        let (w, out) = members.finish().map_err(|e| Error::io("bundle", e))?;
        stats.bytes_out = out;
        stats.members += 1;
        Ok((w, stats))
    }
}

/// Bytes a non-seekable destination must rewrite once the stream has ended: the tar
/// header of a member whose size was unknown when it started ([`BundleWriter::add_streamed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderPatch {
    /// Offset in the bundle of the first byte to rewrite.
    pub offset: u64,
    /// The final header bytes (same length as the placeholder they replace).
    pub bytes: Vec<u8>,
}

impl<W: Write> BundleWriter<W> {
    /// Adds `./<name>` whose bytes `produce` writes, without knowing their size first
    /// and without seeking: the tar header goes out with size 0, and the returned
    /// [`HeaderPatch`] says which bundle bytes must be replaced afterwards. The header
    /// sits in stored (not deflated) bytes and the member CRC is already computed over
    /// the final header, so applying the patch is all that is left to do. A bundle
    /// streamed to another host applies it there once the stream is complete.
    pub fn add_streamed<T>(
        &mut self,
        name: &str,
        mode: u32,
        produce: impl FnOnce(&mut dyn Write) -> Result<T>,
    ) -> Result<(T, Location, HeaderPatch)> {
        let full = format!("./{name}");
        let placeholder = self.header_bytes(&full, 0, mode);
        let mtime = self.mtime;
        let err = |e| Error::io(name, e);
        let out = self.tar.get_mut().bare().map_err(err)?;
        let member_offset = out.count;
        let mut stored = Stored::start(out, &placeholder).map_err(err)?;
        let value = produce(&mut stored)?;
        let size = stored.len - placeholder.len() as u64;
        stored.write_all(&vec![0u8; padding(size)]).map_err(err)?;
        let header = raw_header(
            gnu_header(mtime, tar::EntryType::Regular, mode, size),
            &full,
        );
        if header.len() != placeholder.len() {
            return Err(Error::io(
                name,
                io::Error::other("tar header length changed"),
            ));
        }
        stored.finish(&header).map_err(err)?;
        self.stats.bytes_in += size;
        self.stats.members += 1;
        let location = Location {
            member_offset,
            data_skip: header.len() as u64,
            len: size,
        };
        let patch = HeaderPatch {
            offset: member_offset + GZIP_HEADER.len() as u64 + STORED_BLOCK_HEADER,
            bytes: header,
        };
        Ok((value, location, patch))
    }
}

impl<W: Write + Seek> BundleWriter<W> {
    /// Adds `./<name>` whose bytes `produce` writes, without knowing their size first:
    /// the member is written as [`add_streamed`](Self::add_streamed) does and its tar
    /// header rewritten in place at once. This is how a tree goes into a bundle file
    /// without a spool copy.
    pub fn add_generated<T>(
        &mut self,
        name: &str,
        mode: u32,
        produce: impl FnOnce(&mut dyn Write) -> Result<T>,
    ) -> Result<(T, Location)> {
        let (value, location, patch) = self.add_streamed(name, mode, produce)?;
        let err = |e| Error::io(name, e);
        let out = self.tar.get_mut().bare().map_err(err)?;
        let end = out.count;
        out.inner.seek(SeekFrom::Start(patch.offset)).map_err(err)?;
        out.inner.write_all(&patch.bytes).map_err(err)?;
        out.inner.seek(SeekFrom::Start(end)).map_err(err)?;
        Ok((value, location))
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

/// A GNU-format header as xCAT's `tar czf` run by root writes it.
fn gnu_header(mtime: u64, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_uid(0);
    h.set_gid(0);
    let _ = h.set_username("root");
    let _ = h.set_groupname("root");
    h
}

/// The header block(s) naming an entry exactly `name`: the tar crate's path setters
/// normalise `./x` to `x`, but xCAT's bundles (and scripts that list them) have `./`
/// names, so the name is written raw, after a GNU long-name record when it exceeds
/// 100 bytes.
fn raw_header(mut h: tar::Header, name: &str) -> Vec<u8> {
    let bytes = name.as_bytes();
    let mut out = Vec::with_capacity(3 * 512);
    if bytes.len() > NAME_FIELD_BYTES {
        let mut long = tar::Header::new_gnu();
        long.set_entry_type(tar::EntryType::GNULongName);
        long.set_size(bytes.len() as u64 + 1);
        long.set_mode(0o644);
        write_name(&mut long, b"././@LongLink");
        long.set_cksum();
        out.extend_from_slice(long.as_bytes());
        let mut payload = bytes.to_vec();
        payload.push(0);
        payload.resize(payload.len().div_ceil(512) * 512, 0);
        out.extend_from_slice(&payload);
    }
    write_name(&mut h, &bytes[..bytes.len().min(NAME_FIELD_BYTES)]);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out
}

/// Size of the ustar name field.
const NAME_FIELD_BYTES: usize = 100;

fn write_name(h: &mut tar::Header, name: &[u8]) {
    let field = &mut h.as_old_mut().name;
    field.fill(0);
    field[..name.len()].copy_from_slice(name);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{footer, StoredView};
    use std::io::Cursor;

    /// Inflates a whole bundle the way gunzip does.
    fn gunzip(b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(b)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn tree_bytes(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn a_reader_adds_what_add_bytes_adds_and_a_short_one_is_refused() {
        let data = tree_bytes(300_000);
        let bundle = |from_reader: bool| {
            let mut w = BundleWriter::new(Vec::new(), 6, 0);
            w.begin_image("img", true).unwrap();
            if from_reader {
                w.add_reader("img/m", data.len() as u64, 0o644, &data[..])
                    .unwrap();
            } else {
                w.add_bytes("img/m", &data, 0o644).unwrap();
            }
            w.finish().unwrap().0
        };
        assert_eq!(bundle(true), bundle(false));
        let mut w = BundleWriter::new(Vec::new(), 6, 0);
        let err = w.add_reader("img/m", 10, 0o644, &b"short"[..]).unwrap_err();
        assert!(err.to_string().contains("img/m"), "{err}");
    }

    #[test]
    fn generated_and_stored_files_are_readable_in_place_and_by_tar() {
        let long = "x".repeat(120);
        for (name, n) in [
            ("img/rootimgtree.gz", 200_000),
            (&*format!("{long}/rootimgtree.gz"), 70_000),
            ("img/t.gz", 10),
        ] {
            let data = tree_bytes(n);
            for generated in [true, false] {
                let mut w = BundleWriter::new(Cursor::new(Vec::new()), 6, 0);
                w.begin_image("img", true).unwrap();
                w.add_bytes("img/manifest.xml", b"<xcatimage/>", 0o644)
                    .unwrap();
                let loc = if generated {
                    w.add_generated(name, 0o644, |out| {
                        out.write_all(&data).map_err(|e| Error::io("t", e))
                    })
                    .unwrap()
                    .1
                } else {
                    w.add_stored(name, data.len() as u64, 0o644, &data[..])
                        .unwrap()
                };
                w.set_tree(loc);
                w.add_bytes("img/after", b"after", 0o644).unwrap();
                let (cur, _) = w.finish().unwrap();
                let bundle = cur.into_inner();
                // gunzip and tar see an ordinary tar.
                let mut ar = tar::Archive::new(Cursor::new(gunzip(&bundle)));
                let mut found = false;
                for e in ar.entries().unwrap() {
                    let mut e = e.unwrap();
                    if e.path_bytes().ends_with(b"rootimgtree.gz")
                        || e.path_bytes().ends_with(b"t.gz")
                    {
                        let mut got = Vec::new();
                        e.read_to_end(&mut got).unwrap();
                        assert_eq!(got, data);
                        found = true;
                    }
                }
                assert!(found);
                // The footer finds it and the view reads it without inflating.
                let tail = &bundle[bundle.len() - footer::FOOTER_BYTES..];
                assert_eq!(footer::parse(tail), Some(loc));
                let mut view = StoredView::new(Cursor::new(&bundle), loc);
                let mut got = Vec::new();
                view.read_to_end(&mut got).unwrap();
                assert_eq!(got, data);
                if n > 66_000 {
                    view.seek(SeekFrom::Start(65_530)).unwrap();
                    let mut piece = [0u8; 20];
                    view.read_exact(&mut piece).unwrap();
                    assert_eq!(&piece[..], &data[65_530..65_550]);
                }
            }
        }
    }

    /// A streamed member plus its patch, applied afterwards, gives the very bytes the
    /// seeking writer produces: what a remote destination ends up holding.
    #[test]
    fn streamed_member_patched_later_equals_generated() {
        let data = tree_bytes(150_000);
        let produce = |out: &mut dyn Write| out.write_all(&data).map_err(|e| Error::io("t", e));
        let long = "y".repeat(130);
        for name in ["img/rootimgtree.gz", &*format!("{long}/rootimgtree.gz")] {
            let mut seeking = BundleWriter::new(Cursor::new(Vec::new()), 6, 7);
            seeking.begin_image("img", true).unwrap();
            seeking
                .add_bytes("img/manifest.xml", b"<xcatimage/>", 0o644)
                .unwrap();
            let (_, loc) = seeking.add_generated(name, 0o644, produce).unwrap();
            seeking.set_tree(loc);
            seeking.add_bytes("img/after", b"after", 0o644).unwrap();
            let expected = seeking.finish().unwrap().0.into_inner();

            let mut streaming = BundleWriter::new(Vec::new(), 6, 7);
            streaming.begin_image("img", true).unwrap();
            streaming
                .add_bytes("img/manifest.xml", b"<xcatimage/>", 0o644)
                .unwrap();
            let (_, loc, patch) = streaming.add_streamed(name, 0o644, produce).unwrap();
            streaming.set_tree(loc);
            streaming.add_bytes("img/after", b"after", 0o644).unwrap();
            let mut got = streaming.finish().unwrap().0;
            let span = patch.offset as usize..patch.offset as usize + patch.bytes.len();
            assert!(
                got[span.clone()] != patch.bytes[..],
                "a placeholder went out first"
            );
            got[span].copy_from_slice(&patch.bytes);
            assert!(got == expected, "{name}");
        }
    }
}

//! The cpio **newc** format, both directions: the pull decoder [`CpioReader`] for
//! newc (`070701`) and its `crc` variant (`070702`), the format of xCAT's
//! `rootimgtree.gz` (`find rootimg | cpio -H newc -o`, XCAT.md §4.3), and the header
//! encoding used by the tree writer for `export --compat xcat` (`encode::newc`).
//!
//! Layout: a 110-byte ASCII header (magic + 13 eight-digit hex fields), the name with
//! its NUL padded so header+name is a multiple of 4, then the data padded to 4. The
//! archive ends with an entry named `TRAILER!!!`.
//!
//! Hard links: GNU cpio writes every member of a link group (same dev and inode,
//! nlink > 1) but stores the data only with the last one written, giving the earlier
//! ones size 0. The decoder turns each group into one [`Kind::File`] carrying the data
//! followed by [`Kind::HardLink`] entries to it, buffering the earlier names until the
//! data-bearing member arrives.

use std::collections::{HashMap, VecDeque};
use std::io::{self, Read};

use crate::tree::entry::{Entry, Kind, Timestamp};
use crate::tree::error::{display_path, TreeError};
use crate::tree::format::tar_decode::{clean_name, EntryReader, MAX_NAME};
use crate::tree::io::{fill, read_bounded, read_capped};

pub(crate) const HEADER: usize = 110;
/// Longest symlink target we accept (Linux caps targets at PATH_MAX = 4096).
const MAX_LINK: u64 = 64 * 1024;

const S_IFMT: u32 = 0o170000;
pub(crate) const S_IFSOCK: u32 = 0o140000;
pub(crate) const S_IFLNK: u32 = 0o120000;
pub(crate) const S_IFREG: u32 = 0o100000;
pub(crate) const S_IFBLK: u32 = 0o060000;
pub(crate) const S_IFDIR: u32 = 0o040000;
pub(crate) const S_IFCHR: u32 = 0o020000;
pub(crate) const S_IFIFO: u32 = 0o010000;

/// Identity of an inode in the archive: (devmajor, devminor, ino).
type InodeKey = (u32, u32, u32);

/// Earlier members of a hard-link group that arrived without data.
struct Pending {
    nlink: u32,
    entries: Vec<Entry>,
}

/// Pull decoder of a cpio newc/crc stream; see the module docs. Same interface as
/// [`crate::tree::format::tar_decode::TarReader`] through [`EntryReader`].
///
/// The source should be buffered (e.g. [`std::io::BufReader`]).
pub struct CpioReader<R: Read> {
    inner: R,
    offset: u64,
    remaining: u64,
    padding: u64,
    /// For `070702`: (checksum stored in the header, running sum of data bytes).
    crc: Option<(u32, u32)>,
    /// The current entry's raw name, escaped only for an error or warning.
    current: Vec<u8>,
    /// Entries decoded but not yet returned (hard links released by a group leader).
    queue: VecDeque<Entry>,
    pending: HashMap<InodeKey, Pending>,
    /// Link groups already materialized: inode → archive path of the file holding it.
    leaders: HashMap<InodeKey, Vec<u8>>,
    done: bool,
    warnings: Vec<String>,
    /// BLAKE3 of every header and name read (the sidecar's binding, FORMAT.md §7).
    headers: Option<blake3::Hasher>,
}

impl<R: Read> CpioReader<R> {
    /// Creates a decoder reading the cpio stream from `inner`.
    pub fn new(inner: R) -> CpioReader<R> {
        CpioReader {
            inner,
            offset: 0,
            remaining: 0,
            padding: 0,
            crc: None,
            current: b"<start of archive>".to_vec(),
            queue: VecDeque::new(),
            pending: HashMap::new(),
            leaders: HashMap::new(),
            done: false,
            warnings: Vec::new(),
            headers: None,
        }
    }

    /// Also hashes every header and NUL-terminated name read, trailer included (see
    /// [`CpioReader::header_digest`]).
    pub(crate) fn digesting_headers(mut self) -> CpioReader<R> {
        self.headers = Some(blake3::Hasher::new());
        self
    }

    /// The digest of the headers read so far, if asked for: complete once
    /// `next_entry` has returned `None`.
    pub(crate) fn header_digest(&self) -> Option<[u8; 32]> {
        self.headers.as_ref().map(|h| *h.finalize().as_bytes())
    }

    /// Gives back the underlying stream, positioned after what was decoded.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn format(&self, reason: impl Into<String>) -> TreeError {
        TreeError::Format {
            entry: display_path(&self.current),
            reason: reason.into(),
        }
    }

    fn read_err(&self, e: io::Error) -> TreeError {
        self.format(format!("read error at byte offset {}: {e}", self.offset))
    }

    fn truncated(&self) -> TreeError {
        self.format(format!(
            "archive truncated at byte offset {} ({} bytes of data missing)",
            self.offset, self.remaining
        ))
    }

    fn skip_padding(&mut self, n: u64) -> Result<(), TreeError> {
        let got = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())
            .map_err(|e| self.read_err(e))?;
        self.offset = self.offset.saturating_add(got);
        if got < n {
            return Err(self.format(format!(
                "archive truncated in padding at byte offset {}",
                self.offset
            )));
        }
        Ok(())
    }

    /// Consumes the current entry's unread data (checksummed) and its padding.
    fn finish_entry(&mut self) -> Result<(), TreeError> {
        let mut buf = [0u8; 8192];
        while self.remaining > 0 {
            self.read_data(&mut buf)?;
        }
        let pad = self.padding;
        self.padding = 0;
        self.skip_padding(pad)
    }

    /// Called when the current entry's data has been fully consumed.
    fn check_crc(&mut self) -> Result<(), TreeError> {
        if let Some((want, got)) = self.crc.take() {
            if want != got {
                return Err(self.format(format!(
                    "data checksum mismatch (header {want:08x}, data {got:08x})"
                )));
            }
        }
        Ok(())
    }

    fn decode(&mut self) -> Result<Option<Entry>, TreeError> {
        loop {
            let (f, name) = self.read_header()?;
            let [ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, ..] = f;
            if name == b"TRAILER!!!" {
                self.finish_entry()?;
                return Ok(None);
            }
            let name = clean_name(name);
            self.current.clone_from(&name);
            let Some(kind) = self.kind(&f)? else {
                self.finish_entry()?;
                continue;
            };
            let mut e = Entry::new(name, kind, mode & 0o7777);
            e.uid = uid;
            e.gid = gid;
            e.mtime = Timestamp {
                secs: i64::from(mtime),
                nanos: 0,
            };
            if e.kind == Kind::File {
                e.size = u64::from(filesize);
            }

            if nlink > 1 && e.kind != Kind::Dir {
                let key = (devmajor, devminor, ino);
                if let Some(r) = self.link_group(key, nlink, e) {
                    return Ok(Some(r));
                }
                continue;
            }
            return Ok(Some(e));
        }
    }

    /// Reads one header and its name (NUL removed), and sets up the entry's data
    /// (size, padding, CRC of the `crc` variant). Returns the 13 header fields.
    fn read_header(&mut self) -> Result<([u32; 13], Vec<u8>), TreeError> {
        let header_offset = self.offset;
        let mut h = [0u8; HEADER];
        let got = fill(&mut self.inner, &mut h).map_err(|e| self.read_err(e))?;
        self.offset = self.offset.saturating_add(got as u64);
        if got == 0 {
            return Err(self.format("archive ends without a TRAILER!!! entry"));
        }
        if got < HEADER {
            return Err(self.format(format!(
                "archive truncated inside a header at byte offset {header_offset}"
            )));
        }
        let with_crc = match &h[..6] {
            b"070701" => false,
            b"070702" => true,
            _ => {
                return Err(self.format(format!(
                    "bad cpio magic {:?} at byte offset {header_offset} (only newc is supported)",
                    String::from_utf8_lossy(&h[..6])
                )))
            }
        };
        let mut f = [0u32; 13];
        for (i, v) in f.iter_mut().enumerate() {
            let field = &h[6 + i * 8..14 + i * 8];
            *v = parse_hex(field).ok_or_else(|| {
                self.format(format!(
                    "bad hex field at byte offset {}",
                    header_offset + 6 + i as u64 * 8
                ))
            })?;
        }
        let (filesize, namesize, check) = (f[6], f[11], f[12]);
        if namesize == 0 || u64::from(namesize) > MAX_NAME {
            return Err(self.format(format!(
                "name size {namesize} out of range at byte offset {header_offset}"
            )));
        }
        let mut name =
            read_capped(&mut self.inner, u64::from(namesize)).map_err(|e| self.read_err(e))?;
        self.offset = self.offset.saturating_add(name.len() as u64);
        if name.len() < namesize as usize {
            return Err(self.format("archive truncated inside a name"));
        }
        if let Some(hasher) = &mut self.headers {
            hasher.update(&h);
            hasher.update(&name);
        }
        if name.pop() != Some(0) {
            return Err(self.format(format!(
                "name not NUL-terminated at byte offset {header_offset}"
            )));
        }
        self.current.clone_from(&name);
        self.skip_padding(pad4(HEADER as u64 + u64::from(namesize)))?;
        self.remaining = u64::from(filesize);
        self.padding = pad4(u64::from(filesize));
        self.crc = with_crc.then_some((check, 0));
        Ok((f, name))
    }

    /// What the mode's type bits make of the entry (reading a symlink's target);
    /// `None` for a socket or an unknown type, skipped with a warning.
    fn kind(&mut self, f: &[u32; 13]) -> Result<Option<Kind>, TreeError> {
        let (mode, filesize, rdevmajor, rdevminor) = (f[1], f[6], f[9], f[10]);
        Ok(Some(match mode & S_IFMT {
            S_IFREG => Kind::File,
            S_IFDIR => Kind::Dir,
            S_IFLNK => {
                if u64::from(filesize) > MAX_LINK {
                    return Err(self.format(format!("symlink target of {filesize} bytes")));
                }
                let mut target = Vec::new();
                let mut chunk = [0u8; 1024];
                loop {
                    let n = self.read_data(&mut chunk)?;
                    if n == 0 {
                        break;
                    }
                    target.extend_from_slice(&chunk[..n]);
                }
                Kind::Symlink(target)
            }
            S_IFCHR => Kind::CharDevice {
                major: rdevmajor,
                minor: rdevminor,
            },
            S_IFBLK => Kind::BlockDevice {
                major: rdevmajor,
                minor: rdevminor,
            },
            S_IFIFO => Kind::Fifo,
            S_IFSOCK => {
                // A socket is recreated by whoever listens on it; tar skips them too.
                self.warnings
                    .push(format!("{}: socket skipped", display_path(&self.current)));
                return Ok(None);
            }
            other => {
                self.warnings.push(format!(
                    "{}: skipped entry of unknown file type {other:o}",
                    display_path(&self.current)
                ));
                return Ok(None);
            }
        }))
    }

    /// Files one member of a hard-link group; returns what to emit now, if anything
    /// (further entries may be queued behind it).
    fn link_group(&mut self, key: InodeKey, nlink: u32, e: Entry) -> Option<Entry> {
        if let Some(leader) = self.leaders.get(&key) {
            // The group's file exists already (its data came first, or this is a
            // repeated device/symlink node): link to it. Any data is skipped.
            let mut link = e;
            link.kind = Kind::HardLink(leader.clone());
            link.size = 0;
            return Some(link);
        }
        if e.kind != Kind::File {
            // Only regular files have their data deferred; other kinds are complete
            // in their first member, which becomes the group's target.
            self.leaders.insert(key, e.path.clone());
            return Some(e);
        }
        if e.size > 0 {
            self.leaders.insert(key, e.path.clone());
            if let Some(p) = self.pending.remove(&key) {
                self.queue
                    .extend(p.entries.into_iter().map(|m| as_link(m, &e.path)));
            }
            return Some(e);
        }
        let p = self.pending.entry(key).or_insert(Pending {
            nlink,
            entries: Vec::new(),
        });
        p.entries.push(e);
        if p.entries.len() as u64 >= u64::from(p.nlink) {
            // All members seen and none had data: an empty file with several names.
            if let Some(p) = self.pending.remove(&key) {
                let mut group = self.release(key, p).into_iter();
                let file = group.next();
                self.queue.extend(group);
                return file;
            }
        }
        None
    }

    /// Materializes a group whose data-bearing member never came: its last member
    /// becomes the (empty) file, returned first, then links to it.
    fn release(&mut self, key: InodeKey, mut p: Pending) -> Vec<Entry> {
        let Some(file) = p.entries.pop() else {
            return Vec::new();
        };
        self.leaders.insert(key, file.path.clone());
        let target = file.path.clone();
        let mut out = vec![file];
        out.extend(p.entries.into_iter().map(|m| as_link(m, &target)));
        out
    }
}

fn as_link(mut m: Entry, target: &[u8]) -> Entry {
    m.kind = Kind::HardLink(target.to_vec());
    m.size = 0;
    m
}

impl<R: Read> EntryReader for CpioReader<R> {
    fn next_entry(&mut self) -> Result<Option<Entry>, TreeError> {
        self.finish_entry()?;
        loop {
            if let Some(e) = self.queue.pop_front() {
                self.current.clone_from(&e.path);
                return Ok(Some(e));
            }
            if self.done {
                return Ok(None);
            }
            match self.decode() {
                Ok(Some(e)) => return Ok(Some(e)),
                Ok(None) => {
                    self.done = true;
                    // Groups cut short (members outside the archived tree): release
                    // them in a stable order.
                    let mut rest: Vec<_> = self.pending.drain().collect();
                    rest.sort_by_key(|g| g.0);
                    for (key, p) in rest {
                        let group = self.release(key, p);
                        self.queue.extend(group);
                    }
                }
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            }
        }
    }

    fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, TreeError> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let n = match read_bounded(&mut self.inner, buf, self.remaining) {
            Ok(n) => n,
            Err(e) => return Err(self.read_err(e)),
        };
        if n == 0 {
            return Err(self.truncated());
        }
        self.offset = self.offset.saturating_add(n as u64);
        self.remaining -= n as u64;
        if let Some((_, sum)) = &mut self.crc {
            for &b in &buf[..n] {
                *sum = sum.wrapping_add(u32::from(b));
            }
        }
        if self.remaining == 0 {
            self.check_crc()?;
        }
        Ok(n)
    }

    fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }
}

/// An mtime as newc's unsigned 32-bit field holds it (clamped to its range).
pub(crate) fn clamp_mtime(secs: i64) -> u32 {
    u32::try_from(secs).unwrap_or(if secs < 0 { 0 } else { u32::MAX })
}

pub(crate) fn pad4(n: u64) -> u64 {
    (4 - n % 4) % 4
}

fn parse_hex(f: &[u8]) -> Option<u32> {
    let mut v: u32 = 0;
    for &c in f {
        let d = (c as char).to_digit(16)?;
        v = (v << 4) | d;
    }
    Some(v)
}

// ---------------------------------------------------------------------------------
// Header encoding, for the encoder in `encode::newc`

/// Magic of the newc format (`cpio -H newc`); the `crc` variant is never written
/// because xCAT writes plain newc.
pub(crate) const NEWC_MAGIC: &[u8; 6] = b"070701";
/// Name of the end-of-archive entry.
pub(crate) const TRAILER: &[u8] = b"TRAILER!!!";
/// Largest file size a newc header can carry (8 hex digits).
pub(crate) const NEWC_MAX_SIZE: u64 = u32::MAX as u64;

/// The header fields that vary between entries (the rest are constant here).
pub(crate) struct NewcHeader {
    pub(crate) ino: u32,
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) nlink: u32,
    pub(crate) mtime: u32,
    pub(crate) filesize: u32,
    pub(crate) rdevmajor: u32,
    pub(crate) rdevminor: u32,
}

/// Header, name, NUL and the padding that brings header + name to a multiple of 4.
pub(crate) fn encode_newc_header(h: &NewcHeader, name: &[u8]) -> Vec<u8> {
    let namesize = name.len() + 1;
    let pad = pad4((HEADER + namesize) as u64) as usize;
    let mut out = Vec::with_capacity(HEADER + namesize + pad);
    out.extend_from_slice(NEWC_MAGIC);
    // Name sizes are bounded by Linux path lengths, far below 4 GiB; saturate
    // rather than wrap if that ever stops being true.
    let namesize32 = u32::try_from(namesize).unwrap_or(u32::MAX);
    // devmajor/devminor and the checksum are always 0 (see `write_newc`).
    for v in [
        h.ino,
        h.mode,
        h.uid,
        h.gid,
        h.nlink,
        h.mtime,
        h.filesize,
        0,
        0,
        h.rdevmajor,
        h.rdevminor,
        namesize32,
        0,
    ] {
        put_hex8(&mut out, v);
    }
    out.extend_from_slice(name);
    out.push(0);
    out.resize(out.len() + pad, 0);
    out
}

/// Appends `v` as 8 upper-case hex digits, as GNU cpio writes newc fields.
fn put_hex8(out: &mut Vec<u8>, v: u32) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for shift in (0..8).rev() {
        out.push(DIGITS[((v >> (shift * 4)) & 0xf) as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct M<'a> {
        name: &'a str,
        mode: u32,
        ino: u32,
        nlink: u32,
        data: &'a [u8],
    }

    fn m<'a>(name: &'a str, mode: u32, ino: u32, nlink: u32, data: &'a [u8]) -> M<'a> {
        M {
            name,
            mode,
            ino,
            nlink,
            data,
        }
    }

    fn newc(magic: &str, members: &[M<'_>]) -> Vec<u8> {
        let mut out = Vec::new();
        let trailer = m("TRAILER!!!", 0, 0, 1, b"");
        for x in members.iter().chain(std::iter::once(&trailer)) {
            let check: u32 = x.data.iter().map(|&b| u32::from(b)).sum();
            let fields = [
                x.ino,
                x.mode,
                1234,
                5678,
                x.nlink,
                1_700_000_000,
                x.data.len() as u32,
                8,
                1,
                if x.mode & S_IFMT == S_IFCHR { 1 } else { 0 },
                if x.mode & S_IFMT == S_IFCHR { 3 } else { 0 },
                x.name.len() as u32 + 1,
                if magic == "070702" { check } else { 0 },
            ];
            out.extend(magic.as_bytes());
            for f in fields {
                out.extend(format!("{f:08X}").as_bytes());
            }
            out.extend(x.name.as_bytes());
            out.push(0);
            while out.len() % 4 != 0 {
                out.push(0);
            }
            out.extend(x.data);
            while out.len() % 4 != 0 {
                out.push(0);
            }
        }
        out.extend([0u8; 300]); // GNU cpio pads the archive to 512 bytes
        out
    }

    type Decoded = (Vec<(Entry, Vec<u8>)>, Vec<String>);

    fn all(data: &[u8]) -> Result<Decoded, TreeError> {
        let mut r = CpioReader::new(data);
        let mut out = Vec::new();
        while let Some(e) = r.next_entry()? {
            let mut d = Vec::new();
            r.copy_data(&mut d)?;
            out.push((e, d));
        }
        Ok((out, r.take_warnings()))
    }

    #[test]
    fn kinds_and_fields() {
        let a = newc(
            "070701",
            &[
                m("rootimg", 0o40755, 1, 3, b""),
                m("./rootimg/f", 0o104755, 2, 1, b"hello"),
                m("rootimg/l", 0o120777, 3, 1, b"../target"),
                m("rootimg/null", 0o20666, 4, 1, b""),
                m("rootimg/fifo", 0o10600, 5, 1, b""),
                m("rootimg/sock", 0o140755, 6, 1, b""),
            ],
        );
        let (got, warnings) = all(&a).unwrap();
        let names: Vec<_> = got.iter().map(|(e, _)| e.path.clone()).collect();
        assert_eq!(
            names,
            [
                &b"rootimg"[..],
                b"rootimg/f",
                b"rootimg/l",
                b"rootimg/null",
                b"rootimg/fifo"
            ]
        );
        assert_eq!(got[0].0.kind, Kind::Dir);
        let f = &got[1].0;
        assert_eq!((f.mode, f.uid, f.gid, f.size), (0o4755, 1234, 5678, 5));
        assert_eq!(f.mtime.secs, 1_700_000_000);
        assert_eq!(got[1].1, b"hello");
        assert_eq!(got[2].0.kind, Kind::Symlink(b"../target".to_vec()));
        assert_eq!(got[3].0.kind, Kind::CharDevice { major: 1, minor: 3 });
        assert_eq!(got[4].0.kind, Kind::Fifo);
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("socket"));
    }

    #[test]
    fn hard_link_groups_get_their_data_first() {
        // GNU cpio order: earlier links with size 0, data on the last member.
        let a = newc(
            "070701",
            &[
                m("rootimg", 0o40755, 1, 2, b""),
                m("rootimg/a", 0o100644, 7, 3, b""),
                m("rootimg/x", 0o100644, 8, 1, b"x"),
                m("rootimg/b", 0o100644, 7, 3, b""),
                m("rootimg/c", 0o100644, 7, 3, b"three"),
                // Empty file with two names: no member has data.
                m("rootimg/e1", 0o100600, 9, 2, b""),
                m("rootimg/e2", 0o100600, 9, 2, b""),
                // Group cut short (second name outside the archive): released at the end.
                m("rootimg/lone", 0o100600, 10, 2, b""),
            ],
        );
        let (got, _) = all(&a).unwrap();
        let view: Vec<(String, Kind, Vec<u8>)> = got
            .into_iter()
            .map(|(e, d)| (String::from_utf8(e.path).unwrap(), e.kind, d))
            .collect();
        let link = |t: &str| Kind::HardLink(t.as_bytes().to_vec());
        assert_eq!(
            view,
            vec![
                ("rootimg".into(), Kind::Dir, vec![]),
                ("rootimg/x".into(), Kind::File, b"x".to_vec()),
                ("rootimg/c".into(), Kind::File, b"three".to_vec()),
                ("rootimg/a".into(), link("rootimg/c"), vec![]),
                ("rootimg/b".into(), link("rootimg/c"), vec![]),
                ("rootimg/e2".into(), Kind::File, vec![]),
                ("rootimg/e1".into(), link("rootimg/e2"), vec![]),
                ("rootimg/lone".into(), Kind::File, vec![]),
            ]
        );
    }

    #[test]
    fn crc_variant_verified() {
        let good = newc("070702", &[m("rootimg/f", 0o100644, 2, 1, b"data")]);
        assert!(all(&good).is_ok());
        let mut bad = good.clone();
        let pos = bad.windows(4).position(|w| w == b"data").unwrap();
        bad[pos] = b'D';
        let err = all(&bad).unwrap_err().to_string();
        assert!(
            err.contains("checksum") && err.contains("rootimg/f"),
            "{err}"
        );
        // Skipping the data unread must verify too.
        let mut r = CpioReader::new(&bad[..]);
        r.next_entry().unwrap();
        assert!(r.next_entry().is_err());
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(all(b"070707000000").is_err());
        let mut a = newc("070701", &[m("rootimg/f", 0o100644, 2, 1, b"data")]);
        a[20] = b'g'; // not hex
        assert!(all(&a).unwrap_err().to_string().contains("hex"));
        // No trailer.
        let a = newc("070701", &[m("rootimg/f", 0o100644, 2, 1, b"data")]);
        let cut = a.windows(10).position(|w| w == b"TRAILER!!!").unwrap() - 110;
        assert!(all(&a[..cut]).unwrap_err().to_string().contains("TRAILER"));
        // Huge name size claim.
        let mut a = newc("070701", &[m("rootimg/f", 0o100644, 2, 1, b"data")]);
        a[94..102].copy_from_slice(b"FFFFFFFF");
        assert!(all(&a).unwrap_err().to_string().contains("name size"));
    }

    #[test]
    fn garbage_never_panics() {
        let base = newc(
            "070702",
            &[
                m("rootimg", 0o40755, 1, 2, b""),
                m("rootimg/a", 0o100644, 7, 2, b""),
                m("rootimg/b", 0o100644, 7, 2, b"xyz"),
                m("rootimg/l", 0o120777, 3, 1, b"t"),
            ],
        );
        let mut seed: u64 = 99;
        for _ in 0..3000 {
            let mut a = base.clone();
            for _ in 0..3 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let pos = (seed >> 33) as usize % a.len();
                // Mostly hex digits, so headers stay parseable and reach deeper code.
                a[pos] = b"0123456789abcdef\x00\xff"[(seed >> 20) as usize % 18];
            }
            let _ = all(&a);
        }
    }

    #[test]
    fn header_layout_and_padding() {
        let h = NewcHeader {
            ino: 1,
            mode: 0o100644,
            uid: 1234,
            gid: 5678,
            nlink: 1,
            mtime: 1_700_000_000,
            filesize: 5,
            rdevmajor: 0xab,
            rdevminor: 0xcd,
        };
        let out = encode_newc_header(&h, b"rootimg/f");
        let text = String::from_utf8(out[..HEADER].to_vec()).unwrap();
        assert_eq!(
            text,
            "07070100000001000081A4000004D20000162E000000016553F1000000000500000000000000000000\
             00AB000000CD0000000A00000000"
        );
        // 110 + 10 bytes is already a multiple of 4: no padding.
        assert_eq!(&out[HEADER..], b"rootimg/f\0");
        // header + name + NUL padded to 4 for every name length.
        for len in 1..9 {
            let name = vec![b'n'; len];
            let out = encode_newc_header(&h, &name);
            assert_eq!(out.len() % 4, 0);
            assert!(out.len() - (HEADER + len + 1) < 4);
        }
    }
}

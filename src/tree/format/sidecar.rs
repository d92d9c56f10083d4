//! The metadata sidecar of a cpio newc tree (`rootimgtree.meta`, FORMAT.md §7): what
//! newc cannot carry (xattrs, nanosecond mtimes, hole maps, owner names), one record
//! per inode in the order the newc decoder hands the inodes out, bound to its tree by
//! a BLAKE3 digest of the tree's newc headers. Bytes only, both directions.
//!
//! Layout (integers little-endian, `varint` = unsigned LEB128, at most 10 bytes):
//!
//! ```text
//! magic "IMGPMETA" | version u8 = 1 | header digest [32] | record count u64
//! records...
//! CRC32 (IEEE) of every byte before it, u32
//! ```
//!
//! A record: `varint path length, path | u8 flags (1 uname, 2 gname, 4 sparse) |
//! varint zigzag(mtime secs), varint mtime nanos | [varint len, uname] |
//! [varint len, gname] | varint xattr count, each (varint len, name, varint len,
//! value) | [varint segment count, each (varint gap from the previous segment's end,
//! varint length)]`.

use std::io::{Read, Write};

use crate::tree::entry::Timestamp;
use crate::tree::error::{display_path, TreeError};
use crate::tree::format::tar_decode::MAX_NAME;

/// Name of the sidecar member, beside `rootimgtree.gz` in an image directory. Real
/// xCAT's import touches only the members it names (XCAT.md §6.5), so it ignores it.
pub const SIDECAR_MEMBER: &str = "rootimgtree.meta";
const MAGIC: &[u8; 8] = b"IMGPMETA";
const VERSION: u8 = 1;
/// Magic, version, digest, count.
const HEAD_BYTES: usize = 8 + 1 + 32 + 8;

const FLAG_UNAME: u8 = 1;
const FLAG_GNAME: u8 = 2;
const FLAG_SPARSE: u8 = 4;
const KNOWN_FLAGS: u8 = FLAG_UNAME | FLAG_GNAME | FLAG_SPARSE;

/// Longest owner name kept (Linux user names are at most 32 bytes).
const MAX_OWNER_NAME: u64 = 256;
/// Linux's XATTR_NAME_MAX and XATTR_SIZE_MAX.
const MAX_XATTR_NAME: u64 = 255;
const MAX_XATTR_VALUE: u64 = 64 * 1024;
/// More xattrs than any file system keeps on one inode.
const MAX_XATTRS: u64 = 4096;
/// As many data segments as the tar decoder accepts in one sparse map.
const MAX_SEGMENTS: u64 = 1 << 20;
/// The namespaces Linux knows; any other name would be refused by setxattr anyway.
const XATTR_NAMESPACES: [&[u8]; 4] = [b"user.", b"trusted.", b"security.", b"system."];

/// Name → raw value pairs, as in `Entry::xattrs`.
type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// What the sidecar adds to one newc entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    /// The entry's path in the newc stream (checked against it on restore).
    pub path: Vec<u8>,
    pub mtime: Timestamp,
    pub uname: Option<Vec<u8>>,
    pub gname: Option<Vec<u8>>,
    pub xattrs: Xattrs,
    /// The data segments of a sparse file (`Entry::sparse`); newc holds it dense.
    pub sparse: Option<Vec<(u64, u64)>>,
}

/// Writes a sidecar record by record, in newc decoder order, without holding it: the
/// records stream to `out` as they come, and [`SidecarWriter::finish`] gives the head
/// (which holds the header digest, known only once the last header is) and the CRC
/// to frame them with.
#[derive(Debug)]
pub struct SidecarWriter<W: Write> {
    out: W,
    /// One record's bytes, reused.
    scratch: Vec<u8>,
    /// CRC32 of the records alone; the head's is combined in at the end.
    crc: crc32fast::Hasher,
    len: u64,
    count: u64,
}

/// A finished sidecar in three parts: the whole is `head`, then the records written to
/// `body`, then `tail`.
#[derive(Debug)]
pub struct SidecarParts<W> {
    pub head: Vec<u8>,
    pub body: W,
    pub body_len: u64,
    /// The CRC32 of head and body.
    pub tail: [u8; 4],
}

impl<W> SidecarParts<W> {
    /// Bytes of the whole sidecar.
    pub fn len(&self) -> u64 {
        (self.head.len() + self.tail.len()) as u64 + self.body_len
    }

    /// Never: a sidecar has at least its head and CRC.
    pub fn is_empty(&self) -> bool {
        false
    }
}

impl SidecarParts<Vec<u8>> {
    /// The sidecar as one byte string.
    pub fn into_bytes(self) -> Vec<u8> {
        let mut out = self.head;
        out.extend_from_slice(&self.body);
        out.extend_from_slice(&self.tail);
        out
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends the encoding of `r` (see the module doc) to `b`.
fn encode_record(b: &mut Vec<u8>, r: &Record) {
    put_bytes(b, &r.path);
    let mut flags = 0;
    if r.uname.is_some() {
        flags |= FLAG_UNAME;
    }
    if r.gname.is_some() {
        flags |= FLAG_GNAME;
    }
    if r.sparse.is_some() {
        flags |= FLAG_SPARSE;
    }
    b.push(flags);
    put_varint(b, zigzag(r.mtime.secs));
    put_varint(b, u64::from(r.mtime.nanos));
    for name in [&r.uname, &r.gname].into_iter().flatten() {
        put_bytes(b, name);
    }
    put_varint(b, r.xattrs.len() as u64);
    for (name, value) in &r.xattrs {
        put_bytes(b, name);
        put_bytes(b, value);
    }
    if let Some(map) = &r.sparse {
        put_varint(b, map.len() as u64);
        let mut end = 0u64;
        for &(off, len) in map {
            put_varint(b, off.saturating_sub(end));
            put_varint(b, len);
            end = off.saturating_add(len);
        }
    }
}

impl<W: Write> SidecarWriter<W> {
    pub fn new(out: W) -> SidecarWriter<W> {
        SidecarWriter {
            out,
            scratch: Vec::new(),
            crc: crc32fast::Hasher::new(),
            len: 0,
            count: 0,
        }
    }

    /// Writes the next record to the body.
    pub fn push(&mut self, r: &Record) -> std::io::Result<()> {
        self.scratch.clear();
        encode_record(&mut self.scratch, r);
        self.out.write_all(&self.scratch)?;
        self.crc.update(&self.scratch);
        self.len += self.scratch.len() as u64;
        self.count += 1;
        Ok(())
    }

    /// The parts of the complete sidecar for a tree whose newc headers hash to
    /// `digest`; `body` is the writer given to [`SidecarWriter::new`], not flushed.
    pub fn finish(self, digest: [u8; 32]) -> SidecarParts<W> {
        let mut head = Vec::with_capacity(HEAD_BYTES);
        head.extend_from_slice(MAGIC);
        head.push(VERSION);
        head.extend_from_slice(&digest);
        head.extend_from_slice(&self.count.to_le_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head);
        crc.combine(&self.crc);
        SidecarParts {
            head,
            body: self.out,
            body_len: self.len,
            tail: crc.finalize().to_le_bytes(),
        }
    }
}

/// Streaming parser of a sidecar: checks the head on creation, then hands out records;
/// after the last one, checks the CRC and that nothing follows. Every field is bounded
/// (see the `MAX_*` constants) before anything is allocated for it.
pub struct SidecarReader<R: Read> {
    inner: R,
    crc: crc32fast::Hasher,
    digest: [u8; 32],
    left: u64,
    /// The path of the last record, for error messages.
    current: String,
    done: bool,
}

fn bad(entry: &str, reason: impl Into<String>) -> TreeError {
    TreeError::Format {
        entry: format!("{SIDECAR_MEMBER} ({entry})"),
        reason: reason.into(),
    }
}

impl<R: Read> SidecarReader<R> {
    pub fn new(mut inner: R) -> Result<SidecarReader<R>, TreeError> {
        let mut head = [0u8; HEAD_BYTES];
        inner
            .read_exact(&mut head)
            .map_err(|e| bad("head", format!("cannot read the head: {e}")))?;
        if &head[..8] != MAGIC {
            return Err(bad("head", "not an imgport newc sidecar (bad magic)"));
        }
        if head[8] != VERSION {
            return Err(bad(
                "head",
                format!(
                    "version {} (this imgport reads version {VERSION}; a newer imgport made it)",
                    head[8]
                ),
            ));
        }
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&head[9..41]);
        let mut count = [0u8; 8];
        count.copy_from_slice(&head[41..49]);
        let mut crc = crc32fast::Hasher::new();
        crc.update(&head);
        Ok(SidecarReader {
            inner,
            crc,
            digest,
            left: u64::from_le_bytes(count),
            current: "head".into(),
            done: false,
        })
    }

    /// The digest of the newc headers this sidecar belongs to.
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<(), TreeError> {
        self.inner
            .read_exact(buf)
            .map_err(|e| bad(&self.current, format!("truncated: {e}")))?;
        self.crc.update(buf);
        Ok(())
    }

    fn byte(&mut self) -> Result<u8, TreeError> {
        let mut b = [0u8; 1];
        self.fill(&mut b)?;
        Ok(b[0])
    }

    fn varint(&mut self) -> Result<u64, TreeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let bits = u64::from(b & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(bad(&self.current, "integer overflows 64 bits"));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad(&self.current, "integer longer than 10 bytes"))
    }

    fn bytes(&mut self, max: u64, what: &str) -> Result<Vec<u8>, TreeError> {
        let len = self.varint()?;
        if len > max {
            return Err(bad(
                &self.current,
                format!("{what} of {len} bytes (at most {max})"),
            ));
        }
        let mut v = vec![0u8; len as usize];
        self.fill(&mut v)?;
        Ok(v)
    }

    /// The next record, or `None` after the last one (CRC and end checked).
    pub fn next_record(&mut self) -> Result<Option<Record>, TreeError> {
        if self.done {
            return Ok(None);
        }
        if self.left == 0 {
            self.done = true;
            self.finish()?;
            return Ok(None);
        }
        self.left -= 1;
        let path = self.bytes(MAX_NAME, "path")?;
        if path.is_empty() || path.contains(&0) {
            return Err(bad(&self.current, "empty path or path with a NUL byte"));
        }
        self.current = display_path(&path);
        let flags = self.byte()?;
        if flags & !KNOWN_FLAGS != 0 {
            return Err(bad(&self.current, format!("unknown flags {flags:#x}")));
        }
        let secs = unzigzag(self.varint()?);
        let nanos = self.varint()?;
        if nanos >= 1_000_000_000 {
            return Err(bad(&self.current, format!("mtime nanoseconds {nanos}")));
        }
        let mut r = Record {
            path,
            mtime: Timestamp {
                secs,
                nanos: nanos as u32,
            },
            ..Record::default()
        };
        if flags & FLAG_UNAME != 0 {
            r.uname = Some(self.bytes(MAX_OWNER_NAME, "user name")?);
        }
        if flags & FLAG_GNAME != 0 {
            r.gname = Some(self.bytes(MAX_OWNER_NAME, "group name")?);
        }
        r.xattrs = self.xattrs()?;
        if flags & FLAG_SPARSE != 0 {
            r.sparse = Some(self.sparse_map()?);
        }
        Ok(Some(r))
    }

    fn xattrs(&mut self) -> Result<Xattrs, TreeError> {
        let n = self.varint()?;
        if n > MAX_XATTRS {
            return Err(bad(&self.current, format!("{n} xattrs")));
        }
        let mut out: Xattrs = Vec::new();
        for _ in 0..n {
            let name = self.bytes(MAX_XATTR_NAME, "xattr name")?;
            let valid = !name.contains(&0)
                && XATTR_NAMESPACES
                    .iter()
                    .any(|ns| name.len() > ns.len() && name.starts_with(ns));
            if !valid {
                return Err(bad(
                    &self.current,
                    format!("invalid xattr name {}", display_path(&name)),
                ));
            }
            if out.iter().any(|(n, _)| *n == name) {
                return Err(bad(
                    &self.current,
                    format!("xattr {} given twice", display_path(&name)),
                ));
            }
            let value = self.bytes(MAX_XATTR_VALUE, "xattr value")?;
            out.push((name, value));
        }
        Ok(out)
    }

    fn sparse_map(&mut self) -> Result<Vec<(u64, u64)>, TreeError> {
        let n = self.varint()?;
        if n > MAX_SEGMENTS {
            return Err(bad(&self.current, format!("sparse map of {n} segments")));
        }
        let mut map = Vec::new();
        let mut end = 0u64;
        for _ in 0..n {
            let gap = self.varint()?;
            let len = self.varint()?;
            let off = end.checked_add(gap);
            let stop = off.and_then(|o| o.checked_add(len));
            let (Some(off), Some(stop)) = (off, stop) else {
                return Err(bad(&self.current, "sparse segment beyond 2^64"));
            };
            map.push((off, len));
            end = stop;
        }
        Ok(map)
    }

    fn finish(&mut self) -> Result<(), TreeError> {
        self.current = "end".into();
        let mut stored = [0u8; 4];
        self.inner
            .read_exact(&mut stored)
            .map_err(|e| bad("end", format!("truncated before the CRC: {e}")))?;
        let want = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
        let got = u32::from_le_bytes(stored);
        if want != got {
            return Err(bad(
                "end",
                format!("CRC mismatch (stored {got:08x}, computed {want:08x})"),
            ));
        }
        let mut extra = [0u8; 1];
        match self.inner.read(&mut extra) {
            Ok(0) => Ok(()),
            Ok(_) => Err(bad("end", "bytes after the CRC")),
            Err(e) => Err(bad("end", format!("read error: {e}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Record> {
        vec![
            Record {
                path: b"rootimg".to_vec(),
                mtime: Timestamp {
                    secs: -5,
                    nanos: 999_999_999,
                },
                ..Record::default()
            },
            Record {
                path: b"rootimg/f\xff".to_vec(),
                mtime: Timestamp {
                    secs: 1_700_000_000,
                    nanos: 7,
                },
                uname: Some(b"root".to_vec()),
                gname: Some(b"wheel".to_vec()),
                xattrs: vec![
                    (b"security.capability".to_vec(), vec![1, 0, 0, 2]),
                    (b"user.x".to_vec(), b"\0\n".to_vec()),
                ],
                sparse: Some(vec![(0, 3), (4096, 10), (1 << 33, 0)]),
            },
        ]
    }

    fn build(records: &[Record]) -> Vec<u8> {
        let mut b = SidecarWriter::new(Vec::new());
        for r in records {
            b.push(r).unwrap();
        }
        b.finish([9u8; 32]).into_bytes()
    }

    fn parse(bytes: &[u8]) -> Result<Vec<Record>, TreeError> {
        let mut r = SidecarReader::new(bytes)?;
        let mut out = Vec::new();
        while let Some(x) = r.next_record()? {
            out.push(x);
        }
        assert_eq!(r.digest(), [9u8; 32]);
        Ok(out)
    }

    #[test]
    fn round_trip() {
        let recs = sample();
        assert_eq!(parse(&build(&recs)).unwrap(), recs);
        assert_eq!(build(&recs), build(&recs));
    }

    /// The fuzz seed, written by an independent encoder (python), pins the layout.
    #[test]
    fn reads_the_fixed_seed() {
        let seed = include_bytes!("../../../fuzz/seeds/sidecar_reader/two-records.meta");
        let mut r = SidecarReader::new(&seed[..]).unwrap();
        assert_eq!(r.digest(), [0u8; 32]);
        let top = r.next_record().unwrap().unwrap();
        assert_eq!((top.path.as_slice(), top.mtime.secs), (&b"rootimg"[..], -2));
        let ping = r.next_record().unwrap().unwrap();
        assert_eq!(ping.path, b"rootimg/usr/bin/ping");
        assert_eq!(ping.mtime.secs, 1_700_000_000);
        assert_eq!(ping.mtime.nanos, 123_456_789);
        assert_eq!(ping.uname.as_deref(), Some(&b"root"[..]));
        assert_eq!(ping.xattrs[1], (b"user.x".to_vec(), b"\0\xff".to_vec()));
        assert_eq!(ping.sparse, Some(vec![(0, 4096), (12288, 1)]));
        assert!(r.next_record().unwrap().is_none());
    }

    #[test]
    fn damage_is_refused() {
        let good = build(&sample());
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x40;
            assert!(parse(&b).is_err(), "flipped byte {i} accepted");
        }
        assert!(parse(&good[..good.len() - 1]).is_err());
        let mut longer = good.clone();
        longer.push(0);
        assert!(parse(&longer).is_err());
    }

    #[test]
    fn hostile_fields_are_refused() {
        for name in [&b"bogus.x"[..], b"user.", b"user.a\0b"] {
            let mut r = sample();
            r[1].xattrs = vec![(name.to_vec(), vec![])];
            let err = parse(&build(&r)).unwrap_err().to_string();
            assert!(err.contains("invalid xattr name"), "{err}");
        }
        let mut r = sample();
        r[1].xattrs = vec![(b"user.a".to_vec(), vec![0; 70_000])];
        assert!(parse(&build(&r)).unwrap_err().to_string().contains("value"));
        let mut r = sample();
        r[1].xattrs = vec![(b"user.a".to_vec(), vec![]), (b"user.a".to_vec(), vec![])];
        assert!(parse(&build(&r)).unwrap_err().to_string().contains("twice"));
        let mut r = sample();
        r[0].mtime.nanos = 1_000_000_000;
        assert!(parse(&build(&r)).is_err());
    }
}

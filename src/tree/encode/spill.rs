//! A walk spilled to an unnamed temporary file and replayed: the newc export needs
//! facts about later entries (subdirectory counts, the last path of a link group)
//! before it writes earlier ones, and must not hold the whole walk in memory to get
//! them. Entries are written once, in walk order, in a compact private encoding,
//! and read back as many times as needed; the file is deleted by the OS when closed.
//!
//! Record: `u32 LE length | path | u8 kind [| kind fields] | varint mode, uid, gid |
//! u8 flags (1 uname, 2 gname, 4 atime, 8 sparse) | varint zigzag(mtime secs), varint
//! nanos | [uname] | [gname] | [atime secs, nanos] | varint size | varint xattr count,
//! each (name, value) | [varint segment count, each (offset, length)]`, byte strings
//! as `varint length, bytes`. Only this process reads it back, right after writing it.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use crate::tree::entry::{Entry, Kind, Timestamp};
use crate::tree::error::TreeError;
use crate::tree::format::index::varint::{put_bytes, put_varint, unzigzag, zigzag, Cursor};

const FLAG_UNAME: u8 = 1;
const FLAG_GNAME: u8 = 2;
const FLAG_ATIME: u8 = 4;
const FLAG_SPARSE: u8 = 8;

/// An error on a temporary file of the newc export, named by what it holds in the
/// directory it lives in (it has no name of its own).
pub(crate) fn temp_error(what: &str, e: io::Error) -> TreeError {
    TreeError::io(std::env::temp_dir().join(format!("({what})")), e)
}

/// A new unnamed file in `$TMPDIR`.
pub(crate) fn temp_file(what: &str) -> Result<File, TreeError> {
    tempfile::tempfile_in(std::env::temp_dir()).map_err(|e| temp_error(what, e))
}

const SPILL: &str = "newc walk spill";

fn spill_error(e: io::Error) -> TreeError {
    temp_error(SPILL, e)
}

fn corrupt(what: &str) -> TreeError {
    spill_error(io::Error::new(io::ErrorKind::InvalidData, what.to_string()))
}

/// Writes entries to a new unnamed file in `$TMPDIR`.
pub(crate) struct SpillWriter {
    out: BufWriter<File>,
    scratch: Vec<u8>,
}

impl SpillWriter {
    pub(crate) fn new() -> Result<SpillWriter, TreeError> {
        let file = temp_file(SPILL)?;
        Ok(SpillWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            scratch: Vec::new(),
        })
    }

    pub(crate) fn push(&mut self, e: &Entry) -> Result<(), TreeError> {
        let b = &mut self.scratch;
        b.clear();
        encode(b, e);
        let len =
            u32::try_from(b.len()).map_err(|_| corrupt("an entry's metadata exceeds 4 GiB"))?;
        self.out
            .write_all(&len.to_le_bytes())
            .and_then(|()| self.out.write_all(b))
            .map_err(spill_error)
    }

    /// The spill, flushed, ready to replay.
    pub(crate) fn finish(self) -> Result<Spill, TreeError> {
        let file = self
            .out
            .into_inner()
            .map_err(|e| spill_error(e.into_error()))?;
        Ok(Spill { file })
    }
}

/// A finished spill.
pub(crate) struct Spill {
    file: File,
}

impl Spill {
    /// Reads the entries back from the first, in the order they were pushed.
    pub(crate) fn replay(&self) -> Result<SpillReader<'_>, TreeError> {
        let mut f = &self.file;
        f.seek(SeekFrom::Start(0)).map_err(spill_error)?;
        Ok(SpillReader {
            input: BufReader::with_capacity(1 << 20, f),
            buf: Vec::new(),
        })
    }
}

pub(crate) struct SpillReader<'a> {
    input: BufReader<&'a File>,
    buf: Vec<u8>,
}

impl SpillReader<'_> {
    /// The next entry, `None` at the end of the spill.
    pub(crate) fn next_entry(&mut self) -> Result<Option<Entry>, TreeError> {
        let mut len = [0u8; 4];
        match self.input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(spill_error(e)),
        }
        self.buf.resize(u32::from_le_bytes(len) as usize, 0);
        self.input.read_exact(&mut self.buf).map_err(spill_error)?;
        decode(&self.buf).map(Some)
    }
}

fn encode(b: &mut Vec<u8>, e: &Entry) {
    put_bytes(b, &e.path);
    match &e.kind {
        Kind::File => b.push(0),
        Kind::Dir => b.push(1),
        Kind::Symlink(t) => {
            b.push(2);
            put_bytes(b, t);
        }
        Kind::HardLink(t) => {
            b.push(3);
            put_bytes(b, t);
        }
        Kind::CharDevice { major, minor } => {
            b.push(4);
            put_varint(b, u64::from(*major));
            put_varint(b, u64::from(*minor));
        }
        Kind::BlockDevice { major, minor } => {
            b.push(5);
            put_varint(b, u64::from(*major));
            put_varint(b, u64::from(*minor));
        }
        Kind::Fifo => b.push(6),
    }
    for v in [e.mode, e.uid, e.gid] {
        put_varint(b, u64::from(v));
    }
    let flags = [
        (e.uname.is_some(), FLAG_UNAME),
        (e.gname.is_some(), FLAG_GNAME),
        (e.atime.is_some(), FLAG_ATIME),
        (e.sparse.is_some(), FLAG_SPARSE),
    ]
    .iter()
    .filter(|(set, _)| *set)
    .fold(0, |acc, (_, f)| acc | f);
    b.push(flags);
    let put_time = |b: &mut Vec<u8>, t: &Timestamp| {
        put_varint(b, zigzag(t.secs));
        put_varint(b, u64::from(t.nanos));
    };
    put_time(b, &e.mtime);
    for name in [&e.uname, &e.gname].into_iter().flatten() {
        put_bytes(b, name);
    }
    if let Some(t) = &e.atime {
        put_time(b, t);
    }
    put_varint(b, e.size);
    put_varint(b, e.xattrs.len() as u64);
    for (name, value) in &e.xattrs {
        put_bytes(b, name);
        put_bytes(b, value);
    }
    if let Some(map) = &e.sparse {
        put_varint(b, map.len() as u64);
        for &(off, len) in map {
            put_varint(b, off);
            put_varint(b, len);
        }
    }
}

fn decode(b: &[u8]) -> Result<Entry, TreeError> {
    let mut c = Cursor { b, at: 0 };
    let bad = |_| corrupt("entry cut short or malformed");
    let path = c.bytes().map_err(bad)?.to_vec();
    let kind = match c.take(1).map_err(bad)?[0] {
        0 => Kind::File,
        1 => Kind::Dir,
        2 => Kind::Symlink(c.bytes().map_err(bad)?.to_vec()),
        3 => Kind::HardLink(c.bytes().map_err(bad)?.to_vec()),
        4 => Kind::CharDevice {
            major: c.varint_u32().map_err(bad)?,
            minor: c.varint_u32().map_err(bad)?,
        },
        5 => Kind::BlockDevice {
            major: c.varint_u32().map_err(bad)?,
            minor: c.varint_u32().map_err(bad)?,
        },
        6 => Kind::Fifo,
        _ => return Err(corrupt("unknown entry kind")),
    };
    let mode = c.varint_u32().map_err(bad)?;
    let mut e = Entry::new(path, kind, mode);
    e.uid = c.varint_u32().map_err(bad)?;
    e.gid = c.varint_u32().map_err(bad)?;
    let flags = c.take(1).map_err(bad)?[0];
    let time = |c: &mut Cursor<'_>| -> Result<Timestamp, TreeError> {
        Ok(Timestamp {
            secs: unzigzag(c.varint().map_err(bad)?),
            nanos: c.varint_u32().map_err(bad)?,
        })
    };
    e.mtime = time(&mut c)?;
    if flags & FLAG_UNAME != 0 {
        e.uname = Some(c.bytes().map_err(bad)?.to_vec());
    }
    if flags & FLAG_GNAME != 0 {
        e.gname = Some(c.bytes().map_err(bad)?.to_vec());
    }
    if flags & FLAG_ATIME != 0 {
        e.atime = Some(time(&mut c)?);
    }
    e.size = c.varint().map_err(bad)?;
    let n = c.varint().map_err(bad)?;
    for _ in 0..n {
        let name = c.bytes().map_err(bad)?.to_vec();
        let value = c.bytes().map_err(bad)?.to_vec();
        e.xattrs.push((name, value));
    }
    if flags & FLAG_SPARSE != 0 {
        let n = c.varint().map_err(bad)?;
        let mut map = Vec::new();
        for _ in 0..n {
            map.push((c.varint().map_err(bad)?, c.varint().map_err(bad)?));
        }
        e.sparse = Some(map);
    }
    if c.at != b.len() {
        return Err(corrupt("bytes after an entry"));
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_of_every_shape_come_back_in_order() {
        let mut all = Vec::new();
        let kinds = [
            Kind::File,
            Kind::Dir,
            Kind::Symlink(b"../t\xff".to_vec()),
            Kind::HardLink(b"rootimg/a".to_vec()),
            Kind::CharDevice {
                major: 4,
                minor: u32::MAX,
            },
            Kind::BlockDevice { major: 8, minor: 1 },
            Kind::Fifo,
        ];
        for (i, kind) in kinds.into_iter().enumerate() {
            let mut e = Entry::new(format!("rootimg/{i}").into_bytes(), kind, 0o7755);
            e.uid = u32::MAX;
            e.gid = i as u32;
            e.mtime = Timestamp {
                secs: -(i as i64) * 1_000_000_007,
                nanos: 999_999_999,
            };
            if i % 2 == 0 {
                e.uname = Some(b"root".to_vec());
                e.atime = Some(Timestamp { secs: 5, nanos: 6 });
                e.sparse = Some(vec![(0, 1), (1 << 40, 7)]);
            } else {
                e.gname = Some(b"wheel".to_vec());
                e.xattrs = vec![
                    (b"user.a".to_vec(), vec![0, 1, 2]),
                    (b"user.b".to_vec(), vec![]),
                ];
            }
            e.size = u64::MAX - i as u64;
            all.push(e);
        }
        let mut w = SpillWriter::new().unwrap();
        for e in &all {
            w.push(e).unwrap();
        }
        let spill = w.finish().unwrap();
        for _ in 0..2 {
            let mut r = spill.replay().unwrap();
            let mut got = Vec::new();
            while let Some(e) = r.next_entry().unwrap() {
                got.push(e);
            }
            assert_eq!(got, all);
        }
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let mut e = Entry::new(b"rootimg/x".to_vec(), Kind::Symlink(b"t".to_vec()), 0o777);
        e.xattrs = vec![(b"user.a".to_vec(), b"v".to_vec())];
        let mut good = Vec::new();
        encode(&mut good, &e);
        assert_eq!(decode(&good).unwrap(), e);
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut} accepted");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(decode(&longer).is_err());
    }
}

//! `verify`: proves an indexed tree archive sound, and optionally a restored tree equal
//! to it, as a stream: memory stays flat in the number of entries.
//!
//! Three streams run in step, each in archive order:
//!
//! - the archive's members, read through the index's member table and decoded by the
//!   same ordered parallel decoder import uses (`restore/units.rs`), then checked
//!   against the index on the way through (every member's CRC32 and length, and its
//!   BLAKE3 when the index records one: every v2 member has one) and parsed by
//!   restore's entry decoder for the stream format the index names (pax tar, or cpio
//!   newc for `imgexport`'s tree);
//! - the index entries ([`Index::entries`], decoded lazily);
//! - with `--against`, a [`WalkStream`] of the restored tree, on a thread of its own,
//!   whose order (depth first, siblings by raw name bytes) is the order imgport
//!   archives in, so the two sides merge like sorted lists.
//!
//! File content: a v2 index proves it through the member digests; a v1 index
//! records each file's BLAKE3 digest instead, which is checked as the data passes. A
//! restored file is compared byte for byte with the archive's data as both are read,
//! a buffer at a time. Nothing is collected per entry: the differences found are
//! the only thing that grows.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use libdeflater::Crc;

use crate::tree::archive::{format_err, TreeArchive};
use crate::tree::codec::{gzip, Codec, RawUnit, UnitSplitter, MAX_UNIT_BYTES};
use crate::tree::encode::walk::{WalkOptions, WalkStream};
use crate::tree::entry::{Entry, Kind};
use crate::tree::error::{display_path, TreeError};
use crate::tree::format::index::{
    lock_source, IndexEntry, IndexError, MemberInfo, SharedSource, StreamFormat, DIGEST_CHUNK_BYTES,
};
use crate::tree::format::newc::CpioReader;
use crate::tree::format::sidecar::{SidecarReader, SIDECAR_MEMBER};
use crate::tree::format::tar_decode::{EntryReader, TarReader};
use crate::tree::restore::drain;
use crate::tree::restore::sidecar::WithSidecar;
use crate::tree::restore::units::decode_units;
use crate::tree::threads;

/// Restored-tree entries walked ahead of the merge: enough to keep the walk thread
/// busy while the consumer works, few enough not to matter for memory.
const WALK_AHEAD: usize = 256;
/// Bytes compared per step between archive data and a restored file.
const COMPARE_BUF: usize = 256 * 1024;
/// Read buffer between the decoded stream and the entry decoders.
const STREAM_BUF: usize = 256 * 1024;

/// What `verify` found.
#[derive(Debug, Default, Clone)]
pub struct VerifyReport {
    pub members: u64,
    pub entries: u64,
    pub files: u64,
    /// One line per difference, naming the path and what differs.
    pub differences: Vec<String>,
}

impl VerifyReport {
    pub fn ok(&self) -> bool {
        self.differences.is_empty()
    }
}

/// How [`verify_with`] runs.
#[derive(Default)]
pub struct VerifyOptions<'a> {
    /// A restored tree to compare with the archive.
    pub against: Option<&'a Path>,
    /// Decode workers; 0 for one per core ([`threads::resolve`]).
    pub threads: usize,
    /// The `rootimgtree.meta` sidecar that came with a cpio newc tree (FORMAT.md §7),
    /// read as the tree is: its records are merged into the entries as restore merges
    /// them, so xattrs, nanosecond mtimes and hole maps are compared with what
    /// restore applied, and the sidecar is checked against its tree. Without it, a
    /// newc tree is compared with what newc alone holds.
    pub sidecar: Option<Box<dyn Read + 'a>>,
}

/// [`verify_with`] on the default number of threads, without a sidecar.
pub fn verify_archive(
    archive: &mut TreeArchive,
    against: Option<&Path>,
) -> Result<VerifyReport, TreeError> {
    verify_with(
        archive,
        VerifyOptions {
            against,
            ..VerifyOptions::default()
        },
    )
}

/// Checks every member's CRC32 and length against the index (and its BLAKE3 when the
/// index has one: v2), every entry against the index, and every file's digest when
/// the index records one (v1); with `against`, also compares the tree restored there
/// (content, kind, mode, owners, mtime, xattrs, link targets, devices, and entries
/// present on one side only).
///
/// Errors: damage to the archive (a member that does not decode or differs from the
/// index, a malformed entry) is [`TreeError::Format`] naming the member or entry; so
/// is a sidecar that is damaged, does not describe this tree, or comes with a tree
/// that is not newc (naming `rootimgtree.meta`). A restored tree that cannot be
/// walked is [`TreeError::Io`] naming the path. A restored file that cannot be read
/// is a difference, not an error.
pub fn verify_with(
    archive: &mut TreeArchive,
    opts: VerifyOptions<'_>,
) -> Result<VerifyReport, TreeError> {
    let VerifyOptions {
        against,
        threads,
        sidecar,
    } = opts;
    let threads = threads::resolve(threads);
    let sidecar = match sidecar {
        None => None,
        Some(_) if archive.index.format != StreamFormat::Newc => {
            return Err(TreeError::Format {
                entry: SIDECAR_MEMBER.into(),
                reason: "given with a tree that is not cpio newc: only a newc tree has one".into(),
            })
        }
        Some(s) => Some(SidecarReader::new(s)?),
    };
    // Opened here, not on the walk thread, so a missing or unreadable top fails first.
    let walk = match against {
        Some(dir) => Some(WalkStream::new(dir, b"rootimg", &WalkOptions::default())?),
        None => None,
    };
    let TreeArchive {
        src,
        index,
        codec,
        path,
    } = archive;
    let name: &Path = path;
    let members = &index.members;
    let splitter = IndexedUnits {
        src,
        members,
        codec: *codec,
        next: 0,
    };
    let codec = *codec;
    std::thread::scope(|s| {
        let restored = walk.map(|walk| {
            let (tx, rx) = crossbeam_channel::bounded(WALK_AHEAD);
            s.spawn(move || {
                for item in walk {
                    // The merge stopped early (an error): nothing more to walk for.
                    if tx.send(item).is_err() {
                        break;
                    }
                }
            });
            rx.into_iter()
        });
        decode_units(splitter, codec, threads, |decoded| {
            let checked = IndexChecked::new(decoded, members);
            let mut merge = Merge::new(index.entries(), index.len(), restored, against, name);
            merge.report.members = members.len() as u64;
            let stream = BufReader::with_capacity(STREAM_BUF, checked);
            run_decoder(index.format, stream, sidecar, &mut merge)?;
            merge.finish()
        })
    })
}

/// Parses the decoded stream with restore's entry decoder for `format`, the one the
/// index names (a stream that is not in that format fails at its first header), a
/// newc stream with its sidecar merged in when there is one, feeding `merge`; then
/// reads the rest so every member after the last entry is checked too.
fn run_decoder<R: Read, S: Read>(
    format: StreamFormat,
    stream: R,
    sidecar: Option<SidecarReader<S>>,
    merge: &mut Merge<'_>,
) -> Result<(), TreeError> {
    let rest = match (format, sidecar) {
        (StreamFormat::Tar, _) => {
            let mut r = TarReader::new(stream);
            merge.run(&mut r)?;
            r.into_inner()
        }
        (StreamFormat::Newc, None) => {
            let mut r = CpioReader::new(stream);
            merge.run(&mut r)?;
            r.into_inner()
        }
        (StreamFormat::Newc, Some(meta)) => {
            let mut r = WithSidecar::new(stream, meta);
            merge.run(&mut r)?;
            r.into_inner()
        }
    };
    drain(rest)
}

/// The archive's data members, read one by one at the offsets the index gives, for
/// the ordered decoder: the index, not the members' own headers, says where each
/// starts and ends, so a member whose header was damaged is still found and named.
struct IndexedUnits<'a> {
    src: &'a SharedSource,
    members: &'a [(MemberInfo, u64, u64)],
    codec: Codec,
    next: usize,
}

impl UnitSplitter for IndexedUnits<'_> {
    /// Every member has a length in the index: nothing is left for a sequential tail.
    type Tail = io::Empty;

    fn next_unit(&mut self) -> io::Result<Option<RawUnit>> {
        let Some(&(info, offset, _)) = self.members.get(self.next) else {
            return Ok(None);
        };
        let label = format!("member {} (at byte {offset} of the tree)", self.next);
        self.next += 1;
        let invalid = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
        if info.compressed > MAX_UNIT_BYTES as u64 || info.uncompressed > MAX_UNIT_BYTES as u64 {
            return Err(invalid(format!(
                "{label}: {} bytes compressed, {} decoded: more than a member may hold",
                info.compressed, info.uncompressed
            )));
        }
        let mut bytes = vec![0u8; info.compressed as usize];
        // Locked per member: the index reads its blocks through the same source as
        // the merge reaches them.
        let mut src = lock_source(self.src);
        src.seek(SeekFrom::Start(offset))
            .and_then(|_| src.read_exact(&mut bytes))
            .map_err(|e| io::Error::new(e.kind(), format!("{label}: {e}")))?;
        if self.codec == Codec::Gzip {
            // The member's own trailer is what the decoder checks; it must also be
            // what the index recorded, or the index describes another member.
            let t = bytes.len().saturating_sub(gzip::TRAILER_BYTES);
            let word = |at: usize| {
                bytes
                    .get(at..at + 4)
                    .and_then(|b| b.try_into().ok())
                    .map(u32::from_le_bytes)
            };
            if word(t) != Some(info.crc32) || word(t + 4).map(u64::from) != Some(info.uncompressed)
            {
                return Err(invalid(format!(
                    "{label}: its gzip trailer differs from the index"
                )));
            }
        }
        Ok(Some(RawUnit {
            bytes,
            content_size: Some(info.uncompressed),
            label,
        }))
    }

    fn take_tail(&mut self) -> Option<io::Empty> {
        None
    }
}

/// The decoded stream, checked member by member against the index as it passes:
/// each member's CRC32 (the decoder checked the member against itself; this checks
/// it is the member the index describes) and, when the index records one, its strong
/// digest. Costs one CRC32 pass (and a BLAKE3 pass with digests) on the reading thread.
struct IndexChecked<'a, R> {
    inner: R,
    members: &'a [(MemberInfo, u64, u64)],
    /// The member being read and its bytes still to come.
    at: usize,
    left: u64,
    crc: Crc,
    hasher: Option<blake3::Hasher>,
}

impl<'a, R: Read> IndexChecked<'a, R> {
    fn new(inner: R, members: &'a [(MemberInfo, u64, u64)]) -> Self {
        let mut s = IndexChecked {
            inner,
            members,
            at: 0,
            left: 0,
            crc: Crc::new(),
            hasher: None,
        };
        s.start();
        s
    }

    /// Sets up the checks of member `self.at`.
    fn start(&mut self) {
        self.crc = Crc::new();
        self.left = self.members.get(self.at).map_or(0, |m| m.0.uncompressed);
        self.hasher = self
            .members
            .get(self.at)
            .and_then(|m| m.0.digest)
            .map(|_| blake3::Hasher::new());
    }

    /// Ends every member whose bytes have all been seen (empty ones included).
    fn settle(&mut self) -> io::Result<()> {
        while self.left == 0 {
            let Some(&(info, _, _)) = self.members.get(self.at) else {
                return Ok(());
            };
            let bad = |what: &str| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("member {}: {what} differs from the index", self.at),
                )
            };
            if self.crc.sum() != info.crc32 {
                return Err(bad("its CRC32"));
            }
            if let (Some(h), Some(want)) = (&self.hasher, info.digest) {
                if *h.finalize().as_bytes() != want {
                    return Err(bad("its digest"));
                }
            }
            self.at += 1;
            self.start();
        }
        Ok(())
    }
}

impl<R: Read> Read for IndexChecked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.settle()?;
        let n = self.inner.read(buf)?;
        if n == 0 && self.at < self.members.len() && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the tree ends inside member {}", self.at),
            ));
        }
        let mut rest = &buf[..n];
        while !rest.is_empty() {
            if self.at >= self.members.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "more data than the index's members hold",
                ));
            }
            let k = rest
                .len()
                .min(usize::try_from(self.left).unwrap_or(usize::MAX));
            self.crc.update(&rest[..k]);
            if let Some(h) = &mut self.hasher {
                h.update(&rest[..k]);
            }
            self.left -= k as u64;
            rest = &rest[k..];
            self.settle()?;
        }
        Ok(n)
    }
}

type IndexEntries<'a> = Box<dyn Iterator<Item = Result<IndexEntry, IndexError>> + 'a>;
type RestoredEntries<'a> = Box<dyn Iterator<Item = Result<(Entry, PathBuf), TreeError>> + 'a>;

/// The merge of the archive's entries with the index's and the restored tree's, all
/// in archive order; see the module docs.
struct Merge<'a> {
    index: IndexEntries<'a>,
    index_len: u64,
    /// Index entries matched with archive entries so far.
    matched: u64,
    restored: Option<std::iter::Peekable<RestoredEntries<'a>>>,
    /// The restored tree's top, for looking at one of its paths directly.
    against: Option<&'a Path>,
    /// Restored entries of multiply-linked inodes that the walk passed before the
    /// archive reached them: a newc stream hands a hard-link group out at its last
    /// path (the one with the data) and its other paths after it, so these arrive
    /// out of walk order. Held until matched; the rest are only in the restored tree.
    /// Holds at most the links of the groups in flight, and restored-only links.
    linked: HashMap<Vec<u8>, (Entry, PathBuf)>,
    name: &'a Path,
    report: VerifyReport,
    abuf: Vec<u8>,
    dbuf: Vec<u8>,
}

impl<'a> Merge<'a> {
    fn new(
        index: impl Iterator<Item = Result<IndexEntry, IndexError>> + 'a,
        index_len: u64,
        restored: Option<impl Iterator<Item = Result<(Entry, PathBuf), TreeError>> + 'a>,
        against: Option<&'a Path>,
        name: &'a Path,
    ) -> Self {
        Merge {
            index: Box::new(index),
            index_len,
            matched: 0,
            restored: restored.map(|r| (Box::new(r) as RestoredEntries<'a>).peekable()),
            against,
            linked: HashMap::new(),
            name,
            report: VerifyReport::default(),
            abuf: vec![0u8; COMPARE_BUF],
            dbuf: Vec::new(),
        }
    }

    fn diff(&mut self, path: &[u8], what: &str) {
        self.report
            .differences
            .push(format!("{}: {what}", display_path(path)));
    }

    /// Every archive entry `r` decodes, in turn.
    fn run<R: EntryReader>(&mut self, r: &mut R) -> Result<(), TreeError> {
        while let Some(entry) = r.next_entry()? {
            self.report.entries += 1;
            let ix = match self.index.next() {
                None => {
                    self.diff(&entry.path, "in the archive but not in its index");
                    continue;
                }
                Some(Err(e)) => return Err(format_err(self.name, e)),
                Some(Ok(ix)) => ix,
            };
            self.matched += 1;
            if ix.path != entry.path {
                let what = format!("index names {} here", display_path(&ix.path));
                self.diff(&entry.path, &what);
            }
            let disk = match self.restored.is_some() {
                true => match self.restored_at(&entry.path)? {
                    Some(d) => Some(d),
                    None => {
                        self.diff(&entry.path, "missing from the restored tree");
                        None
                    }
                },
                false => None,
            };
            let content = match &disk {
                Some((d, src)) => self.compare_disk(&entry, d, src),
                None => None,
            };
            if entry.kind == Kind::File {
                self.report.files += 1;
                self.check_file(r, &entry, ix.digest, content)?;
            }
        }
        Ok(())
    }

    /// Differences between archived entry `a` and restored entry `d` (read from
    /// `src`) but for content; the file to compare content with, when there is one.
    /// Hard links: the archive (newc: the group's last path) and the walk (the
    /// first path) may call different paths of a group the file; then the inode
    /// is what is compared, and a link is sound when it shares its target's inode.
    fn compare_disk<'p>(&mut self, a: &Entry, d: &Entry, src: &'p Path) -> Option<&'p Path> {
        match (&a.kind, &d.kind) {
            (Kind::HardLink(t), Kind::File | Kind::HardLink(_)) if a.kind != d.kind => {
                if !self.same_inode(src, t) {
                    let what = format!("not a hard link of {} on disk", display_path(t));
                    self.diff(&a.path, &what);
                }
                None
            }
            (Kind::File, Kind::HardLink(first)) => {
                let full = self
                    .linked
                    .get(first)
                    .filter(|(_, fsrc)| same_file(src, fsrc))
                    .map(|(fd, _)| Entry {
                        path: d.path.clone(),
                        ..fd.clone()
                    });
                let d = full.as_ref().unwrap_or(d);
                compare_meta(a, d, &mut self.report.differences).then_some(src)
            }
            _ => compare_meta(a, d, &mut self.report.differences).then_some(src),
        }
    }

    /// Whether restored file `src` and the restored path of archive path `other`
    /// are one inode.
    fn same_inode(&self, src: &Path, other: &[u8]) -> bool {
        use std::os::unix::ffi::OsStrExt;
        let Some(top) = self.against else {
            return false;
        };
        let rel = match other.strip_prefix(b"rootimg") {
            Some(b"") => Path::new(""),
            Some(rest) => match rest.strip_prefix(b"/") {
                Some(rel) => Path::new(std::ffi::OsStr::from_bytes(rel)),
                None => return false,
            },
            None => return false,
        };
        same_file(src, &top.join(rel))
    }

    /// The restored entry named `path`, if there is one; restored entries that sort
    /// before it are on the restored side only, and are reported so, but for links
    /// of multiply-linked inodes, which are held in [`Merge::linked`] until the
    /// archive reaches them or ends.
    fn restored_at(&mut self, path: &[u8]) -> Result<Option<(Entry, PathBuf)>, TreeError> {
        let Some(restored) = self.restored.as_mut() else {
            return Ok(None);
        };
        loop {
            let order = match restored.peek() {
                None => return Ok(self.linked.remove(path)),
                Some(Err(_)) => {
                    return match restored.next() {
                        Some(Err(e)) => Err(e),
                        _ => Ok(None),
                    }
                }
                Some(Ok((d, _))) => walk_order(&d.path, path),
            };
            match order {
                Ordering::Greater => return Ok(self.linked.remove(path)),
                Ordering::Equal => return restored.next().transpose(),
                Ordering::Less => {
                    if let Some(Ok((d, src))) = restored.next() {
                        if multiply_linked(&d, &src) {
                            self.linked.insert(d.path.clone(), (d, src));
                        } else {
                            self.report.differences.push(format!(
                                "{}: only in the restored tree",
                                display_path(&d.path)
                            ));
                        }
                    }
                }
            }
        }
    }

    /// Reads the current file's stored data once: into its digest when the index
    /// records one, and against the restored file `content` (when its metadata
    /// matched) a buffer at a time. Data nobody needs is left for the decoder to skip.
    fn check_file<R: EntryReader>(
        &mut self,
        r: &mut R,
        a: &Entry,
        digest: Option<[u8; 32]>,
        content: Option<&Path>,
    ) -> Result<(), TreeError> {
        let mut hasher = digest.map(|_| StoredDigest::default());
        let mut disk = match content.map(|p| DiskData::open(p, a)) {
            Some(Ok(d)) => Some(d),
            Some(Err(e)) => {
                self.diff(&a.path, &format!("cannot read: {e}"));
                None
            }
            None => None,
        };
        if hasher.is_none() && disk.is_none() {
            return Ok(());
        }
        let mut differs = false;
        loop {
            let n = r.read_data(&mut self.abuf)?;
            if n == 0 {
                break;
            }
            let data = &self.abuf[..n];
            if let Some(h) = &mut hasher {
                h.update(data);
            }
            if let Some(d) = disk.as_mut().filter(|_| !differs) {
                if self.dbuf.len() < n {
                    self.dbuf.resize(COMPARE_BUF, 0);
                }
                match crate::tree::io::fill(d, &mut self.dbuf[..n]) {
                    Ok(got) => differs = got != n || self.dbuf[..n] != *data,
                    Err(e) => {
                        let what = format!("cannot read: {e}");
                        self.diff(&a.path, &what);
                        disk = None;
                    }
                }
            }
        }
        if differs {
            self.diff(&a.path, "content differs");
        }
        if let (Some(h), Some(want)) = (hasher, digest) {
            if h.finish() != want {
                self.diff(&a.path, "content does not match the index digest");
            }
        }
        Ok(())
    }

    /// Ends the merge: index entries the archive lacks, restored entries after the
    /// archive's last.
    fn finish(mut self) -> Result<VerifyReport, TreeError> {
        if self.matched != self.index_len {
            self.report.differences.push(format!(
                "the index lists {} entries, the archive holds {}",
                self.index_len, self.matched
            ));
        }
        let mut left: Vec<_> = std::mem::take(&mut self.linked).into_keys().collect();
        left.sort_by(|a, b| walk_order(a, b));
        for path in left {
            self.diff(&path, "only in the restored tree");
        }
        if let Some(restored) = self.restored.take() {
            for item in restored {
                let (d, _) = item?;
                self.report.differences.push(format!(
                    "{}: only in the restored tree",
                    display_path(&d.path)
                ));
            }
        }
        Ok(self.report)
    }
}

/// Whether a restored entry is one of several links to its inode: a link the walk
/// collapsed, or a file the walk met first whose inode has other links. Asked only
/// of entries the merge passes by, so the `lstat` is rare.
fn multiply_linked(d: &Entry, src: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match d.kind {
        Kind::HardLink(_) => true,
        Kind::File => std::fs::symlink_metadata(src).is_ok_and(|m| m.nlink() > 1),
        _ => false,
    }
}

/// Whether two restored paths are one inode (false when either cannot be read).
fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::symlink_metadata(a), std::fs::symlink_metadata(b)) {
        (Ok(x), Ok(y)) => (x.dev(), x.ino()) == (y.dev(), y.ino()),
        _ => false,
    }
}

/// imgport's archive order between two paths: depth first, a directory before its
/// children, siblings by raw name bytes; i.e. component lists compared in order
/// (`a/b` before `a-c`, although `/` sorts after `-`).
fn walk_order(a: &[u8], b: &[u8]) -> Ordering {
    a.split(|&c| c == b'/').cmp(b.split(|&c| c == b'/'))
}

/// Differences in everything but content between an archived entry and the restored
/// one, pushed to `out`; true when both are files of one size, whose content is then
/// worth comparing.
fn compare_meta(a: &Entry, disk: &Entry, out: &mut Vec<String>) -> bool {
    // The path is formatted only for a difference: most entries have none.
    let mut diff = |what: String| out.push(format!("{}: {what}", display_path(&a.path)));
    if std::mem::discriminant(&a.kind) != std::mem::discriminant(&disk.kind) {
        diff(format!(
            "is {:?} in the archive, {:?} on disk",
            a.kind, disk.kind
        ));
        return false;
    }
    if a.kind != disk.kind {
        diff(format!(
            "{:?} in the archive, {:?} on disk",
            a.kind, disk.kind
        ));
    }
    if matches!(a.kind, Kind::HardLink(_)) {
        return false;
    }
    if a.mode != disk.mode && !matches!(a.kind, Kind::Symlink(_)) {
        diff(format!(
            "mode {:o} in the archive, {:o} on disk",
            a.mode, disk.mode
        ));
    }
    if (a.uid, a.gid) != (disk.uid, disk.gid) {
        diff(format!(
            "owner {}:{} in the archive, {}:{} on disk",
            a.uid, a.gid, disk.uid, disk.gid
        ));
    }
    if a.mtime != disk.mtime {
        diff(format!(
            "mtime {}.{:09} in the archive, {}.{:09} on disk",
            a.mtime.secs, a.mtime.nanos, disk.mtime.secs, disk.mtime.nanos
        ));
    }
    if !same_xattrs(&a.xattrs, &disk.xattrs) {
        let names = |x: &[(Vec<u8>, Vec<u8>)]| {
            let mut n: Vec<_> = x
                .iter()
                .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
                .collect();
            n.sort();
            n.join(",")
        };
        diff(format!(
            "xattrs [{}] in the archive, [{}] on disk",
            names(&a.xattrs),
            names(&disk.xattrs)
        ));
    }
    if a.kind != Kind::File {
        return false;
    }
    if a.size != disk.size {
        diff(format!(
            "size {} in the archive, {} on disk",
            a.size, disk.size
        ));
        return false;
    }
    true
}

/// Whether two xattr lists hold the same names and values, in any order. Most
/// entries have none, so the common case allocates nothing.
fn same_xattrs(a: &[(Vec<u8>, Vec<u8>)], b: &[(Vec<u8>, Vec<u8>)]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    if a == b {
        return true;
    }
    let mut a: Vec<_> = a.iter().collect();
    let mut b: Vec<_> = b.iter().collect();
    a.sort();
    b.sort();
    a == b
}

/// The FORMAT.md §3.3 file digest (BLAKE3 over the BLAKE3s of the stored data's
/// [`DIGEST_CHUNK_BYTES`] pieces) computed as the data streams past.
#[derive(Default)]
struct StoredDigest {
    outer: blake3::Hasher,
    chunk: blake3::Hasher,
    in_chunk: u64,
}

impl StoredDigest {
    fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let room = DIGEST_CHUNK_BYTES - self.in_chunk;
            let k = bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            self.chunk.update(&bytes[..k]);
            self.in_chunk += k as u64;
            bytes = &bytes[k..];
            if self.in_chunk == DIGEST_CHUNK_BYTES {
                self.outer.update(self.chunk.finalize().as_bytes());
                self.chunk.reset();
                self.in_chunk = 0;
            }
        }
    }

    fn finish(mut self) -> [u8; 32] {
        if self.in_chunk > 0 {
            self.outer.update(self.chunk.finalize().as_bytes());
        }
        *self.outer.finalize().as_bytes()
    }
}

/// A restored file's bytes as the archive stores them: all of them, or for a sparse
/// archived file its data segments, read at their offsets.
struct DiskData {
    file: File,
    /// `(offset, length)` runs still to read.
    map: Vec<(u64, u64)>,
    seg: usize,
    at: u64,
}

impl DiskData {
    fn open(path: &Path, a: &Entry) -> io::Result<DiskData> {
        Ok(DiskData {
            file: File::open(path)?,
            map: a.sparse.clone().unwrap_or_else(|| vec![(0, a.size)]),
            seg: 0,
            at: 0,
        })
    }
}

impl Read for DiskData {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(&(off, len)) = self.map.get(self.seg) {
            if self.at == len {
                self.seg += 1;
                self.at = 0;
                continue;
            }
            let want = buf
                .len()
                .min(usize::try_from(len - self.at).unwrap_or(usize::MAX));
            let n = self.file.read_at(&mut buf[..want], off + self.at)?;
            if n == 0 {
                return Ok(0);
            }
            self.at += n as u64;
            return Ok(n);
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify_with_threads(
        archive: &mut TreeArchive,
        against: Option<&Path>,
        threads: usize,
    ) -> Result<VerifyReport, TreeError> {
        let opts = VerifyOptions {
            against,
            threads,
            sidecar: None,
        };
        verify_with(archive, opts)
    }
    use crate::testkit::sample_tree;
    use crate::tree::encode::writer::{write_tree, WriteOptions};
    use crate::tree::format::index::{chunk_digest, file_digest};
    use crate::tree::restore::{restore_stream, RestoreOptions};
    use std::fs;
    use std::io::Write;
    use std::os::unix::fs::{chown, PermissionsExt};

    /// A tree of several members: small files in two directories, a 9 MiB file
    /// spread over three members, a sparse file, a symlink, a hard link, an xattr;
    /// its archive written with `codec` into memory, and a restore of it.
    struct Fixture {
        dir: tempfile::TempDir,
        bytes: Vec<u8>,
    }

    impl Fixture {
        fn new(codec: Codec) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let root = dir.path().join("rootimg");
            sample_tree(&root, |i| i.wrapping_mul(2654435761));
            fs::create_dir_all(root.join("var/lib")).unwrap();
            fs::write(root.join("etc/motd"), b"hello\n").unwrap();
            fs::write(root.join("var/lib/state"), b"state").unwrap();
            rustix::fs::lsetxattr(
                root.join("etc/motd"),
                "user.origin",
                b"test",
                rustix::fs::XattrFlags::empty(),
            )
            .unwrap();
            let mut bytes = Vec::new();
            let opts = WriteOptions {
                codec,
                threads: 2,
                ..WriteOptions::default()
            };
            write_tree(&root, &mut bytes, &opts).unwrap();
            let restored = dir.path().join("restored");
            fs::create_dir(&restored).unwrap();
            let restore = |b: &[u8]| match codec {
                Codec::Gzip => restore_stream(b, &restored, b"rootimg", &RestoreOptions::default()),
                Codec::Zstd => crate::tree::restore::restore_zstd(
                    b,
                    &restored,
                    b"rootimg",
                    &RestoreOptions::default(),
                ),
            };
            restore(&bytes).unwrap();
            Fixture { dir, bytes }
        }

        /// The differences of [`Fixture::verify`] but for mtimes, which the tests'
        /// own changes leave on the directories they touch.
        fn differences(&self, threads: usize) -> Vec<String> {
            let mut d = self.verify(threads).differences;
            d.retain(|l| !l.contains(": mtime "));
            d
        }

        fn restored(&self) -> PathBuf {
            self.dir.path().join("restored")
        }

        fn verify(&self, threads: usize) -> VerifyReport {
            self.verify_bytes(self.bytes.clone(), Some(&self.restored()), threads)
                .unwrap()
        }

        fn verify_bytes(
            &self,
            bytes: Vec<u8>,
            against: Option<&Path>,
            threads: usize,
        ) -> Result<VerifyReport, TreeError> {
            let len = bytes.len() as u64;
            let mut ar = TreeArchive::new(io::Cursor::new(bytes), len, Path::new("mem.tree"))?;
            verify_with_threads(&mut ar, against, threads)
        }
    }

    #[test]
    fn a_good_tree_verifies_with_any_thread_count_and_codec() {
        for codec in [Codec::Gzip, Codec::Zstd] {
            let f = Fixture::new(codec);
            for threads in [1, 3] {
                let report = f.verify(threads);
                assert!(report.ok(), "{codec:?} {threads}: {:?}", report.differences);
                // rootimg, big, etc, etc/hosts, etc/motd, hard, link, sparse, var,
                // var/lib, var/lib/state; the hard link is no file.
                assert_eq!((report.entries, report.files), (11, 5));
                assert!(report.members > 2, "{codec:?}: several members");
                // v2: every member's BLAKE3 is in the index, so each was checked.
                let len = f.bytes.len() as u64;
                let ar = TreeArchive::new(io::Cursor::new(f.bytes.clone()), len, Path::new("t"))
                    .unwrap();
                assert_eq!(ar.index().version(), 2);
                assert!(ar
                    .index()
                    .members
                    .iter()
                    .all(|(m, _, _)| m.digest.is_some()));
                let alone = f.verify_bytes(f.bytes.clone(), None, threads).unwrap();
                assert!(alone.ok(), "{:?}", alone.differences);
                assert_eq!(alone.entries, 11);
            }
        }
    }

    #[test]
    fn entries_on_one_side_only_are_named_where_they_fall() {
        let f = Fixture::new(Codec::Gzip);
        let r = f.restored();
        // Missing from the restored tree: a file, and a directory with its contents.
        fs::remove_file(r.join("etc/motd")).unwrap();
        fs::remove_dir_all(r.join("var")).unwrap();
        // Only in the restored tree: before, between and after the archive's entries,
        // and inside a new directory.
        fs::write(r.join("aaa"), b"x").unwrap();
        fs::write(r.join("etc/hosts2"), b"x").unwrap();
        fs::create_dir(r.join("zzz")).unwrap();
        fs::write(r.join("zzz/inner"), b"x").unwrap();
        assert_eq!(
            f.differences(2),
            [
                "rootimg/aaa: only in the restored tree",
                "rootimg/etc/hosts2: only in the restored tree",
                "rootimg/etc/motd: missing from the restored tree",
                "rootimg/var: missing from the restored tree",
                "rootimg/var/lib: missing from the restored tree",
                "rootimg/var/lib/state: missing from the restored tree",
                "rootimg/zzz: only in the restored tree",
                "rootimg/zzz/inner: only in the restored tree",
            ],
        );
    }

    #[test]
    fn one_changed_byte_inside_a_multi_member_file_is_one_difference() {
        let f = Fixture::new(Codec::Gzip);
        let big = f.restored().join("big");
        let md = fs::metadata(&big).unwrap();
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&big)
            .unwrap();
        let mut b = [0u8; 1];
        file.read_at(&mut b, 6 << 20).unwrap();
        file.write_all_at(&[b[0] ^ 1], 6 << 20).unwrap();
        // Keep the mtime, so the content is the only difference.
        let times = fs::FileTimes::new().set_modified(md.modified().unwrap());
        file.set_times(times).unwrap();
        assert_eq!(f.differences(2), ["rootimg/big: content differs"]);
        // A sparse file's hole gaining data is a content change too, found where the
        // archive stores data only.
        let sparse = f.restored().join("sparse");
        let md = fs::metadata(&sparse).unwrap();
        let file = fs::OpenOptions::new().write(true).open(&sparse).unwrap();
        file.write_all_at(b"MIDDLE", 4 << 20).unwrap();
        file.set_times(fs::FileTimes::new().set_modified(md.modified().unwrap()))
            .unwrap();
        assert_eq!(
            f.differences(1),
            [
                "rootimg/big: content differs",
                "rootimg/sparse: content differs"
            ]
        );
    }

    #[test]
    fn metadata_differences_are_named() {
        let f = Fixture::new(Codec::Zstd);
        let r = f.restored();
        fs::set_permissions(r.join("etc/hosts"), fs::Permissions::from_mode(0o600)).unwrap();
        chown(r.join("var/lib/state"), Some(12), Some(34)).unwrap();
        rustix::fs::lremovexattr(r.join("etc/motd"), "user.origin").unwrap();
        fs::remove_file(r.join("link")).unwrap();
        std::os::unix::fs::symlink("etc/motd", r.join("link")).unwrap();
        // A file grew: its size differs, its content is not compared.
        let md = fs::metadata(r.join("etc/hosts")).unwrap();
        let mut hosts = fs::OpenOptions::new()
            .append(true)
            .open(r.join("etc/hosts"))
            .unwrap();
        hosts.write_all(b"more").unwrap();
        hosts
            .set_times(fs::FileTimes::new().set_modified(md.modified().unwrap()))
            .unwrap();
        let differences = f.differences(2);
        let all = differences.join("\n");
        for want in [
            "rootimg/etc/hosts: mode 644 in the archive, 600 on disk",
            "rootimg/etc/hosts: size 20 in the archive, 24 on disk",
            "rootimg/etc/motd: xattrs [user.origin] in the archive, [] on disk",
            "rootimg/link: Symlink([101, 116, 99, 47, 104, 111, 115, 116, 115]) in the archive",
            "rootimg/var/lib/state: owner 0:0 in the archive, 12:34 on disk",
        ] {
            assert!(all.contains(want), "want {want:?} in:\n{all}");
        }
        // The hard link follows its target's inode: its own entry matches.
        assert!(!all.contains("rootimg/hard"), "{all}");
        assert_eq!(differences.len(), 5, "{all}");
    }

    #[test]
    fn a_damaged_member_is_an_error_naming_it() {
        for codec in [Codec::Gzip, Codec::Zstd] {
            let f = Fixture::new(codec);
            let len = f.bytes.len() as u64;
            let ar =
                TreeArchive::new(io::Cursor::new(f.bytes.clone()), len, Path::new("t")).unwrap();
            let (m, at, _) = ar.index().members[2];
            let mut bad = f.bytes.clone();
            bad[(at + m.compressed / 2) as usize] ^= 0x55;
            for threads in [1, 2] {
                let err = f.verify_bytes(bad.clone(), None, threads).unwrap_err();
                assert!(matches!(err, TreeError::Format { .. }), "{err}");
                assert!(err.to_string().contains("member 2 "), "{codec:?}: {err}");
            }
        }
    }

    /// Two members over `data`, as the index records them: with their BLAKE3s (v2)
    /// or without (v1).
    fn members(data: &[u8], cut: usize, digests: bool) -> Vec<(MemberInfo, u64, u64)> {
        let info = |part: &[u8]| {
            let mut crc = Crc::new();
            crc.update(part);
            MemberInfo {
                compressed: 0,
                uncompressed: part.len() as u64,
                crc32: crc.sum(),
                digest: digests.then(|| *blake3::hash(part).as_bytes()),
            }
        };
        vec![
            (info(&data[..cut]), 0, 0),
            (info(&data[cut..]), 0, cut as u64),
        ]
    }

    fn read_checked(bytes: &[u8], table: &[(MemberInfo, u64, u64)]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        IndexChecked::new(bytes, table)
            .read_to_end(&mut out)
            .map(|_| out)
    }

    #[test]
    fn members_are_checked_against_the_index_crc_and_digest() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for digests in [false, true] {
            let table = members(&data, 60_000, digests);
            assert!(read_checked(&data, &table).unwrap() == data);
            let mut bad = data.clone();
            bad[70_000] ^= 1;
            let err = read_checked(&bad, &table).unwrap_err().to_string();
            assert!(err.contains("member 1: its CRC32"), "{err}");
            let err = read_checked(&data[..90_000], &table)
                .unwrap_err()
                .to_string();
            assert!(err.contains("ends inside member 1"), "{err}");
            let mut long = data.clone();
            long.push(0);
            assert!(read_checked(&long, &table).is_err());
        }
        // A member whose CRC32 matches but whose BLAKE3 does not is named.
        let mut table = members(&data, 60_000, true);
        table[1].0.digest = Some([7u8; 32]);
        let err = read_checked(&data, &table).unwrap_err().to_string();
        assert!(err.contains("member 1: its digest"), "{err}");
    }

    /// The v1 tree fixture (FORMAT.md §3.5): no member digests, so its per-file
    /// digests are what is checked, alone and against a restore of it.
    #[test]
    fn v1_trees_still_verify() {
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tree-v1.gz");
        let bytes = fs::read(fixture).unwrap();
        let open = |b: Vec<u8>| {
            let len = b.len() as u64;
            TreeArchive::new(io::Cursor::new(b), len, Path::new("v1.tree")).unwrap()
        };
        let mut ar = open(bytes.clone());
        assert_eq!(ar.index().version(), 1);
        assert!(ar
            .index()
            .members
            .iter()
            .all(|(m, _, _)| m.digest.is_none()));
        let report = verify_with_threads(&mut ar, None, 2).unwrap();
        assert!(report.ok(), "{:?}", report.differences);
        assert_eq!((report.entries, report.files), (21, 6), "{report:?}");
        let dir = tempfile::tempdir().unwrap();
        restore_stream(
            &bytes[..],
            dir.path(),
            b"rootimg",
            &RestoreOptions::default(),
        )
        .unwrap();
        let report = verify_with_threads(&mut ar, Some(dir.path()), 2).unwrap();
        assert!(report.ok(), "{:?}", report.differences);
        // A file whose bytes differ from its v1 digest is named: the same data with
        // an index that gives etc/motd another digest.
        let idx = ar.index().clone();
        let members: Vec<_> = idx.members.iter().map(|(m, _, _)| *m).collect();
        let mut entries: Vec<IndexEntry> = idx.entries().map(Result::unwrap).collect();
        for e in entries.iter_mut() {
            if e.path == b"rootimg/etc/motd" {
                e.digest = Some([7; 32]);
            }
        }
        let mut bad = bytes[..idx.data_end as usize].to_vec();
        bad.extend_from_slice(&crate::tree::codec::gzip_trailer::encode_gzip_trailer_v1(
            &crate::tree::format::index::tests::encode_v1(&members, &entries),
            idx.data_end,
        ));
        let report = verify_with_threads(&mut open(bad), None, 2).unwrap();
        assert_eq!(
            report.differences,
            ["rootimg/etc/motd: content does not match the index digest"]
        );
    }

    #[test]
    fn the_streamed_digest_is_the_format_digest() {
        let chunk = DIGEST_CHUNK_BYTES as usize;
        for len in [0, 1, 65_537, chunk, chunk + 5, 2 * chunk] {
            let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let want = file_digest(&data.chunks(chunk).map(chunk_digest).collect::<Vec<_>>());
            let mut d = StoredDigest::default();
            for piece in data.chunks(100_003) {
                d.update(piece);
            }
            assert_eq!(d.finish(), want, "{len}");
        }
    }

    #[test]
    fn walk_order_is_depth_first_by_component() {
        let mut paths: Vec<&[u8]> = vec![b"r/a-c", b"r/a/b", b"r", b"r/a", b"r/b", b"r/a/b/c"];
        paths.sort_by(|a, b| walk_order(a, b));
        assert_eq!(
            paths,
            [&b"r"[..], b"r/a", b"r/a/b", b"r/a/b/c", b"r/a-c", b"r/b"]
        );
    }
}

//! Random access to an imgport tree archive through its index: list it, pull one file
//! out of it, or verify it (every member's CRC32, every file's digest, and optionally a
//! restored tree against it), reading only what each task needs.
//!
//! Works over any `Read + Seek` holding a tree (a bare `rootimgtree.gz` /
//! `rootimgtree.zst`, or the bundle's view of its stored tree member: opening a bundle
//! is the bundle module's job); the codec is recognized from the tree's last bytes
//! ([`codec::detect`]).

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::tree::codec::{self, Codec, UnitDecoder};
use crate::tree::encode::walk::{walk, WalkOptions};
use crate::tree::entry::{Entry, Kind};
use crate::tree::error::{display_path, TreeError};
use crate::tree::format::index::{
    self, chunk_digest, file_digest, lock_source, Index, IndexEntry, SharedSource, StreamFormat,
    DIGEST_CHUNK_BYTES,
};
use crate::tree::format::newc::CpioReader;
use crate::tree::format::tar_decode::{EntryReader, TarReader};

/// Members inflated together when streaming the whole archive (per batch, in
/// parallel); bounds memory to about this many × 5 MiB.
const BATCH_MEMBERS: usize = 16;

/// An indexed tree archive opened for random access.
pub struct TreeArchive {
    /// Shared with the index, which reads its blocks from it on demand.
    src: SharedSource,
    index: Index,
    codec: Codec,
    path: PathBuf,
}

fn format_err(path: &Path, reason: impl ToString) -> TreeError {
    TreeError::Format {
        entry: path.display().to_string(),
        reason: reason.to_string(),
    }
}

impl TreeArchive {
    /// Opens the imgport tree held in bytes `0..len` of `src` (a bare
    /// `rootimgtree.gz` / `.zst`, or any view of one, such as the bundle's stored
    /// member): reads its footer (and the zstd seek table) and its index head only;
    /// index blocks are read when a lookup or listing reaches them.
    /// `name` is what errors call the archive.
    pub fn new<R: Read + Seek + Send + 'static>(
        src: R,
        len: u64,
        name: &Path,
    ) -> Result<TreeArchive, TreeError> {
        let src = index::share(src);
        let (codec, index) = codec::read_tree_index(src.clone(), len).map_err(|e| match e {
            index::IndexError::Missing => format_err(
                name,
                "no imgport tree index (not an imgport bundle or tree, or one without a statelite tree)",
            ),
            other => format_err(name, other),
        })?;
        Ok(TreeArchive {
            src,
            index,
            codec,
            path: name.to_path_buf(),
        })
    }

    pub fn index(&self) -> &Index {
        &self.index
    }

    /// Which codec the tree is compressed with.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    fn read_compressed(&mut self, first: usize, count: usize) -> Result<Vec<Vec<u8>>, TreeError> {
        let mut out = Vec::with_capacity(count);
        for i in first..(first + count).min(self.index.members.len()) {
            let (m, coff, _) = self.index.members[i];
            if m.compressed as usize > crate::tree::codec::MAX_UNIT_BYTES {
                return Err(format_err(
                    &self.path,
                    format!("member {i} is {} bytes", m.compressed),
                ));
            }
            let mut buf = vec![0u8; m.compressed as usize];
            let mut src = lock_source(&self.src);
            src.seek(SeekFrom::Start(coff))
                .and_then(|_| src.read_exact(&mut buf))
                .map_err(|e| TreeError::io(&self.path, e))?;
            out.push(buf);
        }
        Ok(out)
    }

    /// Decompresses members (zstd: frames) `first..first+count` in parallel, checking
    /// CRC32 and size against the member trailers (gzip), the frame checksums (zstd)
    /// and the index.
    fn inflate(&mut self, first: usize, count: usize) -> Result<Vec<Vec<u8>>, TreeError> {
        let raw = self.read_compressed(first, count)?;
        let path = self.path.clone();
        let infos: Vec<_> = self.index.members[first..first + raw.len()].to_vec();
        let codec = self.codec;
        raw.into_par_iter()
            .zip(infos)
            .enumerate()
            .map_init(
                || UnitDecoder::new(codec),
                |d, (k, (bytes, (info, _, _)))| {
                    let data = d
                        .decode(&bytes, &info)
                        .map_err(|e| format_err(&path, format!("member {}: {e}", first + k)))?;
                    if data.len() as u64 != info.uncompressed {
                        return Err(format_err(
                            &path,
                            format!("member {} differs from the index", first + k),
                        ));
                    }
                    Ok(data)
                },
            )
            .collect()
    }

    /// The index entry named `path` (with or without the leading `rootimg/`). A v2
    /// index reads one block for it.
    pub fn find(&self, path: &[u8]) -> Result<Option<IndexEntry>, TreeError> {
        let path = path.strip_prefix(b"/").unwrap_or(path);
        let mut want = path.to_vec();
        if !(path == b"rootimg" || path.starts_with(b"rootimg/")) {
            want = [b"rootimg/".as_slice(), path].concat();
        }
        while want.len() > 1 && want.last() == Some(&b'/') {
            want.pop();
        }
        self.index
            .find(&want)
            .map_err(|e| format_err(&self.path, e))
    }

    /// Copies uncompressed tar bytes `[offset, offset+len)` to `out`, inflating only
    /// the members that cover them.
    fn copy_range(&mut self, offset: u64, len: u64, out: &mut dyn Write) -> Result<(), TreeError> {
        if len == 0 {
            return Ok(());
        }
        let range = self.index.members_covering(offset, len);
        let end = offset + len;
        for i in range {
            let data = self.inflate(i, 1)?.pop().unwrap_or_default();
            let (_, _, uoff) = self.index.members[i];
            let from = offset.max(uoff) - uoff;
            let to = (end.min(uoff + data.len() as u64) - uoff) as usize;
            out.write_all(&data[from as usize..to])
                .map_err(|e| TreeError::io("standard output", e))?;
        }
        Ok(())
    }

    /// Writes the content of the file `path` to `out` (holes of sparse files as
    /// zeros; hard links are followed to their target). Returns the bytes written.
    pub fn cat(&mut self, path: &[u8], out: &mut dyn Write) -> Result<u64, TreeError> {
        let mut entry = self.find(path)?.ok_or_else(|| TreeError::NotInArchive {
            entry: display_path(path),
            archive: self.path.display().to_string(),
        })?;
        if let Kind::HardLink(target) = &entry.kind {
            let target = target.clone();
            entry = self.find(&target)?.ok_or_else(|| TreeError::Format {
                entry: display_path(&target),
                reason: "hard link target missing from the index".into(),
            })?;
        }
        if entry.kind != Kind::File {
            return Err(TreeError::Unsupported {
                entry: display_path(&entry.path),
                reason: "not a regular file".into(),
            });
        }
        match entry.sparse.clone() {
            None => self.copy_range(entry.data_offset, entry.stored, out)?,
            Some(map) => {
                // The stored bytes are the segments, concatenated; holes between them are zeros.
                let mut at = 0u64;
                let mut stored = entry.data_offset;
                for (off, len) in map {
                    write_zeros(out, off.saturating_sub(at))?;
                    self.copy_range(stored, len, out)?;
                    stored += len;
                    at = off + len;
                }
                write_zeros(out, entry.size.saturating_sub(at))?;
            }
        }
        Ok(entry.size)
    }

    /// The whole uncompressed tar stream, members inflated in parallel batches.
    fn stream(&mut self) -> MemberStream<'_> {
        MemberStream {
            archive: self,
            next: 0,
            ready: VecDeque::new(),
            cur: Vec::new(),
            at: 0,
        }
    }
}

/// The decoder of a tree's stream, by the entry format its index names (pax tar, or
/// cpio newc for `imgexport`'s tree).
enum StreamReader<R: Read> {
    // Boxed: both decoders carry KiB of state, of very different sizes.
    Tar(Box<TarReader<R>>),
    Newc(Box<CpioReader<io::BufReader<R>>>),
}

impl<R: Read> StreamReader<R> {
    fn new(format: StreamFormat, src: R) -> StreamReader<R> {
        match format {
            StreamFormat::Tar => StreamReader::Tar(Box::new(TarReader::new(src))),
            StreamFormat::Newc => {
                StreamReader::Newc(Box::new(CpioReader::new(io::BufReader::new(src))))
            }
        }
    }
}

impl<R: Read> EntryReader for StreamReader<R> {
    fn next_entry(&mut self) -> Result<Option<Entry>, TreeError> {
        match self {
            StreamReader::Tar(r) => r.next_entry(),
            StreamReader::Newc(r) => r.next_entry(),
        }
    }

    fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, TreeError> {
        match self {
            StreamReader::Tar(r) => r.read_data(buf),
            StreamReader::Newc(r) => r.read_data(buf),
        }
    }

    fn take_warnings(&mut self) -> Vec<String> {
        match self {
            StreamReader::Tar(r) => r.take_warnings(),
            StreamReader::Newc(r) => r.take_warnings(),
        }
    }
}

fn write_zeros(out: &mut dyn Write, mut n: u64) -> Result<(), TreeError> {
    let zeros = [0u8; 64 * 1024];
    while n > 0 {
        let k = n.min(zeros.len() as u64) as usize;
        out.write_all(&zeros[..k])
            .map_err(|e| TreeError::io("standard output", e))?;
        n -= k as u64;
    }
    Ok(())
}

struct MemberStream<'a> {
    archive: &'a mut TreeArchive,
    next: usize,
    ready: VecDeque<Vec<u8>>,
    cur: Vec<u8>,
    at: usize,
}

impl Read for MemberStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.cur.len() {
            if let Some(next) = self.ready.pop_front() {
                self.cur = next;
                self.at = 0;
                continue;
            }
            let total = self.archive.index.members.len();
            if self.next >= total {
                return Ok(0);
            }
            let n = BATCH_MEMBERS.min(total - self.next);
            let batch = self
                .archive
                .inflate(self.next, n)
                .map_err(io::Error::other)?;
            self.next += n;
            self.ready.extend(batch);
        }
        let n = buf.len().min(self.cur.len() - self.at);
        buf[..n].copy_from_slice(&self.cur[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

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

/// Checks every member's CRC32 and every file's digest against the index; with
/// `against`, also compares the tree restored there (content, kind, mode, owners,
/// mtime, xattrs, link targets, devices, and entries present on one side only).
pub fn verify_archive(
    archive: &mut TreeArchive,
    against: Option<&Path>,
) -> Result<VerifyReport, TreeError> {
    let mut report = VerifyReport {
        members: archive.index.members.len() as u64,
        ..VerifyReport::default()
    };
    let indexed: Vec<IndexEntry> = archive
        .index
        .entries()
        .collect::<Result<_, _>>()
        .map_err(|e| format_err(&archive.path, e))?;
    let mut restored: BTreeMap<Vec<u8>, (Entry, PathBuf)> = match against {
        Some(dir) => walk(dir, b"rootimg", &WalkOptions::default())?
            .entries
            .into_iter()
            .map(|(e, p)| (e.path.clone(), (e, p)))
            .collect(),
        None => BTreeMap::new(),
    };
    let archive_path = archive.path.clone();
    // One chunk buffer for every file: allocating and zeroing 4 MiB per file was
    // most of verify's time on trees of many small files.
    let mut chunk = vec![0u8; DIGEST_CHUNK_BYTES as usize];
    let format = archive.index.format;
    let mut tar = StreamReader::new(format, archive.stream());
    let mut position = 0usize;
    while let Some(entry) = tar.next_entry()? {
        report.entries += 1;
        let shown = display_path(&entry.path);
        let Some(ix) = indexed.get(position) else {
            report
                .differences
                .push(format!("{shown}: in the archive but not in its index"));
            continue;
        };
        position += 1;
        if ix.path != entry.path {
            report.differences.push(format!(
                "{shown}: index names {} here",
                display_path(&ix.path)
            ));
        }
        let mut digest = None;
        if entry.kind == Kind::File {
            report.files += 1;
            let d = digest_reader(&mut tar.data(), &mut chunk)
                .map_err(|e| format_err(&archive_path, e))?;
            // v2 indexes have no per-file digest: members carry BLAKE3s, checked
            // as each member is inflated.
            if ix.digest.is_some_and(|x| x != d) {
                report
                    .differences
                    .push(format!("{shown}: content does not match the index digest"));
            }
            digest = Some(d);
        }
        if against.is_some() {
            match restored.remove(&entry.path) {
                None => report
                    .differences
                    .push(format!("{shown}: missing from the restored tree")),
                Some((disk, src)) => compare(
                    &entry,
                    digest,
                    (&disk, &src),
                    &mut chunk,
                    &mut report.differences,
                ),
            }
        }
    }
    if position != indexed.len() {
        report.differences.push(format!(
            "the index lists {} entries, the archive holds {position}",
            indexed.len()
        ));
    }
    for path in restored.keys() {
        report
            .differences
            .push(format!("{}: only in the restored tree", display_path(path)));
    }
    Ok(report)
}

/// The FORMAT.md §3.5 (v1) digest of a stream of stored bytes, read through `buf` (one
/// digest chunk long).
fn digest_reader(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<[u8; 32]> {
    let mut chunks = Vec::new();
    loop {
        let filled = crate::tree::io::fill(r, buf)?;
        if filled == 0 {
            break;
        }
        chunks.push(chunk_digest(&buf[..filled]));
        if filled < buf.len() {
            break;
        }
    }
    Ok(file_digest(&chunks))
}

/// Differences between an archived entry and what is on disk (`disk` read from
/// `src`), file content read through `chunk`.
fn compare(
    a: &Entry,
    digest: Option<[u8; 32]>,
    (disk, src): (&Entry, &Path),
    chunk: &mut [u8],
    out: &mut Vec<String>,
) {
    let shown = display_path(&a.path);
    let mut diff = |what: String| out.push(format!("{shown}: {what}"));
    if std::mem::discriminant(&a.kind) != std::mem::discriminant(&disk.kind) {
        diff(format!(
            "is {:?} in the archive, {:?} on disk",
            a.kind, disk.kind
        ));
        return;
    }
    if a.kind != disk.kind {
        diff(format!(
            "{:?} in the archive, {:?} on disk",
            a.kind, disk.kind
        ));
    }
    if matches!(a.kind, Kind::HardLink(_)) {
        return;
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
    let mut xa = a.xattrs.clone();
    xa.sort();
    let mut xd = disk.xattrs.clone();
    xd.sort();
    if xa != xd {
        let names = |x: &[(Vec<u8>, Vec<u8>)]| {
            x.iter()
                .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
                .collect::<Vec<_>>()
                .join(",")
        };
        diff(format!(
            "xattrs [{}] in the archive, [{}] on disk",
            names(&xa),
            names(&xd)
        ));
    }
    if a.kind == Kind::File {
        if a.size != disk.size {
            diff(format!(
                "size {} in the archive, {} on disk",
                a.size, disk.size
            ));
            return;
        }
        match stored_digest(src, a, chunk) {
            Ok(d) if Some(d) == digest => {}
            Ok(_) => diff("content differs".into()),
            Err(e) => diff(format!("cannot read: {e}")),
        }
    }
}

/// Digest of a file on disk as the archive stores it (sparse files: the archive's
/// data segments, read at their offsets).
fn stored_digest(path: &Path, a: &Entry, chunk: &mut [u8]) -> io::Result<[u8; 32]> {
    let f = File::open(path)?;
    match &a.sparse {
        None => digest_reader(&mut (&f).take(a.size), chunk),
        Some(map) => {
            let mut r = Segments {
                f: &f,
                map: map.clone(),
                at: 0,
                seg: 0,
            };
            digest_reader(&mut r, chunk)
        }
    }
}

struct Segments<'a> {
    f: &'a File,
    map: Vec<(u64, u64)>,
    seg: usize,
    at: u64,
}

impl Read for Segments<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(&(off, len)) = self.map.get(self.seg) {
            if self.at == len {
                self.seg += 1;
                self.at = 0;
                continue;
            }
            let want = buf.len().min((len - self.at) as usize);
            let n = self.f.read_at(&mut buf[..want], off + self.at)?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file is shorter than its sparse map",
                ));
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
    use crate::tree::encode::writer::{write_tree, WriteOptions};
    use crate::tree::restore::{restore_stream, RestoreOptions};
    use std::fs;
    use std::io::Cursor;

    /// A tree with a small file, a large one (several units), a sparse one, a
    /// symlink, a hard link; written with `codec` into memory.
    fn tree_bytes(codec: Codec) -> (tempfile::TempDir, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootimg");
        fs::create_dir_all(root.join("etc")).unwrap();
        fs::write(root.join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
        let big: Vec<u8> = (0..(9u32 << 20) / 4)
            .flat_map(|i| i.to_le_bytes())
            .collect();
        fs::write(root.join("big"), &big).unwrap();
        let sparse = fs::File::create(root.join("sparse")).unwrap();
        sparse.set_len(8 << 20).unwrap();
        sparse.write_all_at(b"middle", 4 << 20).unwrap();
        std::os::unix::fs::symlink("etc/hosts", root.join("link")).unwrap();
        fs::hard_link(root.join("etc/hosts"), root.join("hard")).unwrap();
        let mut out = Vec::new();
        let opts = WriteOptions {
            codec,
            threads: 2,
            ..WriteOptions::default()
        };
        write_tree(&root, &mut out, &opts).unwrap();
        (dir, out)
    }

    fn open(bytes: Vec<u8>) -> Result<TreeArchive, TreeError> {
        let len = bytes.len() as u64;
        TreeArchive::new(Cursor::new(bytes), len, Path::new("mem.tree"))
    }

    fn cat(ar: &mut TreeArchive, path: &[u8]) -> Result<Vec<u8>, TreeError> {
        let mut out = Vec::new();
        ar.cat(path, &mut out).map(|_| out)
    }

    #[test]
    fn lookup_and_cat_read_only_what_they_need_for_both_codecs() {
        for codec in [Codec::Gzip, Codec::Zstd] {
            let (dir, bytes) = tree_bytes(codec);
            let root = dir.path().join("rootimg");
            let mut ar = open(bytes).unwrap();
            assert_eq!(ar.codec(), codec);
            assert!(ar.index().members.len() > 1, "{codec:?}: several units");
            // Names with or without the top, with a leading or trailing slash.
            for name in [&b"etc/hosts"[..], b"/rootimg/etc/hosts", b"rootimg/etc/"] {
                assert!(ar.find(name).unwrap().is_some(), "{name:?}");
            }
            assert!(ar.find(b"etc/nope").unwrap().is_none());
            assert_eq!(
                cat(&mut ar, b"etc/hosts").unwrap(),
                b"127.0.0.1 localhost\n"
            );
            // A hard link is followed to its target; holes come back as zeros.
            assert_eq!(cat(&mut ar, b"hard").unwrap(), b"127.0.0.1 localhost\n");
            assert!(cat(&mut ar, b"big").unwrap() == fs::read(root.join("big")).unwrap());
            assert!(cat(&mut ar, b"sparse").unwrap() == fs::read(root.join("sparse")).unwrap());
            // Refusals: not a file, not there.
            let err = cat(&mut ar, b"link").unwrap_err();
            assert!(matches!(err, TreeError::Unsupported { .. }), "{err}");
            let err = cat(&mut ar, b"etc").unwrap_err();
            assert!(matches!(err, TreeError::Unsupported { .. }), "{err}");
            let err = cat(&mut ar, b"missing").unwrap_err();
            assert!(err.to_string().contains("not in mem.tree"), "{err}");
        }
    }

    #[test]
    fn verify_finds_nothing_on_a_good_tree_and_names_what_differs() {
        let (dir, bytes) = tree_bytes(Codec::Gzip);
        let restored = dir.path().join("restored");
        fs::create_dir(&restored).unwrap();
        restore_stream(
            &bytes[..],
            &restored,
            b"rootimg",
            &RestoreOptions::default(),
        )
        .unwrap();
        let mut ar = open(bytes.clone()).unwrap();
        let report = verify_archive(&mut ar, Some(&restored)).unwrap();
        assert!(report.ok(), "{:?}", report.differences);
        // rootimg, big, etc, etc/hosts, hard, link, sparse; the hard link is no file.
        assert_eq!((report.entries, report.files), (7, 3));
        // The restored tree changed: each difference names its path.
        fs::write(restored.join("etc/hosts"), b"127.0.0.2 localhost\n").unwrap();
        fs::write(restored.join("extra"), b"x").unwrap();
        let report = verify_archive(&mut ar, Some(&restored)).unwrap();
        let all = report.differences.join("\n");
        assert!(all.contains("rootimg/etc/hosts: content differs"), "{all}");
        assert!(
            all.contains("rootimg/extra: only in the restored tree"),
            "{all}"
        );
        // A damaged unit: its CRC fails where it is inflated.
        let mut bad = bytes;
        let (m, at, _) = ar.index().members[1];
        bad[(at + m.compressed / 2) as usize] ^= 0x55;
        let mut ar = open(bad).unwrap();
        assert!(verify_archive(&mut ar, None).is_err());
    }

    /// The v1 tree fixture (FORMAT.md §3.5): its per-file digests are still checked.
    #[test]
    fn v1_trees_still_verify() {
        let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tree-v1.gz");
        let bytes = fs::read(fixture).unwrap();
        let mut ar = open(bytes.clone()).unwrap();
        assert_eq!(ar.index().version(), 1);
        let report = verify_archive(&mut ar, None).unwrap();
        assert!(report.ok(), "{:?}", report.differences);
        assert_eq!((report.entries, report.files), (21, 6), "{report:?}");
        assert_eq!(cat(&mut ar, b"etc/motd").unwrap(), b"hello\n");
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
            &index::tests::encode_v1(&members, &entries),
            idx.data_end,
        ));
        let mut ar = open(bad).unwrap();
        let report = verify_archive(&mut ar, None).unwrap();
        assert_eq!(
            report.differences,
            ["rootimg/etc/motd: content does not match the index digest"]
        );
    }

    #[test]
    fn what_is_not_an_imgport_tree_is_refused_at_open() {
        let err = open(b"plain bytes, no index".to_vec()).err().unwrap();
        assert!(err.to_string().contains("no imgport tree index"), "{err}");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"a foreign gzip").unwrap();
        assert!(open(gz.finish().unwrap()).is_err());
    }
}

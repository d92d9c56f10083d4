//! Random access to an imgport tree archive through its index: list it or pull one
//! file out of it, reading only what each task needs. Verifying it is `verify.rs`'s
//! job, over the same [`TreeArchive`].
//!
//! Works over any `Read + Seek` holding a tree (a bare `rootimgtree.gz` /
//! `rootimgtree.zst`, or the bundle's view of its stored tree member: opening a bundle
//! is the bundle module's job); the codec is recognized from the tree's last bytes
//! ([`codec::detect`]).

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::tree::codec::{self, Codec, UnitDecoder};
use crate::tree::entry::Kind;
use crate::tree::error::{display_path, TreeError};
use crate::tree::format::index::{self, lock_source, Index, IndexEntry, SharedSource};

/// An indexed tree archive opened for random access.
pub struct TreeArchive {
    /// Shared with the index, which reads its blocks from it on demand.
    pub(super) src: SharedSource,
    pub(super) index: Index,
    pub(super) codec: Codec,
    pub(super) path: PathBuf,
}

pub(super) fn format_err(path: &Path, reason: impl ToString) -> TreeError {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::sample_tree;
    use crate::tree::encode::writer::{write_tree, WriteOptions};
    use std::fs;
    use std::io::Cursor;

    /// A tree with a small file, a large one (several units), a sparse one, a
    /// symlink, a hard link; written with `codec` into memory.
    fn tree_bytes(codec: Codec) -> (tempfile::TempDir, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootimg");
        sample_tree(&root, |i| i);
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
    fn what_is_not_an_imgport_tree_is_refused_at_open() {
        let err = open(b"plain bytes, no index".to_vec()).err().unwrap();
        assert!(err.to_string().contains("no imgport tree index"), "{err}");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"a foreign gzip").unwrap();
        assert!(open(gz.finish().unwrap()).is_err());
    }
}

//! Restore a root-tree archive (tar or cpio newc) into a directory, as root, safely
//! and losslessly.
//!
//! Safety: every entry is created relative to directory file descriptors opened
//! with `O_DIRECTORY|O_NOFOLLOW`, walking from the destination one component at a
//! time, so no path is ever resolved through a symlink (or anything else) the
//! archive created. Names are checked before use (`..`, absolute, NUL, outside the
//! top directory), and hard links may only point at earlier entries of the same
//! archive.
//!
//! Fidelity: per entry, data → owner → mode → xattrs → times, because chown and
//! write clear setuid bits and `security.capability`, and chmod rewrites the ACL
//! mask. Directory metadata is applied last, children before parents, because
//! creating entries changes a directory's mtime.
//!
//! Parallelism (`RestoreOptions::threads` > 1): one *dispatcher*, the calling thread,
//! decodes the archive in order and does everything whose order matters: name checks,
//! the directory walk, directories, symlinks, devices, FIFOs, hard links, replacing
//! earlier entries, and directory metadata at the end. Regular files go to a pool of
//! workers, each creating its file (`O_CREAT|O_EXCL|O_NOFOLLOW` relative to the parent
//! directory fd the dispatcher opened) and writing data and metadata. The rules that
//! keep this exactly as strict as the sequential restore:
//! - while a worker still owns a name, no later entry touches it: an entry of the same
//!   name, a hard link to it, or a path through it waits for the worker first;
//! - a worker only ever creates a name nobody has used yet (the dispatcher removes
//!   earlier entries of the name itself), so `O_EXCL` never races;
//! - a directory into which files were dispatched is never replaced: sequentially it
//!   would be non-empty, so the same [`TreeError::Unsupported`] is returned;
//! - directory metadata is applied only after every worker has finished.
//!
//! Files up to `JOB_CHUNK` (1 MiB) of stored data travel as one job; bigger ones are
//! created by the dispatcher and written by workers in `JOB_CHUNK` pieces with
//! `pwrite`, the last piece to finish applying the metadata.
//!
//! Files: this one holds the entry points (format and codec detection, the final
//! drain); `units.rs` the ordered parallel unit decoder for every codec;
//! `dispatch.rs` the dispatcher, in its sequential and parallel modes; `pool.rs` the
//! file-writer pool; `at.rs` the `*at` helpers and the metadata order.

mod at;
mod dispatch;
mod options;
mod pool;
pub(crate) mod sidecar;
pub mod units;

use std::io::{self, BufReader, Cursor, Read};
use std::path::Path;

pub use dispatch::restore_entries;
pub use options::{RestoreOptions, RestoreStats};
pub use sidecar::restore_newc_with_sidecar;

use crate::tree::codec::gzip_split::{is_member_stream, MemberSplitter};
use crate::tree::codec::zstd_frames::FrameScanner;
use crate::tree::codec::Codec;
use crate::tree::error::TreeError;
use crate::tree::format::newc::CpioReader;
use crate::tree::format::tar_decode::{is_tar_header, TarReader};
use crate::tree::io::fill;

/// Read buffer between the (decompressed) archive and the decoders.
const STREAM_BUF: usize = 256 * 1024;
/// Restores an uncompressed archive read from `input` into `dest`, which must be an
/// existing (normally empty) directory standing for the archive's `top` directory
/// (`rootimg`): the `top` entry's metadata is applied to `dest` itself, and entries
/// outside `top/` are refused.
///
/// The format is detected from the first bytes: tar (ustar magic at offset 257, or a
/// valid old-style header) or cpio newc/crc (`07070[12]`). Files are written by
/// `opts.threads` workers, see [`restore_entries`].
pub fn restore(
    input: impl Read,
    dest: &Path,
    top: &[u8],
    opts: &RestoreOptions,
) -> Result<RestoreStats, TreeError> {
    restore_detect(input, true, dest, top, opts)
}

/// The first block of an archive (fewer bytes if it is shorter), for format detection.
fn read_head(input: &mut impl Read) -> Result<Vec<u8>, TreeError> {
    let mut head = vec![0u8; 512];
    let n = fill(input, &mut head).map_err(|e| TreeError::Format {
        entry: "<start of archive>".into(),
        reason: format!("read error: {e}"),
    })?;
    head.truncate(n);
    Ok(head)
}

/// [`restore`], with the stream wrapped in a read buffer or not (a source that
/// already hands out large chunks needs no extra copy).
fn restore_detect(
    mut input: impl Read,
    buffered: bool,
    dest: &Path,
    top: &[u8],
    opts: &RestoreOptions,
) -> Result<RestoreStats, TreeError> {
    let head = read_head(&mut input)?;
    let is_tar = is_tar_header(&head);
    let is_cpio = head.starts_with(b"070701") || head.starts_with(b"070702");
    if is_tar || is_cpio {
        let chained = Cursor::new(head).chain(input);
        return if buffered {
            restore_archive(
                BufReader::with_capacity(STREAM_BUF, chained),
                is_tar,
                dest,
                top,
                opts,
            )
        } else {
            restore_archive(chained, is_tar, dest, top, opts)
        };
    }
    if head.is_empty() {
        return Err(TreeError::Format {
            entry: "<start of archive>".into(),
            reason: "empty archive".into(),
        });
    }
    if head.len() == 512 && head.iter().all(|&b| b == 0) {
        // A tar end marker first: a tar of no entries.
        return Err(TreeError::Format {
            entry: "<start of archive>".into(),
            reason: "empty tar: the tree holds no entries".into(),
        });
    }
    match cpio_dialect(&head) {
        Some(dialect) => Err(TreeError::UnsupportedInput {
            entry: "<start of archive>".into(),
            reason: format!("{dialect} cpio; only newc (070701) and crc (070702) are supported"),
        }),
        None => Err(TreeError::Format {
            entry: "<start of archive>".into(),
            reason: "neither a tar nor a cpio newc archive".into(),
        }),
    }
}

/// The name of a cpio dialect other than newc/crc that `head` starts with.
fn cpio_dialect(head: &[u8]) -> Option<&'static str> {
    // The binary format's magic is the 16-bit word 0o070707 in the writer's byte order.
    const BINARY: u16 = 0o070707;
    if head.starts_with(b"070707") {
        Some("old portable (odc, 070707)")
    } else if head.starts_with(&BINARY.to_le_bytes()) {
        Some("old binary (little-endian)")
    } else if head.starts_with(&BINARY.to_be_bytes()) {
        Some("old binary (big-endian)")
    } else {
        None
    }
}

fn restore_archive(
    stream: impl Read,
    is_tar: bool,
    dest: &Path,
    top: &[u8],
    opts: &RestoreOptions,
) -> Result<RestoreStats, TreeError> {
    if is_tar {
        let mut r = TarReader::new(stream);
        let stats = restore_entries(&mut r, dest, top, opts)?;
        drain(r.into_inner())?;
        Ok(stats)
    } else {
        let mut r = CpioReader::new(stream);
        let stats = restore_entries(&mut r, dest, top, opts)?;
        drain(r.into_inner())?;
        Ok(stats)
    }
}

/// Restores a tree archive in any form imgport reads, detected from its first bytes:
///
/// - imgport members (`rootimgtree.gz` as imgport writes it, FORMAT.md §2): members are
///   decoded by `opts.threads` workers (the ordered decoder, `units.rs`) while files are
///   written by as many more; index and footer members are skipped;
/// - any other gzip (xCAT's single-member `rootimgtree.gz`, pigz, GNU gzip): inflated
///   by flate2 streaming on the calling thread, **single-threaded** (a gzip member
///   without a length cannot be split), files still written by the workers;
/// - plain tar or cpio newc.
///
/// `input` need not be `Send` (the bundle's member reader is not): it is only ever
/// read on the calling thread. Memory: about `2 × threads` compressed + decoded
/// members and `4 × threads` file jobs of at most 1 MiB in flight.
/// Errors name the entry (and for a damaged member, the member index and offset);
/// everything read after the archive's end is still checked (CRCs, trailers).
pub fn restore_stream(
    mut input: impl Read,
    dest: &Path,
    top: &[u8],
    opts: &RestoreOptions,
) -> Result<RestoreStats, TreeError> {
    let head = read_head(&mut input)?;
    let members = is_member_stream(&head);
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let chained = Cursor::new(head).chain(input);
    if members {
        let splitter = MemberSplitter::new(chained);
        units::decode_units(splitter, Codec::Gzip, opts.effective_threads(), |decoded| {
            restore_detect(decoded, false, dest, top, opts)
        })
    } else if gzip {
        restore(flate2::read::MultiGzDecoder::new(chained), dest, top, opts)
    } else {
        restore(chained, dest, top, opts)
    }
}

/// Restores the tar held in the zstd stream `input` (a `rootimgtree.zst`, or any zstd
/// stream of a pax tar) into `dest`, as [`restore`] does for a plain archive: `dest`
/// stands for the archive's `top` directory. Frames are cut on the calling thread
/// (`input` need not be `Send`) and decompressed by `opts.threads` workers through
/// the same ordered decoder as gzip members; skippable frames (index, footer, seek
/// table) are read past, and every frame's checksum is checked by libzstd.
///
/// Errors: a stream that is not zstd, is cut short or fails a checksum (reported as a
/// read error of the archive, even after the tar's last entry, so a damaged tail is
/// not silently accepted), and every restore error.
pub fn restore_zstd(
    input: impl Read,
    dest: &Path,
    top: &[u8],
    opts: &RestoreOptions,
) -> Result<RestoreStats, TreeError> {
    let splitter = FrameScanner::new(input);
    units::decode_units(splitter, Codec::Zstd, opts.effective_threads(), |decoded| {
        restore_archive(decoded, true, dest, top, opts)
    })
}

/// Reads what follows the end-of-archive marker, so a corrupt or truncated gzip
/// trailer (CRC, length), or a member that fails its check there, is reported
/// instead of silently accepted. Verify shares it so both report the same error.
pub(crate) fn drain(mut rest: impl Read) -> Result<(), TreeError> {
    io::copy(&mut rest, &mut io::sink())
        .map(|_| ())
        .map_err(|e| TreeError::Format {
            entry: "<end of archive>".into(),
            reason: format!("stream error after the last entry: {e}"),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    use crate::testkit::raw_tar_entry as entry;

    fn archive(entries: &[Vec<u8>]) -> Vec<u8> {
        let mut out = entries.concat();
        out.extend_from_slice(&[0u8; 1024]);
        out
    }

    fn opts(threads: usize) -> RestoreOptions {
        RestoreOptions {
            threads,
            ..RestoreOptions::default()
        }
    }

    fn small_tree() -> Vec<u8> {
        use tar::EntryType as T;
        archive(&[
            entry(b"rootimg/", T::Directory, b"", b"", 0o755),
            entry(b"rootimg/etc/", T::Directory, b"", b"", 0o750),
            entry(
                b"rootimg/etc/passwd",
                T::Regular,
                b"root:x:0:0\n",
                b"",
                0o644,
            ),
            entry(
                b"rootimg/etc/big",
                T::Regular,
                &vec![7u8; 3 << 20],
                b"",
                0o600,
            ),
            entry(b"rootimg/etc/link", T::Symlink, b"", b"passwd", 0o777),
            entry(
                b"rootimg/etc/hard",
                T::Link,
                b"",
                b"rootimg/etc/passwd",
                0o644,
            ),
            entry(b"rootimg/run/fifo", T::Fifo, b"", b"", 0o600),
        ])
    }

    #[test]
    fn a_small_tar_restores_the_same_with_any_thread_count() {
        for threads in [1, 3] {
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path();
            let stats = restore(&small_tree()[..], dest, b"rootimg", &opts(threads)).unwrap();
            assert_eq!(stats.entries, 7, "threads={threads}");
            assert_eq!(stats.bytes, 11 + (3 << 20));
            // `run/` was missing from the archive: created, with a warning.
            assert_eq!(stats.warnings.len(), 1, "{:?}", stats.warnings);
            assert!(stats.warnings[0].contains("rootimg/run"));
            let passwd = dest.join("etc/passwd");
            assert_eq!(fs::read(&passwd).unwrap(), b"root:x:0:0\n");
            assert_eq!(fs::read(dest.join("etc/big")).unwrap().len(), 3 << 20);
            let md = fs::metadata(&passwd).unwrap();
            assert_eq!((md.mode() & 0o7777, md.mtime()), (0o644, 1_000_000));
            assert_eq!(fs::metadata(dest.join("etc/hard")).unwrap().ino(), md.ino());
            assert_eq!(
                fs::read_link(dest.join("etc/link")).unwrap(),
                Path::new("passwd")
            );
            assert!(fs::symlink_metadata(dest.join("run/fifo"))
                .unwrap()
                .file_type()
                .is_fifo());
            // Directory metadata comes last, so the directory keeps its archived mode
            // and mtime although entries were created in it.
            let etc = fs::metadata(dest.join("etc")).unwrap();
            assert_eq!(
                (etc.permissions().mode() & 0o7777, etc.mtime()),
                (0o750, 1_000_000)
            );
            assert_eq!(
                fs::metadata(dest).unwrap().permissions().mode() & 0o7777,
                0o755
            );
        }
    }

    use std::os::unix::fs::FileTypeExt;

    /// Restores `tar` into a fresh directory; the error, and whether anything was
    /// written outside that directory.
    fn refused(tar: &[u8], threads: usize) -> TreeError {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("rootimg");
        fs::create_dir(&dest).unwrap();
        let err = restore(tar, &dest, b"rootimg", &opts(threads)).unwrap_err();
        let outside: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(outside, ["rootimg"], "nothing outside the destination");
        err
    }

    #[test]
    fn unsafe_names_and_links_are_refused() {
        use tar::EntryType as T;
        let top = entry(b"rootimg/", T::Directory, b"", b"", 0o755);
        let cases: [(Vec<u8>, &str); 4] = [
            (
                entry(b"rootimg/../evil", T::Regular, b"x", b"", 0o644),
                "'..'",
            ),
            (
                entry(b"other/file", T::Regular, b"x", b"", 0o644),
                "outside",
            ),
            (
                entry(b"rootimg/h", T::Link, b"", b"rootimg/later", 0o644),
                "not an earlier entry",
            ),
            (
                entry(b"/rootimg/abs", T::Regular, b"x", b"", 0o644),
                "absolute",
            ),
        ];
        for (bad, why) in cases {
            for threads in [1, 2] {
                let err = refused(&archive(&[top.clone(), bad.clone()]), threads);
                assert!(matches!(err, TreeError::Unsafe { .. }), "{err}");
                assert!(err.to_string().contains(why), "{why}: {err}");
            }
        }
        // A path through a symlink the archive made is refused, not followed.
        let through = archive(&[
            top.clone(),
            entry(b"rootimg/l", T::Symlink, b"", b"/tmp", 0o777),
            entry(b"rootimg/l/x", T::Regular, b"x", b"", 0o644),
        ]);
        let err = refused(&through, 1);
        assert!(err.to_string().contains("symlink"), "{err}");
        // The top entry must be a directory.
        let err = refused(
            &archive(&[entry(b"rootimg", T::Regular, b"", b"", 0o644)]),
            1,
        );
        assert!(err.to_string().contains("top entry"), "{err}");
    }

    #[test]
    fn what_is_not_an_archive_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let run = |bytes: &[u8]| restore_stream(bytes, dir.path(), b"rootimg", &opts(1));
        let err = run(b"").unwrap_err().to_string();
        assert!(err.contains("empty archive"), "{err}");
        let err = run(b"070707 old portable cpio").unwrap_err();
        assert!(matches!(err, TreeError::UnsupportedInput { .. }), "{err}");
        assert!(err.to_string().contains("odc"), "{err}");
        for (bytes, name) in [
            (b"\xc7\x71rest", "little-endian"),
            (b"\x71\xc7rest", "big-endian"),
        ] {
            let err = run(bytes).unwrap_err();
            assert!(matches!(err, TreeError::UnsupportedInput { .. }), "{err}");
            assert!(err.to_string().contains(name), "{err}");
        }
        let err = run(&[0u8; 1024]).unwrap_err().to_string();
        assert!(err.contains("no entries"), "{err}");
        let err = run(&[b'x'; 600]).unwrap_err().to_string();
        assert!(err.contains("neither a tar nor a cpio"), "{err}");
        let err = restore(&small_tree()[..], dir.path(), b"../up", &opts(1)).unwrap_err();
        assert!(err.to_string().contains("invalid top directory"), "{err}");
    }

    #[test]
    fn a_damaged_gzip_tail_is_reported_after_the_last_entry() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &small_tree()).unwrap();
        let mut bytes = gz.finish().unwrap();
        let n = bytes.len();
        bytes[n - 6] ^= 0xff; // the CRC32 in the trailer
        let dir = tempfile::tempdir().unwrap();
        let err = restore_stream(&bytes[..], dir.path(), b"rootimg", &opts(2)).unwrap_err();
        assert!(err.to_string().contains("after the last entry"), "{err}");
    }
}

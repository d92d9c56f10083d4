//! Restoring a cpio newc tree with its metadata sidecar (FORMAT.md §7): the sidecar's
//! records are merged into the entries as the newc decoder hands them out, so the one
//! restorer applies xattrs, capabilities, nanosecond times and holes in its usual order
//! (ARCHIVING.md §5) as for a pax tree. Nothing is applied after the fact.

use std::io::{BufReader, Cursor, Read};
use std::path::Path;

use super::{drain, read_head, restore_entries, RestoreOptions, RestoreStats, STREAM_BUF};
use crate::tree::entry::{Entry, Kind};
use crate::tree::error::{display_path, TreeError};
use crate::tree::format::newc::{clamp_mtime, CpioReader};
use crate::tree::format::sidecar::{Record, SidecarReader, SIDECAR_MEMBER};
use crate::tree::format::tar_decode::EntryReader;

/// The member the sidecar describes, for error messages.
const TREE_MEMBER: &str = "rootimgtree.gz";

/// A sidecar that does not describe the tree it came with.
fn mismatch(detail: impl Into<String>) -> TreeError {
    TreeError::Format {
        entry: SIDECAR_MEMBER.into(),
        reason: format!(
            "does not belong to the {TREE_MEMBER} beside it ({}); both must come from the \
             same export",
            detail.into()
        ),
    }
}

/// Where the reading of a sparse file's dense newc data stands.
struct Holes {
    map: Vec<(u64, u64)>,
    seg: usize,
    /// Logical offset in the file of the next dense byte.
    pos: u64,
    path: Vec<u8>,
}

/// A newc decoder whose entries carry their sidecar records; see the module docs.
/// `verify` reads a newc tree through it too, so what it compares a restored tree
/// with is what restore applied.
pub(crate) struct WithSidecar<R: Read, S: Read> {
    cpio: CpioReader<R>,
    meta: SidecarReader<S>,
    holes: Option<Holes>,
    scratch: Vec<u8>,
}

impl<R: Read, S: Read> WithSidecar<R, S> {
    /// Decodes the uncompressed newc stream `plain` with the records of `meta`
    /// merged in.
    pub(crate) fn new(plain: R, meta: SidecarReader<S>) -> WithSidecar<R, S> {
        WithSidecar {
            cpio: CpioReader::new(plain).digesting_headers(),
            meta,
            holes: None,
            scratch: Vec::new(),
        }
    }

    /// The stream after the newc trailer, once [`EntryReader::next_entry`] returned
    /// `None` (which is when the sidecar's last checks ran).
    pub(crate) fn into_inner(self) -> R {
        self.cpio.into_inner()
    }

    fn merge(&mut self, e: &mut Entry, r: Record) -> Result<(), TreeError> {
        if r.path != e.path {
            return Err(mismatch(format!(
                "record for {} where the tree has {}",
                display_path(&r.path),
                display_path(&e.path)
            )));
        }
        if i64::from(clamp_mtime(r.mtime.secs)) != e.mtime.secs {
            return Err(mismatch(format!(
                "{}: mtime {} where the tree has {}",
                display_path(&e.path),
                r.mtime.secs,
                e.mtime.secs
            )));
        }
        e.mtime = r.mtime;
        e.uname = r.uname;
        e.gname = r.gname;
        e.xattrs = r.xattrs;
        if let Some(map) = r.sparse {
            let end = map.last().map_or(0, |&(o, l)| o + l);
            if e.kind != Kind::File || end > e.size {
                return Err(mismatch(format!(
                    "{}: hole map for a {} of {} bytes",
                    display_path(&e.path),
                    if e.kind == Kind::File {
                        "file"
                    } else {
                        "non-file"
                    },
                    e.size
                )));
            }
            self.holes = Some(Holes {
                map: map.clone(),
                seg: 0,
                pos: 0,
                path: e.path.clone(),
            });
            e.sparse = Some(map);
        }
        Ok(())
    }

    /// Reads `n` bytes of a hole from the dense stream; they must be zeros.
    fn skip_hole(&mut self, mut n: u64) -> Result<(), TreeError> {
        self.scratch.resize(64 * 1024, 0);
        while n > 0 {
            let want = usize::try_from(n)
                .unwrap_or(usize::MAX)
                .min(self.scratch.len());
            let got = self.cpio.read_data(&mut self.scratch[..want])?;
            if got == 0 {
                return Ok(());
            }
            if self.scratch[..got].iter().any(|&b| b != 0) {
                let path = self.holes.as_ref().map(|h| h.path.clone());
                return Err(mismatch(format!(
                    "{}: data where the sidecar has a hole",
                    display_path(&path.unwrap_or_default())
                )));
            }
            n -= got as u64;
        }
        Ok(())
    }

    fn end(&mut self) -> Result<(), TreeError> {
        if let Some(r) = self.meta.next_record()? {
            return Err(mismatch(format!(
                "record for {}, which the tree does not hold",
                display_path(&r.path)
            )));
        }
        if self.cpio.header_digest() != Some(self.meta.digest()) {
            return Err(mismatch("digest of the newc headers differs"));
        }
        Ok(())
    }
}

impl<R: Read, S: Read> EntryReader for WithSidecar<R, S> {
    fn next_entry(&mut self) -> Result<Option<Entry>, TreeError> {
        self.holes = None;
        let Some(mut e) = self.cpio.next_entry()? else {
            self.end()?;
            return Ok(None);
        };
        if matches!(e.kind, Kind::HardLink(_)) {
            return Ok(Some(e));
        }
        let Some(r) = self.meta.next_record()? else {
            return Err(mismatch(format!("no record for {}", display_path(&e.path))));
        };
        self.merge(&mut e, r)?;
        Ok(Some(e))
    }

    /// Dense data as it is, or for a sparse file only its data segments (the restorer
    /// reads exactly those), the zeros of the holes read past and checked.
    fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, TreeError> {
        loop {
            let Some(h) = &mut self.holes else {
                return self.cpio.read_data(buf);
            };
            let Some(&(off, len)) = h.map.get(h.seg) else {
                return Ok(0);
            };
            if h.pos < off {
                let gap = off - h.pos;
                h.pos = off;
                self.skip_hole(gap)?;
                continue;
            }
            if h.pos >= off + len {
                h.seg += 1;
                continue;
            }
            let want = usize::try_from(off + len - h.pos)
                .unwrap_or(usize::MAX)
                .min(buf.len());
            let n = self.cpio.read_data(&mut buf[..want])?;
            h.pos += n as u64;
            return Ok(n);
        }
    }

    fn take_warnings(&mut self) -> Vec<String> {
        self.cpio.take_warnings()
    }
}

/// Restores a `rootimgtree.gz` written with a sidecar (gzip'd cpio newc, one or more
/// members) into `dest`, as [`super::restore`] does, with the metadata of `sidecar`
/// (the `rootimgtree.meta` member) applied to each entry: xattrs (capabilities, SELinux
/// labels, ACLs), nanosecond mtimes, owner names, holes.
///
/// Errors: those of [`super::restore`]; a tree that is not cpio newc; a sidecar that is
/// damaged or hostile ([`TreeError::Format`] naming `rootimgtree.meta`) or does not
/// describe this tree: paths, mtimes, hole maps or the header digest differ (also a
/// [`TreeError::Format`], naming both members). The sidecar is read as the tree is, so
/// a mismatch may be found after entries were restored: the caller discards `dest`.
pub fn restore_newc_with_sidecar(
    mut input: impl Read,
    sidecar: impl Read,
    dest: &Path,
    top: &[u8],
    opts: &RestoreOptions,
) -> Result<RestoreStats, TreeError> {
    let meta = SidecarReader::new(sidecar)?;
    let head = read_head(&mut input)?;
    let gzip = head.starts_with(&[0x1f, 0x8b]);
    let chained = Cursor::new(head).chain(input);
    let plain: Box<dyn Read> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(chained))
    } else {
        Box::new(chained)
    };
    let mut plain = BufReader::with_capacity(STREAM_BUF, plain);
    let head = read_head(&mut plain)?;
    if !head.starts_with(b"070701") {
        return Err(mismatch(format!("{TREE_MEMBER} is not cpio newc")));
    }
    let mut r = WithSidecar::new(Cursor::new(head).chain(plain), meta);
    let stats = restore_entries(&mut r, dest, top, opts)?;
    drain(r.into_inner())?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::encode::newc::{prepare_newc, NewcOptions};
    use std::fs;
    use std::os::unix::fs::MetadataExt;
    use std::time::{Duration, UNIX_EPOCH};

    /// `<parent>/rootimg` with a file `f` of 1 MiB: data at both ends and, when
    /// `holey`, a hole between them, else non-zero bytes there. Same size, mode and
    /// mtime either way, so both trees have the same newc headers.
    fn tree(parent: &Path, holey: bool) -> std::path::PathBuf {
        let root = parent.join("rootimg");
        fs::create_dir_all(&root).unwrap();
        let f = root.join("f");
        let mut data = vec![if holey { 0 } else { 7 }; 1 << 20];
        data[..4096].fill(1);
        data[(1 << 20) - 4096..].fill(2);
        if holey {
            let file = fs::File::create(&f).unwrap();
            use std::os::unix::fs::FileExt;
            file.write_all_at(&data[..4096], 0).unwrap();
            file.write_all_at(&data[(1 << 20) - 4096..], (1 << 20) - 4096)
                .unwrap();
        } else {
            fs::write(&f, &data).unwrap();
        }
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        fs::File::options()
            .write(true)
            .open(&f)
            .unwrap()
            .set_modified(t)
            .unwrap();
        fs::File::open(&root).unwrap().set_modified(t).unwrap();
        root
    }

    fn restore_with(tree_of: &Path, sidecar_of: &Path, dest: &Path) -> Result<(), TreeError> {
        let meta = prepare_newc(sidecar_of, &NewcOptions::default())?.sidecar()?;
        let mut gz = Vec::new();
        prepare_newc(tree_of, &NewcOptions::default())?.write_gz(&mut gz)?;
        fs::create_dir_all(dest).unwrap();
        let opts = RestoreOptions {
            threads: 1,
            ..Default::default()
        };
        restore_newc_with_sidecar(gz.as_slice(), meta.as_slice(), dest, b"rootimg", &opts)
            .map(|_| ())
    }

    #[test]
    fn holes_and_nanoseconds_come_back() {
        let t = tempfile::tempdir().unwrap();
        let src = tree(&t.path().join("a"), true);
        let dest = t.path().join("out");
        restore_with(&src, &src, &dest).unwrap();
        let (a, b) = (
            fs::metadata(src.join("f")).unwrap(),
            fs::metadata(dest.join("f")).unwrap(),
        );
        assert_eq!(
            fs::read(src.join("f")).unwrap(),
            fs::read(dest.join("f")).unwrap()
        );
        assert_eq!((a.mtime(), a.mtime_nsec()), (b.mtime(), b.mtime_nsec()));
        assert!(
            b.blocks() < a.size() / 512,
            "restored dense: {} blocks",
            b.blocks()
        );
    }

    #[test]
    fn data_where_the_sidecar_has_a_hole_is_refused() {
        let t = tempfile::tempdir().unwrap();
        let holey = tree(&t.path().join("a"), true);
        let dense = tree(&t.path().join("b"), false);
        let err = restore_with(&dense, &holey, &t.path().join("out"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rootimgtree.meta") && err.contains("rootimgtree.gz"),
            "{err}"
        );
        assert!(err.contains("data where the sidecar has a hole"), "{err}");
    }
}

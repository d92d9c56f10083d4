//! Opening the statelite tree of a bundle for random access: the bundle footer says
//! where the tree's stored member is, and [`StoredView`] reads it in place. This is the
//! only place that joins the two layers, and only in this direction: the tree engine
//! reads any `Read + Seek` and knows nothing of bundles.

use std::fs::File;
use std::io::Seek;
use std::path::Path;

use super::footer;
use super::reader::{BundleReader, Flow};
use super::view::StoredView;
use crate::tree::{
    verify_with, StreamFormat, TreeArchive, TreeError, VerifyOptions, VerifyReport, SIDECAR_MEMBER,
};

/// Opens the tree of the bundle at `path` or, when the file has no bundle footer, the
/// file itself as a bare `rootimgtree.gz` / `rootimgtree.zst`. Reads the footers (and
/// the zstd seek table) and the tree's index only.
pub fn open_tree(path: &Path) -> Result<TreeArchive, TreeError> {
    let mut file = File::open(path).map_err(|e| TreeError::io(path, e))?;
    let len = file.metadata().map_err(|e| TreeError::io(path, e))?.len();
    match footer::read_location(&mut file, len).map_err(|e| TreeError::io(path, e))? {
        Some(loc) => TreeArchive::new(StoredView::new(file, loc), loc.len, path),
        None => TreeArchive::new(file, len, path),
    }
}

/// Verifies `archive`, the tree [`open_tree`] opened from `path`, on `threads`
/// decode workers (0: one per core) and, with `against`, a restored tree against it.
/// A newc tree is read with the `rootimgtree.meta` sidecar its bundle carries before
/// it (FORMAT.md §7), so what is compared is what import restored: xattrs,
/// nanosecond mtimes and holes from the sidecar, and the sidecar is checked against
/// its tree. The sidecar is streamed from a second reading of the bundle, in step
/// with the tree; a bare tree, a pax tree and a newc tree without a sidecar (made by
/// xCAT) are verified on their own.
///
/// Errors: those of [`verify_with`]; a bundle that cannot be read up to its sidecar
/// is [`TreeError::Format`] naming the bundle.
pub fn verify_tree(
    path: &Path,
    archive: &mut TreeArchive,
    against: Option<&Path>,
    threads: usize,
) -> Result<VerifyReport, TreeError> {
    let alone = VerifyOptions {
        against,
        threads,
        sidecar: None,
    };
    if archive.index().format != StreamFormat::Newc {
        return verify_with(archive, alone);
    }
    let mut file = File::open(path).map_err(|e| TreeError::io(path, e))?;
    let len = file.metadata().map_err(|e| TreeError::io(path, e))?.len();
    let bundled = footer::read_location(&mut file, len).map_err(|e| TreeError::io(path, e))?;
    if bundled.is_none() {
        return verify_with(archive, alone);
    }
    file.rewind().map_err(|e| TreeError::io(path, e))?;
    let bundle_err = |e: crate::error::Error| TreeError::Format {
        entry: path.display().to_string(),
        reason: e.to_string(),
    };
    let mut result = None;
    BundleReader::new(file)
        .map_err(bundle_err)?
        .for_each(|member| {
            if member.rel == SIDECAR_MEMBER {
                let opts = VerifyOptions {
                    against,
                    threads,
                    sidecar: Some(Box::new(member.data)),
                };
                result = Some(verify_with(archive, opts));
                return Ok(Flow::Stop);
            }
            // The sidecar comes before its tree; past the tree, there is none to use.
            if crate::tree::Codec::from_tree_file_name(&member.rel).is_some() {
                return Ok(Flow::Stop);
            }
            Ok(Flow::Continue)
        })
        .map_err(bundle_err)?;
    match result {
        Some(report) => report,
        None => verify_with(archive, alone),
    }
}

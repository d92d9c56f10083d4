//! Opening the statelite tree of a bundle for random access: the bundle footer says
//! where the tree's stored member is, and [`StoredView`] reads it in place. This is the
//! only place that joins the two layers, and only in this direction: the tree engine
//! reads any `Read + Seek` and knows nothing of bundles.

use std::fs::File;
use std::path::Path;

use super::footer;
use super::view::StoredView;
use crate::tree::{TreeArchive, TreeError};

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

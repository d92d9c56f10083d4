//! What a bundle holds, read from its head (the manifests and the payload headers
//! before the tree) and the tree's index, for `imgport inspect`. The statelite tree
//! itself, almost all of a bundle's bytes, is never read.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use super::reader::{BundleReader, Flow, MemberKind};
use super::view::StoredView;
use super::{footer, MANIFEST_NAME};
use crate::error::{Error, Result};
use crate::manifest::Manifest;
use crate::tree::{read_tree_index, Codec, Index, Kind};

/// One image directory of a bundle.
#[derive(Debug, Clone)]
pub struct ImageSummary {
    /// The bundle directory (`<IMG>`).
    pub dir: String,
    pub manifest: Option<Manifest>,
    /// Payload files seen before the tree, with their sizes.
    pub files: Vec<(String, u64)>,
}

/// The statelite tree, from its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeSummary {
    pub entries: u64,
    pub files: u64,
    /// Logical bytes of the files (holes included).
    pub file_bytes: u64,
    /// Bytes of the uncompressed tar.
    pub tar_bytes: u64,
    /// Bytes of `rootimgtree.gz` (or `.zst`).
    pub compressed_bytes: u64,
    pub members: u64,
}

/// What `inspect` reports.
#[derive(Debug, Clone)]
pub struct Summary {
    pub bundle_bytes: u64,
    /// `imgport-1` for bundles with an indexed tree, `xcat` otherwise.
    pub format: &'static str,
    pub images: Vec<ImageSummary>,
    pub tree: Option<TreeSummary>,
}

/// Reads the summary of the bundle at `path`.
pub fn summarize(path: &Path) -> Result<Summary> {
    let mut file = super::open_file(path, path)?;
    let bundle_bytes = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let loc = footer::read_location(&mut file, bundle_bytes).map_err(|e| Error::io(path, e))?;
    let tree = match loc {
        Some(loc) => {
            let f = File::open(path).map_err(|e| Error::io(path, e))?;
            let view = StoredView::new(f, loc);
            let (_, index) = read_tree_index(crate::tree::share_source(view), loc.len)
                .map_err(|e| Error::Bundle(format!("{}: {e}", path.display())))?;
            Some(tree_summary(&index, loc.len)?)
        }
        None => None,
    };
    file.seek(SeekFrom::Start(0))
        .map_err(|e| Error::io(path, e))?;
    let mut images: Vec<ImageSummary> = Vec::new();
    BundleReader::new(file)?.for_each(|m| {
        if loc.is_some() && Codec::from_tree_file_name(&m.rel).is_some() {
            // Everything after the tree is small, but reaching it means reading the tree.
            return Ok(Flow::Stop);
        }
        let pos = match images.iter().position(|i| i.dir == m.image_dir) {
            Some(p) => p,
            None => {
                images.push(ImageSummary {
                    dir: m.image_dir.clone(),
                    manifest: None,
                    files: Vec::new(),
                });
                images.len() - 1
            }
        };
        let image = &mut images[pos];
        if m.rel == MANIFEST_NAME {
            let mut xml = Vec::new();
            m.data
                .take(16 << 20)
                .read_to_end(&mut xml)
                .map_err(|e| Error::io(path, e))?;
            image.manifest = Some(Manifest::parse(&xml)?);
        } else if m.kind == MemberKind::File {
            image.files.push((m.rel.clone(), m.size));
        }
        Ok(Flow::Continue)
    })?;
    Ok(Summary {
        bundle_bytes,
        format: if tree.is_some() { "imgport-1" } else { "xcat" },
        images,
        tree,
    })
}

fn tree_summary(index: &Index, compressed: u64) -> Result<TreeSummary> {
    let mut s = TreeSummary {
        entries: 0,
        files: 0,
        file_bytes: 0,
        tar_bytes: index.members.iter().map(|(m, _, _)| m.uncompressed).sum(),
        compressed_bytes: compressed,
        members: index.members.len() as u64,
    };
    for e in index.entries() {
        let e = e.map_err(|e| Error::Bundle(e.to_string()))?;
        s.entries += 1;
        if e.kind == Kind::File {
            s.files += 1;
            s.file_bytes += e.size;
        }
    }
    Ok(s)
}

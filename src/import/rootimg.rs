//! The statelite tree of an import: which bundle member holds it, and its restore into
//! a staging directory beside `<rootimgdir>/rootimg`, from which [`super::place`]
//! renames it into place. The decoding itself is [`crate::tree`]'s.

use std::fs;
use std::io::{BufReader, Read};
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::placement::Placement;
use crate::report::Reporter;
use crate::tree;
use crate::tree::Codec;

use super::members::Members;
use super::Context;

/// Name of the tree inside an image directory.
pub(super) const TREE_MEMBER: &str = "rootimgtree.gz";
/// Name of the tree written by `export --codec zstd` (FORMAT.md §6).
const TREE_MEMBER_ZST: &str = "rootimgtree.zst";

/// The codec of a bundle member that holds the statelite tree, by its name.
pub(super) fn tree_codec(rel: &str) -> Option<Codec> {
    match rel {
        TREE_MEMBER => Some(Codec::Gzip),
        TREE_MEMBER_ZST => Some(Codec::Zstd),
        _ => None,
    }
}

/// The tree member a bundle directory holds, if any (gzip first: xCAT's name).
pub(super) fn tree_member(members: &Members) -> Option<&'static str> {
    [TREE_MEMBER, TREE_MEMBER_ZST]
        .into_iter()
        .find(|m| members.contains_key(*m))
}

/// A tree restored into `staging`, to be renamed to `dest`.
pub(super) struct StagedTree {
    pub staging: PathBuf,
    pub dest: PathBuf,
    pub entries: u64,
}

/// Removes a staged tree that will not be placed (best effort: it is only staging).
pub(super) fn remove_staging(tree: Option<&StagedTree>) {
    if let Some(t) = tree {
        let _ = fs::remove_dir_all(&t.staging);
    }
}

impl Context<'_> {
    /// Restores a tree stream (compressed with `codec`) into a staging directory beside
    /// `<rootimgdir>/rootimg`, where `tree_file` is the manifest's `rootimgtree`
    /// (`<rootimgdir>/rootimgtree.gz`).
    pub(super) fn stage_tree(
        &self,
        tree_file: &str,
        placement: &mut Placement,
        data: &mut dyn Read,
        codec: Codec,
        report: &mut dyn Reporter,
    ) -> Result<StagedTree> {
        let rootimgdir = crate::root::dirname(tree_file);
        let dest = self
            .root
            .resolve_for_write(&format!("{rootimgdir}/rootimg"))?;
        let parent = dest.parent().unwrap_or(self.root.dir()).to_path_buf();
        placement.create_dirs(&parent)?;
        let staging = tempfile::Builder::new()
            .prefix(".rootimg.imgport-")
            .tempdir_in(&parent)
            .map_err(|e| Error::io(&parent, e))?
            .keep();
        let opts = tree::RestoreOptions {
            threads: self.opts.threads,
            ..Default::default()
        };
        let restored = match codec {
            // imgport members inflate on worker threads, xCAT's single gzip member on
            // this one (the bundle reader is not Send); files are written in parallel.
            Codec::Gzip => tree::restore_stream(
                BufReader::with_capacity(1 << 20, data),
                &staging,
                b"rootimg",
                &opts,
            ),
            // Frames are cut here and decompressed on `threads` helpers (FORMAT.md §6).
            Codec::Zstd => tree::restore_zstd(data, &staging, b"rootimg", &opts),
        };
        match restored {
            // A trailer-only cpio or an empty tar restores nothing; it must not
            // replace an image's rootimg with an empty directory.
            Ok(stats) if stats.entries == 0 => {
                let _ = fs::remove_dir_all(&staging);
                Err(Error::Tree(tree::TreeError::Format {
                    entry: tree_file.to_string(),
                    reason: "the tree holds no entries; refusing to replace rootimg with it".into(),
                }))
            }
            Ok(stats) => {
                for w in &stats.warnings {
                    report.warning(w);
                }
                Ok(StagedTree {
                    staging,
                    dest,
                    entries: stats.entries,
                })
            }
            Err(e) => {
                let _ = fs::remove_dir_all(&staging);
                Err(Error::Tree(e))
            }
        }
    }
}

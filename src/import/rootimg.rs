//! The statelite tree of an import: which bundle member holds it, and its restore into
//! a staging directory beside `<rootimgdir>/rootimg`, from which [`super::place`]
//! renames it into place. The decoding itself is [`crate::tree`]'s.

use std::fs;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::placement::Placement;
use crate::report::Reporter;
use crate::tree;
use crate::tree::Codec;

use super::members::Members;
use super::Context;

/// Name of the tree inside an image directory as xCAT writes it, the one named in
/// messages about a missing tree.
pub(super) fn default_tree_member() -> &'static str {
    Codec::Gzip.tree_file_name()
}

/// The codec of a bundle member that holds the statelite tree, by its name.
pub(super) fn tree_codec(rel: &str) -> Option<Codec> {
    Codec::from_tree_file_name(rel)
}

/// The sidecar of a newc tree (FORMAT.md §7), spooled like any member: real xCAT
/// ignores it; imgport restores the tree with it.
pub(super) const SIDECAR_MEMBER: &str = tree::SIDECAR_MEMBER;

/// The tree member a bundle directory holds, if any (gzip first: xCAT's name).
pub(super) fn tree_member(members: &Members) -> Option<&'static str> {
    [Codec::Gzip, Codec::Zstd]
        .into_iter()
        .map(Codec::tree_file_name)
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
        sidecar: Option<&Path>,
        report: &mut dyn Reporter,
    ) -> Result<StagedTree> {
        let rootimgdir = crate::root::dirname(tree_file);
        let dest = self
            .root
            .resolve_for_write(&format!("{rootimgdir}/rootimg"))?;
        let parent = dest.parent().unwrap_or(self.root.dir()).to_path_buf();
        let staging = placement.staging_dir(&parent, ".rootimg.imgport-")?;
        let opts = tree::RestoreOptions {
            threads: self.opts.threads,
            ..Default::default()
        };
        let restored = match (codec, sidecar) {
            // imgport's newc form: its metadata rides beside it (FORMAT.md §7).
            (Codec::Gzip, Some(meta)) => fs::File::open(meta)
                .map_err(|e| tree::TreeError::io(meta, e))
                .and_then(|f| {
                    tree::restore_newc_with_sidecar(
                        data,
                        BufReader::new(f),
                        &staging,
                        b"rootimg",
                        &opts,
                    )
                }),
            // imgport members inflate on worker threads, xCAT's single gzip member on
            // this one (the bundle reader is not Send); files are written in parallel.
            (Codec::Gzip, None) => tree::restore_stream(
                BufReader::with_capacity(1 << 20, data),
                &staging,
                b"rootimg",
                &opts,
            ),
            // Frames are cut here and decompressed on `threads` helpers (FORMAT.md §6).
            (Codec::Zstd, _) => tree::restore_zstd(data, &staging, b"rootimg", &opts),
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

//! Import's last phase: carry out one image's planned steps (each move journaled in a
//! [`Placement`] so the caller can roll back), then write its rows; or, for
//! `--dry-run`, say what each step would do and touch nothing.

use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use crate::bundle::MemberKind;
use crate::catalog::Upsert;
use crate::error::{Error, Result};
use crate::journal::StagingDir;
use crate::placement::Placement;
use crate::report::Reporter;

use super::members::{set_mode, spooled_file, Members};
use super::plan::{Accepted, Step};
use super::rootimg::{default_tree_member, tree_codec, tree_member, StagedTree, SIDECAR_MEMBER};
use super::{Context, DryRun, FileAction, ImageOutcome};

/// One image's plan, ready to be carried out.
pub(super) struct Planned<'a> {
    pub accepted: &'a Accepted,
    pub steps: &'a [Step],
    pub upserts: &'a [Upsert],
    pub members: &'a Members,
}

impl Context<'_> {
    /// Carries out planned steps and writes the rows. Every placement is journaled in
    /// `placement`; the caller rolls back on error. Returns the `-p` error that leaves
    /// the image defined but not reported as imported (XCAT.md §6.6).
    pub(super) fn apply_steps(
        &self,
        planned: &Planned<'_>,
        tree: &mut Option<StagedTree>,
        placement: &mut Placement,
        outcome: &mut ImageOutcome,
        report: &mut dyn Reporter,
    ) -> Result<Option<String>> {
        let members = planned.members;
        for step in planned.steps {
            match step {
                Step::File { member, dest } => {
                    let spooled = spooled_file(members, member).ok_or_else(|| {
                        Error::Incomplete(format!("The bundle has no {member} for {dest}."))
                    })?;
                    self.place(spooled, dest, placement, outcome, report)?;
                }
                Step::Subtree { prefix, dest } => {
                    let (_guard, staged) =
                        self.materialize(members, prefix, placement, dest, false)?;
                    self.place(&staged, dest, placement, outcome, report)?;
                }
                Step::Copy {
                    prefix, dest, mode, ..
                } => {
                    let (_guard, staged) =
                        self.materialize(members, prefix, placement, dest, true)?;
                    // A symlink has no mode of its own; chmod would follow it.
                    let link = fs::symlink_metadata(&staged).is_ok_and(|m| m.is_symlink());
                    if let (Some(mode), false) = (mode, link) {
                        set_mode(&staged, *mode)?;
                    }
                    self.place(&staged, dest, placement, outcome, report)?;
                }
                Step::Tree { .. } => {
                    if tree.is_none() {
                        *tree = Some(self.stage_spooled_tree(planned, placement, report)?);
                    }
                    if let Some(t) = tree.take() {
                        self.place_tree(t, placement, outcome, report)?;
                    }
                }
            }
        }
        // Everything the rows will name is on disk before they are written.
        placement.sync()?;
        self.write_rows(planned.accepted, planned.upserts, placement, report)?;
        self.report_nodes(report)
    }

    /// Restores the tree from its spool file, when its manifest came after it in the
    /// bundle (xCAT's readdir order).
    fn stage_spooled_tree(
        &self,
        planned: &Planned<'_>,
        placement: &mut Placement,
        report: &mut dyn Reporter,
    ) -> Result<StagedTree> {
        let name = tree_member(planned.members).unwrap_or(default_tree_member());
        let spooled = spooled_file(planned.members, name).ok_or_else(|| {
            Error::Incomplete(format!("The bundle has no {}.", default_tree_member()))
        })?;
        report.info(&format!("Extracting {name}. It will take a while."));
        let f = File::open(spooled).map_err(|e| Error::io(spooled, e))?;
        self.stage_tree(
            planned
                .accepted
                .manifest
                .rootimgtree
                .as_deref()
                .unwrap_or(""),
            placement,
            &mut BufReader::new(f),
            tree_codec(name).unwrap_or_default(),
            spooled_file(planned.members, SIDECAR_MEMBER),
            report,
        )
    }

    /// Moves the staged tree to `<rootimgdir>/rootimg`, the old one kept as `.ORIG`.
    fn place_tree(
        &self,
        t: StagedTree,
        placement: &mut Placement,
        outcome: &mut ImageOutcome,
        report: &mut dyn Reporter,
    ) -> Result<()> {
        let placed = self.put_tree(&t, placement, outcome, report);
        if placed.is_err() {
            // The caller no longer holds the tree: its staging goes here (a no-op
            // once it was renamed into place).
            super::rootimg::remove_staging(Some(&t));
        }
        placed
    }

    fn put_tree(
        &self,
        t: &StagedTree,
        placement: &mut Placement,
        outcome: &mut ImageOutcome,
        report: &mut dyn Reporter,
    ) -> Result<()> {
        outcome.tree_entries = t.entries;
        // The restored tree is on disk before it replaces the old one.
        let staging = fs::File::open(&t.staging).map_err(|e| Error::io(&t.staging, e))?;
        rustix::fs::syncfs(&staging).map_err(|e| Error::io(&t.staging, e.into()))?;
        crate::testhook::point("tree-synced");
        let shown = self.root.display(&t.dest);
        report.info(&shown);
        if placement.put(&t.staging, &t.dest)? {
            report.info(&format!("  Moving old {shown} to {shown}.ORIG."));
        }
        outcome.files.push(shown);
        Ok(())
    }

    /// Writes the rows, last, with xCAT's lines around them.
    fn write_rows(
        &self,
        accepted: &Accepted,
        upserts: &[Upsert],
        placement: &Placement,
        report: &mut dyn Reporter,
    ) -> Result<()> {
        let litefile = accepted.manifest.litefile.is_some();
        if litefile {
            report.info("Updating the litefile table.");
        }
        let (new_tables, new_dirs) = self.catalog.new_table_files(upserts)?;
        placement.intend_rows(upserts, &new_tables, &new_dirs)?;
        let applied = self.catalog.apply(upserts)?;
        crate::testhook::point("did-rows");
        for (table, column) in applied.dropped {
            report.warning(&format!(
                "The {table} table of this MN has no column '{column}'; its value in manifest.xml was not imported."
            ));
        }
        if litefile {
            report.info(
                "The litetree and statelite tables are untouched. You can update them if needed.",
            );
        }
        Ok(())
    }

    pub(super) fn preview(&self, steps: &[Step], upserts: &[Upsert]) -> Result<DryRun> {
        let mut files = Vec::new();
        for step in steps {
            let dest = step.dest();
            let host = self.root.resolve_for_write(dest)?;
            let action = if fs::symlink_metadata(&host).is_ok() {
                FileAction::Replace
            } else {
                FileAction::Create
            };
            files.push((dest.to_string(), action));
        }
        let rows = self.catalog.plan(upserts)?;
        Ok(DryRun {
            files,
            rows: rows.changes,
            dropped: rows.dropped,
            restarts_xcatd: steps
                .iter()
                .any(|s| matches!(s, Step::Copy { plugin: true, .. })),
        })
    }

    /// Moves a staged file or directory to the MN path `dest`, backing up what is
    /// there as `.ORIG`.
    fn place(
        &self,
        staged: &Path,
        dest: &str,
        placement: &mut Placement,
        outcome: &mut ImageOutcome,
        report: &mut dyn Reporter,
    ) -> Result<()> {
        report.info(dest);
        let host = self.root.resolve_for_write(dest)?;
        if placement.put(staged, &host)? {
            report.info(&format!("  Moving old {dest} to {dest}.ORIG."));
        }
        outcome.files.push(dest.to_string());
        Ok(())
    }

    /// Builds the spooled subtree `prefix` (a member and everything below it; a
    /// directory need not have a member of its own) in a staging directory beside
    /// `dest`. Files are moved out of the spool, or copied with `copy` (a later step
    /// needs them too). Returns the staging guard (dropping it removes whatever was not
    /// moved out) and the staged top.
    fn materialize(
        &self,
        members: &Members,
        prefix: &str,
        placement: &mut Placement,
        dest: &str,
        copy: bool,
    ) -> Result<(StagingDir, PathBuf)> {
        let host = self.root.resolve_for_write(dest)?;
        let parent = host.parent().unwrap_or(self.root.dir()).to_path_buf();
        let staging = StagingDir::new(placement.staging_dir(&parent, ".imgport-stage-")?);
        let top = staging.path().join("t");
        let mut links: Vec<&str> = Vec::new();
        let below = format!("{prefix}/");
        // The top first, then what is below it (not `prefix..`: `a-b` sorts between
        // `a` and `a/x`).
        let subtree = members.get_key_value(prefix).into_iter().chain(
            members
                .range(below.clone()..)
                .take_while(|(rel, _)| rel.starts_with(&below)),
        );
        for (rel, sp) in subtree {
            let sub = rel.strip_prefix(&below).unwrap_or("");
            // A member below a symlink of the same bundle would be written through it.
            if links.iter().any(|l| sub.starts_with(&format!("{l}/"))) {
                return Err(Error::UnsafePath {
                    path: rel.clone(),
                    reason: "bundle member lies below a symlink of the same bundle".into(),
                });
            }
            let target = if sub.is_empty() {
                top.clone()
            } else {
                top.join(sub)
            };
            if let Some(p) = target.parent() {
                fs::create_dir_all(p).map_err(|e| Error::io(p, e))?;
            }
            match (&sp.kind, &sp.path) {
                (MemberKind::Dir, _) => {
                    fs::create_dir_all(&target).map_err(|e| Error::io(&target, e))?;
                    set_mode(&target, sp.mode)?;
                }
                (MemberKind::Symlink(to), _) => {
                    std::os::unix::fs::symlink(to, &target).map_err(|e| Error::io(&target, e))?;
                    links.push(sub);
                }
                // Spooling already gave the file its mode and mtime; rename keeps them.
                (MemberKind::File, Some(p)) if !copy => {
                    fs::rename(p, &target).map_err(|e| Error::io(&target, e))?;
                }
                (MemberKind::File, Some(p)) => {
                    fs::copy(p, &target).map_err(|e| Error::io(&target, e))?;
                }
                _ => {}
            }
        }
        Ok((staging, top))
    }
}

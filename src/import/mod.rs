//! The import flow (`imgimport`): read a bundle once, in stream order; stage every file
//! beside (or on the filesystem of) its destination; restore the statelite tree into a
//! staging directory; then, image by image, move everything into place and write the
//! table rows last. A failing image is rolled back completely (files moved back, `.ORIG`
//! backups restored, rows never written) and the next image is still imported, as
//! xCAT does.
//!
//! The phases, one file each: `spool.rs` reads the bundle once and keeps each image's
//! members (`members.rs`); `plan.rs` checks a manifest and decides every step, touching
//! nothing; `rows.rs` builds the table rows; `rootimg.rs` restores the statelite tree;
//! `place.rs` carries the plan out (or previews it for `--dry-run`). This file runs
//! them in order and turns their results into the report.
//!
//! Orchestration only: names and safety of members in [`crate::bundle`], destination
//! paths in [`crate::root`], journaled moves in [`crate::placement`], `-f` in
//! [`crate::profile`], the tree in [`crate::tree`], a `-R` bundle's ssh stream in
//! [`crate::remote`].

mod members;
mod place;
mod plan;
mod rootimg;
mod rows;
mod spool;
#[cfg(test)]
mod tests;
mod xcatd;

use std::path::PathBuf;
use std::time::Instant;

use crate::catalog::{Catalog, Upsert};
use crate::error::{Failure, Result};
use crate::image;
use crate::journal::{self, Journal};
use crate::placement::Placement;
use crate::report::Reporter;
use crate::root::Root;

use members::Members;
use plan::Step;
use plan::{Accepted, ManifestProblem};
use rootimg::StagedTree;
use spool::{discard, ImageDir};

/// Where the bundle comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleSource {
    Path(PathBuf),
    Stdin,
    /// A file on another host, read through ssh (`-R`); `path` as the remote shell
    /// sees it (relative to the login directory unless absolute).
    Remote {
        host: String,
        path: String,
    },
}

impl BundleSource {
    /// How messages name the bundle.
    fn name(&self) -> String {
        match self {
            BundleSource::Path(p) => p.display().to_string(),
            BundleSource::Stdin => "-".into(),
            BundleSource::Remote { host, path } => format!("{host}:{path}"),
        }
    }
}

/// What to import and how.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    pub bundle: BundleSource,
    /// `-p NODERANGE`.
    pub postscripts: Option<String>,
    /// `-f NEWPROFILE`.
    pub profile: Option<String>,
    /// Plan only: report every file and row the import would write; touch nothing.
    pub dry_run: bool,
    /// Restore threads for the tree (0: one per core).
    pub threads: usize,
    /// Progress counters to update (phase "read": bundle bytes read of its size).
    pub progress: crate::progress::Handle,
}

/// The result for one image directory of the bundle.
#[derive(Debug, Clone)]
pub struct ImageOutcome {
    /// The image name imported (after `-f`), or the bundle directory name when the
    /// manifest could not be read.
    pub image: String,
    pub ok: bool,
    pub errors: Vec<String>,
    /// Destinations written (MN paths).
    pub files: Vec<String>,
    pub tree_entries: u64,
    /// With `--dry-run`: what the import would do.
    pub dry_run: Option<DryRun>,
    /// Why the image failed, for exit codes.
    pub failure: Option<Failure>,
}

impl ImageOutcome {
    /// An image not imported yet.
    fn new(image: &str) -> ImageOutcome {
        ImageOutcome {
            image: image.to_string(),
            ok: false,
            errors: Vec::new(),
            files: Vec::new(),
            tree_entries: 0,
            dry_run: None,
            failure: None,
        }
    }

    /// An image refused for its manifest (`why`): a defect of the bundle.
    fn refused(dir: &str, why: &str) -> ImageOutcome {
        ImageOutcome {
            errors: vec![why.to_string()],
            failure: Some(Failure::Corrupt),
            ..ImageOutcome::new(dir)
        }
    }

    /// Records the error that failed this image.
    fn fail(&mut self, e: &crate::Error) {
        self.errors.push(e.to_string());
        self.failure = Some(e.failure());
    }
}

/// What an import did.
#[derive(Debug, Clone, Default)]
pub struct ImportReport {
    pub images: Vec<ImageOutcome>,
    pub bytes_in: u64,
    pub seconds: f64,
}

impl ImportReport {
    pub fn all_ok(&self) -> bool {
        !self.images.is_empty() && self.images.iter().all(|i| i.ok)
    }
}

/// What happens to a destination path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileAction {
    /// Nothing is there yet.
    Create,
    /// Something is there; it is kept as `<path>.ORIG`.
    Replace,
}

/// What `--dry-run` found for one image.
#[derive(Debug, Clone)]
pub struct DryRun {
    /// Destination MN paths and what happens there.
    pub files: Vec<(String, FileAction)>,
    /// Every row that would be inserted or changed, with old and new values.
    pub rows: Vec<crate::catalog::Change>,
    /// Manifest columns the target schema lacks (table, column).
    pub dropped: Vec<(String, String)>,
    /// Kit plugins would be added: a running xcatd would be restarted.
    pub restarts_xcatd: bool,
}

/// What every phase of one import call reads.
struct Context<'a> {
    root: &'a Root,
    catalog: &'a Catalog,
    opts: &'a ImportOptions,
    /// `site.installdir` as an MN path.
    installdir: String,
    /// Written ahead of every change (disabled for `--dry-run`).
    journal: Journal,
    /// `$XCATROOT` as an MN path.
    xcatroot: String,
}

/// Whether the image directories after one are still imported: xCAT stops the whole
/// import at a directory whose manifest is missing or not XML, and goes on past one
/// whose manifest it refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Continue,
    Stop,
}

/// Imports every image of a bundle. Returns an error only when the bundle itself
/// cannot be read; per-image failures are in the report (and were rolled back).
///
/// The caller holds the MN lock ([`crate::lock`]) exclusively (shared for
/// `--dry-run`). What a dead import left is recovered first ([`journal::recover`]);
/// then every change of this one is journaled, so that a crash at any point leaves
/// the MN recoverable to its state before, or to the complete import.
pub fn import(
    root: &Root,
    catalog: &Catalog,
    opts: &ImportOptions,
    report: &mut dyn Reporter,
) -> Result<ImportReport> {
    let started = Instant::now();
    let input = spool::open(&opts.bundle, &opts.progress, report)?;
    let bytes_read = input.counter();
    report.info("Unbundling image...");
    let installdir = image::installdir(catalog)?;
    let journal = if opts.dry_run {
        Journal::disabled()
    } else {
        if let Some(done) = journal::recover(root, catalog)? {
            report_recovery(&done, report);
        }
        Journal::begin(root)?
    };
    let ctx = Context {
        root,
        catalog,
        opts,
        installdir,
        journal: journal.clone(),
        xcatroot: image::xcatroot(),
    };
    let result = ctx.import_all(input, bytes_read, started, report);
    drop(ctx);
    // Kept when an image could not be put back: the next run retries.
    let finished = journal.finish();
    let out = result?;
    finished?;
    Ok(out)
}

/// Reports what recovery did, one line per image and per change.
pub fn report_recovery(done: &journal::Recovery, report: &mut dyn Reporter) {
    let pid = done.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
    report.info(&format!(
        "Recovered the interrupted import{pid} journaled in {}:",
        done.journal.display()
    ));
    for image in &done.images {
        report.info(&format!("  {}: {}", image.image, image.outcome.as_str()));
    }
    for action in &done.actions {
        report.verbose(&format!("  {action}"));
    }
}

impl Context<'_> {
    /// Reads the bundle, then places image after image.
    fn import_all(
        &self,
        input: spool::Input,
        bytes_read: std::sync::Arc<std::sync::atomic::AtomicU64>,
        started: Instant,
        report: &mut dyn Reporter,
    ) -> Result<ImportReport> {
        // Kept until every image is placed: staged files are renamed out of it.
        let (_spool, images) = self.read_bundle(input, report)?;
        let mut out = ImportReport::default();
        for (dir_name, dir) in images {
            let (outcome, next) = self.import_image(&dir_name, dir, report);
            out.images.push(outcome);
            if next == Next::Stop {
                break;
            }
        }
        out.bytes_in = bytes_read.load(std::sync::atomic::Ordering::Relaxed);
        out.seconds = started.elapsed().as_secs_f64();
        Ok(out)
    }
}

impl Context<'_> {
    /// One image directory of the bundle, after the whole bundle was read: check its
    /// manifest, plan, then preview (`--dry-run`) or place.
    fn import_image(
        &self,
        dir_name: &str,
        dir: ImageDir,
        report: &mut dyn Reporter,
    ) -> (ImageOutcome, Next) {
        let ImageDir {
            manifest,
            members,
            tree,
            placement,
        } = dir;
        let accepted = match accepted(manifest, report) {
            Ok(accepted) => accepted,
            Err(refusal) => {
                discard(tree, placement);
                return (ImageOutcome::refused(dir_name, &refusal.why), refusal.next);
            }
        };
        let planned = self.plan_image(&accepted, &members, tree.is_some(), report);
        let outcome = if self.opts.dry_run {
            self.preview_image(&accepted, planned, report)
        } else {
            let staged = Staged {
                members: &members,
                tree,
                placement,
            };
            self.place_image(&accepted, planned, staged, report)
        };
        (outcome, Next::Continue)
    }

    /// Decides everything one image's import does, touching nothing: its steps, then
    /// its rows.
    fn plan_image(
        &self,
        accepted: &Accepted,
        members: &Members,
        tree_staged: bool,
        report: &mut dyn Reporter,
    ) -> Result<(Vec<Step>, Vec<Upsert>)> {
        let steps = self.plan_steps(accepted, members, tree_staged, report)?;
        let upserts = self.rows(accepted, members)?;
        Ok((steps, upserts))
    }

    /// `--dry-run`: what the plan would do to each file and row.
    fn preview_image(
        &self,
        accepted: &Accepted,
        planned: Result<(Vec<Step>, Vec<Upsert>)>,
        report: &mut dyn Reporter,
    ) -> ImageOutcome {
        let mut outcome = ImageOutcome::new(&accepted.imagename);
        let previewed = planned
            .and_then(|(steps, upserts)| self.preview(&steps, &upserts))
            .and_then(|preview| Ok((preview, self.report_nodes(report)?)));
        match previewed {
            Ok((preview, late)) => {
                outcome.files = preview.files.iter().map(|(p, _)| p.clone()).collect();
                outcome.dry_run = Some(preview);
                match late {
                    None => outcome.ok = true,
                    Some(e) => {
                        report.error(&e);
                        outcome.errors.push(e);
                        outcome.failure = Some(Failure::Failed);
                    }
                }
            }
            Err(e) => {
                report.error(&e.to_string());
                outcome.fail(&e);
            }
        }
        outcome
    }

    /// Carries the plan out, then commits every move, or rolls all of them back on the
    /// first error (and reports what could not be put back).
    fn place_image(
        &self,
        accepted: &Accepted,
        planned: Result<(Vec<Step>, Vec<Upsert>)>,
        staged: Staged<'_>,
        report: &mut dyn Reporter,
    ) -> ImageOutcome {
        let mut outcome = ImageOutcome::new(&accepted.imagename);
        let Staged {
            members,
            mut tree,
            mut placement,
        } = staged;
        let plugins = planned.as_ref().is_ok_and(|(steps, _)| {
            steps
                .iter()
                .any(|s| matches!(s, Step::Copy { plugin: true, .. }))
        });
        let result = planned.and_then(|(steps, upserts)| {
            let planned = place::Planned {
                accepted,
                steps: &steps,
                upserts: &upserts,
                members,
            };
            self.apply_steps(&planned, &mut tree, &mut placement, &mut outcome, report)
        });
        match result {
            Ok(late) => {
                placement.commit();
                if plugins {
                    xcatd::restart_for_plugins(self.root, &self.xcatroot, report);
                }
                match late {
                    None => {
                        outcome.ok = true;
                        report.info(&format!(
                            "Successfully imported the image {}.",
                            accepted.imagename
                        ));
                    }
                    // Defined and in place, but xCAT counts it failed: no success line.
                    Some(e) => {
                        report.error(&e);
                        outcome.errors.push(e);
                        outcome.failure = Some(Failure::Failed);
                    }
                }
            }
            Err(e) => {
                // Staging first: directories the placement made hold it.
                rootimg::remove_staging(tree.as_ref());
                let stuck = placement.rollback();
                report.error(&e.to_string());
                for p in stuck {
                    report.error(&format!(
                        "Could not restore {} after the failure",
                        p.display()
                    ));
                }
                outcome.fail(&e);
            }
        }
        outcome
    }
}

/// What the reading phase left for one image, to be placed.
struct Staged<'a> {
    members: &'a Members,
    /// The tree, when it was restored during the stream.
    tree: Option<StagedTree>,
    placement: Placement,
}

/// Why an image directory is not imported (xCAT's lines already reported), and
/// whether the next directories still are.
struct Refusal {
    why: String,
    next: Next,
}

/// The checked manifest of an image directory, or its refusal, with xCAT's error
/// lines reported.
fn accepted(
    manifest: Option<std::result::Result<Accepted, ManifestProblem>>,
    report: &mut dyn Reporter,
) -> std::result::Result<Accepted, Refusal> {
    match manifest {
        None => {
            report.error("Failed to find manifest.xml file in image bundle");
            Err(Refusal {
                why: "no manifest.xml".into(),
                next: Next::Stop,
            })
        }
        Some(Err(ManifestProblem::Invalid(detail))) => {
            report.error("invalid manifest.xml file inside the bundle.  Please verify the XML");
            report.error(&detail);
            Err(Refusal {
                why: detail,
                next: Next::Stop,
            })
        }
        Some(Err(ManifestProblem::Refused(msgs))) => {
            for m in &msgs {
                report.error(m);
            }
            Err(Refusal {
                why: msgs.join("; "),
                next: Next::Continue,
            })
        }
        Some(Ok(accepted)) => Ok(accepted),
    }
}

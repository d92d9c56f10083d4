//! Runs the library's flows for the command line: each image or bundle of a call in
//! turn (one failure does not stop the others), xCAT's lines and the summary, or one
//! JSON document; the exit code combined from every item's kind of failure.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use imgport::catalog::Catalog;
use imgport::error::Failure;
use imgport::export::{Destination, ExportOptions};
use imgport::import::{BundleSource, ImportOptions};
use imgport::journal;
use imgport::lock::{Access, MnLock};
use imgport::naming;
use imgport::root::Root;

use super::console::Console;
use super::{bar, exit_for, json, Globals, EXIT_FAILED, EXIT_PARTIAL, EXIT_USAGE};

/// The exit code of a run over several items: 0 if all succeeded (1 if error lines
/// were printed on the way), the failure's own code if all failed alike, 6 if some
/// succeeded and some failed.
fn combine(results: &[Option<Failure>], console: &Console) -> i32 {
    let failed: Vec<Failure> = results.iter().flatten().copied().collect();
    if failed.is_empty() {
        return console.exit_code();
    }
    if failed.len() < results.len() {
        return EXIT_PARTIAL;
    }
    let first = failed[0];
    if failed.iter().all(|f| *f == first) {
        exit_for(first)
    } else {
        EXIT_FAILED
    }
}

/// Which images an export call names, and where their bundles go.
pub(super) struct ExportPlan {
    /// Image names, or an image and a bundle path (any bytes).
    pub args: Vec<OsString>,
    pub all: bool,
    pub output_dir: Option<PathBuf>,
    /// `-R`: bundles go to this host through ssh.
    pub remotehost: Option<String>,
}

impl ExportPlan {
    pub(super) fn multi(&self) -> bool {
        self.all || self.output_dir.is_some()
    }

    /// (image, destination) pairs, or a usage error.
    fn jobs(&self, catalog: &Catalog) -> Result<Vec<(String, Option<Destination>)>, String> {
        let local = self.local_jobs(catalog)?;
        let Some(host) = &self.remotehost else {
            return Ok(local);
        };
        // The same names, on the remote host (xCAT's rule for the remote path).
        local
            .into_iter()
            .map(|(image, dest)| {
                let wanted = match &dest {
                    Some(Destination::Path(p)) => Some(super::remote_path(p.as_os_str())?),
                    _ => None,
                };
                let path = naming::remote_bundle_path(wanted.as_deref(), &image);
                let dest = Destination::Remote {
                    host: host.clone(),
                    path,
                };
                Ok((image, Some(dest)))
            })
            .collect()
    }

    fn local_jobs(&self, catalog: &Catalog) -> Result<Vec<(String, Option<Destination>)>, String> {
        if !self.multi() {
            return match self.args.as_slice() {
                [image] => Ok(vec![(image_name(image)?, None)]),
                [image, dest] => Ok(vec![(
                    image_name(image)?,
                    Some(if dest == "-" {
                        Destination::Stdout
                    } else {
                        Destination::Path(PathBuf::from(dest))
                    }),
                )]),
                [] => Err("export needs an image name (or --all)".into()),
                _ => Err("several images need -o DIR (or --all): with one image, the second argument is the bundle path".into()),
            };
        }
        let images: Vec<String> = if self.all {
            if !self.args.is_empty() {
                return Err("--all takes no image names".into());
            }
            catalog
                .select("osimage", &[])
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter_map(|r| r.get("imagename").cloned())
                .collect()
        } else {
            self.args
                .iter()
                .map(|a| image_name(a))
                .collect::<Result<_, _>>()?
        };
        let dir = self
            .output_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(images
            .into_iter()
            .map(|i| {
                let dest = dir.join(naming::bundle_name(&i));
                (i, Some(Destination::Path(dest)))
            })
            .collect())
    }
}

/// An image name from the command line: the catalog holds text, so UTF-8.
fn image_name(arg: &std::ffi::OsStr) -> Result<String, String> {
    arg.to_str()
        .map(str::to_string)
        .ok_or_else(|| format!("an image name must be UTF-8: {}", arg.to_string_lossy()))
}

/// How a command uses the MN lock ([`imgport::lock`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct LockWanted {
    pub access: Access,
    /// `--no-wait`: fail at once (exit 1) when another run holds the lock.
    pub no_wait: bool,
    /// Recorded in the lock file for the message of a run that waits.
    pub command: &'static str,
}

/// Opens the root and its catalog, takes the MN lock (recovering what a dead import
/// left), then runs `f`; setup failures are reported.
pub(super) fn with_catalog(
    root_dir: &Path,
    lock: LockWanted,
    console: &mut Console,
    f: impl FnOnce(&Root, &Catalog, &mut Console) -> i32,
) -> i32 {
    let root = match Root::new(root_dir) {
        Ok(r) => r,
        Err(e) => return console.fail(&format!("--root {}: {e}", root_dir.display())),
    };
    let xcatcfg = std::env::var("XCATCFG").ok();
    let catalog = match Catalog::open(root.dir(), xcatcfg.as_deref()) {
        Ok(c) => c,
        Err(e) => return console.fail(&e.to_string()),
    };
    let _held = match lock_mn(&root, &catalog, lock) {
        Ok(l) => l,
        Err(e) => return console.fail(&e.to_string()),
    };
    f(&root, &catalog, console)
}

/// Prints a waiting line on stderr (stdout may carry a bundle, CSV or JSON).
fn waiting(line: &str) {
    eprintln!("imgport: {line}");
}

/// Takes the MN lock. A journal found under it is a dead import's (a live one holds
/// the lock exclusively until its journal is gone): a writer recovers it, a reader
/// takes the lock exclusively for as long as the recovery lasts, so that it never
/// reads a half-replaced image. A reader that cannot write the root (read-only) fails
/// with a message saying so rather than read a half state.
fn lock_mn(root: &Root, catalog: &Catalog, want: LockWanted) -> imgport::Result<MnLock> {
    let mut lock = MnLock::acquire(root, want.access, want.no_wait, want.command, &mut waiting)?;
    if want.access == Access::Exclusive {
        // What a killed tabrestore or catalog copy left (an import's leftovers are
        // settled by the journal's recovery below too).
        for p in catalog.settle() {
            waiting(&format!(
                "removed orphaned SQLite super-journal {}",
                root.display(&p)
            ));
        }
    }
    if !journal::pending(root)? {
        return Ok(lock);
    }
    if want.access == Access::Shared {
        lock.relock(Access::Exclusive, want.no_wait, want.command, &mut waiting)?;
    }
    let recovered = journal::recover(root, catalog).map_err(|e| {
        imgport::Error::Interrupted(format!(
            "an interrupted import left {} and recovering it failed ({e}): run `imgport recover` where the MN can be written",
            journal::journal_path(root)
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        ))
    })?;
    if let Some(done) = recovered {
        let mut lines = imgport::report::Collect::default();
        imgport::import::report_recovery(&done, &mut lines);
        for l in lines.info {
            eprintln!("imgport: {l}");
        }
    }
    if want.access == Access::Shared {
        lock.relock(Access::Shared, want.no_wait, want.command, &mut waiting)?;
    }
    Ok(lock)
}

/// `imgport recover`: only what [`lock_mn`] does first for every command, reported.
pub(super) fn recover(g: &Globals, console: &mut Console) -> i32 {
    let root = match Root::new(&g.root) {
        Ok(r) => r,
        Err(e) => return console.fail(&format!("--root {}: {e}", g.root.display())),
    };
    let xcatcfg = std::env::var("XCATCFG").ok();
    let done = Catalog::open(root.dir(), xcatcfg.as_deref())
        .map_err(imgport::Error::from)
        .and_then(|catalog| {
            let _lock =
                MnLock::acquire(&root, Access::Exclusive, g.no_wait, "recover", &mut waiting)?;
            // What a killed tabrestore or catalog copy left; an import's is settled
            // by the journal's recovery too.
            for p in catalog.settle() {
                waiting(&format!(
                    "removed orphaned SQLite super-journal {}",
                    root.display(&p)
                ));
            }
            journal::recover(&root, &catalog)
        });
    match done {
        Ok(done) => {
            if g.json {
                json::print(&json::recovery(done.as_ref()));
            } else {
                match &done {
                    Some(done) => {
                        imgport::import::report_recovery(done, console);
                        for a in &done.actions {
                            console.note(&format!("  {a}"));
                        }
                    }
                    None => console.note("Nothing to recover: no interrupted import."),
                }
            }
            super::EXIT_OK
        }
        Err(e) => console.fail(&e.to_string()),
    }
}

/// Exports every job; one failure does not stop the others.
pub(super) fn run_exports(
    g: &Globals,
    plan: &ExportPlan,
    base: &ExportOptions,
    console: &mut Console,
) -> i32 {
    let lock = LockWanted {
        access: Access::Shared,
        no_wait: g.no_wait,
        command: "export",
    };
    with_catalog(&g.root, lock, console, |root, catalog, console| {
        let jobs = match plan.jobs(catalog) {
            Ok(j) => j,
            Err(msg) => {
                eprintln!("imgport: {msg}");
                return EXIT_USAGE;
            }
        };
        let mut results = Vec::new();
        let mut labels = Vec::new();
        let mut docs = Vec::new();
        for (image, destination) in jobs {
            let (progress, bar) = bar::start(g.quiet);
            let opts = ExportOptions {
                image: image.clone(),
                destination,
                progress,
                ..base.clone()
            };
            console.set_bar(bar.as_ref().map(|b| b.bar.clone()));
            let outcome = imgport::export::export(root, catalog, &opts, console);
            drop(bar);
            console.set_bar(None);
            let (warnings, errors) = console.take_lines();
            let failure = match &outcome {
                Ok(_) => None,
                Err(e) => {
                    console.fail(&e.to_string());
                    Some(e.failure())
                }
            };
            let mut errors = errors;
            if let Err(e) = &outcome {
                errors.push(e.to_string());
            }
            results.push(failure);
            labels.push(image.clone());
            docs.push(json::export_image(
                &image,
                outcome.as_ref().ok(),
                &warnings,
                &errors,
            ));
        }
        let code = combine(&results, console);
        if g.json {
            json::print(&json::export_doc(docs, code));
        } else if results.len() > 1 {
            summary("exported", &results, &labels, console);
        }
        code
    })
}

/// Imports every bundle; one failure does not stop the others.
pub(super) fn run_imports(g: &Globals, all: &[ImportOptions], console: &mut Console) -> i32 {
    let lock = LockWanted {
        access: import_access(all.iter().all(|o| o.dry_run)),
        no_wait: g.no_wait,
        command: "import",
    };
    with_catalog(&g.root, lock, console, |root, catalog, console| {
        let mut results = Vec::new();
        let mut labels = Vec::new();
        let mut docs = Vec::new();
        for opts in all {
            let name = match &opts.bundle {
                BundleSource::Path(p) => p.display().to_string(),
                BundleSource::Stdin => "-".to_string(),
                BundleSource::Remote { host, path } => format!("{host}:{path}"),
            };
            let (progress, bar) = bar::start(g.quiet);
            let opts = ImportOptions {
                progress,
                ..opts.clone()
            };
            console.set_bar(bar.as_ref().map(|b| b.bar.clone()));
            let outcome = imgport::import::import(root, catalog, &opts, console);
            drop(bar);
            console.set_bar(None);
            let (warnings, mut errors) = console.take_lines();
            match &outcome {
                Ok(report) => {
                    if opts.dry_run && !g.json {
                        for image in &report.images {
                            if let Some(plan) = &image.dry_run {
                                print_dry_run(&image.image, plan);
                            }
                        }
                    }
                    let failures: Vec<Option<Failure>> = report
                        .images
                        .iter()
                        .map(|i| {
                            if i.ok {
                                None
                            } else {
                                Some(i.failure.unwrap_or(Failure::Failed))
                            }
                        })
                        .collect();
                    if report.images.is_empty() {
                        labels.push(name.clone());
                    }
                    labels.extend(
                        report
                            .images
                            .iter()
                            .map(|i| format!("{name} (image {})", i.image)),
                    );
                    results.extend(if failures.is_empty() {
                        vec![Some(Failure::Corrupt)]
                    } else {
                        failures
                    });
                }
                Err(e) => {
                    // With several bundles, the line names the file it is about.
                    if all.len() > 1 {
                        console.fail(&format!("{name}: {e}"));
                    } else {
                        console.fail(&e.to_string());
                    }
                    errors.push(e.to_string());
                    results.push(Some(e.failure()));
                    labels.push(name.clone());
                }
            }
            docs.push(json::import_bundle(
                &name,
                outcome.as_ref().ok(),
                &warnings,
                &errors,
            ));
        }
        let code = combine(&results, console);
        if g.json {
            json::print(&json::import_doc(
                docs,
                code,
                all.first().is_some_and(|o| o.dry_run),
            ));
        } else if all.len() > 1 {
            summary("imported", &results, &labels, console);
        }
        code
    })
}

/// The closing lines of a run over several items: the count, then each item that
/// failed by name (`labels`, one per result: the image, or the bundle file and image).
fn summary(verb: &str, results: &[Option<Failure>], labels: &[String], console: &mut Console) {
    let failed = results.iter().filter(|r| r.is_some()).count();
    console.note(&format!(
        "Summary: {} of {} images {verb}, {failed} failed.",
        results.len() - failed,
        results.len()
    ));
    for (result, label) in results.iter().zip(labels) {
        if result.is_some() {
            console.note(&format!("  failed: {label}"));
        }
    }
}

/// The lock an import takes: `--dry-run` only reads.
fn import_access(dry_run: bool) -> Access {
    if dry_run {
        Access::Shared
    } else {
        Access::Exclusive
    }
}

pub(super) fn run_export(root_dir: &Path, opts: &ExportOptions, console: &mut Console) -> i32 {
    let lock = LockWanted {
        access: Access::Shared,
        no_wait: false,
        command: "imgexport",
    };
    with_catalog(
        root_dir,
        lock,
        console,
        |root, catalog, console| match imgport::export::export(root, catalog, opts, console) {
            Ok(_) => console.exit_code(),
            Err(e) => console.fail(&e.to_string()),
        },
    )
}

pub(super) fn run_import(root_dir: &Path, opts: &ImportOptions, console: &mut Console) -> i32 {
    let lock = LockWanted {
        access: import_access(opts.dry_run),
        no_wait: false,
        command: "imgimport",
    };
    with_catalog(
        root_dir,
        lock,
        console,
        |root, catalog, console| match imgport::import::import(root, catalog, opts, console) {
            Ok(report) if report.all_ok() => console.exit_code(),
            Ok(_) => EXIT_FAILED,
            Err(e) => console.fail(&e.to_string()),
        },
    )
}

/// `--dry-run` as text: one line per file and per row change.
fn print_dry_run(image: &str, plan: &imgport::import::DryRun) {
    use imgport::catalog::ChangeKind;
    use imgport::import::FileAction;
    println!("Dry run for image {image}: nothing was changed.");
    for (path, action) in &plan.files {
        match action {
            FileAction::Create => println!("  create  {path}"),
            FileAction::Replace => println!("  replace {path} (the old one kept as {path}.ORIG)"),
        }
    }
    for change in &plan.rows {
        let key: Vec<String> = change.key.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let key = key.join(",");
        match change.kind {
            ChangeKind::Insert => {
                let cols: Vec<String> = change
                    .new
                    .iter()
                    .map(|(k, v)| format!("{k}={v:?}"))
                    .collect();
                println!("  insert  {} {key}: {}", change.table, cols.join(" "));
            }
            ChangeKind::Update => {
                let old = change.old.clone().unwrap_or_default();
                let cols: Vec<String> = change
                    .new
                    .iter()
                    .filter(|(k, v)| old.get(*k) != Some(*v))
                    .map(|(k, v)| match old.get(k) {
                        Some(o) => format!("{k}: {o:?} -> {v:?}"),
                        None => format!("{k}: NULL -> {v:?}"),
                    })
                    .collect();
                println!("  update  {} {key}: {}", change.table, cols.join(", "));
            }
            ChangeKind::Unchanged => println!("  same    {} {key}", change.table),
        }
    }
    for (table, column) in &plan.dropped {
        println!("  drop    {table}.{column} (not in this MN's schema)");
    }
    if plan.restarts_xcatd {
        println!("  restart xcatd, if it runs (kit plugins)");
    }
}

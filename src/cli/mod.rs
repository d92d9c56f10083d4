//! Command line: parses flags (clap) into the library's option structs, runs the flow,
//! prints lines the way xCAT's client does (or one JSON document with `--json`). No
//! logic of its own beyond that.

mod bar;
mod browse;
mod catalog;
mod console;
mod docs;
mod json;
mod xcat;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use imgport::catalog::Catalog;
use imgport::error::Failure;
use imgport::export::{Codec, Compat, Destination, ExportOptions};
use imgport::image::DiscoverOptions;
use imgport::import::{BundleSource, ImportOptions};
use imgport::remote;
use imgport::root::Root;

use console::Console;

/// Everything succeeded.
pub const EXIT_OK: i32 = 0;
/// Something failed, or an error line was printed (xCAT's only error code).
pub const EXIT_FAILED: i32 = 1;
/// The command line could not be parsed.
pub const EXIT_USAGE: i32 = 2;
/// The image or bundle asked for does not exist.
pub const EXIT_NOT_FOUND: i32 = 3;
/// The bundle is unreadable, malformed or refused as unsafe.
pub const EXIT_CORRUPT: i32 = 4;
/// `verify` found differences.
pub const EXIT_MISMATCH: i32 = 5;
/// Several images or bundles: some succeeded, some failed.
pub const EXIT_PARTIAL: i32 = 6;

/// The exit code for a failure class.
pub fn exit_for(f: Failure) -> i32 {
    match f {
        Failure::NotFound => EXIT_NOT_FOUND,
        Failure::Corrupt => EXIT_CORRUPT,
        Failure::Failed => EXIT_FAILED,
    }
}

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

#[derive(Debug, Parser)]
#[command(
    name = "imgport",
    version,
    about = "Export and import xCAT osimages as single bundle files, fast and losslessly",
    after_help = "Examples:\n  imgport export rhels8-x86_64-statelite-compute\n  imgport --root /srv/mn2 import rhels8-x86_64-statelite-compute.tgz -f compute_test\n  imgport export --all -o /backup --json > export.json\n  imgport tabdump osimage > osimage.csv\n\nExit codes: 0 ok, 1 failed (or error lines printed), 2 usage, 3 image or bundle not found,\n4 bundle corrupt or refused, 5 verify mismatch, 6 some of several images failed."
)]
struct Cli {
    /// Directory that stands for the management node's `/` (like `rpm --root`)
    #[arg(long, global = true, env = "IMGPORT_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,
    /// Print one JSON document on stdout (progress and xCAT lines go to stderr)
    #[arg(long, global = true)]
    json: bool,
    /// Print only errors and warnings
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Worker threads (default: one per core)
    #[arg(long, global = true, value_name = "N", default_value_t = 0)]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write osimages and every file they need into bundles (imgexport)
    #[command(
        after_help = "Examples:\n  imgport export myimage                  # ./myimage.tgz\n  imgport export myimage /backup/my.tgz -e /install/postscripts/myscript -p node1\n  imgport export img1 img2 img3 -o /backup  # one bundle each\n  imgport export --all -o /backup --json\n  imgport export myimage /backup/ -R root@mn2   # mn2:/backup/myimage.tgz, through ssh\n  imgport export myimage - | ssh mn2 imgport import -\n\nWith one image, a second argument is the bundle path (xCAT's syntax). With -o or --all,\nevery argument is an image and each goes to DIR/<image>.tgz.\n\nWith -R the ssh command is `ssh -o BatchMode=yes`, or the words of $IMGPORT_SSH\n(e.g. `ssh -p 2222 -i /root/.ssh/mn2_key`) followed by `-o BatchMode=yes`."
    )]
    Export {
        /// IMAGE [DESTINATION], or several images with -o/--all
        #[arg(value_name = "IMAGE")]
        args: Vec<String>,
        /// Export every osimage of the catalog
        #[arg(long)]
        all: bool,
        /// Directory for the bundles (`<image>.tgz` each)
        #[arg(short = 'o', long, value_name = "DIR")]
        output_dir: Option<PathBuf>,
        /// Write the bundle(s) on this host through ssh instead (nothing is written
        /// locally); a relative destination is relative to the remote login directory
        #[arg(short = 'R', long = "remotehost", value_name = "USER@HOST")]
        remotehost: Option<String>,
        /// Extra file or directory to carry, with the directory import puts it in
        #[arg(short, long = "extra", value_name = "SRC[:DESTDIR]")]
        extra: Vec<String>,
        /// Take postscripts and postbootscripts from this node's definition
        #[arg(short, long, value_name = "NODE")]
        postscripts: Option<String>,
        /// gzip level (1 fastest, 9 smallest); with --codec zstd the tree's zstd level
        /// follows it (1→1, 3→2, 6→3, 7→6, 8→12, 9→19)
        #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=9))]
        level: u32,
        /// Write the statelite tree as xCAT's cpio newc, for an MN running real xCAT's
        /// imgimport (drops every xattr: capabilities, SELinux labels, ACLs; says which)
        #[arg(long, value_enum, default_value_t = CompatArg::Imgport)]
        compat: CompatArg,
        /// Compress the statelite tree with gzip (rootimgtree.gz, readable by xCAT and
        /// plain tools) or zstd (rootimgtree.zst: faster, smaller; imgport and zstd
        /// read it, xCAT cannot). Not with --compat xcat
        #[arg(long, value_enum, default_value_t = CodecArg::Gzip)]
        codec: CodecArg,
        /// Show more progress lines
        #[arg(short, long)]
        verbose: bool,
    },
    /// Define the image(s) of bundles on this management node (imgimport)
    #[command(
        after_help = "Examples:\n  imgport import myimage.tgz\n  imgport import myimage.tgz -f compute_test -p node1,node2\n  imgport import --dry-run myimage.tgz\n  imgport import /backup/*.tgz --json\n  imgport import /backup/myimage.tgz -R root@mn1   # read from mn1 through ssh\n  ssh mn1 imgport export myimage - | imgport import -\n\nWith -R the ssh command is `ssh -o BatchMode=yes`, or the words of $IMGPORT_SSH\n(e.g. `ssh -p 2222 -i /root/.ssh/mn1_key`) followed by `-o BatchMode=yes`."
    )]
    Import {
        /// Bundles (`-` for stdin)
        #[arg(value_name = "BUNDLE", required = true)]
        bundles: Vec<String>,
        /// Read the bundle(s) from this host through ssh (nothing is copied locally); a
        /// relative bundle path is relative to the remote login directory
        #[arg(short = 'R', long = "remotehost", value_name = "USER@HOST")]
        remotehost: Option<String>,
        /// Give these nodes the bundle's postscripts
        #[arg(short, long, value_name = "NODERANGE")]
        postscripts: Option<String>,
        /// Import under a new profile name
        #[arg(short = 'f', long, value_name = "NEW_PROFILE")]
        profile: Option<String>,
        /// The bundle is a plain tar (also detected automatically)
        #[arg(short, long)]
        nozip: bool,
        /// Show every file and table row the import would write, and touch nothing
        #[arg(long)]
        dry_run: bool,
        /// Show more progress lines
        #[arg(short, long)]
        verbose: bool,
    },
    /// Summarize a bundle from its manifest and index, without reading the payload
    #[command(
        after_help = "Examples:\n  imgport inspect myimage.tgz\n  imgport inspect myimage.tgz --json"
    )]
    Inspect { bundle: PathBuf },
    /// List the root tree of a bundle (or rootimgtree.gz) from its index, like `tar -tv`
    #[command(
        after_help = "Examples:\n  imgport ls myimage.tgz\n  imgport ls myimage.tgz rootimg/etc"
    )]
    Ls {
        bundle: PathBuf,
        /// Only this path and what is below it
        path: Option<String>,
    },
    /// Write one file of the root tree to stdout, reading only its members
    #[command(after_help = "Examples:\n  imgport cat myimage.tgz etc/passwd")]
    Cat { bundle: PathBuf, path: String },
    /// Check every CRC and file digest; with --against, compare a restored tree
    #[command(
        after_help = "Examples:\n  imgport verify myimage.tgz\n  imgport verify myimage.tgz --against /install/netboot/rhels8/x86_64/compute/rootimg"
    )]
    Verify {
        bundle: PathBuf,
        /// A restored root tree (the rootimg directory) to compare with the bundle
        #[arg(long, value_name = "DIR")]
        against: Option<PathBuf>,
    },
    /// Print a table as xCAT's tabdump CSV
    Tabdump { table: String },
    /// Load a tabdump CSV into its table (replacing its rows unless -a)
    Tabrestore {
        /// Add the rows instead of replacing the table's rows
        #[arg(short, long = "addrows")]
        addrows: bool,
        file: PathBuf,
    },
    /// Work on whole catalogs: copy tables between SQLite, PostgreSQL and MySQL/MariaDB
    Catalog {
        #[command(subcommand)]
        action: catalog::CatalogCommand,
    },
    /// Write man pages and shell completions into DIR (used by scripts/gen-docs.sh)
    #[command(hide = true)]
    GenerateDocs { dir: PathBuf },
}

/// `--compat`: which tree format export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CompatArg {
    /// imgport's lossless pax tree
    Imgport,
    /// xCAT's cpio newc (lossy)
    Xcat,
}

/// `--codec`: how export compresses the statelite tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CodecArg {
    /// rootimgtree.gz, multi-member gzip (xCAT and every gzip reader)
    Gzip,
    /// rootimgtree.zst, zstd seekable format (imgport and zstd only)
    Zstd,
}

/// Global flags every command sees.
#[derive(Debug, Clone)]
pub(crate) struct Globals {
    pub root: PathBuf,
    pub json: bool,
    pub quiet: bool,
    pub threads: usize,
}

/// Runs the command line and returns the process exit code.
pub fn run(args: Vec<OsString>) -> i32 {
    let program = args
        .first()
        .map(|a| {
            Path::new(a)
                .file_name()
                .unwrap_or(a.as_os_str())
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_default();
    match program.as_str() {
        "imgexport" => return xcat::imgexport(&args[1..]),
        "imgimport" => return xcat::imgimport(&args[1..]),
        _ => {}
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
        }
    };
    let g = Globals {
        root: cli.root.unwrap_or_else(|| PathBuf::from("/")),
        json: cli.json,
        quiet: cli.quiet,
        threads: cli.threads,
    };
    match cli.command {
        Command::Export {
            args,
            all,
            output_dir,
            remotehost,
            extra,
            postscripts,
            level,
            compat,
            codec,
            verbose,
        } => {
            if compat == CompatArg::Xcat && codec == CodecArg::Zstd {
                eprintln!(
                    "error: --codec zstd cannot be combined with --compat xcat (xCAT's imgimport reads only a gzip'd tree)"
                );
                return EXIT_USAGE;
            }
            let base = ExportOptions {
                image: String::new(),
                destination: None,
                discover: DiscoverOptions {
                    extras: extra,
                    postscripts_node: postscripts,
                },
                level,
                compat: match compat {
                    CompatArg::Imgport => Compat::Imgport,
                    CompatArg::Xcat => Compat::Xcat,
                },
                codec: match codec {
                    CodecArg::Gzip => Codec::Gzip,
                    CodecArg::Zstd => Codec::Zstd,
                },
                threads: g.threads,
                progress: Default::default(),
            };
            let plan = ExportPlan {
                args,
                all,
                output_dir,
                remotehost,
            };
            let to_stdout = plan.args.get(1).is_some_and(|d| d == "-") && !plan.multi();
            if to_stdout && plan.remotehost.is_some() {
                return no_stdio_with_remote();
            }
            let mut console = Console::new(verbose, to_stdout || g.json, g.quiet);
            run_exports(&g, &plan, &base, &mut console)
        }
        Command::Import {
            bundles,
            remotehost,
            postscripts,
            profile,
            nozip: _,
            dry_run,
            verbose,
        } => {
            if remotehost.is_some() && bundles.iter().any(|b| b == "-") {
                return no_stdio_with_remote();
            }
            let mut console = Console::new(verbose, g.json, g.quiet);
            let opts: Vec<ImportOptions> = bundles
                .iter()
                .map(|b| ImportOptions {
                    bundle: match &remotehost {
                        Some(host) => BundleSource::Remote {
                            host: host.clone(),
                            path: b.clone(),
                        },
                        None if b == "-" => BundleSource::Stdin,
                        None => BundleSource::Path(PathBuf::from(b)),
                    },
                    postscripts: postscripts.clone(),
                    profile: profile.clone(),
                    dry_run,
                    threads: g.threads,
                    progress: Default::default(),
                })
                .collect();
            run_imports(&g, &opts, &mut console)
        }
        Command::Inspect { bundle } => browse::inspect(&bundle, &g),
        Command::Ls { bundle, path } => browse::ls(&bundle, path.as_deref(), &g),
        Command::Cat { bundle, path } => browse::cat(&bundle, &path),
        Command::Verify { bundle, against } => browse::verify(&bundle, against.as_deref(), &g),
        Command::Tabdump { table } => {
            let mut console = Console::new(false, false, g.quiet);
            with_catalog(&g.root, &mut console, |_, catalog, console| {
                let mut out = std::io::stdout().lock();
                match catalog.tabdump(&table, &mut out) {
                    Ok(()) => EXIT_OK,
                    Err(e) => console.fail(&e.to_string()),
                }
            })
        }
        Command::Tabrestore { addrows, file } => {
            let mut console = Console::new(false, false, g.quiet);
            with_catalog(&g.root, &mut console, |_, catalog, console| {
                match catalog.tabrestore(&file, addrows) {
                    Ok(_) => EXIT_OK,
                    Err(e) => console.fail(&e.to_string()),
                }
            })
        }
        Command::Catalog { action } => catalog::run(action, &g),
        Command::GenerateDocs { dir } => docs::generate(Cli::command_for_docs(), &dir),
    }
}

impl Cli {
    fn command_for_docs() -> clap::Command {
        <Cli as clap::CommandFactory>::command()
    }
}

/// Which images an export call names, and where their bundles go.
struct ExportPlan {
    args: Vec<String>,
    all: bool,
    output_dir: Option<PathBuf>,
    /// `-R`: bundles go to this host through ssh.
    remotehost: Option<String>,
}

impl ExportPlan {
    fn multi(&self) -> bool {
        self.all || self.output_dir.is_some()
    }

    /// (image, destination) pairs, or a usage error.
    fn jobs(&self, catalog: &Catalog) -> Result<Vec<(String, Option<Destination>)>, String> {
        let local = self.local_jobs(catalog)?;
        let Some(host) = &self.remotehost else {
            return Ok(local);
        };
        // The same names, on the remote host (xCAT's rule for the remote path).
        Ok(local
            .into_iter()
            .map(|(image, dest)| {
                let wanted = match &dest {
                    Some(Destination::Path(p)) => Some(p.display().to_string()),
                    _ => None,
                };
                let path = remote::remote_bundle_path(wanted.as_deref(), &image);
                let dest = Destination::Remote {
                    host: host.clone(),
                    path,
                };
                (image, Some(dest))
            })
            .collect())
    }

    fn local_jobs(&self, catalog: &Catalog) -> Result<Vec<(String, Option<Destination>)>, String> {
        if !self.multi() {
            return match self.args.as_slice() {
                [image] => Ok(vec![(image.clone(), None)]),
                [image, dest] => Ok(vec![(
                    image.clone(),
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
        let images = if self.all {
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
            self.args.clone()
        };
        let dir = self
            .output_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(images
            .into_iter()
            .map(|i| {
                let dest = dir.join(imgport::export::default_bundle_name(&i));
                (i, Some(Destination::Path(dest)))
            })
            .collect())
    }
}

/// `-` with `-R`: the bundle cannot be both the local stdio stream and a remote file.
fn no_stdio_with_remote() -> i32 {
    eprintln!("error: '-' (standard input/output) cannot be combined with -R/--remotehost");
    EXIT_USAGE
}

/// Opens the root and its catalog, then runs `f`; setup failures are reported.
fn with_catalog(
    root_dir: &Path,
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
    f(&root, &catalog, console)
}

/// Exports every job; one failure does not stop the others.
fn run_exports(g: &Globals, plan: &ExportPlan, base: &ExportOptions, console: &mut Console) -> i32 {
    with_catalog(&g.root, console, |root, catalog, console| {
        let jobs = match plan.jobs(catalog) {
            Ok(j) => j,
            Err(msg) => {
                eprintln!("imgport: {msg}");
                return EXIT_USAGE;
            }
        };
        let mut results = Vec::new();
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
            summary("exported", &results, console);
        }
        code
    })
}

/// Imports every bundle; one failure does not stop the others.
fn run_imports(g: &Globals, all: &[ImportOptions], console: &mut Console) -> i32 {
    with_catalog(&g.root, console, |root, catalog, console| {
        let mut results = Vec::new();
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
                    results.extend(if failures.is_empty() {
                        vec![Some(Failure::Corrupt)]
                    } else {
                        failures
                    });
                }
                Err(e) => {
                    console.fail(&e.to_string());
                    errors.push(e.to_string());
                    results.push(Some(e.failure()));
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
            summary("imported", &results, console);
        }
        code
    })
}

/// One line after a run over several items.
fn summary(verb: &str, results: &[Option<Failure>], console: &mut Console) {
    let failed = results.iter().filter(|r| r.is_some()).count();
    console.note(&format!(
        "Summary: {} of {} images {verb}, {failed} failed.",
        results.len() - failed,
        results.len()
    ));
}

pub(crate) fn run_export(root_dir: &Path, opts: &ExportOptions, console: &mut Console) -> i32 {
    with_catalog(
        root_dir,
        console,
        |root, catalog, console| match imgport::export::export(root, catalog, opts, console) {
            Ok(_) => console.exit_code(),
            Err(e) => console.fail(&e.to_string()),
        },
    )
}

pub(crate) fn run_import(root_dir: &Path, opts: &ImportOptions, console: &mut Console) -> i32 {
    with_catalog(
        root_dir,
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
}

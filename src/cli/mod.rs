//! Command line: parses flags (clap) into the library's option structs, runs the flow,
//! prints lines the way xCAT's client does (or one JSON document with `--json`). No
//! logic of its own beyond that. This file holds the flags, the exit codes and the
//! dispatch; `flows.rs` runs export and import over every item of a call, `xcat.rs`
//! is the `imgexport`/`imgimport` syntax, `browse.rs` the read-only commands.

mod bar;
mod browse;
mod catalog;
mod console;
mod docs;
mod flows;
mod json;
mod quote;
mod xcat;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use imgport::error::Failure;
use imgport::export::{Codec, Compat, ExportOptions};
use imgport::image::DiscoverOptions;
use imgport::import::{BundleSource, ImportOptions};

use console::Console;
use flows::{run_exports, run_imports, with_catalog, ExportPlan, LockWanted};
use imgport::lock::Access;

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
    /// Fail at once (exit 1) instead of waiting when another imgport holds the MN lock
    #[arg(long, global = true)]
    no_wait: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write osimages and every file they need into bundles (imgexport)
    #[command(
        after_help = "Examples:\n  imgport export myimage                  # ./myimage.tgz\n  imgport export myimage /backup/my.tgz -e /install/postscripts/myscript -p node1\n  imgport export img1 img2 img3 -o /backup  # one bundle each\n  imgport export --all -o /backup --json\n  imgport export myimage /backup/ -R root@mn2   # mn2:/backup/myimage.tgz, through ssh\n  imgport export myimage - | ssh mn2 imgport import -\n\nWith one image, a second argument is the bundle path (xCAT's syntax). With -o or --all,\nevery argument is an image and each goes to DIR/<image>.tgz.\n\nWith -R the ssh command is `ssh -o BatchMode=yes`, or the words of $IMGPORT_SSH\n(e.g. `ssh -p 2222 -i /root/.ssh/mn2_key`) followed by `-o BatchMode=yes`."
    )]
    Export(ExportArgs),
    /// Define the image(s) of bundles on this management node (imgimport)
    #[command(
        after_help = "Examples:\n  imgport import myimage.tgz\n  imgport import myimage.tgz -f compute_test -p node1,node2\n  imgport import --dry-run myimage.tgz\n  imgport import /backup/*.tgz --json\n  imgport import /backup/myimage.tgz -R root@mn1   # read from mn1 through ssh\n  ssh mn1 imgport export myimage - | imgport import -\n\nWith -R the ssh command is `ssh -o BatchMode=yes`, or the words of $IMGPORT_SSH\n(e.g. `ssh -p 2222 -i /root/.ssh/mn1_key`) followed by `-o BatchMode=yes`."
    )]
    Import(ImportArgs),
    /// Summarize a bundle from its manifest and index, without reading the payload
    #[command(
        after_help = "Examples:\n  imgport inspect myimage.tgz\n  imgport inspect myimage.tgz --json"
    )]
    Inspect { bundle: PathBuf },
    /// List the root tree of a bundle (or rootimgtree.gz) from its index, like `tar -tv`
    #[command(
        after_help = "Examples:\n  imgport ls myimage.tgz\n  imgport ls myimage.tgz rootimg/etc\n  imgport ls myimage.tgz --json\n\nNames are printed with GNU tar's escapes (`caf\\351` for a byte that is not UTF-8);\n--json gives their raw bytes too (path_b64)."
    )]
    Ls {
        bundle: PathBuf,
        /// Only this path and what is below it
        #[arg(value_parser = clap::value_parser!(OsString))]
        path: Option<OsString>,
    },
    /// Write one file of the root tree to stdout, reading only its members
    #[command(
        after_help = "Examples:\n  imgport cat myimage.tgz etc/passwd\n  imgport cat myimage.tgz rootimg/etc/hosts > hosts\n  imgport cat myimage.tgz \"$(printf 'etc/caf\\351')\"   # a name that is not UTF-8"
    )]
    Cat {
        bundle: PathBuf,
        #[arg(value_parser = clap::value_parser!(OsString))]
        path: OsString,
    },
    /// Check every member's CRC and BLAKE3 (v1 trees: file digests); with --against, compare a restored tree
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
    #[command(
        after_help = "Examples:\n  imgport tabdump osimage > osimage.csv\n  imgport --root /srv/mn2 tabdump postscripts\n  imgport tabdump nodelist | grep compute"
    )]
    Tabdump { table: String },
    /// Load a tabdump CSV into its table (replacing its rows unless -a)
    #[command(
        after_help = "Examples:\n  imgport tabrestore osimage.csv            # the table is named by the file\n  imgport tabrestore -a postscripts.csv     # add rows, keep the others\n  imgport tabdump osimage | ssh mn2 'cat > /tmp/osimage.csv && imgport tabrestore /tmp/osimage.csv'"
    )]
    Tabrestore {
        /// Add the rows instead of replacing the table's rows
        #[arg(short, long = "addrows")]
        addrows: bool,
        file: PathBuf,
    },
    /// Work on whole catalogs: copy tables between SQLite, PostgreSQL and MySQL/MariaDB
    #[command(
        after_help = "Examples:\n  imgport catalog copy --to /root/pg.cfgloc --dry-run\n  imgport catalog copy --from /etc/xcat --to /root/pg.cfgloc osimage linuximage litefile\n\n`imgport catalog copy --help` says what CFGLOC may be."
    )]
    Catalog {
        #[command(subcommand)]
        action: catalog::CatalogCommand,
    },
    /// Finish or undo what an interrupted import left (every command does this first)
    #[command(
        after_help = "Examples:\n  imgport recover\n  imgport --root /srv/mn2 recover --json\n\nAn import killed at any point leaves a journal in /var/lib/imgport; recover puts the MN\nback as it was before that import, or completes it if its rows were written, and removes\nits staging directories."
    )]
    Recover,
    /// Write man pages and shell completions into DIR (used by scripts/gen-docs.sh)
    #[command(hide = true)]
    GenerateDocs { dir: PathBuf },
}

/// `imgport export` flags, as typed.
#[derive(Debug, clap::Args)]
struct ExportArgs {
    /// IMAGE [DESTINATION], or several images with -o/--all
    #[arg(value_name = "IMAGE", value_parser = clap::value_parser!(OsString))]
    args: Vec<OsString>,
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
    /// imgimport, plus a rootimgtree.meta sidecar with what newc cannot hold (xattrs,
    /// capabilities, ACLs, holes, nanoseconds): real xCAT ignores it, imgport import
    /// restores losslessly with it. `imgexport` writes this form unless
    /// IMGPORT_TREE_FORMAT=pax
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
}

/// `imgport import` flags, as typed.
#[derive(Debug, clap::Args)]
struct ImportArgs {
    /// Bundles (`-` for stdin)
    #[arg(value_name = "BUNDLE", required = true, value_parser = clap::value_parser!(OsString))]
    bundles: Vec<OsString>,
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
}

/// `--compat`: which tree format export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CompatArg {
    /// imgport's lossless pax tree
    Imgport,
    /// xCAT's cpio newc with imgport's metadata sidecar
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
    /// `--no-wait`: fail instead of waiting for the MN lock.
    pub no_wait: bool,
}

/// Runs the command line and returns the process exit code.
pub fn run(args: Vec<OsString>) -> i32 {
    match program_name(&args).as_str() {
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
        no_wait: cli.no_wait,
    };
    match cli.command {
        Command::Export(a) => export_command(&g, a),
        Command::Import(a) => import_command(&g, a),
        Command::Inspect { bundle } => browse::inspect(&bundle, &g),
        Command::Ls { bundle, path } => browse::ls(&bundle, path.as_deref(), &g),
        Command::Cat { bundle, path } => browse::cat(&bundle, &path),
        Command::Verify { bundle, against } => browse::verify(&bundle, against.as_deref(), &g),
        Command::Tabdump { table } => tabdump(&g, &table),
        Command::Tabrestore { addrows, file } => tabrestore(&g, &file, addrows),
        Command::Catalog { action } => catalog::run(action, &g),
        Command::Recover => flows::recover(&g, &mut Console::new(false, g.json, g.quiet)),
        Command::GenerateDocs { dir } => docs::generate(Cli::command_for_docs(), &dir),
    }
}

/// The name the binary was called by (`imgexport` and `imgimport` are xCAT's).
fn program_name(args: &[OsString]) -> String {
    args.first()
        .map(|a| {
            Path::new(a)
                .file_name()
                .unwrap_or(a.as_os_str())
                .to_string_lossy()
                .into_owned()
        })
        .unwrap_or_default()
}

impl ExportArgs {
    /// The library's options for every image of the call (image and destination are
    /// set per job).
    fn options(&self, threads: usize) -> ExportOptions {
        ExportOptions {
            image: String::new(),
            destination: None,
            discover: DiscoverOptions {
                extras: self.extra.clone(),
                postscripts_node: self.postscripts.clone(),
            },
            level: self.level,
            compat: match self.compat {
                CompatArg::Imgport => Compat::Imgport,
                CompatArg::Xcat => Compat::Xcat,
            },
            codec: match self.codec {
                CodecArg::Gzip => Codec::Gzip,
                CodecArg::Zstd => Codec::Zstd,
            },
            threads,
            progress: Default::default(),
        }
    }
}

impl ImportArgs {
    /// The library's options, one per bundle; a usage error for a remote path that is
    /// not UTF-8 (it becomes part of a shell command line).
    fn options(&self, threads: usize) -> Result<Vec<ImportOptions>, String> {
        self.bundles
            .iter()
            .map(|b| {
                Ok(ImportOptions {
                    bundle: match &self.remotehost {
                        Some(host) => BundleSource::Remote {
                            host: host.clone(),
                            path: remote_path(b)?,
                        },
                        None if b == "-" => BundleSource::Stdin,
                        None => BundleSource::Path(PathBuf::from(b)),
                    },
                    postscripts: self.postscripts.clone(),
                    profile: self.profile.clone(),
                    dry_run: self.dry_run,
                    threads,
                    progress: Default::default(),
                })
            })
            .collect()
    }
}

/// `imgport export`: checks the flags that clap cannot, then exports every job.
fn export_command(g: &Globals, a: ExportArgs) -> i32 {
    if a.compat == CompatArg::Xcat && a.codec == CodecArg::Zstd {
        eprintln!(
            "error: --codec zstd cannot be combined with --compat xcat (xCAT's imgimport reads only a gzip'd tree)"
        );
        return EXIT_USAGE;
    }
    let base = a.options(g.threads);
    let plan = ExportPlan {
        args: a.args,
        all: a.all,
        output_dir: a.output_dir,
        remotehost: a.remotehost,
    };
    let to_stdout = plan.args.get(1).is_some_and(|d| d == "-") && !plan.multi();
    if to_stdout && plan.remotehost.is_some() {
        return no_stdio_with_remote();
    }
    let mut console = Console::new(a.verbose, to_stdout || g.json, g.quiet);
    run_exports(g, &plan, &base, &mut console)
}

/// `imgport import`: every bundle named, in order.
fn import_command(g: &Globals, a: ImportArgs) -> i32 {
    if a.remotehost.is_some() && a.bundles.iter().any(|b| b == "-") {
        return no_stdio_with_remote();
    }
    let all = match a.options(g.threads) {
        Ok(all) => all,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let mut console = Console::new(a.verbose, g.json, g.quiet);
    run_imports(g, &all, &mut console)
}

/// `imgport tabdump TABLE`: the table as xCAT's CSV on stdout.
fn tabdump(g: &Globals, table: &str) -> i32 {
    let mut console = Console::new(false, false, g.quiet);
    let lock = LockWanted {
        access: Access::Shared,
        no_wait: g.no_wait,
        command: "tabdump",
    };
    with_catalog(&g.root, lock, &mut console, |_, catalog, console| {
        let mut out = std::io::stdout().lock();
        match catalog.tabdump(table, &mut out) {
            Ok(()) => EXIT_OK,
            Err(e) => console.fail(&e.to_string()),
        }
    })
}

/// `imgport tabrestore [-a] FILE`.
fn tabrestore(g: &Globals, file: &Path, addrows: bool) -> i32 {
    let mut console = Console::new(false, false, g.quiet);
    let lock = LockWanted {
        access: Access::Exclusive,
        no_wait: g.no_wait,
        command: "tabrestore",
    };
    with_catalog(
        &g.root,
        lock,
        &mut console,
        |_, catalog, console| match catalog.tabrestore(file, addrows) {
            Ok(_) => EXIT_OK,
            Err(e) => console.fail(&e.to_string()),
        },
    )
}

impl Cli {
    fn command_for_docs() -> clap::Command {
        <Cli as clap::CommandFactory>::command()
    }
}

/// A path on the `-R` host, which ssh is given inside a command line: UTF-8 only.
pub(super) fn remote_path(p: &std::ffi::OsStr) -> Result<String, String> {
    p.to_str().map(str::to_string).ok_or_else(|| {
        format!(
            "a path on the remote host must be UTF-8: {}",
            p.to_string_lossy()
        )
    })
}

/// `-` with `-R`: the bundle cannot be both the local stdio stream and a remote file.
fn no_stdio_with_remote() -> i32 {
    eprintln!("error: '-' (standard input/output) cannot be combined with -R/--remotehost");
    EXIT_USAGE
}

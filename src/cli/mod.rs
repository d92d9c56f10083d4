//! Command line: parses flags (clap) into the library's option structs, runs the flow,
//! prints lines the way xCAT's client does. No logic of its own beyond that.

mod browse;
mod console;
mod xcat;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use imgport::catalog::Catalog;
use imgport::export::{Compat, Destination, ExportOptions};
use imgport::image::DiscoverOptions;
use imgport::import::{BundleSource, ImportOptions};
use imgport::remote;
use imgport::root::Root;

use console::Console;

/// Exit code when everything succeeded.
pub const EXIT_OK: i32 = 0;
/// Exit code for any failure (xCAT's only error code).
pub const EXIT_FAILED: i32 = 1;
/// Exit code for a command line that could not be parsed.
pub const EXIT_USAGE: i32 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "imgport",
    version,
    about = "Export and import xCAT osimages as single bundle files, fast and losslessly",
    after_help = "Examples:\n  imgport export rhels8-x86_64-statelite-compute\n  imgport --root /srv/mn2 import rhels8-x86_64-statelite-compute.tgz -f compute_test\n  imgport tabdump osimage > osimage.csv"
)]
struct Cli {
    /// Directory that stands for the management node's `/` (like `rpm --root`)
    #[arg(long, global = true, env = "IMGPORT_ROOT", value_name = "DIR")]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write an osimage and every file it needs into one bundle (imgexport)
    #[command(
        after_help = "Examples:\n  imgport export myimage                  # ./myimage.tgz\n  imgport export myimage /backup/my.tgz -e /install/postscripts/myscript -p node1\n  imgport export myimage /backup/ -R root@mn2   # mn2:/backup/myimage.tgz, through ssh\n  imgport export myimage - | ssh mn2 imgport import -\n\nWith -R the ssh command is `ssh -o BatchMode=yes`, or the words of $IMGPORT_SSH\n(e.g. `ssh -p 2222 -i /root/.ssh/mn2_key`) followed by `-o BatchMode=yes`."
    )]
    Export {
        /// The osimage name
        image: String,
        /// Bundle path (default `<image>.tgz` in the current directory; `-` for stdout)
        destination: Option<String>,
        /// Write the bundle on this host through ssh instead (nothing is written
        /// locally); a relative destination is relative to the remote login directory
        #[arg(short = 'R', long = "remotehost", value_name = "USER@HOST")]
        remotehost: Option<String>,
        /// Extra file or directory to carry, with the directory import puts it in
        #[arg(short, long = "extra", value_name = "SRC[:DESTDIR]")]
        extra: Vec<String>,
        /// Take postscripts and postbootscripts from this node's definition
        #[arg(short, long, value_name = "NODE")]
        postscripts: Option<String>,
        /// gzip level for compressible payload
        #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=9))]
        level: u32,
        /// Write the statelite tree as xCAT's cpio newc, for an MN running real xCAT's
        /// imgimport (drops every xattr: capabilities, SELinux labels, ACLs; says which)
        #[arg(long, value_enum, default_value_t = CompatArg::Imgport)]
        compat: CompatArg,
        /// Show more progress lines
        #[arg(short, long)]
        verbose: bool,
    },
    /// Define the image(s) of a bundle on this management node (imgimport)
    #[command(
        after_help = "Examples:\n  imgport import myimage.tgz\n  imgport import myimage.tgz -f compute_test -p node1,node2\n  imgport import /backup/myimage.tgz -R root@mn1   # read from mn1 through ssh\n  ssh mn1 imgport export myimage - | imgport import -\n\nWith -R the ssh command is `ssh -o BatchMode=yes`, or the words of $IMGPORT_SSH\n(e.g. `ssh -p 2222 -i /root/.ssh/mn1_key`) followed by `-o BatchMode=yes`."
    )]
    Import {
        /// The bundle (`-` for stdin)
        bundle: String,
        /// Read the bundle from this host through ssh (nothing is copied locally); a
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
        /// Show more progress lines
        #[arg(short, long)]
        verbose: bool,
    },
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
}

/// `--compat`: which tree format export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CompatArg {
    /// imgport's lossless pax tree
    Imgport,
    /// xCAT's cpio newc (lossy)
    Xcat,
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
    let root_dir = cli.root.unwrap_or_else(|| PathBuf::from("/"));
    match cli.command {
        Command::Export {
            image,
            destination,
            remotehost,
            extra,
            postscripts,
            level,
            compat,
            verbose,
        } => {
            let destination = match (remotehost, destination) {
                (Some(_), Some(d)) if d == "-" => return no_stdio_with_remote(),
                (Some(host), d) => Some(Destination::Remote {
                    path: remote::remote_bundle_path(d.as_deref(), &image),
                    host,
                }),
                (None, Some(d)) if d == "-" => Some(Destination::Stdout),
                (None, d) => d.map(|d| Destination::Path(PathBuf::from(d))),
            };
            let opts = ExportOptions {
                image,
                destination,
                discover: DiscoverOptions {
                    extras: extra,
                    postscripts_node: postscripts,
                },
                level,
                compat: match compat {
                    CompatArg::Imgport => Compat::Imgport,
                    CompatArg::Xcat => Compat::Xcat,
                },
            };
            let stdout_is_bundle = opts.destination == Some(Destination::Stdout);
            let mut console = Console::new(verbose, stdout_is_bundle);
            run_export(&root_dir, &opts, &mut console)
        }
        Command::Import {
            bundle,
            remotehost,
            postscripts,
            profile,
            nozip: _,
            verbose,
        } => {
            let source = match remotehost {
                Some(_) if bundle == "-" => return no_stdio_with_remote(),
                Some(host) => BundleSource::Remote { host, path: bundle },
                None if bundle == "-" => BundleSource::Stdin,
                None => BundleSource::Path(PathBuf::from(bundle)),
            };
            let opts = ImportOptions {
                bundle: source,
                postscripts,
                profile,
            };
            let mut console = Console::new(verbose, false);
            run_import(&root_dir, &opts, &mut console)
        }
        Command::Ls { bundle, path } => browse::ls(&bundle, path.as_deref()),
        Command::Cat { bundle, path } => browse::cat(&bundle, &path),
        Command::Verify { bundle, against } => browse::verify(&bundle, against.as_deref()),
        Command::Tabdump { table } => {
            let mut console = Console::new(false, false);
            with_catalog(&root_dir, &mut console, |_, catalog, console| {
                let mut out = std::io::stdout().lock();
                match catalog.tabdump(&table, &mut out) {
                    Ok(()) => EXIT_OK,
                    Err(e) => console.fail(&e.to_string()),
                }
            })
        }
        Command::Tabrestore { addrows, file } => {
            let mut console = Console::new(false, false);
            with_catalog(&root_dir, &mut console, |_, catalog, console| match catalog
                .tabrestore(&file, addrows)
            {
                Ok(_) => EXIT_OK,
                Err(e) => console.fail(&e.to_string()),
            })
        }
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

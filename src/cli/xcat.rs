//! `imgexport` / `imgimport`: xCAT's command lines, usage texts and 0/1 exit codes,
//! so scripts written for xCAT keep working unchanged.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

use imgport::export::{Compat, Destination, ExportOptions};
use imgport::image::DiscoverOptions;
use imgport::import::{BundleSource, ImportOptions};
use imgport::naming;

use super::console::Console;
use super::{EXIT_FAILED, EXIT_OK};

const EXPORT_USAGE: &str = "imgexport: Creates a tarball (bundle) of an existing xCAT image
Usage: 
\timgexport [-h|--help]
\timgexport <image_name> [destination] [[-e|--extra <file:dir> ] ... ] [-p|--postscripts <node_name>] [-R|--remotehost <userid@host>] [-v]";

const IMPORT_USAGE: &str = "imgimport: Takes in an xCAT image bundle and defines it to xCAT so you can use it
Usage: 
\timgimport [-h|--help]
\timgimport <bundle_file_name> [-p|--postscripts <nodelist>] [-f|--profile <new_profile>] [-R|--remotehost <userid@host>] [-n|--nozip] [-v]";

#[derive(Debug, Parser)]
#[command(
    name = "imgexport",
    disable_help_flag = true,
    disable_version_flag = true
)]
struct ExportArgs {
    #[arg(short = 'h', long = "help", short_alias = '?')]
    help: bool,
    #[arg(short = 'e', long = "extra")]
    extra: Vec<String>,
    #[arg(short = 'p', long = "postscripts")]
    postscripts: Option<String>,
    #[arg(short = 'R', long = "remotehost")]
    remotehost: Option<String>,
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    #[arg(long, env = "IMGPORT_ROOT", hide = true)]
    root: Option<PathBuf>,
    #[arg(value_parser = clap::value_parser!(OsString))]
    positional: Vec<OsString>,
}

#[derive(Debug, Parser)]
#[command(
    name = "imgimport",
    disable_help_flag = true,
    disable_version_flag = true
)]
struct ImportArgs {
    #[arg(short = 'h', long = "help", short_alias = '?')]
    help: bool,
    #[arg(short = 'p', long = "postscripts")]
    postscripts: Option<String>,
    #[arg(short = 'f', long = "profile")]
    profile: Option<String>,
    #[arg(short = 'R', long = "remotehost")]
    remotehost: Option<String>,
    #[arg(short = 'n', long = "nozip")]
    nozip: bool,
    #[arg(short = 'v', long = "verbose")]
    verbose: bool,
    #[arg(long, env = "IMGPORT_ROOT", hide = true)]
    root: Option<PathBuf>,
    #[arg(value_parser = clap::value_parser!(OsString))]
    positional: Vec<OsString>,
}

/// Chooses the tree form of `imgexport` (xCAT's syntax has no flag for it).
pub const TREE_FORMAT_ENV: &str = "IMGPORT_TREE_FORMAT";

/// The tree form `imgexport` writes: cpio newc with its metadata sidecar unless
/// `IMGPORT_TREE_FORMAT=pax`. newc is the default because a bundle made through
/// xCAT's command name may be imported by real xCAT, whose `cpio -idum` mangles a pax
/// tree silently; the sidecar keeps an imgport import lossless (FORMAT.md §7).
fn tree_format_from_env() -> Result<Compat, String> {
    match std::env::var_os(TREE_FORMAT_ENV) {
        None => Ok(Compat::Xcat),
        Some(v) if v.is_empty() || v == "newc" => Ok(Compat::Xcat),
        Some(v) if v == "pax" => Ok(Compat::Imgport),
        Some(v) => Err(format!(
            "{TREE_FORMAT_ENV}={} is not a tree format (newc or pax)",
            v.to_string_lossy()
        )),
    }
}

fn usage(text: &str, code: i32) -> i32 {
    println!("{text}");
    code
}

pub fn imgexport(args: &[OsString]) -> i32 {
    if args.is_empty() {
        return usage(EXPORT_USAGE, EXIT_FAILED);
    }
    let argv = std::iter::once(OsString::from("imgexport")).chain(args.iter().cloned());
    let parsed = match ExportArgs::try_parse_from(argv) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}", e.kind());
            return usage(EXPORT_USAGE, EXIT_FAILED);
        }
    };
    if parsed.help {
        return usage(EXPORT_USAGE, EXIT_OK);
    }
    let compat = match tree_format_from_env() {
        Ok(c) => c,
        Err(msg) => {
            eprintln!("Error: {msg}");
            return EXIT_FAILED;
        }
    };
    let mut console = Console::new(parsed.verbose, false, false);
    let mut pos = parsed.positional.into_iter();
    // Not UTF-8, it cannot be in the catalog: xCAT's "Cannot find image" says so.
    let image = pos
        .next()
        .map(|i| i.to_string_lossy().into_owned())
        .unwrap_or_default();
    let destination = pos.next();
    // -R: xCAT's remote path, `<dirpart of destination><bundle name>`.
    let destination = match parsed.remotehost {
        Some(host) => {
            let wanted = match destination.as_deref().map(super::remote_path).transpose() {
                Ok(w) => w,
                Err(e) => return console.fail(&e),
            };
            Some(Destination::Remote {
                path: naming::remote_bundle_path(wanted.as_deref(), &image),
                host,
            })
        }
        None => destination.map(|d| Destination::Path(PathBuf::from(d))),
    };
    let opts = ExportOptions {
        image,
        destination,
        discover: DiscoverOptions {
            extras: parsed.extra,
            postscripts_node: parsed.postscripts,
        },
        level: 6,
        compat,
        // imgexport is xCAT's command: its bundles stay gzip throughout.
        codec: Default::default(),
        threads: 0,
        progress: Default::default(),
    };
    let root = parsed.root.unwrap_or_else(|| PathBuf::from("/"));
    let (progress, bar) = super::bar::start(false);
    console.set_bar(bar.as_ref().map(|b| b.bar.clone()));
    let opts = ExportOptions { progress, ..opts };
    super::flows::run_export(&root, &opts, &mut console)
}

pub fn imgimport(args: &[OsString]) -> i32 {
    if args.is_empty() {
        return usage(IMPORT_USAGE, EXIT_FAILED);
    }
    let argv = std::iter::once(OsString::from("imgimport")).chain(args.iter().cloned());
    let parsed = match ImportArgs::try_parse_from(argv) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{}", e.kind());
            return usage(IMPORT_USAGE, EXIT_FAILED);
        }
    };
    if parsed.help {
        return usage(IMPORT_USAGE, EXIT_OK);
    }
    let Some(bundle) = parsed.positional.into_iter().next() else {
        return usage(IMPORT_USAGE, EXIT_FAILED);
    };
    let mut console = Console::new(parsed.verbose, false, false);
    let _ = parsed.nozip;
    let source = match parsed.remotehost {
        Some(host) => match super::remote_path(&bundle) {
            Ok(path) => BundleSource::Remote { host, path },
            Err(e) => return console.fail(&e),
        },
        None => BundleSource::Path(PathBuf::from(bundle)),
    };
    let opts = ImportOptions {
        bundle: source,
        postscripts: parsed.postscripts,
        profile: parsed.profile,
        dry_run: false,
        threads: 0,
        progress: Default::default(),
    };
    let root = parsed.root.unwrap_or_else(|| PathBuf::from("/"));
    let (progress, bar) = super::bar::start(false);
    console.set_bar(bar.as_ref().map(|b| b.bar.clone()));
    let opts = ImportOptions { progress, ..opts };
    super::flows::run_import(&root, &opts, &mut console)
}

//! The export flow (`imgexport`): discover an image's files, write its manifest first,
//! then stream every payload file and the statelite root tree into one bundle.
//!
//! Orchestration only: discovery lives in [`crate::image`], the container in
//! [`crate::bundle`], the tree encoding in [`crate::tree`], the ssh transfer in
//! [`crate::remote`]. A failed export leaves no partial bundle: the bundle is written to
//! a temporary name beside the destination (on the remote host for `-R`) and renamed
//! into place only when complete.

use std::fs::File;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::bundle::{
    image_dir_name, BundleWriter, HeaderPatch, Location, EXTRA_DIR, MANIFEST_NAME,
};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::image::{self, DiscoverOptions, ImageSet};
use crate::remote::{self, Push};
use crate::report::Reporter;
use crate::root::{basename, Root};
use crate::tree;
pub use crate::tree::Codec;

/// Manifest key imgport adds (xCAT ignores unknown top-level keys) to say which tree
/// format `rootimgtree.gz` (or `.zst`) holds.
pub const TREE_FORMAT_KEY: &str = "imgporttreeformat";
/// Value of [`TREE_FORMAT_KEY`] for a gzip'd POSIX pax tar of `rootimg/`.
pub const TREE_FORMAT_PAX: &str = "pax";
/// Value of [`TREE_FORMAT_KEY`] for the same tar in zstd frames, `rootimgtree.zst`
/// (FORMAT.md §6).
pub const TREE_FORMAT_PAX_ZSTD: &str = "pax-zstd";

/// Where the bundle goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// A file path (relative paths are relative to the cwd).
    Path(PathBuf),
    /// Standard output.
    Stdout,
    /// A file on another host, written through ssh (`-R`); `path` is as the remote
    /// shell sees it (relative to the login directory unless absolute), see
    /// [`remote::remote_bundle_path`].
    Remote { host: String, path: String },
}

/// What to export and how.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    pub image: String,
    /// `None`: `<cwd>/<image, whitespace runs → _>.tgz`.
    pub destination: Option<Destination>,
    pub discover: DiscoverOptions,
    /// gzip level for compressible payload (1–9).
    pub level: u32,
    /// Which statelite tree format to write.
    pub compat: Compat,
    /// How the imgport tree is compressed (ignored, and refused by the CLI, with
    /// [`Compat::Xcat`], whose tree xCAT must read: always gzip).
    pub codec: Codec,
    /// Compression threads for the tree (0: one per core).
    pub threads: usize,
    /// Progress counters to update (phases "walk", "compress").
    pub progress: crate::progress::Handle,
}

/// The statelite tree format of a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compat {
    /// imgport's lossless pax tree (FORMAT.md): xattrs, ACLs, holes, nanoseconds kept.
    #[default]
    Imgport,
    /// xCAT's gzip'd cpio newc, for MNs whose imgimport is real xCAT's; loses every
    /// xattr (reported) and stores sparse files dense.
    Xcat,
}

/// What an export did.
#[derive(Debug, Clone)]
pub struct ExportReport {
    pub image: String,
    /// The bundle written (`None` for stdout and a remote host).
    pub bundle: Option<PathBuf>,
    pub files: usize,
    pub tree_entries: u64,
    /// Payload bytes: files as they are, the tree as its uncompressed archive.
    pub bytes_in: u64,
    /// Bytes of the bundle.
    pub bytes_out: u64,
    pub seconds: f64,
}

/// The default bundle file name for an image.
pub fn default_bundle_name(image: &str) -> String {
    format!("{}.tgz", image_dir_name(image))
}

/// Exports one image. Lines go to `report`; fatal problems are returned.
pub fn export(
    root: &Root,
    catalog: &Catalog,
    opts: &ExportOptions,
    report: &mut dyn Reporter,
) -> Result<ExportReport> {
    let started = Instant::now();
    let destination = match &opts.destination {
        Some(d) => d.clone(),
        None => Destination::Path(PathBuf::from(default_bundle_name(&opts.image))),
    };
    let where_to = match &destination {
        Destination::Path(p) => absolute(p)
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        Destination::Stdout => "standard output".to_string(),
        // xCAT says `Exporting <img> to <user@host>...` for -R.
        Destination::Remote { host, .. } => host.clone(),
    };
    report.info(&format!("Exporting {} to {where_to}...", opts.image));
    let set = image::discover(root, catalog, &opts.image, &opts.discover, report)?;
    let mtime = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);

    let mut out = ExportReport {
        image: opts.image.clone(),
        bundle: None,
        files: 0,
        tree_entries: 0,
        bytes_in: 0,
        bytes_out: 0,
        seconds: 0.0,
    };
    match &destination {
        Destination::Stdout => {
            let stdout = io::stdout().lock();
            let job = Job {
                root,
                set: &set,
                opts,
                mtime,
            };
            let (mut w, _) = write_bundle(&job, BufWriter::new(stdout), &mut out, report)?;
            w.flush().map_err(|e| Error::io("standard output", e))?;
        }
        Destination::Remote { host, path } => {
            let push = Push::start(&remote::Ssh::from_env(), host, path)?;
            let job = Job {
                root,
                set: &set,
                opts,
                mtime,
            };
            for line in send(&job, push, &mut out, report)? {
                report.verbose(&line);
            }
        }
        Destination::Path(p) => {
            let path = absolute(p);
            let dir = path.parent().unwrap_or(Path::new("/"));
            let tmp = tempfile::Builder::new()
                .prefix(".imgport-export-")
                .tempfile_in(dir)
                .map_err(|e| Error::io(dir, e))?;
            let file = tmp
                .as_file()
                .try_clone()
                .map_err(|e| Error::io(tmp.path(), e))?;
            let job = Job {
                root,
                set: &set,
                opts,
                mtime,
            };
            let (w, _) = write_bundle(&job, BufWriter::new(file), &mut out, report)?;
            let file = w
                .into_inner()
                .map_err(|e| Error::io(tmp.path(), e.into_error()))?;
            file.sync_all().map_err(|e| Error::io(tmp.path(), e))?;
            // Bundles are readable like any tar xCAT writes under the default umask.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
                .map_err(|e| Error::io(tmp.path(), e))?;
            tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
            out.bundle = Some(path);
        }
    }
    out.seconds = started.elapsed().as_secs_f64();
    report.info("Done!");
    Ok(out)
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|c| c.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

/// Streams the bundle into `push` and commits it on the remote host. ssh's own failure
/// wins over the local error it causes (a write into a dead ssh is just "broken pipe").
fn send(
    job: &Job<'_>,
    push: Push,
    out: &mut ExportReport,
    report: &mut dyn Reporter,
) -> Result<Vec<String>> {
    // Large writes: each one is a pipe write ssh has to pick up.
    let mut w = BufWriter::with_capacity(1 << 18, push);
    let written = write_bundle(job, &mut w, out, report)
        .and_then(|(w, patch)| w.flush().map(|_| patch).map_err(|e| Error::io("ssh", e)));
    let (push, _) = w.into_parts();
    match written {
        Ok(patch) => Ok(push.finish(patch.as_slice())?),
        Err(e) => Err(push.abort().map(Error::from).unwrap_or(e)),
    }
}

/// What one bundle is written from.
struct Job<'a> {
    root: &'a Root,
    set: &'a ImageSet,
    opts: &'a ExportOptions,
    /// Stamp for generated entries.
    mtime: u64,
}

/// Writes the whole bundle to `w`: directories, manifest first, payload, tree, extras.
/// Returns the writer and, for a destination that cannot seek, the tree's tar header
/// still to be rewritten.
fn write_bundle<W: TreeSink>(
    job: &Job<'_>,
    w: W,
    out: &mut ExportReport,
    report: &mut dyn Reporter,
) -> Result<(W, Option<HeaderPatch>)> {
    let Job {
        root,
        set,
        opts,
        mtime,
    } = *job;
    let img = image_dir_name(&opts.image);
    let mut bundle = BundleWriter::new(w, opts.level, mtime);
    let mut patch = None;
    bundle.begin_image(&img, true)?;
    let mut manifest = set.manifest.clone();
    let codec = tree_codec(opts);
    if set.tree.is_some() && opts.compat == Compat::Imgport {
        let format = match codec {
            Codec::Gzip => TREE_FORMAT_PAX,
            Codec::Zstd => TREE_FORMAT_PAX_ZSTD,
        };
        manifest.other.insert(TREE_FORMAT_KEY.into(), format.into());
    }
    if let Some(path) = manifest
        .rootimgtree
        .as_mut()
        .filter(|_| codec == Codec::Zstd)
    {
        // Discovery names xCAT's `rootimgtree.gz`; the manifest must name the member
        // actually written, `<rootimgdir>/rootimgtree.zst`.
        *path = format!("{}/{}", crate::root::dirname(path), codec.tree_file_name());
    }
    bundle.add_bytes(
        &format!("{img}/{MANIFEST_NAME}"),
        manifest.to_xml().as_bytes(),
        0o644,
    )?;
    for f in &set.files {
        report.info(&f.src);
        let host = root.resolve(&f.src)?;
        bundle.add_file(&format!("{img}/{}", f.name), &host)?;
        out.files += 1;
    }
    if let Some(csv) = &set.litefile_csv {
        bundle.add_bytes(&format!("{img}/litefile.csv"), csv, 0o644)?;
    }
    let mut tree_adjust = (0, 0);
    if let Some(tree_dir) = &set.tree {
        report.info("Packing root image. It will take a while");
        let host = root.resolve(tree_dir)?;
        let name = format!("{img}/{}", codec.tree_file_name());
        let encode = tree_encoder(&host, opts);
        let (stats, loc, deferred) = W::add_tree(&mut bundle, &name, &encode)?;
        bundle.set_tree(loc);
        patch = deferred;
        for w in &stats.warnings {
            report.warning(w);
        }
        out.tree_entries = stats.entries;
        // Count the tree by what it holds, not by its compressed size.
        tree_adjust = (loc.len, stats.archive_bytes);
    }
    for extra in &set.extras {
        add_extra(root, &mut bundle, &img, extra, report)?;
    }
    for kitdir in &set.kit_dirs {
        let host = root.resolve(kitdir)?;
        if host.is_dir() {
            add_path(&mut bundle, &host, &format!("{img}/{}", basename(kitdir)))?;
        } else {
            report.error(&format!("Couldn't find kit directory {kitdir}. Skip."));
        }
    }
    report.info(&format!(
        "Compressing {} bundle.  Please be patient.",
        opts.image
    ));
    let (w, stats) = bundle.finish()?;
    out.bytes_in = stats.bytes_in - tree_adjust.0 + tree_adjust.1;
    out.bytes_out = stats.bytes_out;
    Ok((w, patch))
}

/// A tree encoder: writes the archive of a root directory and says what it did.
type Encode<'a> = &'a dyn Fn(&mut dyn Write) -> Result<TreeSummary>;

/// What adding the tree gives: its summary, its place, and the header to rewrite
/// later when the destination could not seek.
type TreeAdded = (TreeSummary, Location, Option<HeaderPatch>);

/// How a bundle destination takes the statelite tree.
trait TreeSink: Write + Sized {
    fn add_tree(
        bundle: &mut BundleWriter<Self>,
        name: &str,
        encode: Encode<'_>,
    ) -> Result<TreeAdded>;
}

/// A bundle file takes the tree directly: its tar header is patched once the size is
/// known.
impl TreeSink for BufWriter<File> {
    fn add_tree(
        bundle: &mut BundleWriter<Self>,
        name: &str,
        encode: Encode<'_>,
    ) -> Result<TreeAdded> {
        let (summary, loc) = bundle.add_generated(name, 0o644, |w| encode(w))?;
        Ok((summary, loc, None))
    }
}

/// A remote file cannot be seeked through ssh either, but unlike stdout it can be
/// fixed up once complete: the tree streams straight through with a placeholder
/// header, and [`Push::finish`] rewrites the header on the remote host. No spool copy.
impl TreeSink for &mut BufWriter<Push> {
    fn add_tree(
        bundle: &mut BundleWriter<Self>,
        name: &str,
        encode: Encode<'_>,
    ) -> Result<TreeAdded> {
        let (summary, loc, patch) = bundle.add_streamed(name, 0o644, |w| encode(w))?;
        Ok((summary, loc, Some(patch)))
    }
}

/// A stream cannot go back to patch a size: the tree is encoded into a temporary file
/// in `$TMPDIR` first.
impl TreeSink for BufWriter<io::StdoutLock<'static>> {
    fn add_tree(
        bundle: &mut BundleWriter<Self>,
        name: &str,
        encode: Encode<'_>,
    ) -> Result<TreeAdded> {
        let dir = std::env::temp_dir();
        let spool = tempfile::tempfile_in(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut buffered = BufWriter::with_capacity(1 << 20, spool);
        let summary = encode(&mut buffered)?;
        let mut spool = buffered
            .into_inner()
            .map_err(|e| Error::io("rootimgtree spool", e.into_error()))?;
        let size = spool
            .seek(SeekFrom::End(0))
            .and_then(|n| spool.seek(SeekFrom::Start(0)).map(|_| n))
            .map_err(|e| Error::io("rootimgtree spool", e))?;
        let loc = bundle.add_stored(name, size, 0o644, spool)?;
        Ok((summary, loc, None))
    }
}

/// What a tree encoder reports, whichever format it wrote.
#[derive(Debug, Default)]
struct TreeSummary {
    entries: u64,
    /// Uncompressed archive bytes (the tar, or the newc stream).
    archive_bytes: u64,
    warnings: Vec<String>,
}

/// The codec of the tree written: zstd only for imgport's own tree (xCAT reads only
/// gzip'd cpio).
fn tree_codec(opts: &ExportOptions) -> Codec {
    match opts.compat {
        Compat::Imgport => opts.codec,
        Compat::Xcat => Codec::Gzip,
    }
}

/// The encoder for the chosen tree format.
fn tree_encoder<'a>(
    host: &'a Path,
    opts: &'a ExportOptions,
) -> impl Fn(&mut dyn Write) -> Result<TreeSummary> + 'a {
    move |w: &mut dyn Write| match opts.compat {
        Compat::Imgport => {
            let o = tree::WriteOptions {
                level: opts.level,
                codec: opts.codec,
                threads: opts.threads,
                progress: opts.progress.clone(),
                ..Default::default()
            };
            let mut total = 0;
            if opts.progress.is_on() {
                // Only for a display: a metadata-only walk gives the total for the ETA.
                opts.progress.start("walk", 0);
                total = tree::measure(host, &o)?.0;
            }
            opts.progress.start("compress", total);
            let stats = tree::write_tree(host, w, &o)?;
            Ok(TreeSummary {
                entries: stats.entries,
                archive_bytes: stats.bytes_in,
                warnings: stats.warnings,
            })
        }
        Compat::Xcat => {
            let o = tree::NewcOptions {
                level: opts.level,
                ..Default::default()
            };
            let stats = tree::write_newc_gz(host, w, &o)?;
            let mut warnings = stats.warnings;
            if stats.dropped_xattrs > 0 {
                let names: Vec<String> = stats
                    .dropped_xattr_names
                    .iter()
                    .map(|(n, files)| format!("{n} ({files} files)"))
                    .collect();
                warnings.push(format!(
                    "--compat xcat: cpio newc cannot carry extended attributes; dropped {}",
                    names.join(", ")
                ));
            }
            if stats.sparse_expanded > 0 {
                warnings.push(format!(
                    "--compat xcat: {} sparse files are stored dense (their holes are lost)",
                    stats.sparse_expanded
                ));
            }
            Ok(TreeSummary {
                entries: stats.entries,
                archive_bytes: stats.bytes,
                warnings,
            })
        }
    }
}

/// `-e` payload: a file as `extra/<basename>`, a directory's contents as
/// `extra/<src without leading />/...` (what xCAT's `cp -a src/*` gives, so top-level
/// dotfiles are left out as the shell glob leaves them).
fn add_extra<W: Write>(
    root: &Root,
    bundle: &mut BundleWriter<W>,
    img: &str,
    extra: &image::ExtraSource,
    report: &mut dyn Reporter,
) -> Result<()> {
    let host = root.resolve(&extra.src)?;
    report.info(&extra.src);
    if !extra.is_dir {
        bundle.add_file(
            &format!("{img}/{EXTRA_DIR}/{}", basename(&extra.src)),
            &host,
        )?;
        return Ok(());
    }
    let base = format!("{img}/{EXTRA_DIR}/{}", extra.src.trim_matches('/'));
    let meta = std::fs::metadata(&host).map_err(|e| Error::io(&host, e))?;
    use std::os::unix::fs::MetadataExt;
    bundle.add_dir(&base, meta.mode() & 0o7777, meta.mtime().max(0) as u64)?;
    for entry in sorted_dir(&host)? {
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        add_path(
            bundle,
            &entry.path(),
            &format!("{base}/{}", name.to_string_lossy()),
        )?;
    }
    Ok(())
}

/// Adds a path and, for a directory, everything below it (files, dirs, symlinks).
fn add_path<W: Write>(bundle: &mut BundleWriter<W>, host: &Path, name: &str) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(host).map_err(|e| Error::io(host, e))?;
    let mtime = meta.mtime().max(0) as u64;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(host).map_err(|e| Error::io(host, e))?;
        bundle.add_symlink(name, &target, mtime)
    } else if meta.is_dir() {
        bundle.add_dir(name, meta.mode() & 0o7777, mtime)?;
        for entry in sorted_dir(host)? {
            let child = format!("{name}/{}", entry.file_name().to_string_lossy());
            add_path(bundle, &entry.path(), &child)?;
        }
        Ok(())
    } else if meta.is_file() {
        bundle.add_file(name, host).map(|_| ())
    } else {
        // Devices and sockets have no place in extras or kits; xCAT's cp would copy
        // a device's contents, which is never what an admin meant.
        Err(Error::io(
            host,
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a file, directory or symlink",
            ),
        ))
    }
}

fn sorted_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .collect::<io::Result<_>>()
        .map_err(|e| Error::io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

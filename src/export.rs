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
use crate::naming::bundle_name;
use crate::remote::{self, Push, Rewrite};
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
    /// [`crate::naming::remote_bundle_path`].
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
    /// xCAT's gzip'd cpio newc, for MNs whose imgimport is real xCAT's, preceded by
    /// the `rootimgtree.meta` sidecar holding what newc cannot (xattrs, holes,
    /// nanosecond mtimes, owner names; FORMAT.md §7): xCAT ignores it and restores
    /// sparse files dense, imgport restores losslessly.
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

/// Exports one image. Lines go to `report`; fatal problems are returned. Phases:
/// announce, discover (nothing is written before it succeeds), then write the bundle
/// to its destination.
pub fn export(
    root: &Root,
    catalog: &Catalog,
    opts: &ExportOptions,
    report: &mut dyn Reporter,
) -> Result<ExportReport> {
    let started = Instant::now();
    let destination = match &opts.destination {
        Some(d) => d.clone(),
        None => Destination::Path(PathBuf::from(bundle_name(&opts.image))),
    };
    report.info(&format!(
        "Exporting {} to {}...",
        opts.image,
        announced(&destination)
    ));
    let set = image::discover(root, catalog, &opts.image, &opts.discover, report)?;
    let job = Job {
        root,
        set: &set,
        opts,
        mtime: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
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
        Destination::Stdout => to_stdout(&job, &mut out, report)?,
        Destination::Remote { host, path } => {
            // xCAT says this after compressing; the bundle is streamed here, so before.
            report.info(&format!(
                "Moving the image bundle to the remote system location {host}:{path}"
            ));
            let push = Push::start(&remote::Ssh::from_env(), host, path)?;
            for line in send(&job, push, &mut out, report)? {
                report.verbose(&line);
            }
        }
        Destination::Path(p) => out.bundle = Some(to_file(&job, p, &mut out, report)?),
    }
    out.seconds = started.elapsed().as_secs_f64();
    report.info("Done!");
    Ok(out)
}

/// Where xCAT's first line says the bundle goes: the directory of a file, or the
/// host for `-R` (xCAT says `Exporting <img> to <user@host>...`).
fn announced(destination: &Destination) -> String {
    match destination {
        Destination::Path(p) => absolute(p)
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
        Destination::Stdout => "standard output".to_string(),
        Destination::Remote { host, .. } => host.clone(),
    }
}

/// Writes the bundle to standard output.
fn to_stdout(job: &Job<'_>, out: &mut ExportReport, report: &mut dyn Reporter) -> Result<()> {
    let stdout = io::stdout().lock();
    let (mut w, _) = write_bundle(job, BufWriter::new(stdout), out, report)?;
    w.flush().map_err(|e| Error::io("standard output", e))
}

/// Writes the bundle to a temporary file beside `dest` and renames it into place only
/// when complete (synced, mode 0644). Returns the bundle's absolute path.
fn to_file(
    job: &Job<'_>,
    dest: &Path,
    out: &mut ExportReport,
    report: &mut dyn Reporter,
) -> Result<PathBuf> {
    let path = absolute(dest);
    let dir = path.parent().unwrap_or(Path::new("/"));
    remove_dead_temps(dir, report);
    let tmp = tempfile::Builder::new()
        .prefix(&format!("{TEMP_PREFIX}{}-", std::process::id()))
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    // Held until the process ends: a temporary file whose lock can be taken belongs
    // to a dead export, whatever became of its pid.
    rustix::fs::flock(tmp.as_file(), rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| Error::io(tmp.path(), e.into()))?;
    crate::testhook::point("export-writing");
    let file = tmp
        .as_file()
        .try_clone()
        .map_err(|e| Error::io(tmp.path(), e))?;
    let (w, _) =
        write_bundle(job, BufWriter::new(file), out, report).map_err(|e| full(e, &path))?;
    let file = w
        .into_inner()
        .map_err(|e| Error::io(&path, e.into_error()))?;
    file.sync_all().map_err(|e| Error::io(&path, e))?;
    // Bundles are readable like any tar xCAT writes under the default umask.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o644))
        .map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
    Ok(path)
}

/// Start of an export's temporary bundle name: `<prefix><pid>-<random>`.
const TEMP_PREFIX: &str = ".imgport-export-";

/// Removes the temporary bundles dead exports left in `dir`: those whose `flock` is
/// free (a live export holds its own) and whose pid is not running (a live export
/// between creating its file and locking it). Best effort: it is only litter.
fn remove_dead_temps(dir: &Path, report: &mut dyn Reporter) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let path = entry.path();
        let Ok(f) = File::open(&path) else { continue };
        let free = rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive);
        if free.is_err() || Path::new("/proc").join(pid.to_string()).exists() {
            continue;
        }
        if std::fs::remove_file(&path).is_ok() {
            report.verbose(&format!(
                "Removed {}, left by an export that died",
                path.display()
            ));
        }
    }
}

/// A full destination (no space, quota, file size limit) is reported on the bundle's
/// path: the writer tags its errors with the member being written, which for a
/// payload file is the source path, and an admin would look for space there.
fn full(e: Error, dest: &Path) -> Error {
    use io::ErrorKind::{FileTooLarge, QuotaExceeded, StorageFull};
    match e {
        Error::Io { source, .. } | Error::BundleRead { source, .. }
            if matches!(source.kind(), StorageFull | QuotaExceeded | FileTooLarge) =>
        {
            Error::io(dest, source)
        }
        other => other,
    }
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
        Ok(patch) => {
            let rewrites: Vec<Rewrite<'_>> = patch
                .iter()
                .map(|p| Rewrite {
                    offset: p.offset,
                    bytes: &p.bytes,
                })
                .collect();
            Ok(push.finish(&rewrites)?)
        }
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
        // The newc form's sidecar goes before its tree, so a streaming import holds
        // it when the tree arrives (FORMAT.md §7).
        let newc = match opts.compat {
            Compat::Imgport => None,
            Compat::Xcat => {
                let o = tree::NewcOptions {
                    level: opts.level,
                    threads: opts.threads,
                    ..Default::default()
                };
                let prepared = tree::prepare_newc(&host, &o)?;
                // Spooled, not held: it grows with the tree (FORMAT.md §7).
                let sidecar = prepared.spool_sidecar()?;
                let name = format!("{img}/{}", tree::SIDECAR_MEMBER);
                bundle.add_reader(&name, sidecar.len(), 0o644, sidecar)?;
                Some(prepared)
            }
        };
        let newc = std::cell::RefCell::new(newc);
        let encode = tree_encoder(&host, opts, &newc);
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

/// The encoder for the chosen tree format; `newc` is the prepared newc tree of
/// [`Compat::Xcat`], taken by the (single) call.
fn tree_encoder<'a>(
    host: &'a Path,
    opts: &'a ExportOptions,
    newc: &'a std::cell::RefCell<Option<tree::NewcTree>>,
) -> impl Fn(&mut dyn Write) -> Result<TreeSummary> + 'a {
    move |w: &mut dyn Write| match newc.borrow_mut().take() {
        None => {
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
        // What newc drops (xattrs, holes, nanoseconds, owner names) rides in the
        // sidecar already written: nothing to warn about beyond the walk's warnings.
        Some(prepared) => {
            let stats = prepared.write_gz(w)?;
            Ok(TreeSummary {
                entries: stats.entries,
                archive_bytes: stats.bytes,
                warnings: stats.warnings,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{BundleReader, Flow};
    use crate::manifest::Manifest;
    use crate::report::Collect;
    use crate::testkit::Mn;

    const DIR: &str = "/install/netboot/rhels8/x86_64/compute";

    /// An MN with image `img` of `provmethod` (rootimgdir [`DIR`]) and its files.
    fn mn_with(provmethod: &str) -> Mn {
        let mn = Mn::new();
        mn.write("/install/custom/netboot/rh/compute.pkglist", "bash\n");
        mn.rows(&[
            (
                "osimage",
                &[("imagename", "img")],
                &[
                    ("provmethod", provmethod),
                    ("profile", "compute"),
                    ("osvers", "rhels8"),
                    ("osarch", "x86_64"),
                ],
            ),
            (
                "linuximage",
                &[("imagename", "img")],
                &[
                    ("rootimgdir", DIR),
                    ("pkglist", "/install/custom/netboot/rh/compute.pkglist"),
                ],
            ),
        ]);
        let initrd = if provmethod == "statelite" {
            "initrd-statelite.gz"
        } else {
            "initrd-stateless.gz"
        };
        mn.write(&format!("{DIR}/kernel"), "the kernel");
        mn.write(&format!("{DIR}/{initrd}"), "the initrd");
        if provmethod == "netboot" {
            mn.write(&format!("{DIR}/rootimg.cpio.gz"), "the image");
        } else {
            mn.write(&format!("{DIR}/rootimg/etc/hostname"), "node\n");
            mn.write(&format!("{DIR}/rootimg/bin/sh"), "#!");
        }
        mn
    }

    fn options(dest: &Path) -> ExportOptions {
        ExportOptions {
            image: "img".into(),
            destination: Some(Destination::Path(dest.to_path_buf())),
            discover: DiscoverOptions::default(),
            level: 1,
            compat: Compat::Imgport,
            codec: Codec::Gzip,
            threads: 1,
            progress: Default::default(),
        }
    }

    /// (path below the image directory, content) of every member, in stream order;
    /// the tree member's content is left empty.
    fn members(bundle: &Path) -> Vec<(String, Vec<u8>)> {
        let f = File::open(bundle).unwrap();
        let mut out = Vec::new();
        BundleReader::new(f)
            .unwrap()
            .for_each(|m| {
                assert_eq!(m.image_dir, "img");
                let mut data = Vec::new();
                if !m.rel.starts_with("rootimgtree") {
                    m.data
                        .read_to_end(&mut data)
                        .map_err(|e| Error::io("member", e))?;
                }
                out.push((m.rel, data));
                Ok(Flow::Continue)
            })
            .unwrap();
        out
    }

    fn manifest_of(members: &[(String, Vec<u8>)]) -> Manifest {
        Manifest::parse(&members[0].1).unwrap()
    }

    #[test]
    fn tree_codec_is_gzip_whenever_xcat_must_read_the_tree() {
        let mut o = options(Path::new("b.tgz"));
        o.codec = Codec::Zstd;
        assert_eq!(tree_codec(&o), Codec::Zstd);
        o.compat = Compat::Xcat;
        assert_eq!(tree_codec(&o), Codec::Gzip);
    }

    #[test]
    fn a_netboot_bundle_is_the_manifest_then_the_payload() {
        let mn = mn_with("netboot");
        let work = tempfile::tempdir().unwrap();
        let dest = work.path().join("img.tgz");
        let mut report = Collect::default();
        let out = export(&mn.root, &mn.catalog, &options(&dest), &mut report).unwrap();
        assert_eq!(out.bundle.as_deref(), Some(dest.as_path()));
        assert_eq!(out.files, 4);
        assert_eq!(out.tree_entries, 0);
        assert_eq!(out.bytes_out, std::fs::metadata(&dest).unwrap().len());
        let members = members(&dest);
        let names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "manifest.xml",
                "kernel",
                "initrd-stateless.gz",
                "rootimg.cpio.gz",
                "compute.pkglist"
            ]
        );
        assert_eq!(members[1].1, b"the kernel");
        assert_eq!(members[3].1, b"the image");
        let m = manifest_of(&members);
        assert_eq!(m.kernel.as_deref(), Some(format!("{DIR}/kernel").as_str()));
        assert_eq!(m.other.get(TREE_FORMAT_KEY), None);
        // Readable like any bundle xCAT writes; no temporary file left beside it.
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o644);
        assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 1);
        assert_eq!(
            report.info.first().map(String::as_str),
            Some(format!("Exporting img to {}...", work.path().display()).as_str())
        );
        assert_eq!(report.info.last().map(String::as_str), Some("Done!"));
    }

    #[test]
    fn a_failed_export_leaves_no_file_behind() {
        let mn = mn_with("netboot");
        std::fs::remove_file(mn.host(&format!("{DIR}/kernel"))).unwrap();
        let work = tempfile::tempdir().unwrap();
        let dest = work.path().join("img.tgz");
        let err = export(
            &mn.root,
            &mn.catalog,
            &options(&dest),
            &mut Collect::default(),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "Couldn't find kernel (kernel) for  img");
        // Failing halfway through the stream (a FIFO in an extra directory).
        let mn = mn_with("netboot");
        std::fs::create_dir_all(mn.host("/srv/d")).unwrap();
        let fifo = mn.host("/srv/d/pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
        let mut o = options(&dest);
        o.discover.extras = vec!["/srv/d".into()];
        let err = export(&mn.root, &mn.catalog, &o, &mut Collect::default()).unwrap_err();
        assert!(
            err.to_string().starts_with(&fifo.display().to_string()),
            "{err}"
        );
        assert_eq!(err.failure(), crate::error::Failure::Failed);
        assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
    }

    #[test]
    fn an_extra_directory_leaves_out_its_top_level_dotfiles() {
        let mn = mn_with("netboot");
        mn.write("/srv/d/a", "a");
        mn.write("/srv/d/.hidden", "h");
        mn.write("/srv/d/sub/.kept", "k");
        mn.write("/srv/single.conf", "s");
        let work = tempfile::tempdir().unwrap();
        let dest = work.path().join("img.tgz");
        let mut o = options(&dest);
        o.discover.extras = vec!["/srv/d:/opt".into(), "/srv/single.conf".into()];
        export(&mn.root, &mn.catalog, &o, &mut Collect::default()).unwrap();
        let names: Vec<String> = members(&dest)
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| n.starts_with("extra/"))
            .collect();
        assert_eq!(
            names,
            [
                "extra/srv/d",
                "extra/srv/d/a",
                "extra/srv/d/sub",
                "extra/srv/d/sub/.kept",
                "extra/single.conf"
            ]
        );
    }

    #[test]
    fn the_tree_member_and_manifest_follow_the_codec_and_compat() {
        let mn = mn_with("statelite");
        let work = tempfile::tempdir().unwrap();
        for (compat, codec, member, format) in [
            (
                Compat::Imgport,
                Codec::Gzip,
                "rootimgtree.gz",
                Some(TREE_FORMAT_PAX),
            ),
            (
                Compat::Imgport,
                Codec::Zstd,
                "rootimgtree.zst",
                Some(TREE_FORMAT_PAX_ZSTD),
            ),
            (Compat::Xcat, Codec::Gzip, "rootimgtree.gz", None),
        ] {
            let dest = work.path().join(format!("{member}-{compat:?}.tgz"));
            let mut o = options(&dest);
            o.compat = compat;
            o.codec = codec;
            let out = export(&mn.root, &mn.catalog, &o, &mut Collect::default()).unwrap();
            // rootimg, bin, bin/sh, etc, etc/hostname
            assert_eq!(out.tree_entries, 5, "{compat:?} {codec:?}");
            let members = members(&dest);
            assert!(members.iter().any(|(n, _)| n == member), "{members:?}");
            let m = manifest_of(&members);
            assert_eq!(
                m.rootimgtree.as_deref(),
                Some(format!("{DIR}/{member}").as_str())
            );
            assert_eq!(m.other.get(TREE_FORMAT_KEY).map(String::as_str), format);
            let csv = &members.iter().find(|(n, _)| n == "litefile.csv").unwrap().1;
            assert!(csv.is_empty(), "no litefile rows: an empty litefile.csv");
        }
    }
}

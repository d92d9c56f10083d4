//! The import flow (`imgimport`): read a bundle once, in stream order; stage every file
//! beside (or on the filesystem of) its destination; restore the statelite tree into a
//! staging directory; then, image by image, move everything into place and write the
//! table rows last. A failing image is rolled back completely (files moved back, `.ORIG`
//! backups restored, rows never written) and the next image is still imported, as
//! xCAT does.
//!
//! Orchestration only: names and safety of members in [`crate::bundle`], destination
//! paths in [`crate::root`], journaled moves in [`crate::placement`], `-f` in
//! [`crate::profile`], the tree in [`crate::tree`], a `-R` bundle's ssh stream in
//! [`crate::remote`].

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::bundle::{BundleReader, Flow, MemberKind, EXTRA_DIR, MANIFEST_NAME};
use crate::catalog::{Catalog, Upsert};
use crate::error::{Error, Result};
use crate::image::{self, CONFIG_COLUMNS};
use crate::manifest::Manifest;
use crate::placement::Placement;
use crate::profile;
use crate::remote::{self, Pull};
use crate::report::Reporter;
use crate::root::{basename, Root};
use crate::tree;
use crate::tree::Codec;

/// Largest manifest.xml accepted; real ones are a few KiB.
const MANIFEST_MAX_BYTES: u64 = 16 << 20;
/// Name of the tree inside an image directory.
const TREE_MEMBER: &str = "rootimgtree.gz";
/// Name of the tree written by `export --codec zstd` (FORMAT.md §6).
const TREE_MEMBER_ZST: &str = "rootimgtree.zst";

/// The codec of a bundle member that holds the statelite tree, by its name.
fn tree_codec(rel: &str) -> Option<Codec> {
    match rel {
        TREE_MEMBER => Some(Codec::Gzip),
        TREE_MEMBER_ZST => Some(Codec::Zstd),
        _ => None,
    }
}

/// The tree member a bundle directory holds, if any (gzip first: xCAT's name).
fn tree_member(members: &BTreeMap<String, Spooled>) -> Option<&'static str> {
    [TREE_MEMBER, TREE_MEMBER_ZST]
        .into_iter()
        .find(|m| members.contains_key(*m))
}

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
    pub failure: Option<crate::error::Failure>,
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

/// A member saved in the spool directory until its image is placed.
#[derive(Debug)]
struct Spooled {
    /// Spool file (regular files only).
    path: Option<PathBuf>,
    /// Content kept in memory instead (small files during `--dry-run`).
    data: Option<Vec<u8>>,
    kind: MemberKind,
    mode: u32,
}

impl Spooled {
    /// The member's bytes (empty for members that were not kept).
    fn content(&self) -> Result<Vec<u8>> {
        match (&self.data, &self.path) {
            (Some(d), _) => Ok(d.clone()),
            (None, Some(p)) => fs::read(p).map_err(|e| Error::io(p, e)),
            (None, None) => Ok(Vec::new()),
        }
    }
}

/// What is known about one image directory while the bundle streams by.
#[derive(Default)]
struct ImageDir {
    manifest: Option<std::result::Result<Plan, ManifestProblem>>,
    members: BTreeMap<String, Spooled>,
    /// The tree restored during the stream (the manifest came first).
    tree: Option<StagedTree>,
    placement: Placement,
}

enum ManifestProblem {
    /// Not well-formed: xCAT stops the whole import.
    Invalid(String),
    /// Well-formed but refused (missing fields, unsupported provmethod, no media).
    Refused(Vec<String>),
}

/// A validated manifest, after `-f`, with where each bundle file goes.
struct Plan {
    manifest: Manifest,
    imagename: String,
    /// Destination MN path → bundle member name, for config files renamed by `-f`.
    renamed: BTreeMap<String, String>,
}

/// One thing an import does to the MN, decided before anything is touched.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// A bundle file to the MN path `dest`.
    File { member: String, dest: String },
    /// A bundle directory and everything below it (kit directories, extra
    /// directories' entries) to `dest`.
    Subtree { prefix: String, dest: String },
    /// The statelite tree to `dest` (`<rootimgdir>/rootimg`).
    Tree { dest: String },
}

impl Step {
    fn dest(&self) -> &str {
        match self {
            Step::File { dest, .. } | Step::Subtree { dest, .. } | Step::Tree { dest } => dest,
        }
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
}

struct StagedTree {
    staging: PathBuf,
    dest: PathBuf,
    entries: u64,
}

/// Imports every image of a bundle. Returns an error only when the bundle itself
/// cannot be read; per-image failures are in the report (and were rolled back).
pub fn import(
    root: &Root,
    catalog: &Catalog,
    opts: &ImportOptions,
    report: &mut dyn Reporter,
) -> Result<ImportReport> {
    let started = Instant::now();
    // The ssh transfer, when there is one: its status is known only after the stream.
    let mut pull = None;
    let input: Box<dyn Read + Send> = match &opts.bundle {
        BundleSource::Stdin => Box::new(io::stdin()),
        BundleSource::Remote { host, path } => {
            let (transfer, reader) = Pull::start(&remote::Ssh::from_env(), host, path)?;
            report.verbose(&format!("Bundle file is located at {host}:{path}"));
            pull = Some(transfer);
            Box::new(reader)
        }
        BundleSource::Path(p) => {
            let f = File::open(p).map_err(|_| {
                let shown = std::env::current_dir()
                    .map(|c| c.join(p))
                    .unwrap_or_else(|_| p.clone());
                Error::NotFound(format!("Cannot find {}", shown.display()))
            })?;
            report.verbose(&format!("Bundle file is located at {}", p.display()));
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            opts.progress.start("read", size);
            Box::new(f)
        }
    };
    if !matches!(opts.bundle, BundleSource::Path(_)) {
        opts.progress.start("read", 0);
    }
    let counter = CountingRead {
        inner: input,
        count: std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)),
        progress: opts.progress.clone(),
    };
    let count = counter.count.clone();
    report.info("Unbundling image...");
    let installdir = image::installdir(catalog)?;
    // A dry run must not even create (and remove) a spool directory.
    let spool = if opts.dry_run {
        None
    } else {
        Some(spool_dir(root, catalog, &installdir)?)
    };
    let mut images: BTreeMap<String, ImageDir> = BTreeMap::new();
    let ctx = Context {
        root,
        catalog,
        opts,
        installdir: installdir.clone(),
    };
    let mut seq = 0u64;
    let streamed = BundleReader::new(counter).and_then(|reader| {
        reader.for_each(|member| {
            let dir = images.entry(member.image_dir.clone()).or_default();
            if member.rel == MANIFEST_NAME {
                let mut xml = Vec::new();
                member
                    .data
                    .take(MANIFEST_MAX_BYTES)
                    .read_to_end(&mut xml)
                    .map_err(|e| Error::io(format!("{}/{MANIFEST_NAME}", member.image_dir), e))?;
                dir.manifest = Some(ctx.plan(&xml));
                return Ok(Flow::Continue);
            }
            if opts.dry_run {
                // Touch nothing: remember what is there, keep only the litefile rows.
                let data = if member.rel == "litefile.csv" {
                    let mut buf = Vec::new();
                    member
                        .data
                        .take(MANIFEST_MAX_BYTES)
                        .read_to_end(&mut buf)
                        .map_err(|e| {
                            Error::io(format!("{}/{}", member.image_dir, member.rel), e)
                        })?;
                    Some(buf)
                } else {
                    None
                };
                dir.members.insert(
                    member.rel.clone(),
                    Spooled {
                        path: None,
                        data,
                        kind: member.kind.clone(),
                        mode: member.mode,
                    },
                );
                return Ok(Flow::Continue);
            }
            if let Some(codec) = tree_codec(&member.rel).filter(|_| dir.tree.is_none()) {
                if let Some(Ok(plan)) = &dir.manifest {
                    if plan.manifest.rootimgtree.is_some() {
                        report.info(&format!("Extracting {}. It will take a while.", member.rel));
                        let staged =
                            ctx.stage_tree(plan, &mut dir.placement, member.data, codec, report)?;
                        dir.tree = Some(staged);
                        return Ok(Flow::Continue);
                    }
                }
            }
            seq += 1;
            let path = match member.kind {
                MemberKind::File => {
                    let spool = spool.as_ref().ok_or_else(|| {
                        Error::io("spool", io::Error::other("no spool directory"))
                    })?;
                    let p = spool.path().join(format!("{seq}"));
                    let mut f = File::create(&p).map_err(|e| Error::io(&p, e))?;
                    io::copy(member.data, &mut f).map_err(|e| {
                        Error::io(format!("{}/{}", member.image_dir, member.rel), e)
                    })?;
                    drop(f);
                    set_mode(&p, member.mode)?;
                    set_mtime(&p, member.mtime)?;
                    Some(p)
                }
                _ => None,
            };
            dir.members.insert(
                member.rel.clone(),
                Spooled {
                    path,
                    data: None,
                    kind: member.kind.clone(),
                    mode: member.mode,
                },
            );
            Ok(Flow::Continue)
        })
    });
    // A bundle that read cleanly may still be cut short or empty because ssh failed
    // (a missing file, a refused login): nothing is placed before ssh says it is done.
    let streamed = match (streamed, pull) {
        (Ok(()), Some(transfer)) => transfer
            .finish()
            .map(|lines| lines.iter().for_each(|l| report.verbose(l)))
            .map_err(Error::from),
        (Err(e), Some(transfer)) => Err(transfer.abort().map(Error::from).unwrap_or(e)),
        (result, None) => result,
    };
    if let Err(e) = streamed {
        // Nothing was placed yet: only staging to remove.
        for (_, dir) in images {
            if let Some(t) = dir.tree {
                let _ = fs::remove_dir_all(&t.staging);
            }
            dir.placement.rollback();
        }
        return Err(match e {
            Error::Bundle(msg) => Error::Bundle(format!(
                "Failed to extract bundle {}: {msg}",
                opts.bundle.name()
            )),
            other => other,
        });
    }

    let mut out = ImportReport::default();
    for (dir_name, dir) in images {
        let plan = match dir.manifest {
            None => {
                report.error("Failed to find manifest.xml file in image bundle");
                out.images.push(failed(&dir_name, "no manifest.xml"));
                discard(dir.tree, dir.placement);
                break;
            }
            Some(Err(ManifestProblem::Invalid(detail))) => {
                report.error("invalid manifest.xml file inside the bundle.  Please verify the XML");
                report.error(&detail);
                out.images.push(failed(&dir_name, &detail));
                discard(dir.tree, dir.placement);
                break;
            }
            Some(Err(ManifestProblem::Refused(msgs))) => {
                for m in &msgs {
                    report.error(m);
                }
                out.images.push(failed(&dir_name, &msgs.join("; ")));
                discard(dir.tree, dir.placement);
                continue;
            }
            Some(Ok(plan)) => plan,
        };
        let mut placement = dir.placement;
        let mut outcome = ImageOutcome {
            image: plan.imagename.clone(),
            ok: false,
            errors: Vec::new(),
            files: Vec::new(),
            tree_entries: 0,
            dry_run: None,
            failure: None,
        };
        let mut tree = dir.tree;
        let planned = ctx.plan_steps(&plan, &dir.members, tree.is_some(), report);
        if opts.dry_run {
            match planned.and_then(|(steps, upserts)| ctx.preview(&steps, &upserts)) {
                Ok(preview) => {
                    outcome.ok = true;
                    outcome.files = preview.files.iter().map(|(p, _)| p.clone()).collect();
                    outcome.dry_run = Some(preview);
                }
                Err(e) => {
                    report.error(&e.to_string());
                    outcome.errors.push(e.to_string());
                    outcome.failure = Some(e.failure());
                }
            }
            out.images.push(outcome);
            continue;
        }
        let result = planned.and_then(|(steps, upserts)| {
            ctx.apply_steps(
                &plan,
                &steps,
                &upserts,
                &dir.members,
                &mut tree,
                &mut placement,
                &mut outcome,
                report,
            )
        });
        match result {
            Ok(()) => {
                placement.commit();
                outcome.ok = true;
                report.info(&format!(
                    "Successfully imported the image {}.",
                    plan.imagename
                ));
            }
            Err(e) => {
                let stuck = placement.rollback();
                if let Some(t) = &tree {
                    let _ = fs::remove_dir_all(&t.staging);
                }
                report.error(&e.to_string());
                for p in stuck {
                    report.error(&format!(
                        "Could not restore {} after the failure",
                        p.display()
                    ));
                }
                outcome.errors.push(e.to_string());
                outcome.failure = Some(e.failure());
            }
        }
        out.images.push(outcome);
    }
    out.bytes_in = count.load(std::sync::atomic::Ordering::Relaxed);
    out.seconds = started.elapsed().as_secs_f64();
    Ok(out)
}

fn failed(dir: &str, why: &str) -> ImageOutcome {
    ImageOutcome {
        image: dir.to_string(),
        ok: false,
        errors: vec![why.to_string()],
        files: Vec::new(),
        tree_entries: 0,
        dry_run: None,
        failure: Some(crate::error::Failure::Corrupt),
    }
}

fn discard(tree: Option<StagedTree>, placement: Placement) {
    if let Some(t) = tree {
        let _ = fs::remove_dir_all(&t.staging);
    }
    placement.rollback();
}

/// The spool directory: `site.tmpdir` if set (like xCAT's work dir), else a hidden
/// directory in the install dir so staged files are renamed, not copied, into place.
fn spool_dir(root: &Root, catalog: &Catalog, installdir: &str) -> Result<tempfile::TempDir> {
    let candidates = [catalog.site("tmpdir")?, Some(installdir.to_string())];
    for mn in candidates.into_iter().flatten().filter(|d| !d.is_empty()) {
        if let Ok(host) = root.resolve(&mn) {
            if host.is_dir() {
                return tempfile::Builder::new()
                    .prefix(".imgport-import-")
                    .tempdir_in(&host)
                    .map_err(|e| Error::io(&host, e));
            }
        }
    }
    let tmp = std::env::temp_dir();
    tempfile::Builder::new()
        .prefix(".imgport-import-")
        .tempdir_in(&tmp)
        .map_err(|e| Error::io(&tmp, e))
}

struct CountingRead<R> {
    inner: R,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
    progress: crate::progress::Handle,
}

impl<R: Read> Read for CountingRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        self.progress.add(n as u64, 0);
        Ok(n)
    }
}

struct Context<'a> {
    root: &'a Root,
    catalog: &'a Catalog,
    opts: &'a ImportOptions,
    installdir: String,
}

impl Context<'_> {
    /// Parses, checks (`verify_manifest`, `check_media`) and applies `-f`.
    fn plan(&self, xml: &[u8]) -> std::result::Result<Plan, ManifestProblem> {
        let manifest = Manifest::parse(xml).map_err(|e| ManifestProblem::Invalid(e.to_string()))?;
        let problems = verify(&manifest);
        if !problems.is_empty() {
            return Err(ManifestProblem::Refused(problems));
        }
        if manifest.media.as_deref() == Some("required") {
            let osvers = manifest.field("osvers").unwrap_or("");
            let osarch = manifest.field("osarch").unwrap_or("");
            let media = format!("{}/{osvers}/{osarch}", self.installdir);
            if !self.root.resolve(&media).is_ok_and(|p| p.is_dir()) {
                return Err(ManifestProblem::Refused(vec![format!(
                    "This image requires that you first copy media for {osvers}-{osarch}"
                )]));
            }
        }
        let (manifest, renamed) = match &self.opts.profile {
            Some(new) => {
                let r = profile::change_profile(&manifest, new, &self.installdir);
                (r.manifest, r.renamed)
            }
            None => (manifest, BTreeMap::new()),
        };
        let imagename = manifest.field("imagename").unwrap_or("").to_string();
        Ok(Plan {
            manifest,
            imagename,
            renamed,
        })
    }

    /// Restores a tree stream (compressed with `codec`) into a staging directory beside
    /// `<rootimgdir>/rootimg`.
    fn stage_tree(
        &self,
        plan: &Plan,
        placement: &mut Placement,
        data: &mut dyn Read,
        codec: Codec,
        report: &mut dyn Reporter,
    ) -> Result<StagedTree> {
        let tree_file = plan.manifest.rootimgtree.as_deref().unwrap_or("");
        let rootimgdir = crate::root::dirname(tree_file);
        let dest = self
            .root
            .resolve_for_write(&format!("{rootimgdir}/rootimg"))?;
        let parent = dest.parent().unwrap_or(self.root.dir()).to_path_buf();
        placement.create_dirs(&parent)?;
        let staging = tempfile::Builder::new()
            .prefix(".rootimg.imgport-")
            .tempdir_in(&parent)
            .map_err(|e| Error::io(&parent, e))?
            .keep();
        let opts = tree::RestoreOptions {
            threads: self.opts.threads,
            ..Default::default()
        };
        let restored = match codec {
            // imgport members inflate on worker threads, xCAT's single gzip member on
            // this one (the bundle reader is not Send); files are written in parallel.
            Codec::Gzip => tree::restore_stream(
                BufReader::with_capacity(1 << 20, data),
                &staging,
                b"rootimg",
                &opts,
            ),
            // Frames are cut here and decompressed on `threads` helpers (FORMAT.md §6).
            Codec::Zstd => tree::restore_zstd(data, &staging, b"rootimg", &opts),
        };
        match restored {
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

    /// Decides everything one image's import does, touching nothing: which bundle
    /// member goes to which MN path, and which rows change. Fails on what would make
    /// the import incomplete (a missing kernel, tree or extra), as the real import does.
    fn plan_steps(
        &self,
        plan: &Plan,
        members: &BTreeMap<String, Spooled>,
        tree_staged: bool,
        report: &mut dyn Reporter,
    ) -> Result<(Vec<Step>, Vec<Upsert>)> {
        let m = &plan.manifest;
        let name = &plan.imagename;
        let mut steps = Vec::new();
        // Every destination must resolve inside the root, checked as it is planned so
        // the first offending manifest path is the one reported.
        let root = self.root;
        let push = |steps: &mut Vec<Step>, step: Step| -> Result<()> {
            root.resolve_for_write(step.dest())?;
            steps.push(step);
            Ok(())
        };
        let mut upserts = vec![
            upsert("osimage", &[("imagename", name)], &m.osimage),
            upsert("linuximage", &[("imagename", name)], &m.linuximage),
        ];
        // 1. Image payload (kernel, ramdisk, rootimg, litefile), fatal when absent.
        for value in [&m.kernel, &m.ramdisk, &m.rootimg, &m.litefile]
            .into_iter()
            .flatten()
        {
            for dest in value.split(',').map(str::trim).filter(|d| !d.is_empty()) {
                let member = basename(dest);
                if !members.contains_key(member) {
                    return Err(Error::Incomplete(format!(
                        "The bundle has no {member} for {dest} of image {name}."
                    )));
                }
                push(
                    &mut steps,
                    Step::File {
                        member: member.to_string(),
                        dest: dest.to_string(),
                    },
                )?;
            }
        }
        // 2. Config files: exported by basename, skipped with an error when the
        //    export could not read them, so their absence is not fatal here.
        let config_lists = CONFIG_COLUMNS
            .iter()
            .filter_map(|c| m.linuximage.get(*c))
            .chain(m.osimage.get("synclists"));
        for list in config_lists {
            for dest in list.split(',').map(str::trim).filter(|d| !d.is_empty()) {
                let member = plan
                    .renamed
                    .get(dest)
                    .map(String::as_str)
                    .unwrap_or_else(|| basename(dest));
                if members.contains_key(member) {
                    push(
                        &mut steps,
                        Step::File {
                            member: member.to_string(),
                            dest: dest.to_string(),
                        },
                    )?;
                } else {
                    report.warning(&format!(
                        "{dest} is named in manifest.xml but not in the bundle; skipped"
                    ));
                }
            }
        }
        // 3. s390x raw image files.
        if !m.rawimagefiles.is_empty() {
            let f = |n: &str| m.field(n).unwrap_or("").to_string();
            let dir = format!(
                "{}/{}/{}/{}/{}",
                self.installdir,
                f("provmethod"),
                f("osvers"),
                f("osarch"),
                f("profile")
            );
            for file in &m.rawimagefiles {
                let base = basename(file);
                if !members.contains_key(base) {
                    return Err(Error::Xcat(format!(
                        "Could not move {base} to {dir}: not in the bundle"
                    )));
                }
                let target = if base.ends_with(".img") {
                    base.to_string()
                } else {
                    format!("{base}.img")
                };
                push(
                    &mut steps,
                    Step::File {
                        member: base.to_string(),
                        dest: format!("{dir}/{target}"),
                    },
                )?;
            }
        }
        // 4. Kits: the kit directory beside its kitdir.
        for (kitname, row) in &m.kit {
            if let Some(kitdir) = row.get("kitdir") {
                let prefix = basename(kitdir);
                if members.contains_key(prefix) {
                    let dest = format!("{}/{kitname}", crate::root::dirname(kitdir));
                    push(
                        &mut steps,
                        Step::Subtree {
                            prefix: prefix.to_string(),
                            dest,
                        },
                    )?;
                }
            }
        }
        // 5. The statelite tree.
        if let Some(tree_file) = &m.rootimgtree {
            if !tree_staged && tree_member(members).is_none() {
                return Err(Error::Xcat(format!(
                    "The bundle has no {TREE_MEMBER} for image {name}."
                )));
            }
            let dir = crate::root::dirname(tree_file);
            push(
                &mut steps,
                Step::Tree {
                    dest: format!("{dir}/rootimg"),
                },
            )?;
        }
        // 6. Extras.
        for extra in &m.extra {
            let dir_member = format!("{EXTRA_DIR}/{}", extra.src.trim_matches('/'));
            if matches!(
                members.get(&dir_member).map(|s| &s.kind),
                Some(MemberKind::Dir)
            ) {
                let children: Vec<&String> = members
                    .keys()
                    .filter(|k| is_direct_child(k, &dir_member))
                    .collect();
                if children.is_empty() {
                    return Err(Error::Xcat(format!(
                        "Failed to cp -a {dir_member}/* to {}",
                        extra.dest
                    )));
                }
                for child in children {
                    let dest = format!("{}/{}", extra.dest.trim_end_matches('/'), basename(child));
                    push(
                        &mut steps,
                        Step::Subtree {
                            prefix: child.clone(),
                            dest,
                        },
                    )?;
                }
            } else {
                let base = basename(&extra.src);
                let member = format!("{EXTRA_DIR}/{base}");
                if !members.contains_key(&member) {
                    return Err(Error::Xcat(format!(
                        "Failed to copy {member} to {}",
                        extra.dest
                    )));
                }
                let dest = format!("{}/{base}", extra.dest.trim_end_matches('/'));
                push(&mut steps, Step::File { member, dest })?;
            }
        }
        // 7. Rows: kits, litefile, postscripts (osimage and linuximage are first).
        for (table, key, entries) in [
            ("kit", "kitname", &m.kit),
            ("kitrepo", "kitreponame", &m.kitrepo),
            ("kitcomponent", "kitcompname", &m.kitcomp),
        ] {
            for (n, row) in entries {
                upserts.push(upsert(table, &[(key, n)], row));
            }
        }
        if let Some(lite) = &m.litefile {
            let csv = members
                .get(basename(lite))
                .map(Spooled::content)
                .transpose()?;
            upserts.extend(self.litefile_rows(name, &csv.unwrap_or_default())?);
        }
        if let Some(nodes) = &self.opts.postscripts {
            upserts.extend(self.postscript_rows(m, nodes, report)?);
        }
        Ok((steps, upserts))
    }

    /// Carries out planned steps and writes the rows. Every placement is journaled in
    /// `placement`; the caller rolls back on error.
    #[allow(clippy::too_many_arguments)]
    fn apply_steps(
        &self,
        plan: &Plan,
        steps: &[Step],
        upserts: &[Upsert],
        members: &BTreeMap<String, Spooled>,
        tree: &mut Option<StagedTree>,
        placement: &mut Placement,
        outcome: &mut ImageOutcome,
        report: &mut dyn Reporter,
    ) -> Result<()> {
        for step in steps {
            match step {
                Step::File { member, dest } => {
                    let spooled = spooled_file(members, member).ok_or_else(|| {
                        Error::Xcat(format!("The bundle has no {member} for {dest}."))
                    })?;
                    self.place(spooled, dest, placement, outcome, report)?;
                }
                Step::Subtree { prefix, dest } => {
                    let (_guard, staged) = self.materialize(members, prefix, placement, dest)?;
                    self.place(&staged, dest, placement, outcome, report)?;
                }
                Step::Tree { .. } => {
                    if tree.is_none() {
                        let name = tree_member(members).unwrap_or(TREE_MEMBER);
                        let spooled = spooled_file(members, name).ok_or_else(|| {
                            Error::Xcat(format!("The bundle has no {TREE_MEMBER}."))
                        })?;
                        report.info(&format!("Extracting {name}. It will take a while."));
                        let f = File::open(spooled).map_err(|e| Error::io(spooled, e))?;
                        *tree = Some(self.stage_tree(
                            plan,
                            placement,
                            &mut BufReader::new(f),
                            tree_codec(name).unwrap_or_default(),
                            report,
                        )?);
                    }
                    if let Some(t) = tree.take() {
                        outcome.tree_entries = t.entries;
                        let shown = self.root.display(&t.dest);
                        report.info(&shown);
                        if placement.put(&t.staging, &t.dest)? {
                            report.info(&format!("  Moving old {shown} to {shown}.ORIG."));
                        }
                        outcome.files.push(shown);
                    }
                }
            }
        }
        if plan.manifest.litefile.is_some() {
            report.info("Updating the litefile table.");
        }
        if upserts.iter().any(|u| u.table == "postscripts") {
            report.info("Adding postscripts.");
        }
        let applied = self.catalog.apply(upserts)?;
        for (table, column) in applied.dropped {
            report.warning(&format!(
                "The {table} table of this MN has no column '{column}'; its value in manifest.xml was not imported."
            ));
        }
        if plan.manifest.litefile.is_some() {
            report.info(
                "The litetree and statelite tables are untouched. You can update them if needed.",
            );
        }
        Ok(())
    }

    /// What a planned image would do, for `--dry-run`.
    fn preview(&self, steps: &[Step], upserts: &[Upsert]) -> Result<DryRun> {
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

    /// Builds the spooled subtree `prefix` (a member and everything below it) in a
    /// staging directory beside `dest`. Returns the staging guard (dropping it removes
    /// whatever was not moved out) and the staged top.
    fn materialize(
        &self,
        members: &BTreeMap<String, Spooled>,
        prefix: &str,
        placement: &mut Placement,
        dest: &str,
    ) -> Result<(tempfile::TempDir, PathBuf)> {
        let host = self.root.resolve_for_write(dest)?;
        let parent = host.parent().unwrap_or(self.root.dir()).to_path_buf();
        placement.create_dirs(&parent)?;
        let staging = tempfile::Builder::new()
            .prefix(".imgport-stage-")
            .tempdir_in(&parent)
            .map_err(|e| Error::io(&parent, e))?;
        let top = staging.path().join("t");
        let mut links: Vec<&str> = Vec::new();
        for (rel, sp) in members.range(prefix.to_string()..) {
            let sub = if rel == prefix {
                ""
            } else if let Some(s) = rel.strip_prefix(prefix).and_then(|s| s.strip_prefix('/')) {
                s
            } else {
                break;
            };
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
                (MemberKind::File, Some(p)) => {
                    fs::rename(p, &target).map_err(|e| Error::io(&target, e))?;
                }
                _ => {}
            }
        }
        Ok((staging, top))
    }

    /// litefile rows from litefile.csv (§3.4): skip lines an enabled `ALL` row already
    /// covers with the same options.
    fn litefile_rows(&self, image: &str, csv: &[u8]) -> Result<Vec<Upsert>> {
        let text = String::from_utf8_lossy(csv);
        let mut out = Vec::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split('"').collect();
            let (Some(file), Some(options)) = (fields.get(3), fields.get(5)) else {
                continue;
            };
            if file.is_empty() {
                continue;
            }
            let all = self
                .catalog
                .get("litefile", &[("image", "ALL"), ("file", file)])?;
            let all_options = all
                .as_ref()
                .and_then(|r| r.get("options"))
                .map(String::as_str);
            if all.is_some() && all_options.unwrap_or("") == *options {
                continue;
            }
            out.push(Upsert {
                table: "litefile".into(),
                key: vec![
                    ("image".into(), image.into()),
                    ("file".into(), file.to_string()),
                ],
                values: vec![("options".into(), Some(options.to_string()))],
            });
        }
        Ok(out)
    }

    /// `-p NODERANGE` rows (§5.4, C19).
    fn postscript_rows(
        &self,
        m: &Manifest,
        noderange: &str,
        report: &mut dyn Reporter,
    ) -> Result<Vec<Upsert>> {
        let mut nodes = Vec::new();
        let mut missing = Vec::new();
        for n in self.catalog.expand_noderange(noderange)? {
            if self.catalog.node_exists(&n)? {
                nodes.push(n);
            } else {
                missing.push(n);
            }
        }
        if !missing.is_empty() {
            report.warning(
                "The following nodes will be skipped because they are not in the nodelist table.",
            );
            report.warning(&missing.join(","));
        }
        if nodes.is_empty() {
            return Err(Error::Xcat(format!(
                "The nodes {noderange} are not defined in xCAT DB."
            )));
        }
        let defaults = self
            .catalog
            .get("postscripts", &[("node", "xcatdefaults")])?
            .unwrap_or_default();
        let filter = |list: &Option<String>, col: &str| -> Option<String> {
            let list = list.as_deref().filter(|l| !l.is_empty())?;
            let default_items: Vec<&str> = defaults
                .get(col)
                .map(|d| d.split(',').map(str::trim).collect())
                .unwrap_or_default();
            let kept: Vec<&str> = list
                .split(',')
                .map(str::trim)
                .filter(|i| !i.is_empty() && !default_items.contains(i))
                .collect();
            (!kept.is_empty()).then(|| kept.join(","))
        };
        let ps = filter(&m.postscripts, "postscripts");
        let pbs = filter(&m.postbootscripts, "postbootscripts");
        if ps.is_none() && pbs.is_none() {
            return Ok(Vec::new());
        }
        report.info("Adding postscripts.");
        Ok(nodes
            .into_iter()
            .map(|n| Upsert {
                table: "postscripts".into(),
                key: vec![("node".into(), n)],
                values: vec![
                    ("postscripts".into(), ps.clone()),
                    ("postbootscripts".into(), pbs.clone()),
                ],
            })
            .collect())
    }
}

fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode & 0o7777)).map_err(|e| Error::io(p, e))
}

fn set_mtime(p: &Path, mtime: u64) -> Result<()> {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(mtime);
    let f = File::options()
        .write(true)
        .open(p)
        .map_err(|e| Error::io(p, e))?;
    f.set_times(fs::FileTimes::new().set_modified(t))
        .map_err(|e| Error::io(p, e))
}

fn is_direct_child(rel: &str, dir: &str) -> bool {
    rel.strip_prefix(dir)
        .and_then(|s| s.strip_prefix('/'))
        .is_some_and(|s| !s.is_empty() && !s.contains('/'))
}

fn spooled_file<'a>(members: &'a BTreeMap<String, Spooled>, rel: &str) -> Option<&'a Path> {
    members.get(rel).and_then(|s| s.path.as_deref())
}

fn upsert(table: &str, key: &[(&str, &str)], columns: &BTreeMap<String, String>) -> Upsert {
    Upsert {
        table: table.into(),
        key: key
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        values: columns
            .iter()
            .filter(|(k, _)| !key.iter().any(|(kk, _)| kk == k))
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect(),
    }
}

/// xCAT's `verify_manifest` (§5 step b, C14): the error lines, empty when valid.
pub fn verify(m: &Manifest) -> Vec<String> {
    let mut errors: Vec<String> = ["imagename", "provmethod", "profile", "osvers", "osarch"]
        .iter()
        .filter(|f| m.field(f).is_none())
        .map(|f| format!("The '{f}' field is not defined in manifest.xml."))
        .collect();
    if !errors.is_empty() {
        return errors;
    }
    let provmethod = m.field("provmethod").unwrap_or("");
    let osarch = m.field("osarch").unwrap_or("");
    let osvers = m.field("osvers").unwrap_or("");
    let s390x = osarch.contains("s390x");
    if !["install", "netboot", "statelite", "sysclone", "raw"]
        .iter()
        .any(|p| provmethod.contains(p))
    {
        return vec![format!(
            "Importing images with 'provmethod' {provmethod} is not supported. Hint: install, netboot, statelite, sysclone or raw"
        )];
    }
    if provmethod.contains("sysclone") && !s390x {
        return vec![format!(
            "Importing images with 'provemethod' {provmethod} is not supported. Hint: install, netboot, statelite, sysclone or raw"
        )];
    }
    if provmethod.contains("install") && m.linuximage.get("template").is_none_or(|t| t.is_empty()) {
        // xCAT's message names the wrong field (a copy-paste bug scripts may match).
        errors.push("The 'osarch' field is not defined in manifest.xml.".into());
    }
    let need = |errors: &mut Vec<String>, name: &str, v: &Option<String>| {
        if v.as_deref().is_none_or(|s| s.is_empty()) {
            errors.push(format!(
                "The '{name}' field is not defined in manifest.xml."
            ));
        }
    };
    if osvers.contains("esx") {
        return errors;
    }
    if provmethod.contains("netboot") && !s390x {
        need(&mut errors, "ramdisk", &m.ramdisk);
        need(&mut errors, "kernel", &m.kernel);
        need(&mut errors, "rootimg", &m.rootimg);
    }
    if (provmethod.contains("netboot") || provmethod.contains("sysclone"))
        && s390x
        && m.rawimagefiles.is_empty()
    {
        errors.push("The 'rawimagefiles' field is not defined in manifest.xml.".into());
    }
    if provmethod.contains("statelite") {
        need(&mut errors, "kernel", &m.kernel);
        need(&mut errors, "ramdisk", &m.ramdisk);
        need(&mut errors, "rootimgtree", &m.rootimgtree);
    }
    errors
}

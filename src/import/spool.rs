//! Import's first phase: open the bundle (a file, stdin, or a `-R` ssh stream), read
//! it once in stream order, and keep every member until its image is placed: files in
//! a spool directory on the install filesystem (so placing them is a rename), the
//! manifest checked as soon as it arrives, the statelite tree restored on the fly when
//! its manifest came first. Nothing is placed here.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::bundle::{BundleReader, Flow, Member, MemberKind, MANIFEST_NAME};
use crate::catalog::Catalog;
use crate::error::{Error, Result};
use crate::journal::{Journal, StagingDir};
use crate::placement::Placement;
use crate::progress;
use crate::remote::{self, Pull};
use crate::report::Reporter;
use crate::root::Root;

use super::members::{set_mode, spooled_file, Members, Spooled};
use super::plan::{Accepted, ManifestProblem};
use super::rootimg::{self, tree_codec, StagedTree};
use super::{BundleSource, Context};

/// Largest manifest.xml (and litefile.csv kept in memory) accepted; real ones are a
/// few KiB.
const MANIFEST_MAX_BYTES: u64 = 16 << 20;

/// What is known about one image directory once the bundle has streamed by.
#[derive(Default)]
pub(super) struct ImageDir {
    pub manifest: Option<std::result::Result<Accepted, ManifestProblem>>,
    pub members: Members,
    /// The tree restored during the stream (the manifest came first).
    pub tree: Option<StagedTree>,
    pub placement: Placement,
}

/// An opened bundle stream.
pub(super) struct Input {
    reader: CountingRead<Box<dyn Read + Send>>,
    /// The ssh transfer of a `-R` bundle: its status is known only after the stream.
    pull: Option<Pull>,
}

impl Input {
    /// Bytes of the bundle read so far (shared with the reader).
    pub fn counter(&self) -> Arc<AtomicU64> {
        self.reader.count.clone()
    }
}

/// Opens the bundle and starts the "read" progress phase. A bundle file that is not
/// there is xCAT's "Cannot find" (not found); one that cannot be read is an I/O error.
pub(super) fn open(
    source: &BundleSource,
    progress: &progress::Handle,
    report: &mut dyn Reporter,
) -> Result<Input> {
    let mut pull = None;
    let input: Box<dyn Read + Send> = match source {
        BundleSource::Stdin => Box::new(io::stdin()),
        BundleSource::Remote { host, path } => {
            report.info(&format!(
                "Obtaining the image bundle from the remote system {host}:{path}"
            ));
            let (transfer, reader) = Pull::start(&remote::Ssh::from_env(), host, path)?;
            report.verbose(&format!("Bundle file is located at {host}:{path}"));
            pull = Some(transfer);
            Box::new(reader)
        }
        BundleSource::Path(p) => {
            let shown = std::env::current_dir()
                .map(|c| c.join(p))
                .unwrap_or_else(|_| p.clone());
            let f = crate::bundle::open_file(p, &shown)?;
            report.verbose(&format!("Bundle file is located at {}", p.display()));
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            progress.start("read", size);
            Box::new(f)
        }
    };
    if !matches!(source, BundleSource::Path(_)) {
        progress.start("read", 0);
    }
    Ok(Input {
        reader: CountingRead {
            inner: input,
            count: Arc::new(AtomicU64::new(0)),
            progress: progress.clone(),
        },
        pull,
    })
}

impl Context<'_> {
    /// Reads the whole bundle. Returns the spool directory (`None` for `--dry-run`,
    /// which must not even create one), to be kept until every image is placed, and
    /// what each image directory holds. On error everything staged is removed.
    pub(super) fn read_bundle(
        &self,
        input: Input,
        report: &mut dyn Reporter,
    ) -> Result<(Option<StagingDir>, BTreeMap<String, ImageDir>)> {
        let spool = if self.opts.dry_run {
            None
        } else {
            Some(spool_dir(
                self.root,
                self.catalog,
                &self.installdir,
                &self.journal,
            )?)
        };
        let Input { reader, pull } = input;
        let mut images: BTreeMap<String, ImageDir> = BTreeMap::new();
        let mut seq = 0u64;
        // The first read of the bundle is a read of the bundle, like every later one.
        let streamed = BundleReader::new(reader)
            .map_err(|e| match e {
                Error::Io { path, source } => {
                    Error::bundle_read(path.display().to_string(), source)
                }
                other => other,
            })
            .and_then(|reader| {
                reader.for_each(|member| {
                    if !images.contains_key(&member.image_dir) {
                        let tag = self.journal.image(&member.image_dir)?;
                        let dir = ImageDir {
                            placement: Placement::journaled(self.journal.clone(), tag),
                            ..ImageDir::default()
                        };
                        images.insert(member.image_dir.clone(), dir);
                    }
                    let dir = images.entry(member.image_dir.clone()).or_default();
                    self.take_member(member, dir, spool.as_ref(), &mut seq, report)
                })
            });
        if let Err(e) = end_transfer(streamed, pull, report) {
            // Nothing was placed yet: only staging to remove.
            for (_, dir) in images {
                discard(dir.tree, dir.placement);
            }
            return Err(match e {
                Error::Bundle(msg) => Error::Bundle(format!(
                    "Failed to extract bundle {}: {msg}",
                    self.opts.bundle.name()
                )),
                other => other,
            });
        }
        Ok((spool, images))
    }

    /// Keeps one member: checks a manifest, restores a tree whose manifest came first,
    /// spools a file, remembers a directory or symlink. `seq` numbers spool files.
    fn take_member(
        &self,
        member: Member<'_>,
        dir: &mut ImageDir,
        spool: Option<&StagingDir>,
        seq: &mut u64,
        report: &mut dyn Reporter,
    ) -> Result<Flow> {
        let name = format!("{}/{}", member.image_dir, member.rel);
        if member.rel == MANIFEST_NAME {
            let xml = read_small(member.data, &name)?;
            dir.manifest = Some(self.check_manifest(&xml));
            return Ok(Flow::Continue);
        }
        if self.opts.dry_run {
            // Touch nothing: remember what is there, keep only the litefile rows.
            let data = if member.rel == "litefile.csv" {
                Some(read_small(member.data, &name)?)
            } else {
                None
            };
            dir.members.insert(
                member.rel,
                Spooled {
                    path: None,
                    data,
                    kind: member.kind,
                    mode: member.mode,
                },
            );
            return Ok(Flow::Continue);
        }
        if member.rel == rootimg::SIDECAR_MEMBER && dir.tree.is_some() {
            // The tree was restored without it; imgport writes the sidecar first.
            return Err(Error::Tree(crate::tree::TreeError::Format {
                entry: name,
                reason: format!(
                    "comes after {} in the bundle, whose tree was restored already; \
                     the sidecar must come before its tree",
                    rootimg::default_tree_member()
                ),
            }));
        }
        if let Some(codec) = tree_codec(&member.rel).filter(|_| dir.tree.is_none()) {
            if let Some(Ok(accepted)) = &dir.manifest {
                if accepted.manifest.rootimgtree.is_some() {
                    report.info(&format!("Extracting {}. It will take a while.", member.rel));
                    let staged = self.stage_tree(
                        accepted.manifest.rootimgtree.as_deref().unwrap_or(""),
                        &mut dir.placement,
                        member.data,
                        codec,
                        spooled_file(&dir.members, rootimg::SIDECAR_MEMBER),
                        report,
                    )?;
                    dir.tree = Some(staged);
                    return Ok(Flow::Continue);
                }
            }
        }
        *seq += 1;
        let path = match member.kind {
            MemberKind::File => {
                let spool = spool
                    .ok_or_else(|| Error::io("spool", io::Error::other("no spool directory")))?;
                let p = spool.path().join(format!("{seq}"));
                let mut f = File::create(&p).map_err(|e| Error::io(&p, e))?;
                copy_member(member.data, &mut f, &name)?;
                drop(f);
                set_mode(&p, member.mode)?;
                set_mtime(&p, member.mtime)?;
                Some(p)
            }
            _ => None,
        };
        dir.members.insert(
            member.rel,
            Spooled {
                path,
                data: None,
                kind: member.kind,
                mode: member.mode,
            },
        );
        Ok(Flow::Continue)
    }
}

/// Drops what was staged for an image that is not placed.
pub(super) fn discard(tree: Option<StagedTree>, placement: Placement) {
    rootimg::remove_staging(tree.as_ref());
    placement.rollback();
}

/// The outcome of the stream, once the ssh transfer (if any) has ended too. A bundle
/// that read cleanly may still be cut short or empty because ssh failed (a missing
/// file, a refused login): nothing is placed before ssh says it is done, and ssh's own
/// failure wins over the read error it causes.
fn end_transfer(streamed: Result<()>, pull: Option<Pull>, report: &mut dyn Reporter) -> Result<()> {
    match (streamed, pull) {
        (Ok(()), Some(transfer)) => transfer
            .finish()
            .map(|lines| lines.iter().for_each(|l| report.verbose(l)))
            .map_err(Error::from),
        (Err(e), Some(transfer)) => Err(transfer.abort().map(Error::from).unwrap_or(e)),
        (result, None) => result,
    }
}

/// A small member (manifest, litefile.csv) read into memory, at most
/// [`MANIFEST_MAX_BYTES`].
fn read_small(data: &mut dyn Read, name: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    data.take(MANIFEST_MAX_BYTES)
        .read_to_end(&mut buf)
        .map_err(|e| Error::bundle_read(name, e))?;
    Ok(buf)
}

/// Copies a member's data into its spool file. A failing read is the bundle's fault
/// (cut short, bad compression); a failing write is the MN's. Both name the member.
fn copy_member(data: &mut dyn Read, spool: &mut File, name: &str) -> Result<()> {
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match data.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::bundle_read(name, e)),
        };
        spool.write_all(&buf[..n]).map_err(|e| Error::io(name, e))?;
    }
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

/// The spool directory: `site.tmpdir` if set (like xCAT's work dir), else a hidden
/// directory in the install dir so staged files are renamed, not copied, into place.
/// Journaled as staging: a dead run's spool is removed by recovery.
fn spool_dir(
    root: &Root,
    catalog: &Catalog,
    installdir: &str,
    journal: &Journal,
) -> Result<StagingDir> {
    let candidates = [catalog.site("tmpdir")?, Some(installdir.to_string())];
    let host = candidates
        .into_iter()
        .flatten()
        .filter(|d| !d.is_empty())
        .filter_map(|mn| root.resolve(&mn).ok())
        .find(|host| host.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    Ok(StagingDir::new(journal.staging_dir(
        0,
        &host,
        ".imgport-import-",
    )?))
}

/// Counts the bundle bytes read, for the report and the progress bar.
struct CountingRead<R> {
    inner: R,
    count: Arc<AtomicU64>,
    progress: progress::Handle,
}

impl<R: Read> Read for CountingRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        self.progress.add(n as u64, 0);
        Ok(n)
    }
}

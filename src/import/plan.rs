//! What one image's import will do, decided before anything is touched: the manifest
//! checked as xCAT checks it (and renamed by `-f`), then every bundle member matched to
//! the MN path it goes to, and the table rows. Fails on what would make the import
//! incomplete (a payload file, raw image, tree or extra the bundle lacks) or unsafe (a
//! destination outside the root), as the real import does, but before the first move.

use std::collections::BTreeMap;

use crate::bundle::{MemberKind, EXTRA_DIR};
use crate::error::{Error, Result};
use crate::image::CONFIG_COLUMNS;
use crate::manifest::Manifest;
use crate::profile;
use crate::report::Reporter;
use crate::root::{basename, dirname, Root};

use super::members::Members;
use super::rootimg::{default_tree_member, tree_member};
use super::Context;

/// Why an image directory's manifest is not imported.
pub(super) enum ManifestProblem {
    /// Not well-formed: xCAT stops the whole import.
    Invalid(String),
    /// Well-formed but refused (missing fields, unsupported provmethod, no media).
    Refused(Vec<String>),
}

/// A manifest that passed xCAT's checks, after `-f`.
pub(super) struct Accepted {
    pub manifest: Manifest,
    pub imagename: String,
    /// Destination MN path → bundle member name, for config files renamed by `-f`.
    pub renamed: BTreeMap<String, String>,
}

/// One thing an import does to the MN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    /// A bundle file to the MN path `dest`.
    File { member: String, dest: String },
    /// A bundle directory and everything below it (kit directories, extra
    /// directories' entries) to `dest`.
    Subtree { prefix: String, dest: String },
    /// The statelite tree to `dest` (`<rootimgdir>/rootimg`).
    Tree { dest: String },
    /// A bundle file or directory copied, not moved (a later step places it too), to
    /// `dest`, its top given `mode` when set: a kit's postscripts and plugins.
    Copy {
        prefix: String,
        dest: String,
        mode: Option<u32>,
        /// A kit plugin: xcatd must be restarted to load it.
        plugin: bool,
    },
}

impl Step {
    pub fn dest(&self) -> &str {
        match self {
            Step::File { dest, .. }
            | Step::Subtree { dest, .. }
            | Step::Tree { dest }
            | Step::Copy { dest, .. } => dest,
        }
    }
}

/// The steps planned so far. Every destination must resolve inside the root, checked
/// as it is planned so the first offending manifest path is the one reported.
struct Steps<'a> {
    root: &'a Root,
    list: Vec<Step>,
}

impl Steps<'_> {
    fn push(&mut self, step: Step) -> Result<()> {
        self.root.resolve_for_write(step.dest())?;
        self.list.push(step);
        Ok(())
    }

    fn file(&mut self, member: &str, dest: &str) -> Result<()> {
        self.push(Step::File {
            member: member.to_string(),
            dest: dest.to_string(),
        })
    }
}

/// The entries of a comma-separated manifest list, trimmed, empty ones dropped.
fn list_items(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|d| !d.is_empty())
}

impl Context<'_> {
    /// Parses, checks (`verify_manifest`, `check_media`) and applies `-f`.
    pub(super) fn check_manifest(
        &self,
        xml: &[u8],
    ) -> std::result::Result<Accepted, ManifestProblem> {
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
        Ok(Accepted {
            manifest,
            imagename,
            renamed,
        })
    }

    /// Decides which bundle member goes to which MN path, in the order they are
    /// placed, touching nothing. `tree_staged`: the tree was already restored during
    /// the stream.
    pub(super) fn plan_steps(
        &self,
        accepted: &Accepted,
        members: &Members,
        tree_staged: bool,
        report: &mut dyn Reporter,
    ) -> Result<Vec<Step>> {
        let mut steps = Steps {
            root: self.root,
            list: Vec::new(),
        };
        payload_steps(accepted, members, &mut steps)?;
        config_steps(accepted, members, &mut steps, report)?;
        self.raw_image_steps(&accepted.manifest, members, &mut steps)?;
        self.kit_steps(&accepted.manifest, members, &mut steps)?;
        tree_step(accepted, members, tree_staged, &mut steps)?;
        extra_steps(&accepted.manifest, members, &mut steps)?;
        Ok(steps.list)
    }

    /// s390x raw image files, into `<installdir>/<provmethod>/<osvers>/<osarch>/<profile>`
    /// with an `.img` suffix; fatal when absent.
    fn raw_image_steps(&self, m: &Manifest, members: &Members, steps: &mut Steps) -> Result<()> {
        if m.rawimagefiles.is_empty() {
            return Ok(());
        }
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
                return Err(Error::Incomplete(format!(
                    "Could not move {base} to {dir}: not in the bundle"
                )));
            }
            let target = if base.ends_with(".img") {
                base.to_string()
            } else {
                format!("{base}.img")
            };
            steps.file(base, &format!("{dir}/{target}"))?;
        }
        Ok(())
    }

    /// Kits (XCAT.md §6.5 step 3): the kit directory the bundle carries goes beside its
    /// `kitdir`, under the kit name; its `other_files/*` are copied to
    /// `<installdir>/postscripts` (mode 0755, without dotfiles, `*.exlist` and `*.env`)
    /// and its `plugins/*` to `$XCATROOT/lib/perl/xCAT_plugin`. The copies come first:
    /// placing the kit directory moves the spooled files they are made from. A kit
    /// directory the export could not find is not in the bundle: skipped.
    fn kit_steps(&self, m: &Manifest, members: &Members, steps: &mut Steps) -> Result<()> {
        for (kitname, row) in &m.kit {
            let Some(kitdir) = row.get("kitdir") else {
                continue;
            };
            let prefix = basename(kitdir);
            if !is_present(members, prefix) {
                continue;
            }
            let postscripts = format!("{}/postscripts", self.installdir);
            for name in children(members, &format!("{prefix}/other_files")) {
                let lower = name.to_ascii_lowercase();
                if lower.ends_with(".exlist") || lower.ends_with(".env") {
                    continue;
                }
                steps.push(Step::Copy {
                    prefix: format!("{prefix}/other_files/{name}"),
                    dest: format!("{postscripts}/{name}"),
                    mode: Some(0o755),
                    plugin: false,
                })?;
            }
            let plugins = format!("{}/lib/perl/xCAT_plugin", self.xcatroot);
            for name in children(members, &format!("{prefix}/plugins")) {
                steps.push(Step::Copy {
                    prefix: format!("{prefix}/plugins/{name}"),
                    dest: format!("{plugins}/{name}"),
                    mode: None,
                    plugin: true,
                })?;
            }
            steps.push(Step::Subtree {
                prefix: prefix.to_string(),
                dest: format!("{}/{kitname}", dirname(kitdir)),
            })?;
        }
        Ok(())
    }
}

/// The image payload (kernel, ramdisk, rootimg, litefile), each member by its
/// basename; fatal when absent.
fn payload_steps(accepted: &Accepted, members: &Members, steps: &mut Steps) -> Result<()> {
    let m = &accepted.manifest;
    for value in [&m.kernel, &m.ramdisk, &m.rootimg, &m.litefile]
        .into_iter()
        .flatten()
    {
        for dest in list_items(value) {
            let member = basename(dest);
            if !members.contains_key(member) {
                return Err(Error::Incomplete(format!(
                    "The bundle has no {member} for {dest} of image {}.",
                    accepted.imagename
                )));
            }
            steps.file(member, dest)?;
        }
    }
    Ok(())
}

/// Config files (template, pkglist, ..., synclists): exported by basename (or renamed
/// by `-f`), and skipped with an error when the export could not read them, so their
/// absence is only a warning here.
fn config_steps(
    accepted: &Accepted,
    members: &Members,
    steps: &mut Steps,
    report: &mut dyn Reporter,
) -> Result<()> {
    let m = &accepted.manifest;
    let config_lists = CONFIG_COLUMNS
        .iter()
        .filter_map(|c| m.linuximage.get(*c))
        .chain(m.osimage.get("synclists"));
    for list in config_lists {
        for dest in list_items(list) {
            let member = accepted
                .renamed
                .get(dest)
                .map(String::as_str)
                .unwrap_or_else(|| basename(dest));
            if members.contains_key(member) {
                steps.file(member, dest)?;
            } else {
                report.warning(&format!(
                    "{dest} is named in manifest.xml but not in the bundle; skipped"
                ));
            }
        }
    }
    Ok(())
}

/// The statelite tree, to `<rootimgdir>/rootimg`; fatal when the bundle has none.
fn tree_step(
    accepted: &Accepted,
    members: &Members,
    tree_staged: bool,
    steps: &mut Steps,
) -> Result<()> {
    let Some(tree_file) = &accepted.manifest.rootimgtree else {
        return Ok(());
    };
    if !tree_staged && tree_member(members).is_none() {
        return Err(Error::Incomplete(format!(
            "The bundle has no {} for image {}.",
            default_tree_member(),
            accepted.imagename
        )));
    }
    steps.push(Step::Tree {
        dest: format!("{}/rootimg", dirname(tree_file)),
    })
}

/// `-e` extras: a directory's entries each to `<dest>/<name>` (xCAT's `cp -a src/*`),
/// a file to `<dest>/<basename>`; fatal when absent or empty. A directory may have no
/// member of its own (bundles from tools that write no directory entries): members
/// below it make it one, as `tar` creates their parents.
fn extra_steps(m: &Manifest, members: &Members, steps: &mut Steps) -> Result<()> {
    for extra in &m.extra {
        let dir_member = format!("{EXTRA_DIR}/{}", extra.src.trim_matches('/'));
        let dest_dir = extra.dest.trim_end_matches('/');
        if is_dir(members, &dir_member) {
            let names = children(members, &dir_member);
            if names.is_empty() {
                return Err(Error::Incomplete(format!(
                    "Failed to cp -a {dir_member}/* to {}",
                    extra.dest
                )));
            }
            for name in names {
                steps.push(Step::Subtree {
                    prefix: format!("{dir_member}/{name}"),
                    dest: format!("{dest_dir}/{name}"),
                })?;
            }
        } else {
            let base = basename(&extra.src);
            let member = format!("{EXTRA_DIR}/{base}");
            if !members.contains_key(&member) {
                return Err(Error::Incomplete(format!(
                    "Failed to copy {member} to {}",
                    extra.dest
                )));
            }
            steps.file(&member, &format!("{dest_dir}/{base}"))?;
        }
    }
    Ok(())
}

/// The members strictly below `dir`, in order.
fn below<'a>(members: &'a Members, dir: &str) -> impl Iterator<Item = &'a str> {
    let start = format!("{dir}/");
    members
        .range(start.clone()..)
        .map(|(k, _)| k.as_str())
        .take_while(move |k| k.starts_with(&start))
}

/// Whether `rel` is a directory: a directory member, or any member below it.
pub(super) fn is_dir(members: &Members, rel: &str) -> bool {
    matches!(members.get(rel).map(|s| &s.kind), Some(MemberKind::Dir))
        || below(members, rel).next().is_some()
}

/// Whether the bundle has `rel`, as a member or as the directory of members below it.
fn is_present(members: &Members, rel: &str) -> bool {
    members.contains_key(rel) || below(members, rel).next().is_some()
}

/// The names directly below `dir` (from its members and from the paths of deeper
/// ones), dotfiles left out as a shell's `*` leaves them out.
fn children(members: &Members, dir: &str) -> Vec<String> {
    // A set: `a-b` sorts between `a` and `a/x`.
    let names: std::collections::BTreeSet<&str> = below(members, dir)
        .filter_map(|k| k.get(dir.len() + 1..)?.split('/').next())
        .filter(|n| !n.is_empty() && !n.starts_with('.'))
        .collect();
    names.into_iter().map(str::to_string).collect()
}

/// xCAT's `verify_manifest` (XCAT.md §6.2, C14): the error lines, empty when valid.
fn verify(m: &Manifest) -> Vec<String> {
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
            "Importing images with 'provemethod' {provmethod} is not supported for osarch '{osarch}'"
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

//! Which files an osimage needs: xCAT's discovery rules (`imgexport`'s `get_files`,
//! `look_for_file`, `searchcompressedrootimg`, litefile collection, `-e`, `-p`).
//!
//! Reads the catalog and the root, writes nothing. The result is the manifest plus
//! the list of payload sources that the export flow streams into a bundle.

use crate::catalog::{Catalog, Row};
use crate::error::{Error, Result};
use crate::manifest::{Columns, Extra, Manifest};
use crate::report::Reporter;
use crate::root::{basename, dirname, Root};
use crate::tree::Codec;

/// Where xCAT's own shipped files live on an MN (`$XCATROOT`).
pub const XCATROOT: &str = "/opt/xcat";
/// xCAT's default install directory (`site.installdir`).
pub const DEFAULT_INSTALLDIR: &str = "/install";

/// The linuximage columns (and synclists from osimage) naming config files that are
/// exported by basename and placed back on import (XCAT.md C12).
pub const CONFIG_COLUMNS: &[&str] = &[
    "template",
    "pkglist",
    "otherpkglist",
    "postinstall",
    "exlist",
];

/// One payload file: where it is on the MN and its name inside the image directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub src: String,
    pub name: String,
}

/// A `-e` extra: a file or a directory of the MN, and where import puts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraSource {
    pub src: String,
    pub dest: String,
    pub is_dir: bool,
}

/// Everything an export of one image needs.
#[derive(Debug, Clone)]
pub struct ImageSet {
    pub manifest: Manifest,
    /// Flat payload files, in bundle order.
    pub files: Vec<Payload>,
    /// Statelite: MN path of `<rootimgdir>/rootimg`.
    pub tree: Option<String>,
    /// Statelite: the generated `litefile.csv` bytes.
    pub litefile_csv: Option<Vec<u8>>,
    pub extras: Vec<ExtraSource>,
    /// Kit directories (`kit.kitdir`), exported whole under their basename.
    pub kit_dirs: Vec<String>,
}

/// Options that change discovery.
#[derive(Debug, Clone, Default)]
pub struct DiscoverOptions {
    /// `-e SRC[:DESTDIR]` values.
    pub extras: Vec<String>,
    /// `-p NODE`.
    pub postscripts_node: Option<String>,
}

/// `site.installdir`, or `/install`.
/// `$XCATROOT` as xcatd sees it: the environment's, else `/opt/xcat` (an MN path). Kit
/// plugins go below it; export's search paths keep xCAT's hard-coded [`XCATROOT`].
pub fn xcatroot() -> String {
    std::env::var("XCATROOT")
        .ok()
        .filter(|v| v.starts_with('/'))
        .map(|v| v.trim_end_matches('/').to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| XCATROOT.to_string())
}

pub fn installdir(catalog: &Catalog) -> Result<String> {
    Ok(catalog
        .site("installdir")?
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| DEFAULT_INSTALLDIR.to_string()))
}

/// Finds what image `name` needs, reporting xCAT's progress and non-fatal error lines.
/// Fatal conditions return `Error::Xcat` with xCAT's message(s). Phases: the table
/// rows, kits, the provisioning method's own files, the payload list, then `-e` and
/// `-p`.
pub fn discover(
    root: &Root,
    catalog: &Catalog,
    name: &str,
    opts: &DiscoverOptions,
    report: &mut dyn Reporter,
) -> Result<ImageSet> {
    let (osimage, mut linuximage) = image_rows(catalog, name)?;
    let mut manifest = Manifest::default();
    let set = Finder {
        root,
        installdir: installdir(catalog)?,
        name,
        osimage: &osimage,
    };
    if osimage.get("kitcomponents").is_some_and(|k| !k.is_empty()) {
        collect_kits(catalog, &osimage, &mut manifest)?;
    }
    let statelite = set.provisioning_files(catalog, &mut linuximage, &mut manifest, report)?;
    let files = payload_files(root, name, &manifest, &osimage, &linuximage, report);
    let extras = collect_extras(root, &opts.extras, &mut manifest, report)?;
    if let Some(node) = &opts.postscripts_node {
        collect_postscripts(catalog, node, &mut manifest)?;
    }
    let kit_dirs = manifest
        .kit
        .iter()
        .filter_map(|(_, row)| row.get("kitdir").cloned())
        .collect();

    manifest.osimage = to_columns(osimage);
    manifest.linuximage = to_columns(linuximage);
    Ok(ImageSet {
        manifest,
        files,
        tree: statelite.tree,
        litefile_csv: statelite.litefile_csv,
        extras,
        kit_dirs,
    })
}

/// The image's osimage and linuximage rows (not found: xCAT's "Cannot find image").
fn image_rows(catalog: &Catalog, name: &str) -> Result<(Row, Row)> {
    let osimage = catalog
        .get("osimage", &[("imagename", name)])?
        .ok_or_else(|| {
            Error::NotFound(format!(
                "Cannot find image '{name}' from the osimage table."
            ))
        })?;
    check_osimage(name, &osimage)?;
    let linuximage = catalog
        .get("linuximage", &[("imagename", name)])?
        .ok_or_else(|| {
            Error::NotFound(format!(
                "Cannot find image '{name}' from the linuximage table."
            ))
        })?;
    Ok((osimage, linuximage))
}

/// A statelite image's tree and generated litefile.csv (both `None` otherwise).
#[derive(Default)]
struct StateliteParts {
    /// MN path of `<rootimgdir>/rootimg`.
    tree: Option<String>,
    litefile_csv: Option<Vec<u8>>,
}

/// The flat payload files, in bundle order: kernel, ramdisk, rootimg, raw images,
/// then the config files (XCAT.md C12), each by basename. Unreadable config files are skipped
/// with xCAT's non-fatal error; their manifest entries stay.
fn payload_files(
    root: &Root,
    name: &str,
    manifest: &Manifest,
    osimage: &Row,
    linuximage: &Row,
    report: &mut dyn Reporter,
) -> Vec<Payload> {
    let mut files = Vec::new();
    for path in [&manifest.kernel, &manifest.ramdisk, &manifest.rootimg]
        .into_iter()
        .flatten()
    {
        files.push(payload(path));
    }
    files.extend(manifest.rawimagefiles.iter().map(|p| payload(p)));
    let synclists = osimage.get("synclists").cloned();
    let config_values = CONFIG_COLUMNS
        .iter()
        .filter_map(|c| linuximage.get(*c).cloned())
        .chain(synclists);
    for list in config_values {
        for path in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if readable_file(root, path) {
                files.push(payload(path));
            } else {
                report.error(&format!("Couldn't find file {path} for {name}. Skip."));
            }
        }
    }
    dedupe_by_name(&mut files, report);
    files
}

fn payload(path: &str) -> Payload {
    Payload {
        src: path.to_string(),
        name: basename(path).to_string(),
    }
}

fn to_columns(row: Row) -> Columns {
    row.into_iter().filter(|(_, v)| !v.is_empty()).collect()
}

/// xCAT's osimage checks (XCAT.md §3.2): every failing rule reports its line (as
/// xCAT does), then the export stops.
fn check_osimage(name: &str, osimage: &Row) -> Result<()> {
    let mut errors: Vec<String> = ["provmethod", "profile", "osvers", "osarch"]
        .iter()
        .filter(|f| osimage.get(**f).is_none_or(|v| v.is_empty()))
        .map(|f| format!("The '{f}' field is not set for '{name}' in the osimage table."))
        .collect();
    let provmethod = osimage.get("provmethod").map(String::as_str).unwrap_or("");
    let osarch = osimage.get("osarch").map(String::as_str).unwrap_or("");
    let known = ["install", "netboot", "statelite", "raw", "sysclone"]
        .iter()
        .any(|p| provmethod.contains(p));
    if !known {
        errors.push(format!(
            "Exporting images with 'provemethod' {provmethod} is not supported. Hint: install, netboot, statelite, or raw"
        ));
    }
    if provmethod.contains("sysclone") && !osarch.contains("s390x") {
        errors.push(format!(
            "Exporting images with 'provemethod' {provmethod} is not supported for osarch '{osarch}'"
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Xcat(errors.join("\n")))
    }
}

/// Discovery helpers bound to one image.
struct Finder<'a> {
    root: &'a Root,
    installdir: String,
    name: &'a str,
    osimage: &'a Row,
}

impl Finder<'_> {
    /// What the provisioning method needs (xCAT's `get_files`): the install template,
    /// or the netboot/statelite kernel, ramdisk and rootimg or tree, or s390x raw
    /// images. A template or pkglist found by xCAT's search goes into `linuximage`.
    fn provisioning_files(
        &self,
        catalog: &Catalog,
        linuximage: &mut Row,
        manifest: &mut Manifest,
        report: &mut dyn Reporter,
    ) -> Result<StateliteParts> {
        let name = self.name;
        let provmethod = self.osimage_field("provmethod");
        let osvers = self.osimage_field("osvers");
        let osarch = self.osimage_field("osarch");
        if provmethod.contains("install") {
            if linuximage.get("template").is_none_or(|t| t.is_empty()) {
                let found = self
                    .look_for_profile_file("install", "tmpl")?
                    .ok_or_else(|| {
                        Error::Xcat(format!("Couldn't find install template for {name}"))
                    })?;
                report.info(&found);
                linuximage.insert("template".into(), found);
            }
            manifest.media = Some("required".into());
        } else if (provmethod.contains("netboot") || provmethod.contains("statelite"))
            && !osvers.contains("esx")
        {
            if provmethod.contains("netboot") && osarch.contains("s390x") {
                let dir = format!(
                    "{}/netboot/{osvers}/s390x/{}",
                    self.installdir,
                    self.osimage_field("profile")
                );
                manifest.rawimagefiles = self.img_files(&dir, report)?;
            } else {
                return self.diskless_files(catalog, &provmethod, linuximage, manifest, report);
            }
        } else if (provmethod.contains("raw") || provmethod.contains("sysclone"))
            && osarch.contains("s390x")
        {
            let dir = format!(
                "{}/{provmethod}/{osvers}/s390x/{}",
                self.installdir,
                self.osimage_field("profile")
            );
            manifest.rawimagefiles = self.img_files(&dir, report)?;
        }
        Ok(StateliteParts::default())
    }

    /// Netboot and statelite (not s390x): the pkglist when the table names none, the
    /// kernel and ramdisk, then the statelite tree and litefile rows, or the netboot
    /// compressed rootimg.
    fn diskless_files(
        &self,
        catalog: &Catalog,
        provmethod: &str,
        linuximage: &mut Row,
        manifest: &mut Manifest,
        report: &mut dyn Reporter,
    ) -> Result<StateliteParts> {
        let name = self.name;
        if linuximage.get("pkglist").is_none_or(|p| p.is_empty()) {
            let found = self
                .look_for_profile_file("netboot", "pkglist")?
                .ok_or_else(|| Error::Xcat(format!("Couldn't find pkglist file for {name}")))?;
            report.info(&found);
            linuximage.insert("pkglist".into(), found);
        }
        let rootimgdir = linuximage
            .get("rootimgdir")
            .filter(|d| !d.is_empty())
            .cloned();
        if !provmethod.contains("statelite") {
            let (kernel, ramdisk) =
                self.kernel_and_ramdisk(rootimgdir.as_deref(), "initrd-stateless.gz")?;
            let rootimg = match rootimgdir.as_deref() {
                Some(dir) => self.rootimg_in_dir(dir)?,
                None => self.rootimg_by_search()?,
            }
            .ok_or_else(|| Error::Xcat(format!("Couldn't find compressed rootimg for {name}")))?;
            manifest.kernel = Some(kernel);
            manifest.ramdisk = Some(ramdisk);
            manifest.rootimg = Some(rootimg);
            return Ok(StateliteParts::default());
        }
        let (kernel, ramdisk) =
            self.kernel_and_ramdisk(rootimgdir.as_deref(), "initrd-statelite.gz")?;
        let dir = rootimgdir
            .ok_or_else(|| Error::Xcat("Couldn't locate the root image directory. ".into()))?;
        manifest.kernel = Some(kernel);
        manifest.ramdisk = Some(ramdisk);
        manifest.rootimgtree = Some(format!("{dir}/{}", Codec::Gzip.tree_file_name()));
        manifest.litefile = Some(format!("{dir}/litefile.csv"));
        report.info("Getting litefile settings");
        Ok(StateliteParts {
            tree: Some(format!("{dir}/rootimg")),
            litefile_csv: Some(litefile_rows(catalog, name, self.osimage)?),
        })
    }

    fn osimage_field(&self, f: &str) -> String {
        self.osimage.get(f).cloned().unwrap_or_default()
    }

    fn exists(&self, path: &str) -> bool {
        readable_file(self.root, path)
    }

    /// xCAT's `look_for_file` directory probe: `d/dd` where `dd` is osvers (or
    /// `windows`) shortened from the end until `d/dd` is readable.
    fn platform_dir(&self, base: &str) -> Option<String> {
        let osvers = self.osimage_field("osvers");
        let mut dd = if osvers.contains("win") {
            "windows".to_string()
        } else {
            osvers
        };
        while !dd.is_empty() {
            let candidate = format!("{base}/{dd}");
            if self.root.resolve(&candidate).is_ok_and(|p| p.is_dir()) {
                return Some(candidate);
            }
            dd.pop();
        }
        None
    }

    /// Template or pkglist search (XCAT.md §3.5) in `<installdir>/custom/<kind>` then
    /// `/opt/xcat/share/xcat/<kind>`.
    fn look_for_profile_file(&self, kind: &str, ext: &str) -> Result<Option<String>> {
        let (profile, osvers, osarch) = (
            self.osimage_field("profile"),
            self.osimage_field("osvers"),
            self.osimage_field("osarch"),
        );
        for base in [
            format!("{}/custom/{kind}", self.installdir),
            format!("{XCATROOT}/share/xcat/{kind}"),
        ] {
            let Some(dir) = self.platform_dir(&base) else {
                continue;
            };
            for name in [
                format!("{profile}.{osvers}.{osarch}.{ext}"),
                format!("{profile}.{osvers}.{ext}"),
                format!("{profile}.{osarch}.{ext}"),
                format!("{profile}.{ext}"),
            ] {
                let candidate = format!("{dir}/{name}");
                if self.exists(&candidate) {
                    return Ok(Some(candidate));
                }
            }
        }
        Ok(None)
    }

    /// `look_for_file` for image files: `<installdir>/netboot/<dd>/<osarch>/<profile>/<file>`.
    fn look_for_netboot_file(&self, file: &str) -> Option<String> {
        let dir = self.platform_dir(&format!("{}/netboot", self.installdir))?;
        let candidate = format!(
            "{dir}/{}/{}/{file}",
            self.osimage_field("osarch"),
            self.osimage_field("profile")
        );
        self.exists(&candidate).then_some(candidate)
    }

    fn kernel_and_ramdisk(
        &self,
        rootimgdir: Option<&str>,
        initrd: &str,
    ) -> Result<(String, String)> {
        let find = |file: &str| match rootimgdir {
            Some(dir) => {
                let p = format!("{dir}/{file}");
                self.exists(&p).then_some(p)
            }
            None => self.look_for_netboot_file(file),
        };
        let ramdisk = find(initrd).ok_or_else(|| {
            Error::Xcat(format!(
                "Couldn't find ramdisk ({initrd}) for  {}",
                self.name
            ))
        })?;
        let kernel = find("kernel").ok_or_else(|| {
            Error::Xcat(format!("Couldn't find kernel (kernel) for  {}", self.name))
        })?;
        Ok((kernel, ramdisk))
    }

    /// `searchcompressedrootimg` with rootimgdir set (XCAT.md C7).
    fn rootimg_in_dir(&self, dir: &str) -> Result<Option<String>> {
        for name in [
            "rootimg.cpio.gz",
            "rootimg.cpio.xz",
            "rootimg.tar.gz",
            "rootimg.tar.xz",
            "rootimg.sfs",
            "rootimg.gz",
        ] {
            let p = format!("{dir}/{name}");
            if self.exists(&p) {
                return Ok(Some(p));
            }
        }
        Ok(None)
    }

    /// The search order xCAT uses when rootimgdir is not set (no `.sfs`).
    fn rootimg_by_search(&self) -> Result<Option<String>> {
        Ok([
            "rootimg.cpio.xz",
            "rootimg.cpio.gz",
            "rootimg.tar.xz",
            "rootimg.tar.gz",
            "rootimg.gz",
        ]
        .iter()
        .find_map(|f| self.look_for_netboot_file(f)))
    }

    /// Regular `*.img` files of an s390x image directory, sorted.
    fn img_files(&self, dir: &str, report: &mut dyn Reporter) -> Result<Vec<String>> {
        let host = self.root.resolve(dir)?;
        let Ok(read) = std::fs::read_dir(&host) else {
            report.error(&format!("Could not open image files in directory {dir}"));
            return Ok(Vec::new());
        };
        let mut out: Vec<String> = read
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".img"))
            .map(|n| format!("{dir}/{n}"))
            .collect();
        out.sort();
        Ok(out)
    }
}

/// Whether the MN path names a readable regular file under the root.
pub fn readable_file(root: &Root, path: &str) -> bool {
    root.resolve(path)
        .is_ok_and(|p| p.is_file() && std::fs::File::open(&p).is_ok())
}

/// Drops payloads whose bundle name is already taken: xCAT copies them flat by
/// basename, so the later one silently overwrote the earlier. We keep the first,
/// say so, and import then places that file at every destination, as xCAT's would.
fn dedupe_by_name(files: &mut Vec<Payload>, report: &mut dyn Reporter) {
    let mut seen: Vec<Payload> = Vec::new();
    files.retain(|f| match seen.iter().find(|s| s.name == f.name) {
        Some(s) if s.src == f.src => false,
        Some(s) => {
            report.warning(&format!(
                "{} and {} are both named {} in the bundle; only {} is exported",
                s.src, f.src, f.name, s.src
            ));
            false
        }
        None => {
            seen.push(f.clone());
            true
        }
    });
}

/// litefile.csv lines (XCAT.md §4.4, C9).
fn litefile_rows(catalog: &Catalog, name: &str, osimage: &Row) -> Result<Vec<u8>> {
    let mut rows = catalog.select("litefile", &[("image", "")])?;
    match osimage.get("groups").filter(|g| !g.is_empty()) {
        Some(groups) => rows.extend(catalog.select("litefile", &[("image", groups)])?),
        None => rows.extend(catalog.select("litefile", &[("image", "ALL")])?),
    }
    rows.extend(catalog.select("litefile", &[("image", name)])?);
    let mut out = Vec::new();
    for row in rows {
        let Some(file) = row.get("file").filter(|f| !f.is_empty()) else {
            continue;
        };
        let options = row
            .get("options")
            .filter(|o| !o.is_empty())
            .map(String::as_str)
            .unwrap_or("tmpfs");
        out.extend_from_slice(format!("\"{name}\",\"{file}\",\"{options}\",,\n").as_bytes());
    }
    Ok(out)
}

/// Kit rows (XCAT.md §3.3): every kit of the image's components, with all its repos and
/// components.
fn collect_kits(catalog: &Catalog, osimage: &Row, manifest: &mut Manifest) -> Result<()> {
    let comps = osimage.get("kitcomponents").cloned().unwrap_or_default();
    let mut kits: Vec<String> = Vec::new();
    for comp in comps.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        let row = catalog
            .get("kitcomponent", &[("kitcompname", comp)])?
            .ok_or_else(|| {
                Error::Xcat(format!(
                    "Cannot find kit component {comp} in the kitcomponent table."
                ))
            })?;
        let kit = row
            .get("kitname")
            .filter(|k| !k.is_empty())
            .ok_or_else(|| Error::Xcat(format!("Kit component {comp} has no kitname.")))?;
        if !kits.contains(kit) {
            kits.push(kit.clone());
        }
    }
    for kit in kits {
        let row = catalog
            .get("kit", &[("kitname", &kit)])?
            .ok_or_else(|| Error::Xcat(format!("Cannot find kit {kit} in the kit table.")))?;
        manifest.kit.push((kit.clone(), to_columns(row)));
        for repo in catalog.select("kitrepo", &[("kitname", &kit)])? {
            if let Some(n) = repo.get("kitreponame").cloned() {
                manifest.kitrepo.push((n, to_columns(repo)));
            }
        }
        for comp in catalog.select("kitcomponent", &[("kitname", &kit)])? {
            if let Some(n) = comp.get("kitcompname").cloned() {
                manifest.kitcomp.push((n, to_columns(comp)));
            }
        }
    }
    Ok(())
}

/// `-e SRC[:DESTDIR]` (XCAT.md C10). Unreadable sources are skipped with xCAT's error.
fn collect_extras(
    root: &Root,
    values: &[String],
    manifest: &mut Manifest,
    report: &mut dyn Reporter,
) -> Result<Vec<ExtraSource>> {
    let mut out = Vec::new();
    for value in values {
        let (src, dest) = match value.split_once(':') {
            Some((s, d)) if !d.is_empty() => (s.to_string(), Some(d.to_string())),
            Some((s, _)) => (s.to_string(), None),
            None => (value.clone(), None),
        };
        let src = absolute_mn_path(root, &src);
        let host = root.resolve(&src).ok().filter(|p| p.exists());
        let Some(host) = host else {
            report.error(&format!(
                "Can not find Extra file {src}.  Argument will be ignored"
            ));
            continue;
        };
        let is_dir = host.is_dir();
        // Opening a FIFO would block: only regular files are opened to test access.
        if !(is_dir || host.is_file() && std::fs::File::open(&host).is_ok()) {
            report.error(&format!(
                "Can not find Extra file {src}.  Argument will be ignored"
            ));
            continue;
        }
        let dest = dest.unwrap_or_else(|| {
            if is_dir {
                src.clone()
            } else {
                dirname(&src).to_string()
            }
        });
        manifest.extra.push(Extra {
            src: src.clone(),
            dest: dest.clone(),
        });
        out.push(ExtraSource { src, dest, is_dir });
    }
    Ok(out)
}

/// Relative `-e` paths are relative to the cwd, which only means something on the
/// host's own root; under `--root` they are taken from the root's `/`.
fn absolute_mn_path(root: &Root, src: &str) -> String {
    if src.starts_with('/') {
        return src.to_string();
    }
    if root.is_host() {
        if let Ok(cwd) = std::env::current_dir() {
            return cwd.join(src).display().to_string();
        }
    }
    format!("/{src}")
}

/// `-p NODE` (XCAT.md C11): the node's postscripts with xcatdefaults' prepended.
fn collect_postscripts(catalog: &Catalog, node: &str, manifest: &mut Manifest) -> Result<()> {
    let first = catalog.expand_noderange(node)?.into_iter().next();
    let first = match first {
        Some(n) if catalog.node_exists(&n)? => n,
        _ => {
            return Err(Error::Xcat(format!(
                "Unable to get postscripts, {node} is not a valide node."
            )))
        }
    };
    let defaults = catalog
        .get("postscripts", &[("node", "xcatdefaults")])?
        .unwrap_or_default();
    let own = catalog.node_attrs(&first, "postscripts", &["postscripts", "postbootscripts"])?;
    let join = |col: &str| {
        let parts: Vec<&str> = [defaults.get(col), own.get(col)]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .filter(|s| !s.is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(","))
    };
    manifest.postscripts = join("postscripts");
    manifest.postbootscripts = join("postbootscripts");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Collect;
    use crate::testkit::Mn;

    const DIR: &str = "/install/netboot/rhels8/x86_64/compute";

    /// An MN with image `img` of `provmethod`, rootimgdir [`DIR`], a readable pkglist
    /// and the extra linuximage columns given.
    fn mn_with(provmethod: &str, linuximage: &[(&str, &str)]) -> Mn {
        let mn = Mn::new();
        mn.write("/install/custom/netboot/rh/compute.pkglist", "bash\n");
        let mut li = vec![
            ("rootimgdir", DIR),
            ("pkglist", "/install/custom/netboot/rh/compute.pkglist"),
        ];
        li.extend_from_slice(linuximage);
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
            ("linuximage", &[("imagename", "img")], &li),
        ]);
        mn
    }

    fn discover_img(mn: &Mn, opts: &DiscoverOptions) -> (Result<ImageSet>, Collect) {
        let mut report = Collect::default();
        let set = discover(&mn.root, &mn.catalog, "img", opts, &mut report);
        (set, report)
    }

    fn names(set: &ImageSet) -> Vec<&str> {
        set.files.iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn an_unknown_image_is_not_found() {
        let mn = Mn::new();
        let err = discover_img(&mn, &DiscoverOptions::default())
            .0
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Cannot find image 'img' from the osimage table."
        );
        assert_eq!(err.failure(), crate::error::Failure::NotFound);
    }

    #[test]
    fn missing_osimage_fields_are_each_named() {
        let mn = Mn::new();
        mn.rows(&[(
            "osimage",
            &[("imagename", "img")],
            &[("provmethod", "netboot"), ("osvers", "rhels8")],
        )]);
        let err = discover_img(&mn, &DiscoverOptions::default())
            .0
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "The 'profile' field is not set for 'img' in the osimage table.\n\
             The 'osarch' field is not set for 'img' in the osimage table."
        );
    }

    #[test]
    fn netboot_takes_the_preferred_rootimg_and_skips_unreadable_configs() {
        let mn = mn_with("netboot", &[("exlist", "/nosuch/compute.exlist")]);
        for f in [
            "kernel",
            "initrd-stateless.gz",
            "rootimg.gz",
            "rootimg.cpio.gz",
        ] {
            mn.write(&format!("{DIR}/{f}"), f);
        }
        let (set, report) = discover_img(&mn, &DiscoverOptions::default());
        let set = set.unwrap();
        assert_eq!(
            names(&set),
            [
                "kernel",
                "initrd-stateless.gz",
                "rootimg.cpio.gz",
                "compute.pkglist"
            ]
        );
        assert_eq!(
            set.manifest.rootimg.as_deref(),
            Some(format!("{DIR}/rootimg.cpio.gz").as_str())
        );
        assert_eq!(set.tree, None);
        // The unreadable file is reported and left out, but stays in the manifest.
        assert_eq!(
            report.errors,
            ["Couldn't find file /nosuch/compute.exlist for img. Skip."]
        );
        assert_eq!(
            set.manifest.linuximage.get("exlist").map(String::as_str),
            Some("/nosuch/compute.exlist")
        );
    }

    #[test]
    fn a_missing_kernel_is_xcats_error() {
        let mn = mn_with("netboot", &[]);
        mn.write(&format!("{DIR}/initrd-stateless.gz"), "r");
        let err = discover_img(&mn, &DiscoverOptions::default())
            .0
            .unwrap_err();
        assert_eq!(err.to_string(), "Couldn't find kernel (kernel) for  img");
        assert_eq!(err.failure(), crate::error::Failure::Failed);
    }

    #[test]
    fn statelite_gives_the_tree_and_the_litefile_rows() {
        let mn = mn_with("statelite", &[]);
        for f in ["kernel", "initrd-statelite.gz"] {
            mn.write(&format!("{DIR}/{f}"), f);
        }
        mn.rows(&[
            (
                "litefile",
                &[("image", "ALL"), ("file", "/etc/a")],
                &[("comments", "no options")],
            ),
            (
                "litefile",
                &[("image", "img"), ("file", "/var/b")],
                &[("options", "persistent")],
            ),
            (
                "litefile",
                &[("image", "img"), ("file", "/var/off")],
                &[("disable", "1")],
            ),
        ]);
        let (set, report) = discover_img(&mn, &DiscoverOptions::default());
        let set = set.unwrap();
        assert_eq!(set.tree.as_deref(), Some(format!("{DIR}/rootimg").as_str()));
        assert_eq!(
            set.manifest.rootimgtree.as_deref(),
            Some(format!("{DIR}/rootimgtree.gz").as_str())
        );
        assert_eq!(
            set.manifest.litefile.as_deref(),
            Some(format!("{DIR}/litefile.csv").as_str())
        );
        // Options default to tmpfs; disabled rows are left out.
        assert_eq!(
            String::from_utf8(set.litefile_csv.clone().unwrap()).unwrap(),
            "\"img\",\"/etc/a\",\"tmpfs\",,\n\"img\",\"/var/b\",\"persistent\",,\n"
        );
        assert!(report
            .info
            .contains(&"Getting litefile settings".to_string()));
        assert_eq!(
            names(&set),
            ["kernel", "initrd-statelite.gz", "compute.pkglist"]
        );
    }

    #[test]
    fn install_finds_its_template_in_custom_before_shipped() {
        let mn = mn_with("install", &[]);
        let err = discover_img(&mn, &DiscoverOptions::default())
            .0
            .unwrap_err();
        assert_eq!(err.to_string(), "Couldn't find install template for img");
        mn.write("/opt/xcat/share/xcat/install/rh/compute.tmpl", "shipped");
        mn.write("/install/custom/install/rh/compute.rhels8.tmpl", "custom");
        let (set, report) = discover_img(&mn, &DiscoverOptions::default());
        let set = set.unwrap();
        let found = "/install/custom/install/rh/compute.rhels8.tmpl";
        assert_eq!(
            set.manifest.linuximage.get("template").map(String::as_str),
            Some(found)
        );
        assert_eq!(set.manifest.media.as_deref(), Some("required"));
        assert!(report.info.contains(&found.to_string()));
        assert!(names(&set).contains(&"compute.rhels8.tmpl"));
    }

    #[test]
    fn two_files_with_one_name_keep_the_first() {
        let mn = mn_with("netboot", &[("otherpkglist", "/srv/other/compute.pkglist")]);
        for f in ["kernel", "initrd-stateless.gz", "rootimg.gz"] {
            mn.write(&format!("{DIR}/{f}"), f);
        }
        mn.write("/srv/other/compute.pkglist", "other");
        let (set, report) = discover_img(&mn, &DiscoverOptions::default());
        let set = set.unwrap();
        assert_eq!(
            set.files
                .iter()
                .filter(|f| f.name == "compute.pkglist")
                .count(),
            1
        );
        assert_eq!(
            report.warnings,
            ["/install/custom/netboot/rh/compute.pkglist and /srv/other/compute.pkglist are both named compute.pkglist in the bundle; only /install/custom/netboot/rh/compute.pkglist is exported"]
        );
    }

    #[test]
    fn extras_take_a_destination_or_their_own_directory() {
        let mn = mn_with("netboot", &[]);
        for f in ["kernel", "initrd-stateless.gz", "rootimg.gz"] {
            mn.write(&format!("{DIR}/{f}"), f);
        }
        mn.write("/srv/file.conf", "x");
        mn.write("/srv/tools/a", "a");
        let opts = DiscoverOptions {
            extras: vec![
                "/srv/file.conf".into(),
                "/srv/tools:/opt/tools".into(),
                "/srv/nosuch".into(),
            ],
            postscripts_node: None,
        };
        let (set, report) = discover_img(&mn, &opts);
        let set = set.unwrap();
        assert_eq!(
            set.extras,
            [
                ExtraSource {
                    src: "/srv/file.conf".into(),
                    dest: "/srv".into(),
                    is_dir: false
                },
                ExtraSource {
                    src: "/srv/tools".into(),
                    dest: "/opt/tools".into(),
                    is_dir: true
                },
            ]
        );
        assert_eq!(set.manifest.extra.len(), 2);
        assert_eq!(
            report.errors,
            ["Can not find Extra file /srv/nosuch.  Argument will be ignored"]
        );
    }
}

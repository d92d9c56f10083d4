//! `imgimport -f NEWPROFILE`: xCAT's `change_profile` (XCAT.md §6.3, C18). Rewrites a manifest
//! so the image lands under a new profile, and says which bundle file goes where.
//!
//! One deliberate difference: xCAT uses the old profile as an unescaped regex when it
//! renames files (XCAT.md §11.10); here it is matched literally.

use std::collections::BTreeMap;

use crate::image::{CONFIG_COLUMNS, XCATROOT};
use crate::manifest::Manifest;
use crate::root::{basename, dirname};

/// The result of a profile change: the new manifest and, for every renamed config
/// file, new destination path → its name in the bundle.
#[derive(Debug, Clone)]
pub struct Rewritten {
    pub manifest: Manifest,
    pub renamed: BTreeMap<String, String>,
}

/// xCAT's platform directory for an osvers (`rh*`→`rh`, `sles`, `ubuntu`, ...).
pub fn platform(osvers: &str) -> &'static str {
    if osvers.starts_with("rh") {
        "rh"
    } else if osvers.contains("centos") {
        "centos"
    } else if osvers.contains("alma") {
        "alma"
    } else if osvers.contains("rocky") {
        "rocky"
    } else if osvers.contains("fedora") {
        "fedora"
    } else if osvers.contains("sles") {
        "sles"
    } else if osvers.starts_with("SL") {
        "SL"
    } else if osvers.contains("win") {
        "windows"
    } else if osvers.contains("ubuntu") {
        "ubuntu"
    } else {
        ""
    }
}

/// Applies `-f new` to a manifest whose required fields are present.
/// `installdir` is the target MN's `site.installdir`.
pub fn change_profile(manifest: &Manifest, new: &str, installdir: &str) -> Rewritten {
    let mut m = manifest.clone();
    let mut renamed = BTreeMap::new();
    let field = |name: &str| manifest.field(name).unwrap_or("").to_string();
    let (old, provmethod, osvers, osarch) = (
        field("profile"),
        field("provmethod"),
        field("osvers"),
        field("osarch"),
    );
    if old == new {
        return Rewritten {
            manifest: m,
            renamed,
        };
    }
    m.osimage.insert("profile".into(), new.to_string());
    if m.linuximage
        .get("rootimgdir")
        .is_some_and(|d| !d.is_empty())
    {
        let s390_raw = osarch.contains("s390x")
            && (provmethod.contains("raw") || provmethod.contains("sysclone"));
        let kind = if s390_raw {
            provmethod.as_str()
        } else {
            "netboot"
        };
        let dir = format!("{installdir}/{kind}/{osvers}/{osarch}/{new}");
        m.linuximage.insert("rootimgdir".into(), dir.clone());
        for slot in [
            &mut m.kernel,
            &mut m.ramdisk,
            &mut m.rootimg,
            &mut m.rootimgtree,
            &mut m.litefile,
        ] {
            if let Some(v) = slot.as_mut() {
                *v = v
                    .split(',')
                    .map(|p| format!("{dir}/{}", basename(p)))
                    .collect::<Vec<_>>()
                    .join(",");
            }
        }
    }
    let prov = if provmethod.contains("install") {
        "install"
    } else {
        "netboot"
    };
    let custom_dir = format!("{installdir}/custom/{prov}/{}", platform(&osvers));
    let shipped = format!("{XCATROOT}/share/xcat");
    let mut rewrite_list = |value: &str| -> String {
        value
            .split(',')
            .map(|path| {
                let path = path.trim();
                if path.is_empty() {
                    return String::new();
                }
                let dir = dirname(path);
                let new_dir = if dir.contains(&shipped) {
                    custom_dir.as_str()
                } else {
                    dir
                };
                let base = basename(path);
                let new_base = match base.find(old.as_str()) {
                    Some(i) if !old.is_empty() => {
                        format!("{}{new}{}", &base[..i], &base[i + old.len()..])
                    }
                    _ => format!("{new}.{base}"),
                };
                let new_path = format!("{new_dir}/{new_base}");
                renamed.insert(new_path.clone(), base.to_string());
                new_path
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    for col in CONFIG_COLUMNS {
        if let Some(v) = m.linuximage.get(*col).cloned() {
            m.linuximage.insert((*col).to_string(), rewrite_list(&v));
        }
    }
    if let Some(v) = m.osimage.get("synclists").cloned() {
        m.osimage.insert("synclists".into(), rewrite_list(&v));
    }
    let imagename = format!("{osvers}-{osarch}-{provmethod}-{new}");
    m.osimage.insert("imagename".into(), imagename.clone());
    m.linuximage.insert("imagename".into(), imagename);
    Rewritten {
        manifest: m,
        renamed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statelite() -> Manifest {
        let mut m = Manifest::default();
        for (k, v) in [
            ("imagename", "rhels8.5.0-x86_64-statelite-compute"),
            ("profile", "compute"),
            ("provmethod", "statelite"),
            ("osvers", "rhels8.5.0"),
            ("osarch", "x86_64"),
        ] {
            m.osimage.insert(k.into(), v.into());
        }
        let dir = "/install/netboot/rhels8.5.0/x86_64/compute";
        m.linuximage.insert("rootimgdir".into(), dir.into());
        m.linuximage.insert(
            "pkglist".into(),
            "/opt/xcat/share/xcat/netboot/rh/compute.rhels8.x86_64.pkglist".into(),
        );
        m.linuximage
            .insert("exlist".into(), "/install/custom/x/my.exlist".into());
        m.kernel = Some(format!("{dir}/kernel"));
        m.rootimgtree = Some(format!("{dir}/rootimgtree.gz"));
        m
    }

    #[test]
    fn c18_profile_rewrite_matches_xcat() {
        let r = change_profile(&statelite(), "compute_test", "/install");
        let m = &r.manifest;
        assert_eq!(
            m.osimage["imagename"],
            "rhels8.5.0-x86_64-statelite-compute_test"
        );
        assert_eq!(m.linuximage["imagename"], m.osimage["imagename"]);
        assert_eq!(
            m.linuximage["rootimgdir"],
            "/install/netboot/rhels8.5.0/x86_64/compute_test"
        );
        assert_eq!(
            m.kernel.as_deref(),
            Some("/install/netboot/rhels8.5.0/x86_64/compute_test/kernel")
        );
        assert_eq!(
            m.linuximage["pkglist"],
            "/install/custom/netboot/rh/compute_test.rhels8.x86_64.pkglist"
        );
        assert_eq!(
            m.linuximage["exlist"],
            "/install/custom/x/compute_test.my.exlist"
        );
        assert_eq!(
            r.renamed["/install/custom/netboot/rh/compute_test.rhels8.x86_64.pkglist"],
            "compute.rhels8.x86_64.pkglist"
        );
    }

    #[test]
    fn same_profile_changes_nothing() {
        let m = statelite();
        let r = change_profile(&m, "compute", "/install");
        assert_eq!(r.manifest, m);
        assert!(r.renamed.is_empty());
    }

    #[test]
    fn profile_is_matched_literally() {
        let mut m = statelite();
        m.osimage.insert("profile".into(), "c.mpute".into());
        let r = change_profile(&m, "new", "/install");
        // "c.mpute" as a regex would match "compute"; literally it does not.
        assert!(r.manifest.linuximage["pkglist"].ends_with("/new.compute.rhels8.x86_64.pkglist"));
    }
}

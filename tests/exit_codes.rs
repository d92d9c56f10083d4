//! Exit codes by kind of failure (README "In scripts"): whatever part of the import
//! notices it, a bundle that lacks a file its manifest needs exits 4 (incomplete), a
//! bundle that cannot be read exits 4, a missing bundle 3, and an I/O failure on the
//! MN 1. The `imgimport` alias keeps xCAT's 1 for all of them. Runs the real binary on
//! bundles made by the exporter or by `scripts/xcat-bundle.sh`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const INCOMPLETE: i32 = 4;

/// Imports `bundle` into a fresh MN with `imgport` and with the `imgimport` alias;
/// asserts the exit codes and that `needle` is in both error outputs and nothing was
/// defined. Returns the MN used by `imgport`.
fn import_exits(bundle: &Path, code: i32, needle: &str) -> Mn {
    let target = Mn::empty();
    let out = target.run(&["import", bundle.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(code), "{}", text(&out));
    assert!(
        stderr(&out).contains(needle),
        "want {needle:?}: {}",
        text(&out)
    );
    assert!(
        !target.path("/etc/xcat/osimage.sqlite").exists(),
        "no rows written"
    );
    let alias_target = Mn::empty();
    let alias_out = alias_import(&alias_target, bundle);
    assert_eq!(alias_out.status.code(), Some(1), "{}", text(&alias_out));
    assert!(stderr(&alias_out).contains(needle), "{}", text(&alias_out));
    target
}

fn alias_import(target: &Mn, bundle: &Path) -> Output {
    let (_d, imp) = alias("imgimport");
    Command::new(&imp)
        .arg(bundle)
        .env("IMGPORT_ROOT", target.root())
        .output()
        .unwrap()
}

/// The sample image exported with an extra file and an extra directory, then
/// repacked without `drop` (a path below the image directory).
fn sample_without(work: &Path, drop: &str) -> PathBuf {
    let src = Mn::sample();
    fs::create_dir_all(src.path("/srv/extradir")).unwrap();
    fs::write(src.path("/srv/extradir/one"), "one").unwrap();
    let bundle = export_sample(
        &src,
        work,
        &["-e", "/install/postscripts/hello", "-e", "/srv/extradir"],
    );
    let stage = work.join("s");
    fs::create_dir(&stage).unwrap();
    let broken = work.join("broken.tgz");
    sh(&format!(
        "cd {} && tar -xzf {} && rm -r ./{IMG}/{drop} && tar czf {} .",
        stage.display(),
        bundle.display(),
        broken.display()
    ));
    broken
}

#[test]
fn missing_kernel_is_incomplete() {
    let work = tempfile::tempdir().unwrap();
    let bundle = sample_without(work.path(), "kernel");
    import_exits(
        &bundle,
        INCOMPLETE,
        &format!("The bundle has no kernel for {ROOTIMGDIR}/kernel of image {IMG}."),
    );
}

#[test]
fn missing_tree_is_incomplete() {
    let work = tempfile::tempdir().unwrap();
    let bundle = sample_without(work.path(), "rootimgtree.gz");
    let target = import_exits(
        &bundle,
        INCOMPLETE,
        &format!("The bundle has no rootimgtree.gz for image {IMG}."),
    );
    assert!(!target.path(&format!("{ROOTIMGDIR}/kernel")).exists());
}

#[test]
fn missing_extra_file_is_incomplete() {
    let work = tempfile::tempdir().unwrap();
    let bundle = sample_without(work.path(), "extra/hello");
    import_exits(
        &bundle,
        INCOMPLETE,
        "Failed to copy extra/hello to /install/postscripts",
    );
}

#[test]
fn empty_extra_directory_is_incomplete() {
    let work = tempfile::tempdir().unwrap();
    let bundle = sample_without(work.path(), "extra/srv/extradir/one");
    import_exits(
        &bundle,
        INCOMPLETE,
        "Failed to cp -a extra/srv/extradir/* to /srv",
    );
}

/// A bundle as xCAT writes it, from a manifest and (name, content) payload files.
fn xcat_bundle(work: &Path, manifest: &str, files: &[(&str, &str)]) -> PathBuf {
    let m = work.join("manifest.xml");
    fs::write(&m, manifest).unwrap();
    let mut args = Vec::new();
    for (name, content) in files {
        let p = work.join(name);
        fs::write(&p, content).unwrap();
        args.push(p.display().to_string());
    }
    let bundle = work.join("b.tgz");
    sh(&format!(
        "bash {} {} img {} {}",
        repo().join("scripts/xcat-bundle.sh").display(),
        bundle.display(),
        m.display(),
        args.join(" ")
    ));
    bundle
}

const NB: &str = "/install/netboot/rhels8.5.0/x86_64/nb";

fn netboot_manifest(rootimg: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<xcatimage>\n  <osimage>\n    <imagename>nb</imagename>\n    <osarch>x86_64</osarch>\n    <osvers>rhels8.5.0</osvers>\n    <profile>nb</profile>\n    <provmethod>netboot</provmethod>\n  </osimage>\n  <linuximage>\n    <imagename>nb</imagename>\n    <rootimgdir>{NB}</rootimgdir>\n  </linuximage>\n  <kernel>{NB}/kernel</kernel>\n  <ramdisk>{NB}/initrd-stateless.gz</ramdisk>\n  <rootimg>{NB}/{rootimg}</rootimg>\n</xcatimage>\n"
    )
}

#[test]
fn missing_netboot_rootimg_is_incomplete() {
    for rootimg in ["rootimg.cpio.gz", "rootimg.tar.xz", "rootimg.gz"] {
        let work = tempfile::tempdir().unwrap();
        let manifest = netboot_manifest(rootimg);
        let payload = [("kernel", "k"), ("initrd-stateless.gz", "r")];
        let bundle = xcat_bundle(work.path(), &manifest, &payload);
        import_exits(
            &bundle,
            INCOMPLETE,
            &format!("The bundle has no {rootimg} for {NB}/{rootimg} of image nb."),
        );
        // The same bundle with the raw image imports (the test above is not vacuous).
        let work = tempfile::tempdir().unwrap();
        let bundle = xcat_bundle(
            work.path(),
            &manifest,
            &[payload[0], payload[1], (rootimg, "image")],
        );
        let target = Mn::empty();
        let out = target.run(&["import", bundle.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(
            fs::read_to_string(target.path(&format!("{NB}/{rootimg}"))).unwrap(),
            "image"
        );
    }
}

#[test]
fn missing_s390x_raw_image_file_is_incomplete() {
    let work = tempfile::tempdir().unwrap();
    let manifest = fs::read_to_string(repo().join("tests/fixtures/manifest/rawimage.xml")).unwrap();
    // 0101.img is named by the manifest but not carried.
    let bundle = xcat_bundle(work.path(), &manifest, &[("0100.img", "disk 0100")]);
    import_exits(
        &bundle,
        INCOMPLETE,
        "Could not move 0101.img to /install/netboot/rhels8.6/s390x/compute: not in the bundle",
    );
}

#[test]
fn a_bundle_cut_short_is_unreadable() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&src, work.path(), &[]);
    let whole = fs::read(&bundle).unwrap();
    // Cut inside the manifest, inside the kernel, and inside the tree.
    for cut in [300, 2_000, whole.len() / 2] {
        let cut_bundle = work.path().join(format!("cut{cut}.tgz"));
        fs::write(&cut_bundle, &whole[..cut]).unwrap();
        let target = Mn::empty();
        let out = target.run(&["import", cut_bundle.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(4), "cut at {cut}: {}", text(&out));
        assert!(!target.path(&format!("{ROOTIMGDIR}/kernel")).exists());
        let out = alias_import(&Mn::empty(), &cut_bundle);
        assert_eq!(out.status.code(), Some(1), "cut at {cut}: {}", text(&out));
    }
}

#[test]
fn a_missing_bundle_is_not_found() {
    let work = tempfile::tempdir().unwrap();
    let missing = work.path().join("nosuch.tgz");
    let needle = format!("Cannot find {}", missing.display());
    let target = Mn::empty();
    let out = target.run(&["import", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(stderr(&out).contains(&needle), "{}", text(&out));
    let out = alias_import(&Mn::empty(), &missing);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
}

#[test]
fn an_io_failure_on_the_mn_is_a_plain_failure() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&src, work.path(), &[]);
    // The image's directory cannot be made: a plain file stands where a directory of
    // its path must be. The bundle is fine, so this is the MN's failure.
    let target = Mn::empty();
    fs::write(target.path("/install/netboot"), "not a directory").unwrap();
    let out = target.run(&["import", bundle.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!target.path("/etc/xcat/osimage.sqlite").exists());
    assert_eq!(
        fs::read_to_string(target.path("/install/netboot")).unwrap(),
        "not a directory"
    );
}

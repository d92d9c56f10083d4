//! Hostile bundles and failures: nothing is written outside the root, a failed import
//! leaves the MN as it was, a failed export leaves no bundle.

mod common;

use std::fs;
use std::path::Path;

use common::*;

/// Writes a tar.gz whose members are given as python tarfile code (the `t` object).
fn crafted(path: &Path, body: &str) {
    let code = format!(
        "import tarfile,io,sys\nt=tarfile.open(sys.argv[1],'w:gz',format=tarfile.PAX_FORMAT)\n\
def f(name,data=b'',**kw):\n i=tarfile.TarInfo(name); i.size=len(data)\n for k,v in kw.items(): setattr(i,k,v)\n t.addfile(i,io.BytesIO(data))\n\
def d(name): i=tarfile.TarInfo(name); i.type=tarfile.DIRTYPE; i.mode=0o755; t.addfile(i)\n\
def l(name,target): i=tarfile.TarInfo(name); i.type=tarfile.SYMTYPE; i.linkname=target; t.addfile(i)\n\
def h(name,target): i=tarfile.TarInfo(name); i.type=tarfile.LNKTYPE; i.linkname=target; t.addfile(i)\n\
{body}\nt.close()\n"
    );
    python(&code, &[path.to_str().unwrap()]);
}

/// Tar.gz bytes of a rootimg tree made by `body` (python tarfile, see `crafted`).
fn crafted_tree(work: &Path, body: &str) -> Vec<u8> {
    let p = work.join("tree.tgz");
    crafted(&p, body);
    fs::read(p).unwrap()
}

fn statelite_manifest() -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<xcatimage>\n  <kernel>{ROOTIMGDIR}/kernel</kernel>\n  <linuximage>\n    <imagename>{IMG}</imagename>\n    <rootimgdir>{ROOTIMGDIR}</rootimgdir>\n  </linuximage>\n  <osimage>\n    <imagename>{IMG}</imagename>\n    <osarch>x86_64</osarch>\n    <osvers>rhels8.5.0</osvers>\n    <profile>compute</profile>\n    <provmethod>statelite</provmethod>\n  </osimage>\n  <ramdisk>{ROOTIMGDIR}/initrd-statelite.gz</ramdisk>\n  <rootimgtree>{ROOTIMGDIR}/rootimgtree.gz</rootimgtree>\n</xcatimage>\n"
    )
}

/// A statelite bundle whose tree is `tree` (gzip'd archive bytes).
fn bundle_with_tree(work: &Path, tree: &[u8]) -> std::path::PathBuf {
    let tree_file = work.join("rootimgtree.gz");
    fs::write(&tree_file, tree).unwrap();
    let b = work.join("evil.tgz");
    crafted(
        &b,
        &format!(
            "f('./img/manifest.xml', {:?}.encode())\nf('./img/kernel', b'k')\nf('./img/initrd-statelite.gz', b'r')\nf('./img/rootimgtree.gz', open({:?},'rb').read())",
            statelite_manifest(),
            tree_file.to_str().unwrap()
        ),
    );
    b
}

/// Asserts the import failed with `needle` in stderr and the MN got nothing.
fn refused(target: &Mn, bundle: &Path, needle: &str) {
    let out = target.run(&["import", bundle.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "refused: {}", text(&out));
    assert!(
        stderr(&out).contains(needle),
        "want {needle:?}: {}",
        text(&out)
    );
    assert!(
        !target.path("/etc/xcat/osimage.sqlite").exists(),
        "no rows: {}",
        text(&out)
    );
    assert!(
        !target.path(&format!("{ROOTIMGDIR}/kernel")).exists(),
        "no files"
    );
    assert!(
        !target.path(&format!("{ROOTIMGDIR}/rootimg")).exists(),
        "no tree"
    );
}

#[test]
fn manifest_paths_with_dotdot_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let canary = tempfile::tempdir().unwrap();
    let evil = format!(
        "/install/../../../../../..{}/pwned",
        canary.path().display()
    );
    let b = work.path().join("b.tgz");
    let m = statelite_manifest().replace(&format!("{ROOTIMGDIR}/kernel"), &evil);
    crafted(&b, &format!("f('./img/manifest.xml', {m:?}.encode())\nf('./img/pwned', b'x')\nf('./img/initrd-statelite.gz', b'r')"));
    let target = Mn::empty();
    refused(&target, &b, "refusing path");
    assert!(!canary.path().join("pwned").exists());
}

#[test]
fn absolute_and_dotdot_member_names_are_refused() {
    for name in ["/etc/evil", "./img/../../evil"] {
        let work = tempfile::tempdir().unwrap();
        let b = work.path().join("b.tgz");
        crafted(&b, &format!("f({name:?}, b'x')"));
        let target = Mn::empty();
        let out = target.run(&["import", b.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(4), "{name}: {}", text(&out));
        assert!(stderr(&out).contains("refusing"), "{name}: {}", text(&out));
    }
}

#[test]
fn tree_symlink_then_file_through_it_is_refused() {
    let work = tempfile::tempdir().unwrap();
    let canary = tempfile::tempdir().unwrap();
    let tree = crafted_tree(
        work.path(),
        &format!(
            "d('rootimg')\nl('rootimg/x', {:?})\nf('rootimg/x/f', b'pwned')",
            canary.path().to_str().unwrap()
        ),
    );
    let b = bundle_with_tree(work.path(), &tree);
    let target = Mn::empty();
    refused(&target, &b, "rootimg/x");
    assert!(!canary.path().join("f").exists());
}

#[test]
fn tree_hard_link_to_outside_is_refused() {
    for target_name in ["/etc/shadow", "../../etc/shadow"] {
        let work = tempfile::tempdir().unwrap();
        let tree = crafted_tree(
            work.path(),
            &format!("d('rootimg')\nh('rootimg/h', {target_name:?})"),
        );
        let b = bundle_with_tree(work.path(), &tree);
        let target = Mn::empty();
        refused(&target, &b, "rootimg/h");
    }
}

#[test]
fn tree_dotdot_and_foreign_names_are_refused() {
    for body in [
        "d('rootimg')\nf('rootimg/../evil', b'x')",
        "d('rootimg')\nf('etc/passwd', b'x')",
    ] {
        let work = tempfile::tempdir().unwrap();
        let tree = crafted_tree(work.path(), body);
        let b = bundle_with_tree(work.path(), &tree);
        let target = Mn::empty();
        refused(&target, &b, "refusing");
    }
}

#[test]
fn a_member_claiming_a_terabyte_is_an_error_not_an_allocation() {
    let work = tempfile::tempdir().unwrap();
    // A pax header claiming 1 TiB, followed by a few bytes and the end of the stream.
    let tree = crafted_tree(work.path(), "d('rootimg')\ni=tarfile.TarInfo('rootimg/big'); i.size=1<<40\nt.fileobj.write(i.tobuf(tarfile.PAX_FORMAT)); t.fileobj.write(b'x'*512)\nt.offset += 0");
    let b = bundle_with_tree(work.path(), &tree);
    let target = Mn::empty();
    refused(&target, &b, "rootimg/big");
}

#[test]
fn a_failing_import_restores_what_it_replaced() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&src, work.path(), &["-e", "/install/postscripts/hello"]);
    // Drop the extra from the bundle: placement fails after kernel and tree moved.
    let stage = work.path().join("s");
    fs::create_dir(&stage).unwrap();
    sh(&format!(
        "cd {} && tar -xzf {} && rm ./{IMG}/extra/hello && tar czf ../broken.tgz .",
        stage.display(),
        bundle.display()
    ));
    let target = Mn::empty();
    let kernel = target.path(&format!("{ROOTIMGDIR}/kernel"));
    fs::create_dir_all(kernel.parent().unwrap()).unwrap();
    fs::write(&kernel, "precious").unwrap();
    fs::create_dir_all(target.path(&format!("{ROOTIMGDIR}/rootimg/keep"))).unwrap();
    let out = target.run(&["import", work.path().join("broken.tgz").to_str().unwrap()]);
    // An incomplete bundle (tests/exit_codes.rs has every kind).
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert_eq!(fs::read_to_string(&kernel).unwrap(), "precious");
    assert!(!target.path(&format!("{ROOTIMGDIR}/kernel.ORIG")).exists());
    assert!(target.path(&format!("{ROOTIMGDIR}/rootimg/keep")).is_dir());
    assert!(!target.path(&format!("{ROOTIMGDIR}/rootimg.ORIG")).exists());
    assert!(!target.path("/etc/xcat/osimage.sqlite").exists());
    let names: Vec<String> = fs::read_dir(target.path(ROOTIMGDIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "only kernel and rootimg remain: {names:?}");
}

#[test]
fn a_failed_export_leaves_no_bundle() {
    let src = Mn::sample();
    fs::create_dir_all(src.path("/srv/withfifo")).unwrap();
    sh(&format!(
        "mkfifo {}",
        src.path("/srv/withfifo/pipe").display()
    ));
    let work = tempfile::tempdir().unwrap();
    let out = src.run_in(
        work.path(),
        &["export", IMG, "out.tgz", "-e", "/srv/withfifo"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("/srv/withfifo/pipe"),
        "{}",
        text(&out)
    );
    assert!(!stdout(&out).contains("Done!"));
    let left: Vec<_> = fs::read_dir(work.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

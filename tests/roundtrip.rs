//! Export → import round trips of the sample statelite image, proved with tools nobody
//! here wrote: rsync (-aHAX itemizes any difference in data, owners, modes, times,
//! hard links, ACLs and xattrs), getcap, stat.

mod common;

use std::fs;
use std::process::Command;

use common::*;

fn rootimg(mn: &Mn) -> std::path::PathBuf {
    mn.path(&format!("{ROOTIMGDIR}/rootimg"))
}

fn assert_same_tree(a: &Mn, b: &Mn) {
    let diff = sh(&format!(
        "rsync -aHAXn --numeric-ids --itemize-changes {}/ {}/",
        rootimg(a).display(),
        rootimg(b).display()
    ));
    assert_eq!(diff, "", "trees differ");
    let caps = |m: &Mn| {
        sh(&format!(
            "cd {} && getcap -r . | sort",
            rootimg(m).display()
        ))
    };
    assert!(caps(a).contains("cap_net_raw"), "sample has a capability");
    assert_eq!(caps(a), caps(b));
    let stat = |m: &Mn, p: &str| {
        sh(&format!(
            "stat -c '%b %s %t %T %F %a %u %g' {}/{p}",
            rootimg(m).display()
        ))
    };
    for p in [
        "data/sparse.img",
        "dev/null",
        "dev/sda",
        "dev/initctl",
        "bin/su",
        "tmp",
    ] {
        assert_eq!(stat(a, p), stat(b, p), "{p}");
    }
    let blocks: u64 = stat(b, "data/sparse.img")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        blocks < 1024,
        "holes kept: {blocks} blocks for a 64 MiB file"
    );
}

#[test]
fn statelite_round_trip_is_lossless() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&src, work.path(), &[]);
    let target = Mn::empty();
    let out = target.run(&["import", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_same_tree(&src, &target);
}

#[test]
fn two_exports_of_the_same_tree_have_the_same_tree_bytes() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let a = src.run_in(work.path(), &["export", IMG, "a.tgz"]);
    let b = src.run_in(work.path(), &["export", IMG, "b.tgz"]);
    assert!(a.status.success() && b.status.success());
    let tree = |n: &str| {
        Command::new("tar")
            .args(["-xzOf", n, &format!("./{IMG}/rootimgtree.gz")])
            .current_dir(work.path())
            .output()
            .unwrap()
            .stdout
    };
    assert_eq!(tree("a.tgz"), tree("b.tgz"));
}

#[test]
fn stream_through_a_pipe() {
    let src = Mn::sample();
    let target = Mn::empty();
    let (export, import) = pipe_export_import(&src, &target, &[]);
    assert!(export.status.success(), "{}", text(&export));
    assert!(
        stderr(&export).contains("Done!"),
        "progress goes to stderr when stdout is the bundle"
    );
    assert!(import.status.success(), "{}", text(&import));
    assert_same_tree(&src, &target);
}

#[test]
fn reimport_keeps_the_old_tree_as_orig() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&src, work.path(), &[]);
    let target = Mn::empty();
    for _ in 0..2 {
        let out = target.run(&["import", bundle.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let d = target.path(ROOTIMGDIR);
    assert!(d.join("rootimg.ORIG/bin/ping").is_file());
    assert!(d.join("kernel.ORIG").is_file());
    let leftovers: Vec<_> = fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("imgport"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_same_tree(&src, &target);
}

#[test]
fn a_bundle_with_two_images_imports_both_and_a_bad_one_does_not_stop_the_other() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&src, work.path(), &[]);
    let stage = work.path().join("stage");
    fs::create_dir(&stage).unwrap();
    sh(&format!(
        "cd {} && tar -xzf {}",
        stage.display(),
        bundle.display()
    ));
    // A second image: same payload, other name and profile directory.
    let second = stage.join("zz-second");
    sh(&format!(
        "cp -a {}/{IMG} {}",
        stage.display(),
        second.display()
    ));
    let m = fs::read_to_string(second.join("manifest.xml")).unwrap();
    fs::write(
        second.join("manifest.xml"),
        m.replace(IMG, "second").replace("/compute", "/second"),
    )
    .unwrap();
    let both = work.path().join("both.tgz");
    sh(&format!(
        "cd {} && tar czf {} .",
        stage.display(),
        both.display()
    ));
    let target = Mn::empty();
    let out = target.run(&["import", both.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("Successfully imported the image second."));
    assert!(stdout(&out).contains(&format!("Successfully imported the image {IMG}.")));
    // Break the first image: the second still lands, the exit code says 1.
    let m = fs::read_to_string(stage.join(IMG).join("manifest.xml")).unwrap();
    fs::write(
        stage.join(IMG).join("manifest.xml"),
        m.replace("<provmethod>statelite", "<provmethod>bogus"),
    )
    .unwrap();
    let mixed = work.path().join("mixed.tgz");
    sh(&format!(
        "cd {} && tar czf {} .",
        stage.display(),
        mixed.display()
    ));
    let target = Mn::empty();
    let out = target.run(&["import", mixed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(6), "partial: {}", text(&out));
    assert!(stdout(&out).contains("Successfully imported the image second."));
    assert!(
        !target.path(&format!("{ROOTIMGDIR}/rootimg")).exists(),
        "failed image left nothing"
    );
    assert_eq!(
        target.sql("osimage", "select imagename from osimage"),
        "second\n"
    );
}

#[test]
fn dry_run_reports_files_and_rows_and_touches_nothing() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&src, work.path(), &[]);
    // Against the source MN itself: everything is a replace, rows are unchanged.
    let before = sh(&format!(
        "cd {} && find . -printf '%p %s %T@\\n' | sort",
        src.root().display()
    ));
    let out = src.run(&["import", bundle.to_str().unwrap(), "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    let plan = stdout(&out);
    assert!(
        plan.contains(&format!(
            "  replace {ROOTIMGDIR}/kernel (the old one kept as {ROOTIMGDIR}/kernel.ORIG)"
        )),
        "{plan}"
    );
    assert!(
        plan.contains(&format!("  replace {ROOTIMGDIR}/rootimg")),
        "{plan}"
    );
    assert!(
        plan.contains(&format!("  same    osimage imagename={IMG}")),
        "{plan}"
    );
    assert!(!plan.contains("Successfully imported"), "{plan}");
    let after = sh(&format!(
        "cd {} && find . -printf '%p %s %T@\\n' | sort",
        src.root().display()
    ));
    assert_eq!(before, after, "a dry run changes nothing");
    // Against an empty MN: creates and inserts, and still nothing on disk.
    let target = Mn::empty();
    let out = target.run(&["import", bundle.to_str().unwrap(), "--dry-run", "-f", "new"]);
    assert!(out.status.success(), "{}", text(&out));
    let plan = stdout(&out);
    assert!(
        plan.contains("  create  /install/netboot/rhels8.5.0/x86_64/new/rootimg"),
        "{plan}"
    );
    assert!(
        plan.contains("  insert  osimage imagename=rhels8.5.0-x86_64-statelite-new: "),
        "{plan}"
    );
    assert!(plan.contains("profile=\"new\""), "{plan}");
    assert_eq!(
        sh(&format!("cd {} && find . | sort", target.root().display())),
        ".\n./install\n"
    );
}

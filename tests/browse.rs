//! `ls`, `cat` and `verify` on bundles, checked against GNU tar's view of the same
//! tree and against the source files.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::*;

fn imgport(args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run imgport")
}

fn sample_bundle() -> (Mn, tempfile::TempDir, std::path::PathBuf) {
    let mn = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&mn, work.path(), &[]);
    (mn, work, bundle)
}

fn gnu_tar_listing(bundle: &Path) -> Vec<String> {
    let mut names: Vec<String> = sh(&format!(
        "tar -xzOf {} ./{IMG}/rootimgtree.gz | tar -tzf -",
        bundle.display()
    ))
    .lines()
    .map(|l| l.trim_end_matches('/').to_string())
    .collect();
    names.sort();
    names
}

#[test]
fn ls_lists_what_gnu_tar_lists() {
    let (_mn, _work, bundle) = sample_bundle();
    let out = imgport(&["ls", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let listing = stdout(&out);
    let mut names: Vec<String> = listing
        .lines()
        .map(|l| {
            let path = &l[l.find(" rootimg").unwrap() + 1..];
            let path = path.split(" -> ").next().unwrap();
            path.split(" link to ")
                .next()
                .unwrap()
                .trim_end_matches('/')
                .to_string()
        })
        .collect();
    names.sort();
    assert_eq!(names, gnu_tar_listing(&bundle));
    assert!(
        listing.contains("-rwsr-xr-x 0/0"),
        "setuid shown: {listing}"
    );
    assert!(
        listing.contains("rootimg/usr/lib/ping.symlink -> ../bin/ping"),
        "{listing}"
    );
    assert!(
        listing.contains("c") && listing.contains("1,3"),
        "{listing}"
    );
    let only_etc = stdout(&imgport(&["ls", bundle.to_str().unwrap(), "etc"]));
    assert!(
        only_etc.lines().all(|l| l.contains("rootimg/etc")),
        "{only_etc}"
    );
    assert!(only_etc.lines().count() >= 4, "{only_etc}");
}

#[test]
fn cat_gives_the_files_bytes() {
    let (mn, _work, bundle) = sample_bundle();
    let src = mn.path(&format!("{ROOTIMGDIR}/rootimg"));
    for path in [
        "bin/ping",
        "rootimg/etc/passwd",
        "usr/lib/ping.hardlink",
        "data/sparse.img",
    ] {
        let out = imgport(&["cat", bundle.to_str().unwrap(), path]);
        assert!(out.status.success(), "{path}: {}", text(&out));
        let want = fs::read(src.join(path.trim_start_matches("rootimg/"))).unwrap();
        assert!(
            out.stdout == want,
            "{path}: {} bytes vs {}",
            out.stdout.len(),
            want.len()
        );
    }
    // Not in the tree: does not exist (3), like a missing bundle.
    let out = imgport(&["cat", bundle.to_str().unwrap(), "etc/nope"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("etc/nope"), "{}", text(&out));
    let out = imgport(&["cat", bundle.to_str().unwrap(), "etc"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        text(&out)
    );
}

#[test]
fn verify_checks_the_bundle_and_a_restored_tree() {
    let (_mn, _work, bundle) = sample_bundle();
    let out = imgport(&["verify", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).starts_with("OK:"), "{}", text(&out));

    let target = Mn::empty();
    let out = target.run(&["import", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let restored = target.path(&format!("{ROOTIMGDIR}/rootimg"));
    let out = imgport(&[
        "verify",
        bundle.to_str().unwrap(),
        "--against",
        restored.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));

    // Break it in four ways; each is named.
    fs::write(restored.join("etc/ntp.conf"), "server evil\n").unwrap();
    sh(&format!(
        "chmod 0600 {}",
        restored.join("etc/passwd").display()
    ));
    sh(&format!(
        "setcap -r {}",
        restored.join("bin/ping").display()
    ));
    fs::write(restored.join("etc/extra"), "x").unwrap();
    let out = imgport(&[
        "verify",
        bundle.to_str().unwrap(),
        "--against",
        restored.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(5), "mismatch: {}", text(&out));
    let report = stdout(&out);
    for needle in [
        "rootimg/etc/ntp.conf: ",
        "rootimg/etc/passwd: mode 644 in the archive, 600 on disk",
        "rootimg/bin/ping: xattrs [security.capability]",
        "rootimg/etc/extra: only in the restored tree",
        "MISMATCH",
    ] {
        assert!(report.contains(needle), "want {needle:?} in:\n{report}");
    }
}

/// `verify` given a tree file where its bundle was meant: a tree whose index reads is
/// verified as a tree (members against the index), one without is refused with a
/// message that says what it is and what to pass.
#[test]
fn verify_of_a_bare_tree_checks_it_or_says_what_to_pass() {
    let out = imgport(&["verify", V1_TREE]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("in a bare tree"), "{}", text(&out));

    let (_mn, work, bundle) = sample_bundle();
    let w = work.path();
    sh(&format!(
        "tar -xzf {} -C {} ./{IMG}/rootimgtree.gz",
        bundle.display(),
        w.display()
    ));
    let tree = w.join(IMG).join("rootimgtree.gz");
    let out = imgport(&["verify", tree.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let report = stdout(&out);
    assert!(report.starts_with("OK:"), "{report}");
    assert!(report.contains("in a bare tree"), "{report}");
    assert!(!report.contains(" 0 members"), "{report}");

    // Damage is found as in a bundle: a flipped byte in the first data member.
    let mut bytes = fs::read(&tree).unwrap();
    bytes[200] ^= 0xff;
    let bad = w.join("bad-rootimgtree.gz");
    fs::write(&bad, bytes).unwrap();
    let out = imgport(&["verify", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(stderr(&out).contains("member 0"), "{}", text(&out));

    // xCAT's own rootimgtree.gz (cpio newc, gzip, no index).
    fs::create_dir_all(w.join("x/rootimg/etc")).unwrap();
    fs::write(w.join("x/rootimg/etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    sh(&format!(
        "cd {}/x && find rootimg | cpio -H newc -o --quiet | gzip > ../plain.gz",
        w.display()
    ));
    let out = imgport(&["verify", w.join("plain.gz").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let err = stderr(&out);
    assert!(err.contains("a root image tree"), "{err}");
    assert!(err.contains("imgport verify IMAGE.tgz"), "{err}");
    assert!(!err.contains("not a bundle\n"), "{err}");
}

#[test]
fn verify_detects_a_corrupt_member() {
    let (_mn, work, bundle) = sample_bundle();
    // Flip one byte inside the tree's first data member (stored, so it sits in the
    // bundle as is).
    let bytes = fs::read(&bundle).unwrap();
    let mut corrupt = bytes.clone();
    // rootimgtree.gz starts with a data member whose IG header is unique in the file.
    let needle = [0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff, 8, 0, b'I', b'G'];
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("tree member");
    corrupt[at + 200] ^= 0xff;
    let bad = work.path().join("bad.tgz");
    fs::write(&bad, corrupt).unwrap();
    let out = imgport(&["verify", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "corrupt: {}", text(&out));
    assert!(stderr(&out).contains("member 0"), "{}", text(&out));
}

#[test]
fn verify_against_names_one_changed_byte_of_a_multi_member_file_once() {
    use std::os::unix::fs::FileExt;
    let mn = Mn::sample();
    // 6 MiB: the writer cuts a file's data every 4 MiB, so it spans two members
    // whatever it compresses to.
    let big: Vec<u8> = (0..(6u32 << 20) / 4)
        .flat_map(|i| i.wrapping_mul(2654435761).to_le_bytes())
        .collect();
    let rel = "usr/lib/big.bin";
    let src = mn.path(&format!("{ROOTIMGDIR}/rootimg/{rel}"));
    fs::create_dir_all(src.parent().unwrap()).unwrap();
    fs::write(&src, &big).unwrap();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&mn, work.path(), &[]);
    let b = bundle.to_str().unwrap();
    let out = imgport(&["verify", b]);
    assert!(out.status.success(), "{}", text(&out));
    let members: u64 = stdout(&out)
        .strip_prefix("OK: ")
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{}", text(&out)));
    assert!(members > 2, "several members: {}", text(&out));

    let target = Mn::empty();
    let out = target.run(&["import", b]);
    assert!(out.status.success(), "{}", text(&out));
    let restored = target.path(&format!("{ROOTIMGDIR}/rootimg"));
    let r = restored.to_str().unwrap();
    let out = imgport(&["verify", b, "--against", r]);
    assert!(out.status.success(), "{}", text(&out));

    // One byte in the second member's part of the file, the mtime kept.
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(restored.join(rel))
        .unwrap();
    let mtime = file.metadata().unwrap().modified().unwrap();
    let at = (5 << 20) + 12_345;
    file.write_all_at(&[big[at as usize] ^ 0x20], at).unwrap();
    file.set_times(fs::FileTimes::new().set_modified(mtime))
        .unwrap();
    drop(file);
    let out = imgport(&["verify", b, "--against", r]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let report = stdout(&out);
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 2, "{report}");
    assert_eq!(lines[0], format!("rootimg/{rel}: content differs"));
    assert!(
        lines[1].starts_with("MISMATCH: ") && lines[1].contains(" 1 differences"),
        "{report}"
    );
}

/// A v1 tree (FORMAT.md §3.5, written by the v1 encoder before index v2; the same
/// bytes as the fuzz seed `index_reader/tree-v1.gz`): readers keep reading it.
const V1_TREE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tree-v1.gz");

/// (`verify` of v1 trees: `verify::tests::v1_trees_still_verify`.)
#[test]
fn v1_trees_still_list_and_cat() {
    let out = imgport(&["ls", V1_TREE]);
    assert!(out.status.success(), "{}", text(&out));
    let listed = stdout(&out).lines().count();
    let tar_listed = sh(&format!("tar -tzf {V1_TREE} | wc -l"));
    assert_eq!(listed, tar_listed.trim().parse::<usize>().unwrap());
    assert!(listed > 15, "{listed} entries");

    let out = imgport(&["ls", V1_TREE, "etc"]);
    assert!(out.status.success(), "{}", text(&out));
    let etc = stdout(&out);
    assert!(etc.lines().all(|l| l.contains(" rootimg/etc")), "{etc}");
    assert_eq!(etc.lines().count(), 6, "{etc}");

    for path in ["etc/passwd", "etc/motd.hard", "var/lib/sparse"] {
        let out = imgport(&["cat", V1_TREE, path]);
        assert!(out.status.success(), "{path}: {}", text(&out));
        let target = if path == "etc/motd.hard" {
            "etc/motd"
        } else {
            path
        };
        let want = Command::new("tar")
            .args(["-xzOf", V1_TREE, &format!("rootimg/{target}")])
            .output()
            .unwrap()
            .stdout;
        assert!(out.stdout == want, "{path}");
    }
}

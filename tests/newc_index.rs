//! The newc tree's index (issue #10): `imgexport` writes its cpio newc tree with the
//! same index and footer as the pax tree (FORMAT.md §2.2, §3, §5), so `imgport ls`,
//! `cat` and `verify` work on imgexport bundles and say what they say of the pax
//! bundle of the same tree; plain `zcat | cpio` still reads it unchanged.

mod common;

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use imgport::tree::{
    verify_archive, write_newc, write_newc_gz, NewcOptions, StreamFormat, TreeArchive,
};

fn imgport(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run imgport")
}

/// Adds files, a symlink, a FIFO, a device, an empty file, a hard link and an empty
/// hard-linked file to the sample image's rootimg, under `ix/`.
fn build(rootimg: &Path) {
    sh(&format!(
        "set -e; cd '{r}'; mkdir -p ix/sub ix/sub2
         printf 'hello newc\\n' > ix/hello
         head -c 300000 /dev/urandom > ix/sub/random
         printf abc > ix/sub2/f
         ln -s ../hello ix/sub/link
         mkfifo ix/fifo && mknod ix/chr c 1 3
         : > ix/empty
         printf linked > ix/h1 && ln ix/h1 ix/sub/h2
         : > ix/e1 && ln ix/e1 ix/sub2/e2",
        r = rootimg.display()
    ));
}

fn imgexport(mn: &Mn, dir: &Path, file: &str, pax: bool) -> PathBuf {
    let (_d, exp) = alias("imgexport");
    let bundle = dir.join(file);
    let mut cmd = Command::new(&exp);
    cmd.args([IMG, bundle.to_str().unwrap()])
        .env("IMGPORT_ROOT", mn.root())
        .env_remove("IMGPORT_TREE_FORMAT")
        .current_dir(dir);
    if pax {
        cmd.env("IMGPORT_TREE_FORMAT", "pax");
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    bundle
}

/// The path an `imgport ls` line names, and the target of a hard link line.
fn ls_path(line: &str) -> (&str, Option<&str>) {
    let rest = &line[line.find(" rootimg").map_or(0, |i| i + 1)..];
    let rest = rest.split(" -> ").next().unwrap_or(rest);
    let mut parts = rest.splitn(2, " link to ");
    let path = parts.next().unwrap_or(rest).trim_end_matches('/');
    (path, parts.next())
}

/// `imgport ls` lines, sorted, hard-link groups left out: pax links later paths to
/// the first, newc to the data-bearing last one (FORMAT.md §5), so their lines
/// differ by design.
fn ls_lines(bundle: &Path, filter: Option<&str>) -> Vec<String> {
    let full = stdout(&imgport(&["ls", bundle.to_str().unwrap()]));
    let mut args = vec!["ls", bundle.to_str().unwrap()];
    args.extend(filter);
    let out = imgport(&args);
    assert!(out.status.success(), "{}", text(&out));
    let all = stdout(&out);
    let linked: Vec<&str> = full
        .lines()
        .filter_map(|l| match ls_path(l) {
            (p, Some(t)) => Some([p, t]),
            _ => None,
        })
        .flatten()
        .collect();
    let mut lines: Vec<String> = all
        .lines()
        .filter(|l| !linked.contains(&ls_path(l).0))
        .map(str::to_string)
        .collect();
    lines.sort();
    lines
}

#[test]
fn ls_cat_and_verify_read_an_imgexport_newc_bundle_as_they_read_the_pax_one() {
    let mn = Mn::sample();
    let rootimg = mn.path(&format!("{ROOTIMGDIR}/rootimg"));
    build(&rootimg);
    let work = tempfile::tempdir().unwrap();
    let newc = imgexport(&mn, work.path(), "newc.tgz", false);
    let pax = imgexport(&mn, work.path(), "pax.tgz", true);

    // The newc tree is still what real xCAT reads: zcat | cpio lists every entry.
    let listed = sh(&format!(
        "cd '{w}' && tar -xzOf '{b}' ./{IMG}/rootimgtree.gz | zcat | cpio -t --quiet | wc -l",
        w = work.path().display(),
        b = newc.display()
    ));
    let all = imgport(&["ls", newc.to_str().unwrap()]);
    assert!(all.status.success(), "{}", text(&all));
    assert_eq!(
        listed.trim().parse::<usize>().unwrap(),
        stdout(&all).lines().count()
    );

    let (a, b) = (ls_lines(&newc, None), ls_lines(&pax, None));
    assert!(a.len() > 20, "{a:?}");
    assert_eq!(a, b, "ls of the newc bundle differs from the pax one");
    assert_eq!(
        ls_lines(&newc, Some("ix/sub")),
        ls_lines(&pax, Some("ix/sub"))
    );
    assert_eq!(ls_lines(&newc, Some("ix/sub")).len(), 3);
    // ls PATH lists PATH and what is under it, hard links included.
    let sub = stdout(&imgport(&["ls", newc.to_str().unwrap(), "ix/sub"]));
    assert_eq!(sub.lines().count(), 4, "{sub}");

    // Hard links: newc stores the data with the last path; both names cat the same.
    let hard = stdout(&imgport(&["ls", newc.to_str().unwrap(), "ix"]));
    assert!(
        hard.contains("rootimg/ix/h1 link to rootimg/ix/sub/h2"),
        "{hard}"
    );
    for path in [
        "ix/hello",
        "ix/sub/random",
        "ix/h1",
        "ix/sub/h2",
        "ix/e1",
        "ix/empty",
    ] {
        let n = imgport(&["cat", newc.to_str().unwrap(), path]);
        let p = imgport(&["cat", pax.to_str().unwrap(), path]);
        assert!(n.status.success(), "{path}: {}", text(&n));
        assert!(p.status.success(), "{path}: {}", text(&p));
        assert!(n.stdout == p.stdout, "{path}: cat differs");
        let base = if path == "ix/sub/h2" { "ix/h1" } else { path };
        assert!(n.stdout == fs::read(rootimg.join(base)).unwrap(), "{path}");
    }
    let link = imgport(&["cat", newc.to_str().unwrap(), "ix/sub/link"]);
    assert_eq!(link.status.code(), Some(1), "{}", text(&link));

    for bundle in [&newc, &pax] {
        let out = imgport(&["verify", bundle.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(stdout(&out).starts_with("OK:"), "{}", text(&out));
    }
}

#[test]
fn the_newc_index_is_the_same_for_any_thread_count_and_finds_every_entry() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("rootimg");
    fs::create_dir_all(root.join("many")).unwrap();
    build(&root);
    for i in 0..700u32 {
        let body: Vec<u8> = (0..3000u32).map(|j| (j * 31 + i * 7) as u8).collect();
        fs::write(root.join(format!("many/f{i:04}")), body).unwrap();
    }
    let gz_with = |threads| {
        let mut gz = Vec::new();
        let opts = NewcOptions {
            threads,
            ..NewcOptions::default()
        };
        write_newc_gz(&root, &mut gz, &opts).unwrap();
        gz
    };
    let one = gz_with(1);
    assert!(one == gz_with(3), "output depends on the thread count");
    let mut plain = Vec::new();
    write_newc(&root, &mut plain, &NewcOptions::default()).unwrap();

    let len = one.len() as u64;
    let mut ar = TreeArchive::new(Cursor::new(one), len, Path::new("t.gz")).unwrap();
    let index = ar.index().clone();
    assert_eq!(index.format, StreamFormat::Newc);
    assert_eq!(index.version(), 2);
    assert!(index.members.len() >= 3, "{} members", index.members.len());
    let entries: Vec<_> = index.entries().map(Result::unwrap).collect();
    // Every entry's header is where the index says: a newc magic at its offset.
    for e in &entries {
        let at = e.header_offset as usize;
        assert_eq!(&plain[at..at + 6], b"070701", "{:?}", e.path);
    }
    let mut out = Vec::new();
    ar.cat(b"many/f0123", &mut out).unwrap();
    assert!(out == fs::read(root.join("many/f0123")).unwrap());
    let report = verify_archive(&mut ar, None).unwrap();
    assert!(report.ok(), "{:?}", report.differences);
    assert_eq!(report.entries, entries.len() as u64);
}

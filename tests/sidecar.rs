//! The tree a bundle made through the `imgexport` name carries (issue #10, part 1):
//! cpio newc plus the `rootimgtree.meta` sidecar (FORMAT.md §7). An edge tree is
//! exported through the alias, then restored (a) exactly as real xCAT's imgimport does
//! (`tar zxf`, then `zcat rootimgtree.gz | cpio -idum` in `<rootimgdir>`) and (b) by
//! imgport's import, and compared with the source by rsync, getcap, getfattr and
//! `stat -c %b`. Needs root and `cpio`, `rsync`, `attr`, `acl`, `libcap2-bin`.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn need_tools() {
    let missing = sh(
        "for t in cpio rsync setfattr getfattr setfacl setcap getcap; do \
         command -v $t >/dev/null || echo $t; done",
    );
    assert!(
        missing.is_empty(),
        "missing tools: {missing}(apt-get install -y cpio attr acl libcap2-bin rsync)"
    );
}

/// Adds every kind of entry that newc carries badly or not at all to the sample
/// image's rootimg, under `edge/`: names of 100+ and 255+ bytes and paths far longer,
/// a 300-byte symlink target, hard links (one group empty), devices, a FIFO, names
/// with a space, a newline and non-UTF-8 bytes, sparse files (one all hole), owners,
/// nanosecond mtimes, a capability, ACLs (access and default), SELinux labels,
/// `trusted.*` and binary `user.*` xattrs.
fn build_edge(rootimg: &Path) {
    let long = "L".repeat(200);
    let target = "t".repeat(300);
    sh(&format!(
        "set -e; cd '{r}'; mkdir -p edge && cd edge
         mkdir -p {long}/{long}/{long} 'sp ace' dir
         printf deep > {long}/{long}/{long}/{n255}
         ln -s /{target} longlink
         printf linked > h1 && ln h1 dir/h2 && ln h1 {long}/h3
         : > e1 && ln e1 dir/e2
         mknod chr c 1 3 && mknod blk b 8 1 && mkfifo fifo
         printf a > 'sp ace/f g' && printf b > $'new\\nline' && printf c > $'caf\\xe9-\\xff\\xfe'
         truncate -s 10M sparse && printf x | dd of=sparse bs=1 seek=5000000 conv=notrunc status=none
         truncate -s 1M allhole
         printf ping > ping && printf own > owned
         chown -R 1234:5678 . && chown 0:0 ping
         chmod 4755 owned
         setcap cap_net_raw+ep ping
         setcap cap_sys_admin+eip owned
         setfacl -m u:1234:rwx,g:5678:r h1
         setfacl -d -m g:5678:rx dir
         setfattr -n security.selinux -v system_u:object_r:bin_t:s0 ping
         setfattr -n security.selinux -v unconfined_u:object_r:user_tmp_t:s0 dir
         setfattr -n trusted.t -v 1 sparse
         setfattr -n user.bin -v 0x00ff0a00 $'caf\\xe9-\\xff\\xfe'
         touch -d '2023-01-02 03:04:05.123456789' h1 sparse ping
         touch -h -d '2022-05-06 07:08:09.5' longlink",
        r = rootimg.display(),
        n255 = "N".repeat(255),
    ));
    let blocks = sh(&format!("stat -c %b '{}/edge/sparse'", rootimg.display()));
    assert!(
        blocks.trim().parse::<u64>().unwrap() < 10 << 10,
        "sparse file is not sparse on this file system"
    );
}

/// The sample MN with the edge tree in its image, and that image's rootimg.
fn edge_mn() -> (Mn, PathBuf) {
    need_tools();
    let mn = Mn::sample();
    let rootimg = mn.path(&format!("{ROOTIMGDIR}/rootimg"));
    build_edge(&rootimg);
    (mn, rootimg)
}

/// Runs `imgexport IMG <dir>/<file>` through the alias, with `env` set.
fn imgexport(mn: &Mn, dir: &Path, file: &str, env: &[(&str, &str)]) -> (Output, PathBuf) {
    let (_d, exp) = alias("imgexport");
    let bundle = dir.join(file);
    let out = Command::new(&exp)
        .args([IMG, bundle.to_str().unwrap()])
        .env("IMGPORT_ROOT", mn.root())
        .env_remove("IMGPORT_TREE_FORMAT")
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .unwrap();
    (out, bundle)
}

/// What real xCAT's imgimport does with a bundle: `tar zxf` it into a fresh directory,
/// then in the image directory `zcat rootimgtree.gz | cpio -idum`. Returns the restored
/// rootimg and cpio's stderr, its `N blocks` line left out.
fn xcat_restore(bundle: &Path, work: &Path) -> (PathBuf, String) {
    let x = work.join("xcat");
    fs::create_dir(&x).unwrap();
    sh(&format!(
        "cd '{}' && tar zxf '{}'",
        x.display(),
        bundle.display()
    ));
    let img = x.join(IMG);
    let out = Command::new("bash")
        .arg("-c")
        .arg("zcat rootimgtree.gz | cpio -idum")
        .current_dir(&img)
        .output()
        .unwrap();
    assert!(out.status.success(), "cpio: {}", text(&out));
    let warnings = stderr(&out)
        .lines()
        .filter(|l| !(l.ends_with(" blocks") || l.ends_with(" block")))
        .map(|l| format!("{l}\n"))
        .collect();
    (img.join("rootimg"), warnings)
}

/// rsync's itemized differences from `src` to `dst` (`--delete`: stray files count).
fn itemize(src: &Path, dst: &Path, flags: &str) -> Vec<String> {
    sh(&format!(
        "rsync -n {flags} --delete --numeric-ids --itemize-changes '{}/' '{}/'",
        src.display(),
        dst.display()
    ))
    .lines()
    .map(str::to_owned)
    .collect()
}

/// What newc can carry, compared: data (sparse files as dense content), types, modes,
/// owners, hard links, devices; mtimes to the second (`--modify-window=1`: newc holds
/// whole seconds), not those of directories and symlinks (`-OJ`: `cpio -idum` does not
/// restore them), no xattrs (newc has none).
const NEWC_RSYNC: &str = "-aHOJ --modify-window=1";

fn cpio_differences(bundle: &Path, src: &Path) -> (Vec<String>, String) {
    let work = tempfile::tempdir().unwrap();
    let (restored, warnings) = xcat_restore(bundle, work.path());
    (itemize(src, &restored, NEWC_RSYNC), warnings)
}

/// `cmd` run in `dir`, with the output sorted (tools list in readdir order).
fn listing(dir: &Path, cmd: &str) -> String {
    let mut l: Vec<String> = sh(&format!("cd '{}' && {cmd}", dir.display()))
        .lines()
        .map(str::to_owned)
        .collect();
    l.sort();
    l.join("\n")
}

#[test]
fn imgexport_newc_tree_restores_right_on_real_cpio_and_losslessly_on_imgport() {
    let (mn, src) = edge_mn();
    let work = tempfile::tempdir().unwrap();
    let (out, bundle) = imgexport(&mn, work.path(), "b.tgz", &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!stderr(&out).contains("dropped"), "{}", text(&out));
    let names = tar_names(&bundle);
    assert!(
        names
            .iter()
            .any(|n| n.ends_with(&format!("{IMG}/rootimgtree.meta"))),
        "{names:?}"
    );

    // (a) real xCAT: 0 differences in what newc carries, no stray files, no warnings.
    let (diff, warnings) = cpio_differences(&bundle, &src);
    eprintln!(
        "cpio restore of the newc+sidecar tree: {} differences",
        diff.len()
    );
    assert_eq!(diff, Vec::<String>::new());
    assert_eq!(warnings, "");

    // (b) imgport: lossless.
    let target = Mn::empty();
    let out = target.run(&["import", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let dst = target.path(&format!("{ROOTIMGDIR}/rootimg"));
    assert_eq!(itemize(&src, &dst, "-aHAX"), Vec::<String>::new());
    for cmd in [
        "getcap -r . 2>/dev/null",
        "getfattr -R -h -d -m - -e hex . 2>/dev/null",
        "getfacl -R -p -n . 2>/dev/null",
        // Nanosecond mtimes of every entry, symlinks included.
        "find . -printf '%p %T@ %U:%G %m\\n'",
        // Holes: allocated blocks.
        "stat -c '%n %b %s' edge/sparse edge/allhole",
    ] {
        assert_eq!(listing(&src, cmd), listing(&dst, cmd), "{cmd}");
    }
}

#[test]
fn the_pax_form_is_chosen_by_environment_and_real_cpio_mangles_it() {
    let (mn, src) = edge_mn();
    let work = tempfile::tempdir().unwrap();
    let (out, bundle) = imgexport(&mn, work.path(), "p.tgz", &[("IMGPORT_TREE_FORMAT", "pax")]);
    assert!(out.status.success(), "{}", text(&out));
    let names = tar_names(&bundle);
    assert!(!names.iter().any(|n| n.ends_with("rootimgtree.meta")));
    let magic = sh(&format!(
        "tar -xzOf '{}' './{IMG}/rootimgtree.gz' | zcat | head -c 262 | tail -c 5",
        bundle.display()
    ));
    assert_eq!(magic, "ustar", "a pax tar tree");
    // What real xCAT makes of it: the figure the issue's closing note reports.
    let (diff, warnings) = cpio_differences(&bundle, &src);
    eprintln!(
        "cpio restore of the pax tree: {} differences; cpio stderr:\n{warnings}",
        diff.len()
    );
    assert!(!diff.is_empty());

    let (out, _) = imgexport(
        &mn,
        work.path(),
        "q.tgz",
        &[("IMGPORT_TREE_FORMAT", "cpio")],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains("IMGPORT_TREE_FORMAT"),
        "{}",
        text(&out)
    );
}

/// Rewrites `bundle` into `out` with its `rootimgtree.meta` taken from `other`.
fn swap_sidecar(bundle: &Path, other: &Path, out: &Path) {
    python(
        r"import tarfile,sys
src=tarfile.open(sys.argv[1]); oth=tarfile.open(sys.argv[2])
meta=[m for m in oth.getmembers() if m.name.endswith('/rootimgtree.meta')][0]
dst=tarfile.open(sys.argv[3],'w:gz')
for m in src.getmembers():
    if m.name.endswith('/rootimgtree.meta'):
        dst.addfile(meta, oth.extractfile(meta))
    else:
        dst.addfile(m, src.extractfile(m) if m.isfile() else None)
dst.close()",
        &[
            bundle.to_str().unwrap(),
            other.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
}

#[test]
fn a_sidecar_from_another_tree_is_refused() {
    let (mn, src) = edge_mn();
    let work = tempfile::tempdir().unwrap();
    let (out, first) = imgexport(&mn, work.path(), "1.tgz", &[]);
    assert!(out.status.success(), "{}", text(&out));
    sh(&format!("touch -d @1500000000 '{}/edge/h1'", src.display()));
    let (out, second) = imgexport(&mn, work.path(), "2.tgz", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let mixed = work.path().join("mixed.tgz");
    swap_sidecar(&second, &first, &mixed);

    let target = Mn::empty();
    let out = target.run(&["import", mixed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("rootimgtree.meta") && err.contains("rootimgtree.gz"),
        "{err}"
    );
    assert!(!target.path(&format!("{ROOTIMGDIR}/rootimg")).exists());
    // A sidecar that comes after its tree (a bundle re-tarred in another order) is
    // refused rather than silently ignored: the tree was restored without it.
    let late = work.path().join("late.tgz");
    python(
        r"import tarfile,sys
src=tarfile.open(sys.argv[1]); ms=src.getmembers()
meta=[m for m in ms if m.name.endswith('/rootimgtree.meta')]
dst=tarfile.open(sys.argv[2],'w:gz')
for m in [m for m in ms if m not in meta] + meta:
    dst.addfile(m, src.extractfile(m) if m.isfile() else None)
dst.close()",
        &[second.to_str().unwrap(), late.to_str().unwrap()],
    );
    let out = target.run(&["import", late.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        stderr(&out).contains("must come before its tree"),
        "{}",
        text(&out)
    );
    assert!(!target.path(&format!("{ROOTIMGDIR}/rootimg")).exists());
    // The matching pair imports.
    let out = target.run(&["import", second.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_file_of_4_gib_is_refused_naming_it_and_the_pax_form() {
    let (mn, src) = edge_mn();
    sh(&format!("truncate -s 4G '{}/edge/big'", src.display()));
    let work = tempfile::tempdir().unwrap();
    let (out, bundle) = imgexport(&mn, work.path(), "big.tgz", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains("rootimg/edge/big") && err.contains("IMGPORT_TREE_FORMAT=pax"),
        "{err}"
    );
    assert!(!bundle.exists());
}

/// `verify --against` a tree that imgport imported from an `imgexport` bundle reads
/// the bundle's sidecar with its newc tree: what the sidecar restored (xattrs,
/// capabilities, ACLs, nanosecond mtimes, holes) is no difference, and what changed
/// after the import is, each once.
#[test]
fn verify_against_an_imported_newc_tree_compares_with_the_sidecar() {
    let (mn, _src) = edge_mn();
    let work = tempfile::tempdir().unwrap();
    let (out, bundle) = imgexport(&mn, work.path(), "b.tgz", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let b = bundle.to_str().unwrap();
    let target = Mn::empty();
    let out = target.run(&["import", b]);
    assert!(out.status.success(), "{}", text(&out));
    let dst = target.path(&format!("{ROOTIMGDIR}/rootimg"));
    let d = dst.to_str().unwrap();
    for threads in ["1", "3"] {
        let out = target.run(&["--threads", threads, "verify", b, "--against", d]);
        assert!(out.status.success(), "{threads}: {}", text(&out));
        assert!(stdout(&out).starts_with("OK: "), "{}", text(&out));
    }

    // One byte of a file's content, its mtime kept; one xattr removed.
    let f = dst.join("edge/sp ace/f g");
    let mtime = fs::metadata(&f).unwrap().modified().unwrap();
    fs::write(&f, b"A").unwrap();
    let file = fs::File::options().write(true).open(&f).unwrap();
    file.set_times(fs::FileTimes::new().set_modified(mtime))
        .unwrap();
    drop(file);
    sh(&format!("setfattr -x trusted.t '{d}/edge/sparse'"));
    let out = target.run(&["--threads", "2", "verify", b, "--against", d]);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let report = stdout(&out);
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 3, "{report}");
    assert_eq!(
        lines[0], "rootimg/edge/sp ace/f g: content differs",
        "{report}"
    );
    assert_eq!(
        lines[1], "rootimg/edge/sparse: xattrs [trusted.t] in the archive, [] on disk",
        "{report}"
    );
    assert!(
        lines[2].starts_with("MISMATCH: ") && lines[2].contains(" 2 differences"),
        "{report}"
    );
}

//! `export --codec zstd`: the tree as `rootimgtree.zst` (FORMAT.md §6), checked with
//! tools nobody here wrote (zstd, GNU tar, rsync, python's tarfile) and with a seek
//! table parser written here from the seekable-format spec, independent of imgport's.
//!
//! Needs root and `apt-get install zstd rsync attr acl libcap2-bin` (see `.ci/run`);
//! the tests fail, rather than skip, when those are missing.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn rootimg(mn: &Mn) -> PathBuf {
    mn.path(&format!("{ROOTIMGDIR}/rootimg"))
}

/// The sample MN, its tree grown past 8 MiB of tar (a 15 MiB text file, a 9 MiB
/// random one) so the zstd tree has several frames and a file split across them.
fn big_sample() -> Mn {
    let mn = Mn::sample();
    let r = rootimg(&mn);
    sh(&format!(
        "seq 1 2000000 > {0}/usr/lib/big.txt && head -c 9437184 /dev/urandom > {0}/usr/lib/random.bin && mkdir -p {0}/usr/share/many && for i in $(seq 1 300); do seq $i 5000 > {0}/usr/share/many/f$i; done",
        r.display()
    ));
    mn
}

/// Exports the sample into `dir` as `name` with `args`; returns the bundle path.
fn export(mn: &Mn, dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let mut all = vec!["export", IMG, name];
    all.extend_from_slice(args);
    let out = mn.run_in(dir, &all);
    assert!(out.status.success(), "export: {}", text(&out));
    dir.join(name)
}

/// One member of a bundle, extracted by GNU tar.
fn member(bundle: &Path, name: &str) -> Vec<u8> {
    let out = Command::new("tar")
        .args(["-xzOf", bundle.to_str().unwrap(), name])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    out.stdout
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// A seek table entry: compressed size, decompressed size, checksum.
type Entry = (u32, u32, Option<u32>);

/// Parses the seekable format's seek table at the end of `file`, straight from the
/// spec (facebook/zstd contrib/seekable_format, v0.1.0); returns the entries.
fn seek_table(file: &[u8]) -> Vec<Entry> {
    let n = file.len();
    assert_eq!(u32_at(file, n - 4), 0x8F92_EAB1, "seekable magic last");
    let frames = u32_at(file, n - 9) as usize;
    let descriptor = file[n - 5];
    assert_eq!(descriptor & 0x7c, 0, "reserved bits clear");
    let size = if descriptor & 0x80 != 0 { 12 } else { 8 };
    let table_len = 8 + frames * size + 9;
    let at = n - table_len;
    assert_eq!(u32_at(file, at), 0x184D_2A5E, "seek table skippable magic");
    assert_eq!(u32_at(file, at + 4) as usize, frames * size + 9);
    let entries: Vec<Entry> = file[at + 8..n - 9]
        .chunks_exact(size)
        .map(|e| {
            (
                u32_at(e, 0),
                u32_at(e, 4),
                (size == 12).then(|| u32_at(e, 8)),
            )
        })
        .collect();
    let sum: usize = entries.iter().map(|e| e.0 as usize).sum();
    assert_eq!(sum + table_len, n, "frame sizes add up to the file");
    entries
}

fn tree_name() -> String {
    format!("./{IMG}/rootimgtree.zst")
}

#[test]
fn zstd_tree_is_plain_zstd_seekable_and_imports_losslessly() {
    let src = big_sample();
    let work = tempfile::tempdir().unwrap();
    let zst = export(&src, work.path(), "z.tgz", &["--codec", "zstd"]);
    let gz = export(&src, work.path(), "g.tgz", &[]);

    // Bundle layout and manifest.
    let names = tar_names(&zst);
    assert!(names.contains(&tree_name()), "{names:?}");
    assert!(!names.iter().any(|n| n.ends_with("rootimgtree.gz")));
    let manifest = String::from_utf8(member(&zst, &format!("./{IMG}/manifest.xml"))).unwrap();
    assert!(
        manifest.contains(&format!(
            "<rootimgtree>{ROOTIMGDIR}/rootimgtree.zst</rootimgtree>"
        )),
        "{manifest}"
    );
    assert!(
        manifest.contains("<imgporttreeformat>pax-zstd</imgporttreeformat>"),
        "{manifest}"
    );

    // zstd itself: the file tests clean and decodes to exactly the gzip tree's tar.
    let tree = work.path().join("rootimgtree.zst");
    fs::write(&tree, member(&zst, &tree_name())).unwrap();
    sh(&format!("zstd -q -t {}", tree.display()));
    let tar_z = work.path().join("z.tar");
    let tar_g = work.path().join("g.tar");
    sh(&format!(
        "zstd -q -dc {} > {}",
        tree.display(),
        tar_z.display()
    ));
    sh(&format!(
        "tar -xzOf {} ./{IMG}/rootimgtree.gz | gzip -dc > {}",
        gz.display(),
        tar_g.display()
    ));
    sh(&format!("cmp {} {}", tar_z.display(), tar_g.display()));
    let listing = sh(&format!("zstd -q -dc {} | tar -tf -", tree.display()));
    assert!(listing.contains("rootimg/usr/lib/big.txt"), "{listing}");

    // The seek table: every frame listed, data frames of at least 4 MiB of tar but the
    // last, then imgport's index and footer frames (decompressed size 0).
    let bytes = fs::read(&tree).unwrap();
    let entries = seek_table(&bytes);
    let tar_len = fs::metadata(&tar_z).unwrap().len();
    assert!(tar_len > 8 << 20, "tree of {tar_len} bytes");
    let (data, skippable) = entries.split_at(entries.len() - 2);
    assert!(data.len() >= 3, "{entries:?}");
    for e in &data[..data.len() - 1] {
        assert!(e.1 >= 4 << 20, "frame of {} bytes", e.1);
    }
    assert_eq!(
        data.iter().map(|e| e.1 as u64).sum::<u64>(),
        tar_len,
        "data frames decompress to the tar"
    );
    assert!(skippable.iter().all(|e| e.1 == 0), "{skippable:?}");
    // Each data frame is a zstd frame whose checksum the table repeats.
    let mut at = 0usize;
    for e in data {
        let frame = &bytes[at..at + e.0 as usize];
        assert_eq!(u32_at(frame, 0), 0xFD2F_B528, "zstd frame magic");
        assert_eq!(e.2, Some(u32_at(frame, frame.len() - 4)));
        at += e.0 as usize;
    }
    assert_eq!(
        u32_at(&bytes, at),
        0x184D_2A59,
        "index frame follows the data"
    );

    // Import into an empty MN: identical tree.
    let target = Mn::empty();
    let out = target.run(&["import", zst.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("Extracting rootimgtree.zst"),
        "{}",
        text(&out)
    );
    let diff = sh(&format!(
        "rsync -aHAXn --numeric-ids -i {}/ {}/",
        rootimg(&src).display(),
        rootimg(&target).display()
    ));
    assert_eq!(diff, "", "trees differ");

    // ls, cat and verify, on the bundle and on the bare tree.
    for archive in [&zst, &tree] {
        let a = archive.to_str().unwrap();
        let out = src.run(&["ls", a]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(stdout(&out).contains("rootimg/usr/lib/big.txt"));
        let out = src.run(&["cat", a, "usr/lib/random.bin"]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(out.stdout == fs::read(rootimg(&src).join("usr/lib/random.bin")).unwrap());
        let out = src.run(&["cat", a, "data/sparse.img"]);
        assert!(out.stdout == fs::read(rootimg(&src).join("data/sparse.img")).unwrap());
        let restored = rootimg(&target);
        let out = src.run(&["verify", a, "--against", restored.to_str().unwrap()]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(stdout(&out).starts_with("OK:"), "{}", text(&out));
    }
    let out = src.run(&["inspect", zst.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn zstd_tree_bytes_do_not_depend_on_threads() {
    let src = big_sample();
    let work = tempfile::tempdir().unwrap();
    let mut trees = Vec::new();
    for threads in ["1", "3"] {
        let out = src.run_in(
            work.path(),
            &[
                "--threads",
                threads,
                "export",
                IMG,
                threads,
                "--codec",
                "zstd",
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
        trees.push(member(&work.path().join(threads), &tree_name()));
    }
    assert!(trees[0] == trees[1], "1 and 3 threads differ");
}

#[test]
fn zstd_tree_streams_through_a_pipe() {
    let src = Mn::sample();
    let target = Mn::empty();
    let (export, import) = pipe_export_import(&src, &target, &["--codec", "zstd"]);
    assert!(export.status.success(), "{}", text(&export));
    assert!(import.status.success(), "{}", text(&import));
    let diff = sh(&format!(
        "rsync -aHAXn --numeric-ids -i {}/ {}/",
        rootimg(&src).display(),
        rootimg(&target).display()
    ));
    assert_eq!(diff, "", "trees differ");
}

#[test]
fn zstd_with_compat_xcat_is_a_usage_error() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let out = src.run_in(
        work.path(),
        &["export", IMG, "--compat", "xcat", "--codec", "zstd"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(stderr(&out).contains("--compat xcat"), "{}", text(&out));
    assert!(
        fs::read_dir(work.path()).unwrap().next().is_none(),
        "nothing written"
    );
}

#[test]
fn a_damaged_zstd_tree_fails_import_and_verify() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export(&src, work.path(), "z.tgz", &["--codec", "zstd"]);
    // The tree is carried in stored deflate blocks: its first zstd frame sits in the
    // bundle as is. Flip a byte well inside it.
    let bytes = fs::read(&bundle).unwrap();
    // Past the tree's tar header, so a chance match in the random kernel cannot count.
    let header = bytes
        .windows(16)
        .position(|w| w == b"rootimgtree.zst\0")
        .expect("the tree's tar header");
    let magic = 0xFD2F_B528u32.to_le_bytes();
    let at = header
        + bytes[header..]
            .windows(4)
            .position(|w| w == magic)
            .expect("a zstd frame in the bundle");
    let mut bad = bytes.clone();
    bad[at + 300] ^= 0xff;
    let bad_path = work.path().join("bad.tgz");
    fs::write(&bad_path, bad).unwrap();
    let out = src.run(&["verify", bad_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let target = Mn::empty();
    let out = target.run(&["import", bad_path.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(!rootimg(&target).exists(), "nothing placed");
}

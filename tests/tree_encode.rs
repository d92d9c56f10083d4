//! End-to-end checks of the tree encoder against tools nobody here wrote: GNU tar
//! extracts the archive, rsync compares the result with the source, and getcap, stat,
//! gzip, bsdtar and Python's tarfile inspect it.
//!
//! Needs root (chown, mknod, trusted.* xattrs, setcap) and the tools from
//! `apt-get install attr acl libcap2-bin rsync libarchive-tools`. The tests fail, rather
//! than skip, when those are missing: an unverified lossless claim is worthless.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use imgport::tree::writer::{write_tar, write_tree, WriteOptions};

/// A 64 MiB sparse file with data at 1 MiB and 40 MiB.
const SPARSE_FILE_BYTES: u64 = 64 << 20;

/// Runs a bash script, panicking with its output if it fails; returns stdout.
fn sh(script: &str) -> String {
    let out = Command::new("bash")
        .arg("-euc")
        .arg(script)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "script failed: {script}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Path as a shell-quoted string (test paths are plain ASCII tempdirs).
fn q(p: &Path) -> String {
    format!("'{}'", p.display())
}

/// Builds a root tree exercising every kind of metadata the encoder must keep.
fn build_tree(root: &Path) {
    fs::create_dir_all(root).unwrap();
    let long_dir = [
        "d".repeat(60),
        "e".repeat(60),
        "f".repeat(60),
        "g".repeat(60),
    ]
    .join("/");
    let long_target = format!("/{}/target", "t".repeat(120));
    sh(&format!(
        r#"
        cd {root}
        mkdir -p etc a/b/c/d bin tmp x y z dev {long_dir} emptydir acldir
        printf 'root:x:0:0:root:/root:/bin/sh\nimguser:x:1234:5678::/home/imguser:/bin/sh\n' > etc/passwd
        printf 'root:x:0:\nimggrp:x:5678:\n' > etc/group
        echo deep > a/b/c/d/file
        echo su > bin/su && chmod 4755 bin/su
        chmod 1777 tmp
        echo owned > a/owned && chown 1234:5678 a/owned
        chown 1234:5678 a/b
        ln -s ../bin/su a/link
        ln -s /does/not/exist a/dangling
        echo pair > a/pair && ln a/pair bin/pair
        echo three > x/h1 && ln x/h1 y/h2 && ln x/h1 z/h3
        mknod dev/null c 1 3 && mknod dev/sda1 b 8 1 && chmod 600 dev/sda1
        mkfifo dev/fifo
        echo ping > bin/ping && chmod 755 bin/ping && setcap cap_net_raw+ep bin/ping
        echo x > a/xattrs && setfattr -n user.bin -v 0x00ff00 a/xattrs
        setfattr -n user.text -v 'hello world' a/xattrs
        echo acl > a/acl && setfacl -m u:1234:rwx a/acl
        setfacl -d -m g:5678:r-x acldir
        setfattr -n user.dirattr -v dirvalue a/b
        setfattr -h -n trusted.linkattr -v 0x0a0b a/link
        truncate -s {sparse} a/sparse
        printf hello | dd of=a/sparse bs=1 seek=1048576 conv=notrunc status=none
        printf world | dd of=a/sparse bs=1 seek=41943040 conv=notrunc status=none
        head -c 3000000 /dev/urandom > a/random
        : > a/empty
        touch $'a/new\nline' $'a/bad\xff\xfename'
        echo long > {long_dir}/file_with_a_long_path_beyond_255_bytes
        ln -s {long_target} a/longtarget
        echo ns > a/nanos && touch -d '2021-02-03 04:05:06.123456789' a/nanos
        touch -h -d '2019-01-01 00:00:00.5' a/dangling
        python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' tmp/app.sock
        "#,
        root = q(root),
        sparse = SPARSE_FILE_BYTES,
    ));
    // Directory mtimes last, so every directory has a whole-second and a ns one.
    sh(&format!(
        "cd {} && touch -d '2020-05-05 05:05:05.25' a/b/c && touch -d '2018-01-01' x",
        q(root)
    ));
}

struct Fixture {
    _tmp: tempfile::TempDir,
    src: PathBuf,
    archive: PathBuf,
    warnings: Vec<String>,
    sockets: u64,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("rootimg");
    build_tree(&src);
    let archive = tmp.path().join("rootimgtree.gz");
    let out = fs::File::create(&archive).unwrap();
    let stats = write_tree(&src, out, &WriteOptions::default()).unwrap();
    assert_eq!(stats.bytes_out, fs::metadata(&archive).unwrap().len());
    Fixture {
        src,
        archive,
        warnings: stats.warnings,
        sockets: stats.sockets_skipped,
        _tmp: tmp,
    }
}

#[test]
fn gnu_tar_extraction_matches_source_per_rsync_getcap_and_stat() {
    let f = fixture();
    sh(&format!("gzip -t {}", q(&f.archive)));

    let dst = f.archive.parent().unwrap().join("extracted");
    fs::create_dir(&dst).unwrap();
    sh(&format!(
        "tar --xattrs --xattrs-include='*' --acls -S --numeric-owner -xzpf {} -C {}",
        q(&f.archive),
        q(&dst)
    ));
    let out = dst.join("rootimg");

    // rsync compares types, modes, owners, hard links, ACLs, xattrs (symlinks included)
    // and mtimes, to the nanosecond with --modify-window=-1 (seconds otherwise);
    // --checksum adds file contents. The socket is the one thing not archived.
    let diff = sh(&format!(
        "rsync -aHAXn --checksum --modify-window=-1 --numeric-ids --itemize-changes --exclude=/tmp/app.sock {}/ {}/",
        q(&f.src),
        q(&out)
    ));
    assert_eq!(diff, "", "rsync found differences");

    for file in ["bin/ping", "a/xattrs", "bin/su"] {
        let a = sh(&format!("cd {} && getcap {file}", q(&f.src)));
        let b = sh(&format!("cd {} && getcap {file}", q(&out)));
        assert_eq!(a, b, "getcap {file}");
    }
    assert!(sh(&format!("getcap {}/bin/ping", q(&out))).contains("cap_net_raw=ep"));

    // Holes kept: GNU tar -S recreates them, so few blocks are allocated.
    let blocks: u64 = sh(&format!("stat -c %b {}/a/sparse", q(&out)))
        .trim()
        .parse()
        .unwrap();
    assert!(blocks < 1024, "sparse file has {blocks} blocks allocated");
    assert_eq!(
        fs::metadata(out.join("a/sparse")).unwrap().len(),
        SPARSE_FILE_BYTES
    );
    sh(&format!("cmp {}/a/sparse {}/a/sparse", q(&f.src), q(&out)));

    // rsync already compared ns mtimes; spell the one with a fraction out anyway.
    assert_eq!(
        sh(&format!("stat -c %y {}/a/nanos", q(&out))),
        sh(&format!("stat -c %y {}/a/nanos", q(&f.src)))
    );

    // Sockets: skipped, counted, warned about by name.
    assert_eq!(f.sockets, 1);
    assert!(!out.join("tmp/app.sock").exists());
    assert!(
        f.warnings.iter().any(|w| w.contains("tmp/app.sock")),
        "{:?}",
        f.warnings
    );
}

#[test]
fn bsdtar_extraction_matches_source_too() {
    let f = fixture();
    let dst = f.archive.parent().unwrap().join("bsd");
    fs::create_dir(&dst).unwrap();
    sh(&format!(
        "bsdtar --xattrs --acls --numeric-owner -xpf {} -C {}",
        q(&f.archive),
        q(&dst)
    ));
    let diff = sh(&format!(
        "rsync -aHAXn --checksum --modify-window=-1 --numeric-ids --itemize-changes --exclude=/tmp/app.sock {}/ {}/rootimg/",
        q(&f.src),
        q(&dst)
    ));
    assert_eq!(diff, "", "rsync found differences after bsdtar");
}

#[test]
fn listers_accept_the_archive() {
    let f = fixture();
    // bsdtar and GNU tar list it without complaint (stderr must stay empty).
    for lister in ["bsdtar -tvf", "tar -tvzf"] {
        let out = Command::new("bash")
            .arg("-c")
            .arg(format!("{lister} {}", q(&f.archive)))
            .output()
            .unwrap();
        assert!(out.status.success(), "{lister} failed");
        // GNU tar 1.34 does not know POSIX `hdrcharset` (announcing the non-UTF-8
        // name) and says so once per such entry; that is the only message allowed.
        let stderr = String::from_utf8_lossy(&out.stderr);
        let unexpected: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.ends_with("Ignoring unknown extended header keyword 'hdrcharset'"))
            .collect();
        assert!(unexpected.is_empty(), "{lister} printed: {stderr}");
        assert!(String::from_utf8_lossy(&out.stdout).contains("rootimg/dev/fifo"));
    }

    let script = r#"
import os, sys, tarfile
names = {}
with tarfile.open(sys.argv[1], 'r:gz') as t:
    members = t.getmembers()
for m in members:
    names[m.name] = m
def get(n):
    assert n in names, (n, sorted(names)[:20])
    return names[n]
assert members[0].name == 'rootimg' and members[0].isdir()
assert get('rootimg/tmp').mode == 0o1777
assert get('rootimg/bin/su').mode == 0o4755
o = get('rootimg/a/owned'); assert (o.uid, o.gid, o.uname, o.gname) == (1234, 5678, 'imguser', 'imggrp'), (o.uid, o.gid, o.uname, o.gname)
d = get('rootimg/dev/null'); assert d.ischr() and (d.devmajor, d.devminor) == (1, 3)
d = get('rootimg/dev/sda1'); assert d.isblk() and (d.devmajor, d.devminor) == (8, 1)
assert get('rootimg/dev/fifo').isfifo()
assert get('rootimg/a/link').issym() and get('rootimg/a/link').linkname == '../bin/su'
assert get('rootimg/a/dangling').linkname == '/does/not/exist'
lt = get('rootimg/a/longtarget'); assert lt.issym() and len(lt.linkname) > 100
# a/pair sorts before bin/pair, x/h1 before y/h2 and z/h3
assert get('rootimg/bin/pair').islnk() and get('rootimg/bin/pair').linkname == 'rootimg/a/pair'
assert get('rootimg/y/h2').linkname == 'rootimg/x/h1' and get('rootimg/z/h3').linkname == 'rootimg/x/h1'
p = get('rootimg/bin/ping').pax_headers
assert 'SCHILY.xattr.security.capability' in p, p
x = get('rootimg/a/xattrs').pax_headers
assert x['SCHILY.xattr.user.bin'].encode('utf-8', 'surrogateescape') == b'\x00\xff\x00', x
assert 'SCHILY.xattr.system.posix_acl_access' in get('rootimg/a/acl').pax_headers
assert 'SCHILY.xattr.system.posix_acl_default' in get('rootimg/acldir').pax_headers
assert 'SCHILY.xattr.trusted.linkattr' in get('rootimg/a/link').pax_headers
assert 'SCHILY.xattr.user.dirattr' in get('rootimg/a/b').pax_headers
s = get('rootimg/a/sparse'); assert s.size == 64 << 20 and s.sparse, (s.size, s.sparse)
assert get('rootimg/a/new\nline').isfile()
assert get(os.fsdecode(b'rootimg/a/bad\xff\xfename')).isfile()
assert any(n.endswith('file_with_a_long_path_beyond_255_bytes') and len(n.encode()) > 255 for n in names)
assert get('rootimg/a/nanos').pax_headers['mtime'] == '1612325106.123456789'
assert 'rootimg/tmp/app.sock' not in names
print('OK', len(members))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(f.archive.as_os_str())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python tarfile check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("OK"));
}

#[test]
fn output_is_deterministic() {
    let f = fixture();
    let first = fs::read(&f.archive).unwrap();
    let mut second = Vec::new();
    write_tree(&f.src, &mut second, &WriteOptions::default()).unwrap();
    assert!(first == second, "two gzip runs differ");

    // The plain tar is the gzip stream's content, byte for byte.
    let mut plain = Vec::new();
    write_tar(&f.src, &mut plain, &WriteOptions::default()).unwrap();
    let unzipped = Command::new("bash")
        .arg("-c")
        .arg(format!("gzip -dc {}", q(&f.archive)))
        .output()
        .unwrap();
    assert!(unzipped.stdout == plain, "gzip -dc differs from write_tar");

    // And the names in it are raw bytes, including the non-UTF-8 one.
    let listed = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "tar -tzf {} --quoting-style=literal",
            q(&f.archive)
        ))
        .output()
        .unwrap();
    let needle = b"rootimg/a/bad\xff\xfename";
    assert!(
        listed
            .stdout
            .windows(needle.len())
            .any(|w| w == needle.as_slice()),
        "raw name not listed by GNU tar"
    );
}

/// Unmounts on drop, so a failing assertion does not leave a mount in /tmp.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn one_file_system_archives_the_mount_point_but_not_its_contents() {
    use imgport::tree::walk::{walk, WalkOptions};

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootimg");
    fs::create_dir_all(root.join("proc")).unwrap();
    fs::write(root.join("zzz"), b"after the mount point").unwrap();
    sh(&format!("mount -t tmpfs imgport-test {}/proc", q(&root)));
    let _mount = Mount(root.join("proc"));
    fs::write(root.join("proc/inner"), b"other fs").unwrap();

    let names = |w: &imgport::tree::walk::Walk| -> Vec<Vec<u8>> {
        w.entries.iter().map(|(e, _)| e.path.clone()).collect()
    };
    let w = walk(&root, b"rootimg", &WalkOptions::default()).unwrap();
    assert_eq!(
        names(&w),
        [&b"rootimg"[..], b"rootimg/proc", b"rootimg/zzz"].map(|s| s.to_vec())
    );
    assert!(
        w.warnings.iter().any(|m| m.contains("rootimg/proc")),
        "{:?}",
        w.warnings
    );

    let all = WalkOptions {
        one_file_system: false,
        ..WalkOptions::default()
    };
    let w = walk(&root, b"rootimg", &all).unwrap();
    assert!(names(&w).contains(&b"rootimg/proc/inner".to_vec()));
}

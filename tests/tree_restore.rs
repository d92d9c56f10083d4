//! Restore fidelity and safety, checked against tools nobody here wrote: GNU tar,
//! bsdtar and GNU cpio make the archives; rsync, getcap, getfattr, stat and find
//! compare the restored tree with the source. Needs root (mknod, chown, trusted.*)
//! and attr, acl, libcap2-bin, rsync, libarchive-tools, cpio.

use std::fs;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use imgport::tree::internals::gzip;
use imgport::tree::{
    restore, restore_stream, write_tar, RestoreOptions, RestoreStats, TreeError, WriteOptions,
};

fn sh(dir: &Path, script: &str) -> Vec<u8> {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail\n{script}"))
        .current_dir(dir)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "script failed: {script}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Builds `<parent>/rootimg` with every kind of entry and metadata a root image has.
fn build_tree(parent: &Path, with_newline_name: bool, with_acls: bool) {
    let long = "d".repeat(100);
    let mut script = format!(
        r#"
mkdir rootimg && cd rootimg
mkdir -p etc bin dev tmp ro sub/deep a b usr/lib/{long}/{long}
chmod 1777 tmp
chmod 2755 usr
printf 'root:x:0:0::/root:/bin/sh\n' > etc/passwd
printf 'setuid' > bin/suid && chmod 4755 bin/suid
printf 'setgid' > bin/sgid && chmod 2711 bin/sgid
printf 'ping' > bin/ping && setcap cap_net_raw+ep bin/ping
printf 'owned' > etc/owned && chown 1234:5678 etc/owned
chown 1234:5678 sub
ln -s ../etc/passwd etc/link
ln -s /nonexistent/dangling etc/dangling
printf 'two' > a/h1 && ln a/h1 b/h2
printf 'three' > a/t1 && ln a/t1 b/t2 && ln a/t1 sub/deep/t3
: > a/e1 && ln a/e1 b/e2
mknod dev/null c 1 3 && chmod 0666 dev/null
mknod dev/sda b 8 1 && chown 0:6 dev/sda && chmod 0660 dev/sda
mkfifo dev/initctl && chmod 0600 dev/initctl
setfattr -n user.bin -v 0x00ff00 etc/owned
setfattr -n trusted.dirattr -v dirval sub
setfattr -h -n trusted.linkattr -v linkval etc/link
truncate -s 64M sparse
printf 'AAAA' | dd of=sparse bs=1 seek=$((1<<20)) conv=notrunc status=none
printf 'BBBB' | dd of=sparse bs=1 seek=$((40<<20)) conv=notrunc status=none
touch $'bad\xff\xfename'
printf 'deep' > usr/lib/{long}/{long}/{long}
head -c 300000 /dev/urandom > bin/random
printf 'r1' > ro/f1 && printf 'r2' > ro/f2 && chmod 0555 ro && chmod 0444 ro/f1
touch -h -d '2001-02-03 04:05:06.123456789' etc/link
touch -d '1999-12-31 23:59:59.987654321' etc/owned
"#
    );
    if with_newline_name {
        script.push_str("printf 'nl' > $'new\\nline'\n");
    }
    if with_acls {
        script.push_str(
            "touch etc/acl && setfacl -m u:1234:rwx,g:5678:r-- etc/acl\n\
             setfacl -d -m g:5678:r-x sub\n",
        );
    }
    // Directory times last, after all their children exist.
    script.push_str(
        "find . -depth -type d -exec touch -d '2010-05-06 07:08:09.555555555' {} +\n\
         touch -d '2011-01-01 00:00:00.25' sub/deep\n",
    );
    sh(parent, &script);
}

fn rsync_diff(src: &Path, dst: &Path, flags: &str) -> String {
    let out = Command::new("rsync")
        .args([flags, "--numeric-ids", "--itemize-changes"])
        .arg(format!("{}/", src.display()))
        .arg(format!("{}/", dst.display()))
        .output()
        .expect("rsync runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Names, nanosecond mtimes, modes and owners of every entry (rsync compares only
/// whole seconds).
fn listing(dir: &Path) -> Vec<u8> {
    sh(
        dir,
        "find . -printf '%p %T@ %m %U %G %y %s\\n' | LC_ALL=C sort",
    )
}

fn xattr_dump(dir: &Path) -> Vec<u8> {
    sh(
        dir,
        "find . -print0 | LC_ALL=C sort -z | xargs -0 getfattr -h -d -m - -e hex --absolute-names",
    )
}

fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let src = tmp.path().join("src");
    let dst = tmp.path().join("dst");
    fs::create_dir(&src).unwrap();
    fs::create_dir_all(dst.join("rootimg")).unwrap();
    (tmp, src, dst)
}

fn restore_file_gz(archive: &Path, dst: &Path) -> RestoreStats {
    let f = fs::File::open(archive).unwrap();
    restore_stream(
        f,
        &dst.join("rootimg"),
        b"rootimg",
        &RestoreOptions::default(),
    )
    .expect("restore succeeds")
}

fn check_full_fidelity(src: &Path, dst: &Path) {
    let (s, d) = (src.join("rootimg"), dst.join("rootimg"));
    assert_eq!(
        rsync_diff(&s, &d, "-aHAXn"),
        "",
        "rsync -aHAXn finds differences"
    );
    assert_eq!(listing(&s), listing(&d), "find listing differs");
    assert_eq!(xattr_dump(&s), xattr_dump(&d), "getfattr dumps differ");
    let caps = |p: &Path| sh(p, "getcap -r . | LC_ALL=C sort");
    let c = caps(&d);
    assert!(
        String::from_utf8_lossy(&c).contains("./bin/ping cap_net_raw=ep"),
        "{c:?}"
    );
    assert_eq!(caps(&s), c);
    let devs = |p: &Path| sh(p, "stat -c '%n %F %t %T' dev/null dev/sda dev/initctl");
    assert_eq!(devs(&s), devs(&d));
    assert_eq!(devs(&d), b"dev/null character special file 1 3\ndev/sda block special file 8 1\ndev/initctl fifo 0 0\n");
}

fn sparse_blocks(dir: &Path) -> u64 {
    let out = sh(dir, "stat -c %b rootimg/sparse");
    String::from_utf8_lossy(&out).trim().parse().unwrap()
}

#[test]
fn gnu_tar_posix_archive_restores_losslessly() {
    let (tmp, src, dst) = setup();
    build_tree(&src, true, true);
    let archive = tmp.path().join("t.tgz");
    sh(
        &src,
        &format!(
            "tar --posix --xattrs --xattrs-include='*' --acls -S --numeric-owner -czf {} rootimg",
            archive.display()
        ),
    );
    let stats = restore_file_gz(&archive, &dst);
    assert!(stats.warnings.is_empty(), "{:?}", stats.warnings);
    check_full_fidelity(&src, &dst);
    // Holes kept: 8 bytes of data in a 64 MiB file.
    let blocks = sparse_blocks(&dst);
    assert!(
        blocks <= sparse_blocks(&src) + 16 && blocks < 256,
        "{blocks} blocks"
    );
    assert_eq!(
        fs::metadata(dst.join("rootimg/sparse")).unwrap().len(),
        64 << 20
    );
}

#[test]
fn bsdtar_pax_archive_restores_losslessly() {
    let (tmp, src, dst) = setup();
    build_tree(&src, true, true);
    let archive = tmp.path().join("b.tgz");
    // bsdtar stores ACLs as text only and every xattr twice (LIBARCHIVE + SCHILY).
    sh(
        &src,
        &format!(
            "bsdtar --format=pax --numeric-owner -czf {} rootimg",
            archive.display()
        ),
    );
    let listing_of_archive = sh(
        tmp.path(),
        "zcat b.tgz | strings | grep -c LIBARCHIVE.xattr || true",
    );
    assert_ne!(listing_of_archive, b"0\n");
    let stats = restore_file_gz(&archive, &dst);
    assert!(stats.warnings.is_empty(), "{:?}", stats.warnings);
    check_full_fidelity(&src, &dst);
    assert!(sparse_blocks(&dst) < 256);
}

#[test]
fn multi_member_gzip_from_pigz() {
    let (tmp, src, dst) = setup();
    build_tree(&src, false, false);
    let archive = tmp.path().join("p.tgz");
    // Two independently compressed halves, concatenated: a 2-member gzip file.
    sh(
        &src,
        &format!(
            "tar --posix --xattrs --xattrs-include='*' -S --numeric-owner -cf ../t.tar rootimg\n\
             n=$(stat -c %s ../t.tar); h=$(( n / 2 ))\n\
             head -c $h ../t.tar | pigz -c > {a}\n\
             tail -c +$(( h + 1 )) ../t.tar | gzip -c >> {a}",
            a = archive.display()
        ),
    );
    restore_file_gz(&archive, &dst);
    assert_eq!(
        rsync_diff(&src.join("rootimg"), &dst.join("rootimg"), "-aHAXn"),
        ""
    );
}

#[test]
fn xcat_cpio_newc_restores_owners_modes_devices_links() {
    let (tmp, src, dst) = setup();
    // `find | cpio` cannot carry names with newlines; newc has no xattrs or ACLs.
    build_tree(&src, false, false);
    let archive = tmp.path().join("rootimgtree.gz");
    sh(
        &src,
        &format!(
            "find rootimg | cpio -H newc -o --quiet | gzip > {}",
            archive.display()
        ),
    );
    let stats = restore_file_gz(&archive, &dst);
    assert!(stats.warnings.is_empty(), "{:?}", stats.warnings);
    let (s, d) = (src.join("rootimg"), dst.join("rootimg"));
    assert_eq!(
        rsync_diff(&s, &d, "-aHn"),
        "",
        "rsync -aHn finds differences"
    );
    // Hard links carry their data (GNU cpio stores it with the last link only).
    assert_eq!(fs::read(d.join("a/t1")).unwrap(), b"three");
    let inode = |p: &str| sh(&d, &format!("stat -c %i {p}"));
    assert_eq!(inode("a/t1"), inode("sub/deep/t3"));
    assert_eq!(inode("a/h1"), inode("b/h2"));
    assert_eq!(inode("a/e1"), inode("b/e2"));
    let devs = |p: &Path| {
        sh(
            p,
            "stat -c '%n %F %t %T %a %u %g' dev/null dev/sda dev/initctl",
        )
    };
    assert_eq!(devs(&s), devs(&d));
    // And GNU cpio itself agrees on the listing of what we restored vs the source.
    let cpio_list = |p: &Path| {
        sh(p, "find rootimg | LC_ALL=C sort | cpio -H newc -o --quiet | cpio -it --quiet 2>/dev/null | LC_ALL=C sort")
    };
    assert_eq!(cpio_list(&src), cpio_list(&dst));
}

#[test]
fn crc_cpio_variant_is_checked() {
    let (tmp, src, dst) = setup();
    sh(
        &src,
        "mkdir rootimg && printf 'data' > rootimg/f && chmod 640 rootimg/f",
    );
    let archive = tmp.path().join("c.cpio");
    sh(
        &src,
        &format!(
            "find rootimg | cpio -H crc -o --quiet > {}",
            archive.display()
        ),
    );
    let mut bytes = fs::read(&archive).unwrap();
    restore(
        &bytes[..],
        &dst.join("rootimg"),
        b"rootimg",
        &RestoreOptions::default(),
    )
    .unwrap();
    assert_eq!(
        rsync_diff(&src.join("rootimg"), &dst.join("rootimg"), "-aHn"),
        ""
    );
    // Flip one data byte: the checksum must catch it.
    let pos = bytes.windows(4).position(|w| w == b"data").unwrap();
    bytes[pos] = b'D';
    let dst2 = tmp.path().join("dst2");
    fs::create_dir(&dst2).unwrap();
    let err = restore(&bytes[..], &dst2, b"rootimg", &RestoreOptions::default()).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
}

// ------------------------------------------------------------------------------
// Hostile archives

/// Writes a tar with python's tarfile from a list of (name, type, linkname, size,
/// actual data) tuples given as python literals.
fn python_tar(path: &Path, members: &str) {
    let script = format!(
        r#"
import tarfile, io
t = tarfile.open({path:?}, 'w', format=tarfile.PAX_FORMAT)
for name, typ, link, data in [{members}]:
    ti = tarfile.TarInfo(name)
    ti.type = typ
    ti.linkname = link
    ti.size = len(data) if typ == tarfile.REGTYPE else 0
    if typ in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        ti.devmajor, ti.devminor = 1, 3
    t.addfile(ti, io.BytesIO(data) if typ == tarfile.REGTYPE else None)
t.close()
"#,
        path = path.display().to_string()
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Hostile {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    dest: PathBuf,
    canary: PathBuf,
}

fn hostile() -> Hostile {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let dest = root.join("dest");
    let canary = root.join("canary");
    fs::create_dir(&dest).unwrap();
    fs::create_dir(&canary).unwrap();
    fs::write(canary.join("secret"), "s").unwrap();
    Hostile {
        _tmp: tmp,
        root,
        dest,
        canary,
    }
}

impl Hostile {
    /// Restores `archive` sequentially and with 4 workers, each into a fresh `dest`;
    /// both must refuse it with the same error, leaving nothing outside `dest`.
    fn run(&self, archive: &[u8]) -> TreeError {
        let mut errors = Vec::new();
        for threads in [1, 4] {
            fs::remove_dir_all(&self.dest).unwrap();
            fs::create_dir(&self.dest).unwrap();
            let err = restore(archive, &self.dest, b"rootimg", &threads_opts(threads))
                .expect_err("hostile archive must be refused");
            self.assert_nothing_outside();
            errors.push(err);
        }
        let second = errors.pop().unwrap();
        let first = errors.pop().unwrap();
        assert_eq!(first.to_string(), second.to_string(), "threads 1 vs 4");
        first
    }

    /// Only `dest`, `canary` (unchanged) and the archive file exist in the tempdir.
    fn assert_nothing_outside(&self) {
        let mut names: Vec<String> = fs::read_dir(&self.root)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".tar") && !n.ends_with(".cpio"))
            .collect();
        names.sort();
        assert_eq!(names, ["canary", "dest"]);
        let mut c: Vec<String> = fs::read_dir(&self.canary)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        c.sort();
        assert_eq!(c, ["secret"]);
        assert_eq!(fs::read(self.canary.join("secret")).unwrap(), b"s");
        assert!(!Path::new("/etc/evil").exists());
    }

    fn tar(&self, members: &str) -> Vec<u8> {
        let p = self.root.join("h.tar");
        python_tar(&p, members);
        fs::read(&p).unwrap()
    }
}

fn threads_opts(threads: usize) -> RestoreOptions {
    RestoreOptions {
        threads,
        ..RestoreOptions::default()
    }
}

fn assert_unsafe(err: TreeError, needle: &str) {
    let msg = err.to_string();
    assert!(matches!(err, TreeError::Unsafe { .. }), "not Unsafe: {msg}");
    assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
}

#[test]
fn refuses_dotdot_names() {
    let h = hostile();
    let a = h.tar(
        "('rootimg', tarfile.DIRTYPE, '', b''), ('rootimg/../evil', tarfile.REGTYPE, '', b'x')",
    );
    assert_unsafe(h.run(&a), "'..'");
}

#[test]
fn refuses_absolute_names() {
    let h = hostile();
    let a =
        h.tar("('rootimg', tarfile.DIRTYPE, '', b''), ('/etc/evil', tarfile.REGTYPE, '', b'x')");
    assert_unsafe(h.run(&a), "absolute");
    let abs = format!("{}/evil", h.canary.display());
    let a = h.tar(&format!(
        "('rootimg', tarfile.DIRTYPE, '', b''), ({abs:?}, tarfile.REGTYPE, '', b'x')"
    ));
    assert_unsafe(h.run(&a), "absolute");
}

#[test]
fn refuses_names_outside_top() {
    let h = hostile();
    let a =
        h.tar("('rootimg', tarfile.DIRTYPE, '', b''), ('other/file', tarfile.REGTYPE, '', b'x')");
    assert_unsafe(h.run(&a), "outside rootimg/");
    let a = h.tar("('rootimgX/file', tarfile.REGTYPE, '', b'x')");
    assert_unsafe(h.run(&a), "outside rootimg/");
}

#[test]
fn refuses_writing_through_archive_symlink() {
    let h = hostile();
    let target = h.canary.display().to_string();
    let a = h.tar(&format!(
        "('rootimg', tarfile.DIRTYPE, '', b''), ('rootimg/x', tarfile.SYMTYPE, {target:?}, b''), \
         ('rootimg/x/f', tarfile.REGTYPE, '', b'pwned')"
    ));
    assert_unsafe(h.run(&a), "symlink");
    // Also a symlink to a directory further up, and a device below it.
    let a = h.tar(
        "('rootimg', tarfile.DIRTYPE, '', b''), ('rootimg/y', tarfile.SYMTYPE, '../../canary', b''), \
         ('rootimg/y/dev', tarfile.CHRTYPE, '', b'')",
    );
    assert_unsafe(h.run(&a), "symlink");
    // And a regular file used as a directory.
    let a = h.tar(
        "('rootimg', tarfile.DIRTYPE, '', b''), ('rootimg/f', tarfile.REGTYPE, '', b'x'), \
         ('rootimg/f/g', tarfile.REGTYPE, '', b'x')",
    );
    assert_unsafe(h.run(&a), "not a directory");
}

#[test]
fn refuses_hard_links_out_of_the_archive() {
    let h = hostile();
    for target in [
        "/etc/shadow",
        "../../etc/shadow",
        "rootimg/../../canary/secret",
        "rootimg/never",
    ] {
        let a = h.tar(&format!(
            "('rootimg', tarfile.DIRTYPE, '', b''), ('rootimg/h', tarfile.LNKTYPE, {target:?}, b'')"
        ));
        let err = h.run(&a);
        assert!(matches!(err, TreeError::Unsafe { .. }), "{target}: {err}");
        assert!(!h.dest.join("h").exists());
    }
    // A hard link to an earlier entry is fine.
    let a = h.tar(
        "('rootimg', tarfile.DIRTYPE, '', b''), ('rootimg/f', tarfile.REGTYPE, '', b'x'), \
         ('rootimg/h', tarfile.LNKTYPE, 'rootimg/f', b'')",
    );
    restore(&a[..], &h.dest, b"rootimg", &RestoreOptions::default()).unwrap();
    assert_eq!(fs::read(h.dest.join("h")).unwrap(), b"x");
}

#[test]
fn refuses_device_escaping() {
    let h = hostile();
    let a = h
        .tar("('rootimg', tarfile.DIRTYPE, '', b''), ('rootimg/../dev', tarfile.CHRTYPE, '', b'')");
    assert_unsafe(h.run(&a), "'..'");
}

#[test]
fn huge_claimed_size_with_truncated_stream_errors() {
    let h = hostile();
    // A pax header claiming 1 TiB, then 100 bytes and the end of the stream.
    let mut a = h.tar("('rootimg', tarfile.DIRTYPE, '', b'')");
    a.truncate(512); // keep the directory header, drop the end-of-archive blocks
    let p = h.root.join("big.tar");
    python_tar(&p, "('rootimg/big', tarfile.REGTYPE, '', b'')");
    let small = fs::read(&p).unwrap();
    let mut pax = String::new();
    let rec = "size=1099511627776\n";
    let len = rec.len() + 3; // "NN " prefix, two digits
    pax.push_str(&format!("{len} {rec}"));
    assert_eq!(pax.len(), len);
    let mut hdr = vec![0u8; 512];
    hdr[..10].copy_from_slice(b"PaxHeaders");
    hdr[100..107].copy_from_slice(b"0000644");
    hdr[124..135].copy_from_slice(format!("{:011o}", pax.len()).as_bytes());
    hdr[156] = b'x';
    hdr[257..263].copy_from_slice(b"ustar\0");
    hdr[263..265].copy_from_slice(b"00");
    hdr[148..156].copy_from_slice(b"        ");
    let sum: u32 = hdr.iter().map(|&b| u32::from(b)).sum();
    hdr[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    a.extend(&hdr);
    let mut p = pax.into_bytes();
    p.resize(512, 0);
    a.extend(&p);
    a.extend(&small[..512]); // the file's own ustar header (size 0, overridden)
    a.extend(vec![b'z'; 100]);
    let err = h.run(&a);
    let msg = err.to_string();
    assert!(matches!(err, TreeError::Format { .. }), "{msg}");
    assert!(
        msg.contains("rootimg/big") && msg.contains("truncated"),
        "{msg}"
    );
}

/// Hand-made cpio newc bytes.
fn newc(members: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut all: Vec<(&str, u32, &[u8])> = members.to_vec();
    all.push(("TRAILER!!!", 0, b""));
    for (i, (name, mode, data)) in all.iter().enumerate() {
        let hdr = format!(
            "070701{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}{:08x}",
            i + 1,
            mode,
            0,
            0,
            1,
            0,
            data.len(),
            0,
            0,
            0,
            0,
            name.len() + 1,
            0
        );
        out.extend(hdr.as_bytes());
        out.extend(name.as_bytes());
        out.push(0);
        while out.len() % 4 != 0 {
            out.push(0);
        }
        out.extend(*data);
        while out.len() % 4 != 0 {
            out.push(0);
        }
    }
    out
}

#[test]
fn cpio_hostile_names_and_symlink_parents() {
    let h = hostile();
    let a = newc(&[
        ("rootimg", 0o40755, b""),
        ("rootimg/../evil", 0o100644, b"x"),
    ]);
    assert_unsafe(h.run(&a), "'..'");
    let target = h.canary.display().to_string();
    let a = newc(&[
        ("rootimg", 0o40755, b""),
        ("rootimg/x", 0o120777, target.as_bytes()),
        ("rootimg/x/f", 0o100644, b"pwned"),
    ]);
    assert_unsafe(h.run(&a), "symlink");
    // A 4 GiB - 1 claim with 3 bytes behind it.
    let mut a = newc(&[("rootimg", 0o40755, b""), ("rootimg/big", 0o100644, b"abc")]);
    let pos = a.windows(11).position(|w| w == b"rootimg/big").unwrap() - 110;
    a[pos + 54..pos + 62].copy_from_slice(b"ffffffff");
    a.truncate(pos + 124 + 3);
    let err = h.run(&a);
    assert!(err.to_string().contains("rootimg/big"), "{err}");
}

#[test]
fn later_entry_replaces_earlier_one() {
    let h = hostile();
    // Also a file replaced by a directory, a directory (still empty) by a file, and
    // a file by a hard link to a file written just before.
    let a = h.tar(
        "('rootimg', tarfile.DIRTYPE, '', b''), ('rootimg/f', tarfile.REGTYPE, '', b'old'), \
         ('rootimg/f', tarfile.REGTYPE, '', b'new'), ('rootimg/l', tarfile.SYMTYPE, 'f', b''), \
         ('rootimg/l', tarfile.REGTYPE, '', b'file now'), ('rootimg/d', tarfile.DIRTYPE, '', b''), \
         ('rootimg/d', tarfile.DIRTYPE, '', b''), ('rootimg/g', tarfile.REGTYPE, '', b'g'), \
         ('rootimg/g', tarfile.DIRTYPE, '', b''), ('rootimg/e', tarfile.DIRTYPE, '', b''), \
         ('rootimg/e', tarfile.REGTYPE, '', b'e'), ('rootimg/big', tarfile.REGTYPE, '', b'b' * 3000000), \
         ('rootimg/f', tarfile.LNKTYPE, 'rootimg/big', b'')",
    );
    for threads in [1, 4] {
        fs::remove_dir_all(&h.dest).unwrap();
        fs::create_dir(&h.dest).unwrap();
        let stats = restore(Cursor::new(&a), &h.dest, b"rootimg", &threads_opts(threads)).unwrap();
        assert_eq!(stats.entries, 13);
        assert_eq!(fs::read(h.dest.join("f")).unwrap(), vec![b'b'; 3_000_000]);
        assert_eq!(fs::read(h.dest.join("l")).unwrap(), b"file now");
        assert!(h.dest.join("d").is_dir());
        assert!(h.dest.join("g").is_dir());
        assert_eq!(fs::read(h.dest.join("e")).unwrap(), b"e");
    }
}

#[test]
fn refuses_replacing_a_directory_that_files_were_written_into() {
    // With workers, d/f may not exist yet when `d` is replaced; the restore must
    // still refuse, as it does sequentially (where d is simply not empty).
    let h = hostile();
    let target = h.canary.display().to_string();
    for last in [
        format!("('rootimg/d', tarfile.SYMTYPE, {target:?}, b'')"),
        "('rootimg/d', tarfile.REGTYPE, '', b'x')".to_string(),
        "('rootimg/d', tarfile.FIFOTYPE, '', b'')".to_string(),
    ] {
        let a = h.tar(&format!(
            "('rootimg', tarfile.DIRTYPE, '', b''), ('rootimg/d', tarfile.DIRTYPE, '', b''), \
             ('rootimg/d/f', tarfile.REGTYPE, '', b'f' * 2000000), \
             ('rootimg/d/g', tarfile.REGTYPE, '', b'g'), {last}, \
             ('rootimg/d/pwned', tarfile.REGTYPE, '', b'pwned')"
        ));
        let err = h.run(&a);
        let msg = err.to_string();
        assert!(matches!(err, TreeError::UnsupportedInput { .. }), "{msg}");
        assert!(msg.contains("would replace a non-empty directory"), "{msg}");
    }
}

#[test]
fn gzip_corruption_and_early_errors_are_reported_without_hanging() {
    let h = hostile();
    // 12 MiB of incompressible data after a refused entry: the restore gives up
    // without reading the rest.
    let a = h.tar(
        "('rootimg', tarfile.DIRTYPE, '', b''), ('rootimg/../evil', tarfile.REGTYPE, '', b'x'), \
         ('rootimg/big', tarfile.REGTYPE, '', __import__('os').urandom(12 << 20))",
    );
    let gz = h.root.join("a.tar.gz");
    fs::write(h.root.join("a.tar"), &a).unwrap();
    sh(&h.root, "gzip -c a.tar > a.tar.gz");
    let err = restore_stream(
        fs::File::open(&gz).unwrap(),
        &h.dest,
        b"rootimg",
        &RestoreOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, TreeError::Unsafe { .. }), "{err}");
    fs::remove_file(&gz).unwrap();

    // A flipped byte in the gzip CRC trailer, after the tar end: still an error.
    let ok =
        h.tar("('rootimg', tarfile.DIRTYPE, '', b''), ('rootimg/f', tarfile.REGTYPE, '', b'data')");
    fs::write(h.root.join("ok.tar"), &ok).unwrap();
    let mut bytes = sh(&h.root, "gzip -c ok.tar");
    let n = bytes.len();
    bytes[n - 8] ^= 0xff;
    let err =
        restore_stream(&bytes[..], &h.dest, b"rootimg", &RestoreOptions::default()).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
    h.assert_nothing_outside();
}

// ------------------------------------------------------------------------------
// imgport member streams (FORMAT.md §2), parallel inflate and restore

/// A reader that is not `Send`, like the bundle's member reader.
struct NotSend<R> {
    inner: R,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl<R: Read> Read for NotSend<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.inner.read(buf)
    }
}

fn not_send<R: Read>(inner: R) -> NotSend<R> {
    NotSend {
        inner,
        _not_send: std::marker::PhantomData,
    }
}

/// Offsets of the tar stream where entries start (an entry's first header block,
/// its pax or GNU long-name header if it has one), and where the end blocks start.
fn entry_boundaries(tar: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut continues = false;
    while at + 512 <= tar.len() {
        let h = &tar[at..at + 512];
        if h.iter().all(|&b| b == 0) {
            out.push(at);
            break;
        }
        if !continues {
            out.push(at);
        }
        let field = &h[124..136];
        let size = if field[0] & 0x80 != 0 {
            field[1..]
                .iter()
                .fold(0u64, |v, &b| (v << 8) | u64::from(b))
        } else {
            let t = std::str::from_utf8(field).unwrap();
            u64::from_str_radix(t.trim_matches(|c| c == '\0' || c == ' '), 8).unwrap()
        } as usize;
        continues = matches!(h[156], b'x' | b'g' | b'L' | b'K');
        at += 512 + size.div_ceil(512) * 512;
    }
    out
}

/// Cuts `tar` into data members: at an entry boundary once `min` bytes gathered,
/// and anywhere once `max` gathered (splitting big files), then an index and a
/// footer member (their content does not matter to a restore). Returns the stream
/// and each data member's (offset, length).
fn members(tar: &[u8], min: usize, max: usize) -> (Vec<u8>, Vec<(usize, usize)>) {
    let bounds: std::collections::HashSet<usize> = entry_boundaries(tar).into_iter().collect();
    let mut cuts = vec![0];
    let mut last = 0;
    for pos in (512..tar.len()).step_by(512) {
        if (bounds.contains(&pos) && pos - last >= min) || pos - last >= max {
            cuts.push(pos);
            last = pos;
        }
    }
    cuts.push(tar.len());
    let mut c = gzip::compressor(6);
    let mut out = Vec::new();
    let mut spans = Vec::new();
    for w in cuts.windows(2) {
        let m = gzip::encode_data(&mut c, &tar[w[0]..w[1]]);
        spans.push((out.len(), m.len()));
        out.extend(m);
    }
    out.extend(gzip::encode_tagged(gzip::ID_INDEX, b"index bytes"));
    out.extend(gzip::encode_tagged(gzip::ID_FOOTER, &[0u8; 40]));
    (out, spans)
}

/// `build_tree` plus a file bigger than a worker job and a sparse file whose data
/// segments are too, so both travel in pieces.
fn build_big_tree(src: &Path) {
    build_tree(src, true, true);
    sh(
        src,
        "cd rootimg && head -c 3500000 /dev/urandom > bin/big && chmod 4755 bin/big\n\
         setcap cap_net_admin+ep bin/big\n\
         truncate -s 100M bigsparse\n\
         head -c 2500000 /dev/urandom | dd of=bigsparse bs=1M seek=10 conv=notrunc status=none\n\
         head -c 1500000 /dev/urandom | dd of=bigsparse bs=1M seek=60 conv=notrunc status=none\n\
         ln bin/big a/big-link\n\
         touch -d '2012-01-01' bin/big bigsparse . bin a",
    );
}

fn tar_of(src: &Path) -> Vec<u8> {
    let mut tar = Vec::new();
    write_tar(&src.join("rootimg"), &mut tar, &WriteOptions::default()).unwrap();
    tar
}

#[test]
fn imgport_members_restore_losslessly_with_any_thread_count() {
    let (tmp, src, _) = setup();
    build_big_tree(&src);
    let tar = tar_of(&src);
    let (stream, spans) = members(&tar, 4096, 256 * 1024);
    assert!(spans.len() > 30, "{} members", spans.len());
    // Plain gzip tools see exactly the tar.
    let mut plain = Vec::new();
    flate2::read::MultiGzDecoder::new(&stream[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, tar);
    let blocks = |d: &Path, f: &str| -> u64 {
        String::from_utf8_lossy(&sh(d, &format!("stat -c %b rootimg/{f}")))
            .trim()
            .parse()
            .unwrap()
    };
    for (i, threads) in [1, 4, 0, 2].into_iter().enumerate() {
        let dst = tmp.path().join(format!("dst{i}"));
        fs::create_dir_all(dst.join("rootimg")).unwrap();
        let stats = if threads == 2 {
            // A `Send` input takes the same parallel path.
            restore_stream(
                &stream[..],
                &dst.join("rootimg"),
                b"rootimg",
                &threads_opts(2),
            )
        } else {
            restore_stream(
                not_send(&stream[..]),
                &dst.join("rootimg"),
                b"rootimg",
                &threads_opts(threads),
            )
        }
        .unwrap_or_else(|e| panic!("threads {threads}: {e}"));
        assert!(stats.warnings.is_empty(), "{:?}", stats.warnings);
        check_full_fidelity(&src, &dst);
        let d = dst.join("rootimg");
        assert_eq!(
            sh(&d, "getcap bin/big"),
            b"bin/big cap_net_admin=ep\n",
            "threads {threads}"
        );
        assert_eq!(
            sh(&d, "stat -c %i bin/big"),
            sh(&d, "stat -c %i a/big-link")
        );
        assert!(sparse_blocks(&dst) < 256, "threads {threads}");
        // 4 MB of data in a 100 MiB file: holes kept.
        assert!(
            blocks(&dst, "bigsparse") < 8 * 1024 + 64,
            "threads {threads}"
        );
        assert_eq!(fs::metadata(d.join("bigsparse")).unwrap().len(), 100 << 20);
    }
    // The same tar, uncompressed, through restore_stream.
    let dst = tmp.path().join("plain");
    fs::create_dir_all(dst.join("rootimg")).unwrap();
    restore_stream(
        not_send(&tar[..]),
        &dst.join("rootimg"),
        b"rootimg",
        &threads_opts(4),
    )
    .unwrap();
    check_full_fidelity(&src, &dst);
}

#[test]
fn corrupt_member_is_named_and_leaves_a_removable_tree() {
    let (_tmp, src, _) = setup();
    build_big_tree(&src);
    let (mut stream, spans) = members(&tar_of(&src), 4096, 256 * 1024);
    let k = spans.len() / 2;
    let (off, len) = spans[k];
    stream[off + len / 2] ^= 0x40;
    for threads in [1, 4] {
        let h = hostile();
        let err = restore_stream(
            not_send(&stream[..]),
            &h.dest,
            b"rootimg",
            &threads_opts(threads),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(&format!("gzip member {k} (at byte {off} ")),
            "{err}"
        );
        h.assert_nothing_outside();
        // What the caller does on error: remove the staging directory, whole.
        fs::remove_dir_all(&h.dest).unwrap();
    }
}

#[test]
fn hostile_member_lengths_are_clear_errors() {
    let h = hostile();
    let tar = h.tar(
        "('rootimg', tarfile.DIRTYPE, '', b''), ('rootimg/a', tarfile.REGTYPE, '', b'a' * 100000), \
         ('rootimg/b', tarfile.REGTYPE, '', b'b' * 100000)",
    );
    let (good, spans) = members(&tar, 512, 50_000);
    assert!(spans.len() >= 4);
    let (off, len) = spans[2];
    let run = |bytes: &[u8]| -> String {
        fs::remove_dir_all(&h.dest).unwrap();
        fs::create_dir(&h.dest).unwrap();
        let err = restore_stream(not_send(bytes), &h.dest, b"rootimg", &threads_opts(4))
            .unwrap_err()
            .to_string();
        h.assert_nothing_outside();
        err
    };
    // IG length far beyond the 64 MiB limit.
    let mut bad = good.clone();
    bad[off + 16..off + 20].copy_from_slice(&u32::MAX.to_le_bytes());
    let err = run(&bad);
    assert!(
        err.contains("gzip member 2") && err.contains("out of bounds"),
        "{err}"
    );
    // ISIZE claiming 60 MiB of a member of a few hundred bytes.
    let mut bad = good.clone();
    bad[off + len - 4..off + len].copy_from_slice(&(60u32 << 20).to_le_bytes());
    let err = run(&bad);
    assert!(
        err.contains("gzip member 2") && err.contains("out of bounds"),
        "{err}"
    );
    // IG saying 64 MiB, and the stream ends: truncated, not a 64 MiB wait or buffer.
    let mut bad = good[..off + len].to_vec();
    bad[off + 16..off + 20].copy_from_slice(&(64u32 << 20).to_le_bytes());
    let err = run(&bad);
    assert!(
        err.contains("gzip member 2") && err.contains("truncated"),
        "{err}"
    );
    // Cut in the middle of a member.
    let err = run(&good[..off + len / 2]);
    assert!(err.contains("gzip member 2"), "{err}");
    // Garbage after the footer.
    let mut bad = good.clone();
    bad.extend_from_slice(b"not gzip at all");
    let err = run(&bad);
    assert!(err.contains("trailing garbage"), "{err}");
}

#[test]
fn xcat_newc_single_member_through_restore_stream() {
    let (tmp, src, _) = setup();
    build_tree(&src, false, false);
    let archive = tmp.path().join("rootimgtree.gz");
    sh(
        &src,
        &format!(
            "find rootimg | cpio -H newc -o --quiet | gzip > {}",
            archive.display()
        ),
    );
    let bytes = fs::read(&archive).unwrap();
    for threads in [1, 4] {
        let dst = tmp.path().join(format!("dst{threads}"));
        fs::create_dir_all(dst.join("rootimg")).unwrap();
        let stats = restore_stream(
            not_send(&bytes[..]),
            &dst.join("rootimg"),
            b"rootimg",
            &threads_opts(threads),
        )
        .unwrap();
        assert!(stats.warnings.is_empty(), "{:?}", stats.warnings);
        assert_eq!(
            rsync_diff(&src.join("rootimg"), &dst.join("rootimg"), "-aHn"),
            ""
        );
    }
}

/// Makes a benchmark archive: `IMGPORT_BENCH_SRC=dir IMGPORT_BENCH_OUT=prefix cargo
/// test --release --test tree_restore make_bench -- --ignored` writes `prefix.tar`
/// (our pax tar of `dir`) and `prefix.members.gz` (cut into ~1 MiB members at entry
/// boundaries, files split every 4 MiB, as FORMAT.md §2 places them).
#[test]
#[ignore]
fn make_bench_archive() {
    let (Ok(src), Ok(out)) = (
        std::env::var("IMGPORT_BENCH_SRC"),
        std::env::var("IMGPORT_BENCH_OUT"),
    ) else {
        eprintln!("set IMGPORT_BENCH_SRC and IMGPORT_BENCH_OUT");
        return;
    };
    let mut tar = Vec::new();
    write_tar(Path::new(&src), &mut tar, &WriteOptions::default()).unwrap();
    fs::write(format!("{out}.tar"), &tar).unwrap();
    let (stream, spans) = members(&tar, 1 << 20, 4 << 20);
    fs::write(format!("{out}.members.gz"), &stream).unwrap();
    eprintln!(
        "{} tar bytes, {} members, {} compressed",
        tar.len(),
        spans.len(),
        stream.len()
    );
}

/// Throughput probe for [`restore_stream`]: `IMGPORT_BENCH_ARCHIVE=x IMGPORT_BENCH_DEST=dir
/// [IMGPORT_BENCH_THREADS=n] cargo test --release --test tree_restore bench_restore_stream
/// -- --ignored --nocapture` (`dir` must exist and be empty).
#[test]
#[ignore]
fn bench_restore_stream() {
    let (Ok(archive), Ok(dest)) = (
        std::env::var("IMGPORT_BENCH_ARCHIVE"),
        std::env::var("IMGPORT_BENCH_DEST"),
    ) else {
        eprintln!("set IMGPORT_BENCH_ARCHIVE and IMGPORT_BENCH_DEST");
        return;
    };
    let threads = std::env::var("IMGPORT_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let start = std::time::Instant::now();
    let f = not_send(fs::File::open(&archive).unwrap());
    let stats = restore_stream(f, Path::new(&dest), b"rootimg", &threads_opts(threads)).unwrap();
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "restored {} entries, {} bytes in {secs:.3} s ({:.0} MB/s of data), {} warnings",
        stats.entries,
        stats.bytes,
        stats.bytes as f64 / secs / 1e6,
        stats.warnings.len()
    );
}

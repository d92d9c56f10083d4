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

use imgport::tree::internals::gzip;
use imgport::tree::internals::gzip_trailer::read_gzip_index;
use imgport::tree::{write_tar, write_tree, Index, IndexEntry, Kind, TreeStats, WriteOptions};

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
    stats: TreeStats,
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
        warnings: stats.warnings.clone(),
        sockets: stats.sockets_skipped,
        stats,
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
    // Nor does the number of compression threads change a byte.
    for threads in [1, 4] {
        let mut other = Vec::new();
        let opts = WriteOptions {
            threads,
            ..WriteOptions::default()
        };
        write_tree(&f.src, &mut other, &opts).unwrap();
        assert!(first == other, "{threads} threads give other bytes");
    }

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
    use imgport::tree::{walk, WalkOptions};

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootimg");
    fs::create_dir_all(root.join("proc")).unwrap();
    fs::write(root.join("zzz"), b"after the mount point").unwrap();
    sh(&format!("mount -t tmpfs imgport-test {}/proc", q(&root)));
    let _mount = Mount(root.join("proc"));
    fs::write(root.join("proc/inner"), b"other fs").unwrap();

    let names = |w: &imgport::tree::Walk| -> Vec<Vec<u8>> {
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

/// The stored bytes of `e`, inflating only the members the index says cover them.
fn stored_via_index(archive: &[u8], idx: &Index, e: &IndexEntry) -> Vec<u8> {
    let range = idx.members_covering(e.data_offset, e.stored);
    assert!(!range.is_empty() || e.stored == 0);
    let Some(first) = idx.members.get(range.start) else {
        return Vec::new();
    };
    let first_u = first.2;
    let mut tar = Vec::new();
    let mut d = libdeflater::Decompressor::new();
    for (m, c, _) in &idx.members[range] {
        let bytes = &archive[*c as usize..(*c + m.compressed) as usize];
        tar.extend(gzip::decode_data(&mut d, bytes).unwrap());
    }
    let at = (e.data_offset - first_u) as usize;
    tar[at..at + e.stored as usize].to_vec()
}

/// FORMAT.md §3.4: each member's BLAKE3 is that of its inflated bytes, computed
/// here independently of the writer.
fn assert_member_digests(archive: &[u8], idx: &Index) {
    let mut d = libdeflater::Decompressor::new();
    for (m, c, _) in &idx.members {
        let bytes = &archive[*c as usize..(*c + m.compressed) as usize];
        let tar = gzip::decode_data(&mut d, bytes).unwrap();
        assert_eq!(m.digest, Some(*blake3::hash(&tar).as_bytes()));
    }
}

/// What the archive should store for a file: its bytes, or its data segments.
fn stored_of(src: &Path, e: &IndexEntry) -> Vec<u8> {
    let bytes = fs::read(src).unwrap();
    match &e.sparse {
        None => bytes,
        Some(map) => map
            .iter()
            .flat_map(|&(o, l)| bytes[o as usize..(o + l) as usize].to_vec())
            .collect(),
    }
}

#[test]
fn the_index_lists_every_entry_and_finds_files_without_inflating_the_rest() {
    let f = fixture();
    let archive = fs::read(&f.archive).unwrap();
    let idx = read_gzip_index(
        imgport::tree::share_source(std::io::Cursor::new(archive.clone())),
        archive.len() as u64,
    )
    .unwrap();
    assert_eq!(idx.len(), f.stats.entries);
    assert_eq!(f.stats.index_entries, f.stats.entries);
    assert_eq!(idx.members.len() as u64, f.stats.members);
    // The member table tiles the data region and the tar stream exactly.
    let compressed: u64 = idx.members.iter().map(|(m, _, _)| m.compressed).sum();
    let uncompressed: u64 = idx.members.iter().map(|(m, _, _)| m.uncompressed).sum();
    assert_eq!(compressed, idx.data_end);
    assert_eq!(uncompressed, f.stats.bytes_in);
    let listed = sh(&format!("tar -tzf {} | wc -l", q(&f.archive)));
    assert_eq!(listed.trim().parse::<u64>().unwrap(), idx.len());

    let mut checked = 0;
    for e in idx.entries() {
        let e = e.unwrap();
        let path = String::from_utf8_lossy(&e.path).into_owned();
        let rel = path.strip_prefix("rootimg/").unwrap_or("");
        if ![
            "a/random",
            "a/sparse",
            "a/b/c/d/file",
            "a/empty",
            "a/xattrs",
        ]
        .contains(&rel)
        {
            continue;
        }
        assert_eq!(e.kind, Kind::File, "{rel}");
        let want = stored_of(&f.src.join(rel), &e);
        assert_eq!(e.stored, want.len() as u64, "{rel}");
        assert!(stored_via_index(&archive, &idx, &e) == want, "{rel} bytes");
        assert_eq!(e.digest, None, "{rel}: v2 keeps no per-file digest");
        checked += 1;
    }
    assert_eq!(checked, 5);
    assert_member_digests(&archive, &idx);
}

/// Deterministic text-like bytes: compressible about 3:1, like a root tree's mix.
fn text(n: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "lib", "usr", "share", "x86_64", "linux", "gnu", "the ", "and ", "config", "=", "\n", "\t",
        "0x", "error", "return ", "struct ",
    ];
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        out.extend_from_slice(WORDS[(s % 16) as usize].as_bytes());
        if s % 3 == 0 {
            out.extend_from_slice(format!("{:x}", (s >> 40) & 0xfff).as_bytes());
        }
    }
    out.truncate(n);
    out
}

#[test]
fn a_20_mib_file_is_split_into_at_least_5_members_and_read_back_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootimg");
    fs::create_dir_all(root.join("usr/lib")).unwrap();
    fs::write(root.join("usr/lib/aaa"), text(300_000, 1)).unwrap();
    fs::write(root.join("usr/lib/big"), text(20 << 20, 99)).unwrap();
    fs::write(root.join("usr/lib/zzz"), text(300_000, 2)).unwrap();
    let archive = tmp.path().join("tree.gz");
    let stats = write_tree(
        &root,
        fs::File::create(&archive).unwrap(),
        &WriteOptions::default(),
    )
    .unwrap();
    let bytes = fs::read(&archive).unwrap();
    let idx = read_gzip_index(
        imgport::tree::share_source(std::io::Cursor::new(bytes.clone())),
        bytes.len() as u64,
    )
    .unwrap();
    assert_eq!(idx.len(), stats.entries);
    let big = idx
        .entries()
        .map(|e| e.unwrap())
        .find(|e| e.path == b"rootimg/usr/lib/big")
        .unwrap();
    let covering = idx.members_covering(big.data_offset, big.stored);
    assert!(covering.len() >= 5, "20 MiB in {} members", covering.len());
    assert!(
        covering.len() < idx.members.len(),
        "the others are not needed"
    );
    let want = text(20 << 20, 99);
    assert!(stored_via_index(&bytes, &idx, &big) == want);
    assert_member_digests(&bytes, &idx);
    sh(&format!("gzip -t {}", q(&archive)));
}

/// Machine code and generated configuration text, the bulk of a root image: slices of
/// this test's own executable (real compiled code and debug info, the same on every
/// build machine's toolchain) and [`text`] files.
fn rootfs_like_tree(root: &Path) {
    let exe = fs::read(std::env::current_exe().unwrap()).unwrap();
    let mut at = 0usize;
    for i in 0..400u64 {
        let dir = root.join(format!("usr/lib/d{}", i % 20));
        fs::create_dir_all(&dir).unwrap();
        let len = 500 + (i as usize * 7919) % 24_000;
        if i % 4 == 3 {
            fs::write(dir.join(format!("conf{i}")), text(len, i)).unwrap();
        } else {
            if at + len > exe.len() {
                at = 0;
            }
            fs::write(dir.join(format!("bin{i}")), &exe[at..at + len]).unwrap();
            at += len;
        }
    }
}

#[test]
fn the_size_stays_within_half_a_percent_of_gzip_6_and_of_one_deflate_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootimg");
    rootfs_like_tree(&root);
    let archive = tmp.path().join("tree.gz");
    let stats = write_tree(
        &root,
        fs::File::create(&archive).unwrap(),
        &WriteOptions::default(),
    )
    .unwrap();
    let tar = tmp.path().join("tree.tar");
    write_tar(
        &root,
        fs::File::create(&tar).unwrap(),
        &WriteOptions::default(),
    )
    .unwrap();
    sh(&format!("gzip -dc {} | cmp - {}", q(&archive), q(&tar)));

    // The format's own cost (1 MiB members, index, footer) against one libdeflate
    // stream of the same tar at the same level: independent of the data's kind.
    let plain = fs::read(&tar).unwrap();
    let mut c = gzip::compressor(6);
    let mut one = vec![0u8; c.deflate_compress_bound(plain.len())];
    let one = c.deflate_compress(&plain, &mut one).unwrap() as u64 + 18;
    // Against what xCAT's `gzip -6` makes of the same tar. libdeflate's level 6 parses
    // differently from zlib's: smaller on machine code (−0.5 to −1.5 % on /usr/bin and
    // /usr/lib), larger on plain text (+1.2 % on /usr/include, single stream too).
    let gzip6: u64 = sh(&format!("gzip -6 -n -c {} | wc -c", q(&tar)))
        .trim()
        .parse()
        .unwrap();
    let whole = stats.bytes_out;
    let bytes = fs::read(&archive).unwrap();
    let data = read_gzip_index(
        imgport::tree::share_source(std::io::Cursor::new(bytes.clone())),
        whole,
    )
    .unwrap()
    .data_end;
    let pct = |a: u64, b: u64| (a as f64 / b as f64 - 1.0) * 100.0;
    eprintln!(
        "tar {} B, {} entries in {} members: members {data} B, one stream {one} B ({:+.3} %), \
         gzip -6 {gzip6} B ({:+.3} %); index + footer {} B ({:.1} B/entry), whole {whole} B \
         ({:+.3} % vs gzip -6)",
        stats.bytes_in,
        stats.entries,
        stats.members,
        pct(data, one),
        pct(data, gzip6),
        whole - data,
        (whole - data) as f64 / stats.entries as f64,
        pct(whole, gzip6),
    );
    assert!(
        stats.members >= 5,
        "a few MiB of tar in {} members",
        stats.members
    );
    assert!(
        pct(data, one) <= 0.5,
        "members {data} B vs one stream {one} B"
    );
    assert!(
        pct(data, gzip6) <= 0.5,
        "members {data} B vs gzip -6 {gzip6} B"
    );
    // v2: a 32-byte digest per member, a few bytes per entry (FORMAT.md §3.6).
    assert!(
        whole - data <= 8 * stats.entries + 64 * stats.members + 1024,
        "index of {} B for {} entries",
        whole - data,
        stats.entries
    );
}

/// Files in the memory test's tree.
const MEMORY_TEST_FILES: usize = 200_000;
/// Peak resident memory allowed for exporting it.
const MEMORY_LIMIT_KIB: u64 = 150 << 10;
/// Set (to the tree's path) in the child process that does the export.
const MEMORY_CHILD_ENV: &str = "IMGPORT_TREE_ENCODE_MEMORY_CHILD";

/// Peak resident set size of this process (VmHWM), KiB.
fn peak_rss_kib() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The child half of [`exporting_200k_files_stays_under_150_mib`]: exports the tree
/// named by the environment and prints its peak RSS. Ignored when run directly.
#[test]
#[ignore = "run as a child process by exporting_200k_files_stays_under_150_mib"]
fn memory_child() {
    let Ok(tree) = std::env::var(MEMORY_CHILD_ENV) else {
        return;
    };
    let tree = PathBuf::from(tree);
    let out = fs::File::create(tree.with_extension("gz")).unwrap();
    let before = peak_rss_kib();
    let stats = write_tree(
        &tree,
        std::io::BufWriter::new(out),
        &WriteOptions::default(),
    )
    .unwrap();
    println!(
        "entries={} members={} before_kib={before} peak_kib={}",
        stats.entries,
        stats.members,
        peak_rss_kib()
    );
}

/// Memory must not grow with the tree: 200 000 small files (what a walk that collects
/// everything would hold at ~60 MB, plus the old encoder's output) are exported by a
/// child process whose peak RSS must stay under 150 MiB. Measured: 36 MiB peak.
///
/// Ignored by default because it takes about 2.5 minutes on the build machines, almost
/// all of it creating the 200 000 files (ext4 here creates ~2 700 files/s); the export
/// itself takes ~23 s in a debug build. Run it with
/// `cargo test --test tree_encode -- --ignored exporting_200k`.
#[test]
#[ignore = "slow (~2.5 min, mostly creating 200k files); run with --ignored"]
fn exporting_200k_files_stays_under_150_mib() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rootimg");
    for d in 0..(MEMORY_TEST_FILES / 1000) {
        let dir = root.join(format!("usr/share/pkg{d:03}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..1000 {
            fs::write(dir.join(format!("file-{f:04}.conf")), format!("{d} {f}\n")).unwrap();
        }
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "memory_child",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(MEMORY_CHILD_ENV, &root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // With --nocapture the report follows "test memory_child ... " on its line.
    let report = stdout
        .lines()
        .find_map(|l| l.find("entries=").map(|at| &l[at..]))
        .unwrap_or_else(|| panic!("no report in {stdout}"));
    eprintln!("{report}");
    let field = |k: &str| -> u64 {
        report
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
            .unwrap()
            .parse()
            .unwrap()
    };
    // rootimg, usr, usr/share, the package directories, the files.
    assert_eq!(
        field("entries"),
        3 + (MEMORY_TEST_FILES / 1000 + MEMORY_TEST_FILES) as u64
    );
    assert!(
        field("peak_kib") < MEMORY_LIMIT_KIB,
        "peak RSS {} KiB",
        field("peak_kib")
    );
}

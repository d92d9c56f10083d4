//! The cpio newc encoder (`export --compat xcat`) checked against the real tools an
//! xCAT management node uses: the archive is restored exactly as xCAT's imgimport
//! does (`zcat rootimgtree.gz | cpio -idum` in a fresh directory) and compared with
//! rsync, stat and GNU cpio's own output for the same tree. Needs root (chown,
//! mknod, setcap) and `cpio`, `rsync`, `attr`, `libcap2-bin`.

mod common;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use common::sh;
use imgport::tree::{
    restore_stream, write_newc, write_newc_gz, CpioReader, EntryReader, Kind, NewcOptions,
    NewcStats, RestoreOptions, TreeError,
};

/// Fails early with a useful hint instead of an obscure shell error.
fn need_tools() {
    let missing =
        sh("for t in cpio rsync setfattr setcap; do command -v $t >/dev/null || echo $t; done");
    assert!(
        missing.is_empty(),
        "missing tools: {missing}(apt-get install -y cpio attr libcap2-bin rsync)"
    );
}

/// Builds `<parent>/rootimg` with every kind of entry newc can and cannot carry:
/// owners 1234:5678, setuid file, sticky dir, symlinks (one dangling), a 3-way hard
/// link across directories, an empty 2-way hard link, char and block devices, a FIFO,
/// a sparse file, a file with a capability and one with a user xattr.
fn build_tree(parent: &Path) -> PathBuf {
    let root = parent.join("rootimg");
    sh(&format!(
        "set -e; mkdir -p '{r}' && cd '{r}'
         mkdir -p etc bin dev a b tmp usr/sbin
         printf 'root:x:0:0::/root:/bin/sh\\n' > etc/passwd
         printf hello > bin/suid
         ln -s ../../bin/suid usr/sbin/sym
         ln -s /nonexistent/target dangling
         printf linkdata > a/l1 && ln a/l1 b/l2 && ln a/l1 l3
         : > a/e1 && ln a/e1 b/e2
         mknod dev/null c 1 3 && mknod dev/sda b 8 1 && mkfifo dev/fifo
         truncate -s 10M sparse && printf x | dd of=sparse bs=1 seek=5000000 conv=notrunc status=none
         printf ping > usr/sbin/ping
         printf u > ux
         chown -hR 1234:5678 .
         chmod 4755 bin/suid && chmod 1777 tmp
         setcap cap_net_raw+ep usr/sbin/ping
         setfattr -n user.x -v y ux
         find . -exec touch -h -d @1600000000 {{}} +
         touch -d @1650000000 a/l1 bin",
        r = root.display()
    ));
    let blocks = sh(&format!("stat -c %b '{}/sparse'", root.display()));
    assert!(
        blocks.trim().parse::<u64>().unwrap() < 10 << 10,
        "sparse file is not sparse on this file system"
    );
    root
}

/// A newc header plus its data, parsed by this test alone (independent of the crate's
/// decoder) so raw fields can be compared.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Hdr {
    name: String,
    ino: u32,
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u32,
    mtime: u32,
    rdev: (u32, u32),
    data: Vec<u8>,
}

/// Parses a whole newc archive, asserting the framing rules (magic, NUL-terminated
/// names, zero padding to 4, trailer, zeros to the end).
fn parse(a: &[u8]) -> Vec<Hdr> {
    let hex = |b: &[u8]| u32::from_str_radix(std::str::from_utf8(b).unwrap(), 16).unwrap();
    let mut pos = 0;
    let mut out = Vec::new();
    loop {
        let h = &a[pos..pos + 110];
        assert_eq!(&h[..6], b"070701", "magic at {pos}");
        let f: Vec<u32> = (0..13).map(|i| hex(&h[6 + i * 8..14 + i * 8])).collect();
        let namesize = f[11] as usize;
        let name = &a[pos + 110..pos + 110 + namesize];
        assert_eq!(name.last(), Some(&0), "name NUL-terminated");
        let name = String::from_utf8(name[..namesize - 1].to_vec()).unwrap();
        let mut p = pos + 110 + namesize;
        while p % 4 != 0 {
            assert_eq!(a[p], 0);
            p += 1;
        }
        let data = a[p..p + f[6] as usize].to_vec();
        p += f[6] as usize;
        while p % 4 != 0 {
            assert_eq!(a[p], 0);
            p += 1;
        }
        pos = p;
        if name == "TRAILER!!!" {
            assert!(a[pos..].iter().all(|&b| b == 0), "only zeros after trailer");
            assert_eq!(a.len() % 512, 0, "archive padded to 512 bytes");
            return out;
        }
        out.push(Hdr {
            name,
            ino: f[0],
            mode: f[1],
            uid: f[2],
            gid: f[3],
            nlink: f[4],
            mtime: f[5],
            rdev: (f[9], f[10]),
            data,
        });
    }
}

fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(gz)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn write_both(root: &Path) -> (Vec<u8>, Vec<u8>, NewcStats) {
    let mut plain = Vec::new();
    let s1 = write_newc(root, &mut plain, &NewcOptions::default()).unwrap();
    let mut gz = Vec::new();
    let s2 = write_newc_gz(root, &mut gz, &NewcOptions::default()).unwrap();
    assert_eq!(s1, s2);
    (plain, gz, s2)
}

/// Restores a gzip'd newc archive exactly as xCAT's imgimport does:
/// `mkdir -p <dir>; cd <dir>; zcat rootimgtree.gz | cpio -idum`.
fn xcat_restore(gz: &Path, dir: &Path) {
    sh(&format!(
        "mkdir -p '{d}' && cd '{d}' && zcat '{gz}' | cpio -idum 2>/dev/null",
        d = dir.display(),
        gz = gz.display()
    ));
}

/// `rsync -aHn --delete --numeric-ids --itemize-changes` from `src/` to `dst/` plus
/// `flags`: one line per difference in data, type, mode, owner, time or hard links.
fn itemize(src: &Path, dst: &Path, flags: &str) -> String {
    sh(&format!(
        "rsync -aHn {flags} --delete --numeric-ids --itemize-changes '{}/' '{}/'",
        src.display(),
        dst.display()
    ))
}

fn lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_owned).collect();
    v.sort();
    v
}

#[test]
fn real_cpio_restores_the_tree_as_xcat_imgimport_does() {
    need_tools();
    let t = tempfile::tempdir().unwrap();
    let src = build_tree(t.path());
    let (plain, gz, stats) = write_both(&src);
    let (tgz, tcpio) = (t.path().join("t.gz"), t.path().join("t.cpio"));
    fs::write(&tgz, &gz).unwrap();
    fs::write(&tcpio, &plain).unwrap();
    assert_eq!(gunzip(&gz), plain, "gzip holds exactly the plain archive");
    assert_eq!(stats.bytes, plain.len() as u64);

    let d = t.path().join("D");
    xcat_restore(&tgz, &d);
    // No -A/-X: newc carries neither. --delete also itemizes extra files in D.
    // -O -J: GNU cpio -idum never restores the mtimes of symlinks, nor of
    // directories that get entries after them (checked below against GNU cpio's own
    // archive); everything else must be identical.
    assert_eq!(
        itemize(&src, &d.join("rootimg"), "-OJ"),
        "",
        "restored tree differs"
    );

    // With all times compared, the only differences are exactly those of the archive
    // GNU cpio itself writes, as xCAT's imgexport makes it, restored the same way.
    let gnu_gz = t.path().join("gnu.gz");
    sh(&format!(
        "cd '{}' && find rootimg | cpio -H newc -o 2>/dev/null | gzip -c > '{}'",
        t.path().display(),
        gnu_gz.display()
    ));
    let gnu_d = t.path().join("G");
    xcat_restore(&gnu_gz, &gnu_d);
    let ours_full = itemize(&src, &d.join("rootimg"), "");
    let gnu_full = itemize(&src, &gnu_d.join("rootimg"), "");
    assert_eq!(
        ours_full, gnu_full,
        "restores differently from GNU cpio's archive"
    );
    assert!(
        ours_full
            .lines()
            .all(|l| l.starts_with(".d..t.") || l.starts_with(".L..t.")),
        "{ours_full}"
    );

    let dst = d.join("rootimg");
    let stat = |fmt: &str, p: &str| sh(&format!("stat -c '{fmt}' '{}/{p}'", dst.display()));
    assert_eq!(stat("%t %T", "dev/null"), "1 3\n");
    assert_eq!(stat("%t %T", "dev/sda"), "8 1\n");
    assert_eq!(stat("%F", "dev/fifo"), "fifo\n");
    for group in [&["a/l1", "b/l2", "l3"][..], &["a/e1", "b/e2"]] {
        let inos: Vec<String> = group.iter().map(|p| stat("%i %h", p)).collect();
        assert!(inos.iter().all(|i| i == &inos[0]), "{group:?}: {inos:?}");
        assert!(inos[0].ends_with(&format!(" {}\n", group.len())));
    }
    for p in ["a/l1", "b/l2", "l3"] {
        assert_eq!(fs::read(dst.join(p)).unwrap(), b"linkdata");
    }
    assert_eq!(stat("%a %u:%g", "bin/suid"), "4755 1234:5678\n");
    assert_eq!(stat("%a", "tmp"), "1777\n");
    assert_eq!(
        fs::read_link(dst.join("dangling")).unwrap(),
        Path::new("/nonexistent/target")
    );
    // What newc loses, as documented: the capability is gone after the restore.
    assert_eq!(sh(&format!("getcap '{}/usr/sbin/ping'", dst.display())), "");

    // `cpio -itv` lists `rootimg` first; names are relative, without `./`.
    let listing = sh(&format!("cpio -itv < '{}' 2>/dev/null", tcpio.display()));
    let first = listing.lines().next().unwrap();
    assert!(
        first.starts_with("drwxr-xr-x") && first.ends_with(" rootimg"),
        "{first}"
    );
    // Same names as xCAT's `find rootimg`, as a set: find lists in readdir order,
    // the encoder in sorted walk order.
    let ours = sh(&format!("zcat '{}' | cpio -t 2>/dev/null", tgz.display()));
    let find = sh(&format!("cd '{}' && find rootimg", t.path().display()));
    assert_eq!(lines(&ours), lines(&find));
    assert!(ours
        .lines()
        .all(|l| l == "rootimg" || l.starts_with("rootimg/")));

    // The statistics name what `--compat xcat` lost.
    assert_eq!(stats.entries, find.lines().count() as u64);
    assert_eq!(
        stats.dropped_xattr_names.get("security.capability"),
        Some(&1)
    );
    assert_eq!(stats.dropped_xattr_names.get("user.x"), Some(&1));
    assert_eq!(
        stats.dropped_xattrs,
        stats.dropped_xattr_names.values().sum::<u64>()
    );
    assert_eq!(stats.sparse_expanded, 1);
    assert_eq!(stats.sockets_skipped, 0);
    assert!(stats.warnings.is_empty(), "{:?}", stats.warnings);
}

#[test]
fn headers_match_what_gnu_cpio_writes_for_the_same_tree() {
    need_tools();
    let t = tempfile::tempdir().unwrap();
    let src = build_tree(t.path());
    let (plain, _, _) = write_both(&src);
    let ours = parse(&plain);
    let theirs_raw = t.path().join("gnu.cpio");
    sh(&format!(
        "cd '{}' && find rootimg | cpio -H newc -o > '{}' 2>/dev/null",
        t.path().display(),
        theirs_raw.display()
    ));
    let theirs = parse(&fs::read(&theirs_raw).unwrap());
    assert_eq!(
        plain.len(),
        fs::read(&theirs_raw).unwrap().len(),
        "same archive length"
    );
    assert_eq!(ours[0].name, "rootimg");
    assert_eq!(ours.len(), theirs.len());

    let by_name = |v: &[Hdr]| -> std::collections::BTreeMap<String, Hdr> {
        v.iter().map(|h| (h.name.clone(), h.clone())).collect()
    };
    let (o, g) = (by_name(&ours), by_name(&theirs));
    assert_eq!(o.keys().collect::<Vec<_>>(), g.keys().collect::<Vec<_>>());
    for (name, a) in &o {
        let b = &g[name];
        // Everything but the inode number (renumbered) and, for hard links, which
        // member carries the data (the last one in each archive's own order).
        let strip = |h: &Hdr| (h.mode, h.uid, h.gid, h.nlink, h.mtime, h.rdev);
        assert_eq!(strip(a), strip(b), "{name}");
        if a.nlink == 1 || a.mode & 0o170000 == 0o040000 {
            assert_eq!(a.data, b.data, "{name}");
        }
        // Same hard-link partition: two names share an inode in one iff in the other.
        for (name2, a2) in &o {
            assert_eq!(a.ino == a2.ino, b.ino == g[name2].ino, "{name} vs {name2}");
        }
    }
    // Within each link group exactly the last member (archive order) has the data.
    for arch in [&ours, &theirs] {
        for (i, h) in arch.iter().enumerate() {
            if h.nlink > 1 && h.mode & 0o170000 == 0o100000 {
                let later = arch[i + 1..].iter().any(|x| x.ino == h.ino);
                let content = fs::read(t.path().join(&h.name)).unwrap();
                let want: &[u8] = if later { b"" } else { &content };
                assert_eq!(h.data, want, "{}", h.name);
            }
        }
    }
}

#[test]
fn byte_identical_to_gnu_cpio_without_hard_links() {
    // With inodes renumbered and device numbers zeroed on both sides
    // (`--renumber-inodes --ignore-devno`) and the same name list, only the first
    // inode number differs: GNU counts from 0, we from 1.
    need_tools();
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("rootimg");
    sh(&format!(
        "set -e; mkdir -p '{r}' && cd '{r}'
         mkdir -p d dd/e
         printf 1 > a && printf 12 > ab && printf 123 > abc && printf 1234 > abcd
         : > empty && ln -s abc s && mknod c c 4 64 && mkfifo p
         chmod 2750 dd && chown 7:8 a
         find . -exec touch -h -d @1234567890 {{}} +",
        r = root.display()
    ));
    let mut ours = Vec::new();
    write_newc(&root, &mut ours, &NewcOptions::default()).unwrap();
    let list: String = parse(&ours)
        .iter()
        .map(|h| format!("{}\n", h.name))
        .collect();
    fs::write(t.path().join("list"), &list).unwrap();
    sh(&format!(
        "cd '{p}' && cpio -H newc -o --renumber-inodes --ignore-devno < list > gnu.cpio 2>/dev/null",
        p = t.path().display()
    ));
    let gnu = fs::read(t.path().join("gnu.cpio")).unwrap();
    assert_eq!(ours.len(), gnu.len());
    // Shift our inode numbers down by one, in place, then compare every byte.
    let mut shifted = ours.clone();
    let mut pos = 0;
    loop {
        let field = |b: &[u8], i: usize| {
            u32::from_str_radix(
                std::str::from_utf8(&b[pos + 6 + i * 8..pos + 14 + i * 8]).unwrap(),
                16,
            )
            .unwrap()
        };
        let (ino, size, namesize) = (field(&ours, 0), field(&ours, 6), field(&ours, 11));
        let name_end = pos + 110 + namesize as usize;
        let is_trailer = &ours[pos + 110..name_end - 1] == b"TRAILER!!!";
        if !is_trailer {
            shifted[pos + 6..pos + 14].copy_from_slice(format!("{:08X}", ino - 1).as_bytes());
        }
        pos = name_end.next_multiple_of(4);
        pos = (pos + size as usize).next_multiple_of(4);
        if is_trailer {
            break;
        }
    }
    assert!(
        shifted == gnu,
        "archives differ:\nours {:?}\ngnu  {:?}",
        String::from_utf8_lossy(&shifted),
        String::from_utf8_lossy(&gnu)
    );
}

#[test]
fn round_trip_through_the_own_decoder_and_restorer() {
    need_tools();
    let t = tempfile::tempdir().unwrap();
    let src = build_tree(t.path());
    let (plain, gz, _) = write_both(&src);

    // The restorer (format detected from the magic) recreates the same tree.
    let dest = t.path().join("restored");
    fs::create_dir(&dest).unwrap();
    restore_stream(gz.as_slice(), &dest, b"rootimg", &RestoreOptions::default()).unwrap();
    // Our restorer sets every time, symlinks and directories included.
    assert_eq!(itemize(&src, &dest, ""), "", "restored tree differs");

    // The decoder sees the link group as one file with the data plus links to it.
    let mut r = CpioReader::new(plain.as_slice());
    let mut seen = Vec::new();
    while let Some(e) = r.next_entry().unwrap() {
        let mut data = Vec::new();
        r.copy_data(&mut data).unwrap();
        seen.push((String::from_utf8(e.path.clone()).unwrap(), e, data));
    }
    assert!(r.take_warnings().is_empty());
    assert_eq!(seen[0].0, "rootimg");
    let get = |p: &str| seen.iter().find(|s| s.0 == p).unwrap();
    let group: Vec<_> = ["a/l1", "b/l2", "l3"]
        .iter()
        .map(|p| get(&format!("rootimg/{p}")))
        .collect();
    let files: Vec<_> = group.iter().filter(|s| s.1.kind == Kind::File).collect();
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].2, b"linkdata");
    for s in &group {
        if s.1.kind != Kind::File {
            assert_eq!(s.1.kind, Kind::HardLink(files[0].0.as_bytes().to_vec()));
        }
    }
    assert_eq!(
        get("rootimg/dev/sda").1.kind,
        Kind::BlockDevice { major: 8, minor: 1 }
    );
    let suid = &get("rootimg/bin/suid").1;
    assert_eq!((suid.mode, suid.uid, suid.gid), (0o4755, 1234, 5678));
    let sparse = get("rootimg/sparse");
    assert_eq!(sparse.2.len(), 10 << 20);
    assert_eq!(sparse.2[5_000_000], b'x');
    assert!(sparse.1.xattrs.is_empty() && sparse.1.sparse.is_none());
}

#[test]
fn files_of_4_gib_or_more_are_refused_before_writing() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("rootimg");
    fs::create_dir(&root).unwrap();
    fs::write(root.join("small"), b"x").unwrap();
    // Sparse: takes no disk space.
    fs::File::create(root.join("huge.img"))
        .unwrap()
        .set_len(5 << 30)
        .unwrap();
    let mut out = Vec::new();
    let err = write_newc_gz(&root, &mut out, &NewcOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, TreeError::Unsupported { .. }), "{err:?}");
    assert!(msg.contains("rootimg/huge.img"), "{msg}");
    assert!(msg.contains("4 GiB") && msg.contains("xCAT"), "{msg}");
    assert!(out.is_empty(), "nothing written before the refusal");
}

#[test]
fn out_of_range_mtimes_are_clamped_with_a_warning() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("rootimg");
    fs::create_dir(&root).unwrap();
    sh(&format!(
        "cd '{}' && touch old new && touch -d @-1000 old && touch -d @4294967400 new",
        root.display()
    ));
    let mut out = Vec::new();
    let stats = write_newc(&root, &mut out, &NewcOptions::default()).unwrap();
    let h = parse(&out);
    assert_eq!(h[1].name, "rootimg/new");
    assert_eq!(h[1].mtime, u32::MAX);
    assert_eq!(h[2].mtime, 0);
    assert_eq!(stats.warnings.len(), 2, "{:?}", stats.warnings);
    assert!(stats.warnings[0].contains("rootimg/new") && stats.warnings[0].contains("32-bit"));
    assert!(stats.warnings[1].contains("rootimg/old"));
}

#[test]
fn sockets_are_counted_and_left_out() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("rootimg");
    fs::create_dir(&root).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(root.join("sock")).unwrap();
    let mut out = Vec::new();
    let stats = write_newc(&root, &mut out, &NewcOptions::default()).unwrap();
    assert_eq!(stats.sockets_skipped, 1);
    assert_eq!(stats.entries, 1);
    assert!(stats.warnings.iter().any(|w| w.contains("rootimg/sock")));
    assert_eq!(parse(&out).len(), 1);
}

/// The gzip members of `gz`, walked by their `IG` length subfield (FORMAT.md §2.1).
/// Lengths of the data members (`IG`); what follows them must be the index (empty
/// `IX` members, FORMAT.md §2.2) ending with the 74-byte `IF` footer.
fn member_lengths(gz: &[u8]) -> Vec<usize> {
    let mut lens = Vec::new();
    let mut pos = 0;
    while pos < gz.len() && &gz[pos + 12..pos + 14] == b"IG" {
        let len = u32::from_le_bytes(gz[pos + 16..pos + 20].try_into().unwrap()) as usize;
        lens.push(len);
        pos += len;
    }
    assert_eq!(&gz[pos + 12..pos + 14], b"IX", "the index follows the data");
    let footer = &gz[gz.len() - 74..];
    assert_eq!(&footer[12..14], b"IF");
    assert_eq!(&footer[16..24], b"IMGPTRE2");
    assert_eq!(
        u64::from_le_bytes(footer[24..32].try_into().unwrap()) as usize,
        pos,
        "the footer says the index starts where the data members end"
    );
    lens
}

#[test]
fn members_are_the_same_for_any_thread_count() {
    need_tools();
    let t = tempfile::tempdir().unwrap();
    let src = build_tree(t.path());
    // Many small files: members are cut at entry boundaries past 1 MiB.
    let many = src.join("many");
    fs::create_dir(&many).unwrap();
    for i in 0..600 {
        let body: Vec<u8> = (0..4000u32).map(|j| (j * 31 + i * 7) as u8).collect();
        fs::write(many.join(format!("f{i:04}")), body).unwrap();
    }
    let mut plain = Vec::new();
    write_newc(&src, &mut plain, &NewcOptions::default()).unwrap();
    let gz_with = |threads| {
        let mut gz = Vec::new();
        let opts = NewcOptions {
            threads,
            ..NewcOptions::default()
        };
        write_newc_gz(&src, &mut gz, &opts).unwrap();
        gz
    };
    let one = gz_with(1);
    assert_eq!(one, gz_with(3), "output depends on the thread count");
    assert_eq!(gunzip(&one), plain);
    // The 10 MiB sparse file is cut inside its data, the small files between entries.
    let lens = member_lengths(&one);
    assert!(lens.len() >= 4, "{} members", lens.len());
    let (tgz, tcpio) = (t.path().join("t.gz"), t.path().join("t.cpio"));
    fs::write(&tgz, &one).unwrap();
    fs::write(&tcpio, &plain).unwrap();
    let (tgz, tcpio) = (tgz.display(), tcpio.display());
    assert_eq!(sh(&format!("gzip -t '{tgz}' && echo ok")), "ok\n");
    // zcat reads the members as one stream, the plain archive.
    assert_eq!(
        sh(&format!("zcat '{tgz}' | cmp - '{tcpio}' && echo same")),
        "same\n"
    );
}

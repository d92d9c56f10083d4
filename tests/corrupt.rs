//! Every corrupt input caught, with the right code (issue #11): damage in any bundle
//! member fails `verify` and `import` with exit 4 naming it, and an import of a
//! damaged bundle leaves the MN as it was. Runs the real binary on bundles the
//! exporter wrote and then broke by hand.

mod common;

use std::fs;
use std::path::Path;

use common::*;

/// For each non-empty payload file of `bundle`: its name, a bundle offset inside the
/// gzip member carrying it where inflating has reached the middle of its data (so a
/// flipped byte there damages it, and a cut there stops inside it).
fn payload_offsets(bundle: &Path) -> Vec<(String, usize)> {
    let code = r#"
import sys, tarfile, zlib
path = sys.argv[1]
f = open(path, 'rb').read()
members, off, u = [], 0, 0
while off < len(f):
    d = zlib.decompressobj(31)
    out = d.decompress(f[off:])
    used = len(f) - off - len(d.unused_data)
    members.append((off, used, u, len(out)))
    off += used
    u += len(out)
for m in tarfile.open(path):
    if not m.isfile() or m.size == 0:
        continue
    target = m.offset_data + m.size // 2
    off, used, u0, ulen = next(x for x in members if x[2] <= target < x[2] + x[3])
    d = zlib.decompressobj(31)
    got, c = 0, off
    while got <= target - u0:
        got += len(d.decompress(f[c:c + 1]))
        c += 1
    print(m.name + '\t' + str(c - 1))
"#;
    python(code, &[bundle.to_str().unwrap()])
        .lines()
        .map(|l| {
            let (name, at) = l.split_once('\t').unwrap();
            (name.to_string(), at.parse().unwrap())
        })
        .collect()
}

/// Every path under `root` with its size, to show an import changed nothing.
fn listing(root: &Path) -> String {
    sh(&format!(
        "cd {} && find . -printf '%p %s %m\\n' | sort",
        root.display()
    ))
}

#[test]
fn damage_in_every_member_fails_verify_and_import_naming_it() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&src, work.path(), &[]);
    let bytes = fs::read(&bundle).unwrap();
    let offsets = payload_offsets(&bundle);
    let names: Vec<&str> = offsets.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "manifest.xml",
        "kernel",
        "initrd-statelite.gz",
        "litefile.csv",
    ] {
        assert!(
            names.iter().any(|n| n.ends_with(want)),
            "sample has {want}: {names:?}"
        );
    }
    assert!(names.iter().any(|n| n.ends_with("rootimgtree.gz")));
    let target = Mn::empty();
    let before = listing(target.root());
    for (name, at) in &offsets {
        let base = name.rsplit('/').next().unwrap();
        let mut flipped = bytes.clone();
        flipped[*at] ^= 0x55;
        for (how, damaged) in [("flip", flipped), ("cut", bytes[..*at].to_vec())] {
            let bad = work.path().join("bad.tgz");
            fs::write(&bad, &damaged).unwrap();
            let out = imgport_verify(&bad);
            assert_eq!(out.status.code(), Some(4), "{how} {name}: {}", text(&out));
            assert!(
                stderr(&out).contains(base),
                "{how} {name}: verify names it: {}",
                text(&out)
            );
            let out = target.run(&["import", bad.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(4), "{how} {name}: {}", text(&out));
            assert_eq!(listing(target.root()), before, "{how} {name}: MN touched");
        }
    }
}

fn imgport_verify(bundle: &Path) -> std::process::Output {
    std::process::Command::new(bin())
        .args(["verify", bundle.to_str().unwrap()])
        .output()
        .unwrap()
}

/// A bundle made the way xCAT makes one (one gzip stream over the whole tar) is
/// checked whole: intact it verifies, and a cut or a flipped byte anywhere in it
/// exits 4.
#[test]
fn an_xcat_bundle_is_verified_whole() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&src, work.path(), &[]);
    let stage = work.path().join("s");
    fs::create_dir(&stage).unwrap();
    let xcat = work.path().join("xcat.tgz");
    sh(&format!(
        "cd {} && tar -xzf {} && tar -cf - . | gzip -6 > {}",
        stage.display(),
        bundle.display(),
        xcat.display()
    ));
    let out = imgport_verify(&xcat);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(stdout(&out).starts_with("OK:"), "{}", text(&out));
    let bytes = fs::read(&xcat).unwrap();
    for at in [bytes.len() / 3, bytes.len() / 2, bytes.len() - 6] {
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x55;
        for damaged in [flipped, bytes[..at].to_vec()] {
            let bad = work.path().join("bad.tgz");
            fs::write(&bad, &damaged).unwrap();
            let out = imgport_verify(&bad);
            assert_eq!(out.status.code(), Some(4), "at {at}: {}", text(&out));
            assert!(stderr(&out).contains("gzip member 0"), "{}", text(&out));
        }
    }
}

/// Cut at the start of the end-of-archive member (the tar ends without its marker)
/// or inside it: cut short, exit 4. (Cut after that member, the bundle is a valid tar.gz
/// without a footer, as one repacked with tar is: verify checks it as such.)
#[test]
fn a_bundle_cut_between_members_fails_verify() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&src, work.path(), &[]);
    let bytes = fs::read(&bundle).unwrap();
    // The footer is the last 62 bytes, the end marker's member the 30 before it.
    for cut in [bytes.len() - 62 - 30, bytes.len() - 62 - 15] {
        let bad = work.path().join("bad.tgz");
        fs::write(&bad, &bytes[..cut]).unwrap();
        let out = imgport_verify(&bad);
        assert_eq!(out.status.code(), Some(4), "cut at {cut}: {}", text(&out));
    }
    // A damaged footer is not taken for an xCAT bundle without one.
    let mut flipped = bytes.clone();
    let n = flipped.len();
    flipped[n - 40] ^= 0x41;
    let bad = work.path().join("bad.tgz");
    fs::write(&bad, &flipped).unwrap();
    let out = imgport_verify(&bad);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(stderr(&out).contains("footer"), "{}", text(&out));
}

/// Python building a tree archive of kind `argv[1]` into `argv[2]` (gzip'd): cpio
/// holding only a trailer (newc, crc), an empty tar, and the cpio dialects imgport
/// does not read (odc, old binary in both byte orders), each with one directory.
const HOSTILE_TREE: &str = r#"
import gzip, io, struct, sys, tarfile
def newc(magic, entries=()):
    out = b''
    for name, mode, data in list(entries) + [('TRAILER!!!', 0, b'')]:
        n = name.encode() + b'\0'
        h = magic + b''.join(b'%08X' % v for v in [0, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(n), 0])
        b = h + n
        b += b'\0' * ((4 - len(b) % 4) % 4)
        out += b + data + b'\0' * ((4 - len(data) % 4) % 4)
    return out
def odc(entries=()):
    out = b''
    for name, mode, data in list(entries) + [('TRAILER!!!', 0, b'')]:
        n = name.encode() + b'\0'
        out += b'070707' + b''.join(b'%06o' % v for v in [0, 0, mode, 0, 0, 1, 0])
        out += b'%011o' % 0 + b'%06o' % len(n) + b'%011o' % len(data) + n + data
    return out
def binary(endian, entries=()):
    out = b''
    for name, mode, data in list(entries) + [('TRAILER!!!', 0, b'')]:
        n = name.encode() + b'\0'
        h = struct.pack(endian + '13H', 0o070707, 0, 0, mode, 0, 0, 1, 0, 0, 0, len(n), len(data) >> 16, len(data) & 0xffff)
        b = h + n
        b += b'\0' * (len(b) % 2)
        out += b + data + b'\0' * (len(data) % 2)
    return out
def empty_tar():
    b = io.BytesIO()
    tarfile.open(fileobj=b, mode='w', format=tarfile.PAX_FORMAT).close()
    return b.getvalue()
def header(name, typeflag, size):
    h = bytearray(512)
    h[0:len(name)] = name
    for at, field in [(100, b'0000644'), (108, b'0000000'), (116, b'0000000'), (136, b'00000000000')]:
        h[at:at + len(field)] = field
    h[124:136] = b'%011o\0' % size
    h[148:156] = b' ' * 8
    h[156] = ord(typeflag)
    h[257:265] = b'ustar\x0000'
    h[148:156] = b'%06o\0 ' % sum(h)
    return bytes(h)
def huge_pax(typeflag):
    # A pax header claiming 4 GiB, holding one short record, before a valid tar.
    b = io.BytesIO()
    t = tarfile.open(fileobj=b, mode='w', format=tarfile.PAX_FORMAT)
    d = tarfile.TarInfo('rootimg')
    d.type = tarfile.DIRTYPE
    t.addfile(d)
    t.close()
    return header(b'pax_header', typeflag, 4 << 30) + b'9 a=bcd\n'.ljust(512, b'\0') + b.getvalue()
top = [('rootimg', 0o40755, b'')]
kinds = {
    'pax-global-4g': lambda: huge_pax('g'),
    'pax-4g': lambda: huge_pax('x'),
    'newc-trailer': lambda: newc(b'070701'),
    'crc-trailer': lambda: newc(b'070702'),
    'empty-tar': empty_tar,
    'odc': lambda: odc(top),
    'bin-le': lambda: binary('<', top),
    'bin-be': lambda: binary('>', top),
}
open(sys.argv[2], 'wb').write(gzip.compress(kinds[sys.argv[1]]()))
"#;

/// The sample bundle with its tree replaced by a hostile one of `kind`, repacked
/// with tar (so, as an xCAT bundle, without an index).
fn with_tree(bundle: &Path, work: &Path, kind: &str) -> std::path::PathBuf {
    let stage = work.join(format!("stage-{kind}"));
    fs::create_dir(&stage).unwrap();
    sh(&format!(
        "cd {} && tar -xzf {}",
        stage.display(),
        bundle.display()
    ));
    let tree = stage.join(IMG).join("rootimgtree.gz");
    python(HOSTILE_TREE, &[kind, tree.to_str().unwrap()]);
    let out = work.join(format!("{kind}.tgz"));
    sh(&format!(
        "cd {} && tar czf {} .",
        stage.display(),
        out.display()
    ));
    out
}

/// A tree with no entries never replaces a rootimg, cpio dialects imgport does not
/// read are refused by name, and a pax header (global or not) claiming 4 GiB is
/// refused before anything is allocated for it: exit 4, the MN (which already has
/// the image) as it was.
#[test]
fn empty_trees_and_other_cpio_dialects_are_refused() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&src, work.path(), &[]);
    let target = Mn::empty();
    let out = target.run(&["import", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let before = listing(target.root());
    for (kind, needle) in [
        ("newc-trailer", "holds no entries"),
        ("crc-trailer", "holds no entries"),
        ("empty-tar", "holds no entries"),
        ("odc", "old portable (odc, 070707) cpio"),
        ("bin-le", "old binary (little-endian) cpio"),
        ("bin-be", "old binary (big-endian) cpio"),
        ("pax-global-4g", "pax header of 4294967296 bytes exceeds"),
        ("pax-4g", "pax header of 4294967296 bytes exceeds"),
    ] {
        let bad = with_tree(&bundle, work.path(), kind);
        let out = target.run(&["import", bad.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(4), "{kind}: {}", text(&out));
        assert!(stderr(&out).contains(needle), "{kind}: {}", text(&out));
        assert_eq!(listing(target.root()), before, "{kind}: MN changed");
    }
}

/// The bundle's own tar starting with a pax header (global or per-file) that claims
/// 4 GiB: refused with exit 4 by import and verify, not read into memory.
#[test]
fn a_bundle_whose_pax_header_claims_4_gib_is_refused() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&src, work.path(), &[]);
    for typeflag in ["g", "x"] {
        let bad = work.path().join(format!("pax-{typeflag}.tgz"));
        let code = HOSTILE_TREE.split("top = [").next().unwrap().to_string()
            + "raw = gzip.decompress(open(sys.argv[1], 'rb').read())\n"
            + "pax = header(b'pax_header', sys.argv[2], 4 << 30) + b'9 a=bcd\\n'.ljust(512, b'\\0')\n"
            + "open(sys.argv[3], 'wb').write(gzip.compress(pax + raw))\n";
        python(
            &code,
            &[bundle.to_str().unwrap(), typeflag, bad.to_str().unwrap()],
        );
        let target = Mn::empty();
        let before = listing(target.root());
        let out = sh_out(&format!(
            "ulimit -v 2000000; {} --root {} import {}",
            bin().display(),
            target.root().display(),
            bad.display()
        ));
        assert_eq!(out.status.code(), Some(4), "{typeflag}: {}", text(&out));
        assert_eq!(listing(target.root()), before, "{typeflag}: MN changed");
        let out = sh_out(&format!(
            "ulimit -v 2000000; {} verify {}",
            bin().display(),
            bad.display()
        ));
        assert_eq!(out.status.code(), Some(4), "{typeflag}: {}", text(&out));
    }
}

/// Runs a shell command line; returns its output whatever its status.
fn sh_out(cmd: &str) -> std::process::Output {
    std::process::Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .output()
        .unwrap()
}

/// `ls`, `cat` and `verify` exit by the kind of failure (README's table): a damaged
/// index or member is a corrupt bundle (4), a path not in the tree does not exist
/// (3), a directory has no bytes to show and the restored tree of `verify --against`
/// failing to read is an I/O failure (1), differences are 5.
#[test]
fn browse_commands_exit_by_kind() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&src, work.path(), &[]);
    let b = bundle.to_str().unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(bin())
            .args(args)
            .output()
            .unwrap()
    };
    let code = |args: &[&str]| run(args).status.code();
    assert_eq!(code(&["cat", b, "etc/nope"]), Some(3));
    assert_eq!(code(&["cat", b, "etc"]), Some(1));
    assert_eq!(code(&["ls", b]), Some(0));

    // The tree's first index member starts with the index magic: break it.
    let bytes = fs::read(&bundle).unwrap();
    let ix = bytes
        .windows(14)
        .position(|w| w[..4] == [0x1f, 0x8b, 8, 4] && &w[12..14] == b"IX")
        .expect("index member");
    let mut bad_index = bytes.clone();
    bad_index[ix + 16] ^= 0xff;
    let bad = work.path().join("bad-index.tgz");
    fs::write(&bad, &bad_index).unwrap();
    let bad_s = bad.to_str().unwrap();
    for args in [vec!["ls", bad_s], vec!["cat", bad_s, "etc/passwd"]] {
        let out = run(&args);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {}", text(&out));
        assert!(stderr(&out).contains("index"), "{}", text(&out));
    }

    // A damaged data member: cat of a file in it is 4.
    let data = bytes
        .windows(14)
        .position(|w| w[..4] == [0x1f, 0x8b, 8, 4] && &w[12..14] == b"IG")
        .expect("tree data member");
    let mut bad_member = bytes.clone();
    bad_member[data + 200] ^= 0xff;
    fs::write(&bad, &bad_member).unwrap();
    assert_eq!(code(&["cat", bad_s, "etc/passwd"]), Some(4));

    // verify --against: an unreadable restored tree is 1 (run as nobody, who may
    // read the bundle but not a 0700 directory of the tree), a missing one too.
    let target = Mn::empty();
    let out = target.run(&["import", b]);
    assert!(out.status.success(), "{}", text(&out));
    let restored = target.path(&format!("{ROOTIMGDIR}/rootimg"));
    let r = restored.to_str().unwrap();
    let missing = work.path().join("nowhere");
    assert_eq!(
        code(&["verify", b, "--against", missing.to_str().unwrap()]),
        Some(1)
    );
    sh(&format!(
        "chmod 755 {} {} && chmod 644 {b} && chmod 700 {r}/etc",
        work.path().display(),
        target.root().display()
    ));
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(bin())
        .args(["verify", b, "--against", r])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("Permission denied"), "{}", text(&out));
    sh(&format!("chmod 755 {r}/etc"));
    fs::write(restored.join("etc/extra"), "x").unwrap();
    assert_eq!(code(&["verify", b, "--against", r]), Some(5));
}

//! The last gaps to xCAT's imgport.pm (issue #10, items 2-6), each checked through the
//! real binary, through the `imgexport`/`imgimport` names where the case is about xCAT.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

/// Runs the `imgimport` name on `mn` in `cwd`.
fn imgimport(mn: &Mn, cwd: &Path, args: &[&str]) -> Output {
    let (_d, imp) = alias("imgimport");
    Command::new(&imp)
        .args(args)
        .env("IMGPORT_ROOT", mn.root())
        .current_dir(cwd)
        .output()
        .expect("run imgimport")
}

#[test]
fn p_with_unknown_nodes_exits_1_and_still_defines_the_image() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let with_ps = export_sample(&src, work.path(), &["-p", "cn01"]);
    let target = Mn::empty();
    target.tabrestore(
        "nodelist",
        "#node,groups\n\"cn2\",\"all\"\n\"cn3\",\"all\"\n",
        false,
    );
    let name = with_ps.to_str().unwrap();

    let out = imgimport(&target, work.path(), &[name, "-p", "cn2,cn3,nosuch"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let lines = stdout(&out);
    assert_eq!(lines.matches("Adding postscripts.").count(), 1, "{lines}");
    assert!(lines.contains(&format!("Successfully imported the image {IMG}.")));
    assert!(
        stderr(&out).contains("The following nodes will be skipped because they are not in the nodelist table.\n  nosuch"),
        "{}",
        text(&out)
    );
    assert_eq!(
        target.sql("postscripts", "select node from postscripts order by node"),
        "cn2\ncn3\n"
    );
    // imgport's own name: the same exit code (an error line was printed).
    let again = Mn::empty();
    again.tabrestore("nodelist", "#node,groups\n\"cn2\",\"all\"\n", false);
    let out = again.run(&["import", name, "-p", "cn2,nosuch"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // --dry-run reports the nodes the same way and changes nothing.
    let dry = Mn::empty();
    let out = dry.run(&["import", name, "-p", "nosuch", "--dry-run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("The nodes nosuch are not defined in xCAT DB."));
    assert!(!stdout(&out).contains("Adding postscripts."));
    assert!(!dry.path(&format!("{ROOTIMGDIR}/kernel")).exists());

    // Only unknown nodes: the image is defined and placed, then the nodes reported.
    let only = Mn::empty();
    let out = imgimport(&only, work.path(), &[name, "-p", "nosuch"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("The nodes nosuch are not defined in xCAT DB."));
    assert!(
        !stdout(&out).contains("Successfully imported"),
        "{}",
        text(&out)
    );
    assert_eq!(
        only.sql("osimage", "select imagename from osimage"),
        format!("{IMG}\n")
    );
    assert!(only.path(&format!("{ROOTIMGDIR}/kernel")).exists());

    // A bundle without postscripts still says it adds them, once.
    let plain_dir = tempfile::tempdir().unwrap();
    let plain = export_sample(&src, plain_dir.path(), &[]);
    let t2 = Mn::empty();
    t2.tabrestore("nodelist", "#node,groups\n\"cn2\",\"all\"\n", false);
    let out = imgimport(&t2, work.path(), &[plain.to_str().unwrap(), "-p", "cn2"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stdout(&out).matches("Adding postscripts.").count(), 1);
}

/// Runs the `imgexport` name on `mn` in `cwd`.
fn imgexport(mn: &Mn, cwd: &Path, args: &[&str]) -> Output {
    let (_d, exp) = alias("imgexport");
    Command::new(&exp)
        .args(args)
        .env("IMGPORT_ROOT", mn.root())
        .current_dir(cwd)
        .output()
        .expect("run imgexport")
}

/// Changes the sample image's osimage row with SQL through python's sqlite3.
fn set_osimage(mn: &Mn, assignments: &str) {
    let db = mn.path("/etc/xcat/osimage.sqlite");
    python(
        "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\nc.execute(sys.argv[2])\nc.commit()",
        &[
            db.to_str().unwrap(),
            &format!("update osimage set {assignments} where imagename='{IMG}'"),
        ],
    );
}

#[test]
fn sysclone_export_off_s390x_is_refused_with_xcats_line() {
    let src = Mn::sample();
    set_osimage(&src, "provmethod='sysclone'");
    let work = tempfile::tempdir().unwrap();
    let out = imgexport(&src, work.path(), &[IMG]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains(
            "Error: [",
        ) && stderr(&out).contains(
            "]: Exporting images with 'provemethod' sysclone is not supported for osarch 'x86_64'\n"
        ),
        "{}",
        text(&out)
    );
    assert!(!work.path().join(format!("{IMG}.tgz")).exists());
    // Every failing rule has its line, as xCAT reports them all before stopping.
    set_osimage(&src, "provmethod='sysclone', profile=''");
    let out = imgexport(&src, work.path(), &[IMG]);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "The 'profile' field is not set for '{IMG}' in the osimage table."
        )),
        "{err}"
    );
    assert!(
        err.contains("is not supported for osarch 'x86_64'"),
        "{err}"
    );
}

/// Writes a bundle with python's tarfile: only the given members, in order, and no
/// directory entries (as tools other than xCAT's `tar czf .` make them). Content
/// `symlink:T` makes a symlink to T.
fn py_bundle(path: &Path, members: &[(&str, &str, u32)]) {
    let modes: Vec<String> = members.iter().map(|m| m.2.to_string()).collect();
    let mut args = vec![path.to_str().unwrap()];
    for ((name, content, _), mode) in members.iter().zip(&modes) {
        args.extend([*name, mode.as_str(), *content]);
    }
    python(
        "import io,sys,tarfile\nt=tarfile.open(sys.argv[1],'w:gz')\na=sys.argv[2:]\nfor k in range(0,len(a),3):\n data=a[k+2].encode()\n i=tarfile.TarInfo(a[k])\n i.mode=int(a[k+1])\n if a[k+2].startswith('symlink:'):\n  i.type=tarfile.SYMTYPE\n  i.linkname=a[k+2][8:]\n  t.addfile(i)\n  continue\n i.size=len(data)\n t.addfile(i,io.BytesIO(data))\nt.close()",
        &args,
    );
}

const KDIR: &str = "/install/netboot/rhels8/x86_64/compute";

/// A netboot manifest with one kit (`mykit-1.0` in `/install/kits`) and `extra`.
fn kit_manifest(extra: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<xcatimage>\n{extra}  <kernel>{KDIR}/kernel</kernel>\n  <kit>\n    <name>mykit-1.0</name>\n    <kitdir>/install/kits/mykit-1.0</kitdir>\n    <kitname>mykit-1.0</kitname>\n  </kit>\n  <linuximage>\n    <imagename>kimg</imagename>\n    <rootimgdir>{KDIR}</rootimgdir>\n  </linuximage>\n  <osimage>\n    <imagename>kimg</imagename>\n    <osarch>x86_64</osarch>\n    <osvers>rhels8</osvers>\n    <profile>compute</profile>\n    <provmethod>netboot</provmethod>\n  </osimage>\n  <ramdisk>{KDIR}/initrd-stateless.gz</ramdisk>\n  <rootimg>{KDIR}/rootimg.gz</rootimg>\n</xcatimage>\n"
    )
}

fn kit_bundle(path: &Path) {
    let manifest = kit_manifest("");
    py_bundle(
        path,
        &[
            ("kimg/manifest.xml", &manifest, 0o644),
            ("kimg/kernel", "k", 0o644),
            ("kimg/initrd-stateless.gz", "i", 0o644),
            ("kimg/rootimg.gz", "r", 0o644),
            ("kimg/mykit-1.0/other_files/kitpost.sh", "echo post", 0o644),
            ("kimg/mykit-1.0/other_files/.hidden", "h", 0o644),
            ("kimg/mykit-1.0/other_files/mykit.exlist", "x", 0o644),
            ("kimg/mykit-1.0/other_files/mykit.ENV", "e", 0o644),
            (
                "kimg/mykit-1.0/other_files/link.sh",
                "symlink:/nonexistent/x",
                0o777,
            ),
            ("kimg/mykit-1.0/plugins/mykit_plugin.pm", "1;", 0o644),
            ("kimg/mykit-1.0/repos/r/a.rpm", "rpm", 0o644),
        ],
    )
}

/// A stand-in restart command at `mn_path` in `mn` that appends its call to
/// `<root>/restart.log`.
fn stand_in(mn: &Mn, mn_path: &str) {
    let p = mn.path(mn_path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let log = mn.path("/restart.log");
    std::fs::write(
        &p,
        format!("#!/bin/sh\necho \"$0 $*\" >> {}\n", log.display()),
    )
    .unwrap();
    sh(&format!("chmod 755 {}", p.display()));
}

/// A process named `xcatd` (a copy of sleep) whose pid is in the root's pid file.
struct FakeXcatd {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl FakeXcatd {
    fn start(mn: &Mn) -> FakeXcatd {
        let d = tempfile::tempdir().unwrap();
        let exe = d.path().join("xcatd");
        std::fs::copy("/bin/sleep", &exe).unwrap();
        let child = Command::new(&exe).arg("120").spawn().unwrap();
        let pidfile = mn.path("/var/run/xcatd.pid");
        std::fs::create_dir_all(pidfile.parent().unwrap()).unwrap();
        std::fs::write(&pidfile, format!("{}\n", child.id())).unwrap();
        FakeXcatd { child, _dir: d }
    }
}

impl Drop for FakeXcatd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn imgimport_plain_env(mn: &Mn, cwd: &Path, args: &[&str]) -> Output {
    let (_d, imp) = alias("imgimport");
    Command::new(&imp)
        .args(args)
        .env("IMGPORT_ROOT", mn.root())
        .env_remove("XCATROOT")
        .current_dir(cwd)
        .output()
        .expect("run imgimport")
}

fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn kit_postscripts_and_plugins_are_placed_and_a_running_xcatd_restarted() {
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("kit.tgz");
    kit_bundle(&bundle);
    let mn = Mn::empty();
    stand_in(&mn, "/opt/xcat/sbin/restartxcatd");
    let xcatd = FakeXcatd::start(&mn);

    // --dry-run lists the copies and the restart, and does neither.
    let out = mn.run_in(work.path(), &["import", "kit.tgz", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    let plan = stdout(&out);
    assert!(
        plan.contains("  create  /install/postscripts/kitpost.sh\n"),
        "{plan}"
    );
    assert!(
        plan.contains("  create  /opt/xcat/lib/perl/xCAT_plugin/mykit_plugin.pm\n"),
        "{plan}"
    );
    assert!(
        plan.contains("  restart xcatd, if it runs (kit plugins)\n"),
        "{plan}"
    );
    assert!(!mn.path("/restart.log").exists());

    let out = imgimport_plain_env(&mn, work.path(), &["kit.tgz"]);
    assert!(out.status.success(), "{}", text(&out));
    let post = mn.path("/install/postscripts/kitpost.sh");
    assert_eq!(std::fs::read_to_string(&post).unwrap(), "echo post");
    assert_eq!(mode_of(&post), 0o755);
    let mut names: Vec<String> = std::fs::read_dir(mn.path("/install/postscripts"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["kitpost.sh", "link.sh"],
        "dotfiles, *.exlist and *.env stay out"
    );
    // A symlink is copied as one (`cp -r`), never chmod'ed through.
    assert_eq!(
        std::fs::read_link(mn.path("/install/postscripts/link.sh")).unwrap(),
        Path::new("/nonexistent/x")
    );
    let plugin = mn.path("/opt/xcat/lib/perl/xCAT_plugin/mykit_plugin.pm");
    assert_eq!(std::fs::read_to_string(&plugin).unwrap(), "1;");
    // The kit directory itself is complete, its other_files included.
    for f in [
        "other_files/kitpost.sh",
        "other_files/.hidden",
        "plugins/mykit_plugin.pm",
        "repos/r/a.rpm",
    ] {
        assert!(
            mn.path(&format!("/install/kits/mykit-1.0/{f}")).exists(),
            "{f}"
        );
    }
    let log = std::fs::read_to_string(mn.path("/restart.log")).unwrap();
    assert_eq!(
        log,
        format!("{} \n", mn.path("/opt/xcat/sbin/restartxcatd").display())
    );
    let pid = xcatd.child.id();
    assert!(
        stdout(&out).contains(&format!(
            "Restarted xcatd (pid {pid}) with /opt/xcat/sbin/restartxcatd to load the new kit plugins."
        )),
        "{}",
        text(&out)
    );

    // Again: what was there is kept as .ORIG, like every placed file.
    std::fs::write(&post, "mine").unwrap();
    let out = imgimport_plain_env(&mn, work.path(), &["kit.tgz"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(mn.path("/install/postscripts/kitpost.sh.ORIG")).unwrap(),
        "mine"
    );
    assert!(mn
        .path("/opt/xcat/lib/perl/xCAT_plugin/mykit_plugin.pm.ORIG")
        .exists());
    assert_eq!(
        std::fs::read_to_string(mn.path("/restart.log"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    drop(xcatd);

    // No xcatd running: nothing restarted, and the output says so.
    let out = imgimport_plain_env(&mn, work.path(), &["kit.tgz"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("xcatd is not running"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read_to_string(mn.path("/restart.log"))
            .unwrap()
            .lines()
            .count(),
        2
    );
}

#[test]
fn older_xcat_restarts_through_the_init_script() {
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("kit.tgz");
    kit_bundle(&bundle);
    let mn = Mn::empty();
    stand_in(&mn, "/etc/init.d/xcatd");
    let _xcatd = FakeXcatd::start(&mn);
    let out = imgimport_plain_env(&mn, work.path(), &["kit.tgz"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(mn.path("/restart.log")).unwrap(),
        format!("{} restart\n", mn.path("/etc/init.d/xcatd").display())
    );
    assert!(stdout(&out).contains("with /etc/init.d/xcatd restart to load"));
}

#[test]
fn a_kit_file_that_cannot_be_placed_rolls_the_whole_image_back() {
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("kit.tgz");
    kit_bundle(&bundle);
    let mn = Mn::empty();
    stand_in(&mn, "/opt/xcat/sbin/restartxcatd");
    let _xcatd = FakeXcatd::start(&mn);
    // The plugin directory's place is taken by a file.
    std::fs::create_dir_all(mn.path("/opt/xcat/lib/perl")).unwrap();
    std::fs::write(mn.path("/opt/xcat/lib/perl/xCAT_plugin"), "not a dir").unwrap();
    let out = imgimport_plain_env(&mn, work.path(), &["kit.tgz"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        !mn.path("/install/postscripts/kitpost.sh").exists(),
        "{}",
        text(&out)
    );
    assert!(!mn.path("/install/kits/mykit-1.0").exists());
    assert!(!mn.path("/restart.log").exists(), "nothing restarted");
    assert!(!stdout(&out).contains("Successfully imported"));
}

#[test]
fn extra_directories_without_directory_members_import() {
    let work = tempfile::tempdir().unwrap();
    let bundle = work.path().join("py.tgz");
    let manifest = kit_manifest(
        "  <extra>\n    <dest>/tmp/test1</dest>\n    <src>/tmp/test1</src>\n  </extra>\n",
    )
    .replace("  <kit>\n    <name>mykit-1.0</name>\n    <kitdir>/install/kits/mykit-1.0</kitdir>\n    <kitname>mykit-1.0</kitname>\n  </kit>\n", "");
    py_bundle(
        &bundle,
        &[
            ("kimg/manifest.xml", &manifest, 0o644),
            ("kimg/kernel", "k", 0o644),
            ("kimg/initrd-stateless.gz", "i", 0o644),
            ("kimg/rootimg.gz", "r", 0o644),
            ("kimg/extra/tmp/test1/a.txt", "a", 0o644),
            // `sub-x` sorts between `sub` and `sub/b.txt`.
            ("kimg/extra/tmp/test1/sub-x", "x", 0o600),
            ("kimg/extra/tmp/test1/sub/b.txt", "b", 0o644),
        ],
    );
    let mn = Mn::empty();
    // --dry-run lists the same destinations.
    let out = mn.run_in(work.path(), &["import", "py.tgz", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    for f in ["/tmp/test1/a.txt", "/tmp/test1/sub-x", "/tmp/test1/sub"] {
        assert!(
            stdout(&out).contains(&format!("  create  {f}\n")),
            "{f}: {}",
            text(&out)
        );
    }
    let out = imgimport(&mn, work.path(), &["py.tgz"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(mn.path("/tmp/test1/a.txt")).unwrap(),
        "a"
    );
    assert_eq!(
        std::fs::read_to_string(mn.path("/tmp/test1/sub/b.txt")).unwrap(),
        "b"
    );
    assert_eq!(mode_of(&mn.path("/tmp/test1/sub-x")), 0o600);
    assert!(mn.path("/tmp/test1/sub").is_dir());
}

/// Drops the first five fields (mode, owner, size, date, time) of a `tar -tv` line.
fn after_five_fields(line: &[u8]) -> Vec<u8> {
    let mut rest = line;
    for _ in 0..5 {
        let start = rest.iter().position(|b| *b != b' ').unwrap_or(rest.len());
        rest = &rest[start..];
        let end = rest.iter().position(|b| *b == b' ').unwrap_or(rest.len());
        rest = &rest[end..];
    }
    rest.strip_prefix(b" ").unwrap_or(rest).to_vec()
}

fn odd_names_sample() -> Mn {
    let mn = Mn::sample();
    let rootimg = mn.path(&format!("{ROOTIMGDIR}/rootimg"));
    python(
        "import os,sys\nd=os.fsencode(sys.argv[1])+b'/etc/'\nfor n in [b'caf\\xe9-\\xff\\xfe', 'caf\\u00e9'.encode(), b'back\\\\slash', b'nl\\nx', b'tab\\tx', b'del\\x7fx', b'ctl\\x01x', b'a b']:\n open(d+n,'wb').write(b'data of '+n)\nos.symlink(b'\\xe9\\\\x', d+b'lnk\\xff')\nos.link(d+b'caf\\xe9-\\xff\\xfe', d+b'hard\\xfe')",
        &[rootimg.to_str().unwrap()],
    );
    mn
}

#[test]
fn names_that_are_not_utf8_list_like_gnu_tar_and_round_trip() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let mn = odd_names_sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&mn, work.path(), &[]);
    let b = bundle.to_str().unwrap();

    // `imgport ls` and GNU tar's own listing of the tree agree byte for byte.
    let ours = mn.run(&["ls", b]);
    assert!(ours.status.success(), "{}", text(&ours));
    let tree = work.path().join("tree.gz");
    sh(&format!(
        "tar xzf {b} -O ./{IMG}/rootimgtree.gz > {}",
        tree.display()
    ));
    let gnu = Command::new("tar")
        .args(["-tvzf", tree.to_str().unwrap()])
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap();
    assert!(gnu.status.success(), "{}", text(&gnu));
    let names = |out: &[u8]| -> Vec<Vec<u8>> {
        out.split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(after_five_fields)
            .collect()
    };
    assert_eq!(
        names(&ours.stdout),
        names(&gnu.stdout),
        "ours:\n{}\ngnu:\n{}",
        String::from_utf8_lossy(&ours.stdout),
        String::from_utf8_lossy(&gnu.stdout)
    );
    let listing = stdout(&ours);
    assert!(
        listing.contains(" rootimg/etc/caf\\351-\\377\\376\n"),
        "{listing}"
    );
    assert!(
        listing.contains(" rootimg/etc/lnk\\377 -> \\351\\\\x\n"),
        "{listing}"
    );

    // --json: every name back to its bytes, checked against the tree on disk.
    let json = mn.run(&["ls", b, "--json"]);
    assert!(json.status.success(), "{}", text(&json));
    let ls_json = work.path().join("ls.json");
    std::fs::write(&ls_json, &json.stdout).unwrap();
    let checked = python(
        "import base64,json,os,sys\nd=json.load(open(sys.argv[1]))\nbase=os.fsencode(sys.argv[2])\nn=0\nfor e in d['entries']:\n  raw=base64.b64decode(e['path_b64']) if 'path_b64' in e else e['path'].encode()\n  assert os.path.lexists(base+b'/'+raw), raw\n  if 'path_b64' in e: n+=1\n  if e['type']=='symlink':\n    t=base64.b64decode(e['target_b64']) if 'target_b64' in e else e['target'].encode()\n    assert os.readlink(base+b'/'+raw)==t, (raw,t)\nprint(n)",
        &[
            ls_json.to_str().unwrap(),
            mn.path(ROOTIMGDIR).to_str().unwrap(),
        ],
    );
    assert_eq!(checked.trim(), "3", "three names are not UTF-8");

    // `cat` takes the raw bytes as its path.
    let name = OsStr::from_bytes(b"etc/caf\xe9-\xff\xfe");
    let out = Command::new(bin())
        .arg("cat")
        .arg(&bundle)
        .arg(name)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(out.stdout, b"data of caf\xe9-\xff\xfe");
    let out = Command::new(bin())
        .arg("ls")
        .arg(&bundle)
        .arg(OsStr::from_bytes(b"rootimg/etc/lnk\xff"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(stdout(&out).lines().count(), 1, "{}", text(&out));
}

#[test]
fn a_multi_bundle_import_names_the_bundle_that_failed() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let good = export_sample(&src, work.path(), &[]);
    let bad = work.path().join("bad.tgz");
    // A gzip stream cut short: the bundle itself is unreadable.
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let target = Mn::empty();
    let out = target.run(&["import", good.to_str().unwrap(), bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    let lines = stdout(&out);
    assert!(
        lines.contains("Summary: 1 of 2 images imported, 1 failed.\n"),
        "{lines}"
    );
    assert!(
        lines.contains(&format!("  failed: {}\n", bad.display())),
        "{}",
        text(&out)
    );
    assert!(
        stderr(&out).contains(&format!("]: {}: ", bad.display())),
        "{}",
        text(&out)
    );
}

#[test]
fn every_subcommand_help_has_examples() {
    let out = Command::new(bin()).arg("--help").output().unwrap();
    let help = stdout(&out);
    let commands: Vec<&str> = help
        .split("Commands:\n")
        .nth(1)
        .unwrap()
        .lines()
        .take_while(|l| !l.is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .collect();
    assert!(commands.contains(&"tabdump") && commands.contains(&"tabrestore"));
    for c in commands {
        let out = Command::new(bin()).args([c, "--help"]).output().unwrap();
        assert!(out.status.success(), "{c}: {}", text(&out));
        assert!(
            stdout(&out).contains("\nExamples:\n  imgport "),
            "{c}: {}",
            stdout(&out)
        );
    }
}

#[test]
fn bundle_paths_that_are_not_utf8_are_taken_as_given() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let name = OsStr::from_bytes(b"caf\xe9.tgz");
    let out = Command::new(bin())
        .arg("--root")
        .arg(src.root())
        .args(["export", IMG])
        .arg(name)
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(work.path().join(name).is_file());
    let target = Mn::empty();
    let out = Command::new(bin())
        .arg("--root")
        .arg(target.root())
        .arg("import")
        .arg(name)
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let (_d, imp) = alias("imgimport");
    let again = Mn::empty();
    let out = Command::new(&imp)
        .arg(name)
        .env("IMGPORT_ROOT", again.root())
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains(&format!("Successfully imported the image {IMG}.")));
}

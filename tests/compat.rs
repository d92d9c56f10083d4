//! xCAT compatibility cases C1–C25 of `docs/XCAT.md` §12, each by name, run
//! against the real binary on scratch management nodes. Bundles are checked with GNU
//! tar, gzip and python's tarfile; tables with python's sqlite3.
//!
//! Every case runs on the three catalog backends with the same body: as its own test
//! on SQLite, and inside `on_postgres` / `on_mariadb`, which route the scratch MNs of
//! their thread to a private server (one database per MN, see `common::backends`). C23
//! is about the SQLite files; on the servers its place is taken by a check of the DDL
//! xCAT would have run there.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::dbserver::Flavor;
use common::*;

fn manifest_of(bundle: &Path) -> String {
    python(
        "import tarfile,sys\nt=tarfile.open(sys.argv[1])\nm=[x for x in t.getmembers() if x.name.endswith('/manifest.xml')][0]\nsys.stdout.write(t.extractfile(m).read().decode())",
        &[bundle.to_str().unwrap()],
    )
}

fn member_bytes(bundle: &Path, name: &str) -> Vec<u8> {
    let out = std::process::Command::new("tar")
        .args(["-xzOf", bundle.to_str().unwrap(), name])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    out.stdout
}

#[test]
fn c01_bundle_is_gzip_tar_readable_by_gnu_tar_bsdtar_and_python() {
    let mn = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&mn, work.path(), &[]);
    let head = fs::read(&bundle).unwrap();
    assert_eq!(&head[..2], &[0x1f, 0x8b]);
    sh(&format!("gzip -t {}", bundle.display()));
    for cmd in ["tar -tzf", "bsdtar -tf"] {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("{cmd} {} > /dev/null", bundle.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "{cmd}: {}", text(&out));
        assert!(out.stderr.is_empty(), "{cmd} warned: {}", text(&out));
    }
    assert!(tar_names(&bundle).len() > 3);
}

#[test]
fn c02_names_start_with_dot_slash_and_manifest_is_first_file() {
    let mn = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&mn, work.path(), &[]);
    let listing = sh(&format!("tar -tzf {}", bundle.display()));
    let names: Vec<&str> = listing.lines().collect();
    assert_eq!(names[0], "./");
    assert_eq!(names[1], format!("./{IMG}/"));
    assert_eq!(
        names[2],
        format!("./{IMG}/manifest.xml"),
        "manifest first: {names:?}"
    );
    for n in &names {
        assert!(n.starts_with("./"), "{n}");
        assert!(
            n == &"./" || n.starts_with(&format!("./{IMG}/")),
            "one top dir: {n}"
        );
    }
}

#[test]
fn c03_default_name_in_cwd_and_destination_paths_are_honoured() {
    let mn = Mn::sample();
    // An image name with whitespace runs.
    mn.tabrestore(
        "osimage",
        "#imagename,profile,provmethod,osvers,osarch\n\"my  test\timage\",\"compute\",\"statelite\",\"rhels8.5.0\",\"x86_64\"\n",
        true,
    );
    mn.tabrestore(
        "linuximage",
        &format!("#imagename,rootimgdir,pkglist\n\"my  test\timage\",\"{ROOTIMGDIR}\",\"/opt/xcat/share/xcat/netboot/rh/compute.rhels8.x86_64.pkglist\"\n"),
        true,
    );
    let work = tempfile::tempdir().unwrap();
    let out = mn.run_in(work.path(), &["export", "my  test\timage"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(work.path().join("my_test_image.tgz").is_file());
    // Deliberate difference from xCAT: a destination with a directory is honoured.
    fs::create_dir_all(work.path().join("a/b")).unwrap();
    let out = mn.run_in(work.path(), &["export", IMG, "a/b/c.tgz"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(work.path().join("a/b/c.tgz").is_file());
    assert!(!work.path().join("c.tgz").exists());
}

#[test]
fn c04_manifest_is_xml_simple_format() {
    let mn = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&mn, work.path(), &[]);
    let xml = manifest_of(&bundle);
    let lines: Vec<&str> = xml.lines().collect();
    assert_eq!(lines[0], r#"<?xml version="1.0"?>"#);
    assert_eq!(lines[1], "<xcatimage>");
    assert_eq!(*lines.last().unwrap(), "</xcatimage>");
    assert!(
        !lines[1..].iter().any(|l| l.contains('=')),
        "no attributes: {xml}"
    );
    // Top-level children sorted, two-space indent.
    let top: Vec<&str> = lines
        .iter()
        .filter(|l| l.starts_with("  <") && !l.starts_with("  </") && !l.starts_with("   "))
        .map(|l| {
            l.trim_start()
                .trim_start_matches('<')
                .split(['>', ' '])
                .next()
                .unwrap()
        })
        .collect();
    let mut sorted = top.clone();
    sorted.sort();
    assert_eq!(top, sorted, "{xml}");
    assert!(xml.contains("\n  <osimage>\n    <imagename>"), "{xml}");
}

#[test]
fn c05_sections_hold_exactly_the_non_empty_columns_and_disabled_rows_are_hidden() {
    let mn = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&mn, work.path(), &[]);
    let xml = manifest_of(&bundle);
    let osimage = xml
        .split("<osimage>")
        .nth(1)
        .unwrap()
        .split("</osimage>")
        .next()
        .unwrap();
    let cols: Vec<&str> = osimage
        .lines()
        .filter_map(|l| l.trim().strip_prefix('<'))
        .map(|l| l.split('>').next().unwrap())
        .collect();
    assert_eq!(
        cols,
        [
            "imagename",
            "imagetype",
            "osarch",
            "osdistroname",
            "osname",
            "osvers",
            "profile",
            "provmethod"
        ]
    );
    // Disable the row: the image is gone for export.
    mn.tabrestore(
        "osimage",
        &format!("#imagename,profile,provmethod,osvers,osarch,disable\n\"{IMG}\",\"compute\",\"statelite\",\"rhels8.5.0\",\"x86_64\",\"1\"\n"),
        false,
    );
    // imgport says "not found" (3); the imgexport alias keeps xCAT's 1.
    let out = mn.run_in(work.path(), &["export", IMG, "x.tgz"]);
    assert_eq!(out.status.code(), Some(3));
    let (_d, exp) = alias("imgexport");
    let alias_out = std::process::Command::new(&exp)
        .args([IMG, "x.tgz"])
        .env("IMGPORT_ROOT", mn.root())
        .current_dir(work.path())
        .output()
        .unwrap();
    assert_eq!(alias_out.status.code(), Some(1), "{}", text(&alias_out));
    assert!(
        stderr(&out).contains(&format!(
            "Cannot find image '{IMG}' from the osimage table."
        )),
        "{}",
        text(&out)
    );
    assert!(!work.path().join("x.tgz").exists());
}

#[test]
fn c06_statelite_paths_are_absolute_sources_and_files_are_in_the_bundle() {
    let mn = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&mn, work.path(), &[]);
    let xml = manifest_of(&bundle);
    for (k, v) in [
        ("kernel", format!("{ROOTIMGDIR}/kernel")),
        ("ramdisk", format!("{ROOTIMGDIR}/initrd-statelite.gz")),
        ("rootimgtree", format!("{ROOTIMGDIR}/rootimgtree.gz")),
        ("litefile", format!("{ROOTIMGDIR}/litefile.csv")),
    ] {
        assert!(xml.contains(&format!("  <{k}>{v}</{k}>")), "{k}: {xml}");
    }
    assert!(!xml.contains("<rootimg>"));
    let names = tar_names(&bundle);
    for f in [
        "kernel",
        "initrd-statelite.gz",
        "rootimgtree.gz",
        "litefile.csv",
    ] {
        assert!(names.contains(&format!("./{IMG}/{f}")), "{f}: {names:?}");
    }
    // Payload is streamed byte-for-byte.
    assert_eq!(
        member_bytes(&bundle, &format!("./{IMG}/kernel")),
        fs::read(mn.path(&format!("{ROOTIMGDIR}/kernel"))).unwrap()
    );
}

fn netboot_mn(files: &[&str]) -> Mn {
    let mn = Mn::sample();
    let dir = "/install/netboot/rhels8.5.0/x86_64/nb";
    mn.tabrestore(
        "osimage",
        "#imagename,profile,provmethod,osvers,osarch\n\"nb\",\"nb\",\"netboot\",\"rhels8.5.0\",\"x86_64\"\n",
        true,
    );
    mn.tabrestore(
        "linuximage",
        &format!("#imagename,rootimgdir,pkglist\n\"nb\",\"{dir}\",\"/opt/xcat/share/xcat/netboot/rh/compute.rhels8.x86_64.pkglist\"\n"),
        true,
    );
    fs::create_dir_all(mn.path(dir)).unwrap();
    for f in ["kernel", "initrd-stateless.gz"].iter().chain(files) {
        fs::write(mn.path(&format!("{dir}/{f}")), format!("content of {f}")).unwrap();
    }
    mn
}

#[test]
fn c07_netboot_rootimg_priority() {
    for (present, chosen) in [
        (
            vec![
                "rootimg.gz",
                "rootimg.sfs",
                "rootimg.tar.xz",
                "rootimg.cpio.gz",
            ],
            "rootimg.cpio.gz",
        ),
        (
            vec!["rootimg.gz", "rootimg.sfs", "rootimg.tar.xz"],
            "rootimg.tar.xz",
        ),
        (vec!["rootimg.gz", "rootimg.sfs"], "rootimg.sfs"),
        (vec!["rootimg.gz"], "rootimg.gz"),
    ] {
        let mn = netboot_mn(&present);
        let work = tempfile::tempdir().unwrap();
        let out = mn.run_in(work.path(), &["export", "nb"]);
        assert!(out.status.success(), "{}", text(&out));
        let bundle = work.path().join("nb.tgz");
        let xml = manifest_of(&bundle);
        assert!(
            xml.contains(&format!("/nb/{chosen}</rootimg>")),
            "{present:?}: {xml}"
        );
        assert_eq!(
            member_bytes(&bundle, &format!("./nb/{chosen}")),
            format!("content of {chosen}").into_bytes()
        );
    }
    let mn = netboot_mn(&[]);
    let out = mn.run(&["export", "nb"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Couldn't find compressed rootimg for nb"),
        "{}",
        text(&out)
    );
}

#[test]
fn c08_statelite_tree_is_a_gzip_tar_of_rootimg_that_gnu_tar_restores() {
    // Deliberate difference (XCAT.md §11.2): the tree is a pax tar, not cpio newc, so that
    // xattrs survive; GNU tar restores it in place as `zcat | cpio -idum` would.
    let mn = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&mn, work.path(), &[]);
    let tree = work.path().join("rootimgtree.gz");
    fs::write(
        &tree,
        member_bytes(&bundle, &format!("./{IMG}/rootimgtree.gz")),
    )
    .unwrap();
    let listing = sh(&format!("tar -tzf {}", tree.display()));
    let first = listing.lines().next().unwrap();
    assert!(first == "rootimg/" || first == "rootimg", "{first}");
    assert!(
        listing.lines().all(|l| l.starts_with("rootimg")),
        "{listing}"
    );
    let x = work.path().join("x");
    fs::create_dir(&x).unwrap();
    sh(&format!(
        "cd {} && tar --xattrs --xattrs-include='*' --acls -S --numeric-owner -xpzf {}",
        x.display(),
        tree.display()
    ));
    let diff = sh(&format!(
        "rsync -aHAXn --numeric-ids --itemize-changes {}/ {}/rootimg/",
        mn.path(&format!("{ROOTIMGDIR}/rootimg")).display(),
        x.display()
    ));
    assert_eq!(diff, "", "GNU tar restore differs");
}

#[test]
fn c09_litefile_csv_lines() {
    let mn = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&mn, work.path(), &[]);
    let csv = String::from_utf8(member_bytes(&bundle, &format!("./{IMG}/litefile.csv"))).unwrap();
    assert_eq!(
        csv,
        format!(
            "\"{IMG}\",\"/etc/adjtime\",\"tmpfs\",,\n\"{IMG}\",\"/var/log/\",\"tmpfs\",,\n\"{IMG}\",\"/etc/ntp.conf\",\"rw\",,\n\"{IMG}\",\"/root/.ssh/\",\"persistent\",,\n"
        )
    );
}

#[test]
fn c10_extras_files_and_directories() {
    let mn = Mn::sample();
    fs::create_dir_all(mn.path("/srv/mydir/sub")).unwrap();
    fs::write(mn.path("/srv/mydir/sub/a"), "a").unwrap();
    fs::write(mn.path("/srv/mydir/.hidden"), "h").unwrap();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(
        &mn,
        work.path(),
        &[
            "-e",
            "/install/postscripts/hello",
            "-e",
            "/srv/mydir:/usr/mydir",
        ],
    );
    let xml = manifest_of(&bundle);
    assert!(xml.contains("  <extra>\n    <dest>/install/postscripts</dest>\n    <src>/install/postscripts/hello</src>\n  </extra>\n"), "{xml}");
    assert!(
        xml.contains(
            "  <extra>\n    <dest>/usr/mydir</dest>\n    <src>/srv/mydir</src>\n  </extra>\n"
        ),
        "{xml}"
    );
    let names = tar_names(&bundle);
    assert!(names.contains(&format!("./{IMG}/extra/hello")), "{names:?}");
    assert!(
        names.contains(&format!("./{IMG}/extra/srv/mydir/sub/a")),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.ends_with(".hidden")),
        "top-level dotfiles are skipped like cp src/*"
    );

    // A missing extra is reported (exit 1) but the bundle is still made.
    let out = mn.run_in(work.path(), &["export", IMG, "y.tgz", "-e", "/nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("Can not find Extra file /nope.  Argument will be ignored"));
    assert!(work.path().join("y.tgz").is_file());

    // Import puts them back.
    let target = Mn::empty();
    let out = target.run_in(work.path(), &["import", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        fs::read_to_string(target.path("/install/postscripts/hello")).unwrap(),
        "#!/bin/sh\necho hello from a postscript\n"
    );
    assert_eq!(
        fs::read_to_string(target.path("/usr/mydir/sub/a")).unwrap(),
        "a"
    );
}

#[test]
fn c11_postscripts_of_a_node_with_defaults_first() {
    let mn = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&mn, work.path(), &["-p", "cn01"]);
    let xml = manifest_of(&bundle);
    assert!(
        xml.contains("  <postscripts>syslog,remoteshell,syncfiles,confignetwork</postscripts>\n"),
        "{xml}"
    );
    assert!(
        xml.contains("  <postbootscripts>otherpkgs,mypostboot</postbootscripts>\n"),
        "{xml}"
    );
    let out = mn.run_in(work.path(), &["export", IMG, "z.tgz", "-p", "nosuchnode"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Unable to get postscripts, nosuchnode is not a valide node."),
        "{}",
        text(&out)
    );
    assert!(!work.path().join("z.tgz").exists());
}

#[test]
fn c12_config_files_by_basename_and_discovered_pkglist() {
    let mn = Mn::sample();
    // Drop the pkglist column: export must discover it by xCAT's search.
    let dump = stdout(&mn.run(&["tabdump", "linuximage"]));
    let header = dump.lines().next().unwrap();
    let cols: Vec<&str> = header.trim_start_matches('#').split(',').collect();
    let idx = cols.iter().position(|c| *c == "pkglist").unwrap();
    let row: Vec<String> = dump
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .map(String::from)
        .collect();
    let mut row2 = row.clone();
    row2[idx] = String::new();
    mn.tabrestore(
        "linuximage",
        &format!("{header}\n{}\n", row2.join(",")),
        false,
    );
    let work = tempfile::tempdir().unwrap();
    let out = mn.run_in(work.path(), &["export", IMG]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("Couldn't find pkglist file for {IMG}")),
        "{}",
        text(&out)
    );
    // xCAT's search: <installdir>/custom/netboot first, osvers shortened to a readable
    // directory, then <profile>.<osvers>.<osarch>.pkglist and shorter names.
    fs::create_dir_all(mn.path("/install/custom/netboot/rh")).unwrap();
    fs::write(
        mn.path("/install/custom/netboot/rh/compute.rhels8.5.0.x86_64.pkglist"),
        "bash\n",
    )
    .unwrap();
    fs::write(
        mn.path("/opt/xcat/share/xcat/netboot/rh/compute.pkglist"),
        "bash\n",
    )
    .unwrap();
    let bundle = export_sample(&mn, work.path(), &[]);
    let xml = manifest_of(&bundle);
    assert!(
        xml.contains(
            "<pkglist>/install/custom/netboot/rh/compute.rhels8.5.0.x86_64.pkglist</pkglist>"
        ),
        "{xml}"
    );
    let names = tar_names(&bundle);
    for f in [
        "compute.rhels8.5.0.x86_64.pkglist",
        "compute.rhels8.x86_64.exlist",
        "compute.rhels8.x86_64.postinstall",
    ] {
        assert!(names.contains(&format!("./{IMG}/{f}")), "{f}: {names:?}");
    }
}

fn import_ok(target: &Mn, bundle: &Path, extra: &[&str]) -> String {
    let mut args = vec!["import", bundle.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = target.run(&args);
    assert!(out.status.success(), "import: {}", text(&out));
    stdout(&out)
}

/// An xCAT-made bundle of the sample image: manifest not first, cpio newc tree.
fn xcat_bundle(mn: &Mn, work: &Path) -> std::path::PathBuf {
    let d = mn.path(ROOTIMGDIR);
    let manifest = work.join("manifest.xml");
    fs::write(
        &manifest,
        format!(
            "<?xml version=\"1.0\"?>\n<xcatimage>\n  <kernel>{ROOTIMGDIR}/kernel</kernel>\n  <linuximage>\n    <imagename>{IMG}</imagename>\n    <pkglist>/opt/xcat/share/xcat/netboot/rh/compute.rhels8.x86_64.pkglist</pkglist>\n    <rootimgdir>{ROOTIMGDIR}</rootimgdir>\n  </linuximage>\n  <litefile>{ROOTIMGDIR}/litefile.csv</litefile>\n  <osimage>\n    <imagename>{IMG}</imagename>\n    <osarch>x86_64</osarch>\n    <osvers>rhels8.5.0</osvers>\n    <profile>compute</profile>\n    <provmethod>statelite</provmethod>\n  </osimage>\n  <ramdisk>{ROOTIMGDIR}/initrd-statelite.gz</ramdisk>\n  <rootimgtree>{ROOTIMGDIR}/rootimgtree.gz</rootimgtree>\n</xcatimage>\n"
        ),
    )
    .unwrap();
    let lite = work.join("litefile.csv");
    fs::write(
        &lite,
        format!("\"{IMG}\",\"/etc/adjtime\",\"tmpfs\",,\n\"{IMG}\",\"/etc/ntp.conf\",\"rw\",,\n"),
    )
    .unwrap();
    let bundle = work.join("xcat.tgz");
    sh(&format!(
        "bash {} {} {IMG} {} --tree {} --litefile {} {}/kernel {}/initrd-statelite.gz {}",
        repo().join("scripts/xcat-bundle.sh").display(),
        bundle.display(),
        manifest.display(),
        d.display(),
        lite.display(),
        d.display(),
        d.display(),
        mn.path("/opt/xcat/share/xcat/netboot/rh/compute.rhels8.x86_64.pkglist")
            .display()
    ));
    bundle
}

#[test]
fn c13_imports_a_bundle_made_the_xcat_way() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = xcat_bundle(&src, work.path());
    let names = sh(&format!("tar -tzf {}", bundle.display()));
    let target = Mn::empty();
    let out = import_ok(&target, &bundle, &[]);
    assert!(
        out.contains(&format!("Successfully imported the image {IMG}.")),
        "{out}\n{names}"
    );
    // newc keeps owners, modes, devices, symlinks and hard links (not xattrs).
    let diff = sh(&format!(
        "rsync -aHn --numeric-ids --itemize-changes {}/ {}/",
        src.path(&format!("{ROOTIMGDIR}/rootimg")).display(),
        target.path(&format!("{ROOTIMGDIR}/rootimg")).display()
    ));
    assert_eq!(diff, "");
    assert_eq!(
        target.sql("osimage", "select provmethod, profile from osimage"),
        "statelite|compute\n"
    );
}

#[test]
fn c13_legacy_flat_manifest_imports_into_both_sections() {
    let src = netboot_mn(&["rootimg.gz"]);
    let work = tempfile::tempdir().unwrap();
    let d = "/install/netboot/rhels8.5.0/x86_64/nb";
    let manifest = work.path().join("manifest.xml");
    fs::write(&manifest, format!("<xcatimage>\n<imagename>nb</imagename><profile>nb</profile><provmethod>netboot</provmethod><osvers>rhels8.5.0</osvers><osarch>x86_64</osarch><rootimgdir>{d}</rootimgdir><postscripts>a,b</postscripts><osdistro>old</osdistro><kernel>{d}/kernel</kernel><ramdisk>{d}/initrd-stateless.gz</ramdisk><rootimg>{d}/rootimg.gz</rootimg></xcatimage>\n")).unwrap();
    let bundle = work.path().join("flat.tgz");
    let h = src.path(d);
    sh(&format!(
        "bash {} {} nb {} {}/kernel {}/initrd-stateless.gz {}/rootimg.gz",
        repo().join("scripts/xcat-bundle.sh").display(),
        bundle.display(),
        manifest.display(),
        h.display(),
        h.display(),
        h.display()
    ));
    let target = Mn::empty();
    import_ok(&target, &bundle, &[]);
    assert_eq!(
        target.sql("osimage", "select imagename, postscripts from osimage"),
        "nb|a,b\n"
    );
    assert_eq!(
        target.sql("linuximage", "select imagename, rootimgdir from linuximage"),
        format!("nb|{d}\n")
    );
    assert_eq!(
        fs::read_to_string(target.path(&format!("{d}/rootimg.gz"))).unwrap(),
        "content of rootimg.gz"
    );
}

fn bundle_with_manifest(work: &Path, xml: &str, files: &[(&str, &str)]) -> std::path::PathBuf {
    let m = work.join("m.xml");
    fs::write(&m, xml).unwrap();
    let mut args = Vec::new();
    for (name, content) in files {
        let p = work.join(name);
        fs::write(&p, content).unwrap();
        args.push(p.display().to_string());
    }
    let bundle = work.join("b.tgz");
    sh(&format!(
        "bash {} {} img {} {}",
        repo().join("scripts/xcat-bundle.sh").display(),
        bundle.display(),
        m.display(),
        args.join(" ")
    ));
    bundle
}

fn osimage_xml(fields: &[(&str, &str)], top: &str) -> String {
    let mut x = String::from("<?xml version=\"1.0\"?>\n<xcatimage>\n  <osimage>\n");
    for (k, v) in fields {
        x.push_str(&format!("    <{k}>{v}</{k}>\n"));
    }
    x.push_str("  </osimage>\n  <linuximage>\n    <imagename>img</imagename>\n  </linuximage>\n");
    x.push_str(top);
    x.push_str("</xcatimage>\n");
    x
}

#[test]
fn c14_validation_errors_match_xcat() {
    let base = [
        ("imagename", "img"),
        ("osvers", "rhels8"),
        ("osarch", "x86_64"),
        ("profile", "p"),
    ];
    // (osimage fields, extra top-level XML, expected error line)
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (vec![("imagename", "img"), ("provmethod", "netboot")], "", "The 'profile' field is not defined in manifest.xml."),
        ([&base[..], &[("provmethod", "diskful")]].concat(), "", "Importing images with 'provmethod' diskful is not supported. Hint: install, netboot, statelite, sysclone or raw"),
        ([&base[..], &[("provmethod", "statelite")]].concat(), "  <kernel>/k</kernel>\n  <ramdisk>/r</ramdisk>\n", "The 'rootimgtree' field is not defined in manifest.xml."),
        ([&base[..], &[("provmethod", "install")]].concat(), "  <media>required</media>\n", "The 'osarch' field is not defined in manifest.xml."),
    ];
    for (fields, top, msg) in cases {
        let work = tempfile::tempdir().unwrap();
        let bundle = bundle_with_manifest(work.path(), &osimage_xml(&fields, top), &[]);
        let target = Mn::empty();
        // imgport: "bundle refused" (4); the imgimport alias keeps xCAT's 1.
        let out = target.run(&["import", bundle.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(4), "{}", text(&out));
        assert!(stderr(&out).contains(msg), "want {msg}: {}", text(&out));
        let (_d, imp) = alias("imgimport");
        let alias_out = std::process::Command::new(&imp)
            .arg(&bundle)
            .env("IMGPORT_ROOT", target.root())
            .output()
            .unwrap();
        assert_eq!(alias_out.status.code(), Some(1), "{}", text(&alias_out));
        assert!(stderr(&alias_out).contains(msg));
        assert!(
            !target.path("/etc/xcat/osimage.sqlite").exists(),
            "no rows written"
        );
    }
    // install with a template but no copied media.
    let work = tempfile::tempdir().unwrap();
    let xml = osimage_xml(&[&base[..], &[("provmethod", "install")]].concat(), "  <media>required</media>\n")
        .replace("<imagename>img</imagename>\n  </linuximage>", "<imagename>img</imagename>\n    <template>/install/custom/install/rh/p.tmpl</template>\n  </linuximage>");
    let bundle = bundle_with_manifest(work.path(), &xml, &[("p.tmpl", "tmpl")]);
    let target = Mn::empty();
    let out = target.run(&["import", bundle.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(4));
    assert!(
        stderr(&out).contains("This image requires that you first copy media for rhels8-x86_64"),
        "{}",
        text(&out)
    );
    fs::create_dir_all(target.path("/install/rhels8/x86_64")).unwrap();
    let out = target.run(&["import", bundle.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        fs::read_to_string(target.path("/install/custom/install/rh/p.tmpl")).unwrap(),
        "tmpl"
    );
}

#[test]
fn c15_rows_are_merged_and_nulls_are_null() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&src, work.path(), &[]);
    let target = Mn::empty();
    target.tabrestore(
        "osimage",
        &format!("#imagename,description,profile,groups\n\"{IMG}\",\"keep me\",\"old\",\n"),
        false,
    );
    import_ok(&target, &bundle, &[]);
    assert_eq!(
        target.sql(
            "osimage",
            "select description, profile, provmethod, groups from osimage"
        ),
        "keep me|compute|statelite|<NULL>\n"
    );
    assert_eq!(
        target.sql("osimage", "select count(*) from osimage where groups = ''"),
        "0\n"
    );
    assert_eq!(
        target.sql("linuximage", "select rootimgdir, kerneldir from linuximage"),
        format!("{ROOTIMGDIR}|<NULL>\n")
    );
}

#[test]
fn c16_files_at_exact_paths_with_orig_backups_and_0755_parents() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&src, work.path(), &[]);
    let target = Mn::empty();
    let kernel = target.path(&format!("{ROOTIMGDIR}/kernel"));
    fs::create_dir_all(kernel.parent().unwrap()).unwrap();
    fs::write(&kernel, "old kernel").unwrap();
    let out = import_ok(&target, &bundle, &[]);
    assert!(
        out.contains(&format!(
            "  Moving old {ROOTIMGDIR}/kernel to {ROOTIMGDIR}/kernel.ORIG."
        )),
        "{out}"
    );
    assert_eq!(
        fs::read_to_string(format!("{}.ORIG", kernel.display())).unwrap(),
        "old kernel"
    );
    assert_eq!(
        fs::read(&kernel).unwrap(),
        fs::read(src.path(&format!("{ROOTIMGDIR}/kernel"))).unwrap()
    );
    let pkglist = target.path("/opt/xcat/share/xcat/netboot/rh/compute.rhels8.x86_64.pkglist");
    assert!(pkglist.is_file());
    let mode = fs::metadata(target.path("/opt/xcat/share/xcat/netboot/rh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);
}

#[test]
fn c17_statelite_tree_and_litefile_rows() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&src, work.path(), &[]);
    let target = Mn::empty();
    // An enabled ALL row with the same file and options: that line is skipped.
    target.tabrestore(
        "litefile",
        "#image,file,options\n\"ALL\",\"/etc/adjtime\",\"tmpfs\"\n",
        false,
    );
    import_ok(&target, &bundle, &[]);
    let d = target.path(ROOTIMGDIR);
    assert!(d.join("rootimg/bin/ping").is_file());
    assert!(!d.join("rootimgtree.gz").exists());
    assert!(d.join("litefile.csv").is_file());
    assert_eq!(
        target.sql("litefile", "select image, file, options from litefile order by image, file"),
        format!("ALL|/etc/adjtime|tmpfs\n{IMG}|/etc/ntp.conf|rw\n{IMG}|/root/.ssh/|persistent\n{IMG}|/var/log/|tmpfs\n")
    );
}

#[test]
fn c18_new_profile() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&src, work.path(), &[]);
    let target = Mn::empty();
    let out = import_ok(&target, &bundle, &["-f", "compute_test"]);
    let name = "rhels8.5.0-x86_64-statelite-compute_test";
    assert!(
        out.contains(&format!("Successfully imported the image {name}.")),
        "{out}"
    );
    let dir = "/install/netboot/rhels8.5.0/x86_64/compute_test";
    assert!(target.path(&format!("{dir}/rootimg/bin/ping")).is_file());
    assert!(target.path(&format!("{dir}/kernel")).is_file());
    let custom = sh(&format!(
        "ls {}/install/custom/netboot/rh/compute_test.*",
        target.root().display()
    ));
    assert!(
        custom.contains("compute_test.rhels8.x86_64.pkglist"),
        "{custom}"
    );
    assert_eq!(
        target.sql("osimage", "select imagename, profile from osimage"),
        format!("{name}|compute_test\n")
    );
    assert_eq!(
        target.sql("linuximage", "select rootimgdir, pkglist from linuximage"),
        format!("{dir}|/install/custom/netboot/rh/compute_test.rhels8.x86_64.pkglist\n")
    );
    assert!(
        !target.path("/opt/xcat/share/xcat/netboot/rh").exists(),
        "shipped files untouched"
    );
}

#[test]
fn c19_postscripts_for_nodes_on_import() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&src, work.path(), &["-p", "cn01"]);
    let target = Mn::empty();
    target.tabrestore(
        "nodelist",
        "#node,groups\n\"n1\",\"compute,all\"\n\"n2\",\"all\"\n",
        false,
    );
    target.tabrestore(
        "postscripts",
        "#node,postscripts,postbootscripts\n\"xcatdefaults\",\"syslog,remoteshell\",\n",
        false,
    );
    // The skipped node's warning carries xCAT's error code: exit 1, image imported.
    let out = target.run(&["import", bundle.to_str().unwrap(), "-p", "n1,n2,ghost"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stdout(&out).contains("Successfully imported the image"));
    assert!(stderr(&out).contains(
        "The following nodes will be skipped because they are not in the nodelist table."
    ));
    assert_eq!(
        target.sql("postscripts", "select node, postscripts, postbootscripts from postscripts where node like 'n%' order by node"),
        "n1|syncfiles,confignetwork|otherpkgs,mypostboot\nn2|syncfiles,confignetwork|otherpkgs,mypostboot\n"
    );
    let out = target.run(&["import", bundle.to_str().unwrap(), "-p", "ghost"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("The nodes ghost are not defined in xCAT DB."),
        "{}",
        text(&out)
    );
}

#[test]
fn c20_success_lines() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let out = src.run_in(work.path(), &["export", IMG]);
    let lines = stdout(&out);
    assert_eq!(lines.lines().last(), Some("Done!"), "{lines}");
    let target = Mn::empty();
    let out = import_ok(&target, &work.path().join(format!("{IMG}.tgz")), &[]);
    assert!(
        out.lines()
            .any(|l| l == format!("Successfully imported the image {IMG}.")),
        "{out}"
    );
}

#[test]
fn c21_usage_and_help_of_the_xcat_names() {
    for name in ["imgexport", "imgimport"] {
        let (_d, link) = alias(name);
        for flag in ["-h", "--help"] {
            let out = std::process::Command::new(&link)
                .arg(flag)
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0), "{name} {flag}");
            assert!(
                stdout(&out).contains("Usage"),
                "{name} {flag}: {}",
                text(&out)
            );
        }
        let out = std::process::Command::new(&link).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{name} without args");
        assert!(stdout(&out).contains("Usage"));
    }
    let (_d, link) = alias("imgimport");
    let out = std::process::Command::new(&link)
        .args(["-p", "n1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("Usage"),
        "no positional left: {}",
        text(&out)
    );
}

#[test]
fn c21_xcat_names_export_and_import() {
    let src = Mn::sample();
    let target = Mn::empty();
    let work = tempfile::tempdir().unwrap();
    let (_d, exp) = alias("imgexport");
    let out = std::process::Command::new(&exp)
        .args([IMG, "foo.tgz"])
        .env("IMGPORT_ROOT", src.root())
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("Done!"));
    let (_d2, imp) = alias("imgimport");
    let out = std::process::Command::new(&imp)
        .args(["foo.tgz", "-f", "compute_test"])
        .env("IMGPORT_ROOT", target.root())
        .current_dir(work.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).contains("Successfully imported the image"));
}

#[test]
fn c22_plain_tar_bundles_are_accepted() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&src, work.path(), &[]);
    let plain = work.path().join("plain.tar");
    sh(&format!(
        "gzip -dc {} > {}",
        bundle.display(),
        plain.display()
    ));
    let target = Mn::empty();
    import_ok(&target, &plain, &["-n"]);
    assert!(target
        .path(&format!("{ROOTIMGDIR}/rootimg/etc/passwd"))
        .is_file());
}

#[test]
fn c23_sqlite_layout_ddl_and_modes() {
    let mn = Mn::sample();
    let db = mn.path("/etc/xcat/osimage.sqlite");
    assert_eq!(fs::metadata(&db).unwrap().mode() & 0o777, 0o600);
    let ddl = python(
        "import sqlite3,sys\nprint(sqlite3.connect(sys.argv[1]).execute(\"select sql from sqlite_master where name='litefile'\").fetchone()[0])",
        &[mn.path("/etc/xcat/litefile.sqlite").to_str().unwrap()],
    );
    assert!(ddl.contains("image VARCHAR(128)  NOT NULL"), "{ddl}");
    assert!(ddl.contains("PRIMARY KEY (image,file)"), "{ddl}");
    // cfgloc moves the catalog.
    let other = Mn::empty();
    fs::create_dir_all(other.path("/etc/xcat")).unwrap();
    fs::create_dir_all(other.path("/var/lib/xcatdb")).unwrap();
    fs::write(other.path("/etc/xcat/cfgloc"), "SQLite:/var/lib/xcatdb\n").unwrap();
    other.tabrestore("site", "#key,value\n\"installdir\",\"/install\"\n", false);
    assert!(other.path("/var/lib/xcatdb/site.sqlite").is_file());
    fs::write(
        other.path("/etc/xcat/cfgloc"),
        "mysql:dbname=xcatdb;host=10.0.0.1|xcatadmin|pw\n",
    )
    .unwrap();
    let out = other.run(&["tabdump", "site"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).to_lowercase().contains("mysql"),
        "{}",
        text(&out)
    );
}

#[test]
fn c24_disabled_rows_are_ignored() {
    let mn = Mn::sample();
    for (value, visible) in [
        ("0", true),
        ("no", true),
        ("NO", true),
        ("yes", false),
        ("1", false),
        ("", true),
    ] {
        let disable = if value.is_empty() {
            String::new()
        } else {
            format!("\"{value}\"")
        };
        mn.tabrestore(
            "osimage",
            &format!("#imagename,profile,provmethod,osvers,osarch,disable\n\"{IMG}\",\"compute\",\"statelite\",\"rhels8.5.0\",\"x86_64\",{disable}\n"),
            false,
        );
        let work = tempfile::tempdir().unwrap();
        let out = mn.run_in(work.path(), &["export", IMG]);
        assert_eq!(
            out.status.success(),
            visible,
            "disable={value:?}: {}",
            text(&out)
        );
    }
}

#[test]
fn c25_tabdump_csv_round_trips() {
    let mn = Mn::sample();
    mn.tabrestore(
        "postscripts",
        "#node,postscripts,comments\n\"weird\",\"a \"\"quoted\"\" value\",\"line1\nline2\"\n",
        true,
    );
    let dump = stdout(&mn.run(&["tabdump", "postscripts"]));
    assert!(
        dump.starts_with("#node,postscripts,postbootscripts,comments,disable\n"),
        "{dump}"
    );
    assert!(
        dump.contains("\"weird\",\"a \"\"quoted\"\" value\",,\"line1\nline2\",\n"),
        "{dump}"
    );
    let other = Mn::empty();
    other.tabrestore("postscripts", &dump, false);
    assert_eq!(stdout(&other.run(&["tabdump", "postscripts"])), dump);
}

#[test]
fn c08_compat_xcat_writes_newc_that_real_cpio_restores() {
    let mn = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let out = mn.run_in(work.path(), &["export", IMG, "x.tgz", "--compat", "xcat"]);
    assert!(out.status.success(), "{}", text(&out));
    // The sidecar carries what newc cannot: nothing is reported lost.
    assert!(!stderr(&out).contains("dropped"), "{}", text(&out));
    let bundle = work.path().join("x.tgz");
    let names = tar_names(&bundle);
    let meta = names.iter().position(|n| n.ends_with("/rootimgtree.meta"));
    let tree = names.iter().position(|n| n.ends_with("/rootimgtree.gz"));
    assert!(
        meta.is_some() && meta < tree,
        "sidecar before its tree: {names:?}"
    );
    assert!(!manifest_of(&bundle).contains("imgporttreeformat"));
    // What xCAT's imgimport does: tar zxf, then zcat rootimgtree.gz | cpio -idum.
    let x = work.path().join("x");
    fs::create_dir(&x).unwrap();
    sh(&format!(
        "cd {} && tar -xzf {}",
        x.display(),
        bundle.display()
    ));
    let listing = sh(&format!(
        "cd {}/{IMG} && zcat rootimgtree.gz | cpio -it --quiet",
        x.display()
    ));
    assert_eq!(
        listing.lines().next(),
        Some("rootimg"),
        "C8: first entry is rootimg"
    );
    sh(&format!(
        "cd {}/{IMG} && zcat rootimgtree.gz | cpio -idum --quiet",
        x.display()
    ));
    // newc keeps data, owners, modes, devices and links; cpio cannot restore the
    // mtimes of directories and symlinks (-OJ), and nothing carries xattrs.
    let diff = sh(&format!(
        "rsync -aHn -OJ --numeric-ids --itemize-changes {}/ {}/{IMG}/rootimg/",
        mn.path(&format!("{ROOTIMGDIR}/rootimg")).display(),
        x.display()
    ));
    assert_eq!(diff, "");
    // imgport reads it back too.
    let target = Mn::empty();
    import_ok(&target, &bundle, &[]);
    assert!(target
        .path(&format!("{ROOTIMGDIR}/rootimg/dev/null"))
        .exists());
    // With its sidecar the import is lossless, capabilities included.
    let diff = sh(&format!(
        "rsync -aHAXn --numeric-ids --itemize-changes {}/ {}/",
        mn.path(&format!("{ROOTIMGDIR}/rootimg")).display(),
        target.path(&format!("{ROOTIMGDIR}/rootimg")).display()
    ));
    assert_eq!(diff, "");
}

/// The cases run on the database servers.
/// (Not c08_compat_xcat_writes_newc_...: a tree-format case, minutes long, that never
/// reads the catalog beyond the sample.)
const SERVER_CASES: &[(&str, fn())] = &[
    (
        "c01_bundle_is_gzip_tar_readable_by_gnu_tar_bsdtar_and_python",
        c01_bundle_is_gzip_tar_readable_by_gnu_tar_bsdtar_and_python,
    ),
    (
        "c02_names_start_with_dot_slash_and_manifest_is_first_file",
        c02_names_start_with_dot_slash_and_manifest_is_first_file,
    ),
    (
        "c03_default_name_in_cwd_and_destination_paths_are_honoured",
        c03_default_name_in_cwd_and_destination_paths_are_honoured,
    ),
    (
        "c04_manifest_is_xml_simple_format",
        c04_manifest_is_xml_simple_format,
    ),
    (
        "c05_sections_hold_exactly_the_non_empty_columns_and_disabled_rows_are_hidden",
        c05_sections_hold_exactly_the_non_empty_columns_and_disabled_rows_are_hidden,
    ),
    (
        "c06_statelite_paths_are_absolute_sources_and_files_are_in_the_bundle",
        c06_statelite_paths_are_absolute_sources_and_files_are_in_the_bundle,
    ),
    ("c07_netboot_rootimg_priority", c07_netboot_rootimg_priority),
    (
        "c08_statelite_tree_is_a_gzip_tar_of_rootimg_that_gnu_tar_restores",
        c08_statelite_tree_is_a_gzip_tar_of_rootimg_that_gnu_tar_restores,
    ),
    ("c09_litefile_csv_lines", c09_litefile_csv_lines),
    (
        "c10_extras_files_and_directories",
        c10_extras_files_and_directories,
    ),
    (
        "c11_postscripts_of_a_node_with_defaults_first",
        c11_postscripts_of_a_node_with_defaults_first,
    ),
    (
        "c12_config_files_by_basename_and_discovered_pkglist",
        c12_config_files_by_basename_and_discovered_pkglist,
    ),
    (
        "c13_imports_a_bundle_made_the_xcat_way",
        c13_imports_a_bundle_made_the_xcat_way,
    ),
    (
        "c13_legacy_flat_manifest_imports_into_both_sections",
        c13_legacy_flat_manifest_imports_into_both_sections,
    ),
    (
        "c14_validation_errors_match_xcat",
        c14_validation_errors_match_xcat,
    ),
    (
        "c15_rows_are_merged_and_nulls_are_null",
        c15_rows_are_merged_and_nulls_are_null,
    ),
    (
        "c16_files_at_exact_paths_with_orig_backups_and_0755_parents",
        c16_files_at_exact_paths_with_orig_backups_and_0755_parents,
    ),
    (
        "c17_statelite_tree_and_litefile_rows",
        c17_statelite_tree_and_litefile_rows,
    ),
    ("c18_new_profile", c18_new_profile),
    (
        "c19_postscripts_for_nodes_on_import",
        c19_postscripts_for_nodes_on_import,
    ),
    ("c20_success_lines", c20_success_lines),
    (
        "c21_usage_and_help_of_the_xcat_names",
        c21_usage_and_help_of_the_xcat_names,
    ),
    (
        "c21_xcat_names_export_and_import",
        c21_xcat_names_export_and_import,
    ),
    (
        "c22_plain_tar_bundles_are_accepted",
        c22_plain_tar_bundles_are_accepted,
    ),
    ("c23_server_ddl_is_xcats", c23_server_ddl_is_xcats),
    (
        "c24_disabled_rows_are_ignored",
        c24_disabled_rows_are_ignored,
    ),
    ("c25_tabdump_csv_round_trips", c25_tabdump_csv_round_trips),
];

#[test]
fn on_postgres() {
    backends::run_cases(Flavor::Postgres, SERVER_CASES);
}

#[test]
fn on_mariadb() {
    backends::run_cases(Flavor::MariaDb, SERVER_CASES);
}

/// C23 on a server: the tables imgport creates are xCAT's, quoted as `delimitcol`
/// quotes (`"x"` / `` `x` ``), keys `VARCHAR(128)`, litefile's keys NOT NULL, and the
/// primary keys in place. On SQLite it is a no-op (`c23_sqlite_layout_ddl_and_modes`).
fn c23_server_ddl_is_xcats() {
    let mn = Mn::sample();
    let Some(db) = &mn.db else {
        return;
    };
    let schema = match db.server.flavor() {
        Flavor::Postgres => "current_schema()",
        Flavor::MariaDb => "database()",
    };
    let columns = |table: &str| {
        mn.sql(
            table,
            &format!(
                "select column_name, data_type, is_nullable, coalesce(character_maximum_length, 0) \
                 from information_schema.columns where table_schema = {schema} and table_name = '{table}' \
                 order by ordinal_position"
            ),
        )
        .to_lowercase()
    };
    let lf = columns("litefile");
    let lines: Vec<&str> = lf.lines().collect();
    assert_eq!(lines.len(), 5, "{lf}");
    assert!(
        lines[0].starts_with("image|") && lines[0].ends_with("|no|128"),
        "{lf}"
    );
    assert!(
        lines[1].starts_with("file|") && lines[1].ends_with("|no|128"),
        "{lf}"
    );
    assert!(lines[2].starts_with("options|text|yes"), "{lf}");
    let os = columns("osimage");
    assert!(
        os.contains("\nosupdatename|") && os.contains("|1024\n"),
        "{os}"
    );
    assert!(os.contains("\ngroups|text|yes|"), "{os}");
    let keys = mn.sql(
        "litefile",
        &format!(
            "select k.column_name from information_schema.table_constraints c \
         join information_schema.key_column_usage k on k.constraint_name = c.constraint_name \
         and k.table_name = c.table_name and k.table_schema = c.table_schema \
         where c.table_schema = {schema} and c.table_name = 'litefile' \
         and c.constraint_type = 'PRIMARY KEY' order by k.ordinal_position"
        ),
    );
    assert_eq!(keys.to_lowercase(), "image\nfile\n");
}

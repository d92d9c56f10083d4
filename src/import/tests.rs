//! Unit tests of the import phases on a scratch MN (a temporary root and its SQLite
//! catalog): the decisions of `plan_steps` and `rows`, the manifest checks, the
//! dry-run preview, placement with `.ORIG` backups, and the whole flow over bundles
//! with several image directories.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::members::{Members, Spooled};
use super::place::Planned;
use super::plan::{Accepted, ManifestProblem, Step};
use super::*;
use crate::bundle::MemberKind;
use crate::catalog::{ChangeKind, Upsert};
use crate::error::Error;
use crate::manifest::{Extra, Manifest};
use crate::report::Collect;
use crate::testkit::Mn;

const DIR: &str = "/install/netboot/rhels8/x86_64/compute";
const PKGLIST: &str = "/opt/xcat/share/xcat/netboot/rh/compute.pkglist";

impl Mn {
    fn ctx<'a>(&'a self, opts: &'a ImportOptions) -> Context<'a> {
        Context {
            root: &self.root,
            catalog: &self.catalog,
            opts,
            installdir: "/install".into(),
            journal: crate::journal::Journal::disabled(),
            xcatroot: "/opt/xcat".into(),
        }
    }
}

fn opts() -> ImportOptions {
    ImportOptions {
        bundle: BundleSource::Stdin,
        postscripts: None,
        profile: None,
        dry_run: false,
        threads: 1,
        progress: Default::default(),
    }
}

fn columns(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A statelite manifest as export writes it, for image `compute`.
fn statelite() -> Manifest {
    Manifest {
        osimage: columns(&[
            ("imagename", "rhels8-x86_64-statelite-compute"),
            ("profile", "compute"),
            ("provmethod", "statelite"),
            ("osvers", "rhels8"),
            ("osarch", "x86_64"),
        ]),
        linuximage: columns(&[
            ("imagename", "rhels8-x86_64-statelite-compute"),
            ("rootimgdir", DIR),
            ("pkglist", PKGLIST),
        ]),
        kernel: Some(format!("{DIR}/kernel")),
        ramdisk: Some(format!("{DIR}/initrd-statelite.gz")),
        rootimgtree: Some(format!("{DIR}/rootimgtree.gz")),
        litefile: Some(format!("{DIR}/litefile.csv")),
        ..Manifest::default()
    }
}

fn accepted(manifest: Manifest) -> Accepted {
    Accepted {
        imagename: manifest.field("imagename").unwrap_or("").to_string(),
        manifest,
        renamed: BTreeMap::new(),
    }
}

fn file(data: &str) -> Spooled {
    Spooled {
        path: None,
        data: Some(data.as_bytes().to_vec()),
        kind: MemberKind::File,
        mode: 0o644,
    }
}

fn dir() -> Spooled {
    Spooled {
        path: None,
        data: None,
        kind: MemberKind::Dir,
        mode: 0o755,
    }
}

/// Members holding each named file (empty content).
fn members(names: &[&str]) -> Members {
    names.iter().map(|n| (n.to_string(), file(""))).collect()
}

fn statelite_members() -> Members {
    members(&[
        "kernel",
        "initrd-statelite.gz",
        "litefile.csv",
        "compute.pkglist",
        "rootimgtree.gz",
    ])
}

fn file_step(member: &str, dest: &str) -> Step {
    Step::File {
        member: member.into(),
        dest: dest.into(),
    }
}

fn plan(mn: &Mn, a: &Accepted, m: &Members) -> (Result<Vec<Step>>, Collect) {
    let o = opts();
    let mut report = Collect::default();
    let steps = mn.ctx(&o).plan_steps(a, m, false, &mut report);
    (steps, report)
}

#[test]
fn plan_places_payload_then_configs_then_the_tree() {
    let mn = Mn::new();
    let (steps, report) = plan(&mn, &accepted(statelite()), &statelite_members());
    assert_eq!(
        steps.unwrap(),
        vec![
            file_step("kernel", &format!("{DIR}/kernel")),
            file_step("initrd-statelite.gz", &format!("{DIR}/initrd-statelite.gz")),
            file_step("litefile.csv", &format!("{DIR}/litefile.csv")),
            file_step("compute.pkglist", PKGLIST),
            Step::Tree {
                dest: format!("{DIR}/rootimg")
            },
        ]
    );
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
}

#[test]
fn a_missing_payload_file_or_tree_is_incomplete() {
    let mn = Mn::new();
    let a = accepted(statelite());
    for (drop, want) in [
        (
            "kernel",
            format!("The bundle has no kernel for {DIR}/kernel of image rhels8-x86_64-statelite-compute."),
        ),
        (
            "litefile.csv",
            format!("The bundle has no litefile.csv for {DIR}/litefile.csv of image rhels8-x86_64-statelite-compute."),
        ),
        (
            "rootimgtree.gz",
            "The bundle has no rootimgtree.gz for image rhels8-x86_64-statelite-compute.".into(),
        ),
    ] {
        let mut m = statelite_members();
        m.remove(drop);
        let err = plan(&mn, &a, &m).0.unwrap_err();
        assert!(matches!(err, Error::Incomplete(_)), "{drop}: {err:?}");
        assert_eq!(err.to_string(), want);
        assert_eq!(err.failure(), Failure::Corrupt);
    }
    // A tree restored while the bundle streamed needs no member any more.
    let mut m = statelite_members();
    m.remove("rootimgtree.gz");
    let o = opts();
    let steps = mn
        .ctx(&o)
        .plan_steps(&a, &m, true, &mut Collect::default())
        .unwrap();
    assert!(steps.contains(&Step::Tree {
        dest: format!("{DIR}/rootimg")
    }));
    // The zstd tree counts as the tree too.
    m.insert("rootimgtree.zst".into(), file(""));
    assert!(plan(&mn, &a, &m).0.is_ok());
}

#[test]
fn a_missing_config_file_is_only_a_warning() {
    let mn = Mn::new();
    let mut m = statelite_members();
    m.remove("compute.pkglist");
    let (steps, report) = plan(&mn, &accepted(statelite()), &m);
    let steps = steps.unwrap();
    assert!(!steps.iter().any(|s| s.dest() == PKGLIST), "{steps:?}");
    assert_eq!(
        report.warnings,
        [format!(
            "{PKGLIST} is named in manifest.xml but not in the bundle; skipped"
        )]
    );
}

#[test]
fn a_destination_outside_the_root_is_refused() {
    let mn = Mn::new();
    let mut manifest = statelite();
    manifest.kernel = Some("/install/../../etc/kernel".into());
    let err = plan(&mn, &accepted(manifest), &statelite_members())
        .0
        .unwrap_err();
    assert!(matches!(err, Error::UnsafePath { .. }), "{err:?}");
    assert_eq!(err.failure(), Failure::Corrupt);
}

#[test]
fn profile_rewrite_moves_the_image_and_renames_config_files() {
    let mn = Mn::new();
    let mut o = opts();
    o.profile = Some("test".into());
    let xml = statelite().to_xml();
    let Ok(a) = mn.ctx(&o).check_manifest(xml.as_bytes()) else {
        panic!("manifest refused")
    };
    assert_eq!(a.imagename, "rhels8-x86_64-statelite-test");
    let steps = mn
        .ctx(&o)
        .plan_steps(&a, &statelite_members(), false, &mut Collect::default())
        .unwrap();
    let new_dir = "/install/netboot/rhels8/x86_64/test";
    assert_eq!(
        steps,
        vec![
            file_step("kernel", &format!("{new_dir}/kernel")),
            file_step(
                "initrd-statelite.gz",
                &format!("{new_dir}/initrd-statelite.gz")
            ),
            file_step("litefile.csv", &format!("{new_dir}/litefile.csv")),
            // The shipped pkglist becomes a custom one named after the new profile,
            // still read from the member the export wrote.
            file_step("compute.pkglist", "/install/custom/netboot/rh/test.pkglist"),
            Step::Tree {
                dest: format!("{new_dir}/rootimg")
            },
        ]
    );
    let rows = mn.ctx(&o).rows(&a, &statelite_members()).unwrap();
    assert_eq!(
        rows[0].key,
        [(
            "imagename".to_string(),
            "rhels8-x86_64-statelite-test".to_string()
        )]
    );
    assert!(rows[0]
        .values
        .contains(&("profile".into(), Some("test".into()))));
}

#[test]
fn s390x_raw_images_go_to_the_profile_dir_with_an_img_suffix() {
    let mn = Mn::new();
    let manifest = Manifest {
        osimage: columns(&[
            ("imagename", "z"),
            ("profile", "compute"),
            ("provmethod", "netboot"),
            ("osvers", "rhels8.6"),
            ("osarch", "s390x"),
        ]),
        rawimagefiles: vec!["/somewhere/0100.img".into(), "/somewhere/0101".into()],
        ..Manifest::default()
    };
    let dest = "/install/netboot/rhels8.6/s390x/compute";
    let (steps, _) = plan(
        &mn,
        &accepted(manifest.clone()),
        &members(&["0100.img", "0101"]),
    );
    assert_eq!(
        steps.unwrap(),
        vec![
            file_step("0100.img", &format!("{dest}/0100.img")),
            file_step("0101", &format!("{dest}/0101.img")),
        ]
    );
    let err = plan(&mn, &accepted(manifest), &members(&["0100.img"]))
        .0
        .unwrap_err();
    assert!(matches!(err, Error::Incomplete(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("Could not move 0101 to {dest}: not in the bundle")
    );
}

#[test]
fn extras_and_kits_become_files_and_subtrees() {
    let mn = Mn::new();
    let mut manifest = statelite();
    manifest.extra = vec![
        Extra {
            src: "/install/postscripts/hello".into(),
            dest: "/install/postscripts/".into(),
        },
        Extra {
            src: "/srv/tools".into(),
            dest: "/opt".into(),
        },
    ];
    manifest.kit = vec![(
        "mykit-1.0".into(),
        columns(&[("kitdir", "/install/kits/mykit-1.0-src")]),
    )];
    let mut m = statelite_members();
    m.insert("extra/hello".into(), file("hi"));
    m.insert("extra/srv/tools".into(), dir());
    m.insert("extra/srv/tools/a".into(), file(""));
    m.insert("extra/srv/tools/sub".into(), dir());
    m.insert("extra/srv/tools/sub/b".into(), file(""));
    m.insert("mykit-1.0-src".into(), dir());
    let steps = plan(&mn, &accepted(manifest.clone()), &m).0.unwrap();
    assert_eq!(
        steps[4..],
        [
            Step::Subtree {
                prefix: "mykit-1.0-src".into(),
                dest: "/install/kits/mykit-1.0".into()
            },
            Step::Tree {
                dest: format!("{DIR}/rootimg")
            },
            file_step("extra/hello", "/install/postscripts/hello"),
            // Each direct child of the directory, as `cp -a src/*` copies them.
            Step::Subtree {
                prefix: "extra/srv/tools/a".into(),
                dest: "/opt/a".into()
            },
            Step::Subtree {
                prefix: "extra/srv/tools/sub".into(),
                dest: "/opt/sub".into()
            },
        ]
    );
    // A kit directory the export could not find is skipped, not fatal.
    m.remove("mykit-1.0-src");
    let steps = plan(&mn, &accepted(manifest.clone()), &m).0.unwrap();
    assert!(!steps.iter().any(|s| s.dest() == "/install/kits/mykit-1.0"));
    // An extra directory with nothing in it, or a missing extra file, is incomplete.
    let mut empty = m.clone_names();
    empty.retain(|k, _| !k.starts_with("extra/srv/tools/"));
    let err = plan(&mn, &accepted(manifest.clone()), &empty)
        .0
        .unwrap_err();
    assert_eq!(err.to_string(), "Failed to cp -a extra/srv/tools/* to /opt");
    assert!(matches!(err, Error::Incomplete(_)));
    let mut no_file = m.clone_names();
    no_file.remove("extra/hello");
    let err = plan(&mn, &accepted(manifest), &no_file).0.unwrap_err();
    assert_eq!(
        err.to_string(),
        "Failed to copy extra/hello to /install/postscripts/"
    );
    assert!(matches!(err, Error::Incomplete(_)));
}

/// Members are not Clone (they own spool files); tests copy names and kinds.
trait CloneNames {
    fn clone_names(&self) -> Members;
}

impl CloneNames for Members {
    fn clone_names(&self) -> Members {
        self.iter()
            .map(|(k, s)| {
                let copy = Spooled {
                    path: None,
                    data: s.data.clone(),
                    kind: s.kind.clone(),
                    mode: s.mode,
                };
                (k.clone(), copy)
            })
            .collect()
    }
}

#[test]
fn manifests_are_refused_with_xcats_lines() {
    let mn = Mn::new();
    let o = opts();
    let ctx = mn.ctx(&o);
    let refused = |m: &Manifest| match ctx.check_manifest(m.to_xml().as_bytes()) {
        Err(ManifestProblem::Refused(lines)) => lines,
        Err(ManifestProblem::Invalid(e)) => panic!("invalid: {e}"),
        Ok(_) => panic!("accepted"),
    };
    let mut m = statelite();
    m.osimage.remove("profile");
    m.osimage.remove("osarch");
    assert_eq!(
        refused(&m),
        [
            "The 'profile' field is not defined in manifest.xml.",
            "The 'osarch' field is not defined in manifest.xml."
        ]
    );
    let mut m = statelite();
    m.osimage.insert("provmethod".into(), "sysclone".into());
    assert_eq!(
        refused(&m),
        ["Importing images with 'provemethod' sysclone is not supported for osarch 'x86_64'"]
    );
    let mut m = statelite();
    m.rootimgtree = None;
    assert_eq!(
        refused(&m),
        ["The 'rootimgtree' field is not defined in manifest.xml."]
    );
    // install: the template is required (xCAT's message names osarch), then the media.
    let mut m = statelite();
    m.osimage.insert("provmethod".into(), "install".into());
    assert_eq!(
        refused(&m),
        ["The 'osarch' field is not defined in manifest.xml."]
    );
    m.linuximage.insert("template".into(), "/t.tmpl".into());
    m.media = Some("required".into());
    assert_eq!(
        refused(&m),
        ["This image requires that you first copy media for rhels8-x86_64"]
    );
    fs::create_dir_all(mn.host("/install/rhels8/x86_64")).unwrap();
    assert!(ctx.check_manifest(m.to_xml().as_bytes()).is_ok());
    assert!(matches!(
        ctx.check_manifest(b"<xcatimage><osimage>"),
        Err(ManifestProblem::Invalid(_))
    ));
}

#[test]
fn litefile_rows_skip_what_an_enabled_all_row_covers() {
    let mn = Mn::new();
    mn.rows(&[
        (
            "litefile",
            &[("image", "ALL"), ("file", "/etc/same")],
            &[("options", "tmpfs")],
        ),
        (
            "litefile",
            &[("image", "ALL"), ("file", "/etc/other")],
            &[("options", "tmpfs")],
        ),
        (
            "litefile",
            &[("image", "ALL"), ("file", "/etc/disabled")],
            &[("options", "tmpfs"), ("disable", "1")],
        ),
    ]);
    let csv = "#image,file,options,comments,disable\n\
               \"compute\",\"/etc/same\",\"tmpfs\",,\n\
               \"compute\",\"/etc/other\",\"persistent\",,\n\
               \"compute\",\"/etc/disabled\",\"tmpfs\",,\n\
               \"compute\",\"/var/new\",\"rw\",,\n";
    let mut m = statelite_members();
    m.insert("litefile.csv".into(), file(csv));
    let o = opts();
    let a = accepted(statelite());
    let rows = mn.ctx(&o).rows(&a, &m).unwrap();
    let lite: Vec<(String, Option<String>)> = rows
        .iter()
        .filter(|u| u.table == "litefile")
        .map(|u| (u.key[1].1.clone(), u.values[0].1.clone()))
        .collect();
    assert_eq!(
        lite,
        [
            ("/etc/other".to_string(), Some("persistent".to_string())),
            ("/etc/disabled".to_string(), Some("tmpfs".to_string())),
            ("/var/new".to_string(), Some("rw".to_string())),
        ]
    );
    let image = ("image".to_string(), a.imagename.clone());
    assert!(rows
        .iter()
        .filter(|u| u.table == "litefile")
        .all(|u| u.key[0] == image));
    assert_eq!(
        (rows[0].table.as_str(), rows[1].table.as_str()),
        ("osimage", "linuximage")
    );
}

#[test]
fn p_gives_defined_enabled_nodes_the_non_default_scripts() {
    let mn = Mn::new();
    mn.rows(&[
        ("nodelist", &[("node", "n1")], &[("groups", "compute")]),
        (
            "nodelist",
            &[("node", "n2")],
            &[("groups", "compute"), ("disable", "1")],
        ),
        (
            "postscripts",
            &[("node", "xcatdefaults")],
            &[
                ("postscripts", "syslog,remoteshell"),
                ("postbootscripts", "otherpkgs"),
            ],
        ),
    ]);
    let mut manifest = statelite();
    manifest.postscripts = Some("syslog,mine".into());
    manifest.postbootscripts = Some("otherpkgs".into());
    let a = accepted(manifest.clone());
    let mut o = opts();
    o.postscripts = Some("n1,n2,n3".into());
    let rows = mn.ctx(&o).rows(&a, &statelite_members()).unwrap();
    let ps: Vec<&Upsert> = rows.iter().filter(|u| u.table == "postscripts").collect();
    assert_eq!(ps.len(), 1, "{rows:?}");
    assert_eq!(ps[0].key, [("node".to_string(), "n1".to_string())]);
    assert_eq!(
        ps[0].values,
        [
            ("postscripts".to_string(), Some("mine".to_string())),
            ("postbootscripts".to_string(), None),
        ]
    );
    let mut report = Collect::default();
    assert_eq!(mn.ctx(&o).report_nodes(&mut report).unwrap(), None);
    assert_eq!(report.info, ["Adding postscripts."]);
    assert_eq!(
        report.warnings,
        ["The following nodes will be skipped because they are not in the nodelist table.\n  n2,n3"]
    );
    // No defined node at all: no row, and xCAT's error once the image is placed.
    o.postscripts = Some("n3".into());
    let rows = mn.ctx(&o).rows(&a, &statelite_members()).unwrap();
    assert!(!rows.iter().any(|u| u.table == "postscripts"));
    assert_eq!(
        mn.ctx(&o).report_nodes(&mut Collect::default()).unwrap(),
        Some("The nodes n3 are not defined in xCAT DB.".to_string())
    );
    // Only default scripts: no row.
    let mut only_defaults = manifest;
    only_defaults.postscripts = Some("syslog".into());
    o.postscripts = Some("n1".into());
    let rows = mn
        .ctx(&o)
        .rows(&accepted(only_defaults), &statelite_members())
        .unwrap();
    assert!(!rows.iter().any(|u| u.table == "postscripts"));
}

#[test]
fn dry_run_preview_says_create_or_replace_and_row_changes() {
    let mn = Mn::new();
    mn.write(&format!("{DIR}/kernel"), "old kernel");
    mn.rows(&[(
        "osimage",
        &[("imagename", "rhels8-x86_64-statelite-compute")],
        &[("profile", "old")],
    )]);
    let o = opts();
    let ctx = mn.ctx(&o);
    let a = accepted(statelite());
    let m = statelite_members();
    let steps = ctx
        .plan_steps(&a, &m, false, &mut Collect::default())
        .unwrap();
    let rows = ctx.rows(&a, &m).unwrap();
    let preview = ctx.preview(&steps, &rows).unwrap();
    assert_eq!(
        preview.files[0],
        (format!("{DIR}/kernel"), FileAction::Replace)
    );
    assert!(preview.files[1..]
        .iter()
        .all(|(_, action)| *action == FileAction::Create));
    assert_eq!(preview.rows[0].table, "osimage");
    assert_eq!(preview.rows[0].kind, ChangeKind::Update);
    assert_eq!(preview.rows[1].kind, ChangeKind::Insert);
    // Nothing was touched.
    assert_eq!(
        fs::read_to_string(mn.host(&format!("{DIR}/kernel"))).unwrap(),
        "old kernel"
    );
    assert!(!mn.host(&format!("{DIR}/kernel.ORIG")).exists());
}

#[test]
fn placing_keeps_what_was_there_as_orig_and_writes_rows_last() {
    let mn = Mn::new();
    mn.write("/install/postscripts/hello", "old hello");
    let spool = tempfile::tempdir().unwrap();
    let spooled = spool.path().join("1");
    fs::write(&spooled, "new hello").unwrap();
    let mut m = Members::new();
    m.insert(
        "extra/hello".into(),
        Spooled {
            path: Some(spooled),
            data: None,
            kind: MemberKind::File,
            mode: 0o644,
        },
    );
    let o = opts();
    let ctx = mn.ctx(&o);
    let a = accepted(Manifest {
        osimage: columns(&[("imagename", "img"), ("profile", "p")]),
        ..Manifest::default()
    });
    let steps = [file_step("extra/hello", "/install/postscripts/hello")];
    let rows = ctx.rows(&a, &m).unwrap();
    let planned = Planned {
        accepted: &a,
        steps: &steps,
        upserts: &rows,
        members: &m,
    };
    let mut placement = crate::placement::Placement::new();
    let mut outcome = ImageOutcome::new("img");
    let mut report = Collect::default();
    ctx.apply_steps(
        &planned,
        &mut None,
        &mut placement,
        &mut outcome,
        &mut report,
    )
    .unwrap();
    placement.commit();
    assert_eq!(
        fs::read_to_string(mn.host("/install/postscripts/hello")).unwrap(),
        "new hello"
    );
    assert_eq!(
        fs::read_to_string(mn.host("/install/postscripts/hello.ORIG")).unwrap(),
        "old hello"
    );
    assert_eq!(outcome.files, ["/install/postscripts/hello"]);
    assert_eq!(
        report.info,
        [
            "/install/postscripts/hello",
            "  Moving old /install/postscripts/hello to /install/postscripts/hello.ORIG."
        ]
    );
    let row = mn.catalog.get("osimage", &[("imagename", "img")]).unwrap();
    assert_eq!(row.unwrap().get("profile").map(String::as_str), Some("p"));
}

/// A plain tar bundle: (path, content) files, directories implied.
fn bundle(path: &Path, files: &[(&str, &str)]) {
    let mut b = tar::Builder::new(Vec::new());
    for (name, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, name, content.as_bytes()).unwrap();
    }
    fs::write(path, b.into_inner().unwrap()).unwrap();
}

fn netboot_xml(image: &str) -> String {
    let d = format!("/install/netboot/rhels8/x86_64/{image}");
    Manifest {
        osimage: columns(&[
            ("imagename", image),
            ("profile", image),
            ("provmethod", "netboot"),
            ("osvers", "rhels8"),
            ("osarch", "x86_64"),
        ]),
        linuximage: columns(&[("imagename", image), ("rootimgdir", &d)]),
        kernel: Some(format!("{d}/kernel")),
        ramdisk: Some(format!("{d}/initrd-stateless.gz")),
        rootimg: Some(format!("{d}/rootimg.cpio.gz")),
        ..Manifest::default()
    }
    .to_xml()
}

fn netboot_files<'a>(image: &'a str, xml: &'a str) -> Vec<(String, &'a str)> {
    vec![
        (format!("{image}/manifest.xml"), xml),
        (format!("{image}/kernel"), "k"),
        (format!("{image}/initrd-stateless.gz"), "r"),
        (format!("{image}/rootimg.cpio.gz"), "i"),
    ]
}

fn run_import(mn: &Mn, bundle: &Path, dry_run: bool) -> (ImportReport, Collect) {
    let mut o = opts();
    o.bundle = BundleSource::Path(bundle.to_path_buf());
    o.dry_run = dry_run;
    let mut report = Collect::default();
    let out = import(&mn.root, &mn.catalog, &o, &mut report).unwrap();
    (out, report)
}

#[test]
fn several_images_one_refused_the_other_imported() {
    let mn = Mn::new();
    let work = tempfile::tempdir().unwrap();
    let good = netboot_xml("aaa");
    let bad = netboot_xml("bbb").replace("<provmethod>netboot</provmethod>", "");
    let mut files = netboot_files("aaa", &good);
    files.extend(netboot_files("bbb", &bad));
    let path = work.path().join("b.tar");
    let named: Vec<(&str, &str)> = files.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    bundle(&path, &named);

    // --dry-run plans both and touches nothing.
    let (out, _) = run_import(&mn, &path, true);
    assert_eq!(out.images.len(), 2);
    assert!(out.images[0].ok && !out.images[1].ok);
    assert!(out.images[0].dry_run.is_some());
    assert!(!mn.host("/install/netboot").exists());

    let (out, report) = run_import(&mn, &path, false);
    assert_eq!(out.images[0].image, "aaa");
    assert!(out.images[0].ok, "{report:?}");
    assert_eq!(out.images[0].files.len(), 3);
    assert_eq!(out.images[1].image, "bbb");
    assert!(!out.images[1].ok);
    assert_eq!(out.images[1].failure, Some(Failure::Corrupt));
    assert_eq!(
        report.errors,
        ["The 'provmethod' field is not defined in manifest.xml."]
    );
    assert!(!out.all_ok());
    assert_eq!(
        fs::read_to_string(mn.host("/install/netboot/rhels8/x86_64/aaa/rootimg.cpio.gz")).unwrap(),
        "i"
    );
    assert!(mn
        .catalog
        .get("osimage", &[("imagename", "aaa")])
        .unwrap()
        .is_some());
    assert!(mn
        .catalog
        .get("osimage", &[("imagename", "bbb")])
        .unwrap()
        .is_none());
}

#[test]
fn a_directory_without_manifest_stops_the_images_after_it() {
    let mn = Mn::new();
    let work = tempfile::tempdir().unwrap();
    let xml = netboot_xml("ccc");
    // "bbb" sorts before "ccc" and has no manifest.xml: xCAT stops there.
    let mut files = vec![("bbb/kernel".to_string(), "k")];
    files.extend(netboot_files("ccc", &xml));
    let path = work.path().join("b.tar");
    let named: Vec<(&str, &str)> = files.iter().map(|(n, c)| (n.as_str(), *c)).collect();
    bundle(&path, &named);
    let (out, report) = run_import(&mn, &path, false);
    assert_eq!(out.images.len(), 1);
    assert_eq!(out.images[0].image, "bbb");
    assert_eq!(out.images[0].failure, Some(Failure::Corrupt));
    assert_eq!(
        report.errors,
        ["Failed to find manifest.xml file in image bundle"]
    );
    assert!(!mn.host("/install/netboot/rhels8/x86_64/ccc").exists());
}

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

//! Permission and space failures are reported as what they are (issue #11): an
//! existing bundle the user may not read exits 1 with its path and `Permission
//! denied` (not xCAT's `Cannot find`, exit 3, which stays for a bundle that is not
//! there), and an export that runs out of space names its destination. Root
//! bypasses file permissions, so the first test drops to `nobody` with setpriv.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use common::*;

/// Runs the binary as nobody:nogroup with no supplementary groups.
fn as_nobody(args: &[&str]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
        .arg(bin())
        .args(args)
        .current_dir("/")
        .output()
        .expect("setpriv")
}

#[test]
fn an_unreadable_bundle_is_a_permission_error_not_a_missing_one() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    fs::set_permissions(work.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let bundle = export_sample(&src, work.path(), &[]);
    fs::set_permissions(&bundle, fs::Permissions::from_mode(0o600)).unwrap();
    let target = Mn::empty();
    fs::set_permissions(target.root(), fs::Permissions::from_mode(0o755)).unwrap();
    let b = bundle.to_str().unwrap();
    let root = target.root().to_str().unwrap();
    let runs: [&[&str]; 6] = [
        &["--root", root, "import", b],
        &["verify", b],
        &["ls", b],
        &["cat", b, "etc/passwd"],
        &["inspect", b],
        &["import", "--dry-run", b],
    ];
    for args in runs {
        let out = as_nobody(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        let err = stderr(&out);
        assert!(
            err.contains(b) && err.contains("Permission denied"),
            "{args:?}: {}",
            text(&out)
        );
        assert!(!err.contains("Cannot find"), "{args:?}: {}", text(&out));
    }
    // A bundle that is not there keeps xCAT's text and exit 3.
    let missing = work.path().join("missing.tgz");
    let m = missing.to_str().unwrap();
    for args in [vec!["--root", root, "import", m], vec!["verify", m]] {
        let out = as_nobody(&args);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", text(&out));
        assert!(
            stderr(&out).contains(&format!("Cannot find {m}")),
            "{}",
            text(&out)
        );
    }
}

/// A tmpfs mounted for the test, unmounted when dropped (also when the test fails).
struct Tmpfs<'a>(&'a Path);

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn an_export_out_of_space_names_its_destination() {
    let src = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let small = work.path().join("small");
    fs::create_dir(&small).unwrap();
    sh(&format!(
        "mount -t tmpfs -o size=1m tmpfs {}",
        small.display()
    ));
    let _mounted = Tmpfs(&small);
    let dest = small.join("img.tgz");
    let out = src.run(&["export", IMG, dest.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stderr(&out).contains(&format!("{}: No space left on device", dest.display())),
        "{}",
        text(&out)
    );
    // `-o DIR` names the bundle it was writing; nothing is left behind.
    let out = src.run(&["export", IMG, "-o", small.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let named = small.join(format!("{IMG}.tgz"));
    assert!(
        stderr(&out).contains(&format!("{}: No space left on device", named.display())),
        "{}",
        text(&out)
    );
    assert_eq!(fs::read_dir(&small).unwrap().count(), 0, "temp files left");
}

//! Fuzzes `tree::restore` (tar or cpio newc, detected from the bytes) into a
//! fresh directory per input, as root, and checks that nothing escaped it.
//!
//! Layout, created once per process (`C`) and per input (`D`):
//!
//! ```text
//! C/canary.txt        known content, mode and mtime: must never change
//! C/cwd/              the process's working directory: must stay empty
//! C/D/a/dest/         the restore destination (stands for `rootimg`)
//! ```
//!
//! so an escape through `..`, a symlink (relative or to the working directory), a
//! hard link, or a path resolved against the cwd instead of a dirfd shows up as a new
//! or changed name in `C/D/a`, `C/D`, `C`, `C/cwd` or `/`, checked after every run.
#![no_main]

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use imgport::tree::{restore, RestoreOptions};
use libfuzzer_sys::fuzz_target;

const CANARY: &[u8] = b"canary: must never change\n";

struct Fixture {
    /// Kept alive for the process's lifetime; removed by libFuzzer's exit.
    _dir: tempfile::TempDir,
    base: PathBuf,
    canary_meta: (u32, i64, u64),
    root_names: BTreeSet<std::ffi::OsString>,
}

fn names(dir: &Path) -> BTreeSet<std::ffi::OsString> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name())
        .collect()
}

fn meta(p: &Path) -> (u32, i64, u64) {
    let m = fs::symlink_metadata(p).unwrap();
    (m.mode(), m.mtime(), m.ino())
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("imgport-fuzz-restore.")
            .tempdir()
            .unwrap();
        let base = dir.path().to_path_buf();
        fs::write(base.join("canary.txt"), CANARY).unwrap();
        fs::create_dir(base.join("cwd")).unwrap();
        std::env::set_current_dir(base.join("cwd")).unwrap();
        Fixture {
            canary_meta: meta(&base.join("canary.txt")),
            root_names: names(Path::new("/")),
            base,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let run = tempfile::Builder::new()
        .prefix("run.")
        .tempdir_in(&f.base)
        .unwrap();
    let a = run.path().join("a");
    let dest = a.join("dest");
    fs::create_dir_all(&dest).unwrap();

    let _ = restore(data, &dest, b"rootimg", &RestoreOptions::default());

    let only = |dir: &Path, want: &[&str]| {
        let got = names(dir);
        let want: BTreeSet<_> = want.iter().map(std::ffi::OsString::from).collect();
        assert_eq!(
            got,
            want,
            "entries appeared outside the restore dir in {}",
            dir.display()
        );
    };
    // `dest` itself may have been replaced by nothing else: it stays a real directory.
    assert!(
        fs::symlink_metadata(&dest).unwrap().is_dir(),
        "dest is no longer a directory"
    );
    only(&a, &["dest"]);
    only(run.path(), &["a"]);
    let run_name = run.path().file_name().unwrap().to_str().unwrap();
    only(&f.base, &["canary.txt", "cwd", run_name]);
    only(&f.base.join("cwd"), &[]);
    assert_eq!(fs::read(f.base.join("canary.txt")).unwrap(), CANARY);
    assert_eq!(
        meta(&f.base.join("canary.txt")),
        f.canary_meta,
        "canary metadata changed"
    );
    assert_eq!(names(Path::new("/")), f.root_names, "a name appeared in /");
    // Removing the restored tree must work from here, without following anything.
    drop(run);
});

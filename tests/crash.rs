//! Crash safety (issue #11): an import killed with SIGKILL at every journaled step
//! (the test-only hook `IMGPORT_TEST_CRASH_AT`, inert without it) leaves an MN that the
//! next `imgport recover`, or the next plain import, brings to exactly the state
//! before that import or exactly the complete new image, with no staging or temporary
//! directory behind; the MN lock makes a second writer wait (or fail with
//! `--no-wait`) and an export wait for a whole image; a killed export's temporary
//! bundle is removed by the next export. Synchronisation is by fifos
//! (`IMGPORT_TEST_PAUSE_AT`) and stderr lines, never by sleeping.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::crashkit::{copy_mn, imgport, import_v2_ends, leftovers, snapshot, Fixture};
use common::{bin, python, sh, stderr, stdout, text, IMG, ROOTIMGDIR};

/// What one crash trial ended in.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Before,
    After,
}

/// The points of the import the hook can stop at: the journal's begin and end, each
/// record once synced (the step not done yet), each step once done, and the rows
/// transaction just before its COMMIT (every statement run, nothing committed).
const POINTS: &[&str] = &[
    "journal-begun",
    "rec-staging",
    "did-staging",
    "rec-image",
    "rec-mkdir",
    "did-mkdir",
    "rec-park",
    "did-park",
    "rec-backup",
    "did-backup",
    "rec-place",
    "did-place",
    "tree-synced",
    "rec-rows",
    "rows-commit",
    "did-rows",
    "rec-commit",
    "did-commit",
    "journal-done",
];

/// Kills an import of bundle v2 into a copy of `base` at every occurrence of every
/// point; after each kill runs `then` (`recover`, or the import again) and checks
/// the end state. Returns (trials, ends).
fn campaign(fx: &Fixture, base: &Path, reimport: bool) -> (usize, Vec<(String, End)>) {
    let (before, after, clean) = import_v2_ends(fx, base);
    // A re-import after a roll-forward imports the image a second time (xCAT's
    // `.ORIG` rule then keeps version 2 as the backup).
    let out = imgport(clean.path(), &["import", fx.bundle(2)], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let after_twice = snapshot(clean.path());
    let mut ends = Vec::new();
    let mut trials = 0;
    for point in POINTS {
        for n in 1.. {
            let mn = copy_mn(base);
            let at = format!("{point}:{n}");
            let out = imgport(
                mn.path(),
                &["import", fx.bundle(2)],
                &[("IMGPORT_TEST_CRASH_AT", &at)],
            );
            if out.status.success() {
                // The point is not reached that often: the import simply completed.
                assert_eq!(snapshot(mn.path()), after, "{at}: uncrashed import");
                break;
            }
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(out.status.signal(), Some(9), "{at}: {}", text(&out));
            trials += 1;
            let then = if reimport {
                imgport(mn.path(), &["import", fx.bundle(2)], &[])
            } else {
                imgport(mn.path(), &["--json", "recover"], &[])
            };
            assert!(then.status.success(), "{at}: {}", text(&then));
            let now = snapshot(mn.path());
            assert_eq!(leftovers(mn.path()), "", "{at}: leftovers");
            let end = if reimport {
                let rolled_back = stdout(&then).contains(": rolled back");
                if rolled_back {
                    assert_eq!(now, after, "{at}: re-import after a roll-back");
                } else {
                    assert!(now == after || now == after_twice, "{at}: re-import");
                }
                End::After
            } else if now == before {
                End::Before
            } else {
                assert_eq!(now, after, "{at}: neither before nor after");
                End::After
            };
            ends.push((at, end));
        }
    }
    (trials, ends)
}

/// Runs [`campaign`] on a fresh fixture's empty or populated MN, prints its tally
/// and checks it made at least `min_trials` kills; returns where each kill ended.
fn run_campaign(
    name: &str,
    populated: bool,
    reimport: bool,
    min_trials: usize,
) -> Vec<(String, End)> {
    let fx = Fixture::new();
    let base = if populated {
        fx.populated.path()
    } else {
        fx.empty.path()
    };
    let (trials, ends) = campaign(&fx, base, reimport);
    let before = ends.iter().filter(|(_, e)| *e == End::Before).count();
    eprintln!(
        "{name}: {trials} kills, all clean: {before} back to before, {} complete",
        ends.len() - before
    );
    assert!(trials >= min_trials, "{trials}");
    ends
}

/// Where the kill at `point` ended, if the campaign reached it.
fn end_at<'a>(ends: &'a [(String, End)], point: &str) -> Option<&'a End> {
    ends.iter().find(|(a, _)| a == point).map(|(_, e)| e)
}

#[test]
fn kill_at_every_step_then_recover_on_an_empty_mn() {
    let ends = run_campaign("empty MN, recover", false, false, 20);
    // Killed before its rows, an import is undone; after them, completed.
    assert_eq!(end_at(&ends, "did-place:1"), Some(&End::Before));
    assert_eq!(end_at(&ends, "rec-rows:1"), Some(&End::Before));
    assert_eq!(end_at(&ends, "rows-commit:1"), Some(&End::Before));
    assert_eq!(end_at(&ends, "did-rows:1"), Some(&End::After));
}

#[test]
fn kill_at_every_step_then_recover_on_an_mn_with_the_image() {
    let ends = run_campaign("populated MN, recover", true, false, 30);
    // The original version's .ORIG backups survive a kill after they were parked.
    assert_eq!(end_at(&ends, "did-park:1"), Some(&End::Before));
    assert_eq!(end_at(&ends, "did-backup:1"), Some(&End::Before));
    assert_eq!(end_at(&ends, "did-rows:1"), Some(&End::After));
}

#[test]
fn kill_at_every_step_then_import_again_on_an_mn_with_the_image() {
    run_campaign("populated MN, re-import", true, true, 30);
}

/// Opens `fifo` for writing: returns once the paused process reached its point.
fn reached(fifo: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .write(true)
        .open(fifo)
        .expect("open fifo")
}

fn fifo(dir: &Path) -> PathBuf {
    let f = dir.join("pause");
    sh(&format!("mkfifo {}", f.display()));
    f
}

/// Spawns imgport with stderr piped and reads its stderr until a line contains
/// `needle`; returns the child and the lines read.
fn spawn_until(root: &Path, args: &[&str], needle: &str) -> (std::process::Child, Vec<String>) {
    let mut child = Command::new(bin())
        .arg("--root")
        .arg(root)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = Vec::new();
    let mut err = BufReader::new(child.stderr.take().expect("stderr"));
    loop {
        let mut l = String::new();
        let n = err.read_line(&mut l).expect("read stderr");
        assert!(n > 0, "no '{needle}' line: {lines:?}");
        let hit = l.contains(needle);
        lines.push(l);
        if hit {
            break;
        }
    }
    // Keep draining in the background so the child never blocks on a full pipe.
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut rest);
    });
    (child, lines)
}

#[test]
fn a_second_writer_waits_for_the_lock_or_fails_with_no_wait() {
    let fx = Fixture::new();
    let mn = copy_mn(fx.populated.path());
    let work = tempfile::tempdir().expect("tempdir");
    let pause = fifo(work.path());
    let first = Command::new(bin())
        .arg("--root")
        .arg(mn.path())
        .args(["import", fx.bundle(2)])
        .env(
            "IMGPORT_TEST_PAUSE_AT",
            format!("locked-exclusive:{}", pause.display()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let release = reached(&pause);
    // At once with --no-wait: exit 1, naming the holder.
    let refused = imgport(mn.path(), &["--no-wait", "import", fx.bundle(1)], &[]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    let msg = stderr(&refused);
    assert!(
        msg.contains(&format!("held by pid {} (import)", first.id())),
        "{msg}"
    );
    // A reader is refused the same way.
    let refused = imgport(mn.path(), &["--no-wait", "tabdump", "osimage"], &[]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    // Without --no-wait: a line on stderr, then the wait.
    let (second, lines) = spawn_until(
        mn.path(),
        &["import", fx.bundle(1)],
        "waiting for the lock on",
    );
    assert!(
        lines
            .last()
            .is_some_and(|l| l.contains(&format!("pid {} (import)", first.id()))),
        "{lines:?}"
    );
    drop(release);
    let first = first.wait_with_output().expect("wait");
    assert!(first.status.success(), "{}", text(&first));
    let second = second.wait_with_output().expect("wait");
    assert!(second.status.success(), "{}", text(&second));
    // The second import came after the first: version 1 is in place, 2 its backup.
    let kernel = mn
        .path()
        .join(ROOTIMGDIR.trim_start_matches('/'))
        .join("kernel");
    assert_eq!(std::fs::read_to_string(&kernel).unwrap(), "kernel v1\n");
    let orig = kernel.with_file_name("kernel.ORIG");
    assert_eq!(std::fs::read_to_string(orig).unwrap(), "kernel v2\n");
}

/// The kernel and tree file of a bundle, through imgport's own readers.
fn versions(root: &Path, bundle: &Path) -> (String, String) {
    let names = common::tar_names(bundle);
    let kernel = names
        .iter()
        .find(|n| n.ends_with("/kernel"))
        .expect("kernel member")
        .clone();
    let kernel = python(
        "import tarfile,sys\nprint(tarfile.open(sys.argv[1]).extractfile(sys.argv[2]).read().decode(),end='')",
        &[bundle.to_str().expect("utf8"), &kernel],
    );
    let out = imgport(
        root,
        &["cat", bundle.to_str().expect("utf8"), "imgport-version"],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    (kernel, stdout(&out))
}

#[test]
fn an_export_waits_for_an_import_and_sees_a_whole_image() {
    let fx = Fixture::new();
    let mn = copy_mn(fx.populated.path());
    let work = tempfile::tempdir().expect("tempdir");
    let pause = fifo(work.path());
    // Paused halfway: the kernel is new, the tree and rows still old.
    let import = Command::new(bin())
        .arg("--root")
        .arg(mn.path())
        .args(["import", fx.bundle(2)])
        .env(
            "IMGPORT_TEST_PAUSE_AT",
            format!("did-place:{}", pause.display()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let release = reached(&pause);
    let out_path = work.path().join("during.tgz");
    let (export, _) = spawn_until(
        mn.path(),
        &["export", IMG, out_path.to_str().expect("utf8")],
        "waiting for the lock on",
    );
    drop(release);
    let import = import.wait_with_output().expect("wait");
    assert!(import.status.success(), "{}", text(&import));
    let export = export.wait_with_output().expect("wait");
    assert!(export.status.success(), "{}", text(&export));
    assert_eq!(
        versions(mn.path(), &out_path),
        ("kernel v2\n".into(), "tree v2\n".into())
    );
}

#[test]
fn an_export_after_a_killed_import_recovers_first() {
    let fx = Fixture::new();
    let mn = copy_mn(fx.populated.path());
    let before = snapshot(mn.path());
    let out = imgport(
        mn.path(),
        &["import", fx.bundle(2)],
        &[("IMGPORT_TEST_CRASH_AT", "did-place:2")],
    );
    assert!(!out.status.success());
    let work = tempfile::tempdir().expect("tempdir");
    let dest = work.path().join("after.tgz");
    let out = imgport(
        mn.path(),
        &["export", IMG, dest.to_str().expect("utf8")],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(stderr(&out).contains("rolled back"), "{}", text(&out));
    assert_eq!(snapshot(mn.path()), before);
    assert_eq!(leftovers(mn.path()), "");
    assert_eq!(
        versions(mn.path(), &dest),
        ("kernel v1\n".into(), "tree v1\n".into())
    );
    // Nothing left to do now.
    let out = imgport(mn.path(), &["recover"], &[]);
    assert!(
        stdout(&out).contains("Nothing to recover"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_killed_export_leaves_a_temp_file_the_next_export_removes() {
    let fx = Fixture::new();
    let work = tempfile::tempdir().expect("tempdir");
    let dest = work.path().join("b.tgz");
    let dest_s = dest.to_str().expect("utf8");
    let out = imgport(
        fx.populated.path(),
        &["export", IMG, dest_s],
        &[("IMGPORT_TEST_CRASH_AT", "export-writing")],
    );
    assert!(!out.status.success());
    let temps = || sh(&format!("cd {} && ls -A", work.path().display()));
    let left = temps();
    assert!(left.starts_with(".imgport-export-"), "{left}");
    assert!(!dest.exists());
    let out = imgport(fx.populated.path(), &["export", IMG, dest_s], &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(temps(), "b.tgz\n");
    // A live export's temp file is never taken for a dead one's.
    let sync = tempfile::tempdir().expect("tempdir");
    let pause = fifo(sync.path());
    let slow = Command::new(bin())
        .arg("--root")
        .arg(fx.populated.path())
        .args(["export", IMG, dest_s])
        .env(
            "IMGPORT_TEST_PAUSE_AT",
            format!("export-writing:{}", pause.display()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let release = reached(&pause);
    let other = work.path().join("c.tgz");
    let out = imgport(
        fx.populated.path(),
        &["export", IMG, other.to_str().expect("utf8")],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(temps().contains(".imgport-export-"), "{}", temps());
    drop(release);
    let slow = slow.wait_with_output().expect("wait");
    assert!(slow.status.success(), "{}", text(&slow));
    assert_eq!(temps(), "b.tgz\nc.tgz\n");
}

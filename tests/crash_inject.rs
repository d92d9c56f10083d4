//! Crash safety from outside the process (issue #11): faults injected by `strace` into
//! the very syscalls an import makes, and `kill -9` at random moments.
//!
//! * ENOSPC into every `fsync`, `fdatasync` and `pwrite64` of an import (SQLite's
//!   journal, super-journal, table files and directory syncs, imgport's own journal):
//!   the import must fail naming what failed and leave the MN exactly as before (files
//!   and rows), or, when the fault comes after the commit point, succeed with the
//!   complete new image.
//! * SIGKILL at every `rename`, `unlink`, `unlinkat`, `fsync` and `fdatasync` of an
//!   import, then `imgport recover`: the MN exactly old or exactly new.
//! * SIGKILL after a delay drawn from a seeded generator, many times, then `recover`.
//!
//! Each campaign counts its trials and outcomes and prints them (run with
//! `--nocapture`); every bad outcome is listed before the test fails. The injection
//! points are counted on a reference run of the same import (`strace -f`), so no
//! number here depends on the sample's size. Nothing synchronises by sleeping: each
//! check runs after the process has been waited for.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::crashkit::{copy_mn, imgport, import_v2_ends, leftovers, snapshot, Fixture};
use common::{bin, text};

/// The states a trial may end in.
struct Ends {
    before: String,
    after: String,
}

impl Ends {
    /// The MN `base` before the import of bundle v2, and after it on a copy.
    fn of(fx: &Fixture, base: &Path) -> Ends {
        let (before, after, _clean) = import_v2_ends(fx, base);
        Ends { before, after }
    }
}

/// `imgport --root MN import BUNDLE` under `strace -f` with `strace_args`.
fn traced_import(mn: &Path, bundle: &str, strace_args: &[&str]) -> Output {
    Command::new("strace")
        .args(["-f", "-qq"])
        .args(strace_args)
        .arg(bin())
        .arg("--root")
        .arg(mn)
        .args(["import", bundle])
        .stdin(Stdio::null())
        .output()
        .expect("run strace (package strace)")
}

/// How often the import's main thread calls each of `syscalls` (strace counts
/// injections per syscall and per thread; the main thread makes every call of
/// interest, workers only write tree files).
fn count_calls(fx: &Fixture, base: &Path, syscalls: &[&str]) -> BTreeMap<String, u32> {
    let mn = copy_mn(base);
    // Outside the MN (its snapshot must not see the log) and per call: the tests of
    // this file run in parallel, and a shared name let one test read or remove
    // another's log.
    let logdir = tempfile::tempdir().expect("tempdir");
    let log = logdir.path().join("strace.log");
    let log = log.to_str().expect("utf8").to_string();
    let set = syscalls.join(",");
    let out = traced_import(
        mn.path(),
        fx.bundle(2),
        &["-o", &log, "-e", &format!("trace={set}")],
    );
    assert!(out.status.success(), "{}", text(&out));
    let trace = std::fs::read_to_string(&log).expect("strace log");
    let mut main = None;
    let mut counts = BTreeMap::new();
    for line in trace.lines() {
        let Some((tid, rest)) = line.split_once(' ') else {
            continue;
        };
        let main = *main.get_or_insert(tid);
        let Some((name, _)) = rest.trim_start().split_once('(') else {
            continue;
        };
        if tid == main && syscalls.contains(&name) {
            *counts.entry(name.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

/// The tally of one campaign.
#[derive(Default)]
struct Tally {
    trials: usize,
    /// Ended exactly as before the import.
    old: usize,
    /// Ended with the complete new image.
    new: usize,
    /// Everything else, described.
    bad: Vec<String>,
}

impl Tally {
    fn print(&self, name: &str) {
        eprintln!(
            "{name}: {} trials, {} clean ({} exactly old, {} exactly new), {} bad",
            self.trials,
            self.old + self.new,
            self.old,
            self.new,
            self.bad.len()
        );
        for b in &self.bad {
            eprintln!("  BAD {b}");
        }
    }

    /// Files the MN's state `now` (after `out`, with `leftovers` found) as old, new
    /// or bad.
    fn judge(&mut self, what: &str, ends: &Ends, now: &str, left: &str) -> Option<bool> {
        self.trials += 1;
        if !left.is_empty() {
            self.bad.push(format!("{what}: leftovers {left}"));
            return None;
        }
        if now == ends.before {
            self.old += 1;
            Some(false)
        } else if now == ends.after {
            self.new += 1;
            Some(true)
        } else {
            self.bad.push(format!(
                "{what}: neither old nor new:\n{}",
                diff(&ends.before, &ends.after, now)
            ));
            None
        }
    }
}

/// The lines of `now` the old state lacks (`+`, marked `(new)` when the new state has
/// them) and those of the old state it lacks (`-`).
fn diff(before: &str, after: &str, now: &str) -> String {
    let has = |s: &str, l: &str| s.lines().any(|x| x == l);
    let mut out = Vec::new();
    for l in now.lines().filter(|l| !has(before, l)) {
        let mark = if has(after, l) { " (new)" } else { "" };
        out.push(format!("    + {l}{mark}"));
    }
    for l in before.lines().filter(|l| !has(now, l)) {
        out.push(format!("    - {l}"));
    }
    out.join("\n")
}

/// The import of bundle v2 into `mn` with `inject` (strace's `error=…` or
/// `signal=…`) at the `n`th call of `call`; only that call is traced.
fn injected_import(fx: &Fixture, mn: &Path, call: &str, n: u32, inject: &str) -> Output {
    traced_import(
        mn,
        fx.bundle(2),
        &[
            "-o",
            "/dev/null",
            "-e",
            &format!("trace={call}"),
            "-e",
            &format!("inject={call}:{inject}:when={n}"),
        ],
    )
}

/// ENOSPC into the `n`th call of each of `syscalls`, for every `n` the import makes.
fn enospc_campaign(fx: &Fixture, base: &Path, syscalls: &[&str]) -> Tally {
    let ends = Ends::of(fx, base);
    let counts = count_calls(fx, base, syscalls);
    let mut t = Tally::default();
    for (call, &count) in &counts {
        for n in 1..=count {
            let mn = copy_mn(base);
            let what = format!("ENOSPC at {call} #{n}");
            let out = injected_import(fx, mn.path(), call, n, "error=ENOSPC");
            let now = snapshot(mn.path());
            let ended = t.judge(&what, &ends, &now, &leftovers(mn.path()));
            match (ended, out.status.success()) {
                (Some(true), true) | (None, _) => {}
                (Some(false), false) => {
                    // The failure is reported, naming the file or the table files.
                    let err = String::from_utf8_lossy(&out.stderr);
                    let named = err.contains(".sqlite")
                        || err.contains("/etc/xcat")
                        || err.contains(mn.path().to_str().expect("utf8"))
                        || err.contains("/install/")
                        || err.contains("rootimg/")
                        || err.contains("/var/lib/imgport");
                    let said = err.contains("No space left on device")
                        || err.contains("database or disk is full")
                        || err.contains("disk I/O error");
                    if !(named && said) {
                        t.bad
                            .push(format!("{what}: message does not say what failed: {err}"));
                    }
                }
                (Some(new), ok) => t.bad.push(format!(
                    "{what}: exit {:?} but the MN is {}: {}",
                    out.status.code(),
                    if new { "new" } else { "old" },
                    if ok { String::new() } else { text(&out) }
                )),
            }
        }
    }
    t
}

/// SIGKILL at the `n`th call of each of `syscalls`, then `imgport recover`.
fn kill_campaign(fx: &Fixture, base: &Path, syscalls: &[&str]) -> Tally {
    let ends = Ends::of(fx, base);
    let counts = count_calls(fx, base, syscalls);
    let mut t = Tally::default();
    for (call, &count) in &counts {
        for n in 1..=count {
            let mn = copy_mn(base);
            let what = format!("SIGKILL at {call} #{n}");
            let out = injected_import(fx, mn.path(), call, n, "signal=KILL");
            if out.status.success() {
                t.bad.push(format!("{what}: not killed"));
                continue;
            }
            let rec = imgport(mn.path(), &["recover"], &[]);
            if !rec.status.success() {
                t.bad
                    .push(format!("{what}: recover failed: {}", text(&rec)));
                continue;
            }
            let now = snapshot(mn.path());
            t.judge(&what, &ends, &now, &leftovers(mn.path()));
        }
    }
    t
}

/// xorshift64*: a seeded generator is all the random kills need.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// `trials` imports killed after a random delay within the import's usual duration,
/// each followed by `imgport recover`.
fn random_kill_campaign(fx: &Fixture, base: &Path, trials: usize, seed: u64) -> Tally {
    let ends = Ends::of(fx, base);
    // The duration of an import here, to draw the kill moments from.
    let mn = copy_mn(base);
    let start = Instant::now();
    let out = imgport(mn.path(), &["import", fx.bundle(2)], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let span = start.elapsed().as_micros() as u64 + 1;
    let mut rng = Rng(seed);
    let mut t = Tally::default();
    let mut finished_first = 0;
    for i in 0..trials {
        let mn = copy_mn(base);
        let delay = Duration::from_micros(rng.next() % span);
        let what = format!("SIGKILL after {delay:?} (trial {i}, seed {seed:#x})");
        let mut child = Command::new(bin())
            .arg("--root")
            .arg(mn.path())
            .args(["import", fx.bundle(2)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        // The random moment of the kill, not a synchronisation: the checks below run
        // after wait() and recover.
        std::thread::sleep(delay);
        let _ = child.kill();
        let status = child.wait().expect("wait");
        if status.success() {
            finished_first += 1;
        }
        let rec = imgport(mn.path(), &["recover"], &[]);
        if !rec.status.success() {
            t.bad
                .push(format!("{what}: recover failed: {}", text(&rec)));
            continue;
        }
        let now = snapshot(mn.path());
        t.judge(&what, &ends, &now, &leftovers(mn.path()));
    }
    eprintln!("random kills: {finished_first} of {trials} imports finished before their kill");
    t
}

fn check(name: &str, t: &Tally, min_trials: usize) {
    t.print(name);
    assert!(t.trials >= min_trials, "{name}: only {} trials", t.trials);
    assert!(t.bad.is_empty(), "{name}: {} bad outcomes", t.bad.len());
}

#[test]
fn enospc_at_every_sync_and_write_of_an_import_into_a_populated_mn() {
    let fx = Fixture::new();
    let t = enospc_campaign(
        &fx,
        fx.populated.path(),
        &["fsync", "fdatasync", "pwrite64"],
    );
    check("ENOSPC, populated MN (fsync, fdatasync, pwrite64)", &t, 30);
    assert!(t.old > 0);
}

#[test]
fn enospc_at_every_sync_of_an_import_into_an_empty_mn() {
    let fx = Fixture::new();
    // fsync: SQLite's (imgport's own journal syncs are fdatasync, tried above).
    let t = enospc_campaign(&fx, fx.empty.path(), &["fsync"]);
    check("ENOSPC, empty MN (fsync)", &t, 10);
}

#[test]
fn kill_at_every_rename_unlink_and_sync_then_recover() {
    let fx = Fixture::new();
    let calls = &["rename", "unlink", "unlinkat", "fsync", "fdatasync"];
    let t = kill_campaign(&fx, fx.populated.path(), calls);
    check("SIGKILL by strace, populated MN, then recover", &t, 40);
    assert!(t.old > 0 && t.new > 0);
    // The rows write creates the table files and their directory here.
    let t = kill_campaign(&fx, fx.empty.path(), &["fsync"]);
    check("SIGKILL by strace at fsync, empty MN, then recover", &t, 10);
}

#[test]
fn kill_at_random_moments_then_recover() {
    let fx = Fixture::new();
    let t = random_kill_campaign(&fx, fx.populated.path(), 30, 0x1190_0b1d_5eed);
    check(
        "SIGKILL at random moments, populated MN, then recover",
        &t,
        30,
    );
}

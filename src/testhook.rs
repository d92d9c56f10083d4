//! Test-only hooks, compiled in always and inert unless their environment variable is
//! set: the crash tests must run the very binary users run (a cargo feature would build
//! another one, and `cargo test` would then test that one), and one cached environment
//! lookup per hook call costs nothing next to the I/O around it.
//!
//! * `IMGPORT_TEST_CRASH_AT=<point>[:<n>]` sends SIGKILL to this process the `n`th time
//!   (default: first) execution passes `<point>`, as `kill -9` from outside would:
//!   no destructor, no flush, no cleanup runs.
//! * `IMGPORT_TEST_PAUSE_AT=<point>:<fifo>` opens `<fifo>` for reading when execution
//!   first passes `<point>` and reads it to its end: the test learns the point was reached
//!   when its own open of the fifo for writing returns, and releases the process by
//!   closing it. No sleep is needed on either side.

use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;

/// The parsed hooks, read once.
struct Hooks {
    crash: Option<(String, u64)>,
    pause: Option<(String, String)>,
}

static HOOKS: OnceLock<Hooks> = OnceLock::new();
static PASSES: AtomicU64 = AtomicU64::new(0);
static PAUSED: AtomicBool = AtomicBool::new(false);

fn hooks() -> &'static Hooks {
    HOOKS.get_or_init(|| {
        let crash = std::env::var("IMGPORT_TEST_CRASH_AT").ok().map(|v| {
            match v
                .rsplit_once(':')
                .and_then(|(p, n)| Some((p, n.parse().ok()?)))
            {
                Some((p, n)) => (p.to_string(), n),
                None => (v, 1),
            }
        });
        let pause = std::env::var("IMGPORT_TEST_PAUSE_AT").ok().and_then(|v| {
            v.split_once(':')
                .map(|(p, f)| (p.to_string(), f.to_string()))
        });
        Hooks { crash, pause }
    })
}

/// Marks a point of execution (see the module text). Does nothing unless a hook names it.
pub fn point(name: &str) {
    let h = hooks();
    if let Some((p, n)) = &h.crash {
        if p == name && PASSES.fetch_add(1, Ordering::SeqCst) + 1 == *n {
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
        }
    }
    if let Some((p, fifo)) = &h.pause {
        // Once per process: a point passed again must not block on a fifo no test
        // holds open any more.
        if p == name && !PAUSED.swap(true, Ordering::SeqCst) {
            if let Ok(mut f) = std::fs::File::open(fifo) {
                let mut sink = Vec::new();
                let _ = f.read_to_end(&mut sink);
            }
        }
    }
}

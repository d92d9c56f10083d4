//! The progress bar: drawn on stderr from the library's [`Progress`] counters, only
//! when stderr is a terminal and `--quiet` is off, so pipes and scripts never see it.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use imgport::progress::{Handle, Progress};

/// How often the bar is redrawn from the counters.
const TICK: Duration = Duration::from_millis(100);

/// A running bar; dropping it clears it.
pub struct Bar {
    pub bar: ProgressBar,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// A progress handle for the library, and the bar drawing it when there should be one.
pub fn start(quiet: bool) -> (Handle, Option<Bar>) {
    if quiet || !std::io::stderr().is_terminal() {
        return (Handle::default(), None);
    }
    let progress = Progress::new();
    let stop = Arc::new(AtomicBool::new(false));
    // Hidden until the first phase starts: a flow that never reaches a long phase
    // (an image without a tree) shows no bar at all.
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    let thread = {
        let (progress, stop, bar) = (progress.clone(), stop.clone(), bar.clone());
        std::thread::spawn(move || draw(&progress, &stop, &bar))
    };
    (
        Handle(Some(progress)),
        Some(Bar {
            bar,
            stop,
            thread: Some(thread),
        }),
    )
}

fn draw(progress: &Progress, stop: &AtomicBool, bar: &ProgressBar) {
    let known = ProgressStyle::with_template(
        "{prefix:>9} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let unknown =
        ProgressStyle::with_template("{prefix:>9} {spinner} {bytes} {bytes_per_sec} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let mut phase = "";
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let s = progress.snapshot();
        if s.phase != phase {
            // A new phase measures from zero, with its own rate and ETA.
            if phase.is_empty() {
                bar.set_draw_target(ProgressDrawTarget::stderr());
            }
            phase = s.phase;
            bar.reset();
            bar.set_style(if s.total > 0 {
                known.clone()
            } else {
                unknown.clone()
            });
            bar.set_prefix(s.phase);
        }
        if s.total > 0 {
            bar.set_length(s.total.max(s.done));
        }
        bar.set_position(s.done);
        bar.set_message(if s.entries > 0 {
            format!("{} entries", s.entries)
        } else {
            String::new()
        });
        if stopping {
            break;
        }
        std::thread::sleep(TICK);
    }
    bar.finish_and_clear();
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

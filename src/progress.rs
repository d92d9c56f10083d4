//! Progress of a long export or import, as counters the flows update and a front end
//! (the CLI's progress bar) reads. The library never draws anything.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Shared counters: the current phase, bytes done out of a total (0 = unknown), and
/// entries done. Cheap to update from any thread.
#[derive(Debug, Default)]
pub struct Progress {
    phase: Mutex<&'static str>,
    done: AtomicU64,
    total: AtomicU64,
    entries: AtomicU64,
}

/// What a reader of [`Progress`] sees at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    pub phase: &'static str,
    pub done: u64,
    pub total: u64,
    pub entries: u64,
}

impl Progress {
    pub fn new() -> Arc<Progress> {
        Arc::new(Progress::default())
    }

    /// Starts a phase (e.g. "walk", "compress", "read") with `total` bytes to do
    /// (0 when unknown); resets the counters.
    pub fn start(&self, phase: &'static str, total: u64) {
        if let Ok(mut p) = self.phase.lock() {
            *p = phase;
        }
        self.done.store(0, Ordering::Relaxed);
        self.entries.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }

    /// Records `bytes` and `entries` more done.
    pub fn add(&self, bytes: u64, entries: u64) {
        self.done.fetch_add(bytes, Ordering::Relaxed);
        self.entries.fetch_add(entries, Ordering::Relaxed);
    }

    /// Sets the bytes done (for counters that are absolute, like a read offset).
    pub fn set_done(&self, bytes: u64) {
        self.done.store(bytes, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            phase: self.phase.lock().map(|p| *p).unwrap_or(""),
            done: self.done.load(Ordering::Relaxed),
            total: self.total.load(Ordering::Relaxed),
            entries: self.entries.load(Ordering::Relaxed),
        }
    }
}

/// An optional progress handle for option structs: compares equal whatever it holds,
/// since progress reporting never changes what a flow does.
#[derive(Debug, Clone, Default)]
pub struct Handle(pub Option<Arc<Progress>>);

impl PartialEq for Handle {
    fn eq(&self, _: &Handle) -> bool {
        true
    }
}

impl Eq for Handle {}

impl Handle {
    pub fn start(&self, phase: &'static str, total: u64) {
        if let Some(p) = &self.0 {
            p.start(phase, total);
        }
    }

    pub fn add(&self, bytes: u64, entries: u64) {
        if let Some(p) = &self.0 {
            p.add(bytes, entries);
        }
    }

    pub fn set_done(&self, bytes: u64) {
        if let Some(p) = &self.0 {
            p.set_done(bytes);
        }
    }

    pub fn is_on(&self) -> bool {
        self.0.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_reset_counters() {
        let p = Progress::new();
        p.start("walk", 0);
        p.add(10, 1);
        p.start("compress", 100);
        p.add(40, 3);
        assert_eq!(
            p.snapshot(),
            Snapshot {
                phase: "compress",
                done: 40,
                total: 100,
                entries: 3
            }
        );
    }
}

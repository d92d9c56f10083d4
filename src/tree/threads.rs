//! The one rule for how many threads a `threads` option stands for, shared by the
//! encoder's pipeline, the restore's file writers and the unit decoder.

/// Most threads used for one job, whatever is asked.
pub const MAX_THREADS: usize = 256;

/// The thread count `requested` stands for: 0 means one per available core (1 if
/// unknown); the result is between 1 and [`MAX_THREADS`].
pub fn resolve(requested: usize) -> usize {
    let n = match requested {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    n.clamp(1, MAX_THREADS)
}

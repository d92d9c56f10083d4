//! What a restore is asked to do and what it reports: shared by the entry points,
//! the dispatcher and the unit decoder.

use crate::tree::threads;

/// How to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Restore owners by the archived numbers (a root image carries its own passwd,
    /// so this is what imgport always does). When false, an owner *name* found in
    /// the restoring host's `/etc/passwd` / `/etc/group` wins over the number.
    pub numeric_owner: bool,
    /// Also restore access times when the archive has them (otherwise left as the
    /// creation time).
    pub atime: bool,
    /// Worker threads for writing files and (in `restore_stream`, `restore_zstd`)
    /// for decoding gzip members or zstd frames; 0 means one per available core, 1
    /// restores sequentially on the calling thread. Capped at 256 (the one rule of
    /// `tree::threads`). Measured on 2 shared cores: 2 workers restore an
    /// imgport-members tree ~2.4× faster than `pigz -dc | tar -x` on tmpfs.
    pub threads: usize,
}

impl Default for RestoreOptions {
    fn default() -> Self {
        RestoreOptions {
            numeric_owner: true,
            atime: false,
            threads: 0,
        }
    }
}

impl RestoreOptions {
    /// The worker count `threads` stands for: 0 becomes the number of available
    /// cores (1 if unknown); at most 256.
    pub fn effective_threads(&self) -> usize {
        threads::resolve(self.threads)
    }
}

/// What a restore did.
#[derive(Debug, Clone, Default)]
pub struct RestoreStats {
    /// Entries restored (including the top directory and hard links).
    pub entries: u64,
    /// File data bytes written (for sparse files, the data segments only).
    pub bytes: u64,
    /// Non-fatal problems, e.g. an xattr the filesystem does not support, in archive
    /// order whatever the thread count.
    pub warnings: Vec<String>,
}

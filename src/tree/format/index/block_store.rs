//! Where the v2 index writer keeps the blocks it has closed until the trailer is
//! written (FORMAT.md §3.6): in memory up to a bound, then in an unnamed temporary
//! file, so an export's memory does not grow with the number of entries.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;

/// Compressed bytes of closed blocks the builder keeps in memory; past this it moves
/// them to an unnamed temporary file and appends there, so an export's memory does
/// not grow with the number of entries (at 10^6 small files the blocks are ≈1.5 MB;
/// 10^5 fit in memory).
pub const SPILL_AFTER_BYTES: usize = 256 << 10;

/// The compressed blocks, back to back: in memory, or (past [`SPILL_AFTER_BYTES`]) in
/// an unnamed temporary file in `$TMPDIR`. The first error writing the file is kept and
/// reported when the blocks are read back for the trailer.
#[derive(Debug)]
pub(super) struct BlockStore {
    /// Bytes kept in memory before spilling ([`SPILL_AFTER_BYTES`]; tests lower it).
    limit: usize,
    mem: Vec<u8>,
    file: Option<BufWriter<File>>,
    error: Option<io::Error>,
}

/// An error of the index spill file, saying which file (it has no name of its own).
fn spill_error(e: io::Error) -> io::Error {
    io::Error::new(
        e.kind(),
        format!(
            "index spill file in {}: {e}",
            std::env::temp_dir().display()
        ),
    )
}

impl BlockStore {
    pub(super) fn new(limit: usize) -> BlockStore {
        BlockStore {
            limit,
            mem: Vec::new(),
            file: None,
            error: None,
        }
    }

    pub(super) fn push(&mut self, blob: &[u8]) {
        if self.error.is_some() {
            return;
        }
        if self.file.is_none() && self.mem.len() + blob.len() > self.limit {
            match tempfile::tempfile_in(std::env::temp_dir()) {
                Ok(f) => {
                    let mut w = BufWriter::with_capacity(64 << 10, f);
                    if let Err(e) = w.write_all(&self.mem) {
                        self.error = Some(spill_error(e));
                        return;
                    }
                    self.mem = Vec::new();
                    self.file = Some(w);
                }
                Err(e) => {
                    self.error = Some(spill_error(e));
                    return;
                }
            }
        }
        match &mut self.file {
            Some(w) => {
                if let Err(e) = w.write_all(blob) {
                    self.error = Some(spill_error(e));
                }
            }
            None => self.mem.extend_from_slice(blob),
        }
    }

    /// Whether the blocks have moved to the temporary file.
    #[cfg(test)]
    pub(super) fn spilled(&self) -> bool {
        self.file.is_some()
    }

    /// The store, readable: the file flushed, or the first error.
    pub(super) fn finish(self) -> io::Result<StoredBlocks> {
        if let Some(e) = self.error {
            return Err(e);
        }
        match self.file {
            Some(w) => w
                .into_inner()
                .map(StoredBlocks::File)
                .map_err(|e| spill_error(e.into_error())),
            None => Ok(StoredBlocks::Mem(self.mem)),
        }
    }
}

/// The closed blocks, ready to be read back in order.
#[derive(Debug)]
pub(super) enum StoredBlocks {
    Mem(Vec<u8>),
    File(File),
}

impl StoredBlocks {
    /// Calls `f` with each block, whose compressed lengths are `lens`, in order.
    pub(super) fn for_each(
        &self,
        lens: &[u64],
        mut f: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut at = 0u64;
        let mut buf = Vec::new();
        for &len in lens {
            let end = at + len;
            match self {
                StoredBlocks::Mem(m) => f(&m[at as usize..end as usize])?,
                StoredBlocks::File(file) => {
                    buf.resize(len as usize, 0);
                    file.read_exact_at(&mut buf, at).map_err(spill_error)?;
                    f(&buf)?;
                }
            }
            at = end;
        }
        Ok(())
    }
}

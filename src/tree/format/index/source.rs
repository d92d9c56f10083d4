//! A tree archive's bytes, shared between its index (which reads v2 blocks on demand)
//! and whoever reads its data members, so both can seek one file without reopening it.

use std::io::{Read, Seek};
use std::sync::{Arc, Mutex};

/// Anything an index can be read from on demand: the tree archive's source, shared
/// with its reader of data members.
pub trait ReadSeekSend: Read + Seek + Send {}
impl<T: Read + Seek + Send> ReadSeekSend for T {}

/// A tree's bytes, shared between the index (which reads its blocks on demand) and
/// whoever reads the data members.
pub type SharedSource = Arc<Mutex<dyn ReadSeekSend>>;

/// Wraps `src` for sharing.
pub fn share<R: Read + Seek + Send + 'static>(src: R) -> SharedSource {
    Arc::new(Mutex::new(src))
}

/// Locks a shared source. A panic while another holder read leaves the reader where
/// it was; every use seeks first, so the poison is harmless.
pub fn lock_source(src: &SharedSource) -> std::sync::MutexGuard<'_, dyn ReadSeekSend + 'static> {
    src.lock().unwrap_or_else(|p| p.into_inner())
}

//! Tree → archive bytes: the walk (metadata only, deterministic order), the entry
//! encoder (one entry's header, data and padding on any `Write`), the parallel
//! pipeline that cuts the tar into codec units, and the writers that drive them (pax
//! tar and its compressed forms; cpio newc for xCAT).

pub mod entry;
pub mod newc;
mod pipeline;
mod spill;
pub mod walk;
pub mod writer;

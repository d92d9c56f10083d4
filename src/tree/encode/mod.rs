//! Tree → archive bytes.

pub(crate) mod pipeline;
pub mod walk;
pub mod writer;

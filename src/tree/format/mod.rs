//! The tree's byte formats, both directions of each together.

pub mod index;
pub mod newc;
pub mod tar_decode;
pub mod tar_header;

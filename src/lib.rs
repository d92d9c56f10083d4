//! imgport: export and import xCAT osimages as single bundle files.
//!
//! Data flows one way. Export: catalog rows → [`image`] discovery → [`manifest`] →
//! [`bundle`] writer (payload files streamed, the statelite root through [`tree`]).
//! Import: [`bundle`] reader → [`manifest`] → files staged under the [`root`] →
//! [`tree`] restore → catalog rows written last.
//!
//! [`remote`] carries a bundle to or from another host through ssh (`-R`); [`naming`]
//! gives bundle files their names (xCAT's rules), for export, `-R` and the CLI alike.
//!
//! The library is usable without the command line: [`export::export`] and
//! [`import::import`] take plain option structs.

#![forbid(unsafe_code)]

pub mod bundle;
pub mod catalog;
pub mod error;
pub mod export;
pub mod image;
pub mod import;
pub mod journal;
pub mod lock;
pub mod manifest;
pub mod naming;
pub mod placement;
pub mod profile;
pub mod progress;
pub mod remote;
pub mod report;
pub mod root;
#[doc(hidden)]
pub mod testhook;
#[cfg(test)]
mod testkit;
pub mod tree;

pub use error::{Error, Result};

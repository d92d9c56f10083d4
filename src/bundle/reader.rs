//! Reads a bundle member by member, in stream order, without extracting it anywhere.
//!
//! Accepts what real xCAT writes (gzip tar, `./` names, readdir order so the manifest
//! may come after the payload, several image directories) and what imgport writes.
//! Compression is detected from the magic bytes, so `-n` (plain tar) is a hint only.
//! Every member name is checked here: absolute names and `..` components are refused
//! before a caller sees them.

use std::io::{self, BufRead, BufReader, Read};

use flate2::bufread::MultiGzDecoder;

use crate::error::{Error, Result};

/// What kind of tar entry a member is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemberKind {
    File,
    Dir,
    Symlink(String),
    /// Anything else (hard links, devices): bundles' payload never needs them.
    Other,
}

/// One bundle member: its image directory, its path inside it, and its data.
pub struct Member<'a> {
    /// The top-level directory (`<IMG>`), without `./`.
    pub image_dir: String,
    /// Path below the image directory, `/`-separated, no `./`, no trailing `/`.
    pub rel: String,
    pub kind: MemberKind,
    pub mode: u32,
    pub mtime: u64,
    pub size: u64,
    /// The member's data; read it or leave it (the rest is skipped).
    pub data: &'a mut dyn Read,
}

/// Whether [`BundleReader::for_each`] goes on after a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Stop reading: the rest of the bundle is not needed.
    Stop,
}

/// Iterates a bundle's members.
pub struct BundleReader {
    archive: tar::Archive<Box<dyn Read + Send>>,
}

impl BundleReader {
    /// Wraps a bundle stream, gzip-compressed (single or multi-member) or plain tar.
    pub fn new(input: impl Read + Send + 'static) -> Result<BundleReader> {
        let mut buffered = BufReader::with_capacity(1 << 20, input);
        let head = buffered
            .fill_buf()
            .map_err(|e| Error::io("bundle", e))?
            .to_vec();
        let stream: Box<dyn Read + Send> = if head.starts_with(&[0x1f, 0x8b]) {
            Box::new(MultiGzDecoder::new(buffered))
        } else {
            Box::new(buffered)
        };
        Ok(BundleReader {
            archive: tar::Archive::new(stream),
        })
    }

    /// Calls `visit` for every member below an image directory, in stream order.
    /// The top-level `./` entry and the image directory entries themselves are not
    /// passed on. Stops when `visit` says [`Flow::Stop`] or returns an error.
    pub fn for_each(mut self, mut visit: impl FnMut(Member<'_>) -> Result<Flow>) -> Result<()> {
        let entries = self
            .archive
            .entries()
            .map_err(|e| corrupt("cannot read the bundle", e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| corrupt("cannot read the bundle", e))?;
            let raw = entry.path_bytes().into_owned();
            let name = String::from_utf8(raw.clone()).map_err(|_| Error::UnsafePath {
                path: String::from_utf8_lossy(&raw).into_owned(),
                reason: "bundle member name is not UTF-8".into(),
            })?;
            let Some((image_dir, rel)) = split_member_name(&name)? else {
                continue;
            };
            let header = entry.header();
            let kind = match header.entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => MemberKind::File,
                tar::EntryType::Directory => MemberKind::Dir,
                tar::EntryType::Symlink => {
                    let target = entry
                        .link_name_bytes()
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default();
                    MemberKind::Symlink(target)
                }
                _ => MemberKind::Other,
            };
            let mode = header.mode().unwrap_or(0o644);
            let mtime = header.mtime().unwrap_or(0);
            let size = entry.size();
            let flow = visit(Member {
                image_dir,
                rel,
                kind,
                mode,
                mtime,
                size,
                data: &mut entry,
            })?;
            if flow == Flow::Stop {
                break;
            }
        }
        Ok(())
    }
}

fn corrupt(what: &str, e: io::Error) -> Error {
    Error::Bundle(format!("{what}: {e}"))
}

/// Splits a member name into (image dir, path inside it). `None` for the entries that
/// carry no payload (`./`, `./<IMG>/`). Refuses absolute names and `..` components.
pub fn split_member_name(name: &str) -> Result<Option<(String, String)>> {
    let refuse = |reason: &str| Error::UnsafePath {
        path: name.to_string(),
        reason: reason.to_string(),
    };
    if name.starts_with('/') {
        return Err(refuse("absolute bundle member name"));
    }
    let mut parts = Vec::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(refuse("bundle member name contains '..'")),
            p => parts.push(p),
        }
    }
    match parts.split_first() {
        None => Ok(None),
        Some((_, [])) => Ok(None),
        Some((dir, rest)) => Ok(Some((dir.to_string(), rest.join("/")))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_into_image_and_path() {
        assert_eq!(split_member_name("./").unwrap(), None);
        assert_eq!(split_member_name("./img/").unwrap(), None);
        assert_eq!(
            split_member_name("./img/manifest.xml").unwrap(),
            Some(("img".into(), "manifest.xml".into()))
        );
        assert_eq!(
            split_member_name("img/extra/a/b/").unwrap(),
            Some(("img".into(), "extra/a/b".into()))
        );
    }

    #[test]
    fn unsafe_names_are_refused() {
        assert!(split_member_name("/etc/passwd").is_err());
        assert!(split_member_name("./img/../../etc/passwd").is_err());
    }
}

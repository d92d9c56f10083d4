//! The bundle container: a gzip-compressed tar laid out as xCAT's (`./<IMG>/manifest.xml`
//! and the payload beside it, `./<IMG>/extra/...` for `-e` files).
//!
//! The writer streams payload files straight from their sources (no staging copy) and
//! stores already-compressed files in stored deflate blocks instead of deflating them a
//! second time; the reader walks members in order and hands each to the caller with its
//! name split into image directory and path inside it, after refusing unsafe names.

pub mod check;
pub mod footer;
pub mod layout;
pub mod reader;
pub mod summary;
mod tree;
pub mod view;
pub mod writer;

pub use layout::Location;
pub use reader::{BundleReader, Flow, Member, MemberKind};
pub use tree::{open_tree, verify_tree};
pub use view::StoredView;
pub use writer::{BundleWriter, HeaderPatch};

/// Opens a bundle file for reading. A bundle that is not there is xCAT's
/// `Cannot find <shown>` ([`Error::NotFound`]); any other failure, such as a bundle
/// the user may not read, is an I/O error naming the path ([`Error::Io`]), never
/// "not found".
pub fn open_file(
    path: &std::path::Path,
    shown: &std::path::Path,
) -> crate::error::Result<std::fs::File> {
    std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory => {
            crate::error::Error::NotFound(format!("Cannot find {}", shown.display()))
        }
        _ => crate::error::Error::io(path, e),
    })
}

/// Name of the manifest inside an image directory.
pub const MANIFEST_NAME: &str = "manifest.xml";
/// Directory inside an image directory that holds `-e` extras.
pub const EXTRA_DIR: &str = "extra";

/// The bundle directory name xCAT derives from an image name: each run of whitespace
/// becomes `_`.
pub fn image_dir_name(imagename: &str) -> String {
    let mut out = String::with_capacity(imagename.len());
    let mut in_space = false;
    for c in imagename.chars() {
        if c.is_whitespace() {
            if !in_space {
                out.push('_');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out
}

/// Whether data starting with `head` is already compressed (gzip, xz, zstd, bzip2,
/// squashfs, an x86 bzImage kernel), so deflating it again would only cost time.
pub fn is_precompressed(head: &[u8]) -> bool {
    const MAGICS: &[&[u8]] = &[
        b"\x1f\x8b",
        b"\xfd7zXZ\x00",
        b"\x28\xb5\x2f\xfd",
        b"BZh",
        b"hsqs",
        b"\x89LZO",
        b"\x04\x22\x4d\x18",
    ];
    // A bzImage carries "HdrS" at 0x202; its payload is compressed.
    const BZIMAGE_MAGIC_AT: usize = 0x202;
    MAGICS.iter().any(|m| head.starts_with(m))
        || head.get(BZIMAGE_MAGIC_AT..BZIMAGE_MAGIC_AT + 4) == Some(b"HdrS")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_runs_become_one_underscore() {
        assert_eq!(image_dir_name("my  image\tx"), "my_image_x");
        assert_eq!(image_dir_name("plain"), "plain");
    }

    #[test]
    fn compressed_payloads_are_recognised() {
        assert!(is_precompressed(b"\x1f\x8b\x08\x00"));
        assert!(is_precompressed(b"\xfd7zXZ\x00\x00"));
        assert!(!is_precompressed(b"#!/bin/sh\n"));
        let mut kernel = vec![0u8; 0x300];
        kernel[0x202..0x206].copy_from_slice(b"HdrS");
        assert!(is_precompressed(&kernel));
    }
}

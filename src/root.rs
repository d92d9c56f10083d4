//! The target root (`--root`, like `rpm --root`): every absolute MN path (catalog,
//! `/install`, `/opt/xcat/share/xcat`, every manifest path) maps to a host path under it.
//!
//! This module is the one choke point for "which host path does this MN path name".
//! It never yields a path outside the root: `..` components and relative or NUL-bearing
//! names are refused, and symlinks met on the way are followed the way a chroot would
//! follow them (absolute targets re-rooted, `..` clamped at the root). An MN whose
//! `/install` is a symlink to a bigger filesystem therefore still works, while a symlink
//! pointing at `/etc` resolves to `<root>/etc`, never the host's.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// Symlinks followed while resolving one path before giving up (Linux's own limit).
const MAX_SYMLINK_HOPS: usize = 40;

/// A directory that stands for `/` of a management node.
#[derive(Debug, Clone)]
pub struct Root {
    dir: PathBuf,
}

impl Root {
    /// Opens `dir` as the root. It must exist; it is canonicalized once so later checks
    /// compare real paths.
    pub fn new(dir: &Path) -> Result<Root> {
        let dir = dir.canonicalize().map_err(|e| Error::io(dir, e))?;
        Ok(Root { dir })
    }

    /// The host directory standing for `/`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether this root is the host's own `/`.
    pub fn is_host(&self) -> bool {
        self.dir == Path::new("/")
    }

    /// Host path of the MN path `abs`, following every symlink (final one included)
    /// inside the root. Use it to read.
    pub fn resolve(&self, abs: &str) -> Result<PathBuf> {
        let parts = checked_components(abs)?;
        self.walk(abs, &parts, true)
    }

    /// Host path of the MN path `abs` with its parent directories resolved inside the
    /// root but the final component left as is (a symlink there is replaced, not
    /// followed). Use it to create, rename or back up.
    pub fn resolve_for_write(&self, abs: &str) -> Result<PathBuf> {
        let parts = checked_components(abs)?;
        self.walk(abs, &parts, false)
    }

    /// The MN path (`/…`) of a host path under the root, for messages.
    pub fn display(&self, host: &Path) -> String {
        match host.strip_prefix(&self.dir) {
            Ok(rel) => format!("/{}", rel.display()),
            Err(_) => host.display().to_string(),
        }
    }

    fn walk(&self, abs: &str, parts: &[OsString], follow_last: bool) -> Result<PathBuf> {
        // Components still to visit, last first, so symlink targets can be pushed.
        let mut todo: Vec<OsString> = parts.iter().rev().cloned().collect();
        let mut done: Vec<OsString> = Vec::new();
        let mut hops = 0;
        while let Some(part) = todo.pop() {
            if part == ".." {
                done.pop();
                continue;
            }
            let is_last = todo.is_empty();
            let mut here = self.dir.clone();
            here.extend(done.iter());
            here.push(&part);
            let target = match std::fs::symlink_metadata(&here) {
                Ok(meta) if meta.file_type().is_symlink() && (follow_last || !is_last) => {
                    std::fs::read_link(&here).map_err(|e| Error::io(&here, e))?
                }
                _ => {
                    done.push(part);
                    continue;
                }
            };
            hops += 1;
            if hops > MAX_SYMLINK_HOPS {
                return Err(Error::UnsafePath {
                    path: abs.to_string(),
                    reason: "too many levels of symbolic links".into(),
                });
            }
            if target.is_absolute() {
                done.clear();
            }
            for c in target.components().rev() {
                match c {
                    Component::Normal(n) => todo.push(n.to_os_string()),
                    Component::ParentDir => todo.push(OsString::from("..")),
                    Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                }
            }
        }
        let mut out = self.dir.clone();
        out.extend(done.iter());
        Ok(out)
    }
}

/// Splits an absolute MN path into its normal components, refusing what a manifest or
/// table value must never contain.
fn checked_components(abs: &str) -> Result<Vec<OsString>> {
    let unsafe_path = |reason: &str| Error::UnsafePath {
        path: abs.to_string(),
        reason: reason.to_string(),
    };
    if abs.as_bytes().contains(&0) {
        return Err(unsafe_path("contains a NUL byte"));
    }
    if !abs.starts_with('/') {
        return Err(unsafe_path("not an absolute path"));
    }
    let mut parts = Vec::new();
    for c in Path::new(abs).components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir => return Err(unsafe_path("contains a '..' component")),
            Component::Normal(n) => parts.push(n.to_os_string()),
            Component::Prefix(_) => return Err(unsafe_path("has a path prefix")),
        }
    }
    Ok(parts)
}

/// The last component of an MN path (what xCAT's `basename` gives), or the whole
/// string when it has none.
pub fn basename(abs: &str) -> &str {
    let trimmed = abs.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(i) => &trimmed[i + 1..],
        None => trimmed,
    }
}

/// The directory part of an MN path (`dirname`), `/` for top-level names.
pub fn dirname(abs: &str) -> &str {
    let trimmed = abs.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(0) => "/",
        Some(i) => &trimmed[..i],
        None => ".",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn scratch() -> (tempfile::TempDir, Root) {
        let t = tempfile::tempdir().unwrap();
        let r = Root::new(t.path()).unwrap();
        (t, r)
    }

    #[test]
    fn plain_paths_map_under_the_root() {
        let (_t, r) = scratch();
        assert_eq!(
            r.resolve("/install/netboot/x").unwrap(),
            r.dir().join("install/netboot/x")
        );
    }

    #[test]
    fn dotdot_relative_and_nul_are_refused() {
        let (_t, r) = scratch();
        for bad in ["/install/../etc/shadow", "install/x", "/a\0b", ""] {
            let err = r.resolve(bad).unwrap_err().to_string();
            assert!(err.contains("refusing"), "{bad}: {err}");
        }
    }

    #[test]
    fn absolute_symlinks_are_rerooted() {
        let (_t, r) = scratch();
        std::fs::create_dir_all(r.dir().join("data/install")).unwrap();
        symlink("/data/install", r.dir().join("install")).unwrap();
        symlink("/etc", r.dir().join("data/install/evil")).unwrap();
        assert_eq!(
            r.resolve("/install/netboot").unwrap(),
            r.dir().join("data/install/netboot")
        );
        assert_eq!(
            r.resolve("/install/evil/shadow").unwrap(),
            r.dir().join("etc/shadow")
        );
    }

    #[test]
    fn relative_symlinks_cannot_climb_out() {
        let (_t, r) = scratch();
        std::fs::create_dir_all(r.dir().join("a")).unwrap();
        symlink("../../../../../../etc", r.dir().join("a/up")).unwrap();
        assert_eq!(
            r.resolve("/a/up/passwd").unwrap(),
            r.dir().join("etc/passwd")
        );
    }

    #[test]
    fn write_resolution_keeps_the_final_symlink() {
        let (_t, r) = scratch();
        symlink("/etc/passwd", r.dir().join("link")).unwrap();
        assert_eq!(r.resolve_for_write("/link").unwrap(), r.dir().join("link"));
        assert_eq!(r.resolve("/link").unwrap(), r.dir().join("etc/passwd"));
    }

    #[test]
    fn symlink_loops_end_in_an_error() {
        let (_t, r) = scratch();
        symlink("/b", r.dir().join("a")).unwrap();
        symlink("/a", r.dir().join("b")).unwrap();
        assert!(r.resolve("/a/x").is_err());
    }

    #[test]
    fn basename_and_dirname_follow_the_shell() {
        assert_eq!(basename("/a/b/c.tgz"), "c.tgz");
        assert_eq!(basename("c.tgz"), "c.tgz");
        assert_eq!(basename("/a/b/"), "b");
        assert_eq!(dirname("/a/b/c"), "/a/b");
        assert_eq!(dirname("/a"), "/");
    }
}

//! The members an import keeps of one image directory until it is placed: spooled
//! files, or what is known of directories and symlinks. The data every later phase
//! reads; [`super::spool`] fills it.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::bundle::MemberKind;
use crate::error::{Error, Result};

/// A member saved in the spool directory until its image is placed.
#[derive(Debug)]
pub(super) struct Spooled {
    /// Spool file (regular files only).
    pub path: Option<PathBuf>,
    /// Content kept in memory instead (small files during `--dry-run`).
    pub data: Option<Vec<u8>>,
    pub kind: MemberKind,
    pub mode: u32,
}

impl Spooled {
    /// The member's bytes (empty for members that were not kept).
    pub fn content(&self) -> Result<Vec<u8>> {
        match (&self.data, &self.path) {
            (Some(d), _) => Ok(d.clone()),
            (None, Some(p)) => fs::read(p).map_err(|e| Error::io(p, e)),
            (None, None) => Ok(Vec::new()),
        }
    }
}

/// The spooled members of one image directory, by path below it.
pub(super) type Members = BTreeMap<String, Spooled>;

/// The spool file of a member, if it is a regular file that was kept.
pub(super) fn spooled_file<'a>(members: &'a Members, rel: &str) -> Option<&'a Path> {
    members.get(rel).and_then(|s| s.path.as_deref())
}

/// Gives a file or directory the permission bits of its member.
pub(super) fn set_mode(p: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(p, fs::Permissions::from_mode(mode & 0o7777)).map_err(|e| Error::io(p, e))
}

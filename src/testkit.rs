//! Helpers for unit tests: a scratch management node (a temporary directory standing
//! for `/`, with `/install`, the [`Root`] over it and its SQLite [`Catalog`]),
//! hand-built tar entries and a sample image tree.

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::catalog::{Catalog, Upsert};
use crate::root::Root;

/// (column, value) pairs.
pub type Pairs<'a> = &'a [(&'a str, &'a str)];
/// A row to start from: table, key, values.
pub type SeedRow<'a> = (&'a str, Pairs<'a>, Pairs<'a>);

pub struct Mn {
    pub dir: tempfile::TempDir,
    pub root: Root,
    pub catalog: Catalog,
}

impl Mn {
    pub fn new() -> Mn {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("install")).unwrap();
        let root = Root::new(dir.path()).unwrap();
        let catalog = Catalog::open(dir.path(), None).unwrap();
        Mn { dir, root, catalog }
    }

    /// The host path of an MN path.
    pub fn host(&self, mn: &str) -> PathBuf {
        self.dir.path().join(mn.trim_start_matches('/'))
    }

    /// Writes a file at an MN path, creating its parents.
    pub fn write(&self, mn: &str, content: &str) {
        let p = self.host(mn);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
    }

    /// Rows to start from.
    pub fn rows(&self, rows: &[SeedRow<'_>]) {
        let upserts: Vec<Upsert> = rows
            .iter()
            .map(|(table, key, values)| Upsert {
                table: table.to_string(),
                key: key
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                values: values
                    .iter()
                    .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                    .collect(),
            })
            .collect();
        self.catalog.apply(&upserts).unwrap();
    }
}

/// One tar entry with a raw name (the `tar` crate refuses `..`, which the restore
/// tests need), owned by root, mtime 1 000 000.
pub fn raw_tar_entry(
    name: &[u8],
    kind: tar::EntryType,
    data: &[u8],
    link: &[u8],
    mode: u32,
) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    h.set_entry_type(kind);
    h.set_size(data.len() as u64);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_000_000);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(data);
    out.resize(
        out.len() + crate::tree::format::padding(data.len() as u64),
        0,
    );
    out
}

/// Fills `root` with the kinds of file an image tree archive treats apart: a small
/// file (`etc/hosts`), a 9 MiB one spread over several units (`big`, whose 32-bit
/// words are `big_word(i)`), a sparse one, a symlink and a hard link.
pub fn sample_tree(root: &Path, big_word: impl Fn(u32) -> u32) {
    fs::create_dir_all(root.join("etc")).unwrap();
    fs::write(root.join("etc/hosts"), b"127.0.0.1 localhost\n").unwrap();
    let big: Vec<u8> = (0..(9u32 << 20) / 4)
        .flat_map(|i| big_word(i).to_le_bytes())
        .collect();
    fs::write(root.join("big"), &big).unwrap();
    let sparse = fs::File::create(root.join("sparse")).unwrap();
    sparse.set_len(8 << 20).unwrap();
    sparse.write_all_at(b"middle", 4 << 20).unwrap();
    std::os::unix::fs::symlink("etc/hosts", root.join("link")).unwrap();
    fs::hard_link(root.join("etc/hosts"), root.join("hard")).unwrap();
}

//! A scratch management node for unit tests: a temporary directory standing for `/`
//! (with `/install`), the [`Root`] over it and its SQLite [`Catalog`].

use std::fs;
use std::path::PathBuf;

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

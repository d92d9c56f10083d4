//! The table rows one image's import writes: osimage and linuximage from the manifest,
//! the kit tables, litefile (skipping what an `ALL` row already covers) and, with
//! `-p`, postscripts. Reads the catalog to decide; writes nothing.

use std::collections::BTreeMap;

use crate::catalog::Upsert;
use crate::error::Result;
use crate::manifest::Manifest;
use crate::report::Reporter;
use crate::root::basename;

use super::members::{Members, Spooled};
use super::plan::Accepted;
use super::Context;

impl Context<'_> {
    /// Every row of an image, in the order they are written (osimage and linuximage
    /// first).
    pub(super) fn rows(&self, accepted: &Accepted, members: &Members) -> Result<Vec<Upsert>> {
        let m = &accepted.manifest;
        let name = accepted.imagename.as_str();
        let mut upserts = vec![
            upsert("osimage", &[("imagename", name)], &m.osimage),
            upsert("linuximage", &[("imagename", name)], &m.linuximage),
        ];
        for (table, key, entries) in [
            ("kit", "kitname", &m.kit),
            ("kitrepo", "kitreponame", &m.kitrepo),
            ("kitcomponent", "kitcompname", &m.kitcomp),
        ] {
            for (n, row) in entries {
                upserts.push(upsert(table, &[(key, n)], row));
            }
        }
        if let Some(lite) = &m.litefile {
            let csv = members
                .get(basename(lite))
                .map(Spooled::content)
                .transpose()?;
            upserts.extend(self.litefile_rows(name, &csv.unwrap_or_default())?);
        }
        if let Some(nodes) = &self.opts.postscripts {
            upserts.extend(self.postscript_rows(m, nodes)?);
        }
        Ok(upserts)
    }

    /// litefile rows from litefile.csv (XCAT.md §4.4): skip lines an enabled `ALL` row already
    /// covers with the same options.
    fn litefile_rows(&self, image: &str, csv: &[u8]) -> Result<Vec<Upsert>> {
        let text = String::from_utf8_lossy(csv);
        let mut out = Vec::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split('"').collect();
            let (Some(file), Some(options)) = (fields.get(3), fields.get(5)) else {
                continue;
            };
            if file.is_empty() {
                continue;
            }
            let all = self
                .catalog
                .get("litefile", &[("image", "ALL"), ("file", file)])?;
            let all_options = all
                .as_ref()
                .and_then(|r| r.get("options"))
                .map(String::as_str);
            if all.is_some() && all_options.unwrap_or("") == *options {
                continue;
            }
            out.push(Upsert {
                table: "litefile".into(),
                key: vec![
                    ("image".into(), image.into()),
                    ("file".into(), file.to_string()),
                ],
                values: vec![("options".into(), Some(options.to_string()))],
            });
        }
        Ok(out)
    }

    /// The nodes of `-p NODERANGE`: (in nodelist, not in nodelist).
    pub(super) fn check_nodes(&self, noderange: &str) -> Result<(Vec<String>, Vec<String>)> {
        let mut nodes = Vec::new();
        let mut missing = Vec::new();
        for n in self.catalog.expand_noderange(noderange)? {
            if self.catalog.node_exists(&n)? {
                nodes.push(n);
            } else {
                missing.push(n);
            }
        }
        Ok((nodes, missing))
    }

    /// `-p NODERANGE` rows (XCAT.md §6.6, C19); none when no node is known (reported
    /// after placement, as xCAT does, by [`Context::report_nodes`]).
    fn postscript_rows(&self, m: &Manifest, noderange: &str) -> Result<Vec<Upsert>> {
        let (nodes, _) = self.check_nodes(noderange)?;
        if nodes.is_empty() {
            return Ok(Vec::new());
        }
        let defaults = self
            .catalog
            .get("postscripts", &[("node", "xcatdefaults")])?
            .unwrap_or_default();
        let filter = |list: &Option<String>, col: &str| -> Option<String> {
            let list = list.as_deref().filter(|l| !l.is_empty())?;
            let default_items: Vec<&str> = defaults
                .get(col)
                .map(|d| d.split(',').map(str::trim).collect())
                .unwrap_or_default();
            let kept: Vec<&str> = list
                .split(',')
                .map(str::trim)
                .filter(|i| !i.is_empty() && !default_items.contains(i))
                .collect();
            (!kept.is_empty()).then(|| kept.join(","))
        };
        let ps = filter(&m.postscripts, "postscripts");
        let pbs = filter(&m.postbootscripts, "postbootscripts");
        if ps.is_none() && pbs.is_none() {
            return Ok(Vec::new());
        }
        Ok(nodes
            .into_iter()
            .map(|n| Upsert {
                table: "postscripts".into(),
                key: vec![("node".into(), n)],
                values: vec![
                    ("postscripts".into(), ps.clone()),
                    ("postbootscripts".into(), pbs.clone()),
                ],
            })
            .collect())
    }
}

impl Context<'_> {
    /// xCAT's `-p` lines, once the image is in place: `Adding postscripts.` (whether
    /// or not the bundle has postscripts, and not for `--dry-run`, which changes
    /// nothing), the skipped nodes (a warning that still makes exit code 1), and the
    /// error when no node is left, returned so the caller reports the image as not
    /// imported although it is defined.
    pub(super) fn report_nodes(&self, report: &mut dyn Reporter) -> Result<Option<String>> {
        let Some(noderange) = &self.opts.postscripts else {
            return Ok(None);
        };
        if !self.opts.dry_run {
            report.info("Adding postscripts.");
        }
        let (nodes, missing) = self.check_nodes(noderange)?;
        if !missing.is_empty() {
            report.failing_warning(&format!(
                "The following nodes will be skipped because they are not in the nodelist table.\n  {}",
                missing.join(",")
            ));
        }
        Ok(nodes
            .is_empty()
            .then(|| format!("The nodes {noderange} are not defined in xCAT DB.")))
    }
}

/// A row keyed by `key`, with every other column of `columns`.
fn upsert(table: &str, key: &[(&str, &str)], columns: &BTreeMap<String, String>) -> Upsert {
    Upsert {
        table: table.into(),
        key: key
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        values: columns
            .iter()
            .filter(|(k, _)| !key.iter().any(|(kk, _)| kk == k))
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect(),
    }
}

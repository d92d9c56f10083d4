//! Copying tables between catalogs, the way xCAT's `dumpxCATdb` / `restorexCATdb` move
//! a cluster from SQLite to PostgreSQL or MySQL when it grows (XCAT.md §8.7).

use super::schema::{self, TableSpec};
use super::store::{all_rows, insert_rows};
use super::{spec_of, Catalog, CatalogError};

/// What a copy did (or, in a dry run, would do) to one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCopy {
    /// The table.
    pub table: String,
    /// Rows read from the source (disabled rows included), 0 when it is absent.
    pub rows: usize,
    /// Rows the target held before, all replaced.
    pub replaced: usize,
    /// The source has no such table (no file, no SQL table): the target's is left
    /// untouched, as restorexCATdb leaves tables it has no CSV for.
    pub absent: bool,
}

/// The result of [`Catalog::copy_to`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// The source, described without secrets.
    pub from: String,
    /// The target, described without secrets.
    pub to: String,
    /// Whether nothing was written.
    pub dry_run: bool,
    /// One entry per table, in the order given (or schema order).
    pub tables: Vec<TableCopy>,
}

impl Catalog {
    /// Copies `tables` (every table imgport knows when empty) from this catalog into
    /// `target`, replacing the target's rows of each table the source has, like
    /// `dumpxCATdb` then `restorexCATdb`: same rows, same values, disabled rows
    /// included, in the source's `SELECT *` order; `''` becomes NULL as it does
    /// through tabdump CSV. The target's tables are created with xCAT's DDL as needed.
    ///
    /// The whole copy is one transaction, on a server and across the table files of
    /// an SQLite target alike (all of it rolled back if anything fails). With
    /// `dry_run` both sides are only read. Errors: an unknown table name (before
    /// anything is read), or a read, connect or write failure. Cost: every copied
    /// table is read whole into memory once.
    pub fn copy_to(
        &self,
        target: &Catalog,
        tables: &[&str],
        dry_run: bool,
    ) -> Result<CopyReport, CatalogError> {
        let specs: Vec<&'static TableSpec> = if tables.is_empty() {
            schema::TABLES.iter().collect()
        } else {
            tables
                .iter()
                .map(|t| spec_of(t))
                .collect::<Result<_, _>>()?
        };
        let mut copied = Vec::new();
        let mut report = CopyReport {
            from: self.location().describe(),
            to: target.location().describe(),
            dry_run,
            tables: Vec::new(),
        };
        for &spec in &specs {
            let rows = self
                .backend
                .read(spec, "reading", |c| all_rows(c, spec))?
                .flatten();
            let before = target
                .backend
                .read(spec, "reading", |c| all_rows(c, spec))?
                .flatten()
                .map_or(0, |r| r.rows.len());
            report.tables.push(TableCopy {
                table: spec.name.to_string(),
                rows: rows.as_ref().map_or(0, |r| r.rows.len()),
                replaced: before,
                absent: rows.is_none(),
            });
            if let Some(rows) = rows {
                copied.push((spec, rows));
            }
        }
        if dry_run || copied.is_empty() {
            return Ok(report);
        }
        let order: Vec<&'static TableSpec> = copied.iter().map(|(s, _)| *s).collect();
        target.backend.write(&order, |tables| {
            for (spec, rows) in &copied {
                let err = target.backend.err(spec.name, "copying into");
                let conn = tables
                    .conn(spec.name)
                    .ok_or_else(|| CatalogError::UnknownTable {
                        table: spec.name.to_string(),
                    })?;
                let d = conn.dialect();
                conn.execute(&format!("DELETE FROM {}", d.q(spec.name)), &[])
                    .map_err(&err)?;
                insert_rows(conn, spec, rows, true).map_err(&err)?;
            }
            Ok(())
        })?;
        Ok(report)
    }
}

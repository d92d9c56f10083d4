//! The catalog's reads and writes, written once for every backend: the disabled-row
//! rule on reads (XCAT.md §8.4), setAttribs merge upserts, and plans computed on a private
//! in-memory copy (XCAT.md §6.4, §8.4, §8.7).

use rusqlite::Connection;

use super::backend::{Backend, Conn, DbError, Rows};
use super::schema::TableSpec;
use super::{
    check_column, spec_of, Catalog, CatalogError, Change, ChangeKind, Outcome, Row, Upsert,
};

/// Builds a [`Row`] from `(column, value)` pairs, dropping NULL and `''`.
fn to_row<'a>(pairs: impl Iterator<Item = (&'a str, &'a Option<String>)>) -> Row {
    pairs
        .filter_map(|(c, v)| match v {
            Some(v) if !v.is_empty() => Some((c.to_string(), v.clone())),
            _ => None,
        })
        .collect()
}

/// A stored value as xCAT's Perl would see it (non-UTF-8 bytes replaced).
fn text(v: &Option<Vec<u8>>) -> Option<String> {
    v.as_ref().map(|b| String::from_utf8_lossy(b).into_owned())
}

/// The schema columns `have` holds, in schema order.
fn present<'a>(spec: &'a TableSpec, have: &[String]) -> Vec<&'a str> {
    spec.columns
        .iter()
        .copied()
        .filter(|c| have.iter().any(|h| h == c))
        .collect()
}

/// Enabled rows of `spec` matching `key` on `conn` (see [`Catalog::get`]).
fn enabled_rows(
    conn: &mut dyn Conn,
    spec: &TableSpec,
    key: &[(&str, &str)],
    first_only: bool,
) -> Result<Vec<Row>, DbError> {
    let d = conn.dialect();
    let Some(have) = conn.columns(spec.name)? else {
        return Ok(Vec::new());
    };
    let cols = present(spec, &have);
    if cols.is_empty() {
        return Ok(Vec::new());
    }
    let mut conds = Vec::new();
    let mut binds: Vec<Option<&[u8]>> = Vec::new();
    for (c, v) in key {
        // A column the old table lacks reads as NULL everywhere.
        if !cols.contains(c) {
            if v.is_empty() {
                continue;
            }
            return Ok(Vec::new());
        }
        if v.is_empty() {
            conds.push(format!("{} IS NULL", d.q(c)));
        } else {
            conds.push(format!("{} = ?", d.q(c)));
            binds.push(Some(v.as_bytes()));
        }
    }
    if cols.contains(&"disable") {
        conds.push(d.enabled());
    }
    let mut sql = format!(
        "SELECT {} FROM {}",
        cols.iter().map(|c| d.q(c)).collect::<Vec<_>>().join(", "),
        d.q(spec.name)
    );
    if !conds.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&conds.join(" AND "));
    }
    sql.push_str(d.insertion_order());
    let rows = conn.query(&sql, &binds)?;
    let mut out = Vec::new();
    for r in &rows.rows {
        let row = to_row(
            cols.iter()
                .copied()
                .zip(r.iter().map(text).collect::<Vec<_>>().iter()),
        );
        if !row.is_empty() {
            out.push(row);
            if first_only {
                break;
            }
        }
    }
    Ok(out)
}

/// Every row of `spec`'s table with the schema columns it has, in `SELECT *` order
/// (rowid order on SQLite); None when the table does not exist.
pub(super) fn all_rows(conn: &mut dyn Conn, spec: &TableSpec) -> Result<Option<Rows>, DbError> {
    let d = conn.dialect();
    let Some(have) = conn.columns(spec.name)? else {
        return Ok(None);
    };
    let cols = present(spec, &have);
    if cols.is_empty() {
        return Ok(Some(Rows::default()));
    }
    let sql = format!(
        "SELECT {} FROM {}{}",
        cols.iter().map(|c| d.q(c)).collect::<Vec<_>>().join(", "),
        d.q(spec.name),
        d.insertion_order()
    );
    let mut rows = conn.query(&sql, &[])?;
    // Names as the schema spells them, whatever case the server reports.
    rows.names = cols.iter().map(|c| c.to_string()).collect();
    Ok(Some(rows))
}

/// Inserts every row of `rows` into `spec`'s table, columns as `rows.names` says.
/// With `empty_is_null`, empty values go in as NULL, as xCAT stores them on its own
/// writes; without, every value goes in as read, so a copy keeps `''` apart from NULL.
pub(super) fn insert_rows(
    conn: &mut dyn Conn,
    spec: &TableSpec,
    rows: &Rows,
    empty_is_null: bool,
) -> Result<(), DbError> {
    if rows.names.is_empty() {
        return Ok(());
    }
    let d = conn.dialect();
    let insert = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        d.q(spec.name),
        rows.names
            .iter()
            .map(|c| d.q(c))
            .collect::<Vec<_>>()
            .join(", "),
        vec!["?"; rows.names.len()].join(", ")
    );
    for r in &rows.rows {
        let vals: Vec<Option<&[u8]>> = r
            .iter()
            .map(|v| v.as_deref().filter(|b| !(empty_is_null && b.is_empty())))
            .collect();
        conn.execute(&insert, &vals)?;
    }
    Ok(())
}

impl Catalog {
    /// Enabled rows of `spec` matching `key` (see [`Catalog::get`]); stops after the
    /// first when `first_only`.
    pub(super) fn read_rows(
        &self,
        spec: &'static TableSpec,
        key: &[(&str, &str)],
        first_only: bool,
    ) -> Result<Vec<Row>, CatalogError> {
        for (c, _) in key {
            check_column(spec, c)?;
        }
        Ok(self
            .backend
            .read(spec, "reading", |conn| {
                enabled_rows(conn, spec, key, first_only)
            })?
            .unwrap_or_default())
    }

    /// What [`Catalog::apply`] would do with `upserts`, computed without writing
    /// anything: each involved table is copied into a private in-memory SQLite
    /// database (or created there if it does not exist) and the very same statements
    /// run on that copy, so later upserts see earlier ones exactly as in `apply`.
    ///
    /// Errors: unknown table or key column, unreadable tables, or a statement that
    /// would fail in `apply` too (e.g. a NOT NULL violation). Cost: a full read of
    /// every involved table.
    pub fn plan(&self, upserts: &[Upsert]) -> Result<Outcome, CatalogError> {
        let (specs, order) = validate(upserts)?;
        let mut mem = Connection::open_in_memory().map_err(|e| {
            super::backend::sqlite::sqlite_err(":memory:".into(), "", "opening", e.into())
        })?;
        for &spec in &order {
            self.copy_table(&mut mem, spec)?;
        }
        let mut outcome = Outcome::default();
        for (up, &spec) in upserts.iter().zip(&specs) {
            let changes = run_upsert(&mut mem, spec, up, &mut outcome.dropped)
                .map_err(self.backend.err(spec.name, "planning a write to"))?;
            outcome.changes.extend(changes);
        }
        Ok(outcome)
    }

    /// Copies `spec`'s rows (the schema columns the table has) into `mem`, created
    /// there with xCAT's DDL, in the table's own order.
    fn copy_table(
        &self,
        mem: &mut Connection,
        spec: &'static TableSpec,
    ) -> Result<(), CatalogError> {
        let rows = self
            .backend
            .read(spec, "reading", |conn| all_rows(conn, spec))?
            .flatten();
        let err = self.backend.err(spec.name, "copying for a plan");
        mem.batch(&super::ddl::create(super::backend::Dialect::Sqlite, spec))
            .map_err(&err)?;
        match rows {
            Some(rows) => insert_rows(mem, spec, &rows, false).map_err(&err),
            None => Ok(()),
        }
    }

    /// Writes `upserts` with xCAT setAttribs merge semantics (XCAT.md §6.4, C15).
    ///
    /// Per upsert: rows matching every key pair (`''` = IS NULL; disabled rows match
    /// too, as in setAttribs) get only the given columns updated, other columns keep
    /// their values, and on this path the string `"NULL"` is stored as NULL as xCAT
    /// does. With no match (or an empty key) keys+values are inserted, unless every
    /// value is empty, which xCAT skips. `None` and `""` are stored as NULL, never `''`.
    /// Columns unknown to the schema are dropped and listed in [`Outcome::dropped`];
    /// an unknown table or key column is an error before anything is touched.
    ///
    /// Atomicity: on a database server, one transaction across every table under
    /// imgport's server-wide write lock, so a concurrent imgport never sees or
    /// interleaves half of it. On SQLite, one transaction across the table files too:
    /// the files are attached to one connection and committed together through
    /// SQLite's super-journal, so a failing statement, a failed COMMIT or a crash at
    /// any moment leaves every file old or every file new (table files this call
    /// created are removed again when it fails). Missing
    /// tables are created with xCAT's DDL; old tables get missing columns added. Cost:
    /// one indexed SELECT plus at most one write per upsert and row.
    pub fn apply(&self, upserts: &[Upsert]) -> Result<Outcome, CatalogError> {
        let (specs, order) = validate(upserts)?;
        self.backend.write(&order, |tables| {
            let mut outcome = Outcome::default();
            for (up, &spec) in upserts.iter().zip(&specs) {
                let conn = tables
                    .conn(spec.name)
                    .ok_or_else(|| CatalogError::UnknownTable {
                        table: spec.name.to_string(),
                    })?;
                let changes = run_upsert(conn, spec, up, &mut outcome.dropped)
                    .map_err(self.backend.err(spec.name, "writing"))?;
                outcome.changes.extend(changes);
            }
            Ok(outcome)
        })
    }

    /// What [`Catalog::apply`] of `upserts` would create on SQLite: the tables whose
    /// file does not exist yet, and the missing catalog directories (outermost
    /// first); nothing on a server. An import journals them before its rows, so that
    /// recovery can remove them again when the write did not land.
    pub fn new_table_files(
        &self,
        upserts: &[Upsert],
    ) -> Result<(Vec<String>, Vec<std::path::PathBuf>), CatalogError> {
        let (_, order) = validate(upserts)?;
        let Backend::Sqlite(files) = &self.backend else {
            return Ok((Vec::new(), Vec::new()));
        };
        let tables = order
            .iter()
            .filter(|s| std::fs::symlink_metadata(files.table_file(s.name)).is_err())
            .map(|s| s.name.to_string())
            .collect();
        Ok((tables, files.missing_dirs()))
    }

    /// Removes the SQLite file of `table` if it is empty and has no journal: a file a
    /// killed write created (SQLite truncates it back to empty when it rolls the
    /// write back). Returns the path removed. For recovery, under the exclusive MN
    /// lock; does nothing on a server or for an unknown table.
    pub fn remove_new_table_file(&self, table: &str) -> Option<std::path::PathBuf> {
        let (Backend::Sqlite(files), Ok(spec)) = (&self.backend, spec_of(table)) else {
            return None;
        };
        files
            .remove_new_file(spec)
            .then(|| files.table_file(spec.name))
    }

    /// Finishes what a killed or failed SQLite write left in the catalog directory:
    /// opens every table file, so that SQLite rolls a hot journal back (the write had
    /// not reached its commit point) or drops a stale one (it had), and removes
    /// super-journals no journal refers to any more. Returns the super-journals
    /// removed. For recovery, under the exclusive MN lock; nothing on a server (its
    /// own recovery does this).
    pub fn settle(&self) -> Vec<std::path::PathBuf> {
        match &self.backend {
            Backend::Sqlite(files) => files.settle(),
            Backend::Server(_) => Vec::new(),
        }
    }

    /// The backend, for the CSV side.
    pub(super) fn backend(&self) -> &Backend {
        &self.backend
    }
}

/// Checks every upsert's table and key columns; returns each upsert's spec and the
/// distinct tables in first-seen order (the order files are locked and committed).
type Validated = (Vec<&'static TableSpec>, Vec<&'static TableSpec>);
fn validate(upserts: &[Upsert]) -> Result<Validated, CatalogError> {
    let mut specs = Vec::with_capacity(upserts.len());
    let mut order: Vec<&'static TableSpec> = Vec::new();
    for up in upserts {
        let spec = spec_of(&up.table)?;
        for (c, _) in &up.key {
            check_column(spec, c)?;
        }
        if !order.iter().any(|s| s.name == spec.name) {
            order.push(spec);
        }
        specs.push(spec);
    }
    Ok((specs, order))
}

/// One setAttribs call on `conn` (the table exists with every schema column): update
/// every row the key matches, or insert one when none does.
fn run_upsert(
    conn: &mut dyn Conn,
    spec: &'static TableSpec,
    up: &Upsert,
    dropped: &mut Vec<(String, String)>,
) -> Result<Vec<Change>, DbError> {
    let values = known_values(spec, up, dropped);
    let matches = find_matches(conn, spec, up)?;
    if !matches.is_empty() {
        return update_matches(conn, spec, up, &values, matches);
    }
    if values.iter().all(|(_, v)| v.is_none()) {
        // xCAT: "Don't bother inserting truly blank lines".
        return Ok(vec![change(
            spec,
            up,
            ChangeKind::Unchanged,
            None,
            Row::new(),
        )]);
    }
    insert_row(conn, spec, up, &values).map(|c| vec![c])
}

/// The upsert's values for columns the schema knows, last occurrence winning and ""
/// folded into NULL; unknown columns are recorded in `dropped` once each.
fn known_values<'u>(
    spec: &'static TableSpec,
    up: &'u Upsert,
    dropped: &mut Vec<(String, String)>,
) -> Vec<(&'static str, Option<&'u str>)> {
    let mut values: Vec<(&'static str, Option<&str>)> = Vec::new();
    for (c, v) in &up.values {
        match spec.columns.iter().find(|k| **k == c.as_str()) {
            Some(&col) => {
                let v = v.as_deref().filter(|s| !s.is_empty());
                match values.iter_mut().find(|(k, _)| *k == col) {
                    Some(slot) => slot.1 = v,
                    None => values.push((col, v)),
                }
            }
            None => {
                let pair = (spec.name.to_string(), c.clone());
                if !dropped.contains(&pair) {
                    dropped.push(pair);
                }
            }
        }
    }
    values
}

fn change(spec: &TableSpec, up: &Upsert, kind: ChangeKind, old: Option<Row>, new: Row) -> Change {
    Change {
        table: spec.name.to_string(),
        key: up.key.clone(),
        kind,
        old,
        new,
    }
}

/// A matched row: its identity (the rowid, or the primary key values on a server) and
/// its values in schema order.
type Match = (Vec<super::backend::Value>, Vec<Option<String>>);

/// The columns that identify a row on this dialect, quoted for SQL.
fn identity_columns(d: super::backend::Dialect, spec: &TableSpec) -> Vec<String> {
    match d.rowid() {
        Some(r) => vec![r.to_string()],
        None => spec.keys.iter().map(|c| d.q(c)).collect(),
    }
}

/// Every row whose key columns equal the upsert's key (an empty key value matches NULL).
fn find_matches(
    conn: &mut dyn Conn,
    spec: &'static TableSpec,
    up: &Upsert,
) -> Result<Vec<Match>, DbError> {
    if up.key.is_empty() {
        return Ok(Vec::new());
    }
    let d = conn.dialect();
    let mut conds = Vec::new();
    let mut binds: Vec<Option<&[u8]>> = Vec::new();
    for (c, v) in &up.key {
        if v.is_empty() {
            conds.push(format!("{} IS NULL", d.q(c)));
        } else {
            conds.push(format!("{} = ?", d.q(c)));
            binds.push(Some(v.as_bytes()));
        }
    }
    let ident = identity_columns(d, spec);
    let columns: Vec<String> = spec.columns.iter().map(|c| d.q(c)).collect();
    let sql = format!(
        "SELECT {}, {} FROM {} WHERE {}{}",
        ident.join(", "),
        columns.join(", "),
        d.q(spec.name),
        conds.join(" AND "),
        d.insertion_order()
    );
    let rows = conn.query(&sql, &binds)?;
    Ok(rows
        .rows
        .into_iter()
        .map(|mut r| {
            let vals = r.split_off(ident.len());
            (r, vals.iter().map(text).collect())
        })
        .collect())
}

/// setAttribs' UPDATE path: only the columns whose value changes are written.
fn update_matches(
    conn: &mut dyn Conn,
    spec: &'static TableSpec,
    up: &Upsert,
    values: &[(&'static str, Option<&str>)],
    matches: Vec<Match>,
) -> Result<Vec<Change>, DbError> {
    let mut out = Vec::new();
    for (id, old) in matches {
        let mut new = old.clone();
        let mut sets: Vec<(&str, Option<&str>)> = Vec::new();
        for &(col, v) in values {
            // setAttribs' UPDATE path stores the string "NULL" as NULL.
            let v = v.filter(|s| *s != "NULL");
            let Some(i) = spec.columns.iter().position(|c| *c == col) else {
                continue;
            };
            if new[i].as_deref() != v {
                new[i] = v.map(str::to_string);
                sets.push((col, v));
            }
        }
        let old_row = to_row(spec.columns.iter().copied().zip(&old));
        let new_row = to_row(spec.columns.iter().copied().zip(&new));
        if sets.is_empty() {
            out.push(change(
                spec,
                up,
                ChangeKind::Unchanged,
                Some(old_row),
                new_row,
            ));
            continue;
        }
        let d = conn.dialect();
        let where_id: Vec<String> = identity_columns(d, spec)
            .iter()
            .map(|c| format!("{c} = ?"))
            .collect();
        let assignments: Vec<String> = sets
            .iter()
            .map(|(c, _)| format!("{} = ?", d.q(c)))
            .collect();
        let sql = format!(
            "UPDATE {} SET {} WHERE {}",
            d.q(spec.name),
            assignments.join(", "),
            where_id.join(" AND ")
        );
        let mut params: Vec<Option<&[u8]>> =
            sets.iter().map(|(_, v)| v.map(str::as_bytes)).collect();
        params.extend(id.iter().map(|v| v.as_deref()));
        conn.execute(&sql, &params)?;
        out.push(change(spec, up, ChangeKind::Update, Some(old_row), new_row));
    }
    Ok(out)
}

/// setAttribs' INSERT path: the key columns, then the values, last occurrence winning.
fn insert_row(
    conn: &mut dyn Conn,
    spec: &'static TableSpec,
    up: &Upsert,
    values: &[(&'static str, Option<&str>)],
) -> Result<Change, DbError> {
    let mut cols: Vec<(&str, Option<&str>)> = Vec::new();
    let keys = up
        .key
        .iter()
        .map(|(c, v)| (c.as_str(), Some(v.as_str()).filter(|s| !s.is_empty())));
    for (c, v) in keys.chain(values.iter().copied()) {
        match cols.iter_mut().find(|(k, _)| *k == c) {
            Some(slot) => slot.1 = v,
            None => cols.push((c, v)),
        }
    }
    let d = conn.dialect();
    let names: Vec<String> = cols.iter().map(|(c, _)| d.q(c)).collect();
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        d.q(spec.name),
        names.join(", "),
        vec!["?"; cols.len()].join(", ")
    );
    let params: Vec<Option<&[u8]>> = cols.iter().map(|(_, v)| v.map(str::as_bytes)).collect();
    conn.execute(&sql, &params)?;
    let new_row = cols
        .iter()
        .filter_map(|(c, v)| v.map(|v| (c.to_string(), v.to_string())))
        .collect();
    Ok(change(spec, up, ChangeKind::Insert, None, new_row))
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{catalog, raw, row, up};
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The stored `CREATE TABLE` text of `table`.
    fn stored_ddl(cat: &Catalog, table: &str) -> String {
        let conn = Connection::open(cat.dir().unwrap().join(format!("{table}.sqlite"))).unwrap();
        conn.query_row(
            "SELECT sql FROM sqlite_master WHERE type='table' AND name = ?1",
            [table],
            |r| r.get(0),
        )
        .unwrap()
    }

    #[test]
    fn lazily_created_files_carry_xcats_exact_ddl_and_mode_0600() {
        let (_root, cat) = catalog();
        cat.apply(&[
            up("osimage", &[("imagename", "i")], &[("profile", Some("p"))]),
            up(
                "litefile",
                &[("image", "i"), ("file", "/etc/x")],
                &[("options", Some("rw"))],
            ),
            up(
                "postscripts",
                &[("node", "n")],
                &[("postscripts", Some("a"))],
            ),
        ])
        .unwrap();
        let osimage = "CREATE TABLE osimage (\n  imagename VARCHAR(128) ,\n  groups TEXT,\n  \
            profile TEXT,\n  imagetype TEXT,\n  description TEXT,\n  provmethod TEXT,\n  \
            rootfstype TEXT,\n  osdistroname TEXT,\n  osupdatename VARCHAR(1024),\n  \
            cfmdir TEXT,\n  osname TEXT,\n  osvers TEXT,\n  osarch TEXT,\n  synclists TEXT,\n  \
            postscripts TEXT,\n  postbootscripts TEXT,\n  serverrole TEXT,\n  \
            isdeletable TEXT,\n  kitcomponents TEXT,\n  environvar TEXT,\n  comments TEXT,\n  \
            disable TEXT,\n  PRIMARY KEY (imagename)\n)";
        assert_eq!(stored_ddl(&cat, "osimage"), osimage);
        assert_eq!(
            stored_ddl(&cat, "litefile"),
            "CREATE TABLE litefile (\n  image VARCHAR(128)  NOT NULL,\n  \
             file VARCHAR(128)  NOT NULL,\n  options TEXT,\n  comments TEXT,\n  \
             disable TEXT,\n  PRIMARY KEY (image,file)\n)"
        );
        assert_eq!(
            stored_ddl(&cat, "postscripts"),
            "CREATE TABLE postscripts (\n  node VARCHAR(128) ,\n  postscripts TEXT,\n  \
             postbootscripts TEXT,\n  comments TEXT,\n  disable TEXT,\n  PRIMARY KEY (node)\n)"
        );
        for t in ["osimage", "litefile", "postscripts"] {
            let mode = std::fs::metadata(cat.dir().unwrap().join(format!("{t}.sqlite")))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{t}");
        }
        // Only the written tables exist, and no WAL/journal was left behind.
        let mut names: Vec<String> = std::fs::read_dir(cat.dir().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["litefile.sqlite", "osimage.sqlite", "postscripts.sqlite"]
        );
        // An independent SQLite (python3's) reads the same rows and schema.
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(
                "import sqlite3,sys\n\
                 c=sqlite3.connect(sys.argv[1])\n\
                 print(c.execute('PRAGMA integrity_check').fetchone()[0])\n\
                 print(c.execute('PRAGMA journal_mode').fetchone()[0])\n\
                 print(c.execute('SELECT imagename,profile,typeof(groups) FROM osimage').fetchall())",
            )
            .arg(cat.dir().unwrap().join("osimage.sqlite"))
            .output()
            .expect("python3");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "ok\ndelete\n[('i', 'p', 'null')]\n"
        );
    }

    #[test]
    fn upsert_merges_and_writes_null_never_empty() {
        let (_root, cat) = catalog();
        raw(&cat, "osimage")
            .execute_batch(
                "INSERT INTO osimage (imagename, profile, description, osvers, osarch) \
                 VALUES ('img', 'old', 'keep me', 'rhels8', 'x86_64');",
            )
            .unwrap();
        let out = cat
            .apply(&[up(
                "osimage",
                &[("imagename", "img")],
                &[
                    ("profile", Some("new")),
                    ("osvers", None),
                    ("imagetype", Some("")),
                    ("nfsrootopts", Some("x")),
                    ("provmethod", Some("netboot")),
                ],
            )])
            .unwrap();
        assert_eq!(
            out.dropped,
            [("osimage".to_string(), "nfsrootopts".to_string())]
        );
        assert_eq!(out.changes.len(), 1);
        let c = &out.changes[0];
        assert_eq!(c.kind, ChangeKind::Update);
        assert_eq!(
            c.old.as_ref().unwrap(),
            &row(&[
                ("imagename", "img"),
                ("profile", "old"),
                ("description", "keep me"),
                ("osvers", "rhels8"),
                ("osarch", "x86_64")
            ])
        );
        let expect = row(&[
            ("imagename", "img"),
            ("profile", "new"),
            ("description", "keep me"),
            ("osarch", "x86_64"),
            ("provmethod", "netboot"),
        ]);
        assert_eq!(c.new, expect);
        assert_eq!(
            cat.get("osimage", &[("imagename", "img")]).unwrap(),
            Some(expect)
        );
        let types: (String, String) = raw(&cat, "osimage")
            .query_row(
                "SELECT typeof(osvers), typeof(imagetype) FROM osimage WHERE imagename='img'",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(types, ("null".into(), "null".into()));

        // Same values again: nothing to write.
        let again = cat
            .apply(&[up(
                "osimage",
                &[("imagename", "img")],
                &[("profile", Some("new"))],
            )])
            .unwrap();
        assert_eq!(again.changes[0].kind, ChangeKind::Unchanged);

        // Inserts: '' becomes NULL; an insert with only empty values is skipped.
        let ins = cat
            .apply(&[
                up(
                    "osimage",
                    &[("imagename", "two")],
                    &[("profile", Some("p")), ("groups", Some(""))],
                ),
                up(
                    "osimage",
                    &[("imagename", "blank")],
                    &[("profile", None), ("bogus", Some("x"))],
                ),
            ])
            .unwrap();
        assert_eq!(ins.changes[0].kind, ChangeKind::Insert);
        assert_eq!(
            ins.changes[0].new,
            row(&[("imagename", "two"), ("profile", "p")])
        );
        assert_eq!(ins.changes[1].kind, ChangeKind::Unchanged);
        assert_eq!(ins.changes[1].old, None);
        let n: i64 = raw(&cat, "osimage")
            .query_row(
                "SELECT count(*) FROM osimage WHERE imagename='blank' OR groups = ''",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 0);

        // Unknown table or key column: error before anything is touched.
        assert!(matches!(
            cat.apply(&[up("nosuch", &[("a", "b")], &[])]),
            Err(CatalogError::UnknownTable { .. })
        ));
        assert!(matches!(
            cat.apply(&[up("kit", &[("bogus", "b")], &[("kitdir", Some("d"))])]),
            Err(CatalogError::UnknownColumn { .. })
        ));
        assert!(!cat.dir().unwrap().join("kit.sqlite").exists());
    }

    #[test]
    fn apply_is_all_or_nothing_across_table_files() {
        let (_root, cat) = catalog();
        raw(&cat, "osimage")
            .execute_batch("INSERT INTO osimage (imagename, profile) VALUES ('old', 'p');")
            .unwrap();
        raw(&cat, "litefile")
            .execute_batch("INSERT INTO litefile (image, file) VALUES ('img', '/a');")
            .unwrap();
        let before_os = std::fs::read(cat.dir().unwrap().join("osimage.sqlite")).unwrap();
        let err = cat
            .apply(&[
                up(
                    "osimage",
                    &[("imagename", "new")],
                    &[("profile", Some("x"))],
                ),
                up(
                    "osimage",
                    &[("imagename", "old")],
                    &[("profile", Some("changed"))],
                ),
                up(
                    "postscripts",
                    &[("node", "n1")],
                    &[("postscripts", Some("s"))],
                ),
                // Last statement fails: litefile.file is NOT NULL.
                up(
                    "litefile",
                    &[("image", "img"), ("file", "/a")],
                    &[("file", None)],
                ),
            ])
            .unwrap_err();
        match &err {
            CatalogError::Sqlite { file, table, .. } => {
                assert_eq!(table, "litefile");
                assert!(file.ends_with("litefile.sqlite"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains("NOT NULL"), "{err}");
        // Nothing of it landed; the file this call created is gone again.
        assert_eq!(
            std::fs::read(cat.dir().unwrap().join("osimage.sqlite")).unwrap(),
            before_os
        );
        assert!(cat
            .get("osimage", &[("imagename", "new")])
            .unwrap()
            .is_none());
        assert_eq!(
            cat.get("osimage", &[("imagename", "old")])
                .unwrap()
                .unwrap()["profile"],
            "p"
        );
        assert!(!cat.dir().unwrap().join("postscripts.sqlite").exists());
        assert_eq!(cat.select("litefile", &[]).unwrap().len(), 1);
        // And the catalog still works afterwards.
        cat.apply(&[up(
            "postscripts",
            &[("node", "n1")],
            &[("postscripts", Some("s"))],
        )])
        .unwrap();
        assert!(cat.get("postscripts", &[("node", "n1")]).unwrap().is_some());
    }

    #[test]
    fn plan_reports_without_touching_anything() {
        let (_root, cat) = catalog();
        let ups = [
            up("osimage", &[("imagename", "i")], &[("profile", Some("a"))]),
            up("osimage", &[("imagename", "i")], &[("osvers", Some("v"))]),
            up(
                "linuximage",
                &[("imagename", "i")],
                &[("rootimgdir", Some("/r"))],
            ),
        ];
        let planned = cat.plan(&ups).unwrap();
        assert_eq!(std::fs::read_dir(cat.dir().unwrap()).unwrap().count(), 0);
        let kinds: Vec<ChangeKind> = planned.changes.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            [ChangeKind::Insert, ChangeKind::Update, ChangeKind::Insert]
        );
        assert_eq!(
            planned.changes[1].new,
            row(&[("imagename", "i"), ("profile", "a"), ("osvers", "v")])
        );
        let applied = cat.apply(&ups).unwrap();
        assert_eq!(planned, applied);
        // On existing files plan leaves every byte alone.
        let before = std::fs::read(cat.dir().unwrap().join("osimage.sqlite")).unwrap();
        let again = cat
            .plan(&[up(
                "osimage",
                &[("imagename", "i")],
                &[("profile", Some("b"))],
            )])
            .unwrap();
        assert_eq!(again.changes[0].kind, ChangeKind::Update);
        assert_eq!(again.changes[0].old.as_ref().unwrap()["profile"], "a");
        assert_eq!(
            std::fs::read(cat.dir().unwrap().join("osimage.sqlite")).unwrap(),
            before
        );
        assert_eq!(
            cat.get("osimage", &[("imagename", "i")]).unwrap().unwrap()["profile"],
            "a"
        );
    }

    #[test]
    fn old_tables_are_read_by_name_and_upgraded_on_write() {
        let (_root, cat) = catalog();
        // An upgraded DB: different physical order, no environvar/kitcomponents yet.
        let conn = Connection::open(cat.dir().unwrap().join("osimage.sqlite")).unwrap();
        conn.execute_batch(
            "CREATE TABLE osimage (profile TEXT, imagename VARCHAR(128) , disable TEXT, \
             osvers TEXT, PRIMARY KEY (imagename));
             INSERT INTO osimage (profile, imagename, osvers) VALUES ('p', 'img', 'v');",
        )
        .unwrap();
        drop(conn);
        assert_eq!(
            cat.get("osimage", &[("imagename", "img")]).unwrap(),
            Some(row(&[
                ("imagename", "img"),
                ("profile", "p"),
                ("osvers", "v")
            ]))
        );
        // A missing column reads as NULL: '' matches, anything else does not.
        assert!(cat.get("osimage", &[("environvar", "")]).unwrap().is_some());
        assert!(cat
            .get("osimage", &[("environvar", "x")])
            .unwrap()
            .is_none());
        cat.apply(&[up(
            "osimage",
            &[("imagename", "img")],
            &[("environvar", Some("A=1"))],
        )])
        .unwrap();
        assert_eq!(
            cat.get("osimage", &[("imagename", "img")])
                .unwrap()
                .unwrap()["environvar"],
            "A=1"
        );
        let conn = Connection::open(cat.dir().unwrap().join("osimage.sqlite")).unwrap();
        let cols: Vec<String> = conn
            .prepare("SELECT * FROM osimage LIMIT 0")
            .unwrap()
            .column_names()
            .map(str::to_string)
            .collect();
        assert_eq!(&cols[..4], ["profile", "imagename", "disable", "osvers"]);
        assert_eq!(cols.len(), super::super::schema::OSIMAGE.columns.len());
    }
}

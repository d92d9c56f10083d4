//! The SQLite side: xCAT's one-file-per-table layout (spec §7.2, §7.3, C23), lazy
//! creation with xCAT's exact DDL, xCAT's schema update (ADD COLUMN), the disabled-row
//! rule on reads (§7.4), and setAttribs merge upserts run all-or-nothing across files.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{params_from_iter, Connection, OpenFlags};

use super::schema::TableSpec;
use super::{
    check_column, spec_of, Catalog, CatalogError, Change, ChangeKind, Outcome, Row, Upsert,
};

/// xCAT's "row is enabled" test (§7.4): anything else in `disable`, `''` included,
/// comments the row out.
const ENABLED: &str = "(\"disable\" IS NULL OR \"disable\" IN ('0','no','NO','No','nO'))";

/// Cache of open connections, one per table file, keyed by table name.
pub(super) type Conns = HashMap<&'static str, Connection>;

/// The `CREATE TABLE` text xCAT's `buildcreatestmt` generates for SQLite, byte for
/// byte: one column per line with a two-space indent, TEXT by default, key columns of
/// type TEXT turned into `VARCHAR(128) ` (trailing space kept), ` NOT NULL` on required
/// columns, then `PRIMARY KEY (a,b)` and `)` on its own line.
pub(super) fn create_ddl(spec: &TableSpec) -> String {
    let mut sql = format!("CREATE TABLE {} (\n  ", spec.name);
    for col in spec.columns {
        sql.push_str(col);
        sql.push(' ');
        sql.push_str(column_type(spec, col));
        if spec.required.contains(col) {
            sql.push_str(" NOT NULL");
        }
        sql.push_str(",\n  ");
    }
    sql.push_str("PRIMARY KEY (");
    sql.push_str(&spec.keys.join(","));
    sql.push_str(")\n)");
    sql
}

/// A column's SQL type as xCAT derives it (explicit type, else TEXT; TEXT keys get
/// `VARCHAR(128) ` because some backends cannot index TEXT).
fn column_type(spec: &TableSpec, col: &str) -> &'static str {
    let ty = spec
        .types
        .iter()
        .find(|(c, _)| *c == col)
        .map_or("TEXT", |(_, t)| *t);
    if ty == "TEXT" && spec.is_key(col) {
        "VARCHAR(128) "
    } else {
        ty
    }
}

/// Whether the file behind `conn` holds table `name`.
fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare("SELECT 1 FROM sqlite_master WHERE type='table' AND name = ?1")?;
    stmt.exists([name])
}

/// The table's physical column names, lower-cased (SQLite identifiers are
/// case-insensitive). Read from a `LIMIT 0` statement rather than a PRAGMA; an upgraded
/// xCAT DB may order or lack columns differently from the schema.
fn physical_columns(conn: &Connection, name: &str) -> rusqlite::Result<HashSet<String>> {
    let stmt = conn.prepare(&format!("SELECT * FROM {} LIMIT 0", quote(name)))?;
    Ok(stmt
        .column_names()
        .map(|c| c.to_ascii_lowercase())
        .collect())
}

/// Makes the table writable under the current schema: creates it with xCAT's DDL if
/// absent, else adds each missing schema column the way xCAT's `updateschema` does
/// (`ALTER TABLE t ADD col type[ NOT NULL]`). Runs inside the caller's transaction.
fn ensure_table(conn: &Connection, spec: &TableSpec) -> rusqlite::Result<()> {
    if !table_exists(conn, spec.name)? {
        return conn.execute_batch(&create_ddl(spec));
    }
    let have = physical_columns(conn, spec.name)?;
    for col in spec.columns.iter().filter(|c| !have.contains(**c)) {
        let mut sql = format!(
            "ALTER TABLE {} ADD {} {}",
            spec.name,
            col,
            column_type(spec, col)
        );
        if spec.required.contains(col) {
            sql.push_str(" NOT NULL");
        }
        conn.execute_batch(&sql)?;
    }
    Ok(())
}

/// `"name"`, for identifiers in statements we build (the DDL itself stays unquoted,
/// as xCAT writes it).
pub(super) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A stored value as xCAT's Perl would see it: text (non-UTF-8 bytes replaced), numbers
/// formatted, NULL as None.
fn text_of(v: ValueRef<'_>) -> Option<String> {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string()),
        ValueRef::Real(f) => Some(f.to_string()),
        ValueRef::Text(b) | ValueRef::Blob(b) => Some(String::from_utf8_lossy(b).into_owned()),
    }
}

/// Builds a [`Row`] from `(column, value)` pairs, dropping NULL and `''`.
fn to_row<'a>(pairs: impl Iterator<Item = (&'a str, &'a Option<String>)>) -> Row {
    pairs
        .filter_map(|(c, v)| match v {
            Some(v) if !v.is_empty() => Some((c.to_string(), v.clone())),
            _ => None,
        })
        .collect()
}

/// Binds an optional text value (NULL for None).
fn bind_text(v: Option<&str>) -> ToSqlOutput<'_> {
    match v {
        Some(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
        None => ToSqlOutput::Owned(Value::Null),
    }
}

impl Catalog {
    /// `<dir>/<table>.sqlite`.
    pub(super) fn table_file(&self, spec: &TableSpec) -> PathBuf {
        self.dir.join(format!("{}.sqlite", spec.name))
    }

    /// Maps an SQLite error to [`CatalogError::Sqlite`] naming `spec`'s file.
    pub(super) fn sql_err(
        &self,
        spec: &TableSpec,
        action: &'static str,
    ) -> impl Fn(rusqlite::Error) -> CatalogError + '_ {
        let file = self.table_file(spec);
        let table = spec.name.to_string();
        move |source| CatalogError::Sqlite {
            file: file.clone(),
            table: table.clone(),
            action,
            source: Box::new(source),
        }
    }

    /// The cached connection for an existing table file, opened without the create
    /// flag; None if the file does not exist (reads must create nothing).
    pub(super) fn reader<'c>(
        &self,
        conns: &'c mut Conns,
        spec: &'static TableSpec,
    ) -> Result<Option<&'c Connection>, CatalogError> {
        if !conns.contains_key(spec.name) {
            let path = self.table_file(spec);
            match std::fs::metadata(&path) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(source) => return Err(CatalogError::Io { path, source }),
            }
            let conn = open_existing(&path).map_err(self.sql_err(spec, "opening"))?;
            conns.insert(spec.name, conn);
        }
        Ok(conns.get(spec.name))
    }

    /// Ensures a cached connection on `spec`'s file, creating the file first with mode
    /// 0600 (as xcatd's umask 0077 does) when it does not exist. Returns whether this
    /// call created the file, so a failed write can remove it again.
    fn writer(&self, conns: &mut Conns, spec: &'static TableSpec) -> Result<bool, CatalogError> {
        if conns.contains_key(spec.name) {
            return Ok(false);
        }
        let path = self.table_file(spec);
        // A new MN (or scratch root) may not have the catalog directory yet; xCAT's
        // installer makes /etc/xcat 0755.
        if let Some(dir) = path.parent().filter(|d| !d.exists()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|source| CatalogError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
        }
        // An empty file is a valid empty SQLite database; creating it ourselves is the
        // only way to get 0600 without touching the process umask.
        let created = match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
            Err(source) => return Err(CatalogError::Io { path, source }),
        };
        match open_existing(&path) {
            Ok(conn) => {
                conns.insert(spec.name, conn);
                Ok(created)
            }
            Err(e) => {
                if created {
                    let _ = std::fs::remove_file(&path);
                }
                Err(self.sql_err(spec, "opening")(e))
            }
        }
    }

    /// Runs `body` with every file in `specs` open for writing, each inside its own
    /// `BEGIN IMMEDIATE` transaction and with its table created or schema-updated. Only
    /// when `body` succeeds are the files committed, in `specs` order; otherwise every
    /// transaction is rolled back and files this call created are removed again.
    ///
    /// SQLite cannot commit several files atomically: should a COMMIT itself fail
    /// (disk full, lock timeout) after an earlier file committed, the earlier file
    /// stays committed and the error says which file failed.
    pub(super) fn write_tables<R>(
        &self,
        specs: &[&'static TableSpec],
        body: impl FnOnce(&Conns) -> Result<R, CatalogError>,
    ) -> Result<R, CatalogError> {
        let mut conns = self.lock();
        let mut created = Vec::new();
        let mut begun: Vec<&'static TableSpec> = Vec::new();
        let run = || -> Result<R, CatalogError> {
            for &spec in specs {
                if self.writer(&mut conns, spec)? {
                    created.push(spec);
                }
                let conn = &conns[spec.name];
                conn.execute_batch("BEGIN IMMEDIATE")
                    .map_err(self.sql_err(spec, "locking"))?;
                begun.push(spec);
                ensure_table(conn, spec).map_err(self.sql_err(spec, "creating or upgrading"))?;
            }
            body(&conns)
        };
        match run() {
            Ok(r) => {
                for (i, &spec) in begun.iter().enumerate() {
                    if let Err(e) = conns[spec.name].execute_batch("COMMIT") {
                        for s in &begun[i..] {
                            let _ = conns[s.name].execute_batch("ROLLBACK");
                        }
                        return Err(self.sql_err(spec, "committing")(e));
                    }
                }
                Ok(r)
            }
            Err(e) => {
                for s in &begun {
                    let _ = conns[s.name].execute_batch("ROLLBACK");
                }
                for s in created {
                    // Only if the rollback left it without the table: another writer may
                    // have created the table in the file meanwhile.
                    let empty = conns
                        .get(s.name)
                        .is_none_or(|c| !table_exists(c, s.name).unwrap_or(true));
                    if empty {
                        conns.remove(s.name);
                        let _ = std::fs::remove_file(self.table_file(s));
                    }
                }
                Err(e)
            }
        }
    }

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
        let mut conns = self.lock();
        let Some(conn) = self.reader(&mut conns, spec)? else {
            return Ok(Vec::new());
        };
        let err = self.sql_err(spec, "reading");
        if !table_exists(conn, spec.name).map_err(&err)? {
            return Ok(Vec::new());
        }
        let have = physical_columns(conn, spec.name).map_err(&err)?;
        let cols: Vec<&str> = spec
            .columns
            .iter()
            .copied()
            .filter(|c| have.contains(*c))
            .collect();
        if cols.is_empty() {
            return Ok(Vec::new());
        }
        let mut conds = Vec::new();
        let mut binds = Vec::new();
        for (c, v) in key {
            // A column the old table lacks reads as NULL everywhere.
            if !have.contains(*c) {
                if v.is_empty() {
                    continue;
                }
                return Ok(Vec::new());
            }
            if v.is_empty() {
                conds.push(format!("{} IS NULL", quote(c)));
            } else {
                conds.push(format!("{} = ?", quote(c)));
                binds.push(*v);
            }
        }
        if have.contains("disable") {
            conds.push(ENABLED.to_string());
        }
        let mut sql = format!(
            "SELECT {} FROM {}",
            cols.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", "),
            quote(spec.name)
        );
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        sql.push_str(" ORDER BY rowid");
        let mut stmt = conn.prepare(&sql).map_err(&err)?;
        let mut rows = stmt.query(params_from_iter(binds)).map_err(&err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(&err)? {
            let mut row = Row::new();
            for (i, c) in cols.iter().enumerate() {
                if let Some(v) = text_of(r.get_ref(i).map_err(&err)?) {
                    if !v.is_empty() {
                        row.insert((*c).to_string(), v);
                    }
                }
            }
            if !row.is_empty() {
                out.push(row);
                if first_only {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// What [`Catalog::apply`] would do with `upserts`, computed without touching any
    /// file: each involved table is copied into a private in-memory database (or
    /// created there if its file is missing) and the very same statements run on that
    /// copy, so later upserts see earlier ones exactly as in `apply`.
    ///
    /// Errors: unknown table or key column, unreadable files, or a statement that
    /// would fail in `apply` too (e.g. a NOT NULL violation). Cost: a full read of
    /// every involved table.
    pub fn plan(&self, upserts: &[Upsert]) -> Result<Outcome, CatalogError> {
        let (specs, order) = validate(upserts)?;
        let mem = Connection::open_in_memory().map_err(|source| CatalogError::Sqlite {
            file: PathBuf::from(":memory:"),
            table: String::new(),
            action: "opening",
            source: Box::new(source),
        })?;
        {
            let mut conns = self.lock();
            for &spec in &order {
                self.copy_table(&mut conns, &mem, spec)?;
            }
        }
        let mut outcome = Outcome::default();
        for (up, &spec) in upserts.iter().zip(&specs) {
            let changes = run_upsert(&mem, spec, up, &mut outcome.dropped)
                .map_err(self.sql_err(spec, "planning a write to"))?;
            outcome.changes.extend(changes);
        }
        Ok(outcome)
    }

    /// Copies `spec`'s table (its own DDL, then every row with its rowid) into `mem`,
    /// or creates it there with xCAT's DDL when the file or table does not exist; then
    /// applies the same schema update [`Catalog::apply`] would.
    fn copy_table(
        &self,
        conns: &mut Conns,
        mem: &Connection,
        spec: &'static TableSpec,
    ) -> Result<(), CatalogError> {
        let err = self.sql_err(spec, "reading");
        let source = match self.reader(conns, spec)? {
            Some(conn) if table_exists(conn, spec.name).map_err(&err)? => Some(conn),
            _ => None,
        };
        match source {
            None => mem.execute_batch(&create_ddl(spec)).map_err(&err)?,
            Some(conn) => {
                let ddl: String = conn
                    .query_row(
                        "SELECT sql FROM sqlite_master WHERE type='table' AND name = ?1",
                        [spec.name],
                        |r| r.get(0),
                    )
                    .map_err(&err)?;
                mem.execute_batch(&ddl).map_err(&err)?;
                let mut stmt = conn
                    .prepare(&format!("SELECT rowid, * FROM {}", quote(spec.name)))
                    .map_err(&err)?;
                let names: Vec<String> = stmt.column_names().skip(1).map(quote).collect();
                let insert = format!(
                    "INSERT INTO {} (rowid, {}) VALUES ({})",
                    quote(spec.name),
                    names.join(", "),
                    vec!["?"; names.len() + 1].join(", ")
                );
                let mut ins = mem.prepare(&insert).map_err(&err)?;
                let mut rows = stmt.query([]).map_err(&err)?;
                while let Some(r) = rows.next().map_err(&err)? {
                    let vals = (0..=names.len())
                        .map(|i| r.get_ref(i).map(ToSqlOutput::Borrowed))
                        .collect::<rusqlite::Result<Vec<_>>>()
                        .map_err(&err)?;
                    ins.execute(params_from_iter(vals)).map_err(&err)?;
                }
            }
        }
        ensure_table(mem, spec).map_err(self.sql_err(spec, "upgrading a copy of"))
    }

    /// Writes `upserts` with xCAT setAttribs merge semantics (§5.2, C15).
    ///
    /// Per upsert: rows matching every key pair (`''` = IS NULL; disabled rows match
    /// too, as in setAttribs) get only the given columns updated, other columns keep
    /// their values, and on this path the string `"NULL"` is stored as NULL as xCAT
    /// does. With no match (or an empty key) keys+values are inserted, unless every
    /// value is empty, which xCAT skips. `None` and `""` are stored as NULL, never `''`.
    /// Columns unknown to the schema are dropped and listed in [`Outcome::dropped`];
    /// an unknown table or key column is an error before anything is touched.
    ///
    /// Atomicity: one transaction per table file, every statement of every table runs
    /// before the first COMMIT, so any failing statement rolls all tables back (and
    /// removes table files this call created). Missing files are created (0600) with
    /// xCAT's DDL; old tables get missing columns added. Cost: one indexed SELECT plus
    /// at most one write per upsert and row.
    pub fn apply(&self, upserts: &[Upsert]) -> Result<Outcome, CatalogError> {
        let (specs, order) = validate(upserts)?;
        self.write_tables(&order, |conns| {
            let mut outcome = Outcome::default();
            for (up, &spec) in upserts.iter().zip(&specs) {
                let changes = run_upsert(&conns[spec.name], spec, up, &mut outcome.dropped)
                    .map_err(self.sql_err(spec, "writing"))?;
                outcome.changes.extend(changes);
            }
            Ok(outcome)
        })
    }
}

/// Opens an existing table file read-write (read-only if the file is), never creating
/// it. No PRAGMAs: xCAT uses SQLite's defaults (rollback journal).
fn open_existing(path: &std::path::Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
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

/// One setAttribs call on `conn` (the table exists with every schema column).
fn run_upsert(
    conn: &Connection,
    spec: &'static TableSpec,
    up: &Upsert,
    dropped: &mut Vec<(String, String)>,
) -> rusqlite::Result<Vec<Change>> {
    // Known columns only, last occurrence wins, "" folded into NULL.
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
    let change = |kind, old, new| Change {
        table: spec.name.to_string(),
        key: up.key.clone(),
        kind,
        old,
        new,
    };

    let mut matches: Vec<(i64, Vec<Option<String>>)> = Vec::new();
    if !up.key.is_empty() {
        let mut conds = Vec::new();
        let mut binds = Vec::new();
        for (c, v) in &up.key {
            if v.is_empty() {
                conds.push(format!("{} IS NULL", quote(c)));
            } else {
                conds.push(format!("{} = ?", quote(c)));
                binds.push(v.as_str());
            }
        }
        let sql = format!(
            "SELECT rowid, {} FROM {} WHERE {} ORDER BY rowid",
            spec.columns
                .iter()
                .map(|c| quote(c))
                .collect::<Vec<_>>()
                .join(", "),
            quote(spec.name),
            conds.join(" AND ")
        );
        let mut stmt = conn.prepare(&sql)?;
        let mut rows = stmt.query(params_from_iter(binds))?;
        while let Some(r) = rows.next()? {
            let mut vals = Vec::with_capacity(spec.columns.len());
            for i in 0..spec.columns.len() {
                vals.push(text_of(r.get_ref(i + 1)?));
            }
            matches.push((r.get(0)?, vals));
        }
    }

    let mut out = Vec::new();
    if !matches.is_empty() {
        for (rowid, old) in matches {
            let mut new = old.clone();
            let mut sets: Vec<(&str, Option<&str>)> = Vec::new();
            for &(col, v) in &values {
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
                out.push(change(ChangeKind::Unchanged, Some(old_row), new_row));
                continue;
            }
            let sql = format!(
                "UPDATE {} SET {} WHERE rowid = ?",
                quote(spec.name),
                sets.iter()
                    .map(|(c, _)| format!("{} = ?", quote(c)))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let mut params: Vec<ToSqlOutput<'_>> =
                sets.iter().map(|(_, v)| bind_text(*v)).collect();
            params.push(ToSqlOutput::Owned(Value::Integer(rowid)));
            conn.execute(&sql, params_from_iter(params))?;
            out.push(change(ChangeKind::Update, Some(old_row), new_row));
        }
        return Ok(out);
    }

    if values.iter().all(|(_, v)| v.is_none()) {
        // xCAT: "Don't bother inserting truly blank lines".
        out.push(change(ChangeKind::Unchanged, None, Row::new()));
        return Ok(out);
    }
    let mut cols: Vec<(&str, Option<&str>)> = Vec::new();
    for (c, v) in &up.key {
        let v = Some(v.as_str()).filter(|s| !s.is_empty());
        match cols.iter_mut().find(|(k, _)| *k == c.as_str()) {
            Some(slot) => slot.1 = v,
            None => cols.push((c.as_str(), v)),
        }
    }
    for &(c, v) in &values {
        match cols.iter_mut().find(|(k, _)| *k == c) {
            Some(slot) => slot.1 = v,
            None => cols.push((c, v)),
        }
    }
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({})",
        quote(spec.name),
        cols.iter()
            .map(|(c, _)| quote(c))
            .collect::<Vec<_>>()
            .join(", "),
        vec!["?"; cols.len()].join(", ")
    );
    conn.execute(
        &sql,
        params_from_iter(cols.iter().map(|(_, v)| bind_text(*v))),
    )?;
    let new_row = cols
        .iter()
        .filter_map(|(c, v)| v.map(|v| (c.to_string(), v.to_string())))
        .collect();
    out.push(change(ChangeKind::Insert, None, new_row));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{catalog, raw, row, up};
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// The stored `CREATE TABLE` text of `table`.
    fn stored_ddl(cat: &Catalog, table: &str) -> String {
        let spec = super::super::schema::table_spec(table).unwrap();
        let conn = Connection::open(cat.table_file(spec)).unwrap();
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
            let mode = std::fs::metadata(cat.dir().join(format!("{t}.sqlite")))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{t}");
        }
        // Only the written tables exist, and no WAL/journal was left behind.
        let mut names: Vec<String> = std::fs::read_dir(cat.dir())
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
            .arg(cat.dir().join("osimage.sqlite"))
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
        assert!(!cat.dir().join("kit.sqlite").exists());
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
        let before_os = std::fs::read(cat.dir().join("osimage.sqlite")).unwrap();
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
            std::fs::read(cat.dir().join("osimage.sqlite")).unwrap(),
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
        assert!(!cat.dir().join("postscripts.sqlite").exists());
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
        assert_eq!(std::fs::read_dir(cat.dir()).unwrap().count(), 0);
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
        let before = std::fs::read(cat.dir().join("osimage.sqlite")).unwrap();
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
            std::fs::read(cat.dir().join("osimage.sqlite")).unwrap(),
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
        let conn = Connection::open(cat.dir().join("osimage.sqlite")).unwrap();
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
        let conn = Connection::open(cat.dir().join("osimage.sqlite")).unwrap();
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

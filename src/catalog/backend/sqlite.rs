//! xCAT's SQLite layout (XCAT.md §8.2, §8.3, C23): one database file per table,
//! `<dir>/<table>.sqlite`, created lazily with mode 0600, in SQLite's default
//! rollback-journal mode. Reads use one cached connection per file; a write uses one
//! connection with every file it touches attached, so that it commits as one
//! transaction across the files (see [`Files::write`]).

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::limits::Limit;
use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{params_from_iter, Connection, OpenFlags};

use super::{Conn, DbError, Dialect, Rows, Tables, Value};
use crate::catalog::schema::TableSpec;
use crate::catalog::{ddl, CatalogError};
use crate::testhook;

/// Cache of open connections, one per table file, keyed by table name.
type Conns = HashMap<&'static str, Connection>;

/// The table files of one SQLite directory. Holds at most one connection per file,
/// opened on first use and reused behind a mutex (calls serialize).
pub(in crate::catalog) struct Files {
    dir: PathBuf,
    conns: Mutex<Conns>,
}

impl Files {
    /// Handle on `dir`; nothing is opened or created.
    pub(super) fn new(dir: PathBuf) -> Files {
        Files {
            dir,
            conns: Mutex::new(HashMap::new()),
        }
    }

    /// `<dir>/<table>.sqlite`.
    pub(in crate::catalog) fn table_file(&self, table: &str) -> PathBuf {
        self.dir.join(format!("{table}.sqlite"))
    }

    /// [`CatalogError::Sqlite`] naming the table file.
    pub(super) fn err(&self, table: &str, action: &'static str, e: DbError) -> CatalogError {
        sqlite_err(self.table_file(table), table, action, e)
    }

    /// Locks the connection cache. A poisoned lock only means another thread panicked
    /// mid-call; SQLite rolled its statement back, so the connections are still usable.
    fn lock(&self) -> MutexGuard<'_, Conns> {
        self.conns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the file of `spec`, or returns None if the file does not exist
    /// (reads create nothing).
    pub(super) fn read<R>(
        &self,
        spec: &'static TableSpec,
        action: &'static str,
        f: impl FnOnce(&mut dyn Conn) -> Result<R, DbError>,
    ) -> Result<Option<R>, CatalogError> {
        let mut conns = self.lock();
        if !conns.contains_key(spec.name) {
            let path = self.table_file(spec.name);
            match std::fs::metadata(&path) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(source) => return Err(CatalogError::Io { path, source }),
            }
            let conn =
                open_existing(&path).map_err(|e| self.err(spec.name, "opening", e.into()))?;
            conns.insert(spec.name, conn);
        }
        let Some(conn) = conns.get_mut(spec.name) else {
            return Ok(None);
        };
        f(conn)
            .map(Some)
            .map_err(|e| self.err(spec.name, action, e))
    }

    /// The catalog directory and its ancestors that do not exist, outermost first.
    pub(in crate::catalog) fn missing_dirs(&self) -> Vec<PathBuf> {
        let mut missing: Vec<PathBuf> = self
            .dir
            .ancestors()
            .take_while(|d| !d.as_os_str().is_empty() && std::fs::symlink_metadata(d).is_err())
            .map(Path::to_path_buf)
            .collect();
        missing.reverse();
        missing
    }

    /// Creates the catalog directory with its missing parents (0755, as xCAT's
    /// installer makes /etc/xcat) when a new MN or scratch root lacks it; returns the
    /// directories made, outermost first, so a failed write can remove them again.
    fn create_dirs(&self) -> Result<Vec<PathBuf>, CatalogError> {
        let missing = self.missing_dirs();
        for d in &missing {
            match std::fs::DirBuilder::new().mode(0o755).create(d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(source) => {
                    return Err(CatalogError::Io {
                        path: d.clone(),
                        source,
                    })
                }
            }
        }
        Ok(missing)
    }

    /// Creates `spec`'s file empty with mode 0600 (as xcatd's umask 0077 does) when it
    /// does not exist. Returns whether this call created the file, so a failed write
    /// can remove it again.
    fn create_file(&self, spec: &'static TableSpec) -> Result<bool, CatalogError> {
        let path = self.table_file(spec.name);
        // An empty file is a valid empty SQLite database; creating it ourselves is the
        // only way to get 0600 without touching the process umask.
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(source) => Err(CatalogError::Io { path, source }),
        }
    }

    /// Runs `body` with every file in `specs` open for writing inside ONE transaction:
    /// one connection on the first file with the others attached to it, each in
    /// rollback-journal mode (`journal_mode=DELETE`, xCAT's default, which leaves no
    /// file behind) with `synchronous=FULL`, so that SQLite commits all files
    /// atomically through a super-journal: after a crash or a failed COMMIT every
    /// file is old or every file is new. Each table is created with xCAT's DDL or
    /// schema-updated first, inside the same transaction.
    ///
    /// When `body` fails, everything is rolled back. When the COMMIT itself fails
    /// (disk full, I/O error), the files are settled (hot journals rolled back by a
    /// fresh connection) and their change counters compared with those at BEGIN: a
    /// commit that passed its commit point (the super-journal's deletion) before the
    /// error is a success, anything else an error naming the files. Files this call
    /// created are removed again when the write did not land.
    ///
    /// Errors: more files than SQLite can attach to one connection
    /// ([`CatalogError::TooManyTableFiles`]), a file holding another file's table
    /// ([`CatalogError::StrayTable`]), SQLite and file-system errors.
    pub(super) fn write<R>(
        &self,
        specs: &[&'static TableSpec],
        body: impl FnOnce(&mut dyn Tables) -> Result<R, CatalogError>,
    ) -> Result<R, CatalogError> {
        // Serializes with this catalog's reads, whose cached connections would
        // otherwise wait on the write's locks.
        let mut guard = self.lock();
        if specs.is_empty() {
            return body(&mut NoTables);
        }
        let mut dirs = Vec::new();
        let mut created = Vec::new();
        let result = self
            .create_dirs()
            .and_then(|made| {
                dirs = made;
                specs.iter().try_for_each(|&spec| {
                    if self.create_file(spec)? {
                        created.push(spec);
                    }
                    Ok(())
                })
            })
            .and_then(|()| self.write_files(specs, body));
        if result.is_err() {
            for s in created {
                self.remove_if_empty(&mut guard, s);
            }
            // Only if empty: something else may have come to live there.
            for d in dirs.iter().rev() {
                let _ = std::fs::remove_dir(d);
            }
        }
        result
    }

    /// [`Files::write`] once every file exists.
    fn write_files<R>(
        &self,
        specs: &[&'static TableSpec],
        body: impl FnOnce(&mut dyn Tables) -> Result<R, CatalogError>,
    ) -> Result<R, CatalogError> {
        let mut session = self.attach(specs)?;
        session
            .conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| self.err(specs[0].name, "locking", e.into()))?;
        let prepared = (|| {
            let before = self.counters(specs)?;
            for &spec in specs {
                session
                    .ensure_table(spec)
                    .map_err(|e| self.err(spec.name, "creating or upgrading", e))?;
            }
            body(&mut session).map(|r| (r, before))
        })();
        let (r, before) = match prepared {
            Ok(ok) => ok,
            Err(e) => {
                let _ = session.conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        };
        testhook::point("rows-commit");
        let Err(e) = session.conn.execute_batch("COMMIT") else {
            return Ok(r);
        };
        // Most COMMIT failures roll back by themselves; a busy one leaves the
        // transaction open.
        let _ = session.conn.execute_batch("ROLLBACK");
        drop(session);
        self.settle_files(specs);
        self.remove_orphan_super_journals();
        match self.counters(specs) {
            Ok(after) if after != before => Ok(r),
            _ => Err(if specs.len() == 1 {
                self.err(specs[0].name, "committing", e.into())
            } else {
                CatalogError::SqliteCommit {
                    dir: self.dir.clone(),
                    tables: specs.iter().map(|s| s.name.to_string()).collect(),
                    source: Box::new(e),
                }
            }),
        }
    }

    /// One connection on the files of `specs`: the first as `main`, the others
    /// attached under their table's name, each in rollback-journal mode with
    /// `synchronous=FULL` (SQLite commits attached files atomically only then).
    fn attach(&self, specs: &[&'static TableSpec]) -> Result<Session, CatalogError> {
        let first = specs[0];
        let conn = open_existing(&self.table_file(first.name))
            .map_err(|e| self.err(first.name, "opening", e.into()))?;
        let limit = conn
            .limit(Limit::SQLITE_LIMIT_ATTACHED)
            .map_err(|e| self.err(first.name, "opening", e.into()))?;
        self.fits(specs, limit)?;
        let mut schemas = Vec::with_capacity(specs.len());
        schemas.push((first.name, "main".to_string()));
        for &spec in &specs[1..] {
            let path = self.table_file(spec.name);
            let file = path.to_str().map(str::to_string).ok_or_else(|| {
                self.err(
                    spec.name,
                    "attaching",
                    DbError::Protocol("the file's path is not UTF-8".into()),
                )
            })?;
            // Table names are never `main` or `temp`, so they make unique schema
            // names.
            conn.execute("ATTACH DATABASE ?1 AS ?2", [file.as_str(), spec.name])
                .map_err(|e| self.err(spec.name, "attaching", e.into()))?;
            schemas.push((spec.name, spec.name.to_string()));
        }
        for (table, schema) in &schemas {
            let q = Dialect::Sqlite.q(schema);
            let mode: String = conn
                .query_row(&format!("PRAGMA {q}.journal_mode = DELETE"), [], |r| {
                    r.get(0)
                })
                .map_err(|e| self.err(table, "setting the journal mode of", e.into()))?;
            if !mode.eq_ignore_ascii_case("delete") {
                return Err(self.err(
                    table,
                    "setting the journal mode of",
                    DbError::Protocol(format!(
                        "the file stays in journal mode '{mode}'; one transaction across table files needs a rollback journal"
                    )),
                ));
            }
            conn.execute_batch(&format!("PRAGMA {q}.synchronous = FULL"))
                .map_err(|e| self.err(table, "setting synchronous=FULL on", e.into()))?;
        }
        let session = Session { conn, schemas };
        session.check_stray(self)?;
        Ok(session)
    }

    /// Refuses a write to more files than one connection can hold: the first file
    /// plus `attach_limit` attached ones (SQLITE_MAX_ATTACHED, 10 in this build).
    fn fits(&self, specs: &[&'static TableSpec], attach_limit: i32) -> Result<(), CatalogError> {
        let max = usize::try_from(attach_limit).unwrap_or(0) + 1;
        if specs.len() > max {
            return Err(CatalogError::TooManyTableFiles {
                dir: self.dir.clone(),
                tables: specs.iter().map(|s| s.name.to_string()).collect(),
                max,
            });
        }
        Ok(())
    }

    /// Each file's change counter (header bytes 24..28, incremented by every commit in
    /// rollback-journal mode) and length, read from the file itself; `None` for a
    /// file without a header (new and empty).
    fn counters(&self, specs: &[&'static TableSpec]) -> Result<Vec<Option<[u8; 8]>>, CatalogError> {
        specs
            .iter()
            .map(|s| {
                let path = self.table_file(s.name);
                let io = |source| CatalogError::Io {
                    path: path.clone(),
                    source,
                };
                let mut f = std::fs::File::open(&path).map_err(io)?;
                let len = f.metadata().map_err(io)?.len();
                if len < 100 {
                    return Ok(None);
                }
                let mut header = [0u8; 28];
                f.read_exact(&mut header).map_err(io)?;
                let mut c = [0u8; 8];
                c[..4].copy_from_slice(&header[24..28]);
                c[4..].copy_from_slice(&(len as u32).to_be_bytes());
                Ok(Some(c))
            })
            .collect()
    }

    /// Opens each existing file of `specs` on a fresh connection and takes its write
    /// lock: SQLite then rolls back a hot journal left by a failed or killed commit,
    /// or deletes one whose super-journal is gone (the commit had landed). A journal
    /// still there once the lock is held is stale (a commit killed before it synced
    /// the journal's header, so before it touched the file) and is removed: nobody
    /// else can be writing that file then. A file whose lock another process holds
    /// (xcatd writing) is left alone.
    fn settle_files(&self, specs: &[&'static TableSpec]) {
        for s in specs {
            let path = self.table_file(s.name);
            let mut journal = path.clone().into_os_string();
            journal.push("-journal");
            let journal = PathBuf::from(journal);
            if !path.exists() {
                if journal.exists() {
                    // Without its file a journal describes nothing to roll back.
                    let _ = std::fs::remove_file(&journal);
                }
                continue;
            }
            let Ok(c) = open_existing(&path) else {
                continue;
            };
            if c.execute_batch("BEGIN IMMEDIATE").is_ok() {
                if journal.exists() {
                    let _ = std::fs::remove_file(&journal);
                }
                let _ = c.execute_batch("ROLLBACK");
            }
        }
    }

    /// Removes super-journals (`<file>-mj…`) that no table file's journal refers to
    /// any more: a commit killed or failed right after creating one leaves it behind,
    /// and SQLite only ever deletes the ones it finishes. Only when no
    /// `*.sqlite-journal` is left in the directory (a live transaction has one), and
    /// only names SQLite's multi-file commit makes. Returns what it removed.
    fn remove_orphan_super_journals(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        if names.iter().any(|n| n.ends_with(".sqlite-journal")) {
            return Vec::new();
        }
        let mut removed = Vec::new();
        for n in names.iter().filter(|n| is_super_journal(n)) {
            let p = self.dir.join(n);
            if std::fs::remove_file(&p).is_ok() {
                removed.push(p);
            }
        }
        removed
    }

    /// Settles every table file imgport knows (see [`Files::settle_files`]) and removes
    /// orphaned super-journals; returns the super-journals removed. For recovery, under
    /// the exclusive MN lock.
    pub(in crate::catalog) fn settle(&self) -> Vec<PathBuf> {
        let _guard = self.lock();
        let leftover = std::fs::read_dir(&self.dir).is_ok_and(|entries| {
            entries.filter_map(|e| e.ok()).any(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.ends_with(".sqlite-journal") || is_super_journal(&n)
            })
        });
        if !leftover {
            return Vec::new();
        }
        let specs: Vec<&'static TableSpec> = crate::catalog::schema::TABLES.iter().collect();
        let journals = self.remove_orphan_super_journals();
        self.settle_files(&specs);
        let mut removed = journals;
        removed.extend(self.remove_orphan_super_journals());
        removed
    }

    /// Removes `spec`'s file if it is empty (a file a failed or killed write created
    /// and SQLite truncated back) and has no journal; true when it did. For recovery,
    /// under the exclusive MN lock.
    pub(in crate::catalog) fn remove_new_file(&self, spec: &'static TableSpec) -> bool {
        let mut conns = self.lock();
        self.remove_if_empty(&mut conns, spec)
    }

    /// [`Files::remove_new_file`] with the connection cache locked: a cached reader
    /// of the removed file would go on reading the unlinked one.
    fn remove_if_empty(&self, conns: &mut Conns, spec: &'static TableSpec) -> bool {
        let path = self.table_file(spec.name);
        let mut journal = path.clone().into_os_string();
        journal.push("-journal");
        let empty = std::fs::metadata(&path).is_ok_and(|m| m.len() == 0);
        if empty && !Path::new(&journal).exists() {
            conns.remove(spec.name);
            return std::fs::remove_file(&path).is_ok();
        }
        false
    }
}

/// Whether `name` is a super-journal SQLite's multi-file commit makes beside a table
/// file: `<table>.sqlite-mj` and 9 hex digits whose 7th is `9` (`-mj%06X9%02X`).
fn is_super_journal(name: &str) -> bool {
    let Some((db, tail)) = name.split_once(".sqlite-mj") else {
        return false;
    };
    !db.is_empty()
        && tail.len() == 9
        && tail.bytes().all(|b| b.is_ascii_hexdigit())
        && tail.as_bytes()[6] == b'9'
}

/// A write on no table.
struct NoTables;

impl Tables for NoTables {
    fn conn(&mut self, _table: &str) -> Option<&mut dyn Conn> {
        None
    }
}

/// The connection of one write: the first table file as `main`, the others attached.
/// Statements name tables unqualified, which SQLite resolves to the one file holding
/// each (checked by [`Session::check_stray`]); only catalog queries and DDL must name
/// the schema.
struct Session {
    conn: Connection,
    /// (table, schema) for every file of the write.
    schemas: Vec<(&'static str, String)>,
}

impl Session {
    fn schema(&self, table: &str) -> Option<&str> {
        self.schemas
            .iter()
            .find(|(t, _)| *t == table)
            .map(|(_, s)| s.as_str())
    }

    /// Refuses a file that holds the table of another file of this write: an
    /// unqualified name could resolve to the wrong file.
    fn check_stray(&self, files: &Files) -> Result<(), CatalogError> {
        for (table, schema) in &self.schemas {
            for (other, _) in self.schemas.iter().filter(|(t, _)| t != table) {
                let q = Dialect::Sqlite.q(schema);
                let found = self
                    .conn
                    .prepare(&format!(
                        "SELECT 1 FROM {q}.sqlite_master WHERE type='table' AND name = ?1"
                    ))
                    .and_then(|mut st| st.exists([other]))
                    .map_err(|e| files.err(table, "reading the schema of", e.into()))?;
                if found {
                    return Err(CatalogError::StrayTable {
                        file: files.table_file(table),
                        table: other.to_string(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Creates `spec`'s table in its own file with xCAT's DDL, or adds the columns it
    /// lacks as xCAT's `updateschema` does (the generic [`super::ensure_table`], with
    /// the schema named so the DDL lands in the right file; SQLite stores the
    /// statement without it, so the file's schema text is xCAT's).
    fn ensure_table(&mut self, spec: &'static TableSpec) -> Result<(), DbError> {
        let schema = self.schema(spec.name).unwrap_or("main").to_string();
        let prefix = format!("{}.", Dialect::Sqlite.q(&schema));
        let Some(have) = self.columns(spec.name)? else {
            let sql = ddl::create(Dialect::Sqlite, spec).replacen(
                "CREATE TABLE ",
                &format!("CREATE TABLE {prefix}"),
                1,
            );
            return Ok(self.conn.execute_batch(&sql)?);
        };
        for col in spec
            .columns
            .iter()
            .filter(|c| !have.iter().any(|h| h == *c))
        {
            let sql = ddl::add_column(Dialect::Sqlite, spec, col).replacen(
                "ALTER TABLE ",
                &format!("ALTER TABLE {prefix}"),
                1,
            );
            self.conn.execute_batch(&sql)?;
        }
        Ok(())
    }
}

impl Tables for Session {
    fn conn(&mut self, table: &str) -> Option<&mut dyn Conn> {
        self.schema(table)?;
        Some(self as &mut dyn Conn)
    }
}

impl Conn for Session {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn columns(&mut self, table: &str) -> Result<Option<Vec<String>>, DbError> {
        let schema = Dialect::Sqlite.q(self.schema(table).unwrap_or("main"));
        let exists = self
            .conn
            .prepare(&format!(
                "SELECT 1 FROM {schema}.sqlite_master WHERE type='table' AND name = ?1"
            ))?
            .exists([table])?;
        if !exists {
            return Ok(None);
        }
        let from = format!("{schema}.{}", Dialect::Sqlite.q(table));
        Ok(Some(column_names(&self.conn, &from)?))
    }

    fn query(&mut self, sql: &str, params: &[Option<&[u8]>]) -> Result<Rows, DbError> {
        Conn::query(&mut self.conn, sql, params)
    }

    fn execute(&mut self, sql: &str, params: &[Option<&[u8]>]) -> Result<u64, DbError> {
        Conn::execute(&mut self.conn, sql, params)
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        Conn::batch(&mut self.conn, sql)
    }
}

/// [`CatalogError::Sqlite`] for `file`, or the generic server error for a non-SQLite
/// source (cannot happen on this backend, kept total rather than panicking).
pub(in crate::catalog) fn sqlite_err(
    file: PathBuf,
    table: &str,
    action: &'static str,
    e: DbError,
) -> CatalogError {
    match e {
        DbError::Sqlite(source) => CatalogError::Sqlite {
            file,
            table: table.to_string(),
            action,
            source: Box::new(source),
        },
        other => CatalogError::Database {
            server: file.display().to_string(),
            table: table.to_string(),
            action,
            source: Box::new(other),
        },
    }
}

/// Opens an existing table file read-write (read-only if the file is), never creating
/// it. No PRAGMAs: xCAT uses SQLite's defaults (rollback journal).
fn open_existing(path: &Path) -> rusqlite::Result<Connection> {
    Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
}

/// Whether the file behind `conn` holds table `name`.
pub(in crate::catalog) fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    let mut stmt = conn.prepare("SELECT 1 FROM sqlite_master WHERE type='table' AND name = ?1")?;
    stmt.exists([name])
}

/// Binds optional bytes as TEXT (NULL for None), without requiring UTF-8.
/// The column names of `from` (a quoted table, schema-qualified or not), from a
/// `LIMIT 0` statement rather than a PRAGMA; SQLite identifiers are
/// case-insensitive, hence the lower-casing.
fn column_names(conn: &Connection, from: &str) -> rusqlite::Result<Vec<String>> {
    let stmt = conn.prepare(&format!("SELECT * FROM {from} LIMIT 0"))?;
    Ok(stmt
        .column_names()
        .map(|c| c.to_ascii_lowercase())
        .collect())
}

fn bind(v: Option<&[u8]>) -> ToSqlOutput<'_> {
    match v {
        Some(b) => ToSqlOutput::Borrowed(ValueRef::Text(b)),
        None => ToSqlOutput::Owned(SqlValue::Null),
    }
}

/// A stored value as xCAT's Perl would see it: text bytes, numbers formatted, NULL as
/// None.
fn value_of(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(i.to_string().into_bytes()),
        ValueRef::Real(f) => Some(f.to_string().into_bytes()),
        ValueRef::Text(b) | ValueRef::Blob(b) => Some(b.to_vec()),
    }
}

impl Conn for Connection {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn columns(&mut self, table: &str) -> Result<Option<Vec<String>>, DbError> {
        if !table_exists(self, table)? {
            return Ok(None);
        }
        Ok(Some(column_names(self, &Dialect::Sqlite.q(table))?))
    }

    fn query(&mut self, sql: &str, params: &[Option<&[u8]>]) -> Result<Rows, DbError> {
        let mut stmt = self.prepare(sql)?;
        let names: Vec<String> = stmt.column_names().map(str::to_string).collect();
        let n = names.len();
        let mut rows = stmt.query(params_from_iter(params.iter().map(|v| bind(*v))))?;
        let mut out = Rows {
            names,
            rows: Vec::new(),
        };
        while let Some(r) = rows.next()? {
            let mut vals = Vec::with_capacity(n);
            for i in 0..n {
                vals.push(value_of(r.get_ref(i)?));
            }
            out.rows.push(vals);
        }
        Ok(out)
    }

    fn execute(&mut self, sql: &str, params: &[Option<&[u8]>]) -> Result<u64, DbError> {
        let n = Connection::execute(self, sql, params_from_iter(params.iter().map(|v| bind(*v))))?;
        Ok(n as u64)
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        Ok(self.execute_batch(sql)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::schema::TABLES;
    use crate::catalog::testutil::{catalog, raw, up};
    use crate::catalog::{Catalog, Upsert};

    /// A row for every table imgport knows: its keys set, one value besides.
    fn one_row_per_table() -> Vec<Upsert> {
        TABLES
            .iter()
            .map(|t| {
                let key: Vec<(&str, &str)> = t.keys.iter().map(|k| (*k, "x")).collect();
                let other = t
                    .columns
                    .iter()
                    .find(|c| !t.keys.contains(c))
                    .copied()
                    .unwrap_or("comments");
                up(t.name, &key, &[(other, Some("v"))])
            })
            .collect()
    }

    fn files_in(cat: &Catalog) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(cat.dir().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_write_to_every_table_is_one_transaction_over_eleven_files() {
        let (_root, cat) = catalog();
        let rows = one_row_per_table();
        assert_eq!(rows.len(), 11, "SQLite attaches 10 files to the first");
        cat.apply(&rows).unwrap();
        let names = files_in(&cat);
        assert_eq!(names.len(), TABLES.len(), "{names:?}: no journal left");
        for t in TABLES {
            let file = cat.dir().unwrap().join(format!("{}.sqlite", t.name));
            let mode = std::fs::metadata(&file).unwrap().permissions();
            assert_eq!(
                std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
                0o600
            );
            assert_eq!(cat.select(t.name, &[]).unwrap().len(), 1, "{}", t.name);
        }
        // A failure in the last table undoes the ten others, which all existed.
        let mut bad = one_row_per_table();
        for u in &mut bad {
            u.values = vec![("comments".into(), Some("changed".into()))];
        }
        bad.push(up(
            "litefile",
            &[("image", "x"), ("file", "x")],
            &[("file", None)],
        ));
        let before: Vec<Vec<u8>> = TABLES
            .iter()
            .map(|t| std::fs::read(cat.dir().unwrap().join(format!("{}.sqlite", t.name))).unwrap())
            .collect();
        assert!(cat.apply(&bad).is_err());
        let after: Vec<Vec<u8>> = TABLES
            .iter()
            .map(|t| std::fs::read(cat.dir().unwrap().join(format!("{}.sqlite", t.name))).unwrap())
            .collect();
        assert!(before == after, "a table file changed");
        assert_eq!(files_in(&cat).len(), TABLES.len());
    }

    #[test]
    fn a_file_holding_another_files_table_is_refused_before_anything_is_written() {
        let (_root, cat) = catalog();
        raw(&cat, "linuximage");
        let os = raw(&cat, "osimage");
        os.execute_batch("CREATE TABLE linuximage (imagename TEXT)")
            .unwrap();
        drop(os);
        let err = cat
            .apply(&[
                up("osimage", &[("imagename", "i")], &[("profile", Some("p"))]),
                up(
                    "linuximage",
                    &[("imagename", "i")],
                    &[("rootimgdir", Some("/r"))],
                ),
            ])
            .unwrap_err();
        assert!(
            matches!(&err, CatalogError::StrayTable { table, .. } if table == "linuximage"),
            "{err}"
        );
        assert!(cat.get("osimage", &[("imagename", "i")]).unwrap().is_none());
        // Alone, each file is still written as before.
        cat.apply(&[up(
            "osimage",
            &[("imagename", "i")],
            &[("profile", Some("p"))],
        )])
        .unwrap();
    }

    #[test]
    fn settling_rolls_back_a_killed_commit_and_removes_its_super_journal() {
        let (_root, cat) = catalog();
        cat.apply(&[
            up(
                "osimage",
                &[("imagename", "i")],
                &[("profile", Some("old"))],
            ),
            up(
                "linuximage",
                &[("imagename", "i")],
                &[("boottarget", Some("old"))],
            ),
        ])
        .unwrap();
        let dir = cat.dir().unwrap().to_path_buf();
        // What a commit killed in its middle leaves: a super-journal nothing refers to
        // any more (the journals were rolled back by another opener).
        let orphan = dir.join("osimage.sqlite-mj0A1B2C9D3");
        std::fs::write(&orphan, b"/x/osimage.sqlite-journal\0").unwrap();
        let unrelated = dir.join("osimage.sqlite-mjnotours");
        std::fs::write(&unrelated, b"").unwrap();
        assert_eq!(cat.settle(), vec![orphan.clone()]);
        assert!(!orphan.exists() && unrelated.exists());
        // A live writer's journal (xcatd's) is never touched, and while one exists
        // no super-journal is taken for an orphan. (Settling waits for the writer's
        // lock for SQLite's busy timeout, 5 s, before it leaves the file alone.)
        std::fs::write(&orphan, b"").unwrap();
        let live = raw(&cat, "osimage");
        live.execute_batch("BEGIN IMMEDIATE; UPDATE osimage SET profile = 'live';")
            .unwrap();
        let live_journal = dir.join("osimage.sqlite-journal");
        assert!(live_journal.exists());
        assert!(cat.settle().is_empty());
        assert!(orphan.exists() && live_journal.exists());
        live.execute_batch("ROLLBACK").unwrap();
        drop(live);
        // A stale journal (never synced: zero header) with nobody writing goes.
        std::fs::write(dir.join("linuximage.sqlite-journal"), [0u8; 512]).unwrap();
        assert_eq!(cat.settle(), vec![orphan]);
        assert!(!dir.join("linuximage.sqlite-journal").exists());
        assert_eq!(
            cat.get("osimage", &[("imagename", "i")]).unwrap().unwrap()["profile"],
            "old"
        );
    }

    #[test]
    fn a_write_beyond_the_attach_limit_is_refused_naming_the_tables() {
        let files = Files::new(PathBuf::from("/etc/xcat"));
        let specs: Vec<&'static TableSpec> = TABLES.iter().take(3).collect();
        assert!(files.fits(&specs, 2).is_ok());
        let err = files.fits(&specs, 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/xcat: a write to 3 tables (osimage, linuximage, postscripts) cannot be one \
             SQLite transaction: at most 2 table files can be attached together"
        );
        // This build attaches 10 files to the first: every table imgport knows fits.
        let conn = Connection::open_in_memory().unwrap();
        let limit = conn.limit(Limit::SQLITE_LIMIT_ATTACHED).unwrap();
        let all: Vec<&'static TableSpec> = TABLES.iter().collect();
        assert!(files.fits(&all, limit).is_ok(), "limit {limit}");
    }

    #[test]
    fn super_journal_names_are_sqlites_and_nothing_else() {
        assert!(is_super_journal("osimage.sqlite-mj15A7649F4"));
        assert!(is_super_journal("linuximage.sqlite-mj0FCC1B9B2"));
        assert!(!is_super_journal("osimage.sqlite-journal"));
        assert!(!is_super_journal("osimage.sqlite"));
        assert!(!is_super_journal(".sqlite-mj15A7649F4"));
        assert!(!is_super_journal("osimage.sqlite-mj15A7649F"));
        assert!(!is_super_journal("osimage.sqlite-mj15A7648F4"));
        assert!(!is_super_journal("osimage.sqlite-mj15A7G49F4"));
    }
}

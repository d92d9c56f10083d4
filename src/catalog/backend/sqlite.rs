//! xCAT's SQLite layout (XCAT.md §8.2, §8.3, C23): one database file per table,
//! `<dir>/<table>.sqlite`, created lazily with mode 0600, no PRAGMAs.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::types::{ToSqlOutput, Value as SqlValue, ValueRef};
use rusqlite::{params_from_iter, Connection, OpenFlags};

use super::{ensure_table, Conn, DbError, Dialect, Rows, Tables, Value};
use crate::catalog::schema::TableSpec;
use crate::catalog::CatalogError;

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

    /// Ensures a cached connection on `spec`'s file, creating the file first with mode
    /// 0600 (as xcatd's umask 0077 does) when it does not exist. Returns whether this
    /// call created the file, so a failed write can remove it again.
    fn writer(&self, conns: &mut Conns, spec: &'static TableSpec) -> Result<bool, CatalogError> {
        if conns.contains_key(spec.name) {
            return Ok(false);
        }
        let path = self.table_file(spec.name);
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
                Err(self.err(spec.name, "opening", e.into()))
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
    pub(super) fn write<R>(
        &self,
        specs: &[&'static TableSpec],
        body: impl FnOnce(&mut dyn Tables) -> Result<R, CatalogError>,
    ) -> Result<R, CatalogError> {
        let mut guard = self.lock();
        let conns: &mut Conns = &mut guard;
        let mut created = Vec::new();
        let mut begun: Vec<&'static TableSpec> = Vec::new();
        let run = || -> Result<R, CatalogError> {
            for &spec in specs {
                if self.writer(conns, spec)? {
                    created.push(spec);
                }
                let Some(conn) = conns.get_mut(spec.name) else {
                    continue;
                };
                conn.execute_batch("BEGIN IMMEDIATE")
                    .map_err(|e| self.err(spec.name, "locking", e.into()))?;
                begun.push(spec);
                ensure_table(conn, spec)
                    .map_err(|e| self.err(spec.name, "creating or upgrading", e))?;
            }
            body(&mut FileTables(conns))
        };
        let result = run();
        match result {
            Ok(r) => {
                for (i, &spec) in begun.iter().enumerate() {
                    if let Err(e) = guard[spec.name].execute_batch("COMMIT") {
                        for s in &begun[i..] {
                            let _ = guard[s.name].execute_batch("ROLLBACK");
                        }
                        return Err(self.err(spec.name, "committing", e.into()));
                    }
                }
                Ok(r)
            }
            Err(e) => {
                for s in &begun {
                    let _ = guard[s.name].execute_batch("ROLLBACK");
                }
                for s in created {
                    // Only if the rollback left it without the table: another writer may
                    // have created the table in the file meanwhile.
                    let empty = guard
                        .get(s.name)
                        .is_none_or(|c| !table_exists(c, s.name).unwrap_or(true));
                    if empty {
                        guard.remove(s.name);
                        let _ = std::fs::remove_file(self.table_file(s.name));
                    }
                }
                Err(e)
            }
        }
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

/// The per-file connections of one write.
struct FileTables<'a>(&'a mut Conns);

impl Tables for FileTables<'_> {
    fn conn(&mut self, table: &str) -> Option<&mut dyn Conn> {
        self.0.get_mut(table).map(|c| c as &mut dyn Conn)
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
        // From a `LIMIT 0` statement rather than a PRAGMA; SQLite identifiers are
        // case-insensitive, hence the lower-casing.
        let stmt = self.prepare(&format!(
            "SELECT * FROM {} LIMIT 0",
            Dialect::Sqlite.q(table)
        ))?;
        Ok(Some(
            stmt.column_names()
                .map(|c| c.to_ascii_lowercase())
                .collect(),
        ))
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

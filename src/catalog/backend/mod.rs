//! The three places a catalog can live, behind one small SQL surface.
//!
//! The catalog's logic (getAttribs, setAttribs merges, tabdump, tabrestore, plans) is
//! written once against [`Conn`]; this module decides which connection that is and how
//! a write is made atomic:
//!
//! * [`sqlite`]: xCAT's one-file-per-table layout: one cached connection per table
//!   file for reads, one connection with every file of a write attached for writes,
//!   committed as one transaction;
//! * [`postgres`] and [`mysql`]: one connection to the server for every table, one
//!   transaction per write under a server-wide imgport lock (see [`server`]).

pub(super) mod mysql;
pub(super) mod postgres;
pub(super) mod server;
pub(super) mod sqlite;

use super::cfgloc::Location;
use super::schema::TableSpec;
use super::{ddl, CatalogError};

/// A value as xCAT binds it: text (bytes, so non-UTF-8 survives where the server allows)
/// or NULL.
pub(super) type Value = Option<Vec<u8>>;

/// A result set: the column names as the server reports them, then the rows.
#[derive(Debug, Default)]
pub(super) struct Rows {
    /// Column names, in select-list order.
    pub names: Vec<String>,
    /// One value per column.
    pub rows: Vec<Vec<Value>>,
}

/// An error from one of the client libraries.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// SQLite (also the in-memory database of a plan).
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL. Shown with the server's severity and message: the library's own
    /// Display of a server error is only "db error".
    #[error("{}", pg_text(.0))]
    Postgres(#[from] ::postgres::Error),
    /// MySQL or MariaDB.
    #[error(transparent)]
    Mysql(#[from] ::mysql::Error),
    /// The server answered something imgport cannot use (e.g. GET_LOCK returned NULL).
    #[error("{0}")]
    Protocol(String),
}

/// A PostgreSQL error as a sentence: `FATAL: password authentication failed for user
/// "xcatadm"`, or the library's text with its cause for connection-level failures.
fn pg_text(e: &::postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let shown = c.to_string();
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        cause = c.source();
    }
    text
}

impl DbError {
    /// The server's own message without the library's decoration, as xCAT's
    /// `DB error <msg>` lines show DBI's errstr.
    pub(super) fn message(&self) -> String {
        match self {
            DbError::Sqlite(rusqlite::Error::SqliteFailure(_, Some(m))) => m.clone(),
            DbError::Postgres(e) => e
                .as_db_error()
                .map_or_else(|| e.to_string(), |d| d.message().to_string()),
            DbError::Mysql(::mysql::Error::MySqlError(e)) => e.message.clone(),
            other => other.to_string(),
        }
    }
}

/// The SQL spelling differences that matter to the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    /// SQLite: `"col"` in statements, bare names in DDL (as xCAT), rowids.
    Sqlite,
    /// PostgreSQL: `"col"` everywhere (xCAT's `delimitcol`).
    Postgres,
    /// MySQL/MariaDB: `` `col` `` everywhere; `groups` is reserved on MySQL 8.
    Mysql,
}

impl Dialect {
    /// An identifier quoted for a statement.
    pub(super) fn q(self, name: &str) -> String {
        match self {
            Dialect::Mysql => format!("`{}`", name.replace('`', "``")),
            Dialect::Sqlite | Dialect::Postgres => format!("\"{}\"", name.replace('"', "\"\"")),
        }
    }

    /// A column name as xCAT's `buildcreatestmt` writes it in DDL (`delimitcol`):
    /// bare on SQLite, quoted on the servers.
    pub(super) fn ddl_col(self, name: &str) -> String {
        match self {
            Dialect::Sqlite => name.to_string(),
            _ => self.q(name),
        }
    }

    /// The hidden row identity, where there is one. The servers' tables are updated
    /// through their primary key instead (NOT NULL and unique there).
    pub(super) fn rowid(self) -> Option<&'static str> {
        match self {
            Dialect::Sqlite => Some("rowid"),
            _ => None,
        }
    }

    /// The ORDER BY that gives insertion order, where it can be asked for. The servers
    /// return `SELECT *` order (heap order on PostgreSQL, key order on InnoDB), as
    /// xCAT sees it there.
    pub(super) fn insertion_order(self) -> &'static str {
        match self {
            Dialect::Sqlite => " ORDER BY rowid",
            _ => "",
        }
    }

    /// xCAT's enabled-row test (XCAT.md §8.4) with this dialect's quoting: anything else in
    /// `disable`, `''` included, comments the row out.
    pub(super) fn enabled(self) -> String {
        format!(
            "({d} IS NULL OR {d} IN ('0','no','NO','No','nO'))",
            d = self.q("disable")
        )
    }
}

/// One connection, whatever the backend. Statements use `?` placeholders; the
/// PostgreSQL side renumbers them. Every value is bound and read as text.
pub(super) trait Conn {
    /// How to spell SQL for this connection.
    fn dialect(&self) -> Dialect;
    /// The table's physical column names, lower-cased, in physical order; None if the
    /// table does not exist.
    fn columns(&mut self, table: &str) -> Result<Option<Vec<String>>, DbError>;
    /// Runs a query and returns all of its rows.
    fn query(&mut self, sql: &str, params: &[Option<&[u8]>]) -> Result<Rows, DbError>;
    /// Runs a statement; returns the number of rows it changed.
    fn execute(&mut self, sql: &str, params: &[Option<&[u8]>]) -> Result<u64, DbError>;
    /// Runs parameterless statements (DDL, transaction control).
    fn batch(&mut self, sql: &str) -> Result<(), DbError>;
}

/// The connection of one write, by table: the same one for every table (the files
/// attached to it on SQLite).
pub(super) trait Tables {
    /// The connection that holds `table`, open and inside the write's transaction.
    fn conn(&mut self, table: &str) -> Option<&mut dyn Conn>;
}

/// The catalog's storage.
pub(super) enum Backend {
    /// xCAT's SQLite layout.
    Sqlite(sqlite::Files),
    /// A PostgreSQL or MySQL/MariaDB server.
    Server(server::Server),
}

impl Backend {
    /// A backend for `location`. Nothing is opened or connected yet.
    pub(super) fn new(location: &Location) -> Backend {
        match location {
            Location::Sqlite(dir) => Backend::Sqlite(sqlite::Files::new(dir.clone())),
            Location::Server(config) => Backend::Server(server::Server::new(config.clone())),
        }
    }

    /// Runs `f` on a connection that can read `spec`'s table. `None` when the table
    /// cannot exist yet (an SQLite file that is not there: reads create nothing).
    pub(super) fn read<R>(
        &self,
        spec: &'static TableSpec,
        action: &'static str,
        f: impl FnOnce(&mut dyn Conn) -> Result<R, DbError>,
    ) -> Result<Option<R>, CatalogError> {
        match self {
            Backend::Sqlite(files) => files.read(spec, action, f),
            Backend::Server(server) => server.read(spec, action, f).map(Some),
        }
    }

    /// Runs `body` with every table of `specs` writable (created with xCAT's DDL or
    /// upgraded with its missing columns) inside one write. `body`'s success commits
    /// everything, its error rolls everything back. On a server that is one
    /// transaction across all tables; on SQLite too, across the attached table files
    /// (see [`sqlite::Files::write`]).
    pub(super) fn write<R>(
        &self,
        specs: &[&'static TableSpec],
        body: impl FnOnce(&mut dyn Tables) -> Result<R, CatalogError>,
    ) -> Result<R, CatalogError> {
        match self {
            Backend::Sqlite(files) => files.write(specs, body),
            Backend::Server(server) => server.write(specs, body),
        }
    }

    /// Maps a client error on `table` during `action` to a [`CatalogError`] that names
    /// the table file or the server (never the password).
    pub(super) fn err(
        &self,
        table: &str,
        action: &'static str,
    ) -> impl Fn(DbError) -> CatalogError + '_ {
        let table = table.to_string();
        move |source| match self {
            Backend::Sqlite(files) => files.err(&table, action, source),
            Backend::Server(server) => server.err(&table, action, source),
        }
    }
}

/// Creates `spec`'s table with xCAT's DDL if it is missing, else adds each missing
/// schema column the way xCAT's `updateschema` does. Runs inside the caller's write.
pub(super) fn ensure_table(conn: &mut dyn Conn, spec: &TableSpec) -> Result<(), DbError> {
    let d = conn.dialect();
    let Some(have) = conn.columns(spec.name)? else {
        return conn.batch(&ddl::create(d, spec));
    };
    for col in spec
        .columns
        .iter()
        .filter(|c| !have.iter().any(|h| h == *c))
    {
        conn.batch(&ddl::add_column(d, spec, col))?;
    }
    Ok(())
}

/// The answer of an `information_schema.columns` query (one name per row): the
/// table's columns in lower case, or `None` when the table does not exist.
pub(super) fn column_names(rows: Rows) -> Option<Vec<String>> {
    if rows.rows.is_empty() {
        return None;
    }
    Some(
        rows.rows
            .into_iter()
            .filter_map(|mut r| r.pop().flatten())
            .map(|n| String::from_utf8_lossy(&n).to_ascii_lowercase())
            .collect(),
    )
}

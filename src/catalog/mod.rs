//! xCAT's tables: schema, the three backends xCAT runs on, tabdump/tabrestore CSV.
//!
//! [`Catalog`] is the only way the rest of imgport touches the xCAT database. It reads
//! and writes exactly what xCAT 2.18.2 does, whichever backend the MN's `cfgloc` names
//! (XCAT.md §8): the embedded SQLite layout (one file per table), PostgreSQL, or
//! MySQL/MariaDB (one SQL table per xCAT table). xcatd, `tabdump` and `tabrestore`
//! keep working on the result. The flows never see which backend it is:
//!
//! * location: [`Catalog::open`] (XCAT.md §8.2, §8.7), cfgloc read under `--root`;
//! * reads: [`Catalog::get`], [`Catalog::select`], [`Catalog::site`],
//!   [`Catalog::node_attrs`], [`Catalog::node_exists`], [`Catalog::expand_noderange`],
//!   all honouring xCAT's "disabled row" rule (XCAT.md §8.4);
//! * writes: [`Catalog::plan`] / [`Catalog::apply`] with setAttribs merge semantics,
//!   all-or-nothing across tables (one transaction on a server);
//! * CSV: [`Catalog::tabdump`] / [`Catalog::tabrestore`] byte-compatible with xCAT's.

mod backend;
pub mod cfgloc;
mod copy;
mod csv;
mod ddl;
pub mod schema;
mod store;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

pub use backend::DbError;
pub use cfgloc::{Driver, Location, ServerConfig};
pub use copy::{CopyReport, TableCopy};
use schema::TableSpec;

/// One table row as xCAT's getAttribs returns it: column name → value, holding only
/// the columns whose value is neither NULL nor `''` (xCAT cannot tell those apart).
pub type Row = BTreeMap<String, String>;

/// Everything that can go wrong in the catalog. Every variant names the file, table,
/// column or line concerned, so the message alone tells the user where to look.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The configured database is one imgport does not support (DB2, CSV, ...).
    /// imgport never falls back to another location, because writing to a second
    /// database the MN does not use would look like success while xcatd sees nothing.
    /// `origin` is `XCATCFG` or the cfgloc path; `backend` is the scheme. The rest of
    /// the string is not kept: it holds the database password.
    #[error(
        "{origin}: unsupported xCAT database backend '{backend}' (imgport supports SQLite, Pg and mysql)"
    )]
    UnsupportedBackend {
        /// `XCATCFG` or the path of the cfgloc file the string was read from.
        origin: String,
        /// The backend scheme, the text before the first `:`.
        backend: String,
    },
    /// A server cfgloc line imgport cannot use (no database, no user, a bad port, an
    /// unknown data source key). The line itself is not shown: it holds the password.
    #[error("{origin}: bad database location: {reason}")]
    BadCfgloc {
        /// `XCATCFG` or the cfgloc path.
        origin: String,
        /// What is wrong, without any value that could be the password.
        reason: String,
    },
    /// The database server could not be reached or refused the login (down, wrong
    /// password, unknown database, no answer within the timeout).
    #[error("cannot connect to {server} (timeout {timeout} s): {source}")]
    Connect {
        /// The server, database and user (see [`ServerConfig`]'s Display).
        server: String,
        /// The connect timeout in seconds (`IMGPORT_DB_TIMEOUT`).
        timeout: f64,
        /// The client library's error.
        #[source]
        source: Box<DbError>,
    },
    /// A database server failure, with the table and what was being done.
    #[error("{server}: {action} table '{table}': {source}")]
    Database {
        /// The server, database and user.
        server: String,
        /// The table concerned.
        table: String,
        /// What was being done, e.g. `writing`, `committing`.
        action: &'static str,
        /// The client library's error.
        #[source]
        source: Box<DbError>,
    },
    /// A table name that is not in imgport's schema (see [`schema::TABLES`]).
    #[error("unknown xCAT table '{table}'")]
    UnknownTable {
        /// The name as given.
        table: String,
    },
    /// A column the table's schema does not define, used as a key or requested column.
    #[error("table '{table}' has no column '{column}'")]
    UnknownColumn {
        /// The table whose schema lacks the column.
        table: String,
        /// The column name as given.
        column: String,
    },
    /// [`Catalog::node_attrs`] on a table that is not keyed by `node`.
    #[error("table '{table}' is not keyed by node, so node attributes cannot be looked up in it")]
    NotANodeTable {
        /// The table asked for.
        table: String,
    },
    /// An SQLite failure, with the table file and what was being done.
    #[error("{}: {action} table '{table}': {source}", file.display())]
    Sqlite {
        /// The table file (`:memory:` for plan's scratch database).
        file: PathBuf,
        /// The table concerned.
        table: String,
        /// What was being done, e.g. `writing`, `committing`.
        action: &'static str,
        /// SQLite's error (boxed: it is large and errors are rare).
        #[source]
        source: Box<rusqlite::Error>,
    },
    /// The COMMIT of one write across several SQLite table files failed; SQLite's
    /// multi-file commit is atomic, and imgport checked afterwards that none of the
    /// files changed.
    #[error("{}: committing tables {} as one transaction: {source} (none of them changed)", dir.display(), tables.join(", "))]
    SqliteCommit {
        /// The catalog directory holding the files.
        dir: PathBuf,
        /// The tables (`<table>.sqlite` files) of the transaction, in commit order.
        tables: Vec<String>,
        /// SQLite's error.
        #[source]
        source: Box<rusqlite::Error>,
    },
    /// One write would involve more table files than SQLite can attach to one
    /// connection, so they could not be committed as one transaction.
    #[error("{}: a write to {} tables ({}) cannot be one SQLite transaction: at most {max} table files can be attached together", dir.display(), tables.len(), tables.join(", "))]
    TooManyTableFiles {
        /// The catalog directory.
        dir: PathBuf,
        /// The tables of the write.
        tables: Vec<String>,
        /// How many files one transaction can hold (SQLite's attach limit + 1).
        max: usize,
    },
    /// A table file holds a table of another file of the same write: statements of
    /// that write could not tell the two apart.
    #[error("{}: holds a table '{table}' besides its own, which {table}.sqlite holds too; remove the stray table", file.display())]
    StrayTable {
        /// The file holding the stray table.
        file: PathBuf,
        /// The stray table's name.
        table: String,
    },
    /// A file-system failure (cfgloc, creating a table file, reading a CSV file).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Writing tabdump output failed.
    #[error("writing tabdump output of table '{table}': {source}")]
    Write {
        /// The table being dumped.
        table: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// tabrestore rejected the file; nothing was changed. `messages` are xCAT's own
    /// texts, verbatim and in xCAT's order (they carry xCAT's 0-based data line
    /// numbers), so a caller can print each as `Error: [<server>]: <message>`.
    #[error("{}: {}", path.display(), messages.join("\n"))]
    Restore {
        /// The CSV file.
        path: PathBuf,
        /// The table named by the file (may be unknown, see the messages).
        table: String,
        /// xCAT's messages, verbatim, in order.
        messages: Vec<String>,
    },
    /// A noderange item that would expand to an unreasonable number of names.
    #[error("noderange '{range}': {reason}")]
    BadNoderange {
        /// The offending item.
        range: String,
        /// Why it was refused.
        reason: String,
    },
}

/// One setAttribs-style upsert: find the rows of `table` matching every `key` pair
/// (a `''` key value means IS NULL), then update `values` in them, or insert
/// keys+values when none matches. A `None` or `""` value means NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upsert {
    /// Table name (must be in [`schema::TABLES`]).
    pub table: String,
    /// `(column, value)` pairs that find the row; `''` matches NULL. Empty = always insert.
    pub key: Vec<(String, String)>,
    /// `(column, value)` pairs to set; None or `""` writes NULL. Unknown columns are dropped.
    pub values: Vec<(String, Option<String>)>,
}

/// What an [`Upsert`] did (or would do) to one row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A new row.
    Insert,
    /// An existing row got at least one different value.
    Update,
    /// Nothing was written: the matching row already held these values, or no row
    /// matched and every value was empty (xCAT skips such inserts; `old` is then None).
    Unchanged,
}

/// The effect of an [`Upsert`] on one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The table written.
    pub table: String,
    /// The upsert's key, as given.
    pub key: Vec<(String, String)>,
    /// Insert, update or nothing.
    pub kind: ChangeKind,
    /// The row before (including a disabled row: setAttribs matches those too), or
    /// None for an insert or a skipped insert.
    pub old: Option<Row>,
    /// The row after; empty for a skipped insert.
    pub new: Row,
}

/// Result of [`Catalog::plan`] and [`Catalog::apply`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// One entry per affected row, in upsert order (an upsert whose key matches several
    /// rows gives one entry per row, in rowid order).
    pub changes: Vec<Change>,
    /// `(table, column)` pairs that were given but are unknown to the schema and were
    /// therefore not written, each listed once, in first-seen order.
    pub dropped: Vec<(String, String)>,
}

/// Handle on the xCAT database: an SQLite directory or a database server.
///
/// Nothing is opened, created or connected by [`Catalog::open`] itself: SQLite table
/// files are opened on first use (one connection each), a server is connected to on
/// the first read or write (one connection, reused). Calls serialize behind a mutex,
/// so a `Catalog` can be shared between threads.
pub struct Catalog {
    location: Location,
    backend: backend::Backend,
}

/// Shows the location without secrets (a server's password prints as `<redacted>`).
impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("location", &self.location)
            .finish()
    }
}

/// Most names one noderange item may expand to; guards against `cn[1-999999999]`.
const MAX_RANGE: u64 = 1_000_000;

impl Catalog {
    /// Locates the database as xCAT does (XCAT.md §8.2) and returns a handle on it.
    ///
    /// `root` is the `--root` directory (`/` on a real management node); `xcatcfg` is
    /// the value of `$XCATCFG` if set. The backend string is `xcatcfg` if non-empty,
    /// else the first line of `<root>/etc/xcat/cfgloc` (trailing whitespace trimmed),
    /// else `SQLite:/opt/xcat/cfg` if `<root>/opt/xcat/cfg` is a directory, else
    /// `SQLite:/etc/xcat`. `SQLite:<dir>` or a bare `<dir>` (no `:`) selects SQLite; the
    /// dir is resolved under `root` (a relative one too, since xcatd runs from `/`).
    /// `Pg:...|user|pw` and `mysql:...|user|pw` select a server (see
    /// [`Location::parse`]); its host and sockets are the real machine's, not the root's.
    ///
    /// Errors: DB2, CSV and other schemes give [`CatalogError::UnsupportedBackend`]
    /// naming where the string came from; a malformed server line gives
    /// [`CatalogError::BadCfgloc`]; an unreadable cfgloc (other than missing) gives
    /// [`CatalogError::Io`] rather than a silent fallback. Cost: at most one small file
    /// read and one stat; nothing is connected to or created until first use.
    pub fn open(root: &Path, xcatcfg: Option<&str>) -> Result<Catalog, CatalogError> {
        let (value, origin) = match xcatcfg.filter(|v| !v.is_empty()) {
            Some(v) => (v.to_string(), "XCATCFG".to_string()),
            None => {
                let cfgloc = root.join("etc/xcat/cfgloc");
                let first = match std::fs::read(&cfgloc) {
                    Ok(bytes) => {
                        let line = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
                        String::from_utf8_lossy(line).trim_end().to_string()
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                    Err(source) => {
                        return Err(CatalogError::Io {
                            path: cfgloc,
                            source,
                        })
                    }
                };
                if first.is_empty() {
                    let legacy = if root.join("opt/xcat/cfg").is_dir() {
                        "SQLite:/opt/xcat/cfg"
                    } else {
                        "SQLite:/etc/xcat"
                    };
                    (legacy.to_string(), "default".to_string())
                } else {
                    (first, cfgloc.display().to_string())
                }
            }
        };
        Ok(Catalog::at(Location::parse(&value, &origin, root)?))
    }

    /// A catalog at an already parsed location (see [`Location::parse`]).
    pub fn at(location: Location) -> Catalog {
        Catalog {
            backend: backend::Backend::new(&location),
            location,
        }
    }

    /// Where the catalog is.
    pub fn location(&self) -> &Location {
        &self.location
    }

    /// The SQLite directory in use (already resolved under the root); None on a
    /// database server.
    pub fn dir(&self) -> Option<&Path> {
        match &self.location {
            Location::Sqlite(dir) => Some(dir),
            Location::Server(_) => None,
        }
    }

    /// First enabled row (XCAT.md §8.4) of `table` matching every key pair, in rowid order.
    ///
    /// A `''` key value means IS NULL. Columns holding NULL or `''` are left out, and a
    /// row left with no column at all is treated as absent (as getAttribs does). A
    /// missing table file gives `None` and creates nothing. Cost: one indexed or
    /// scanning SELECT, stopped at the first hit.
    pub fn get(&self, table: &str, key: &[(&str, &str)]) -> Result<Option<Row>, CatalogError> {
        let spec = spec_of(table)?;
        Ok(self.read_rows(spec, key, true)?.into_iter().next())
    }

    /// All enabled rows of `table` matching every key pair, in rowid order; an empty
    /// `key` selects every enabled row. Same NULL and empty-row rules as [`Catalog::get`].
    /// Cost: one SELECT, all matching rows held in memory.
    pub fn select(&self, table: &str, key: &[(&str, &str)]) -> Result<Vec<Row>, CatalogError> {
        let spec = spec_of(table)?;
        self.read_rows(spec, key, false)
    }

    /// `site.value` for `key` from the first enabled site row, or None when absent or
    /// empty.
    pub fn site(&self, key: &str) -> Result<Option<String>, CatalogError> {
        Ok(self
            .get("site", &[("key", key)])?
            .and_then(|mut row| row.remove("value")))
    }

    /// xCAT getNodeAttribs: the node's own enabled row of `table` (keyed by `node`),
    /// then, for each column still unresolved, the rows of the node's groups in
    /// `nodelist.groups` order; the first non-empty value wins.
    ///
    /// Returns only the requested columns that resolved (an empty `columns` means every
    /// non-key column). Not done: regex rows (`|pattern|replacement|`) and
    /// `site.hierarchicalattrs` concatenation. Cost: one SELECT for the node, one for
    /// its nodelist row if anything is unresolved, then one per group tried.
    pub fn node_attrs(
        &self,
        node: &str,
        table: &str,
        columns: &[&str],
    ) -> Result<Row, CatalogError> {
        let spec = spec_of(table)?;
        if spec.keys != ["node"] {
            return Err(CatalogError::NotANodeTable {
                table: table.to_string(),
            });
        }
        let wanted: Vec<&str> = if columns.is_empty() {
            spec.columns
                .iter()
                .copied()
                .filter(|c| !spec.is_key(c))
                .collect()
        } else {
            for c in columns {
                check_column(spec, c)?;
            }
            columns.to_vec()
        };
        let mut out = Row::new();
        let take = |row: &Row, out: &mut Row| {
            for c in &wanted {
                if !out.contains_key(*c) {
                    if let Some(v) = row.get(*c) {
                        out.insert((*c).to_string(), v.clone());
                    }
                }
            }
        };
        if let Some(own) = self.get(table, &[("node", node)])? {
            take(&own, &mut out);
        }
        if out.len() == wanted.len() {
            return Ok(out);
        }
        let groups = self
            .get("nodelist", &[("node", node)])?
            .and_then(|mut r| r.remove("groups"))
            .unwrap_or_default();
        for group in split_list(&groups) {
            if let Some(row) = self.get(table, &[("node", group)])? {
                take(&row, &mut out);
                if out.len() == wanted.len() {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Whether `node` has an enabled nodelist row.
    pub fn node_exists(&self, node: &str) -> Result<bool, CatalogError> {
        Ok(self.get("nodelist", &[("node", node)])?.is_some())
    }

    /// Expands a noderange: a comma list whose items are each a node in nodelist, else
    /// a group (every enabled nodelist node whose `groups` list contains it, in rowid
    /// order), else a simple range `cn[01-10]` or `cn01-cn10` expanded textually
    /// (zero-padded to the width of the start), else the name itself.
    ///
    /// Order is kept and duplicates dropped. Names not in nodelist are still returned
    /// (callers warn); none of xCAT's other operators (`^file`, `/regex`, `-exclusion`,
    /// `+step`, dynamic groups) are supported. Cost: one scan of nodelist per call.
    /// Errors: a range of more than a million names.
    pub fn expand_noderange(&self, range: &str) -> Result<Vec<String>, CatalogError> {
        let nodelist = self.select("nodelist", &[])?;
        let nodes: HashSet<&str> = nodelist
            .iter()
            .filter_map(|r| r.get("node").map(String::as_str))
            .collect();
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut push = |name: String, out: &mut Vec<String>| {
            if seen.insert(name.clone()) {
                out.push(name);
            }
        };
        for item in range.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if nodes.contains(item) {
                push(item.to_string(), &mut out);
                continue;
            }
            let members: Vec<&str> = nodelist
                .iter()
                .filter(|r| {
                    r.get("groups")
                        .is_some_and(|g| split_list(g).any(|g| g == item))
                })
                .filter_map(|r| r.get("node").map(String::as_str))
                .collect();
            if !members.is_empty() {
                for m in members {
                    push(m.to_string(), &mut out);
                }
                continue;
            }
            match expand_range(item)? {
                Some(names) => {
                    for n in names {
                        push(n, &mut out);
                    }
                }
                None => push(item.to_string(), &mut out),
            }
        }
        Ok(out)
    }
}

/// The spec of `table`, or [`CatalogError::UnknownTable`].
fn spec_of(table: &str) -> Result<&'static TableSpec, CatalogError> {
    schema::table_spec(table).ok_or_else(|| CatalogError::UnknownTable {
        table: table.to_string(),
    })
}

/// [`CatalogError::UnknownColumn`] unless `column` is in the schema of `spec`.
fn check_column(spec: &TableSpec, column: &str) -> Result<(), CatalogError> {
    if spec.has_column(column) {
        Ok(())
    } else {
        Err(CatalogError::UnknownColumn {
            table: spec.name.to_string(),
            column: column.to_string(),
        })
    }
}

/// Items of an xCAT comma list, trimmed, empties skipped.
fn split_list(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Expands `pre[a-b]post` or `pre<a>-pre<b>`; None if `item` is neither form.
fn expand_range(item: &str) -> Result<Option<Vec<String>>, CatalogError> {
    if let (Some(open), Some(close)) = (item.find('['), item.rfind(']')) {
        if open < close {
            let (prefix, inner, suffix) =
                (&item[..open], &item[open + 1..close], &item[close + 1..]);
            if let Some((a, b)) = inner.split_once('-') {
                if let Some(names) = numeric_range(item, prefix, a, b, suffix)? {
                    return Ok(Some(names));
                }
            }
        }
        return Ok(None);
    }
    // `rack1-cn01-rack1-cn10`: try every '-' until both sides share a prefix.
    for (i, _) in item.match_indices('-') {
        let (left, right) = (&item[..i], &item[i + 1..]);
        let (lp, ld) = split_digits(left);
        let (rp, rd) = split_digits(right);
        if lp == rp && !ld.is_empty() && !rd.is_empty() {
            if let Some(names) = numeric_range(item, lp, ld, rd, "")? {
                return Ok(Some(names));
            }
        }
    }
    Ok(None)
}

/// `s` split into its text and its trailing run of ASCII digits.
fn split_digits(s: &str) -> (&str, &str) {
    let cut = s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    s.split_at(cut)
}

/// `prefix{n:0width}suffix` for n in a..=b, width being the length of `a`; None when
/// `a`/`b` are not numbers or `a > b` (then the item is taken as a plain name).
fn numeric_range(
    item: &str,
    prefix: &str,
    a: &str,
    b: &str,
    suffix: &str,
) -> Result<Option<Vec<String>>, CatalogError> {
    let digits = |s: &str| !s.is_empty() && s.len() <= 18 && s.bytes().all(|c| c.is_ascii_digit());
    if !digits(a) || !digits(b) {
        return Ok(None);
    }
    let (Ok(start), Ok(end)) = (a.parse::<u64>(), b.parse::<u64>()) else {
        return Ok(None);
    };
    if start > end {
        return Ok(None);
    }
    if end - start >= MAX_RANGE {
        return Err(CatalogError::BadNoderange {
            range: item.to_string(),
            reason: format!("expands to more than {MAX_RANGE} names"),
        });
    }
    let width = a.len();
    Ok(Some(
        (start..=end)
            .map(|n| format!("{prefix}{n:0width$}{suffix}"))
            .collect(),
    ))
}

/// Helpers shared by the catalog's unit tests.
#[cfg(test)]
mod testutil {
    use super::*;
    use rusqlite::Connection;

    /// A catalog on a fresh temporary root, its SQLite dir `<root>/etc/xcat` created.
    pub fn catalog() -> (tempfile::TempDir, Catalog) {
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("etc/xcat")).expect("mkdir");
        let cat = Catalog::open(root.path(), None).expect("open");
        (root, cat)
    }

    /// A direct connection on `table`'s file, the table created with xCAT's DDL.
    pub fn raw(cat: &Catalog, table: &str) -> Connection {
        let spec = schema::table_spec(table).expect("known table");
        let file = cat.dir().expect("sqlite").join(format!("{table}.sqlite"));
        let conn = Connection::open(file).expect("open raw");
        if !conn
            .prepare("SELECT 1 FROM sqlite_master WHERE name = ?1")
            .and_then(|mut s| s.exists([table]))
            .expect("query")
        {
            conn.execute_batch(&ddl::create(backend::Dialect::Sqlite, spec))
                .expect("create");
        }
        conn
    }

    /// An [`Upsert`] from string slices.
    pub fn up(table: &str, key: &[(&str, &str)], values: &[(&str, Option<&str>)]) -> Upsert {
        Upsert {
            table: table.into(),
            key: key
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            values: values
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
        }
    }

    /// A [`Row`] from pairs.
    pub fn row(pairs: &[(&str, &str)]) -> Row {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::{catalog, raw, row};
    use super::*;

    #[test]
    fn open_resolves_every_location_under_root() {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        let dir = |cfg: Option<&str>| Catalog::open(r, cfg).map(|c| c.dir().unwrap().to_path_buf());
        // Default, then legacy /opt/xcat/cfg once it exists.
        assert_eq!(dir(None).unwrap(), r.join("etc/xcat"));
        assert_eq!(dir(Some("")).unwrap(), r.join("etc/xcat"));
        std::fs::create_dir_all(r.join("opt/xcat/cfg")).unwrap();
        assert_eq!(dir(None).unwrap(), r.join("opt/xcat/cfg"));
        // cfgloc (first line only, newline trimmed) beats the defaults.
        std::fs::create_dir_all(r.join("etc/xcat")).unwrap();
        std::fs::write(r.join("etc/xcat/cfgloc"), "SQLite:/srv/xcatdb\nignored\n").unwrap();
        assert_eq!(dir(None).unwrap(), r.join("srv/xcatdb"));
        std::fs::write(r.join("etc/xcat/cfgloc"), "/bare/dir\n").unwrap();
        assert_eq!(dir(None).unwrap(), r.join("bare/dir"));
        // XCATCFG beats cfgloc; a bare or relative dir is SQLite too.
        assert_eq!(dir(Some("SQLite:/env/db")).unwrap(), r.join("env/db"));
        assert_eq!(dir(Some("/env/bare")).unwrap(), r.join("env/bare"));
        assert_eq!(dir(Some("rel/db")).unwrap(), r.join("rel/db"));
        // Opening creates nothing.
        assert!(!r.join("env").exists());
    }

    #[test]
    fn open_reads_server_lines_and_rejects_db2_and_csv_naming_the_source() {
        let root = tempfile::tempdir().expect("tempdir");
        let r = root.path();
        std::fs::create_dir_all(r.join("etc/xcat")).unwrap();
        let cfgloc = r.join("etc/xcat/cfgloc");
        std::fs::write(
            &cfgloc,
            "mysql:dbname=xcatdb;host=10.0.0.1|xcatadmin|s3cret\n",
        )
        .unwrap();
        let cat = Catalog::open(r, None).unwrap();
        assert!(cat.dir().is_none());
        let Location::Server(s) = cat.location() else {
            panic!("not a server: {cat:?}");
        };
        assert_eq!((s.driver, s.database.as_str()), (Driver::Mysql, "xcatdb"));
        assert!(!format!("{cat:?}").contains("s3cret"), "{cat:?}");
        std::fs::write(&cfgloc, "DB2:xcatdb|xcatdb|s3cret\n").unwrap();
        let err = Catalog::open(r, None).unwrap_err();
        match &err {
            CatalogError::UnsupportedBackend { origin, backend } => {
                assert_eq!(origin, &cfgloc.display().to_string());
                assert_eq!(backend, "DB2");
            }
            other => panic!("unexpected {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("cfgloc") && text.contains("DB2"), "{text}");
        assert!(!text.contains("s3cret"), "password leaked: {text}");
        for cfg in ["DB2:xcatdb|xcatdb|pw", "CSV:/etc/xcat"] {
            match Catalog::open(r, Some(cfg)).unwrap_err() {
                CatalogError::UnsupportedBackend { origin, backend } => {
                    assert_eq!(origin, "XCATCFG");
                    assert_eq!(Some(backend.as_str()), cfg.split(':').next());
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn reads_skip_disabled_rows_including_empty_disable() {
        let (_root, cat) = catalog();
        let conn = raw(&cat, "osimage");
        for (name, disable) in [
            ("a", None),
            ("b", Some("1")),
            ("c", Some("")),
            ("d", Some("no")),
            ("e", Some("yes")),
            ("f", Some("0")),
            ("g", Some("nO")),
            ("h", Some("No ")),
        ] {
            conn.execute(
                "INSERT INTO osimage (imagename, profile, groups, disable) VALUES (?1, 'p', '', ?2)",
                rusqlite::params![name, disable],
            )
            .unwrap();
        }
        let names: Vec<String> = cat
            .select("osimage", &[])
            .unwrap()
            .into_iter()
            .map(|r| r["imagename"].clone())
            .collect();
        assert_eq!(names, ["a", "d", "f", "g"]);
        assert!(cat.get("osimage", &[("imagename", "c")]).unwrap().is_none());
        assert!(cat.get("osimage", &[("imagename", "b")]).unwrap().is_none());
        // '' and NULL columns are both left out; `disable` of "no" is a real value.
        assert_eq!(
            cat.get("osimage", &[("imagename", "a")]).unwrap(),
            Some(row(&[("imagename", "a"), ("profile", "p")]))
        );
        assert_eq!(
            cat.get("osimage", &[("imagename", "d")]).unwrap().unwrap()["disable"],
            "no"
        );
        // A '' key value means IS NULL.
        assert!(cat.get("osimage", &[("osvers", "")]).unwrap().is_some());
        assert!(cat.get("osimage", &[("osvers", "x")]).unwrap().is_none());
    }

    #[test]
    fn reads_of_missing_tables_create_nothing_and_names_are_checked() {
        let (_root, cat) = catalog();
        assert_eq!(cat.get("osimage", &[("imagename", "x")]).unwrap(), None);
        assert!(cat.select("nodelist", &[]).unwrap().is_empty());
        assert_eq!(cat.site("installdir").unwrap(), None);
        assert!(!cat.node_exists("n1").unwrap());
        assert_eq!(std::fs::read_dir(cat.dir().unwrap()).unwrap().count(), 0);
        assert!(matches!(
            cat.get("nosuch", &[]),
            Err(CatalogError::UnknownTable { table }) if table == "nosuch"
        ));
        assert!(matches!(
            cat.get("osimage", &[("bogus", "x")]),
            Err(CatalogError::UnknownColumn { table, column }) if table == "osimage" && column == "bogus"
        ));
        raw(&cat, "site")
            .execute_batch("INSERT INTO site (key, value) VALUES ('installdir', '/install');")
            .unwrap();
        assert_eq!(cat.site("installdir").unwrap().as_deref(), Some("/install"));
    }

    #[test]
    fn node_attrs_inherit_from_groups_in_nodelist_order() {
        let (_root, cat) = catalog();
        raw(&cat, "nodelist")
            .execute_batch(
                "INSERT INTO nodelist (node, groups) VALUES ('n1', 'compute,all');
                 INSERT INTO nodelist (node, groups) VALUES ('n2', 'all, compute');
                 INSERT INTO nodelist (node, groups) VALUES ('n3', 'compute');",
            )
            .unwrap();
        raw(&cat, "postscripts")
            .execute_batch(
                "INSERT INTO postscripts (node, postscripts, postbootscripts) VALUES ('n1', '', 'own');
                 INSERT INTO postscripts (node, postscripts) VALUES ('compute', 'fromcompute');
                 INSERT INTO postscripts (node, postscripts, comments) VALUES ('all', 'fromall', 'c');
                 INSERT INTO postscripts (node, postscripts, disable) VALUES ('n3', 'hidden', '1');",
            )
            .unwrap();
        let cols = ["postscripts", "postbootscripts"];
        assert_eq!(
            cat.node_attrs("n1", "postscripts", &cols).unwrap(),
            row(&[("postscripts", "fromcompute"), ("postbootscripts", "own")])
        );
        assert_eq!(
            cat.node_attrs("n2", "postscripts", &cols).unwrap(),
            row(&[("postscripts", "fromall")])
        );
        // The node's own disabled row is ignored.
        assert_eq!(
            cat.node_attrs("n3", "postscripts", &cols).unwrap(),
            row(&[("postscripts", "fromcompute")])
        );
        // Empty column list = every non-key column.
        assert_eq!(
            cat.node_attrs("n2", "postscripts", &[]).unwrap(),
            row(&[("postscripts", "fromall"), ("comments", "c")])
        );
        assert!(cat
            .node_attrs("ghost", "postscripts", &cols)
            .unwrap()
            .is_empty());
        assert!(matches!(
            cat.node_attrs("n1", "osimage", &[]),
            Err(CatalogError::NotANodeTable { .. })
        ));
        assert!(matches!(
            cat.node_attrs("n1", "postscripts", &["nope"]),
            Err(CatalogError::UnknownColumn { .. })
        ));
    }

    #[test]
    fn noderange_expands_nodes_groups_and_ranges_in_order() {
        let (_root, cat) = catalog();
        raw(&cat, "nodelist")
            .execute_batch(
                "INSERT INTO nodelist (node, groups) VALUES ('cn01', 'compute,all');
                 INSERT INTO nodelist (node, groups) VALUES ('cn02', 'compute,all');
                 INSERT INTO nodelist (node, groups) VALUES ('cn03', 'compute,all');
                 INSERT INTO nodelist (node, groups) VALUES ('svc', 'service,all');
                 INSERT INTO nodelist (node, groups, disable) VALUES ('cn04', 'compute', 'yes');",
            )
            .unwrap();
        assert!(cat.node_exists("cn01").unwrap());
        assert!(!cat.node_exists("cn04").unwrap());
        assert_eq!(
            cat.expand_noderange("cn02,compute, cn[03-05] ,svc,ghost,cn09-cn11,,r1-cn1-r1-cn2")
                .unwrap(),
            [
                "cn02", "cn01", "cn03", "cn04", "cn05", "svc", "ghost", "cn09", "cn10", "cn11",
                "r1-cn1", "r1-cn2"
            ]
        );
        assert_eq!(
            cat.expand_noderange("n[8-10]").unwrap(),
            ["n8", "n9", "n10"]
        );
        assert_eq!(
            cat.expand_noderange("all").unwrap(),
            ["cn01", "cn02", "cn03", "svc"]
        );
        // Not ranges: reversed, differing prefixes, no digits.
        assert_eq!(cat.expand_noderange("cn5-cn1").unwrap(), ["cn5-cn1"]);
        assert_eq!(
            cat.expand_noderange("a1-b2,rack-x").unwrap(),
            ["a1-b2", "rack-x"]
        );
        assert!(matches!(
            cat.expand_noderange("cn[1-99999999]"),
            Err(CatalogError::BadNoderange { .. })
        ));
    }
}

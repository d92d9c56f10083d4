//! What PostgreSQL and MySQL/MariaDB share: one lazily opened connection for every
//! table, and writes as one transaction across tables under a server-wide lock.
//!
//! Why a lock on top of the transaction: an import's upserts read a row, then update or
//! insert it (setAttribs). Under READ COMMITTED (PostgreSQL's default) or REPEATABLE
//! READ (InnoDB's) two imports of overlapping images could both see "no row" and both
//! insert (a key violation), or one could update rows the other is half-way through.
//! SERIALIZABLE would make one of them fail instead of wait. An advisory lock
//! (`pg_advisory_xact_lock`, MySQL `GET_LOCK`) taken before the first read serializes
//! imgport's writers on that server, so each image's rows land whole and in turn, while
//! readers (xcatd, `-p` lookups, exports) are never blocked. xcatd itself does not take
//! the lock; its writes are single-row setAttribs that the transaction's row locks
//! order against ours.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use super::{ensure_table, Conn, DbError, Tables};
use crate::catalog::cfgloc::{Driver, ServerConfig};
use crate::catalog::schema::TableSpec;
use crate::catalog::CatalogError;

/// The name of imgport's write lock: a fixed 64-bit key for PostgreSQL, a string for
/// MySQL. Both are per server (MySQL) or per database cluster (PostgreSQL), which is at
/// least as wide as the one database imgport writes.
pub(super) const LOCK_KEY: i64 = 0x696d_6770_6f72_7431; // "imgport1"
/// MySQL's lock name (MySQL limits names to 64 characters).
pub(super) const LOCK_NAME: &str = "imgport.catalog.write";

/// One connection to a server, as the catalog uses it.
pub(super) trait Session: Conn + Send {
    /// Opens the write: takes imgport's lock. On PostgreSQL this also begins the
    /// transaction (its DDL is transactional); on MySQL DDL commits implicitly, so the
    /// transaction begins only in [`Session::begin_rows`], after any table creation.
    fn begin_locked(&mut self) -> Result<(), DbError>;
    /// Begins the data transaction if [`Session::begin_locked`] did not.
    fn begin_rows(&mut self) -> Result<(), DbError>;
    /// Commits and releases the lock.
    fn commit(&mut self) -> Result<(), DbError>;
    /// Rolls back and releases the lock; errors are ignored (the connection may be
    /// gone, and then the server has rolled back already).
    fn abort(&mut self);
    /// This session as a plain connection (no trait upcasting before Rust 1.86).
    fn as_conn(&mut self) -> &mut dyn Conn;
}

/// A database server and imgport's connection to it.
pub(in crate::catalog) struct Server {
    config: ServerConfig,
    session: Mutex<Option<Box<dyn Session>>>,
}

impl Server {
    /// Handle on the server; nothing is connected yet.
    pub(super) fn new(config: ServerConfig) -> Server {
        Server {
            config,
            session: Mutex::new(None),
        }
    }

    /// [`CatalogError::Database`] naming the server (never the password).
    pub(super) fn err(&self, table: &str, action: &'static str, e: DbError) -> CatalogError {
        CatalogError::Database {
            server: self.config.to_string(),
            table: table.to_string(),
            action,
            source: Box::new(e),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Box<dyn Session>>> {
        self.session.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the connection, connecting first if needed. Any failure drops the
    /// connection, so a server that went away and came back is reconnected to on the
    /// next call instead of failing forever.
    fn with_session<R>(
        &self,
        f: impl FnOnce(&mut dyn Session) -> Result<R, CatalogError>,
    ) -> Result<R, CatalogError> {
        let mut guard = self.lock();
        let session = match guard.take() {
            Some(s) => s,
            None => self.connect()?,
        };
        let session = guard.insert(session);
        let result = f(session.as_mut());
        if result.is_err() {
            *guard = None;
        }
        result
    }

    /// A new connection, within the configured timeout. The client libraries bound
    /// only the socket connect; a server that accepts and then never answers (stopped,
    /// or behind a dropping firewall) would hang the handshake, so the whole connect
    /// runs on a helper thread that is abandoned when the time is up.
    fn connect(&self) -> Result<Box<dyn Session>, CatalogError> {
        let fail = |source: DbError| CatalogError::Connect {
            server: self.config.to_string(),
            timeout: self.config.timeout.as_secs_f64(),
            source: Box::new(source),
        };
        let config = self.config.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("imgport-db-connect".into())
            .spawn(move || {
                let result = match config.driver {
                    Driver::Postgres => super::postgres::connect(&config),
                    Driver::Mysql => super::mysql::connect(&config),
                };
                let _ = tx.send(result);
            })
            .map_err(|e| fail(DbError::Protocol(format!("cannot start a thread: {e}"))))?;
        // A little slack so the library's own timeout error, when it has one, wins.
        match rx.recv_timeout(self.config.timeout + Duration::from_millis(250)) {
            Ok(result) => result.map_err(fail),
            Err(_) => Err(fail(DbError::Protocol(format!(
                "no answer within {} s (IMGPORT_DB_TIMEOUT)",
                self.config.timeout.as_secs_f64()
            )))),
        }
    }

    /// Runs `f` outside any transaction (each statement sees committed data).
    pub(super) fn read<R>(
        &self,
        spec: &'static TableSpec,
        action: &'static str,
        f: impl FnOnce(&mut dyn Conn) -> Result<R, DbError>,
    ) -> Result<R, CatalogError> {
        self.with_session(|s| f(s.as_conn()).map_err(|e| self.err(spec.name, action, e)))
    }

    /// One transaction across every table, under imgport's lock (see the module
    /// comment). Tables are created or upgraded first, as xCAT does on first write.
    pub(super) fn write<R>(
        &self,
        specs: &[&'static TableSpec],
        body: impl FnOnce(&mut dyn Tables) -> Result<R, CatalogError>,
    ) -> Result<R, CatalogError> {
        let first = specs.first().map_or("", |s| s.name);
        self.with_session(|s| {
            s.begin_locked()
                .map_err(|e| self.err(first, "locking for a write to", e))?;
            let run = |s: &mut dyn Session| -> Result<R, CatalogError> {
                for spec in specs {
                    ensure_table(s.as_conn(), spec)
                        .map_err(|e| self.err(spec.name, "creating or upgrading", e))?;
                }
                s.begin_rows()
                    .map_err(|e| self.err(first, "beginning a write to", e))?;
                let r = body(&mut OneConn(s.as_conn()))?;
                s.commit().map_err(|e| self.err(first, "committing", e))?;
                Ok(r)
            };
            let result = run(s);
            if result.is_err() {
                s.abort();
            }
            result
        })
    }
}

/// Every table on the one server connection.
struct OneConn<'a>(&'a mut dyn Conn);

impl Tables for OneConn<'_> {
    fn conn(&mut self, _table: &str) -> Option<&mut dyn Conn> {
        Some(&mut *self.0)
    }
}

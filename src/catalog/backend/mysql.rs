//! MySQL and MariaDB through the `mysql` crate with its pure-Rust features (no
//! libmysqlclient, no OpenSSL). TLS is not offered: plain TCP or a Unix socket, as
//! with xCAT's default `mysqlsetup`.

use mysql::prelude::Queryable;
use mysql::{Conn as MyConn, OptsBuilder, Params, Value as MyValue};

use super::server::{Session, LOCK_NAME};
use super::{column_names, Conn, DbError, Dialect, Rows, Value};
use crate::catalog::cfgloc::ServerConfig;

/// How long GET_LOCK waits for another imgport's write to finish, in seconds: an
/// import's rows take well under a minute to write even for large images.
const LOCK_WAIT_SECS: u32 = 3600;

/// A MySQL/MariaDB connection.
struct My {
    conn: MyConn,
}

/// Connects as `c` says: the socket file when there is no host (or host=localhost,
/// as libmysqlclient does), else TCP.
pub(super) fn connect(c: &ServerConfig) -> Result<Box<dyn Session>, DbError> {
    let mut opts = OptsBuilder::new()
        .user(Some(&c.user))
        .pass(Some(c.password.expose()))
        .db_name(Some(&c.database))
        .tcp_port(c.port.unwrap_or(c.default_port()))
        .tcp_connect_timeout(Some(c.timeout))
        // Otherwise the crate reconnects through the server's socket after a TCP login
        // to localhost, which is not the endpoint the cfgloc names.
        .prefer_socket(false);
    opts = match c.socket_path() {
        Some(sock) => opts.socket(Some(sock.to_string_lossy().into_owned())),
        None => opts.ip_or_hostname(c.host.clone()),
    };
    let conn = MyConn::new(opts)?;
    Ok(Box::new(My { conn }))
}

fn params(values: &[Option<&[u8]>]) -> Params {
    if values.is_empty() {
        return Params::Empty;
    }
    Params::Positional(
        values
            .iter()
            .map(|v| v.map_or(MyValue::NULL, |b| MyValue::Bytes(b.to_vec())))
            .collect(),
    )
}

/// A result value as text.
fn value_of(v: MyValue) -> Value {
    match v {
        MyValue::NULL => None,
        MyValue::Bytes(b) => Some(b),
        MyValue::Int(i) => Some(i.to_string().into_bytes()),
        MyValue::UInt(u) => Some(u.to_string().into_bytes()),
        MyValue::Float(f) => Some(f.to_string().into_bytes()),
        MyValue::Double(f) => Some(f.to_string().into_bytes()),
        other => Some(other.as_sql(true).trim_matches('\'').as_bytes().to_vec()),
    }
}

impl My {
    /// Releases the write lock; ignored if not held (or the connection is gone).
    fn unlock(&mut self) {
        let _ = self
            .conn
            .query_drop(format!("DO RELEASE_LOCK('{LOCK_NAME}')"));
    }
}

impl Conn for My {
    fn dialect(&self) -> Dialect {
        Dialect::Mysql
    }

    fn columns(&mut self, table: &str) -> Result<Option<Vec<String>>, DbError> {
        let rows = self.query(
            "SELECT column_name FROM information_schema.columns \
             WHERE table_schema = DATABASE() AND table_name = ? \
             ORDER BY ordinal_position",
            &[Some(table.as_bytes())],
        )?;
        Ok(column_names(rows))
    }

    fn query(&mut self, sql: &str, values: &[Option<&[u8]>]) -> Result<Rows, DbError> {
        let mut result = self.conn.exec_iter(sql, params(values))?;
        let names = result
            .columns()
            .as_ref()
            .iter()
            .map(|c| c.name_str().into_owned())
            .collect();
        let mut out = Rows {
            names,
            rows: Vec::new(),
        };
        for row in result.by_ref() {
            // `Row::unwrap` is the crate's "all values of the row", not Option's: it
            // panics only for values taken out before, and none are.
            let values = mysql::Row::unwrap(row?);
            out.rows.push(values.into_iter().map(value_of).collect());
        }
        Ok(out)
    }

    fn execute(&mut self, sql: &str, values: &[Option<&[u8]>]) -> Result<u64, DbError> {
        self.conn.exec_drop(sql, params(values))?;
        Ok(self.conn.affected_rows())
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        Ok(self.conn.query_drop(sql)?)
    }
}

impl Session for My {
    fn begin_locked(&mut self) -> Result<(), DbError> {
        // GET_LOCK is per connection, not per transaction: it is released explicitly
        // after COMMIT/ROLLBACK, and by the server when the connection dies.
        let got: Option<Option<i64>> = self
            .conn
            .query_first(format!("SELECT GET_LOCK('{LOCK_NAME}', {LOCK_WAIT_SECS})"))?;
        match got.flatten() {
            Some(1) => Ok(()),
            Some(_) => Err(DbError::Protocol(format!(
                "another imgport held the catalog write lock for more than {LOCK_WAIT_SECS} s"
            ))),
            None => Err(DbError::Protocol("GET_LOCK failed".into())),
        }
    }

    fn begin_rows(&mut self) -> Result<(), DbError> {
        // After any CREATE/ALTER: MySQL's DDL commits implicitly, so tables are made
        // before the rows' transaction (as xCAT creates them on first open).
        Ok(self.conn.query_drop("START TRANSACTION")?)
    }

    fn commit(&mut self) -> Result<(), DbError> {
        let r = self.conn.query_drop("COMMIT");
        self.unlock();
        Ok(r?)
    }

    fn abort(&mut self) {
        let _ = self.conn.query_drop("ROLLBACK");
        self.unlock();
    }

    fn as_conn(&mut self) -> &mut dyn Conn {
        self
    }
}

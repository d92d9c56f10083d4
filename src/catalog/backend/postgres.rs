//! PostgreSQL through the `postgres` crate (pure Rust, no libpq). TLS is not offered:
//! the connection is plain TCP or a Unix socket, as with xCAT's default `pgsqlsetup`.

use std::collections::HashMap;

use postgres::types::ToSql;
use postgres::{Client, Config, NoTls, Statement};

use super::server::{Session, LOCK_KEY};
use super::{column_names, Conn, DbError, Dialect, Rows};
use crate::catalog::cfgloc::ServerConfig;

/// A PostgreSQL connection.
struct Pg {
    client: Client,
    /// Prepared statements by text: an import repeats the same few statements per
    /// row, and preparing each time would double the round trips.
    prepared: HashMap<String, Statement>,
}

impl Pg {
    /// The prepared statement for `sql` (with `?` placeholders).
    fn statement(&mut self, sql: &str) -> Result<Statement, DbError> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let stmt = self.client.prepare(&numbered(sql))?;
        self.prepared.insert(sql.to_string(), stmt.clone());
        Ok(stmt)
    }
}

/// Connects as `c` says: a socket directory when there is no TCP host, else TCP.
pub(super) fn connect(c: &ServerConfig) -> Result<Box<dyn Session>, DbError> {
    let mut cfg = Config::new();
    cfg.user(&c.user)
        .password(c.password.expose())
        .dbname(&c.database)
        .port(c.port.unwrap_or(c.default_port()))
        .application_name("imgport")
        .connect_timeout(c.timeout)
        // A peer that vanishes mid-write fails the write after this long instead of
        // hanging on TCP retransmissions.
        .tcp_user_timeout(c.timeout);
    match (c.socket_path(), &c.host) {
        (Some(dir), _) => cfg.host_path(dir),
        (None, Some(host)) => cfg.host(host),
        (None, None) => cfg.host("localhost"),
    };
    let client = cfg.connect(NoTls)?;
    Ok(Box::new(Pg {
        client,
        prepared: HashMap::new(),
    }))
}

/// `?` placeholders renumbered as `$1, $2, ...` (imgport's statements carry no `?`
/// of their own: every value is bound).
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for ch in sql.chars() {
        if ch == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(ch);
        }
    }
    out
}

/// Values bound as text. PostgreSQL's TEXT must be UTF-8, so other bytes are
/// replaced (xCAT's Perl would be refused by the server outright).
fn texts(params: &[Option<&[u8]>]) -> Vec<Option<String>> {
    params
        .iter()
        .map(|v| v.map(|b| String::from_utf8_lossy(b).into_owned()))
        .collect()
}

impl Conn for Pg {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn columns(&mut self, table: &str) -> Result<Option<Vec<String>>, DbError> {
        let rows = self.query(
            "SELECT column_name::text FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = ? \
             ORDER BY ordinal_position",
            &[Some(table.as_bytes())],
        )?;
        Ok(column_names(rows))
    }

    fn query(&mut self, sql: &str, params: &[Option<&[u8]>]) -> Result<Rows, DbError> {
        let stmt = self.statement(sql)?;
        let names = stmt
            .columns()
            .iter()
            .map(|c| c.name().to_string())
            .collect();
        let values = texts(params);
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as _).collect();
        let mut out = Rows {
            names,
            rows: Vec::new(),
        };
        for row in self.client.query(&stmt, &refs)? {
            let mut vals = Vec::with_capacity(row.len());
            for i in 0..row.len() {
                let v: Option<String> = row.try_get(i)?;
                vals.push(v.map(String::into_bytes));
            }
            out.rows.push(vals);
        }
        Ok(out)
    }

    fn execute(&mut self, sql: &str, params: &[Option<&[u8]>]) -> Result<u64, DbError> {
        let values = texts(params);
        let refs: Vec<&(dyn ToSql + Sync)> = values.iter().map(|v| v as _).collect();
        let stmt = self.statement(sql)?;
        Ok(self.client.execute(&stmt, &refs)?)
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        // DDL may change what a cached plan returns; start over after it.
        if !sql.contains("SAVEPOINT") {
            self.prepared.clear();
        }
        Ok(self.client.batch_execute(sql)?)
    }
}

impl Session for Pg {
    fn begin_locked(&mut self) -> Result<(), DbError> {
        // The transaction-scoped lock is released by COMMIT or ROLLBACK, and by the
        // server if the connection dies: a killed import cannot leave it held.
        Ok(self
            .client
            .batch_execute(&format!("BEGIN; SELECT pg_advisory_xact_lock({LOCK_KEY})"))?)
    }

    fn begin_rows(&mut self) -> Result<(), DbError> {
        Ok(())
    }

    fn commit(&mut self) -> Result<(), DbError> {
        Ok(self.client.batch_execute("COMMIT")?)
    }

    fn abort(&mut self) {
        let _ = self.client.batch_execute("ROLLBACK");
    }

    fn as_conn(&mut self) -> &mut dyn Conn {
        self
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_are_numbered() {
        assert_eq!(
            super::numbered("SELECT a FROM t WHERE b = ? AND c = ?"),
            "SELECT a FROM t WHERE b = $1 AND c = $2"
        );
    }
}

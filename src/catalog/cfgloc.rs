//! Where the catalog lives: xCAT's `cfgloc` / `$XCATCFG` string (XCAT.md §8.2, §8.7).
//!
//! `SQLite:<dir>` (or a bare directory) is the embedded layout; `Pg:<dsn>|user|password`
//! and `mysql:<dsn>|user|password` name a database server, `<dsn>` being a Perl DBI data
//! source without its `dbi:` prefix (`dbname=xcatdb;host=10.0.0.1;port=5432`). The
//! password is held in a [`Secret`], which no `Debug`, `Display` or error ever prints.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::CatalogError;

/// The connect timeout when `IMGPORT_DB_TIMEOUT` is unset or unparsable.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A password. Its `Debug` prints `<redacted>` and it has no `Display`, so it cannot end
/// up in a message by accident; [`Secret::expose`] is the one way to read it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The password itself, for handing to the client library only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Which server protocol a cfgloc names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// `Pg:` (DBD::Pg), PostgreSQL.
    Postgres,
    /// `mysql:` (DBD::mysql), MySQL or MariaDB.
    Mysql,
}

impl Driver {
    /// The product name used in messages.
    pub fn product(self) -> &'static str {
        match self {
            Driver::Postgres => "PostgreSQL",
            Driver::Mysql => "MySQL/MariaDB",
        }
    }
}

/// How to reach a database server, parsed from a cfgloc line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// Protocol.
    pub driver: Driver,
    /// `dbname=` (also `database=` / `db=`).
    pub database: String,
    /// `host=`; None means the local server's Unix socket. A PostgreSQL host starting
    /// with `/` is a socket directory, as with libpq.
    pub host: Option<String>,
    /// `port=`; None means the driver's default (5432, 3306).
    pub port: Option<u16>,
    /// `mysql_socket=`: the MySQL socket file when there is no host.
    pub socket: Option<PathBuf>,
    /// The user (second `|` field).
    pub user: String,
    /// The password (third `|` field, may be empty).
    pub password: Secret,
    /// Connect timeout (`IMGPORT_DB_TIMEOUT`, seconds).
    pub timeout: Duration,
}

impl ServerConfig {
    /// The default port of the driver.
    pub fn default_port(&self) -> u16 {
        match self.driver {
            Driver::Postgres => 5432,
            Driver::Mysql => 3306,
        }
    }

    /// The Unix socket used when there is no TCP host: for PostgreSQL the socket
    /// *directory*, for MySQL the socket file. The defaults are the distributions'
    /// (Debian's, then RHEL's), the first that exists.
    pub fn socket_path(&self) -> Option<PathBuf> {
        match (self.driver, &self.host) {
            (Driver::Postgres, Some(h)) if h.starts_with('/') => Some(PathBuf::from(h)),
            (Driver::Postgres, Some(_)) => None,
            (Driver::Postgres, None) => Some(first_existing(&["/var/run/postgresql", "/tmp"])),
            (Driver::Mysql, Some(h)) if h != "localhost" => None,
            (Driver::Mysql, _) => Some(self.socket.clone().unwrap_or_else(|| {
                first_existing(&[
                    "/run/mysqld/mysqld.sock",
                    "/var/lib/mysql/mysql.sock",
                    "/tmp/mysql.sock",
                ])
            })),
        }
    }

    /// `host:port` or `socket <path>`, for messages.
    pub fn endpoint(&self) -> String {
        match self.socket_path() {
            Some(p) => format!("socket {}", p.display()),
            None => format!(
                "{}:{}",
                self.host.as_deref().unwrap_or_default(),
                self.port.unwrap_or(self.default_port())
            ),
        }
    }
}

/// Names the server without the password: `PostgreSQL database 'xcatdb' on
/// 10.0.0.1:5432 as user 'xcatadm'`.
impl std::fmt::Display for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} database '{}' on {} as user '{}'",
            self.driver.product(),
            self.database,
            self.endpoint(),
            self.user
        )
    }
}

fn first_existing(candidates: &[&str]) -> PathBuf {
    let found = candidates.iter().find(|c| Path::new(c).exists());
    PathBuf::from(found.unwrap_or(&candidates[0]))
}

/// Where the catalog is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// xCAT's SQLite layout in this directory (already resolved under the root).
    Sqlite(PathBuf),
    /// A PostgreSQL or MySQL/MariaDB server.
    Server(ServerConfig),
}

impl Location {
    /// Parses a backend string as xCAT does. `origin` names where it came from
    /// (`XCATCFG`, a cfgloc path) for errors; `root` resolves SQLite directories.
    ///
    /// Errors: DB2, CSV or any other scheme give [`CatalogError::UnsupportedBackend`];
    /// a server line without a database or user, or with an unknown DSN key or a bad
    /// port, gives [`CatalogError::BadCfgloc`]. No message carries the password.
    pub fn parse(value: &str, origin: &str, root: &Path) -> Result<Location, CatalogError> {
        // xCAT strips a leading `dbi:` and adds it back for DBI.
        let value = value.strip_prefix("dbi:").unwrap_or(value);
        let (scheme, rest) = match value.split_once(':') {
            None => return Ok(Location::Sqlite(under(root, value))),
            Some(parts) => parts,
        };
        let driver = match scheme {
            "SQLite" => return Ok(Location::Sqlite(under(root, rest))),
            "Pg" => Driver::Postgres,
            "mysql" => Driver::Mysql,
            other => {
                return Err(CatalogError::UnsupportedBackend {
                    origin: origin.to_string(),
                    backend: other.to_string(),
                })
            }
        };
        let bad = |reason: String| CatalogError::BadCfgloc {
            origin: origin.to_string(),
            reason,
        };
        // Perl's split(/\|/): fields beyond the third are ignored.
        let mut fields = rest.split('|');
        let dsn = fields.next().unwrap_or_default();
        let user = fields.next().unwrap_or_default().to_string();
        let password = Secret(fields.next().unwrap_or_default().to_string());
        let mut config = ServerConfig {
            driver,
            database: String::new(),
            host: None,
            port: None,
            socket: None,
            user,
            password,
            timeout: timeout_from_env(),
        };
        for pair in dsn.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = v.trim();
            match (driver, k.trim()) {
                (_, "dbname" | "database" | "db") => config.database = v.to_string(),
                (_, "host" | "hostname") if !v.is_empty() => config.host = Some(v.to_string()),
                (_, "host" | "hostname") => {}
                (_, "port") => {
                    config.port = Some(
                        v.parse()
                            .map_err(|_| bad(format!("port '{v}' is not a TCP port number")))?,
                    )
                }
                (Driver::Mysql, "mysql_socket") => config.socket = Some(PathBuf::from(v)),
                // The value is not echoed: a misplaced password could be in it.
                (_, other) => {
                    return Err(bad(format!(
                        "unsupported key '{other}' in the {} data source",
                        driver.product()
                    )))
                }
            }
        }
        if config.database.is_empty() {
            return Err(bad("the data source names no database (dbname=...)".into()));
        }
        if config.user.is_empty() {
            return Err(bad(
                "no user after the data source (...|user|password)".into()
            ));
        }
        Ok(Location::Server(config))
    }

    /// A location given on the command line (`catalog copy --from/--to`): a cfgloc
    /// line (`Pg:...`, `mysql:...`, `SQLite:<dir>`, with or without `dbi:`), a file
    /// whose first line is one (a cfgloc file, which keeps the password off the
    /// command line), or an SQLite directory. Paths are taken as given, not under
    /// `--root`.
    pub fn from_arg(arg: &str) -> Result<Location, CatalogError> {
        let path = Path::new(arg);
        if path.is_file() {
            let text = std::fs::read(path).map_err(|source| CatalogError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            let line = text.split(|&b| b == b'\n').next().unwrap_or_default();
            let line = String::from_utf8_lossy(line).trim_end().to_string();
            return Location::parse(&line, &path.display().to_string(), Path::new("/"));
        }
        if path.is_dir() || !arg.contains(':') {
            return Ok(Location::Sqlite(
                std::path::absolute(path).unwrap_or(path.to_path_buf()),
            ));
        }
        Location::parse(arg, "the command line", Path::new("/"))
    }

    /// A one-line description without secrets: the SQLite directory, or the server.
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(dir) => format!("SQLite directory {}", dir.display()),
            Location::Server(s) => s.to_string(),
        }
    }
}

/// `dir` under `root` (a relative one too: xcatd runs from `/`).
fn under(root: &Path, dir: &str) -> PathBuf {
    root.join(dir.trim_start_matches('/'))
}

/// `IMGPORT_DB_TIMEOUT` in seconds (fractions allowed), else [`DEFAULT_TIMEOUT`].
fn timeout_from_env() -> Duration {
    std::env::var("IMGPORT_DB_TIMEOUT")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map_or(DEFAULT_TIMEOUT, Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(line: &str) -> ServerConfig {
        match Location::parse(line, "XCATCFG", Path::new("/r")).unwrap() {
            Location::Server(s) => s,
            other => panic!("not a server: {other:?}"),
        }
    }

    #[test]
    fn parses_xcats_server_lines() {
        let pg = server("Pg:dbname=xcatdb;host=10.0.0.1|xcatadm|secret");
        assert_eq!(pg.driver, Driver::Postgres);
        assert_eq!(pg.database, "xcatdb");
        assert_eq!(pg.host.as_deref(), Some("10.0.0.1"));
        assert_eq!(pg.port, None);
        assert_eq!(pg.user, "xcatadm");
        assert_eq!(pg.password.expose(), "secret");
        assert_eq!(pg.endpoint(), "10.0.0.1:5432");
        let my = server("dbi:mysql:database=xcat;host=db.example;port=3307|xcatadmin|");
        assert_eq!(my.driver, Driver::Mysql);
        assert_eq!(my.database, "xcat");
        assert_eq!(my.port, Some(3307));
        assert_eq!(my.password.expose(), "");
        assert_eq!(my.endpoint(), "db.example:3307");
        let sock = server("mysql:dbname=x;mysql_socket=/tmp/s/my.sock|u|p|ignored");
        assert_eq!(sock.socket_path(), Some(PathBuf::from("/tmp/s/my.sock")));
        assert_eq!(sock.password.expose(), "p");
        let local = server("mysql:dbname=x;host=localhost;mysql_socket=/tmp/a.sock|u|p");
        assert_eq!(local.endpoint(), "socket /tmp/a.sock");
        let pgsock = server("Pg:dbname=x;host=/tmp/pgdir;port=5433|u|p");
        assert_eq!(pgsock.socket_path(), Some(PathBuf::from("/tmp/pgdir")));
        assert!(server("Pg:dbname=x|u|p").socket_path().is_some());
        assert_eq!(
            Location::parse("SQLite:/var/lib/x", "o", Path::new("/r")).unwrap(),
            Location::Sqlite(PathBuf::from("/r/var/lib/x"))
        );
        assert_eq!(
            Location::parse("rel", "o", Path::new("/r")).unwrap(),
            Location::Sqlite(PathBuf::from("/r/rel"))
        );
    }

    #[test]
    fn refusals_name_the_problem_but_never_the_password() {
        let pw = "Pa55-w0rd-xyzzy";
        for line in [
            format!("Pg:host=h|u|{pw}"),
            format!("Pg:dbname=d||{pw}"),
            format!("mysql:dbname=d;port=99999|u|{pw}"),
            format!("mysql:dbname=d;password={pw}|u|{pw}"),
            format!("DB2:xcatdb|xcatdb|{pw}"),
            format!("CSV:/etc/xcat|{pw}"),
            format!("Oracle:x|u|{pw}"),
        ] {
            let err = Location::parse(&line, "/etc/xcat/cfgloc", Path::new("/")).unwrap_err();
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains(pw), "password leaked: {shown}");
            assert!(shown.contains("/etc/xcat/cfgloc"), "{shown}");
        }
        let ok = server(&format!("Pg:dbname=d;host=h|u|{pw}"));
        let shown = format!("{ok} {ok:?}");
        assert!(!shown.contains(pw), "{shown}");
        assert!(shown.contains("'d'") && shown.contains("h:5432") && shown.contains("'u'"));
    }
}

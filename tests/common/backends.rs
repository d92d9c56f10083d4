//! Running the same test bodies on every catalog backend (issue #8).
//!
//! A test thread can route its scratch MNs to a private database server: while
//! [`on_server`] runs its closure, every [`super::Mn::empty`] made on that thread gets a
//! fresh database of its own on that server and an `/etc/xcat/cfgloc` pointing at it,
//! and [`super::Mn::sql`] queries that database. Other threads (the SQLite runs of the
//! same cases) are unaffected. One server serves all the cases of a test, so each test
//! binary pays for one server start per flavor.

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::dbserver::{DbServer, Flavor, DBNAME, DBPASSWORD, DBUSER};

thread_local! {
    static SERVER: RefCell<Option<Rc<DbServer>>> = const { RefCell::new(None) };
}

/// A scratch MN's own database on a private server.
pub struct MnDb {
    pub server: Rc<DbServer>,
    pub name: String,
}

impl MnDb {
    /// The cfgloc line of this database (TCP).
    pub fn cfgloc(&self) -> String {
        self.server.cfgloc().replacen(
            &format!("dbname={DBNAME}"),
            &format!("dbname={}", self.name),
            1,
        )
    }

    /// Runs `sql` as the cfgloc's user and returns the rows, one per line, fields
    /// joined with `|`, NULL as `<NULL>` (the format of `Mn::sql` on SQLite).
    pub fn query(&self, sql: &str) -> String {
        query(self.server.flavor(), self.server.port(), &self.name, sql)
    }
}

/// Routes the current thread's new MNs to `server` (None: back to SQLite).
pub fn set(server: Option<Rc<DbServer>>) {
    SERVER.with(|s| *s.borrow_mut() = server);
}

/// The server the current thread's MNs use, if any.
pub fn current() -> Option<Rc<DbServer>> {
    SERVER.with(|s| s.borrow().clone())
}

/// Creates a fresh database for a new MN on the current thread's server and points
/// `root`'s cfgloc at it; None when the thread runs on SQLite.
pub fn new_mn_db(root: &Path) -> Option<MnDb> {
    let server = current()?;
    let db = create_db(server)?;
    std::fs::create_dir_all(root.join("etc/xcat")).expect("mkdir etc/xcat");
    std::fs::write(root.join("etc/xcat/cfgloc"), format!("{}\n", db.cfgloc())).expect("cfgloc");
    Some(db)
}

/// A fresh, empty database owned by (PostgreSQL) or granted to (MariaDB) the cfgloc user.
pub fn create_db(server: Rc<DbServer>) -> Option<MnDb> {
    static N: AtomicUsize = AtomicUsize::new(0);
    let name = format!(
        "mn{}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let sql = match server.flavor() {
        Flavor::Postgres => format!("CREATE DATABASE {name} OWNER {DBUSER};"),
        Flavor::MariaDb => format!(
            "CREATE DATABASE {name};\n\
             GRANT ALL ON {name}.* TO '{DBUSER}'@'localhost';\n\
             GRANT ALL ON {name}.* TO '{DBUSER}'@'127.0.0.1';"
        ),
    };
    server
        .sql(&sql)
        .unwrap_or_else(|e| panic!("create {name}: {e}"));
    Some(MnDb { server, name })
}

/// Starts a private `flavor` server and runs `f` with this thread's MNs on it. Returns
/// false (after saying so) when the server programs are missing and
/// `IMGPORT_TEST_ALLOW_NO_DB=1` allows skipping; otherwise a missing server fails.
pub fn on_server(flavor: Flavor, f: impl FnOnce(&Rc<DbServer>)) -> bool {
    let Some(server) = DbServer::start_or_skip(flavor).unwrap_or_else(|e| panic!("{e}")) else {
        eprintln!("skipped: no {flavor:?} server programs on this machine");
        return false;
    };
    let server = Rc::new(server);
    set(Some(server.clone()));
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            set(None);
        }
    }
    let _reset = Reset;
    f(&server);
    true
}

/// Runs every `(name, case)` on `flavor`, reporting which case failed.
pub fn run_cases(flavor: Flavor, cases: &[(&str, fn())]) {
    on_server(flavor, |_| {
        for (name, case) in cases {
            eprintln!("--- {name} on {flavor:?}");
            let started = std::time::Instant::now();
            case();
            eprintln!(
                "--- {name} on {flavor:?}: ok in {} ms",
                started.elapsed().as_millis()
            );
        }
    });
}

/// Rows of `sql` in database `db` as the cfgloc user, in `Mn::sql`'s format.
pub fn query(flavor: Flavor, port: u16, db: &str, sql: &str) -> String {
    let mut out = String::new();
    match flavor {
        Flavor::Postgres => {
            let mut c = postgres::Client::connect(
                &format!(
                    "host=127.0.0.1 port={port} user={DBUSER} password={DBPASSWORD} dbname={db}"
                ),
                postgres::NoTls,
            )
            .expect("connect to postgres");
            for msg in c.simple_query(sql).expect("query") {
                if let postgres::SimpleQueryMessage::Row(r) = msg {
                    let fields: Vec<&str> =
                        (0..r.len()).map(|i| r.get(i).unwrap_or("<NULL>")).collect();
                    out.push_str(&fields.join("|"));
                    out.push('\n');
                }
            }
        }
        Flavor::MariaDb => {
            use mysql::prelude::Queryable;
            let opts = mysql::OptsBuilder::new()
                .ip_or_hostname(Some("127.0.0.1"))
                .tcp_port(port)
                .user(Some(DBUSER))
                .pass(Some(DBPASSWORD))
                .db_name(Some(db))
                .prefer_socket(false);
            let mut c = mysql::Conn::new(opts).expect("connect to mariadb");
            let mut result = c.query_iter(sql).expect("query");
            let rows: Vec<mysql::Row> = result.by_ref().map(|r| r.expect("row")).collect();
            for r in rows {
                let fields: Vec<String> = r
                    .unwrap()
                    .into_iter()
                    .map(|v| match v {
                        mysql::Value::NULL => "<NULL>".to_string(),
                        mysql::Value::Bytes(b) => String::from_utf8_lossy(&b).into_owned(),
                        other => other.as_sql(true).trim_matches('\'').to_string(),
                    })
                    .collect();
                out.push_str(&fields.join("|"));
                out.push('\n');
            }
        }
    }
    out
}

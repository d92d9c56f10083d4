//! Private PostgreSQL and MariaDB servers for the catalog tests (issue #8).
//!
//! Every `DbServer` is its own server process on a fresh data directory in its own temp dir,
//! listening on 127.0.0.1 on a free port and on a Unix socket in that temp dir. The packages'
//! system services and clusters are never used: the tests must not depend on (or disturb)
//! whatever runs on the machine. Processes are only ever signalled by the pid recorded here.
//!
//! Initialising a data directory is the slow part (about 1.5 s for `initdb`, 4 s for
//! `mariadb-install-db` on an idle machine), so it happens once per server version: the
//! result, with database `xcatdb` and user `xcatadm` already created, is kept as a template
//! under cargo's `CARGO_TARGET_TMPDIR` and every server starts on a copy of it.
//!
//! Do not keep a `DbServer` in a `static`: statics are never dropped, so the server would
//! outlive the test process.
//!
//! MySQL 8 reserves `groups` (window frames, 8.0.2); MariaDB (10.11 here) does not, and has
//! no `sql_mode` or version switch that reserves it (its modes are about syntax emulation:
//! ORACLE, MSSQL, ANSI_QUOTES...). So the MariaDB instance cannot reproduce MySQL 8's parse
//! error for an unquoted `groups`; the catalog tests cover that case by creating a real
//! column named `groups` (backquoted) and checking every statement quotes its columns.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const DBNAME: &str = "xcatdb";
pub const DBUSER: &str = "xcatadm";
pub const DBPASSWORD: &str = "s3cret-pw";

/// The account PostgreSQL runs as when the tests run as root (it refuses to run as root).
const PG_OS_USER: &str = "imgporttest";
/// Bump when the template's contents change (setup SQL, initdb/install options), so that
/// templates cached in target/tmp by an older harness are not reused.
const TEMPLATE_REV: u32 = 2;
/// How long a server may take to accept connections (a loaded 2-core CI box included).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a graceful shutdown may take before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
const PORT_ATTEMPTS: usize = 5;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Postgres,
    MariaDb,
}

impl Flavor {
    fn name(self) -> &'static str {
        match self {
            Flavor::Postgres => "PostgreSQL",
            Flavor::MariaDb => "MariaDB",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Flavor::Postgres => "pg",
            Flavor::MariaDb => "mariadb",
        }
    }
}

/// Who the client logs in as.
enum Login {
    /// `postgres` / `root` over the socket, in this database (the default one if None).
    Superuser(Option<String>),
    User {
        tcp: bool,
        password: String,
    },
}

/// The server programs of one flavor, found on this machine.
#[derive(Clone, Debug)]
enum Bins {
    Pg {
        bindir: PathBuf,
    },
    Maria {
        server: PathBuf,
        install: PathBuf,
        client: PathBuf,
    },
}

/// A running private server; stopped (by pid) and its temp dir removed on drop.
pub struct DbServer {
    flavor: Flavor,
    bins: Bins,
    /// The OS account the server runs as (uid, gid), when it differs from ours.
    run_as: Option<(u32, u32)>,
    child: Option<Child>,
    pid: u32,
    port: u16,
    /// Holds `data/` (the data directory), the socket, the pid file and `server.log`.
    dir: Option<tempfile::TempDir>,
    socket_dir: PathBuf,
}

impl DbServer {
    /// Starts a private instance: fresh data dir in a temp dir, listening on 127.0.0.1 on a
    /// free port and on a Unix socket in that temp dir, with database `xcatdb` and a
    /// password-authenticated user `xcatadm` / `s3cret-pw` owning it. The error carries the
    /// server's log tail.
    pub fn start(flavor: Flavor) -> Result<DbServer, String> {
        let bins = find_bins(flavor)?.ok_or_else(|| not_installed(flavor))?;
        let run_as = run_as(flavor)?;
        let template = template(flavor, &bins, run_as)?;
        let dir = private_dir(flavor, run_as)?;
        let data = dir.path().join("data");
        run_checked(Command::new("cp").arg("-a").arg(&template).arg(&data))?;
        if let Some((uid, gid)) = run_as {
            run_checked(
                Command::new("chown")
                    .arg("-R")
                    .arg(format!("{uid}:{gid}"))
                    .arg(&data),
            )?;
        }
        launch(flavor, bins, run_as, dir)
    }

    /// Like [`DbServer::start`], but when the server programs are not installed returns
    /// `Ok(None)` if `IMGPORT_TEST_ALLOW_NO_DB=1`, and an error otherwise: CI must not
    /// silently skip the server backends.
    pub fn start_or_skip(flavor: Flavor) -> Result<Option<DbServer>, String> {
        if find_bins(flavor)?.is_none() {
            if std::env::var("IMGPORT_TEST_ALLOW_NO_DB").as_deref() == Ok("1") {
                eprintln!(
                    "SKIPPED: {} is not installed (IMGPORT_TEST_ALLOW_NO_DB=1)",
                    flavor.name()
                );
                return Ok(None);
            }
            return Err(not_installed(flavor));
        }
        DbServer::start(flavor).map(Some)
    }

    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the server's Unix socket (the server's temp dir).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The socket itself: `.s.PGSQL.<port>` for PostgreSQL (libpq derives that name from
    /// the directory and the port), `mysqld.sock` for MariaDB.
    pub fn socket_path(&self) -> PathBuf {
        match self.flavor {
            Flavor::Postgres => self.socket_dir.join(format!(".s.PGSQL.{}", self.port)),
            Flavor::MariaDb => self.socket_dir.join("mysqld.sock"),
        }
    }

    /// The server's pid (the postmaster for PostgreSQL), still reported once it is stopped.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// xCAT cfgloc line over TCP, e.g.
    /// `Pg:dbname=xcatdb;host=127.0.0.1;port=PORT|xcatadm|s3cret-pw`.
    pub fn cfgloc(&self) -> String {
        let driver = match self.flavor {
            Flavor::Postgres => "Pg",
            Flavor::MariaDb => "mysql",
        };
        format!(
            "{driver}:dbname={DBNAME};host=127.0.0.1;port={}|{DBUSER}|{DBPASSWORD}",
            self.port
        )
    }

    /// cfgloc line over the Unix socket, in the forms xCAT's DBI drivers accept:
    /// - Pg: `Pg:dbname=xcatdb;host=<socket dir>;port=PORT|...`. DBD::Pg hands the DSN to
    ///   libpq, which takes a `host` starting with `/` as the directory of the socket and
    ///   needs `port` to name the socket file (`.s.PGSQL.PORT`) in it.
    /// - MySQL: `mysql:dbname=xcatdb;mysql_socket=<socket path>|...`. DBD::mysql's
    ///   `mysql_socket` is the socket file itself; with no `host` the client uses the
    ///   socket rather than TCP.
    pub fn cfgloc_socket(&self) -> String {
        match self.flavor {
            Flavor::Postgres => format!(
                "Pg:dbname={DBNAME};host={};port={}|{DBUSER}|{DBPASSWORD}",
                self.socket_dir.display(),
                self.port
            ),
            Flavor::MariaDb => format!(
                "mysql:dbname={DBNAME};mysql_socket={}|{DBUSER}|{DBPASSWORD}",
                self.socket_path().display()
            ),
        }
    }

    /// Runs SQL (one or more statements) in database `xcatdb` as the server's superuser
    /// (`postgres` / `root`) through the server's own client over the socket; returns
    /// stdout: one row per line, fields separated by a tab, NULL as `NULL`, no headers.
    /// The first failing statement stops the script and makes this an error.
    ///
    /// Tables created here belong to the superuser. `xcatadm` may read and write them on
    /// both servers (PostgreSQL: default privileges granted in the template; MariaDB:
    /// `ALL` on `xcatdb.*`), but on PostgreSQL only the owner may `ALTER` or `DROP` a
    /// table: start the script with `SET ROLE xcatadm;` to create tables as `xcatadm`.
    pub fn sql(&self, sql: &str) -> Result<String, String> {
        self.client(Some(DBNAME), sql)
    }

    /// Kills the server with SIGKILL, as a crash would (for "server dies mid-import"
    /// tests). PostgreSQL's backends are killed too: they would otherwise linger until they
    /// notice that the postmaster is gone. Drop still removes the temp dir.
    pub fn kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Children first recorded, then the postmaster killed before them: killed first,
        // a backend would make the postmaster start crash recovery.
        let children = children_of(self.pid);
        signal(self.pid, rustix::process::Signal::KILL);
        for &pid in &children {
            signal(pid, rustix::process::Signal::KILL);
        }
        let _ = child.wait();
        // The orphans are init's to reap, but SIGKILL is not instant: wait (bounded) until
        // none runs, so that the caller sees a dead server when this returns.
        let deadline = Instant::now() + STOP_TIMEOUT;
        while children.iter().any(|&pid| running(pid)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if self.flavor == Flavor::Postgres {
            remove_sysv_segments_of(self.pid);
        }
    }

    /// Stops the server by its pid and waits (bounded) for it, then SIGKILL. PostgreSQL gets
    /// SIGINT ("fast" shutdown: its SIGTERM is "smart" and waits for every client to
    /// disconnect); MariaDB gets SIGTERM. Drop does this too.
    pub fn stop(&mut self) {
        if let Err(e) = self.stop_gracefully() {
            eprintln!("dbserver: {e}");
        }
    }

    /// Graceful stop; an error when the server had to be killed or exited with a failure.
    fn stop_gracefully(&mut self) -> Result<(), String> {
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        if let Ok(Some(status)) = child.try_wait() {
            self.child = None;
            return Err(format!(
                "{} (pid {}) had already exited ({status})",
                self.flavor.name(),
                self.pid
            ));
        }
        let sig = match self.flavor {
            Flavor::Postgres => rustix::process::Signal::INT,
            Flavor::MariaDb => rustix::process::Signal::TERM,
        };
        signal(self.pid, sig);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.child = None;
                    return if status.success() {
                        Ok(())
                    } else {
                        Err(format!(
                            "{} (pid {}) stopped with {status}: {}",
                            self.flavor.name(),
                            self.pid,
                            self.log_tail()
                        ))
                    };
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break,
            }
        }
        self.kill();
        Err(format!(
            "{} (pid {}) did not stop within {:?}: killed",
            self.flavor.name(),
            self.pid,
            STOP_TIMEOUT
        ))
    }

    fn dir(&self) -> &Path {
        &self.socket_dir
    }

    fn log_tail(&self) -> String {
        tail(&self.dir().join("server.log"), 40)
    }

    /// Runs SQL in `xcatdb` as `xcatadm` with `password` through the server's own client,
    /// over TCP or over the socket: what imgport's connection does, for checking the
    /// cfgloc credentials and that a wrong password is refused. Output as for `sql`.
    pub fn sql_as_xcatadm(&self, tcp: bool, password: &str, sql: &str) -> Result<String, String> {
        self.run_client(
            &Login::User {
                tcp,
                password: password.to_string(),
            },
            sql,
        )
    }

    /// Runs the flavor's client as superuser over the socket, SQL on stdin.
    fn client(&self, db: Option<&str>, sql: &str) -> Result<String, String> {
        self.run_client(&Login::Superuser(db.map(str::to_string)), sql)
    }

    fn run_client(&self, login: &Login, sql: &str) -> Result<String, String> {
        let mut cmd = match &self.bins {
            Bins::Pg { bindir } => {
                let mut c = Command::new(bindir.join("psql"));
                clean_env(&mut c);
                c.env("PGCLIENTENCODING", "UTF8");
                c.args(["-X", "-q", "-A", "-t", "-F", "\t", "-P", "null=NULL"])
                    .args(["-v", "ON_ERROR_STOP=1", "-p"])
                    .arg(self.port.to_string());
                match login {
                    Login::Superuser(db) => {
                        c.args(["-U", "postgres", "-d", db.as_deref().unwrap_or("postgres")])
                            .arg("-h")
                            .arg(&self.socket_dir);
                    }
                    Login::User { tcp, password } => {
                        c.args(["-U", DBUSER, "-d", DBNAME, "-w", "-h"]);
                        if *tcp {
                            c.arg("127.0.0.1");
                        } else {
                            c.arg(&self.socket_dir);
                        }
                        c.env("PGPASSWORD", password);
                    }
                }
                c
            }
            Bins::Maria { client, .. } => {
                let mut c = Command::new(client);
                clean_env(&mut c);
                c.arg("--no-defaults")
                    .args(["--batch", "--skip-column-names", "--raw"])
                    .arg("--default-character-set=utf8mb4");
                match login {
                    Login::Superuser(db) => {
                        c.arg(format!("--socket={}", self.socket_path().display()))
                            .args(["-u", "root"]);
                        if let Some(db) = db {
                            c.arg(format!("--database={db}"));
                        }
                    }
                    Login::User { tcp, password } => {
                        if *tcp {
                            c.args(["--protocol=TCP", "-h", "127.0.0.1"])
                                .arg(format!("--port={}", self.port));
                        } else {
                            c.arg(format!("--socket={}", self.socket_path().display()));
                        }
                        c.args(["-u", DBUSER])
                            .arg(format!("--password={password}"))
                            .arg(format!("--database={DBNAME}"));
                    }
                }
                c
            }
        };
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("{}: {e}", cmd.get_program().to_string_lossy()))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        // Written from another thread: a long script and a long result would otherwise
        // block each other on full pipes.
        let out = std::thread::scope(|s| {
            s.spawn(move || {
                let _ = stdin.write_all(sql.as_bytes());
            });
            child.wait_with_output()
        })
        .map_err(|e| format!("sql client: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{} client failed ({}) on:\n{sql}\n{}",
                self.flavor.name(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }
}

impl Drop for DbServer {
    fn drop(&mut self) {
        self.stop();
        self.dir.take();
    }
}

fn not_installed(flavor: Flavor) -> String {
    let pkg = match flavor {
        Flavor::Postgres => "postgresql (server programs in /usr/lib/postgresql/<version>/bin, or set IMGPORT_TEST_PG_BINDIR)",
        Flavor::MariaDb => "mariadb-server (mariadbd, mariadb-install-db, mariadb)",
    };
    format!(
        "{} server not installed: install {pkg}, or set IMGPORT_TEST_ALLOW_NO_DB=1 to skip its tests",
        flavor.name()
    )
}

/// Finds the flavor's programs; `Ok(None)` when they are not installed.
fn find_bins(flavor: Flavor) -> Result<Option<Bins>, String> {
    match flavor {
        Flavor::Postgres => {
            if let Some(dir) = std::env::var_os("IMGPORT_TEST_PG_BINDIR") {
                let dir = PathBuf::from(dir);
                if !dir.join("postgres").is_file() {
                    return Err(format!(
                        "IMGPORT_TEST_PG_BINDIR={}: no postgres program there",
                        dir.display()
                    ));
                }
                return Ok(Some(Bins::Pg { bindir: dir }));
            }
            // Debian keeps the server programs off PATH, one directory per major version;
            // the newest is the one a fresh install gives.
            let newest = fs::read_dir("/usr/lib/postgresql")
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| {
                    let v: u32 = e.file_name().to_str()?.parse().ok()?;
                    let bin = e.path().join("bin");
                    (bin.join("postgres").is_file() && bin.join("initdb").is_file())
                        .then_some((v, bin))
                })
                .max_by_key(|(v, _)| *v)
                .map(|(_, bin)| bin);
            let bindir = newest.or_else(|| {
                let postgres = which("postgres")?;
                let dir = postgres.parent()?.to_path_buf();
                dir.join("initdb").is_file().then_some(dir)
            });
            Ok(bindir.map(|bindir| Bins::Pg { bindir }))
        }
        Flavor::MariaDb => {
            let server = which("mariadbd").or_else(|| which("mysqld"));
            let install = which("mariadb-install-db").or_else(|| which("mysql_install_db"));
            let client = which("mariadb").or_else(|| which("mysql"));
            Ok(match (server, install, client) {
                (Some(server), Some(install), Some(client)) => Some(Bins::Maria {
                    server,
                    install,
                    client,
                }),
                _ => None,
            })
        }
    }
}

/// A program on PATH or in the sbin directories (not on a non-root PATH, where mariadbd is).
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// (uid, gid) to run the server as: PostgreSQL refuses to run as root, so as root it runs
/// as `imgporttest` (created once, a system account without home or shell). MariaDB runs as
/// root with `--user=root`.
fn run_as(flavor: Flavor) -> Result<Option<(u32, u32)>, String> {
    if flavor != Flavor::Postgres || !rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    static USER: OnceLock<Result<(u32, u32), String>> = OnceLock::new();
    USER.get_or_init(|| {
        if let Some(ids) = user_ids(PG_OS_USER) {
            return Ok(ids);
        }
        let out = Command::new("useradd")
            .args(["--system", "--no-create-home", "--user-group"])
            .args(["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"])
            .arg(PG_OS_USER)
            .output();
        // Another test process may have created it in the meantime: look again either way.
        user_ids(PG_OS_USER).ok_or_else(|| {
            format!(
                "cannot create user {PG_OS_USER} for PostgreSQL (it refuses to run as root): {}",
                match out {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                    Err(e) => format!("useradd: {e}"),
                }
            )
        })
    })
    .clone()
    .map(Some)
}

fn user_ids(user: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").arg(flag).arg(user).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((id("-u")?, id("-g")?))
}

/// A new temp dir for one server, owned by the account it runs as.
///
/// Always under /tmp, whatever TMPDIR says: the unprivileged PostgreSQL account must be
/// able to reach it, and a Unix socket path must fit in 107 bytes.
fn private_dir(flavor: Flavor, run_as: Option<(u32, u32)>) -> Result<tempfile::TempDir, String> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("imgport-{}-", flavor.short()))
        .tempdir_in("/tmp")
        .map_err(|e| format!("temp dir in /tmp: {e}"))?;
    if let Some((uid, gid)) = run_as {
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", dir.path().display()))?;
    }
    Ok(dir)
}

/// The template data dir for this flavor and server version, built on first use.
fn template(flavor: Flavor, bins: &Bins, run_as: Option<(u32, u32)>) -> Result<PathBuf, String> {
    static LOCKS: [Mutex<()>; 2] = [Mutex::new(()), Mutex::new(())];
    let _guard = LOCKS[flavor as usize]
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let version = server_version(bins)?;
    let key: String = format!("{}-{version}-r{TEMPLATE_REV}", flavor.short())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dbserver");
    let done = base.join(&key);
    if done.is_dir() {
        return Ok(done);
    }
    fs::create_dir_all(&base).map_err(|e| format!("mkdir {}: {e}", base.display()))?;

    let dir = private_dir(flavor, run_as)?;
    init_datadir(flavor, bins, run_as, dir.path())?;
    let mut server = launch(flavor, bins.clone(), run_as, dir)?;
    let setup = match flavor {
        Flavor::Postgres => server
            .client(
                None,
                &format!(
                    "CREATE ROLE {DBUSER} LOGIN PASSWORD '{DBPASSWORD}';\n\
                     CREATE DATABASE {DBNAME} OWNER {DBUSER};\n"
                ),
            )
            .and_then(|_| {
                // Default privileges: tables the tests create through sql() (as
                // postgres) stay usable by the account imgport logs in with. The
                // `postgres` database goes: nothing uses it, and its 300 files are a
                // quarter of the copy every start pays for.
                server.client(
                    Some(DBNAME),
                    &format!(
                        "ALTER DEFAULT PRIVILEGES FOR ROLE postgres IN SCHEMA public \
                         GRANT ALL ON TABLES TO {DBUSER};\n\
                         DROP DATABASE postgres;\n"
                    ),
                )
            }),
        Flavor::MariaDb => server.client(
            None,
            &format!(
                // No anonymous accounts, as on a server set up with
                // mysql_secure_installation: `''@localhost` would otherwise answer a
                // login with a misspelt user name instead of refusing it.
                "DELETE FROM mysql.global_priv WHERE User='';\n\
                 CREATE DATABASE {DBNAME};\n\
                 CREATE USER '{DBUSER}'@'localhost' IDENTIFIED BY '{DBPASSWORD}';\n\
                 CREATE USER '{DBUSER}'@'127.0.0.1' IDENTIFIED BY '{DBPASSWORD}';\n\
                 GRANT ALL ON {DBNAME}.* TO '{DBUSER}'@'localhost';\n\
                 GRANT ALL ON {DBNAME}.* TO '{DBUSER}'@'127.0.0.1';\n\
                 FLUSH PRIVILEGES;\n"
            ),
        ),
    };
    if let Err(e) = setup {
        return Err(format!("{e}\n{}", server.log_tail()));
    }
    // Only a cleanly shut down data dir is a sound copy source.
    server.stop_gracefully()?;

    // Published by an atomic rename, so a concurrent test process (or an interrupted
    // one) never sees half a template.
    let partial = tempfile::Builder::new()
        .prefix(&format!(".{key}.partial-"))
        .tempdir_in(&base)
        .map_err(|e| format!("temp dir in {}: {e}", base.display()))?;
    let copy = partial.path().join("data");
    run_checked(
        Command::new("cp")
            .arg("-a")
            .arg(server.dir().join("data"))
            .arg(&copy),
    )?;
    if fs::rename(&copy, &done).is_err() && !done.is_dir() {
        return Err(format!("cannot publish template {}", done.display()));
    }
    Ok(done)
}

fn server_version(bins: &Bins) -> Result<String, String> {
    let program = match bins {
        Bins::Pg { bindir } => bindir.join("postgres"),
        Bins::Maria { server, .. } => server.clone(),
    };
    let out = run_checked(Command::new(&program).arg("--version"))?;
    Ok(out.trim().to_string())
}

/// Options given both when the data dir is created and when the server runs.
fn maria_common_args(datadir: &Path, run_as_root: bool) -> Vec<String> {
    let mut args = vec![
        // Must come first: no /etc/mysql config, whatever the machine has there.
        "--no-defaults".to_string(),
        format!("--datadir={}", datadir.display()),
        "--skip-name-resolve".into(),
        "--character-set-server=utf8mb4".into(),
        "--collation-server=utf8mb4_general_ci".into(),
        "--innodb-buffer-pool-size=32M".into(),
        "--innodb-log-file-size=16M".into(),
        // Docker's default seccomp profile forbids io_uring; plain I/O works everywhere.
        "--innodb-use-native-aio=0".into(),
        "--innodb-doublewrite=0".into(),
        // 2, not 0: committed transactions still reach the OS at commit, so they survive
        // the SIGKILL of kill(); only fsync is deferred.
        "--innodb-flush-log-at-trx-commit=2".into(),
    ];
    if run_as_root {
        args.push("--user=root".into());
    }
    args
}

/// Removes the System V shared memory segments that process `pid` created and nobody
/// holds any more. A PostgreSQL postmaster always makes one (a small interlock, whatever
/// `shared_memory_type` says) and only removes it on a clean shutdown, so each SIGKILLed
/// test server would leave one behind for good. Best effort: a segment that cannot be
/// read or removed is left, as it would be without this.
fn remove_sysv_segments_of(pid: u32) {
    let Ok(table) = std::fs::read_to_string("/proc/sysvipc/shm") else {
        return;
    };
    // Columns: key shmid perms size cpid lpid nattch ...
    for line in table.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (Some(shmid), Some(cpid), Some(nattch)) = (cols.get(1), cols.get(4), cols.get(6))
        else {
            continue;
        };
        if cpid.parse() == Ok(pid) && *nattch == "0" {
            let _ = Command::new("ipcrm").args(["-m", shmid]).output();
        }
    }
}

/// Creates `<dir>/data` with the flavor's own initialiser.
fn init_datadir(
    flavor: Flavor,
    bins: &Bins,
    run_as: Option<(u32, u32)>,
    dir: &Path,
) -> Result<(), String> {
    let data = dir.join("data");
    let log = dir.join("init.log");
    let logf = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut cmd = match bins {
        Bins::Pg { bindir } => {
            let mut c = Command::new(bindir.join("initdb"));
            c.arg("-D")
                .arg(&data)
                .args(["-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync"])
                .args(["--auth-local=trust", "--auth-host=scram-sha-256"]);
            c
        }
        Bins::Maria { install, .. } => {
            let mut c = Command::new(install);
            c.args(maria_common_args(
                &data,
                rustix::process::geteuid().is_root(),
            ))
            // root logs in over the socket without a password, whichever OS user
            // runs the tests; the socket sits in a 0700 temp dir.
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
            c
        }
    };
    clean_env(&mut cmd);
    as_user(&mut cmd, run_as);
    let status = cmd
        .stdout(logf.try_clone().map_err(|e| e.to_string())?)
        .stderr(logf)
        .status()
        .map_err(|e| format!("{}: {e}", cmd.get_program().to_string_lossy()))?;
    if !status.success() {
        return Err(format!(
            "{} failed ({status}):\n{}",
            cmd.get_program().to_string_lossy(),
            tail(&log, 40)
        ));
    }
    if flavor == Flavor::Postgres {
        // The superuser (the harness's sql()) gets in over the socket without a password;
        // every other account needs its password over the socket and over TCP, like on a
        // real xCAT server, so that a wrong password is a real failure in the tests.
        let hba = data.join("pg_hba.conf");
        fs::write(
            &hba,
            "local all postgres trust\n\
             local all all scram-sha-256\n\
             host all all 127.0.0.1/32 scram-sha-256\n",
        )
        .map_err(|e| format!("{}: {e}", hba.display()))?;
    }
    Ok(())
}

/// Starts the server on `<dir>/data`, retrying with another port when the free port found
/// was taken before the server could bind it.
fn launch(
    flavor: Flavor,
    bins: Bins,
    run_as: Option<(u32, u32)>,
    dir: tempfile::TempDir,
) -> Result<DbServer, String> {
    let socket_dir = dir.path().to_path_buf();
    let mut server = DbServer {
        flavor,
        bins,
        run_as,
        child: None,
        pid: 0,
        port: 0,
        dir: Some(dir),
        socket_dir,
    };
    let mut last = String::new();
    for _ in 0..PORT_ATTEMPTS {
        server.port = free_port()?;
        match server.spawn_and_wait() {
            Ok(()) => return Ok(server),
            Err((retry, e)) => {
                last = e;
                if !retry {
                    break;
                }
            }
        }
    }
    Err(last)
}

impl DbServer {
    /// One start attempt; the error says whether another port is worth a try.
    fn spawn_and_wait(&mut self) -> Result<(), (bool, String)> {
        let dir = self.dir().to_path_buf();
        let log = dir.join("server.log");
        let logf = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| (false, format!("{}: {e}", log.display())))?;
        let mut cmd = match &self.bins {
            Bins::Pg { bindir } => {
                let mut c = Command::new(bindir.join("postgres"));
                c.arg("-D").arg(dir.join("data"));
                for setting in [
                    "listen_addresses=127.0.0.1".to_string(),
                    format!("port={}", self.port),
                    format!("unix_socket_directories={}", dir.display()),
                    // Speed only: WAL is still written at commit, so a killed server
                    // keeps what it committed.
                    "fsync=off".into(),
                    "full_page_writes=off".into(),
                    "shared_buffers=16MB".into(),
                    "max_connections=50".into(),
                    // Dynamic shared memory as files in the data directory, not in
                    // /dev/shm: a server that kill() SIGKILLs cannot remove its segments,
                    // and in the data directory they go with the temp dir on drop.
                    "dynamic_shared_memory_type=mmap".into(),
                ] {
                    c.arg("-c").arg(setting);
                }
                c
            }
            Bins::Maria { server, .. } => {
                let mut c = Command::new(server);
                c.args(maria_common_args(
                    &dir.join("data"),
                    rustix::process::geteuid().is_root(),
                ))
                .arg(format!("--socket={}", self.socket_path().display()))
                .arg(format!("--port={}", self.port))
                .arg("--bind-address=127.0.0.1")
                .arg(format!("--pid-file={}", dir.join("mariadbd.pid").display()))
                .arg(format!("--log-error={}", log.display()))
                .arg(format!("--tmpdir={}", dir.display()));
                c
            }
        };
        clean_env(&mut cmd);
        as_user(&mut cmd, self.run_as);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(logf.try_clone().map_err(|e| (false, e.to_string()))?)
            .stderr(logf)
            .spawn()
            .map_err(|e| {
                (
                    false,
                    format!("{}: {e}", cmd.get_program().to_string_lossy()),
                )
            })?;
        self.pid = child.id();
        self.child = Some(child);

        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                let log = self.log_tail();
                let retry = log.contains("Address already in use");
                return Err((
                    retry,
                    format!(
                        "{} exited during startup ({status}) on port {}:\n{log}",
                        self.flavor.name(),
                        self.port
                    ),
                ));
            }
            if self.accepts_connections() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = self.log_tail();
                self.kill();
                return Err((
                    false,
                    format!(
                        "{} did not accept connections within {READY_TIMEOUT:?}:\n{log}",
                        self.flavor.name()
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the server answers on its socket. The socket is created after the TCP
    /// listener, and the socket dir is ours alone, so this cannot be another server.
    fn accepts_connections(&self) -> bool {
        match &self.bins {
            Bins::Pg { bindir } => {
                let mut c = Command::new(bindir.join("pg_isready"));
                c.arg("-q")
                    .arg("-h")
                    .arg(&self.socket_dir)
                    .arg("-p")
                    .arg(self.port.to_string())
                    // template1 always exists; a missing database would still count as
                    // an answer, but would log a FATAL line at each poll.
                    .args(["-U", "postgres", "-d", "template1", "-t", "2"]);
                clean_env(&mut c);
                c.stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            }
            Bins::Maria { .. } => {
                self.socket_path().exists() && self.client(None, "SELECT 1").is_ok()
            }
        }
    }
}

/// A port nobody listens on right now (the OS picks it; released before the server binds).
fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("local_addr: {e}"))
}

/// Keeps the caller's PG*/MYSQL_* variables (PGHOST, MYSQL_PWD...) away from the servers
/// and clients: they would redirect or change what the harness set explicitly.
fn clean_env(cmd: &mut Command) {
    cmd.env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("LC_ALL", "C")
        .env("HOME", "/nonexistent");
}

fn as_user(cmd: &mut Command, run_as: Option<(u32, u32)>) {
    if let Some((uid, gid)) = run_as {
        // std drops the supplementary groups as well when it switches uid.
        cmd.uid(uid).gid(gid);
    }
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

/// Whether `pid` exists and is not a zombie (a killed orphan waiting for init to reap it).
fn running(pid: u32) -> bool {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    stat.rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next())
        .is_some_and(|state| state != "Z")
}

/// Pids whose parent is `pid`, read from /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let child: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(e.path().join("stat")).ok()?;
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
            let rest = &stat[stat.rfind(')')? + 1..];
            let ppid: u32 = rest.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}

/// Runs a helper program, returning its stdout or an error with its stderr.
fn run_checked(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{}: {e}", cmd.get_program().to_string_lossy()))?;
    if !out.status.success() {
        return Err(format!(
            "{:?} failed ({}): {}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    format!(
        "--- {} (last {lines} lines)\n{}",
        path.display(),
        all[all.len().saturating_sub(lines)..].join("\n")
    )
}

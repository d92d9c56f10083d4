//! The private database servers of `common::dbserver` (issue #8): they start, take the
//! cfgloc credentials over TCP and over the socket, refuse a wrong password, run side by
//! side, and leave no process and no directory behind.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;
use std::time::Instant;

use common::dbserver::{DbServer, Flavor, DBNAME, DBPASSWORD, DBUSER};

const FLAVORS: [Flavor; 2] = [Flavor::Postgres, Flavor::MariaDb];

/// Starts a server, printing how long it took (the CI budget depends on it).
fn start(flavor: Flavor) -> Option<DbServer> {
    let t = Instant::now();
    let server = DbServer::start_or_skip(flavor).unwrap_or_else(|e| panic!("{e}"))?;
    eprintln!(
        "dbserver: {flavor:?} started in {} ms (port {}, pid {})",
        t.elapsed().as_millis(),
        server.port(),
        server.pid()
    );
    Some(server)
}

/// A process that exists and is not a zombie waiting for someone else to reap it.
fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat[stat.rfind(')').expect("stat format") + 1..]
        .split_whitespace()
        .next()
        .unwrap_or("");
    state != "Z"
}

fn children(pid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter_map(|e| {
            let child: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let ppid: u32 = stat[stat.rfind(')')? + 1..]
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}

/// The `key=value` pairs of a cfgloc's DSN, after checking its driver, user and password.
fn parse_cfgloc(line: &str, driver: &str) -> HashMap<String, String> {
    let parts: Vec<&str> = line.split('|').collect();
    assert_eq!(parts.len(), 3, "{line}");
    assert_eq!(parts[1], DBUSER, "{line}");
    assert_eq!(parts[2], DBPASSWORD, "{line}");
    let dsn = parts[0]
        .strip_prefix(&format!("{driver}:"))
        .unwrap_or_else(|| panic!("{line}: driver is not {driver}"));
    dsn.split(';')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("{line}: {kv}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

#[test]
fn each_server_answers_sql_and_takes_the_cfgloc_credentials() {
    for flavor in FLAVORS {
        let Some(server) = start(flavor) else {
            continue;
        };
        assert_eq!(server.sql("select 1").unwrap(), "1\n");
        assert_eq!(
            server
                .sql("select 'a', NULL, 2 union all select 'b', 'c', 3")
                .unwrap(),
            "a\tNULL\t2\nb\tc\t3\n"
        );
        // A failing statement stops the script and is reported.
        let err = server
            .sql("select 1; select * from no_such_table; select 2")
            .unwrap_err();
        assert!(err.contains("no_such_table"), "{err}");

        let port = server.port().to_string();
        let driver = match flavor {
            Flavor::Postgres => "Pg",
            Flavor::MariaDb => "mysql",
        };
        let tcp = parse_cfgloc(&server.cfgloc(), driver);
        assert_eq!(tcp["dbname"], DBNAME);
        assert_eq!(tcp["host"], "127.0.0.1");
        assert_eq!(tcp["port"], port);
        assert_eq!(tcp.len(), 3, "{}", server.cfgloc());

        let sock = parse_cfgloc(&server.cfgloc_socket(), driver);
        assert_eq!(sock["dbname"], DBNAME);
        let socket = match flavor {
            Flavor::Postgres => {
                assert_eq!(sock.len(), 3, "{}", server.cfgloc_socket());
                assert_eq!(PathBuf::from(&sock["host"]), server.socket_dir());
                assert_eq!(sock["port"], port);
                server.socket_dir().join(format!(".s.PGSQL.{port}"))
            }
            Flavor::MariaDb => {
                assert_eq!(sock.len(), 2, "{}", server.cfgloc_socket());
                assert!(!sock.contains_key("host"));
                PathBuf::from(&sock["mysql_socket"])
            }
        };
        assert!(socket.starts_with(server.socket_dir()), "{socket:?}");
        let ft = std::fs::metadata(&socket)
            .unwrap_or_else(|e| panic!("{socket:?}: {e}"))
            .file_type();
        assert!(ft.is_socket(), "{socket:?}");

        // The cfgloc's account really logs in, both ways, and only with its password.
        for over_tcp in [true, false] {
            let who = server
                .sql_as_xcatadm(over_tcp, DBPASSWORD, "select current_user")
                .unwrap_or_else(|e| panic!("{flavor:?} tcp={over_tcp}: {e}"));
            assert!(who.starts_with(DBUSER), "{who}");
            let refused = server.sql_as_xcatadm(over_tcp, "wrong-pw", "select 1");
            assert!(refused.is_err(), "{flavor:?} tcp={over_tcp}: {refused:?}");
        }

        // xcatadm may create tables, and use the ones the tests create as superuser.
        server
            .sql_as_xcatadm(
                true,
                DBPASSWORD,
                "create table mine (k varchar(128) not null, primary key (k))",
            )
            .unwrap();
        server.sql("create table theirs (k text)").unwrap();
        server
            .sql_as_xcatadm(true, DBPASSWORD, "insert into theirs values ('x')")
            .unwrap();
        assert_eq!(server.sql("select count(*) from theirs").unwrap(), "1\n");
    }
}

#[test]
fn drop_stops_the_server_and_removes_its_directory() {
    for flavor in FLAVORS {
        let Some(server) = start(flavor) else {
            continue;
        };
        let pid = server.pid();
        let dir = server.socket_dir().to_path_buf();
        let kids = children(pid);
        if flavor == Flavor::Postgres {
            assert!(!kids.is_empty(), "postgres runs helper processes");
        }
        assert!(alive(pid));
        let t = Instant::now();
        drop(server);
        eprintln!(
            "dbserver: {flavor:?} stopped in {} ms",
            t.elapsed().as_millis()
        );
        assert!(!alive(pid), "{flavor:?} pid {pid} still running");
        for k in kids {
            assert!(!alive(k), "{flavor:?} child {k} still running");
        }
        assert!(!dir.exists(), "{dir:?} left behind");
    }
}

#[test]
fn kill_takes_the_server_down_at_once() {
    for flavor in FLAVORS {
        let Some(mut server) = start(flavor) else {
            continue;
        };
        let pid = server.pid();
        let dir = server.socket_dir().to_path_buf();
        let kids = children(pid);
        server.kill();
        assert!(!alive(pid), "{flavor:?} pid {pid} survived SIGKILL");
        for k in kids {
            assert!(!alive(k), "{flavor:?} child {k} survived");
        }
        assert!(server.sql("select 1").is_err());
        assert!(dir.exists(), "kill() keeps the directory until drop");
        drop(server);
        assert!(!dir.exists(), "{dir:?} left behind");
    }
}

#[test]
fn two_servers_of_each_flavor_run_at_once() {
    for flavor in FLAVORS {
        let (a, b) = std::thread::scope(|s| {
            let a = s.spawn(|| start(flavor));
            let b = s.spawn(|| start(flavor));
            (a.join().unwrap(), b.join().unwrap())
        });
        let (Some(a), Some(b)) = (a, b) else {
            continue;
        };
        assert_ne!(a.port(), b.port());
        assert_ne!(a.pid(), b.pid());
        assert_ne!(a.socket_dir(), b.socket_dir());
        a.sql("create table only_in_a (k text)").unwrap();
        assert_eq!(
            a.sql("select count(*) from only_in_a").unwrap(),
            "0\n",
            "{flavor:?}"
        );
        assert!(b.sql("select count(*) from only_in_a").is_err());
        assert!(alive(a.pid()) && alive(b.pid()));
    }
}

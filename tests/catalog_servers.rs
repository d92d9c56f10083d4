//! The catalog on PostgreSQL and MariaDB (issue #8), against private real servers:
//! cross-backend bundles and tabdump bytes, upgraded tables, `groups`, secrets, failures
//! of the connection, a server dying mid-import, concurrent imports, `catalog copy`,
//! and the time one import's catalog writes take.
//!
//! Each test starts the servers it needs (from a template data dir, about a second) and
//! gives every scratch MN a database of its own (`common::backends`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::backends::{self, MnDb};
use common::dbserver::{DbServer, Flavor, DBPASSWORD};
use common::*;

use imgport::catalog::{Catalog, Location, Upsert};
use serde_json::Value;

const FLAVORS: [Flavor; 2] = [Flavor::Postgres, Flavor::MariaDb];

/// A private server, or None when allowed to skip (see `DbServer::start_or_skip`).
fn server(flavor: Flavor) -> Option<Rc<DbServer>> {
    DbServer::start_or_skip(flavor)
        .unwrap_or_else(|e| panic!("{e}"))
        .map(Rc::new)
}

/// An empty MN whose catalog is a fresh database on `server` (SQLite when None).
fn mn_on(server: Option<&Rc<DbServer>>) -> Mn {
    backends::set(server.cloned());
    let mn = Mn::empty();
    backends::set(None);
    mn
}

/// The sample MN of `scripts/sample-mn.sh` with its catalog on `server`.
fn sample_on(server: Option<&Rc<DbServer>>) -> Mn {
    backends::set(server.cloned());
    let mn = Mn::sample();
    backends::set(None);
    mn
}

/// The sample MN (on SQLite) exported into a fresh directory: the bundle most server
/// tests import. The directory is returned to keep the bundle alive.
fn sample_bundle() -> (tempfile::TempDir, PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&sample_on(None), work.path(), &[]);
    (work, bundle)
}

/// An empty MN on `server` with the site row an import needs (`installdir`).
fn mn_with_site(server: &Rc<DbServer>) -> Mn {
    let mn = mn_on(Some(server));
    mn.tabrestore("site", "#key,value\n\"installdir\",\"/install\"\n", false);
    mn
}

fn db(mn: &Mn) -> &MnDb {
    mn.db.as_ref().expect("an MN on a server")
}

/// `manifest.xml` of a bundle, through python's tarfile.
fn manifest_of(bundle: &Path) -> String {
    python(
        "import tarfile,sys\nt=tarfile.open(sys.argv[1])\nm=[x for x in t.getmembers() if x.name.endswith('/manifest.xml')][0]\nsys.stdout.write(t.extractfile(m).read().decode())",
        &[bundle.to_str().expect("utf8")],
    )
}

fn ok(out: &std::process::Output) -> String {
    assert!(out.status.success(), "{}", text(out));
    stdout(out)
}

/// Every path under the MN root with its size (directories as 0), for "untouched".
fn snapshot(root: &Path) -> BTreeMap<PathBuf, u64> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let p = e.path();
            let md = std::fs::symlink_metadata(&p).expect("stat");
            if md.is_dir() {
                stack.push(p.clone());
            }
            out.insert(p, if md.is_dir() { 0 } else { md.len() });
        }
    }
    out
}

const TABLES: [&str; 5] = [
    "osimage",
    "linuximage",
    "litefile",
    "postscripts",
    "nodelist",
];

#[test]
fn bundles_and_tabdump_bytes_are_identical_across_the_three_backends() {
    let (Some(pg), Some(my)) = (server(Flavor::Postgres), server(Flavor::MariaDb)) else {
        return;
    };
    // Export from an SQLite MN, import into a PostgreSQL MN and a MariaDB MN, export
    // both again: the manifests must be byte-identical.
    let (_work, bundle) = sample_bundle();
    let original = manifest_of(&bundle);
    for server in [&pg, &my] {
        let target = mn_on(Some(server));
        ok(&target.run(&["import", bundle.to_str().unwrap()]));
        let again = tempfile::tempdir().unwrap();
        let rebundle = export_sample(&target, again.path(), &[]);
        assert_eq!(manifest_of(&rebundle), original, "{:?}", server.flavor());
    }

    // The same rows (in key order, so every server's SELECT * order agrees) give the
    // same tabdump bytes everywhere: quotes, commas, newlines, non-ASCII, NULLs,
    // disabled rows.
    let csv = "#node,postscripts,postbootscripts,comments,disable\n\
        \"all\",\"syslog,remoteshell\",,\"a \"\"quoted\"\" word\",\n\
        \"cn01\",\"x\",\"y\",\"line1\nline2\",\"1\"\n\
        \"compute\",\"confignetwork\",\"ü€ unicode\",,\"no\"\n";
    let mut dumps = Vec::new();
    for server in [None, Some(&pg), Some(&my)] {
        let mn = mn_on(server);
        mn.tabrestore("postscripts", csv, false);
        let mut all = String::new();
        for t in TABLES {
            all.push_str(&ok(&mn.run(&["tabdump", t])));
        }
        dumps.push(all);
    }
    assert!(
        dumps[0].contains("\"line1\nline2\",\"1\"\n"),
        "{}",
        dumps[0]
    );
    assert_eq!(dumps[1], dumps[0], "PostgreSQL tabdump differs");
    assert_eq!(dumps[2], dumps[0], "MariaDB tabdump differs");
}

#[test]
fn upgraded_tables_with_other_column_order_and_extra_columns_work() {
    for flavor in FLAVORS {
        let Some(server) = server(flavor) else {
            return;
        };
        let mn = sample_on(Some(&server));
        let db = db(&mn);
        let before = ok(&mn.run(&["tabdump", "osimage"]));
        let work = tempfile::tempdir().unwrap();
        let manifest = manifest_of(&export_sample(&mn, work.path(), &[]));
        // A newer xCAT's table: columns in another physical order, an extra INTEGER
        // column, and two schema columns missing (an older one).
        let q = |c: &str| match flavor {
            Flavor::Postgres => format!("\"{c}\""),
            Flavor::MariaDb => format!("`{c}`"),
        };
        let keep = [
            "osarch",
            "osvers",
            "comments",
            "provmethod",
            "imagename",
            "disable",
            "groups",
            "profile",
            "imagetype",
            "description",
            "rootfstype",
            "osdistroname",
            "osupdatename",
            "cfmdir",
            "osname",
            "synclists",
            "postscripts",
            "postbootscripts",
            "serverrole",
            "isdeletable",
        ];
        let cols: Vec<String> = keep
            .iter()
            .map(|c| {
                let ty = if *c == "imagename" {
                    "VARCHAR(128) NOT NULL"
                } else {
                    "TEXT"
                };
                format!("{} {ty}", q(c))
            })
            .collect();
        let list = keep.iter().map(|c| q(c)).collect::<Vec<_>>().join(", ");
        db.query("ALTER TABLE osimage RENAME TO osimage_old");
        db.query(&format!(
            "CREATE TABLE osimage ({}, {} INTEGER DEFAULT 7, PRIMARY KEY ({}))",
            cols.join(", "),
            q("newerxcat"),
            q("imagename")
        ));
        db.query(&format!(
            "INSERT INTO osimage ({list}) SELECT {list} FROM osimage_old"
        ));
        db.query("DROP TABLE osimage_old");
        assert_eq!(ok(&mn.run(&["tabdump", "osimage"])), before, "{flavor:?}");
        let work = tempfile::tempdir().unwrap();
        let bundle = export_sample(&mn, work.path(), &[]);
        assert_eq!(manifest_of(&bundle), manifest, "{flavor:?}");
        // Importing over it updates by name, adds the missing columns as xCAT's schema
        // update would, and leaves the extra column alone.
        ok(&mn.run(&["import", bundle.to_str().unwrap(), "-f", "renamed"]));
        let cols = mn
            .sql(
                "osimage",
                &format!(
                    "select column_name from information_schema.columns where table_schema = {} \
                 and table_name = 'osimage' order by ordinal_position",
                    match flavor {
                        Flavor::Postgres => "current_schema()",
                        Flavor::MariaDb => "database()",
                    }
                ),
            )
            .to_lowercase();
        let cols: Vec<&str> = cols.lines().collect();
        assert_eq!(&cols[..2], ["osarch", "osvers"], "{flavor:?}");
        assert!(cols.ends_with(&["kitcomponents", "environvar"]), "{cols:?}");
        assert_eq!(
            mn.sql(
                "osimage",
                &format!(
                    "select {}, {} from osimage order by {}",
                    q("imagename"),
                    q("newerxcat"),
                    q("imagename")
                )
            ),
            format!("{IMG}|7\n{}|7\n", IMG.replace("compute", "renamed")),
            "{flavor:?}"
        );
        assert_eq!(
            mn.sql("osimage", "select profile from osimage order by profile"),
            "compute\nrenamed\n"
        );
    }
}

#[test]
fn groups_columns_are_quoted_on_mariadb() {
    // MariaDB does not reserve `groups` (MySQL 8 does; see common::dbserver): the check
    // is that nodelist.groups and osimage.groups round-trip and drive group lookups,
    // with every statement quoting them (ddl unit tests pin the DDL text).
    let Some(my) = server(Flavor::MariaDb) else {
        return;
    };
    let mn = sample_on(Some(&my));
    mn.tabrestore(
        "osimage",
        &format!("#imagename,groups,profile,provmethod,osvers,osarch\n\"{IMG}\",\"grp1,grp2\",\"compute\",\"statelite\",\"rhels8.5.0\",\"x86_64\"\n"),
        false,
    );
    assert_eq!(
        mn.sql("osimage", "select `groups` from osimage"),
        "grp1,grp2\n"
    );
    // -p resolves postscripts through nodelist.groups (compute), on the server.
    let work = tempfile::tempdir().unwrap();
    let bundle = export_sample(&mn, work.path(), &["-p", "cn01"]);
    let manifest = manifest_of(&bundle);
    assert!(
        manifest.contains("<groups>grp1,grp2</groups>"),
        "{manifest}"
    );
    assert!(manifest.contains("confignetwork"), "{manifest}");
}

#[test]
fn the_password_is_never_shown() {
    let Some(pg) = server(Flavor::Postgres) else {
        return;
    };
    let Some(my) = server(Flavor::MariaDb) else {
        return;
    };
    let (work, bundle) = sample_bundle();
    let bundle = bundle.to_str().unwrap();
    for server in [&pg, &my] {
        let mn = mn_on(Some(server));
        let good = db(&mn).cfgloc();
        let wrong_pw = "Wr0ng-pw-for-the-test";
        // Successes, verbose and JSON.
        let mut outputs = vec![
            mn.run(&["--json", "import", bundle]),
            mn.run(&["import", "-v", bundle, "-f", "second"]),
            mn.run(&["--json", "export", IMG, "-o", work.path().to_str().unwrap()]),
            mn.run(&[
                "--json",
                "catalog",
                "copy",
                "--to",
                work.path().join("copy").to_str().unwrap(),
                "--dry-run",
            ]),
        ];
        // Failures: wrong password, unknown database, nothing listening.
        let bad = [
            good.replace(DBPASSWORD, wrong_pw),
            good.replacen("dbname=", "dbname=nosuchdb", 1),
            good.replace(&format!("port={}", server.port()), "port=1"),
        ];
        for line in &bad {
            std::fs::write(mn.path("/etc/xcat/cfgloc"), format!("{line}\n")).unwrap();
            let out = mn.run(&["--json", "import", bundle]);
            assert!(!out.status.success(), "{}", text(&out));
            let err = stderr(&out);
            assert!(err.contains("cannot connect to"), "{err}");
            assert!(err.contains("as user 'xcatadm'"), "{err}");
            assert!(
                err.contains(&db(&mn).name) || err.contains("nosuchdb"),
                "{err}"
            );
            outputs.push(out);
            outputs.push(mn.run(&["tabdump", "osimage"]));
            outputs.push(mn.run(&[
                "--json",
                "catalog",
                "copy",
                "--from",
                line,
                "--to",
                "/nonexistent-dir-x",
            ]));
        }
        for out in &outputs {
            let all = format!("{}{}", stdout(out), stderr(out));
            assert!(!all.contains(DBPASSWORD), "password shown: {all}");
            assert!(!all.contains(wrong_pw), "password shown: {all}");
        }
        // Library side: Debug of the catalog and of every error.
        for line in [good.as_str(), bad[0].as_str(), bad[1].as_str()] {
            let cat = Catalog::at(Location::parse(line, "test", Path::new("/")).unwrap());
            let dbg = format!("{cat:?}");
            let err = cat.select("osimage", &[]).err();
            let shown = format!(
                "{dbg} {err:?} {}",
                err.as_ref().map(|e| e.to_string()).unwrap_or_default()
            );
            assert!(
                !shown.contains(DBPASSWORD) && !shown.contains(wrong_pw),
                "{shown}"
            );
        }
    }
}

#[test]
fn connection_failures_are_bounded_and_leave_the_mn_untouched() {
    let Some(pg) = server(Flavor::Postgres) else {
        return;
    };
    let (_work, bundle) = sample_bundle();
    // A peer that accepts and never answers: only the timeout ends the wait.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent = listener.local_addr().unwrap().port();
    let mn = mn_on(Some(&pg));
    let good = db(&mn).cfgloc();
    for (line, timeout, want) in [
        (
            good.replace(&format!("port={}", pg.port()), &format!("port={silent}")),
            "1",
            "no answer within 1 s",
        ),
        (
            good.replace(DBPASSWORD, "nope"),
            "10",
            "password authentication failed",
        ),
        (
            good.replacen("dbname=", "dbname=nosuchdb", 1),
            "10",
            "does not exist",
        ),
    ] {
        std::fs::write(mn.path("/etc/xcat/cfgloc"), format!("{line}\n")).unwrap();
        let before = snapshot(mn.root());
        let started = Instant::now();
        let out = Command::new(bin())
            .args([
                "--root",
                mn.root().to_str().unwrap(),
                "import",
                bundle.to_str().unwrap(),
            ])
            .env("IMGPORT_DB_TIMEOUT", timeout)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let took = started.elapsed();
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(stderr(&out).contains(want), "want {want}: {}", text(&out));
        assert!(took < Duration::from_secs(8), "took {took:?}");
        assert_eq!(snapshot(mn.root()), before, "the MN changed");
    }
    drop(listener);
}

/// Waits until `sql` (run on `db`) prints something, or panics after 60 s.
fn wait_for(db: &MnDb, sql: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = db.query(sql);
        if !out.trim().is_empty() {
            return out;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {sql}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts an import of `bundle` into `mn` while another session holds imgport's write
/// lock, so the import stops with its files in place and its rows not yet written.
/// Returns the running import and the session holding the lock (keep it alive).
fn import_blocked_at_the_lock(mn: &Mn, bundle: &Path) -> (std::process::Child, LockHolder) {
    let db = db(mn);
    let holder = LockHolder::take(db);
    let child = Command::new(bin())
        .args([
            "--root",
            mn.root().to_str().unwrap(),
            "import",
            bundle.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let waiting = match db.server.flavor() {
        Flavor::Postgres => "select pid from pg_stat_activity where application_name = 'imgport' and wait_event_type = 'Lock'",
        Flavor::MariaDb => "select id from information_schema.processlist where info like 'SELECT GET_LOCK%'",
    };
    wait_for(db, waiting);
    (child, holder)
}

/// A separate session holding imgport's write lock or a table.
enum LockHolder {
    Pg(Box<postgres::Client>),
    My(mysql::Conn),
}

impl LockHolder {
    fn take(db: &MnDb) -> LockHolder {
        let mut holder = LockHolder::connect(db);
        match &mut holder {
            // imgport's key ("imgport1"), session-level here.
            LockHolder::Pg(c) => c
                .batch_execute("SELECT pg_advisory_lock(7596841879047664689)")
                .unwrap(),
            LockHolder::My(c) => {
                use mysql::prelude::Queryable;
                c.query_drop("DO GET_LOCK('imgport.catalog.write', 10)")
                    .unwrap()
            }
        }
        holder
    }

    fn connect(db: &MnDb) -> LockHolder {
        let port = db.server.port();
        match db.server.flavor() {
            Flavor::Postgres => {
                let c = postgres::Client::connect(
                    &format!(
                        "host=127.0.0.1 port={port} user=xcatadm password={DBPASSWORD} dbname={}",
                        db.name
                    ),
                    postgres::NoTls,
                )
                .unwrap();
                LockHolder::Pg(Box::new(c))
            }
            Flavor::MariaDb => {
                let c = mysql::Conn::new(
                    mysql::OptsBuilder::new()
                        .ip_or_hostname(Some("127.0.0.1"))
                        .tcp_port(port)
                        .user(Some("xcatadm"))
                        .pass(Some(DBPASSWORD))
                        .db_name(Some(db.name.clone()))
                        .prefer_socket(false),
                )
                .unwrap();
                LockHolder::My(c)
            }
        }
    }
}

#[test]
fn an_import_whose_connection_dies_leaves_the_mn_as_before() {
    let (_work, bundle) = sample_bundle();
    for flavor in FLAVORS {
        let Some(server) = server(flavor) else {
            return;
        };
        // 1. The server kills the import's session mid-import (files placed, rows not
        //    committed): files rolled back, no rows, the server still there to ask.
        let mn = mn_with_site(&server);
        let before = snapshot(mn.root());
        let (child, holder) = import_blocked_at_the_lock(&mn, &bundle);
        assert!(
            mn.path(&format!("{ROOTIMGDIR}/rootimg/etc/passwd"))
                .exists(),
            "the files should be in place while the rows wait"
        );
        let db = db(&mn);
        match flavor {
            Flavor::Postgres => {
                db.query("select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'imgport'");
            }
            Flavor::MariaDb => {
                let id = wait_for(db, "select id from information_schema.processlist where info like 'SELECT GET_LOCK%'");
                db.query(&format!("KILL {}", id.trim()));
            }
        }
        let out = child.wait_with_output().unwrap();
        drop(holder);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert_eq!(
            snapshot(mn.root()),
            before,
            "{flavor:?}: files not rolled back"
        );
        // No rows (on PostgreSQL not even the tables: their DDL was in the
        // transaction too).
        for t in ["osimage", "linuximage", "litefile"] {
            let dump = ok(&mn.run(&["tabdump", t]));
            assert_eq!(dump.lines().count(), 1, "{flavor:?} {t}: {dump}");
        }

        // 2. The whole server is SIGKILLed mid-import: the files are rolled back the
        //    same way (nothing committed, by construction: the rows were waiting).
        drop(mn);
        let mut server = server;
        let mut mn = mn_with_site(&server);
        let before = snapshot(mn.root());
        let (child, holder) = import_blocked_at_the_lock(&mn, &bundle);
        mn.db.take();
        Rc::get_mut(&mut server).expect("sole owner").kill();
        let out = child.wait_with_output().unwrap();
        drop(holder);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(stderr(&out).contains("xcatadm"), "{}", text(&out));
        assert_eq!(
            snapshot(mn.root()),
            before,
            "{flavor:?}: files not rolled back"
        );
    }
}

#[test]
fn concurrent_imports_into_one_database_each_land_whole() {
    let (_work, bundle) = sample_bundle();
    for flavor in FLAVORS {
        let Some(server) = server(flavor) else {
            return;
        };
        // Four MNs (think: service nodes) sharing one catalog database import the same
        // image at once: without the lock two would both see "no row" and one would
        // fail on the duplicate key.
        let first = mn_with_site(&server);
        let cfgloc = db(&first).cfgloc();
        // A dry run on the server plans the rows and writes none.
        let dry = ok(&first.run(&["--json", "import", "--dry-run", bundle.to_str().unwrap()]));
        let doc: Value = serde_json::from_str(&dry).unwrap();
        let rows = doc["bundles"][0]["images"][0]["dry_run"]["rows"]
            .as_array()
            .unwrap()
            .len();
        assert!(rows >= 4, "{flavor:?}: {dry}");
        for t in ["osimage", "litefile"] {
            assert_eq!(
                ok(&first.run(&["tabdump", t])).lines().count(),
                1,
                "{flavor:?} {t}"
            );
        }
        let mut mns = vec![first];
        for _ in 0..3 {
            let mn = mn_on(None);
            std::fs::create_dir_all(mn.path("/etc/xcat")).unwrap();
            std::fs::write(mn.path("/etc/xcat/cfgloc"), format!("{cfgloc}\n")).unwrap();
            mns.push(mn);
        }
        // To make the four writes overlap for sure, a separate session holds the
        // osimage table until all four imports wait on it (the first upsert reads
        // osimage) or on imgport's lock; then it lets go.
        mns[0].tabrestore("osimage", "#imagename,profile\n\"other\",\"p\"\n", false);
        let gate = TableGate::close(db(&mns[0]));
        let children: Vec<_> = mns
            .iter()
            .map(|mn| {
                Command::new(bin())
                    .args([
                        "--root",
                        mn.root().to_str().unwrap(),
                        "import",
                        bundle.to_str().unwrap(),
                    ])
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let waiting = match flavor {
            Flavor::Postgres => "select 1 from pg_stat_activity where application_name = 'imgport' \
                 and wait_event_type = 'Lock' having count(*) = 4",
            Flavor::MariaDb => "select 1 from information_schema.processlist where user = 'xcatadm' \
                 and (state like 'Waiting for table%' or info like 'SELECT GET_LOCK%') having count(*) = 4",
        };
        wait_for(db(&mns[0]), waiting);
        drop(gate);
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "{flavor:?}: {}", text(&out));
        }
        // The rows are those of one import.
        let single = mn_with_site(&server);
        single.tabrestore("osimage", "#imagename,profile\n\"other\",\"p\"\n", false);
        ok(&single.run(&["import", bundle.to_str().unwrap()]));
        for t in ["osimage", "linuximage", "litefile"] {
            assert_eq!(
                ok(&mns[0].run(&["tabdump", t])),
                ok(&single.run(&["tabdump", t])),
                "{flavor:?} {t}"
            );
        }
        if flavor == Flavor::Postgres {
            // Every row of the image came from one transaction (the first import's; the
            // others found identical rows and wrote nothing).
            let xmins = mns[0].sql(
                "osimage",
                &format!(
                    "select count(distinct x) from (select xmin::text as x from osimage \
                     where imagename = '{IMG}' union all select xmin::text from linuximage \
                     union all select xmin::text from litefile) t"
                ),
            );
            assert_eq!(xmins, "1\n");
        }
    }
}

#[test]
fn catalog_copy_moves_tables_between_backends() {
    let (Some(pg), Some(my)) = (server(Flavor::Postgres), server(Flavor::MariaDb)) else {
        return;
    };
    let src = sample_on(None);
    let dump = |mn: &Mn| -> Vec<String> {
        TABLES
            .iter()
            .map(|t| ok(&mn.run(&["tabdump", t])))
            .collect()
    };
    let sorted = |d: &[String]| -> Vec<Vec<String>> {
        d.iter()
            .map(|t| {
                let mut l: Vec<String> = t.lines().map(str::to_string).collect();
                l.sort();
                l
            })
            .collect()
    };
    let want = dump(&src);
    let pg_mn = mn_on(Some(&pg));
    let my_mn = mn_on(Some(&my));
    // A cfgloc file for PostgreSQL (password off the command line), a line for MariaDB.
    let cfg = tempfile::tempdir().unwrap();
    let pg_file = cfg.path().join("pg.cfgloc");
    std::fs::write(&pg_file, format!("{}\n", db(&pg_mn).cfgloc())).unwrap();
    let empty = dump(&pg_mn);
    let dry = src.run(&[
        "--json",
        "catalog",
        "copy",
        "--to",
        pg_file.to_str().unwrap(),
        "--dry-run",
    ]);
    let doc: Value = serde_json::from_str(&ok(&dry)).unwrap();
    assert_eq!(doc["command"], "catalog copy");
    assert_eq!(doc["dry_run"], true);
    assert_eq!(doc["ok"], true);
    let litefile = doc["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "litefile")
        .unwrap();
    assert_eq!(
        (litefile["rows"].as_u64(), litefile["replaced"].as_u64()),
        (Some(4), Some(0))
    );
    assert!(
        doc["to"]
            .as_str()
            .unwrap()
            .starts_with("PostgreSQL database"),
        "{doc}"
    );
    assert_eq!(dump(&pg_mn), empty, "a dry run wrote");

    ok(&src.run(&["catalog", "copy", "--to", pg_file.to_str().unwrap()]));
    assert_eq!(dump(&pg_mn), want);
    ok(&src.run(&["catalog", "copy", "--to", &db(&my_mn).cfgloc()]));
    assert_eq!(sorted(&dump(&my_mn)), sorted(&want));
    // And back from MariaDB into a fresh SQLite directory; a table list limits it.
    let back = mn_on(None);
    let dir = back.path("/etc/xcat");
    ok(&back.run(&[
        "catalog",
        "copy",
        "--from",
        &db(&my_mn).cfgloc(),
        "--to",
        dir.to_str().unwrap(),
    ]));
    assert_eq!(sorted(&dump(&back)), sorted(&want));
    let only = mn_on(None);
    ok(&only.run(&[
        "catalog",
        "copy",
        "--from",
        pg_file.to_str().unwrap(),
        "--to",
        only.path("/etc/xcat").to_str().unwrap(),
        "litefile",
    ]));
    assert!(only.path("/etc/xcat/litefile.sqlite").is_file());
    assert!(!only.path("/etc/xcat/osimage.sqlite").exists());
    let bad = src.run(&[
        "catalog",
        "copy",
        "--to",
        pg_file.to_str().unwrap(),
        "nosuchtable",
    ]);
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
}

/// One import's catalog writes (osimage, linuximage and 1,000 litefile rows, one
/// `apply`) on each backend, timed and printed (`--nocapture` shows the figures).
#[test]
fn catalog_writes_of_a_1000_litefile_image_are_timed_on_each_backend() {
    let pg = server(Flavor::Postgres);
    let my = server(Flavor::MariaDb);
    let img = "timing-image";
    let mut ups = vec![
        Upsert {
            table: "osimage".into(),
            key: vec![("imagename".into(), img.into())],
            values: vec![
                ("profile".into(), Some("compute".into())),
                ("provmethod".into(), Some("statelite".into())),
                ("osvers".into(), Some("rhels8.5.0".into())),
                ("osarch".into(), Some("x86_64".into())),
            ],
        },
        Upsert {
            table: "linuximage".into(),
            key: vec![("imagename".into(), img.into())],
            values: vec![("rootimgdir".into(), Some("/install/netboot/x".into()))],
        },
    ];
    for i in 0..1000 {
        ups.push(Upsert {
            table: "litefile".into(),
            key: vec![
                ("image".into(), img.into()),
                ("file".into(), format!("/etc/file{i:04}")),
            ],
            values: vec![("options".into(), Some("tmpfs".into()))],
        });
    }
    for server in [None, pg.as_ref(), my.as_ref()] {
        let mn = mn_on(server);
        let (name, loc) = match &mn.db {
            Some(db) => (
                format!("{:?}", db.server.flavor()),
                Location::parse(&db.cfgloc(), "test", Path::new("/")).unwrap(),
            ),
            None => ("SQLite".to_string(), Location::Sqlite(mn.path("/etc/xcat"))),
        };
        let cat = Catalog::at(loc);
        let started = Instant::now();
        let out = cat.apply(&ups).unwrap();
        let first = started.elapsed();
        let started = Instant::now();
        cat.apply(&ups).unwrap();
        let again = started.elapsed();
        assert_eq!(out.changes.len(), 1002);
        assert_eq!(
            cat.select("litefile", &[("image", img)]).unwrap().len(),
            1000
        );
        eprintln!(
            "timing: {name}: 1,000-litefile import rows written in {} ms (re-import, all unchanged: {} ms)",
            first.as_millis(),
            again.as_millis()
        );
    }
}

/// A session holding a whole table (osimage) so that nobody else can read it, until
/// dropped.
struct TableGate(LockHolder);

impl TableGate {
    fn close(db: &MnDb) -> TableGate {
        let mut holder = LockHolder::connect(db);
        match &mut holder {
            LockHolder::Pg(c) => c
                .batch_execute("BEGIN; LOCK TABLE osimage IN ACCESS EXCLUSIVE MODE")
                .unwrap(),
            LockHolder::My(c) => {
                use mysql::prelude::Queryable;
                c.query_drop("LOCK TABLES osimage WRITE").unwrap()
            }
        }
        TableGate(holder)
    }
}

impl Drop for TableGate {
    fn drop(&mut self) {
        match &mut self.0 {
            LockHolder::Pg(c) => {
                let _ = c.batch_execute("COMMIT");
            }
            LockHolder::My(c) => {
                use mysql::prelude::Queryable;
                let _ = c.query_drop("UNLOCK TABLES");
            }
        }
    }
}

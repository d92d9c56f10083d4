//! Shared helpers for the end-to-end tests: scratch management nodes, the real binary,
//! and checks through tools nobody here wrote (python's sqlite3/tarfile, GNU tar...).
#![allow(dead_code)]

pub mod backends;
pub mod crashkit;
pub mod dbserver;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const IMG: &str = "rhels8.5.0-x86_64-statelite-compute";
pub const ROOTIMGDIR: &str = "/install/netboot/rhels8.5.0/x86_64/compute";

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_imgport"))
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A scratch management node: a directory standing for `/`. Its catalog is SQLite
/// under the root, or its own database on the thread's server (see `backends`).
pub struct Mn {
    pub dir: tempfile::TempDir,
    pub db: Option<backends::MnDb>,
}

impl Mn {
    /// An empty MN (no catalog yet).
    pub fn empty() -> Mn {
        let dir = tempfile::Builder::new()
            .prefix("imgport-mn-")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir_all(dir.path().join("install")).expect("mkdir");
        let db = backends::new_mn_db(dir.path());
        Mn { dir, db }
    }

    /// An MN with the sample statelite image of `scripts/sample-mn.sh`.
    pub fn sample() -> Mn {
        let mn = Mn::empty();
        let out = Command::new("bash")
            .arg(repo().join("scripts/sample-mn.sh"))
            .arg(mn.root())
            .arg(bin())
            .output()
            .expect("run sample-mn.sh");
        assert!(out.status.success(), "sample-mn.sh failed: {}", text(&out));
        mn
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Host path of an MN path.
    pub fn path(&self, mn: &str) -> PathBuf {
        self.root().join(mn.trim_start_matches('/'))
    }

    /// Runs `imgport --root <root> ARGS` in `cwd`.
    pub fn run_in(&self, cwd: &Path, args: &[&str]) -> Output {
        Command::new(bin())
            .arg("--root")
            .arg(self.root())
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .output()
            .expect("run imgport")
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.run_in(self.root(), args)
    }

    /// Loads CSV text into a table with `imgport tabrestore` (`-a` when `add`).
    pub fn tabrestore(&self, table: &str, csv: &str, add: bool) {
        let d = tempfile::tempdir().expect("tempdir");
        let f = d.path().join(format!("{table}.csv"));
        std::fs::write(&f, csv).expect("write csv");
        let mut args = vec!["tabrestore"];
        if add {
            args.push("-a");
        }
        let f = f.to_string_lossy().into_owned();
        args.push(&f);
        let out = self.run(&args);
        assert!(out.status.success(), "tabrestore {table}: {}", text(&out));
    }

    /// Runs SQL on `<root>/etc/xcat/<table>.sqlite` with python's sqlite3 (or in the
    /// MN's server database as the cfgloc user) and returns the rows, one per line, fields joined with `|` (NULL shown as `<NULL>`).
    pub fn sql(&self, table: &str, query: &str) -> String {
        if let Some(db) = &self.db {
            return db.query(query);
        }
        let db = self.path(&format!("/etc/xcat/{table}.sqlite"));
        python(
            "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\nfor r in c.execute(sys.argv[2]):\n print('|'.join('<NULL>' if v is None else str(v) for v in r))",
            &[db.to_str().expect("utf8"), query],
        )
    }
}

/// Runs a python3 snippet with arguments, asserting success; returns stdout.
pub fn python(code: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .expect("python3");
    assert!(out.status.success(), "python failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a shell command line, asserting success; returns stdout.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(cmd)
        .output()
        .expect("bash");
    assert!(out.status.success(), "`{cmd}` failed: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stdout and stderr of a run, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Exports the sample image into `dir` and returns the bundle path.
pub fn export_sample(mn: &Mn, dir: &Path, extra_args: &[&str]) -> PathBuf {
    let mut args = vec!["export", IMG];
    args.extend_from_slice(extra_args);
    let out = mn.run_in(dir, &args);
    assert!(out.status.success(), "export: {}", text(&out));
    assert!(stdout(&out).lines().any(|l| l == "Done!"), "{}", text(&out));
    dir.join(format!("{IMG}.tgz"))
}

/// Member names of a tar.gz as python's tarfile lists them, in order.
pub fn tar_names(bundle: &Path) -> Vec<String> {
    python(
        "import tarfile,sys\nfor m in tarfile.open(sys.argv[1]).getmembers(): print(m.name)",
        &[bundle.to_str().expect("utf8")],
    )
    .lines()
    .map(str::to_string)
    .collect()
}

/// A symlink named `name` (imgexport/imgimport) to the binary, in a fresh directory.
pub fn alias(name: &str) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().expect("tempdir");
    let link = d.path().join(name);
    std::os::unix::fs::symlink(bin(), &link).expect("symlink");
    (d, link)
}

/// Runs `imgport export IMG - EXTRA...` on `src` piped into `imgport import -` on
/// `target`; returns (export, import) outputs.
pub fn pipe_export_import(src: &Mn, target: &Mn, extra: &[&str]) -> (Output, Output) {
    let mut exporter = Command::new(bin())
        .args(["--root", src.root().to_str().expect("utf8")])
        .args(["export", IMG, "-"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn export");
    let pipe = exporter.stdout.take().expect("stdout pipe");
    let import = Command::new(bin())
        .args([
            "--root",
            target.root().to_str().expect("utf8"),
            "import",
            "-",
        ])
        .stdin(pipe)
        .output()
        .expect("run import");
    let export = exporter.wait_with_output().expect("wait export");
    (export, import)
}

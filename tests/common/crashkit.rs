//! Scratch MNs for the crash tests: three versions of the sample image, MNs before a
//! crashed import, and a snapshot of an MN (files and rows) to compare end states with.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use super::{bin, python, sh, text, Mn, IMG, ROOTIMGDIR};

/// File list with modes, owners and content hashes, plus every table row; the lock's
/// own directory (`/var/lib/imgport`) is left out, the table files are listed with
/// their modes and compared by their rows (SQLite's journals and super-journals, were
/// any left, are plain files here, so they show).
const SNAPSHOT: &str = r#"
import hashlib, os, sqlite3, stat, sys
root = sys.argv[1]
out = []
for d, dirs, files in os.walk(root):
    dirs.sort()
    for n in sorted(dirs + files):
        p = os.path.join(d, n)
        r = os.path.relpath(p, root)
        if r == 'var/lib/imgport' or r.startswith('var/lib/imgport/'):
            continue
        st = os.lstat(p)
        if n.endswith('.sqlite'):
            out.append('%s %s %d:%d sqlite' % (r, stat.filemode(st.st_mode), st.st_uid, st.st_gid))
            c = sqlite3.connect('file:' + p + '?mode=ro', uri=True)
            for (t,) in c.execute("select name from sqlite_master where type='table' order by name"):
                for row in sorted(map(repr, c.execute('select * from "%s"' % t))):
                    out.append('row %s %s' % (t, row))
            c.close()
            continue
        line = '%s %s %d:%d' % (r, stat.filemode(st.st_mode), st.st_uid, st.st_gid)
        if stat.S_ISREG(st.st_mode):
            line += ' ' + hashlib.sha256(open(p, 'rb').read()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            line += ' -> ' + os.readlink(p)
        out.append(line)
print('\n'.join(out))
"#;

pub fn snapshot(root: &Path) -> String {
    python(SNAPSHOT, &[root.to_str().expect("utf8")])
}

/// Staging, spool, parked and temporary names imgport may leave, the journal, and
/// SQLite's journals and super-journals.
pub fn leftovers(root: &Path) -> String {
    sh(&format!(
        "cd {} && find . \\( -name '.imgport-*' -o -name '.rootimg.imgport-*' -o -name '*.imgport-old*' -o -name '*.imgport-tmp*' -o -name '*.sqlite-journal' -o -name '*.sqlite-mj*' -o -path ./var/lib/imgport/import.journal \\) -print",
        root.display()
    ))
}

/// A scratch MN root on tmpfs when there is one (syncfs there costs nothing).
pub fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let b = tempfile::Builder::new()
        .prefix("imgport-crash-")
        .tempdir_in(if shm.is_dir() { shm } else { Path::new("/tmp") });
    b.expect("tempdir")
}

pub fn copy_mn(from: &Path) -> tempfile::TempDir {
    let t = scratch();
    sh(&format!(
        "cp -a {}/. {}/",
        from.display(),
        t.path().display()
    ));
    t
}

pub fn imgport(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(bin())
        .arg("--root")
        .arg(root)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run imgport")
}

/// The MN `base` before the import of bundle v2, and after it on a copy; the copy
/// is returned for a test that goes on from there.
pub fn import_v2_ends(fx: &Fixture, base: &Path) -> (String, String, tempfile::TempDir) {
    let before = snapshot(base);
    let clean = copy_mn(base);
    let out = imgport(clean.path(), &["import", fx.bundle(2)], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let after = snapshot(clean.path());
    assert_ne!(before, after);
    (before, after, clean)
}

/// Three versions of the sample image (kernel, one tree file and the osimage row
/// differ), the MNs before the crashed import, and the states it may end in.
pub struct Fixture {
    _src: Mn,
    _work: tempfile::TempDir,
    pub bundles: Vec<PathBuf>,
    /// An MN without the image.
    pub empty: tempfile::TempDir,
    /// An MN with version 1 imported over version 0: `.ORIG` backups of version 0.
    pub populated: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        let src = Mn::sample();
        let work = tempfile::tempdir().expect("tempdir");
        let mut bundles = Vec::new();
        for v in 0..3 {
            std::fs::write(
                src.path(&format!("{ROOTIMGDIR}/kernel")),
                format!("kernel v{v}\n"),
            )
            .expect("kernel");
            std::fs::write(
                src.path(&format!("{ROOTIMGDIR}/rootimg/imgport-version")),
                format!("tree v{v}\n"),
            )
            .expect("tree file");
            // Two tables change, so the rows commit is a multi-file transaction.
            for (table, column) in [("osimage", "description"), ("linuximage", "comments")] {
                python(
                    &format!("import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\nc.execute('update {table} set {column}=?',(sys.argv[2],))\nc.commit()"),
                    &[
                        src.path(&format!("/etc/xcat/{table}.sqlite")).to_str().expect("utf8"),
                        &format!("version {v}"),
                    ],
                );
            }
            let out = src.run_in(work.path(), &["export", IMG, &format!("v{v}.tgz")]);
            assert!(out.status.success(), "export v{v}: {}", text(&out));
            bundles.push(work.path().join(format!("v{v}.tgz")));
        }
        let empty = scratch();
        // A real MN has /var/lib; the journal's directory is made inside it.
        sh(&format!(
            "mkdir -p {0}/install {0}/var/lib",
            empty.path().display()
        ));
        let populated = copy_mn(empty.path());
        for b in &bundles[..2] {
            let out = imgport(
                populated.path(),
                &["import", b.to_str().expect("utf8")],
                &[],
            );
            assert!(out.status.success(), "{}", text(&out));
        }
        Fixture {
            _src: src,
            _work: work,
            bundles,
            empty,
            populated,
        }
    }

    pub fn bundle(&self, v: usize) -> &str {
        self.bundles[v].to_str().expect("utf8")
    }
}

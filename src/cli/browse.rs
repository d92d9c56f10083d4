//! `ls`, `cat`, `verify`: read a bundle's tree through its index.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use imgport::tree::archive::{verify as verify_tree, TreeArchive};
use imgport::tree::index::IndexEntry;
use imgport::tree::Kind;

use super::{EXIT_FAILED, EXIT_OK};

fn open(bundle: &Path) -> Result<TreeArchive, i32> {
    TreeArchive::open(bundle).map_err(|e| {
        eprintln!("imgport: {e}");
        EXIT_FAILED
    })
}

pub fn ls(bundle: &Path, filter: Option<&str>) -> i32 {
    let archive = match open(bundle) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let prefix = filter.map(|f| {
        let f = f.trim_start_matches('/').trim_end_matches('/');
        if f == "rootimg" || f.starts_with("rootimg/") {
            f.to_string()
        } else {
            format!("rootimg/{f}")
        }
    });
    let mut out = std::io::stdout().lock();
    for e in archive.index().entries() {
        let e = match e {
            Ok(e) => e,
            Err(err) => {
                eprintln!("imgport: {}: {err}", bundle.display());
                return EXIT_FAILED;
            }
        };
        if let Some(p) = &prefix {
            let under = e.path.strip_prefix(p.as_bytes());
            if !under.is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/")) {
                continue;
            }
        }
        if writeln!(out, "{}", line(&e)).is_err() {
            return EXIT_OK; // a closed pipe (`| head`) is not an error
        }
    }
    EXIT_OK
}

/// One `tar -tv`-style line (numeric owners, UTC times).
fn line(e: &IndexEntry) -> String {
    let (t, size, suffix) = match &e.kind {
        Kind::File => ('-', e.size.to_string(), String::new()),
        Kind::Dir => ('d', "0".into(), "/".into()),
        Kind::Symlink(t) => (
            'l',
            "0".into(),
            format!(" -> {}", String::from_utf8_lossy(t)),
        ),
        Kind::HardLink(t) => (
            'h',
            "0".into(),
            format!(" link to {}", String::from_utf8_lossy(t)),
        ),
        Kind::CharDevice { major, minor } => ('c', format!("{major},{minor}"), String::new()),
        Kind::BlockDevice { major, minor } => ('b', format!("{major},{minor}"), String::new()),
        Kind::Fifo => ('p', "0".into(), String::new()),
    };
    let when = UNIX_EPOCH + Duration::from_secs(e.mtime.secs.max(0) as u64);
    let stamp = humantime::format_rfc3339_seconds(when).to_string();
    let stamp = stamp.trim_end_matches('Z').replacen('T', " ", 1);
    format!(
        "{t}{} {}/{} {size:>10} {} {}{suffix}",
        mode_string(e.mode),
        e.uid,
        e.gid,
        &stamp[..stamp.len().min(16)],
        String::from_utf8_lossy(&e.path).escape_debug()
    )
}

fn mode_string(mode: u32) -> String {
    let mut s = String::with_capacity(9);
    for (shift, special, lower, upper) in [
        (6, 0o4000, 's', 'S'),
        (3, 0o2000, 's', 'S'),
        (0, 0o1000, 't', 'T'),
    ] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(match (bits & 1 != 0, mode & special != 0) {
            (true, true) => lower,
            (false, true) => upper,
            (true, false) => 'x',
            (false, false) => '-',
        });
    }
    s
}

pub fn cat(bundle: &Path, path: &str) -> i32 {
    let mut archive = match open(bundle) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let result = archive.cat(path.as_bytes(), &mut out);
    match result.and_then(|_| {
        out.flush()
            .map_err(|e| imgport::tree::TreeError::io("standard output", e))
    }) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("imgport: {e}");
            EXIT_FAILED
        }
    }
}

pub fn verify(bundle: &Path, against: Option<&Path>) -> i32 {
    let mut archive = match open(bundle) {
        Ok(a) => a,
        Err(code) => return code,
    };
    match verify_tree(&mut archive, against) {
        Ok(report) => {
            for d in &report.differences {
                println!("{d}");
            }
            let verdict = if report.ok() { "OK" } else { "MISMATCH" };
            println!(
                "{verdict}: {} members, {} entries, {} files checked, {} differences",
                report.members,
                report.entries,
                report.files,
                report.differences.len()
            );
            if report.ok() {
                EXIT_OK
            } else {
                EXIT_FAILED
            }
        }
        Err(e) => {
            eprintln!("imgport: {e}");
            EXIT_FAILED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::mode_string;

    #[test]
    fn modes_read_like_ls() {
        assert_eq!(mode_string(0o4755), "rwsr-xr-x");
        assert_eq!(mode_string(0o1777), "rwxrwxrwt");
        assert_eq!(mode_string(0o2640), "rw-r-S---");
    }
}

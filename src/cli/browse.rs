//! `ls`, `cat`, `verify`: read a bundle's tree through its index.

use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use imgport::bundle::verify_tree;
use imgport::tree::{IndexEntry, Kind, TreeArchive, TreeError};

use serde_json::json;

use super::quote::{base64, tar_escape};
use super::{
    json as doc, Globals, EXIT_CORRUPT, EXIT_FAILED, EXIT_MISMATCH, EXIT_NOT_FOUND, EXIT_OK,
};

/// Checks that the bundle can be opened: exit 3 when it is not there, 1 when it
/// cannot be read (permissions), so neither is taken for a corrupt bundle.
fn readable(bundle: &Path) -> Result<(), i32> {
    imgport::bundle::open_file(bundle, bundle)
        .map(drop)
        .map_err(|e| {
            eprintln!("imgport: {e}");
            super::exit_for(e.failure())
        })
}

fn open(bundle: &Path) -> Result<TreeArchive, i32> {
    readable(bundle)?;
    imgport::bundle::open_tree(bundle).map_err(|e| {
        eprintln!("imgport: {e}");
        EXIT_CORRUPT
    })
}

/// What the tree engine calls standard output in its errors.
const OUTPUT: &str = "standard output";

fn kind_name(k: &Kind) -> &'static str {
    match k {
        Kind::File => "file",
        Kind::Dir => "dir",
        Kind::Symlink(_) => "symlink",
        Kind::HardLink(_) => "hardlink",
        Kind::CharDevice { .. } => "char",
        Kind::BlockDevice { .. } => "block",
        Kind::Fifo => "fifo",
    }
}

/// Sets `key` to a name: the name itself when it is UTF-8; else its `imgport ls` text
/// and, in `<key>_b64`, its raw bytes (docs/JSON.md).
fn set_name(v: &mut serde_json::Value, key: &str, name: &[u8]) {
    match std::str::from_utf8(name) {
        Ok(text) => v[key] = json!(text),
        Err(_) => {
            v[key] = json!(tar_escape(name));
            v[format!("{key}_b64")] = json!(base64(name));
        }
    }
}

fn entry_json(e: &IndexEntry) -> serde_json::Value {
    let mut v = json!({
        "type": kind_name(&e.kind),
        "mode": format!("{:04o}", e.mode),
        "uid": e.uid,
        "gid": e.gid,
        "size": e.size,
        "mtime": e.mtime.secs,
    });
    set_name(&mut v, "path", &e.path);
    match &e.kind {
        Kind::Symlink(t) | Kind::HardLink(t) => set_name(&mut v, "target", t),
        Kind::CharDevice { major, minor } | Kind::BlockDevice { major, minor } => {
            v["major"] = json!(major);
            v["minor"] = json!(minor);
        }
        _ => {}
    }
    v
}

/// `inspect`: the manifest(s), payload sizes and the tree's figures.
pub fn inspect(bundle: &Path, g: &Globals) -> i32 {
    let summary = match imgport::bundle::summary::summarize(bundle) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("imgport: {e}");
            return super::exit_for(e.failure());
        }
    };
    if g.json {
        let images: Vec<serde_json::Value> = summary
            .images
            .iter()
            .map(|i| {
                let m = i.manifest.as_ref();
                json!({
                    "dir": i.dir,
                    "image": m.and_then(|m| m.field("imagename")),
                    "provmethod": m.and_then(|m| m.field("provmethod")),
                    "profile": m.and_then(|m| m.field("profile")),
                    "osvers": m.and_then(|m| m.field("osvers")),
                    "osarch": m.and_then(|m| m.field("osarch")),
                    "osimage": m.map(|m| &m.osimage),
                    "linuximage": m.map(|m| &m.linuximage),
                    "extras": m.map(|m| m.extra.iter().map(|e| json!({"src": e.src, "dest": e.dest})).collect::<Vec<_>>()),
                    "files": i.files.iter().map(|(n, s)| json!({"name": n, "size": s})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let tree = summary.tree.map(|t| {
            json!({
                "entries": t.entries,
                "files": t.files,
                "file_bytes": t.file_bytes,
                "tar_bytes": t.tar_bytes,
                "compressed_bytes": t.compressed_bytes,
                "members": t.members,
                "ratio": if t.compressed_bytes > 0 { json!((t.tar_bytes as f64 / t.compressed_bytes as f64 * 1000.0).round() / 1000.0) } else { json!(null) },
            })
        });
        doc::print(&json!({
            "schema": doc::SCHEMA,
            "command": "inspect",
            "bundle": bundle.display().to_string(),
            "bundle_bytes": summary.bundle_bytes,
            "format": summary.format,
            "images": images,
            "tree": tree,
        }));
        return EXIT_OK;
    }
    println!(
        "bundle:   {} ({} bytes, format {})",
        bundle.display(),
        summary.bundle_bytes,
        summary.format
    );
    for i in &summary.images {
        match &i.manifest {
            Some(m) => {
                let f = |n: &str| m.field(n).unwrap_or("-").to_string();
                println!("image:    {}", f("imagename"));
                println!(
                    "  provmethod {}, profile {}, os {} {}",
                    f("provmethod"),
                    f("profile"),
                    f("osvers"),
                    f("osarch")
                );
                if let Some(dir) = m.linuximage.get("rootimgdir") {
                    println!("  rootimgdir {dir}");
                }
                for e in &m.extra {
                    println!("  extra    {} -> {}", e.src, e.dest);
                }
            }
            None => println!("image:    {} (no manifest.xml seen)", i.dir),
        }
        for (name, size) in &i.files {
            println!("  file     {name} ({size} bytes)");
        }
    }
    if let Some(t) = summary.tree {
        let ratio = if t.compressed_bytes > 0 {
            t.tar_bytes as f64 / t.compressed_bytes as f64
        } else {
            0.0
        };
        println!(
            "tree:     {} entries, {} files, {} bytes of files; {} tar bytes in {} members, {} compressed (ratio {ratio:.2})",
            t.entries, t.files, t.file_bytes, t.tar_bytes, t.members, t.compressed_bytes
        );
    }
    EXIT_OK
}

pub fn ls(bundle: &Path, filter: Option<&OsStr>, g: &Globals) -> i32 {
    let archive = match open(bundle) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let prefix = filter.map(|f| {
        let mut f = f.as_bytes();
        while let Some(rest) = f.strip_prefix(b"/") {
            f = rest;
        }
        while let Some(rest) = f.strip_suffix(b"/") {
            f = rest;
        }
        if f == b"rootimg" || f.starts_with(b"rootimg/") {
            f.to_vec()
        } else {
            [b"rootimg/".as_slice(), f].concat()
        }
    });
    let mut out = std::io::stdout().lock();
    let mut listed = Vec::new();
    let index = archive.index();
    // A sorted (v2) index starts at the block holding the prefix and stops past it:
    // `ls PATH` reads the blocks of PATH only.
    let entries: Box<dyn Iterator<Item = _>> = match &prefix {
        Some(p) => Box::new(index.entries_from(p)),
        None => Box::new(index.entries()),
    };
    for e in entries {
        let e = match e {
            Ok(e) => e,
            Err(err) => {
                // The index is part of the bundle: a bad one is a corrupt bundle.
                eprintln!("imgport: {}: {err}", bundle.display());
                return EXIT_CORRUPT;
            }
        };
        if let Some(p) = &prefix {
            let under = e.path.strip_prefix(p.as_slice());
            if !under.is_some_and(|rest| rest.is_empty() || rest.starts_with(b"/")) {
                if index.sorted() && imgport::tree::cmp_paths(&e.path, p).is_gt() {
                    break;
                }
                continue;
            }
        }
        if g.json {
            listed.push(entry_json(&e));
        } else if writeln!(out, "{}", line(&e)).is_err() {
            return EXIT_OK; // a closed pipe (`| head`) is not an error
        }
    }
    if g.json {
        doc::print(&json!({
            "schema": doc::SCHEMA,
            "command": "ls",
            "bundle": bundle.display().to_string(),
            "entries": listed,
        }));
    }
    EXIT_OK
}

/// One `tar -tv`-style line (numeric owners, UTC times), names escaped as GNU tar
/// escapes them.
fn line(e: &IndexEntry) -> String {
    let (t, size, suffix) = match &e.kind {
        Kind::File => ('-', e.size.to_string(), String::new()),
        Kind::Dir => ('d', "0".into(), "/".into()),
        Kind::Symlink(t) => ('l', "0".into(), format!(" -> {}", tar_escape(t))),
        Kind::HardLink(t) => ('h', "0".into(), format!(" link to {}", tar_escape(t))),
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
        tar_escape(&e.path)
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

pub fn cat(bundle: &Path, path: &OsStr) -> i32 {
    let mut archive = match open(bundle) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let result = archive.cat(path.as_bytes(), &mut out);
    match result.and_then(|_| out.flush().map_err(|e| TreeError::io(OUTPUT, e))) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("imgport: {e}");
            cat_exit(&e)
        }
    }
}

/// `verify`: a bundle's container (every gzip member's CRC, every tar member read to
/// its end, the manifests parsed) and its tree through the index; a bare tree through
/// its index only. Every defect found is printed; any one exits 4.
pub fn verify(bundle: &Path, against: Option<&Path>, g: &Globals) -> i32 {
    if let Err(code) = readable(bundle) {
        return code;
    }
    let indexed = has_footer(bundle);
    // Without a bundle footer the file may still be a bare rootimgtree.gz / .zst, given
    // where its bundle was meant: try its index too. Only a bundle (or --against) makes
    // an unreadable index an error; an xCAT bundle simply has none.
    let tree = match imgport::bundle::open_tree(bundle) {
        Err(_) if !indexed && against.is_none() => None,
        opened => Some(opened),
    };
    let bare = !indexed && matches!(tree, Some(Ok(_)));
    if !indexed && !bare && looks_like_tree(bundle) {
        // Its index is missing (xCAT writes none) or damaged; either way only the
        // bundle around it can be checked.
        eprintln!(
            "imgport: {}: a root image tree (rootimgtree), not a bundle, with no index imgport \
             can read: verify the bundle that carries it (imgport verify IMAGE.tgz)",
            bundle.display()
        );
        return EXIT_CORRUPT;
    }
    let container = (!bare).then(|| imgport::bundle::check::check(bundle));
    let container = match container {
        Some(Err(e)) => {
            eprintln!("imgport: {}: {e}", bundle.display());
            // The tree's index can say which of its members the damage is in.
            if let Some(Ok(mut archive)) = tree {
                if let Err(e) = verify_tree(bundle, &mut archive, against, g.threads) {
                    eprintln!("imgport: {e}");
                }
            }
            return super::exit_for(e.failure());
        }
        Some(Ok(c)) if c.manifests == 0 && !indexed => {
            // Not a bundle: say what the tree reader says of it.
            if let Some(Err(e)) = &tree {
                eprintln!("imgport: {e}");
            } else {
                eprintln!(
                    "imgport: {}: no manifest.xml: not a bundle",
                    bundle.display()
                );
            }
            return EXIT_CORRUPT;
        }
        Some(Ok(c)) if c.footer && !indexed => {
            eprintln!(
                "imgport: {}: the bundle footer (its last gzip member) is damaged or cut off",
                bundle.display()
            );
            return EXIT_CORRUPT;
        }
        Some(Ok(c)) => Some(c),
        None => None,
    };
    let report = match tree {
        Some(Ok(mut archive)) => verify_tree(bundle, &mut archive, against, g.threads),
        Some(Err(e)) => Err(e),
        None => Ok(imgport::tree::VerifyReport::default()),
    };
    match report {
        Ok(report) => print_verify(bundle, against, &report, container.as_ref(), g),
        Err(e) => {
            eprintln!("imgport: {}", in_tree(&e, container.as_ref()));
            tree_exit(&e, against)
        }
    }
}

/// The exit code of `cat`'s errors: a path not in the tree does not exist (3), a
/// directory or device has no bytes to show and a failing write of the output is
/// an I/O failure (1); a damaged member or index, or a failing read of the bundle,
/// is a corrupt bundle (4).
fn cat_exit(e: &TreeError) -> i32 {
    match e {
        TreeError::NotInArchive { .. } => EXIT_NOT_FOUND,
        TreeError::Unsupported { .. } => EXIT_FAILED,
        TreeError::Io { path, .. } if path == Path::new(OUTPUT) => EXIT_FAILED,
        _ => EXIT_CORRUPT,
    }
}

/// The exit code of a tree error met by `verify`: a failing read of the restored
/// tree (`--against`) or of the output is an I/O failure (1), not a defect of the
/// bundle (4); differences are not errors (5, from the report).
fn tree_exit(e: &TreeError, against: Option<&Path>) -> i32 {
    match e {
        TreeError::Io { path, .. } if against.is_some_and(|a| path.starts_with(a)) => EXIT_FAILED,
        TreeError::Unsupported { .. } => EXIT_FAILED,
        _ => EXIT_CORRUPT,
    }
}

/// Whether the file ends with a bundle footer (an imgport bundle with an indexed tree).
fn has_footer(bundle: &Path) -> bool {
    let Ok(mut f) = std::fs::File::open(bundle) else {
        return false;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    matches!(
        imgport::bundle::footer::read_location(&mut f, len),
        Ok(Some(_))
    )
}

/// Whether `path` holds a root image tree rather than a bundle: a gzip or zstd stream
/// whose first entry is `rootimg`, in cpio newc (as xCAT writes rootimgtree.gz) or tar
/// (FORMAT.md §4, §5). Reads the first few hundred bytes; false on anything unreadable.
fn looks_like_tree(path: &Path) -> bool {
    use std::io::Read;
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let mut magic = [0u8; 4];
    if file.read_exact(&mut magic).is_err() {
        return false;
    }
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let stream: Box<dyn Read> = if magic[..2] == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else if magic == [0x28, 0xb5, 0x2f, 0xfd] {
        match zstd::stream::read::Decoder::new(file) {
            Ok(d) => Box::new(d),
            Err(_) => return false,
        }
    } else {
        return false;
    };
    let mut head = Vec::with_capacity(512);
    if stream.take(512).read_to_end(&mut head).is_err() {
        return false;
    }
    // newc: a 110-byte header, then the name; tar: the NUL-padded name field first.
    let name = if head.starts_with(b"070701") {
        head.get(110..).unwrap_or_default()
    } else if head.len() == 512 && &head[257..262] == b"ustar" {
        &head[..100]
    } else {
        return false;
    };
    let name = name.strip_prefix(b"./").unwrap_or(name);
    name.starts_with(b"rootimg") && matches!(name.get(7), None | Some(b'/' | b'\0'))
}

/// A tree error, naming the bundle member that holds the tree.
fn in_tree(
    e: &dyn std::fmt::Display,
    container: Option<&imgport::bundle::check::Checked>,
) -> String {
    match container.and_then(|c| c.trees.first()) {
        Some(name) => format!("{name}: {e}"),
        None => e.to_string(),
    }
}

fn print_verify(
    bundle: &Path,
    against: Option<&Path>,
    report: &imgport::tree::VerifyReport,
    container: Option<&imgport::bundle::check::Checked>,
    g: &Globals,
) -> i32 {
    let code = if report.ok() { EXIT_OK } else { EXIT_MISMATCH };
    if g.json {
        doc::print(&json!({
            "schema": doc::SCHEMA,
            "command": "verify",
            "bundle": bundle.display().to_string(),
            "against": against.map(|a| a.display().to_string()),
            "ok": report.ok(),
            "bundle_members": container.map(|c| c.members),
            "members": report.members,
            "entries": report.entries,
            "files": report.files,
            "differences": report.differences,
        }));
        return code;
    }
    for d in &report.differences {
        println!("{d}");
    }
    let verdict = if report.ok() { "OK" } else { "MISMATCH" };
    let bundle_part = match container {
        Some(c) => format!(" in a bundle of {} members", c.members),
        None => " in a bare tree (no bundle around it)".to_string(),
    };
    println!(
        "{verdict}: {} members, {} entries, {} files checked, {} differences{bundle_part}",
        report.members,
        report.entries,
        report.files,
        report.differences.len()
    );
    code
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

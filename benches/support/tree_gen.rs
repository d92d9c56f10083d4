//! The deterministic benchmark tree (~64 MiB at scale 1) of `examples/tree.rs gen` and
//! `scripts/bench.sh`, and the content generators `benches/tree.rs` builds its trees
//! from (hence `#[path]`-included, not a bench target itself).
//!
//! Mix: 2 000 small text files in 40 directories, 40 structured binaries of 256 KiB,
//! six 8 MiB files (text, binary, and incompressible data), 41 symlinks, one hard link.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::symlink;
use std::path::Path;

/// Deterministic pseudo-random bytes (64-bit LCG, high bits): the same tree on every
/// run and machine, without a dependency.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

const WORDS: [&str; 16] = [
    "kernel", "module", "service", "root", "config", "lib", "share", "network", "daemon", "option",
    "value", "true", "false", "path", "user", "group",
];

/// Text with a small vocabulary: compresses like config files and scripts (~4:1).
pub fn text(rng: &mut Lcg, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        let w = WORDS[(rng.next() % WORDS.len() as u64) as usize];
        out.extend_from_slice(w.as_bytes());
        out.push(if rng.next() % 8 == 0 { b'\n' } else { b' ' });
    }
    out.truncate(len);
    out
}

/// Binary with structure: runs of repeated records and some noise, compressing about
/// like shared libraries (~2-3:1).
pub fn binary(rng: &mut Lcg, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    while out.len() < len {
        let rec = (rng.next() as u32).to_le_bytes();
        for _ in 0..(rng.next() % 8 + 1) {
            out.extend_from_slice(&rec);
            out.extend_from_slice(&[0, 0, 0, 0x48, 0x89, 0xe5]);
        }
        for _ in 0..(rng.next() % 16) {
            out.push(rng.next() as u8);
        }
    }
    out.truncate(len);
    out
}

/// Builds the benchmark tree under `root`; `scale` divides every size (1 = ~64 MiB).
/// Returns the bytes of file content written.
pub fn build_tree(root: &Path, scale: usize) -> io::Result<u64> {
    let mut rng = Lcg(SEED);
    let mut total = 0u64;
    let mut put = |p: &Path, data: &[u8]| -> io::Result<()> {
        fs::File::create(p)?.write_all(data)?;
        total += data.len() as u64;
        Ok(())
    };
    // Many small text files in a two-level directory structure (/etc, /usr/share).
    for d in 0..40 {
        let dir = root.join(format!("usr/share/pkg{d:02}"));
        fs::create_dir_all(&dir)?;
        for f in 0..50 / scale.min(50) {
            let len = 200 + (rng.next() % 3800) as usize;
            put(&dir.join(format!("file{f:03}.conf")), &text(&mut rng, len))?;
        }
    }
    // Medium binaries (/usr/lib): 40 × 256 KiB.
    let lib = root.join("usr/lib64");
    fs::create_dir_all(&lib)?;
    for i in 0..40 {
        put(
            &lib.join(format!("lib{i:02}.so.1")),
            &binary(&mut rng, (256 << 10) / scale),
        )?;
    }
    // A few 8 MiB files: logs, a database-like binary, and incompressible data (an
    // already-compressed payload, e.g. an initrd).
    let big = root.join("var/lib/big");
    fs::create_dir_all(&big)?;
    let size = (8 << 20) / scale;
    put(&big.join("messages.log"), &text(&mut rng, size))?;
    put(&big.join("rpmdb.sqlite"), &binary(&mut rng, size))?;
    put(&big.join("packages.db"), &binary(&mut rng, size))?;
    put(&big.join("history.log"), &text(&mut rng, size))?;
    let noise: Vec<u8> = (0..size).map(|_| rng.next() as u8).collect();
    put(&big.join("initrd.img"), &noise)?;
    put(&big.join("firmware.bin"), &noise)?;
    // Links: symlinks into the library dir, as /usr/lib64 has, and one hard link.
    for i in 0..40 {
        symlink(format!("lib{i:02}.so.1"), lib.join(format!("lib{i:02}.so")))?;
    }
    symlink(
        "../usr/share/pkg00/file000.conf",
        root.join("usr/lib64/dangling-ish"),
    )?;
    fs::hard_link(big.join("messages.log"), big.join("messages.log.1"))?;
    Ok(total)
}

/// Fixed seed: the tree must be identical on every run so numbers compare.
const SEED: u64 = 0x1A6_9027;

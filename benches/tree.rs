//! Export and import speed of the root-tree engine through the calls `imgport export`
//! and `imgport import` make: `tree::write_tree` (the walk and the parallel pipeline)
//! and, for its output, `tree::restore_stream` over a 1 MiB `BufReader` (gzip, as
//! import reads a bundle's tree member) or `tree::restore_zstd` (zstd). Two
//! deterministic trees, since they stress different things:
//!
//! - `small_files`: 20,000 text files of 0 to 3 KiB in directories of 1,000 (issue #9's
//!   kind of tree, the per-file syscalls), reported in files/s;
//! - `large_files`: four 16 MiB files (text, structured binary, two incompressible),
//!   where compression and data copies dominate, reported in MB/s of tar bytes.
//!
//! `cargo bench --bench tree` takes a couple of minutes (sample size 10). Under
//! `cargo test --benches` criterion runs each benchmark once on trees cut to a few
//! MiB, since the test profile's unoptimized deflate would take minutes.
//!
//! Restores go into fresh directories on the same filesystem. Finished targets are
//! renamed aside and deleted only once the whole benchmark is done: on the shared
//! disks this runs on, extracting right after an `rm -rf` of a large tree is about
//! 20x slower, which would measure the disk's journal, not the restorer.

use std::fs;
use std::io::{self, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode};
use criterion::{measurement::WallTime, Throughput};

use imgport::tree::{
    restore_stream, restore_zstd, write_tree, Codec, RestoreOptions, WriteOptions,
};

// The generators of `examples/tree.rs gen`; only the content helpers are used here.
#[allow(dead_code)]
#[path = "support/tree_gen.rs"]
mod tree_gen;
use tree_gen::{binary, text, Lcg};

/// Whether criterion benchmarks (`--bench`) rather than `cargo test` smoke-runs.
fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}

/// 20,000 small text files (500 under `cargo test`) in directories of 1,000; sizes
/// skewed toward small ones like a root tree's configuration files.
fn small_files(root: &Path) -> io::Result<()> {
    let files = if full() { 20_000 } else { 500 };
    let mut rng = Lcg(0x5A11);
    for f in 0..files {
        if f % 1000 == 0 {
            fs::create_dir(root.join(format!("d{:03}", f / 1000)))?;
        }
        let u = (rng.next() % 1000) as f64 / 1000.0;
        let len = (3072.0 * u.powi(4)) as usize;
        let path = root.join(format!("d{:03}/f{:03}", f / 1000, f % 1000));
        fs::File::create(path)?.write_all(&text(&mut rng, len))?;
    }
    Ok(())
}

/// Four 16 MiB files (1 MiB under `cargo test`): text, structured binary, and two
/// incompressible ones (already-compressed payloads such as an initrd).
fn large_files(root: &Path) -> io::Result<()> {
    let size = if full() { 16 << 20 } else { 1 << 20 };
    let mut rng = Lcg(0x1A59E);
    fs::write(root.join("messages.log"), text(&mut rng, size))?;
    fs::write(root.join("rpmdb.sqlite"), binary(&mut rng, size))?;
    for name in ["initrd.img", "firmware.bin"] {
        let noise: Vec<u8> = (0..size).map(|_| rng.next() as u8).collect();
        fs::write(root.join(name), noise)?;
    }
    Ok(())
}

/// Writes a benchmark tree into an existing empty directory.
type BuildTree = fn(&Path) -> io::Result<()>;

/// What a tree's throughput is counted in.
#[derive(Clone, Copy)]
enum Per {
    /// Entries (files/s).
    Entry,
    /// Uncompressed tar bytes (MB/s).
    TarByte,
}

struct Bench<'a> {
    work: &'a Path,
    trash: PathBuf,
    moved: u64,
}

impl Bench<'_> {
    /// Export and import benchmarks of the tree at `root` with both codecs.
    fn tree(&mut self, g: &mut BenchmarkGroup<'_, WallTime>, root: &Path, per: Per) {
        for (codec, name) in [(Codec::Gzip, "gzip"), (Codec::Zstd, "zstd")] {
            let opts = WriteOptions {
                codec,
                ..WriteOptions::default()
            };
            // One export up front: its output feeds the import benchmark, its counts
            // set the throughput of both.
            let mut archive = Vec::new();
            let stats = write_tree(root, &mut archive, &opts).expect("export");
            eprintln!(
                "{}: {} entries, {:.1} MiB tar, {:.1} MiB {name}",
                root.display(),
                stats.entries,
                stats.bytes_in as f64 / 1048576.0,
                archive.len() as f64 / 1048576.0
            );
            g.throughput(match per {
                Per::Entry => Throughput::Elements(stats.entries),
                Per::TarByte => Throughput::Bytes(stats.bytes_in),
            });
            g.bench_function(format!("export_write_tree_{name}"), |b| {
                let mut out = Vec::with_capacity(archive.len() + (1 << 20));
                b.iter(|| {
                    out.clear();
                    write_tree(root, &mut out, &opts).expect("export");
                })
            });
            g.bench_function(format!("import_restore_{name}"), |b| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        spent += self.restore(&archive, codec);
                    }
                    spent
                })
            });
        }
    }

    /// One timed restore into a fresh directory, which is then moved aside.
    fn restore(&mut self, archive: &[u8], codec: Codec) -> Duration {
        let dest = self.work.join("dest");
        fs::create_dir(&dest).expect("mkdir dest");
        let ropts = RestoreOptions::default();
        let t = Instant::now();
        match codec {
            Codec::Gzip => restore_stream(
                BufReader::with_capacity(1 << 20, archive),
                &dest,
                b"rootimg",
                &ropts,
            ),
            Codec::Zstd => restore_zstd(archive, &dest, b"rootimg", &ropts),
        }
        .expect("import");
        let spent = t.elapsed();
        self.moved += 1;
        fs::rename(&dest, self.trash.join(self.moved.to_string())).expect("rename aside");
        spent
    }
}

fn tree_benches(c: &mut Criterion) {
    let work = tempfile::Builder::new()
        .prefix("imgport-bench.")
        .tempdir()
        .expect("tempdir");
    let trash = work.path().join("trash");
    fs::create_dir(&trash).expect("mkdir trash");
    let mut bench = Bench {
        work: work.path(),
        trash: trash.clone(),
        moved: 0,
    };
    let trees: [(&str, BuildTree, Per); 2] = [
        ("small_files", small_files, Per::Entry),
        ("large_files", large_files, Per::TarByte),
    ];
    for (name, build, per) in trees {
        let root = work.path().join(name).join("rootimg");
        fs::create_dir_all(&root).expect("mkdir");
        build(&root).expect("build tree");
        let mut g = c.benchmark_group(name);
        g.sample_size(10)
            .sampling_mode(SamplingMode::Flat)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(5));
        bench.tree(&mut g, &root, per);
        g.finish();
    }
    // Deleted here, after all timing (see the module docs).
    if let Err(e) = fs::remove_dir_all(&trash) {
        eprintln!("warning: could not remove {}: {e}", trash.display());
    }
}

criterion_group!(benches, tree_benches);
criterion_main!(benches);

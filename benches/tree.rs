//! Export and import throughput of the root-tree engine on a deterministic ~64 MiB
//! tree, through the calls `imgport export` and `imgport import` make: `tree::write_tree`
//! (the parallel pipeline) and, for its output, `tree::restore_stream` over a 1 MiB
//! `BufReader` (gzip) or `tree::restore_zstd` (zstd), all reported in MB/s of
//! uncompressed tar bytes.
//!
//! `cargo bench --bench tree` takes a few minutes. Under `cargo test --benches`
//! criterion runs each benchmark once; the tree is then cut to ~2 MiB, since the test
//! profile's unoptimized deflate would take minutes over 64 MiB.
//!
//! Restores go into fresh directories on the same filesystem. Finished targets are
//! renamed aside and deleted only once the whole benchmark is done: on the shared
//! disks this runs on, extracting right after an `rm -rf` of a large tree is about
//! 20x slower, which would measure the disk's journal, not the restorer.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use std::io::BufReader;

use imgport::tree::{
    restore_stream, restore_zstd, write_tree, Codec, RestoreOptions, WriteOptions,
};

// Shared with `examples/tree.rs gen`, so `scripts/bench.sh` measures the same tree.
#[path = "support/tree_gen.rs"]
mod tree_gen;
use tree_gen::build_tree;

/// Full size when criterion benchmarks (`--bench`), small under `cargo test`.
fn scale() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        1
    } else {
        32
    }
}

fn tree_benches(c: &mut Criterion) {
    let work = tempfile::Builder::new()
        .prefix("imgport-bench.")
        .tempdir()
        .expect("tempdir");
    let root = work.path().join("rootimg");
    fs::create_dir(&root).expect("mkdir");
    let content = build_tree(&root, scale()).expect("build tree");

    let mut g = c.benchmark_group("tree");
    g.sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(8));
    let trash = work.path().join("trash");
    fs::create_dir(&trash).expect("mkdir trash");
    let mut n = 0u64;

    for (codec, name) in [(Codec::Gzip, "gzip"), (Codec::Zstd, "zstd")] {
        let opts = WriteOptions {
            codec,
            ..WriteOptions::default()
        };
        // One export up front: its output feeds the import bench, its tar size sets the
        // throughput of both.
        let mut archive = Vec::new();
        let stats = write_tree(&root, &mut archive, &opts).expect("export");
        eprintln!(
            "tree: {} entries, {:.1} MiB content, {:.1} MiB tar, {:.1} MiB {name}",
            stats.entries,
            content as f64 / 1048576.0,
            stats.bytes_in as f64 / 1048576.0,
            archive.len() as f64 / 1048576.0
        );
        g.throughput(Throughput::Bytes(stats.bytes_in));

        g.bench_function(format!("export_write_tree_{name}"), |b| {
            let mut out = Vec::with_capacity(archive.len() + (1 << 20));
            b.iter(|| {
                out.clear();
                write_tree(&root, &mut out, &opts).expect("export");
            })
        });

        g.bench_function(format!("import_restore_{name}"), |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let dest = work.path().join("dest");
                    fs::create_dir(&dest).expect("mkdir dest");
                    let t = Instant::now();
                    let ropts = RestoreOptions::default();
                    match codec {
                        // As `imgport import` reads a bundle's tree member.
                        Codec::Gzip => restore_stream(
                            BufReader::with_capacity(1 << 20, &archive[..]),
                            &dest,
                            b"rootimg",
                            &ropts,
                        ),
                        Codec::Zstd => restore_zstd(&archive[..], &dest, b"rootimg", &ropts),
                    }
                    .expect("import");
                    spent += t.elapsed();
                    n += 1;
                    fs::rename(&dest, trash.join(n.to_string())).expect("rename aside");
                }
                spent
            })
        });
    }
    g.finish();
    // Deleted here, after all timing (see the module docs).
    remove_all(&trash);
}

fn remove_all(p: &PathBuf) {
    if let Err(e) = fs::remove_dir_all(p) {
        eprintln!("warning: could not remove {}: {e}", p.display());
    }
}

criterion_group!(benches, tree_benches);
criterion_main!(benches);

//! A minimal command line over the tree engine, for `scripts/bench.sh` and manual
//! timing: export a directory as a `rootimgtree.gz` (or `.zst`), import one into a
//! directory.
//!
//! ```text
//! cargo run --release --example tree -- export DIR OUT [--threads N] [--level N] [--codec zstd]
//! cargo run --release --example tree -- import ARCHIVE DEST [--threads N]
//! cargo run --release --example tree -- gen DIR [--scale N]
//! ```
//!
//! It calls `write_tree` / `restore_stream` (`restore_zstd` for a zstd archive,
//! recognized by its magic), as `imgport export` / `import` do, with the level, codec and thread count given (absent: one worker per
//! core). Statistics go to stderr, one `key=value` line.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::{Parser, Subcommand};
use imgport::tree::{
    restore_stream, restore_zstd, write_tree, Codec, RestoreOptions, WriteOptions,
};

// The benchmark tree of `benches/tree.rs`, so the script and criterion measure alike.
#[path = "../benches/support/tree_gen.rs"]
mod tree_gen;

#[derive(Parser)]
#[command(about = "Export or import a root tree with imgport's tree engine")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Write DIR (as `rootimg`) to OUT as a gzip'd pax tar.
    Export {
        dir: PathBuf,
        out: PathBuf,
        /// Worker threads (default: one per CPU).
        #[arg(long)]
        threads: Option<usize>,
        /// gzip level 0-9 (mapped onto zstd's for --codec zstd).
        #[arg(long, default_value_t = 6)]
        level: u32,
        /// Write a zstd seekable tree (`rootimgtree.zst`) instead of gzip.
        #[arg(long, value_parser = ["gzip", "zstd"], default_value = "gzip")]
        codec: String,
    },
    /// Restore ARCHIVE (gzip'd tar or cpio newc) into the existing directory DEST.
    Import {
        archive: PathBuf,
        dest: PathBuf,
        /// Worker threads (default: one per CPU).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Create the deterministic benchmark tree (~64 MiB) in the new directory DIR.
    Gen {
        dir: PathBuf,
        /// Divide every file size by this (1 = full size).
        #[arg(long, default_value_t = 1)]
        scale: usize,
    },
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cli = Cli::parse();
    let t = Instant::now();
    match cli.cmd {
        Cmd::Export {
            dir,
            out,
            level,
            codec,
            threads,
        } => {
            let mut w = BufWriter::new(File::create(&out)?);
            let opts = WriteOptions {
                level,
                codec: if codec == "zstd" {
                    Codec::Zstd
                } else {
                    Codec::Gzip
                },
                threads: threads.unwrap_or(0),
                ..Default::default()
            };
            let s = write_tree(&dir, &mut w, &opts)?;
            w.flush()?;
            eprintln!(
                "entries={} tar_bytes={} out_bytes={} seconds={:.3} warnings={}",
                s.entries,
                s.bytes_in,
                s.bytes_out,
                t.elapsed().as_secs_f64(),
                s.warnings.len()
            );
        }
        Cmd::Gen { dir, scale } => {
            std::fs::create_dir(&dir)?;
            let bytes = tree_gen::build_tree(&dir, scale.max(1))?;
            eprintln!("content_bytes={bytes}");
        }
        Cmd::Import {
            archive,
            dest,
            threads,
        } => {
            let mut input = BufReader::with_capacity(1 << 20, File::open(&archive)?);
            let mut magic = [0u8; 4];
            let zstd = input.read_exact(&mut magic).is_ok() && magic == [0x28, 0xb5, 0x2f, 0xfd];
            input.rewind()?;
            let opts = RestoreOptions {
                threads: threads.unwrap_or(0),
                ..Default::default()
            };
            let s = if zstd {
                restore_zstd(input, &dest, b"rootimg", &opts)?
            } else {
                restore_stream(input, &dest, b"rootimg", &opts)?
            };
            eprintln!(
                "entries={} data_bytes={} seconds={:.3} warnings={}",
                s.entries,
                s.bytes,
                t.elapsed().as_secs_f64(),
                s.warnings.len()
            );
        }
    }
    Ok(())
}

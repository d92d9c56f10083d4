//! Writes the library-made fuzz seeds (`fuzz/seed.sh` runs this): a tiny tree in the
//! layout of FORMAT.md §2–3 with a v2 index, i.e. data members with `IG` lengths, cut
//! at entry boundaries, followed by the index blocks, head and footer.
//!
//! usage: `cargo run --example fuzz_seeds -- TREE_DIR SEEDS_DIR`
//!
//! Writes `SEEDS_DIR/member_reader/{one-member,tree-v2}.gz` and
//! `SEEDS_DIR/index_reader/{tree-v2.gz,head.bin,block.bin}` (the raw index head and
//! first raw block, which the index target also decodes directly). The v1 seeds are
//! the committed fixture `tests/fixtures/tree-v1.gz`, copied by `fuzz/seed.sh`.
//!
//! The layout is assembled here from the library's member and index encoders rather
//! than taken from `write_tree`, so members stay tiny (several even in a tiny tree).

use std::path::PathBuf;

use imgport::tree::internals::gzip::{compressor, encode_data};
use imgport::tree::internals::gzip_trailer::encode_gzip_trailer;
use imgport::tree::internals::tar_header::{encode_header, end_of_archive};
use imgport::tree::{
    walk, EntryEncoder, IndexBuilder, IndexEntry, MemberInfo, WalkOptions, ROOTIMG_TOP,
};

/// Small member target, so even a tiny seed tree has several members to hop through.
const SEED_MEMBER_BYTES: usize = 4096;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [tree, seeds] = args.as_slice() else {
        return Err("usage: fuzz_seeds TREE_DIR SEEDS_DIR".into());
    };
    let w = walk(tree, ROOTIMG_TOP, &WalkOptions::default())?;
    let mut tar = Vec::new();
    let mut cuts = vec![0usize];
    let mut index = IndexBuilder::new();
    let mut enc = EntryEncoder::new();
    let mut warnings = Vec::new();
    for (entry, src) in &w.entries {
        if tar.len() - cuts.last().copied().unwrap_or(0) >= SEED_MEMBER_BYTES {
            cuts.push(tar.len());
        }
        let header_offset = tar.len() as u64;
        let data_offset = header_offset + encode_header(entry)?.len() as u64;
        enc.write_entry(entry, src, &mut tar, &mut warnings)?;
        index.push_entry(&IndexEntry::from_entry(
            entry,
            header_offset,
            data_offset,
            None,
        ));
    }
    tar.extend_from_slice(&end_of_archive());
    cuts.push(tar.len());

    let mut file = Vec::new();
    let mut c = compressor(6);
    for pair in cuts.windows(2) {
        let chunk = &tar[pair[0]..pair[1]];
        let m = encode_data(&mut c, chunk);
        let mut crc = libdeflater::Crc::new();
        crc.update(chunk);
        index.push_member(MemberInfo {
            compressed: m.len() as u64,
            uncompressed: chunk.len() as u64,
            crc32: crc.sum(),
            digest: Some(*blake3::hash(chunk).as_bytes()),
        });
        if file.is_empty() {
            write(seeds, "member_reader/one-member.gz", &m)?;
        }
        file.extend_from_slice(&m);
    }
    let encoded = index.finish();
    let data_end = file.len() as u64;
    file.extend_from_slice(&encode_gzip_trailer(&encoded, data_end)?);
    write(seeds, "member_reader/tree-v2.gz", &file)?;
    write(seeds, "index_reader/tree-v2.gz", &file)?;
    write(seeds, "index_reader/head.bin", &encoded.head)?;
    let mut first = None;
    encoded.for_each_block(|b| {
        first.get_or_insert_with(|| b.to_vec());
        Ok(())
    })?;
    if let Some(b) = first {
        // The raw block: what `decode_block` reads.
        let raw = zstd::bulk::decompress(&b, 16 << 20)?;
        write(seeds, "index_reader/block.bin", &raw)?;
    }
    Ok(())
}

fn write(seeds: &std::path::Path, rel: &str, bytes: &[u8]) -> std::io::Result<()> {
    let p = seeds.join(rel);
    std::fs::create_dir_all(p.parent().unwrap_or(seeds))?;
    std::fs::write(&p, bytes)?;
    eprintln!("{} ({} bytes)", p.display(), bytes.len());
    Ok(())
}

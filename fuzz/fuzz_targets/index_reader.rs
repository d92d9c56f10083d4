//! Fuzzes the tree index (FORMAT.md §2.2, §3, §6), both versions: `read_tree_index`
//! over the input as a whole tree file (gzip or zstd trailer, v1 or v2 footer),
//! `Index::decode` of the input as an encoded v1 index, `decode_block` of it as a raw
//! v2 block, and `Index::decode_v2` of it as a raw v2 head whose blocks are read from
//! the input itself; then iteration of all entries, lookups and `members_covering` on
//! offsets taken from the input.
//!
//! Consistency check: entries decoded from a v2 block, pushed into a fresh
//! `IndexBuilder` and wrapped by `encode_gzip_trailer`, must read back unchanged
//! through `read_tree_index` (paths, kinds, metadata and every offset).
#![no_main]

use std::io::Cursor;
use std::sync::Arc;

use imgport::tree::internals::gzip_trailer::{
    encode_gzip_trailer, parse_gzip_footer, parse_gzip_footer_v2, FOOTER_MEMBER_BYTES,
    FOOTER_MEMBER_BYTES_V2,
};
use imgport::tree::internals::index_v2::decode_block;
use imgport::tree::{read_tree_index, share_source, Index, IndexBuilder, IndexError, StreamFormat};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    if let Ok((_, ix)) = read_tree_index(share_source(Cursor::new(data.to_vec())), len) {
        exercise(&ix, data);
    }
    for (size, v2) in [(FOOTER_MEMBER_BYTES, false), (FOOTER_MEMBER_BYTES_V2, true)] {
        if let Some(tail) = data.len().checked_sub(size) {
            if v2 {
                let _ = parse_gzip_footer_v2(&data[tail..]);
            } else {
                let _ = parse_gzip_footer(&data[tail..]);
            }
        }
    }

    if let Ok(ix) = Index::decode(data.to_vec(), u64::MAX) {
        exercise(&ix, data);
    }

    // The input as a v2 head whose blocks are read out of the input itself.
    let src = data.to_vec();
    let fetch = Arc::new(
        move |offset: u64, clen: u64| -> Result<Vec<u8>, IndexError> {
            let from = offset.min(src.len() as u64) as usize;
            let to = offset.saturating_add(clen).min(src.len() as u64) as usize;
            Ok(src[from..to].to_vec())
        },
    );
    if let Ok(ix) = Index::decode_v2(data, u64::MAX, (0, len), |c| c, fetch) {
        exercise(&ix, data);
    }

    for format in [StreamFormat::Tar, StreamFormat::Newc] {
        let Ok(entries) = decode_block(data, 0, format) else {
            continue;
        };
        if format == StreamFormat::Newc || entries.is_empty() {
            continue;
        }
        let mut b = IndexBuilder::new();
        for e in &entries {
            b.push_entry(e);
        }
        let trailer = encode_gzip_trailer(&b.finish(), 0).expect("an in-memory index writes");
        let tlen = trailer.len() as u64;
        let (_, ix) = read_tree_index(share_source(Cursor::new(trailer)), tlen)
            .expect("a trailer we wrote reads back");
        assert_eq!(ix.len(), entries.len() as u64);
        let back: Vec<_> = ix
            .entries()
            .map(|e| e.expect("blocks we wrote decode"))
            .collect();
        assert!(back == entries, "entries change through the v2 trailer");
    }
});

fn exercise(ix: &Index, data: &[u8]) {
    let mut n = 0u64;
    let mut last = None;
    for e in ix.entries() {
        // v1 was validated by decode; v2 blocks are read now and may be damaged.
        let Ok(e) = e else {
            assert_eq!(ix.version(), 2, "v1 entries were validated by decode");
            return;
        };
        let r = ix.members_covering(e.data_offset, e.stored);
        assert!(r.start <= r.end && r.end <= ix.members.len());
        n += 1;
        last = Some(e.path);
    }
    assert_eq!(n, ix.len());
    if let Some(path) = last {
        if let Ok(found) = ix.find(&path) {
            // Paths may repeat in a hostile index; the one found has the name asked.
            assert!(found.is_none_or(|f| f.path == path));
        }
    }
    for w in data.chunks(8).take(16) {
        let mut b = [0u8; 8];
        b[..w.len()].copy_from_slice(w);
        let off = u64::from_le_bytes(b);
        let r = ix.members_covering(off, off >> 3);
        assert!(r.start <= r.end && r.end <= ix.members.len());
        let _ = ix.find(w);
    }
}

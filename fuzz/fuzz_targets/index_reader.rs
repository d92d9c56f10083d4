//! Fuzzes the tree index (FORMAT.md §2.2, §3): `read_gzip_index` over the input as a
//! whole tree file, `Index::decode` of the input as an encoded index (reaching the
//! decoder directly, past the footer/deflate/CRC checks), iteration of all entries and
//! `members_covering` on offsets taken from the input.
//!
//! Consistency check: the same encoded index wrapped by `encode_gzip_trailer` must read
//! back through `read_gzip_index` exactly as `Index::decode` reads it.
#![no_main]

use std::io::Cursor;

use imgport::tree::internals::gzip_trailer::{
    encode_gzip_trailer, parse_gzip_footer, read_gzip_index, FOOTER_MEMBER_BYTES,
};
use imgport::tree::Index;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let len = data.len() as u64;
    if let Ok(ix) = read_gzip_index(&mut Cursor::new(data), len) {
        exercise(&ix, data);
    }
    if let Some(tail) = data.len().checked_sub(FOOTER_MEMBER_BYTES) {
        let _ = parse_gzip_footer(&data[tail..]);
    }

    let direct = Index::decode(data.to_vec(), u64::MAX);
    if let Ok(ix) = &direct {
        exercise(ix, data);
    }
    // The index behind a member table with offsets up to `data_end`: wrapping it in a
    // trailer at that offset must not change how it decodes.
    let data_end = direct.as_ref().map_or(0, |ix| {
        ix.members
            .last()
            .map_or(0, |(m, c, _)| c.saturating_add(m.compressed))
    });
    if data_end < (1 << 20) {
        let mut file = vec![0u8; data_end as usize];
        file.extend_from_slice(&encode_gzip_trailer(data, data_end));
        let flen = file.len() as u64;
        let wrapped = read_gzip_index(&mut Cursor::new(file), flen);
        match (&direct, &wrapped) {
            (Ok(a), Ok(b)) => {
                assert_eq!(a.members, b.members);
                assert_eq!(a.len(), b.len());
                assert!(a
                    .entries()
                    .map(Result::unwrap)
                    .eq(b.entries().map(Result::unwrap)));
            }
            (Err(_), Err(_)) => {}
            (a, b) => panic!("decode {:?} vs trailer {:?}", a.is_ok(), b.is_ok()),
        }
    }
});

fn exercise(ix: &Index, data: &[u8]) {
    let mut n = 0u64;
    for e in ix.entries() {
        // `Index::decode` decoded every entry once already: iteration cannot fail.
        let e = e.expect("entries were validated by decode");
        let r = ix.members_covering(e.data_offset, e.stored);
        assert!(r.start <= r.end && r.end <= ix.members.len());
        n += 1;
    }
    assert_eq!(n, ix.len());
    for w in data.chunks(8).take(16) {
        let mut b = [0u8; 8];
        b[..w.len()].copy_from_slice(w);
        let off = u64::from_le_bytes(b);
        let r = ix.members_covering(off, off >> 3);
        assert!(r.start <= r.end && r.end <= ix.members.len());
    }
}

//! Fuzzes the gzip member layer (FORMAT.md §2): `gzip::parse_header` on the input,
//! `gzip::decode_data` on a member it calls Data, and a reader-style hop through the
//! whole buffer using only the `IG`/tagged lengths, as the index-less reader does.
//!
//! Invariants checked beyond "no panic": a decoded member inflates to exactly its
//! ISIZE, and re-encoding what it inflated to decodes back to the same bytes.
#![no_main]

use imgport::tree::internals::gzip::{self, Header, MAX_UNIT_BYTES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut dec = libdeflater::Decompressor::new();
    // One member at the start of the input, as a worker given one member would see it.
    if let Ok(Header::Data { total }) = gzip::parse_header(data) {
        assert!(total as usize <= MAX_UNIT_BYTES);
        if let Some(m) = data.get(..total as usize) {
            check_member(&mut dec, m);
        }
    }
    // Hop member to member through the buffer the way a sequential reader would.
    let mut pos = 0usize;
    let mut hops = 0usize;
    while pos < data.len() {
        let total = match gzip::parse_header(&data[pos..]) {
            Ok(Header::Data { total }) => {
                let Some(m) = data.get(pos..pos.saturating_add(total as usize)) else {
                    break;
                };
                check_member(&mut dec, m);
                total
            }
            Ok(Header::Tagged { total, payload, .. }) => {
                assert!(payload.len() < total as usize);
                total
            }
            Ok(Header::Foreign) | Err(_) => break,
        };
        // Every member is at least a header and a trailer long, so the hop always
        // advances and the loop is bounded by the input length.
        assert!(total > 0);
        pos = pos.saturating_add(total as usize);
        hops += 1;
    }
    assert!(hops <= data.len());
});

fn check_member(dec: &mut libdeflater::Decompressor, m: &[u8]) {
    if let Ok(plain) = gzip::decode_data(dec, m) {
        let isize = u32::from_le_bytes(m[m.len() - 4..].try_into().unwrap());
        assert_eq!(plain.len(), isize as usize);
        let again = gzip::encode_data(&mut gzip::compressor(1), &plain);
        assert_eq!(gzip::decode_data(dec, &again).unwrap(), plain);
    }
}

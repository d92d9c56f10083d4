//! Fuzzes the tar pull decoder (`tree::TarReader`): every entry, every byte of
//! its data, as the restorer consumes them.
//!
//! Invariants: no regular file yields more data than its stored size, and the decoder
//! stops (each entry consumes at least one 512-byte block, so a bound on entries is a
//! bound on the input). Other kinds may expose a data area (a pax hard link with data,
//! a GNU dumpdir) that restorers skip; see `EntryReader`.
#![no_main]

use imgport::tree::{EntryReader, Kind, TarReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = TarReader::new(data);
    let mut buf = vec![0u8; 4096];
    let mut entries = 0usize;
    while let Ok(Some(e)) = r.next_entry() {
        entries += 1;
        assert!(
            entries <= data.len() / 512 + 1,
            "more entries than header blocks"
        );
        let mut got = 0u64;
        loop {
            match r.read_data(&mut buf) {
                Ok(0) => break,
                Ok(n) => got += n as u64,
                Err(_) => break,
            }
        }
        if e.kind == Kind::File {
            assert!(got <= e.stored_size(), "read past the file's stored size");
        }
        let _ = r.take_warnings();
    }
});

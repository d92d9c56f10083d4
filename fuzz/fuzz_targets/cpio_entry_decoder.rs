//! Fuzzes the cpio newc pull decoder (`tree::CpioReader`): every entry (including
//! hard links released from buffered link groups), every byte of its data. A regular
//! file never yields more than its stored size.
#![no_main]

use imgport::tree::{CpioReader, EntryReader, Kind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = CpioReader::new(data);
    let mut buf = vec![0u8; 4096];
    let mut entries = 0usize;
    while let Ok(Some(e)) = r.next_entry() {
        entries += 1;
        // A header is 110 bytes plus a NUL-terminated name; link groups only re-emit
        // members already read, so entries never outnumber headers in the input.
        assert!(entries <= data.len() / 112 + 1, "more entries than headers");
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

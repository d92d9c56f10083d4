//! Fuzzes the newc metadata sidecar parser (`tree::SidecarReader`, FORMAT.md §7):
//! every record until the end or the first error. Records that parse keep the bounds
//! the format promises, so the restorer never meets a name or value it must check
//! again.
#![no_main]

use imgport::tree::SidecarReader;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut r) = SidecarReader::new(data) else {
        return;
    };
    let mut records = 0usize;
    while let Ok(Some(rec)) = r.next_record() {
        records += 1;
        // A record takes at least 5 bytes (path length, path, flags, two times, xattr
        // count): the count in the head cannot make the parser spin.
        assert!(records <= data.len() / 5 + 1, "more records than bytes allow");
        assert!(!rec.path.is_empty() && !rec.path.contains(&0));
        assert!(rec.mtime.nanos < 1_000_000_000);
        for (name, value) in &rec.xattrs {
            assert!(name.len() <= 255 && !name.contains(&0));
            assert!(value.len() <= 64 * 1024);
        }
        if let Some(map) = &rec.sparse {
            let mut end = 0u64;
            for &(off, len) in map {
                assert!(off >= end, "segments sorted and disjoint");
                end = off.checked_add(len).expect("no overflow");
            }
        }
    }
});

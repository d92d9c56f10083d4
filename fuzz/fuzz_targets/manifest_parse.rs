//! Fuzzes `Manifest::parse` (the bundle's manifest.xml, read before anything else of
//! an untrusted bundle) and, when it parses, `to_xml` and a re-parse of that output.
#![no_main]

use imgport::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Manifest::parse(data) {
        let xml = m.to_xml();
        let _ = Manifest::parse(xml.as_bytes());
        let _ = m.imagename();
    }
});

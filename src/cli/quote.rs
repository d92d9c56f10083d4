//! Names as GNU tar prints them (`tar -tv`, its default `--quoting-style=escape` in a
//! UTF-8 locale), so `imgport ls` and `tar -tv` agree byte for byte; and the raw bytes
//! of a name for `--json` (docs/JSON.md).

use std::fmt::Write;

/// `name` with GNU tar's escapes: printable UTF-8 as is, `\\` for a backslash, C's
/// letter escapes for the control characters that have one, and a three-digit octal
/// escape for every other byte: other control characters, DEL, C1 controls and bytes
/// that are not UTF-8 (`caf\351-\377\376`).
pub fn tar_escape(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '\x07' => out.push_str("\\a"),
                '\x08' => out.push_str("\\b"),
                '\x0c' => out.push_str("\\f"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\x0b' => out.push_str("\\v"),
                c if c.is_control() => {
                    let mut buf = [0u8; 4];
                    octal(&mut out, c.encode_utf8(&mut buf).as_bytes());
                }
                c => out.push(c),
            }
        }
        octal(&mut out, chunk.invalid());
    }
    out
}

fn octal(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        let _ = write!(out, "\\{b:03o}");
    }
}

/// Standard base64 (RFC 4648, padded) of raw name bytes: `--json` carries it beside a
/// name that is not UTF-8, so a reader gets the exact bytes back.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_gnu_tar() {
        assert_eq!(tar_escape(b"caf\xe9-\xff\xfe"), "caf\\351-\\377\\376");
        assert_eq!(tar_escape("café a b".as_bytes()), "café a b");
        assert_eq!(
            tar_escape(b"a\\b\nc\td\x7fe\x01"),
            "a\\\\b\\nc\\td\\177e\\001"
        );
        assert_eq!(tar_escape("x\u{85}".as_bytes()), "x\\302\\205");
    }

    #[test]
    fn base64_matches_rfc_4648() {
        for (raw, b64) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"\xff\xfe", "//4="),
        ] {
            assert_eq!(base64(raw), b64);
        }
    }
}

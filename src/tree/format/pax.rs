//! pax extended header records (POSIX.1-2001), both ways: the records the header
//! encoder emits (`"<len> <key>=<value>\n"`, names, times, xattrs) and the decoder's
//! parsing and application of `x`/`g` records onto an entry.

use crate::tree::entry::Timestamp;

// ---------------------------------------------------------------------------------
// Encoding

/// Appends one pax record `"<len> <key>=<value>\n"`, where `<len>` counts the whole
/// record including its own digits. Values are raw bytes: the length prefix makes
/// binary (NUL, newline) values safe.
pub(crate) fn record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    let rest = 1 + key.len() + 1 + value.len() + 1; // ' ' key '=' value '\n'
    let mut digits = decimal_digits(rest as u64);
    // Adding the digits may carry the total into one more digit (e.g. 98 + 2 = 100).
    while decimal_digits((rest + digits) as u64) != digits {
        digits += 1;
    }
    out.extend_from_slice((rest + digits).to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

pub(crate) fn decimal_digits(mut n: u64) -> usize {
    let mut d = 1;
    while n >= 10 {
        n /= 10;
        d += 1;
    }
    d
}

/// GNU tar's xattr keyword escaping: `%` → `%25`, `=` → `%3D` (a raw `=` would end the
/// keyword). Other bytes, including non-UTF-8, are kept as they are.
pub(crate) fn escape_xattr_name(name: &[u8], out: &mut Vec<u8>) {
    for &b in name {
        match b {
            b'%' => out.extend_from_slice(b"%25"),
            b'=' => out.extend_from_slice(b"%3D"),
            _ => out.push(b),
        }
    }
}

/// pax time value: `secs[.frac]` with trailing zeros of the fraction trimmed. Negative
/// times with a fraction are written as the exact negative decimal (e.g. secs -2,
/// nanos 250 000 000 → `-1.75`).
pub(crate) fn format_time(t: Timestamp) -> String {
    let (neg, whole, nanos) = if t.secs < 0 && t.nanos > 0 {
        (true, (-(t.secs + 1)) as u64, 1_000_000_000 - t.nanos)
    } else if t.secs < 0 {
        (true, t.secs.unsigned_abs(), 0)
    } else {
        (false, t.secs as u64, t.nanos)
    };
    let mut s = String::new();
    if neg {
        s.push('-');
    }
    s.push_str(&whole.to_string());
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s
}

// ---------------------------------------------------------------------------------
// Decoding

pub(crate) fn parse_dec(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 20 {
        return None;
    }
    let mut n: u64 = 0;
    for &c in v {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    Some(n)
}

/// Parses a pax time value `[-]secs[.fraction]` into seconds and nanoseconds.
pub(crate) fn parse_pax_time(v: &[u8]) -> Option<Timestamp> {
    let (neg, v) = match v.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, v),
    };
    let (int, frac) = match v.iter().position(|&c| c == b'.') {
        Some(p) => (&v[..p], &v[p + 1..]),
        None => (v, &[][..]),
    };
    let secs = i64::try_from(parse_dec(int)?).ok()?;
    let mut nanos: u32 = 0;
    for (i, &c) in frac.iter().enumerate() {
        if !c.is_ascii_digit() {
            return None;
        }
        if i < 9 {
            nanos = nanos * 10 + u32::from(c - b'0');
        }
    }
    for _ in frac.len()..9 {
        nanos *= 10;
    }
    if !neg {
        return Some(Timestamp { secs, nanos });
    }
    // -1.25 s is secs -2 + 0.75 s: keep nanos in 0..1e9 as utimensat wants.
    if nanos == 0 {
        Some(Timestamp {
            secs: secs.checked_neg()?,
            nanos: 0,
        })
    } else {
        Some(Timestamp {
            secs: secs.checked_neg()?.checked_sub(1)?,
            nanos: 1_000_000_000 - nanos,
        })
    }
}

pub(crate) fn url_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            let h = s.get(i + 1..i + 3)?;
            let hex = |c: u8| (c as char).to_digit(16);
            out.push((hex(h[0])? * 16 + hex(h[1])?) as u8);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Some(out)
}

pub(crate) fn base64_decode(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() / 4 * 3 + 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in s {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' | b' ' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Longest owner name (`uname`/`gname`) accepted from a pax record. Linux caps login
/// names at 256 bytes (LOGIN_NAME_MAX) and real ones fit ustar's 32. The bound matters
/// for global (`g`) headers: their names are copied into every later entry, so a
/// 16 MiB name followed by a few thousand 512-byte headers would otherwise cost
/// gigabytes of copies, and gigabytes of memory in a restorer that keeps directory
/// entries until the end.
pub(crate) const MAX_OWNER_NAME: usize = 256;

/// Values from pax `x`/`g` records that override the ustar header.
#[derive(Debug, Clone, Default)]
pub(crate) struct Pax {
    pub(crate) path: Option<Vec<u8>>,
    pub(crate) linkpath: Option<Vec<u8>>,
    pub(crate) size: Option<u64>,
    pub(crate) uid: Option<u64>,
    pub(crate) gid: Option<u64>,
    pub(crate) uname: Option<Vec<u8>>,
    pub(crate) gname: Option<Vec<u8>>,
    pub(crate) mtime: Option<Timestamp>,
    pub(crate) atime: Option<Timestamp>,
    pub(crate) devmajor: Option<u64>,
    pub(crate) devminor: Option<u64>,
    pub(crate) xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    pub(crate) acl_access: Option<Vec<u8>>,
    pub(crate) acl_default: Option<Vec<u8>>,
    pub(crate) sparse_major: Option<u64>,
    pub(crate) sparse_minor: Option<u64>,
    pub(crate) sparse_name: Option<Vec<u8>>,
    pub(crate) sparse_realsize: Option<u64>,
    /// GNU sparse 0.0 (`offset`/`numbytes` pairs) and 0.1 (`map`) carry the map here.
    pub(crate) sparse_map: Vec<(u64, u64)>,
    pub(crate) sparse_pending_offset: Option<u64>,
}

impl Pax {
    fn push_xattr(&mut self, name: Vec<u8>, value: Vec<u8>) {
        // bsdtar writes each xattr twice (LIBARCHIVE and SCHILY spellings): keep one.
        if !self.xattrs.iter().any(|(n, _)| *n == name) {
            self.xattrs.push((name, value));
        }
    }

    /// Applies one record. Global headers (`global`) only supply defaults for owner
    /// and time keys: a global path or size would apply to every entry, which no
    /// writer means and which would only be a way to confuse the restore.
    pub(crate) fn apply(&mut self, key: &[u8], value: &[u8], global: bool) -> Result<(), String> {
        let bad = || format!("bad pax value for {}", String::from_utf8_lossy(key));
        let num = |v: &[u8]| parse_dec(v).ok_or_else(bad);
        // An empty value deletes a (global) default, per POSIX.
        let empty = value.is_empty();
        match key {
            b"uid" => self.uid = if empty { None } else { Some(num(value)?) },
            b"gid" => self.gid = if empty { None } else { Some(num(value)?) },
            b"uname" | b"gname" if value.len() > MAX_OWNER_NAME => {
                return Err(format!(
                    "pax {} of {} bytes exceeds the {MAX_OWNER_NAME}-byte limit",
                    String::from_utf8_lossy(key),
                    value.len()
                ))
            }
            b"uname" => self.uname = (!empty).then(|| value.to_vec()),
            b"gname" => self.gname = (!empty).then(|| value.to_vec()),
            b"mtime" => {
                self.mtime = if empty {
                    None
                } else {
                    Some(parse_pax_time(value).ok_or_else(bad)?)
                }
            }
            b"atime" => {
                self.atime = if empty {
                    None
                } else {
                    Some(parse_pax_time(value).ok_or_else(bad)?)
                }
            }
            _ if global => {}
            b"path" => self.path = (!empty).then(|| value.to_vec()),
            b"linkpath" => self.linkpath = (!empty).then(|| value.to_vec()),
            b"size" => self.size = if empty { None } else { Some(num(value)?) },
            b"SCHILY.devmajor" => self.devmajor = Some(num(value)?),
            b"SCHILY.devminor" => self.devminor = Some(num(value)?),
            b"SCHILY.acl.access" => self.acl_access = Some(value.to_vec()),
            b"SCHILY.acl.default" => self.acl_default = Some(value.to_vec()),
            b"RHT.security.selinux" => {
                self.push_xattr(b"security.selinux".to_vec(), value.to_vec())
            }
            b"GNU.sparse.major" => self.sparse_major = Some(num(value)?),
            b"GNU.sparse.minor" => self.sparse_minor = Some(num(value)?),
            b"GNU.sparse.name" => self.sparse_name = Some(value.to_vec()),
            b"GNU.sparse.realsize" | b"GNU.sparse.size" => self.sparse_realsize = Some(num(value)?),
            b"GNU.sparse.offset" => {
                // 0.0: offsets and sizes alternate as repeated keywords.
                self.sparse_major.get_or_insert(0);
                self.sparse_pending_offset = Some(num(value)?);
            }
            b"GNU.sparse.numbytes" => {
                let off = self.sparse_pending_offset.take().ok_or_else(bad)?;
                self.sparse_map.push((off, num(value)?));
            }
            b"GNU.sparse.map" => {
                self.sparse_major.get_or_insert(0);
                self.sparse_minor.get_or_insert(1);
                let nums: Option<Vec<u64>> = value.split(|&c| c == b',').map(parse_dec).collect();
                let nums = nums.ok_or_else(bad)?;
                if nums.len() % 2 != 0 {
                    return Err(bad());
                }
                self.sparse_map
                    .extend(nums.chunks_exact(2).map(|p| (p[0], p[1])));
            }
            _ => {
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    self.push_xattr(name.to_vec(), value.to_vec());
                } else if let Some(enc) = key.strip_prefix(b"LIBARCHIVE.xattr.") {
                    let name = url_decode(enc).ok_or_else(bad)?;
                    let val = base64_decode(value).ok_or_else(bad)?;
                    self.push_xattr(name, val);
                }
                // Other keywords (ctime, comment, hdrcharset, SCHILY.dev/ino/nlink,
                // LIBARCHIVE.creationtime, ...) carry nothing we restore.
            }
        }
        Ok(())
    }
}

/// One pax record: keyword and raw value.
pub(crate) type PaxRecord<'a> = (&'a [u8], &'a [u8]);

/// Splits a pax extended header into (key, value) records: `"<len> <key>=<value>\n"`,
/// where `len` counts the whole record, so values are binary-safe.
pub(crate) fn parse_pax_records(data: &[u8]) -> Result<Vec<PaxRecord<'_>>, String> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        // GNU tar pads the last block with NULs after the records.
        if data[pos] == 0 {
            break;
        }
        let rest = &data[pos..];
        let sp = rest
            .iter()
            .take(21)
            .position(|&c| c == b' ')
            .ok_or("pax record without length")?;
        let len = parse_dec(&rest[..sp])
            .and_then(|l| usize::try_from(l).ok())
            .ok_or("bad pax record length")?;
        if len <= sp + 1 || len > rest.len() {
            return Err(format!("pax record length {len} out of range"));
        }
        let rec = &rest[sp + 1..len];
        let rec = rec
            .strip_suffix(b"\n")
            .ok_or("pax record not ended by newline")?;
        let eq = rec
            .iter()
            .position(|&c| c == b'=')
            .ok_or("pax record without '='")?;
        out.push((&rec[..eq], &rec[eq + 1..]));
        pos += len;
    }
    Ok(out)
}

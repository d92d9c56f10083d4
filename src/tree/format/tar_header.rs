//! Encoding of one [`Entry`] into POSIX pax tar header bytes.
//!
//! The output is what GNU tar `--posix --xattrs -S` and bsdtar read: an optional pax
//! extended header (`x` typeflag) carrying whatever the 512-byte ustar block cannot
//! hold, then the ustar block itself. Everything here is pure byte shuffling (no I/O),
//! so the parallel engine can call it from any thread.
//!
//! Choices and why:
//! * The ustar block is built by hand rather than with `tar::Header` so that raw,
//!   non-UTF-8 names and the exact field layout GNU tar uses are under our control;
//!   the unit tests parse the result back with the `tar` crate as an independent check.
//! * pax records are only emitted when needed, which keeps the common case (short ASCII
//!   name, whole-second mtime, no xattrs) at exactly one 512-byte block per entry.
//! * Numeric fields that overflow octal are written in GNU base-256 as well as in a pax
//!   record, so both old GNU readers and pax readers get the right value.
//! * Sparse files use GNU PAX sparse format 1.0, byte-for-byte as GNU tar 1.34 writes it,
//!   except that the ustar name uses `GNUSparseFile.0` (not the process id) so output is
//!   deterministic.

use std::borrow::Cow;

use crate::tree::entry::{Entry, Kind};
use crate::tree::error::{display_path, TreeError};
use crate::tree::format::acl::acl_text;
use crate::tree::format::pax::{escape_xattr_name, format_time, record};
pub use crate::tree::format::{pad_to_block, padding, BLOCK_BYTES};

/// Size of the end-of-archive marker (two zero blocks) in bytes.
pub const END_OF_ARCHIVE_BYTES: usize = 2 * BLOCK_BYTES;

/// Largest value of an 8-byte octal field (7 digits + NUL): mode, uid, gid, devmajor/minor.
const OCTAL7_MAX: u64 = 0o7_777_777;
/// Largest value of a 12-byte octal field (11 digits + NUL): size, mtime. 8 GiB - 1.
const OCTAL11_MAX: u64 = 0o77_777_777_777;

/// Field offsets and lengths of the ustar header block (POSIX.1-2001, "ustar Interchange Format").
const NAME: (usize, usize) = (0, 100);
const MODE: (usize, usize) = (100, 8);
const UID: (usize, usize) = (108, 8);
const GID: (usize, usize) = (116, 8);
const SIZE: (usize, usize) = (124, 12);
const MTIME: (usize, usize) = (136, 12);
const CHKSUM: (usize, usize) = (148, 8);
const TYPEFLAG: usize = 156;
const LINKNAME: (usize, usize) = (157, 100);
const MAGIC: (usize, usize) = (257, 8);
const UNAME: (usize, usize) = (265, 32);
const GNAME: (usize, usize) = (297, 32);
const DEVMAJOR: (usize, usize) = (329, 8);
const DEVMINOR: (usize, usize) = (337, 8);
const PREFIX: (usize, usize) = (345, 155);

/// Mode written on pax extended headers themselves (as GNU tar does).
const PAX_HEADER_MODE: u64 = 0o644;

/// The ustar block and everything preceding an entry's data, for one entry.
///
/// Returns the pax extended header (typeflag `x`, only when some value does not fit the
/// ustar block) followed by the ustar header block. For a sparse file
/// (`entry.sparse == Some(..)` on a [`Kind::File`]) it also returns the GNU 1.0 sparse
/// map block(s), which formally belong to the entry's data area; the caller then writes
/// exactly [`Entry::stored_size`] bytes of segment data and pads with [`padding`].
/// For every other kind the caller writes `stored_size()` bytes (0 except for files).
///
/// Cost: one allocation of a few blocks; O(path + xattr bytes). Errors
/// ([`TreeError::Unsupported`]) only for an empty path or device numbers above
/// 2 097 151, which Linux cannot produce.
pub fn encode_header(entry: &Entry) -> Result<Vec<u8>, TreeError> {
    let mut out = Vec::new();
    encode_header_into(entry, &mut out)?;
    Ok(out)
}

/// [`encode_header`] appended to `out`, which is left as it was on error. For an
/// entry with no pax records (short ASCII name, whole-second times, no xattrs) it
/// allocates nothing: the parallel encoder plans every header of a unit into one
/// buffer.
pub fn encode_header_into(entry: &Entry, out: &mut Vec<u8>) -> Result<(), TreeError> {
    if entry.path.is_empty() {
        return Err(unsupported(entry, "empty archive path"));
    }
    // Records are appended in a fixed order (name, link, size, owners, times, ACLs,
    // xattrs): the output must not depend on anything but the entry.
    let mut records = Vec::new();
    let mut block = [0u8; BLOCK_BYTES];
    let map_block = put_name(entry, &mut block, &mut records);
    put_kind(entry, &mut block, &mut records)?;
    // The size of the data area: sparse map + segments for sparse files.
    let data_area = map_block.as_ref().map_or(0, |m| m.len() as u64) + entry.stored_size();
    if put_number(&mut block, SIZE, data_area) {
        record(&mut records, b"size", data_area.to_string().as_bytes());
    }
    put_mode_and_owners(entry, &mut block, &mut records);
    put_times(entry, &mut block, &mut records);
    put_acls_and_xattrs(entry, &mut records);
    put_bytes(&mut block, MAGIC, b"ustar\x0000");
    finish_checksum(&mut block);
    assemble(entry, records, &block, map_block, out);
    Ok(())
}

/// The name fields, or the pax `path` record (or, for a sparse file, the GNU sparse
/// 1.0 records, which replace `path`). Returns the sparse map block, if any.
fn put_name(
    entry: &Entry,
    block: &mut [u8; BLOCK_BYTES],
    records: &mut Vec<u8>,
) -> Option<Vec<u8>> {
    let sparse_map = match (&entry.kind, &entry.sparse) {
        (Kind::File, Some(map)) => Some(map.as_slice()),
        _ => None,
    };
    match sparse_map {
        Some(map) => {
            let map_bytes = sparse_map_block(map, entry.size);
            record(records, b"GNU.sparse.major", b"1");
            record(records, b"GNU.sparse.minor", b"0");
            record(records, b"GNU.sparse.name", &entry.path);
            record(
                records,
                b"GNU.sparse.realsize",
                entry.size.to_string().as_bytes(),
            );
            // GNU tar names the ustar member `%d/GNUSparseFile.%p/%f` and truncates it to
            // 100 bytes; it never adds `path` (which would override GNU.sparse.name in
            // readers that apply records in order, e.g. Python's tarfile).
            let (dir, base) = split_dir_base(&entry.path);
            let mut name = dir.to_vec();
            name.extend_from_slice(b"/GNUSparseFile.0/");
            name.extend_from_slice(base);
            put_name_lossy(block, &name);
            Some(map_bytes)
        }
        None => {
            // A trailing slash marks directories for readers that ignore the typeflag.
            let name: Cow<'_, [u8]> = if entry.kind == Kind::Dir && entry.path.last() != Some(&b'/')
            {
                let mut name = entry.path.clone();
                name.push(b'/');
                Cow::Owned(name)
            } else {
                Cow::Borrowed(&entry.path)
            };
            if !ascii_safe(&name) || !put_name_split(block, &name) {
                record(records, b"path", &entry.path);
                put_name_lossy(block, &name);
            }
            None
        }
    }
}

/// Typeflag, link target (or `linkpath` record) and device numbers.
fn put_kind(
    entry: &Entry,
    block: &mut [u8; BLOCK_BYTES],
    records: &mut Vec<u8>,
) -> Result<(), TreeError> {
    let (typeflag, link, dev) = match &entry.kind {
        Kind::File => (b'0', None, None),
        Kind::HardLink(target) => (b'1', Some(target), None),
        Kind::Symlink(target) => (b'2', Some(target), None),
        Kind::CharDevice { major, minor } => (b'3', None, Some((*major, *minor))),
        Kind::BlockDevice { major, minor } => (b'4', None, Some((*major, *minor))),
        Kind::Dir => (b'5', None, None),
        Kind::Fifo => (b'6', None, None),
    };
    block[TYPEFLAG] = typeflag;
    if let Some(target) = link {
        if target.len() <= LINKNAME.1 && ascii_safe(target) {
            put_bytes(block, LINKNAME, target);
        } else {
            record(records, b"linkpath", target);
            put_bytes(block, LINKNAME, &lossy_truncated(target, LINKNAME.1));
        }
    }
    let (devmajor, devminor) = dev.unwrap_or((0, 0));
    if u64::from(devmajor) > OCTAL7_MAX || u64::from(devminor) > OCTAL7_MAX {
        // No pax keyword exists for device numbers; Linux's 12/20-bit split never gets here.
        return Err(unsupported(
            entry,
            "device number too large for a tar header",
        ));
    }
    put_octal(block, DEVMAJOR, u64::from(devmajor));
    put_octal(block, DEVMINOR, u64::from(devminor));
    Ok(())
}

/// Mode, uid/gid (pax records when they overflow octal), owner names (records when
/// they do not fit or are not plain ASCII).
fn put_mode_and_owners(entry: &Entry, block: &mut [u8; BLOCK_BYTES], records: &mut Vec<u8>) {
    put_octal(block, MODE, u64::from(entry.mode & 0o7777));
    if put_number(block, UID, u64::from(entry.uid)) {
        record(records, b"uid", entry.uid.to_string().as_bytes());
    }
    if put_number(block, GID, u64::from(entry.gid)) {
        record(records, b"gid", entry.gid.to_string().as_bytes());
    }
    for (name, field, key) in [
        (&entry.uname, UNAME, b"uname".as_slice()),
        (&entry.gname, GNAME, b"gname".as_slice()),
    ] {
        if let Some(name) = name {
            // The field must keep a terminating NUL for strict readers, hence `<`.
            if name.len() < field.1 && ascii_safe(name) {
                put_bytes(block, field, name);
            } else {
                record(records, key, name);
            }
        }
    }
}

/// mtime (base-256 when it does not fit octal; a record when it has a fraction or
/// does not fit), atime when recorded.
fn put_times(entry: &Entry, block: &mut [u8; BLOCK_BYTES], records: &mut Vec<u8>) {
    let mtime = entry.mtime;
    let mtime_fits = mtime.secs >= 0 && (mtime.secs as u64) <= OCTAL11_MAX;
    if mtime_fits {
        put_octal(block, MTIME, mtime.secs as u64);
    } else {
        put_base256_signed(block, MTIME, mtime.secs);
    }
    if !mtime_fits || mtime.nanos != 0 {
        record(records, b"mtime", format_time(mtime).as_bytes());
    }
    if let Some(atime) = entry.atime {
        record(records, b"atime", format_time(atime).as_bytes());
    }
}

/// ACLs as text (GNU tar `--acls` resets ACLs absent from SCHILY.acl.*, even if the
/// raw system.posix_acl_* xattr was just restored), then every raw xattr.
fn put_acls_and_xattrs(entry: &Entry, records: &mut Vec<u8>) {
    for (xattr, key) in [
        (&b"system.posix_acl_access"[..], &b"SCHILY.acl.access"[..]),
        (b"system.posix_acl_default", b"SCHILY.acl.default"),
    ] {
        let blob = entry.xattrs.iter().find(|(n, _)| n == xattr);
        if let Some(text) = blob.and_then(|(_, v)| acl_text(v)) {
            record(records, key, text.as_bytes());
        }
    }
    for (name, value) in &entry.xattrs {
        let mut key = b"SCHILY.xattr.".to_vec();
        escape_xattr_name(name, &mut key);
        record(records, &key, value);
    }
}

/// The pax header (when there are records), the ustar block, the sparse map.
fn assemble(
    entry: &Entry,
    mut records: Vec<u8>,
    block: &[u8; BLOCK_BYTES],
    map_block: Option<Vec<u8>>,
    out: &mut Vec<u8>,
) {
    // pax values are UTF-8 unless declared otherwise; root images may hold names in
    // any bytes, and libarchive refuses (or converts) undeclared non-UTF-8 names.
    if needs_binary_charset(entry, &records) {
        let mut first = Vec::new();
        record(&mut first, b"hdrcharset", b"BINARY");
        first.extend_from_slice(&records);
        records = first;
    }

    let start = out.len();
    out.reserve(
        if records.is_empty() {
            0
        } else {
            2 * BLOCK_BYTES + records.len()
        } + BLOCK_BYTES,
    );
    if !records.is_empty() {
        out.extend_from_slice(&pax_header_block(entry, records.len() as u64));
        out.extend_from_slice(&records);
        // Blocks are counted from this header's start, not from the buffer's.
        let pad = padding((out.len() - start) as u64);
        out.resize(out.len() + pad, 0);
    }
    out.extend_from_slice(block);
    if let Some(map) = map_block {
        out.extend_from_slice(&map);
    }
}

/// True if a name-like pax record (path, linkpath, names) is not valid UTF-8, which
/// POSIX requires to be announced with `hdrcharset=BINARY`. Only those records are
/// examined (xattr values are binary by definition). GNU tar 1.34 ignores the keyword
/// with a warning and uses the raw bytes, which is what we want anyway.
fn needs_binary_charset(entry: &Entry, records: &[u8]) -> bool {
    if records.is_empty() {
        return false;
    }
    let link = match &entry.kind {
        Kind::Symlink(t) | Kind::HardLink(t) => Some(t.as_slice()),
        _ => None,
    };
    [
        Some(entry.path.as_slice()),
        link,
        entry.uname.as_deref(),
        entry.gname.as_deref(),
    ]
    .into_iter()
    .flatten()
    .any(|v| !ascii_safe(v) && std::str::from_utf8(v).is_err())
}

/// The end-of-archive marker: two zero-filled 512-byte blocks.
///
/// GNU tar pads the archive further to its 10 KiB record size; that is not required by
/// POSIX and every reader accepts the bare 1024 bytes.
pub fn end_of_archive() -> [u8; END_OF_ARCHIVE_BYTES] {
    [0u8; END_OF_ARCHIVE_BYTES]
}

/// The GNU sparse 1.0 map: decimal count, then offset and size per line, NUL-padded to
/// a block. A file ending in a hole gets a final `(realsize, 0)` entry, as GNU tar
/// writes it, because GNU tar's extractor only sets the file length from such an entry.
fn sparse_map_block(map: &[(u64, u64)], realsize: u64) -> Vec<u8> {
    let ends_in_hole = map.last().is_none_or(|&(off, len)| off + len < realsize);
    let count = map.len() + usize::from(ends_in_hole);
    let mut out = format!("{count}\n").into_bytes();
    for &(off, len) in map {
        out.extend_from_slice(format!("{off}\n{len}\n").as_bytes());
    }
    if ends_in_hole {
        out.extend_from_slice(format!("{realsize}\n0\n").as_bytes());
    }
    pad_to_block(&mut out);
    out
}

/// The ustar block introducing `records_len` bytes of pax records for `entry`.
fn pax_header_block(entry: &Entry, records_len: u64) -> [u8; BLOCK_BYTES] {
    let mut block = [0u8; BLOCK_BYTES];
    // GNU tar's default `%d/PaxHeaders/%f`; readers ignore it, so a lossy form is fine.
    let (dir, base) = split_dir_base(&entry.path);
    let mut name = dir.to_vec();
    name.extend_from_slice(b"/PaxHeaders/");
    name.extend_from_slice(base);
    put_name_lossy(&mut block, &name);
    put_octal(&mut block, MODE, PAX_HEADER_MODE);
    put_octal(&mut block, UID, 0);
    put_octal(&mut block, GID, 0);
    // Cannot overflow: records are bounded by memory, far below 8 GiB in practice;
    // base-256 covers the rest.
    put_number(&mut block, SIZE, records_len);
    let secs = entry.mtime.secs.clamp(0, OCTAL11_MAX as i64) as u64;
    put_octal(&mut block, MTIME, secs);
    block[TYPEFLAG] = b'x';
    put_bytes(&mut block, MAGIC, b"ustar\x0000");
    finish_checksum(&mut block);
    block
}

/// Splits `a/b/c` into (`a/b`, `c`); a name without a slash has directory `.`.
fn split_dir_base(path: &[u8]) -> (&[u8], &[u8]) {
    let trimmed = path.strip_suffix(b"/").unwrap_or(path);
    match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => (b".", trimmed),
    }
}

/// True if every byte is printable ASCII, so the name is safe in a ustar field for any
/// reader regardless of locale (GNU tar and libarchive treat other bytes as charset-
/// dependent and prefer a pax record for them).
fn ascii_safe(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| (0x20..0x7f).contains(&b))
}

/// Stores `name` in the ustar name (+ prefix) fields if it fits; returns false if not.
fn put_name_split(block: &mut [u8; BLOCK_BYTES], name: &[u8]) -> bool {
    if name.len() <= NAME.1 {
        put_bytes(block, NAME, name);
        return true;
    }
    // Split at a '/' so that the prefix is at most 155 bytes and the rest at most 100;
    // the earliest such slash keeps the name part as long as possible.
    let first = name.len().saturating_sub(NAME.1 + 1);
    let last = PREFIX.1.min(name.len() - 1);
    for i in first..=last {
        if name[i] == b'/' && i > 0 && name.len() - i - 1 <= NAME.1 {
            put_bytes(block, PREFIX, &name[..i]);
            put_bytes(block, NAME, &name[i + 1..]);
            return true;
        }
    }
    false
}

/// Best-effort ustar name for entries whose real name travels in a pax record: unsafe
/// bytes become `_`, and the result is truncated to the 100-byte name field.
fn put_name_lossy(block: &mut [u8; BLOCK_BYTES], name: &[u8]) {
    let safe: Vec<u8> = name
        .iter()
        .map(|&b| if (0x20..0x7f).contains(&b) { b } else { b'_' })
        .collect();
    if !put_name_split(block, &safe) {
        put_bytes(block, NAME, &safe[..NAME.1]);
    }
}

fn lossy_truncated(bytes: &[u8], max: usize) -> Vec<u8> {
    bytes
        .iter()
        .take(max)
        .map(|&b| if (0x20..0x7f).contains(&b) { b } else { b'_' })
        .collect()
}

fn put_bytes(block: &mut [u8; BLOCK_BYTES], (off, len): (usize, usize), bytes: &[u8]) {
    let n = bytes.len().min(len);
    block[off..off + n].copy_from_slice(&bytes[..n]);
}

/// Zero-padded octal with a terminating NUL, the form GNU tar writes. The caller
/// guarantees the value fits (`len - 1` digits).
fn put_octal(block: &mut [u8; BLOCK_BYTES], (off, len): (usize, usize), value: u64) {
    // Digit by digit from the right, not `format!`: six numbers per header, and a
    // string for each cost ~2 % of an export of small files.
    let mut rest = value;
    for digit in block[off..off + len - 1].iter_mut().rev() {
        *digit = b'0' + (rest & 7) as u8;
        rest >>= 3;
    }
    block[off + len - 1] = 0;
}

/// Octal if `value` fits, otherwise GNU base-256. Returns true when it did not fit
/// octal, i.e. when a pax record must carry the value for strict pax readers.
fn put_number(block: &mut [u8; BLOCK_BYTES], field: (usize, usize), value: u64) -> bool {
    let max = if field.1 == 8 {
        OCTAL7_MAX
    } else {
        OCTAL11_MAX
    };
    if value <= max {
        put_octal(block, field, value);
        false
    } else {
        put_base256_signed(block, field, value as i64);
        true
    }
}

/// GNU base-256: big-endian two's complement in the whole field, first byte's top bit
/// set (0x80 for positive, 0xff for negative values).
fn put_base256_signed(block: &mut [u8; BLOCK_BYTES], (off, len): (usize, usize), value: i64) {
    let fill = if value < 0 { 0xff } else { 0 };
    let field = &mut block[off..off + len];
    field.fill(fill);
    let be = value.to_be_bytes();
    field[len - be.len()..].copy_from_slice(&be);
    if value >= 0 {
        field[0] = 0x80;
    }
}

/// Computes the header checksum (sum of all bytes with the checksum field read as
/// spaces) and stores it as 6 octal digits, NUL, space — GNU tar's layout.
fn finish_checksum(block: &mut [u8; BLOCK_BYTES]) {
    block[CHKSUM.0..CHKSUM.0 + CHKSUM.1].fill(b' ');
    let sum: u32 = block.iter().map(|&b| u32::from(b)).sum();
    // Six digits and a NUL (512 × 255 < 8^6), then the space GNU tar leaves.
    put_octal(block, (CHKSUM.0, 7), u64::from(sum));
    block[CHKSUM.0 + 7] = b' ';
}

fn unsupported(entry: &Entry, reason: &str) -> TreeError {
    TreeError::Unsupported {
        entry: display_path(&entry.path),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::entry::Timestamp;
    use std::io::Read;

    /// Length-driven pax record parser for the tests. The `tar` crate cannot be used for
    /// this: it splits records at '\n' and so rejects binary values and names with
    /// newlines, which is exactly what the length prefix exists for.
    fn pax_records(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
        let h = tar::Header::from_byte_slice(&bytes[..BLOCK_BYTES]);
        if h.entry_type() != tar::EntryType::XHeader {
            return Vec::new();
        }
        let len = h.size().unwrap() as usize;
        let mut data = &bytes[BLOCK_BYTES..BLOCK_BYTES + len];
        let mut out = Vec::new();
        while !data.is_empty() {
            let sp = data.iter().position(|&b| b == b' ').unwrap();
            let n: usize = std::str::from_utf8(&data[..sp]).unwrap().parse().unwrap();
            let rec = &data[sp + 1..n];
            assert_eq!(data[n - 1], b'\n');
            let eq = rec.iter().position(|&b| b == b'=').unwrap();
            out.push((
                String::from_utf8(rec[..eq].to_vec()).unwrap(),
                rec[eq + 1..rec.len() - 1].to_vec(),
            ));
            data = &data[n..];
        }
        out
    }

    /// Encodes `entry` with `data`, reads it back with the `tar` crate (an independent
    /// reader, for the ustar block and data) and returns (path bytes, link bytes,
    /// header, pax records).
    type Parsed = (
        Vec<u8>,
        Option<Vec<u8>>,
        tar::Header,
        Vec<(String, Vec<u8>)>,
    );

    fn parse(entry: &Entry, data: &[u8]) -> Parsed {
        let mut bytes = encode_header(entry).unwrap();
        assert_eq!(bytes.len() % BLOCK_BYTES, 0);
        let pax = pax_records(&bytes);
        let get = |k: &str| pax.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        bytes.extend_from_slice(data);
        bytes.resize(bytes.len() + padding(data.len() as u64), 0);
        bytes.extend_from_slice(&end_of_archive());
        let mut ar = tar::Archive::new(bytes.as_slice());
        let mut entries = ar.entries().unwrap();
        let mut e = entries.next().unwrap().unwrap();
        let mut path = get("path").unwrap_or_else(|| e.header().path_bytes().into_owned());
        if path.len() > 1 && path.ends_with(b"/") {
            path.pop();
        }
        let link = get("linkpath").or_else(|| e.header().link_name_bytes().map(|l| l.into_owned()));
        let header = e.header().clone();
        let mut content = Vec::new();
        e.read_to_end(&mut content).unwrap();
        assert_eq!(content, data);
        assert!(entries.next().is_none());
        (path, link, header, pax)
    }

    fn file(path: &[u8], size: u64) -> Entry {
        let mut e = Entry::new(path.to_vec(), Kind::File, 0o644);
        e.size = size;
        e.mtime = Timestamp {
            secs: 1_700_000_000,
            nanos: 0,
        };
        e
    }

    /// The parallel encoder appends every header of a unit to one buffer: a pax
    /// header's padding must count from the header's start, not the buffer's, and a
    /// refused entry must leave the buffer as it was.
    #[test]
    fn headers_appended_to_a_buffer_equal_headers_alone() {
        let mut long = file(&[b'n'; 300], 7);
        long.mtime.nanos = 123_456_789;
        long.xattrs
            .push((b"security.capability".to_vec(), vec![1, 2, 3]));
        let mut odd = file("rootimg/é".as_bytes(), 0);
        odd.uname = Some(b"root".to_vec());
        let mut dir = Entry::new(b"rootimg/d".to_vec(), Kind::Dir, 0o755);
        dir.uid = 0o7777777 + 1;
        for e in [file(b"rootimg/a", 3), long, odd, dir] {
            let mut buf = vec![0xaa; 100];
            encode_header_into(&e, &mut buf).unwrap();
            assert_eq!(&buf[..100], &[0xaa; 100][..]);
            assert_eq!(buf[100..], encode_header(&e).unwrap()[..]);
        }
        let mut buf = vec![7u8; 3];
        assert!(encode_header_into(&file(b"", 0), &mut buf).is_err());
        assert_eq!(buf, [7, 7, 7]);
    }

    #[test]
    fn plain_file_is_one_block_and_checksums() {
        let e = file(b"rootimg/etc/hosts", 5);
        let bytes = encode_header(&e).unwrap();
        assert_eq!(bytes.len(), BLOCK_BYTES);
        let (path, _, h, pax) = parse(&e, b"hello");
        assert_eq!(path, b"rootimg/etc/hosts");
        assert!(pax.is_empty());
        assert_eq!(h.mode().unwrap(), 0o644);
        assert_eq!(h.mtime().unwrap(), 1_700_000_000);
        assert_eq!(h.cksum().unwrap(), {
            let mut b = bytes.clone();
            b[148..156].fill(b' ');
            b.iter().map(|&x| u32::from(x)).sum::<u32>()
        });
    }

    #[test]
    fn record_length_counts_itself_across_digit_boundary() {
        // rest = 1 + 1 + 1 + 94 + 1 = 98 → 2 digits → 100 → 3 digits → 101.
        let mut out = Vec::new();
        record(&mut out, b"k", &[b'v'; 94]);
        assert_eq!(&out[..4], b"101 ");
        assert_eq!(out.len(), 101);
        let mut out = Vec::new();
        record(&mut out, b"k", &[b'v'; 93]);
        assert_eq!(&out[..3], b"99 ");
        assert_eq!(out.len(), 99);
    }

    #[test]
    fn long_name_uses_prefix_then_pax() {
        let mid = format!("rootimg/{}/{}", "d".repeat(120), "f".repeat(90));
        let e = file(mid.as_bytes(), 0);
        assert_eq!(encode_header(&e).unwrap().len(), BLOCK_BYTES);
        assert_eq!(parse(&e, b"").0, mid.as_bytes());

        let long = format!("rootimg/{}/{}", "d".repeat(200), "f".repeat(120));
        let e = file(long.as_bytes(), 0);
        let (path, _, _, pax) = parse(&e, b"");
        assert_eq!(path, long.as_bytes());
        assert_eq!(pax[0].0, "path");
    }

    #[test]
    fn non_utf8_and_newline_names_go_to_pax() {
        let name = b"rootimg/caf\xe9\nx".to_vec();
        let e = file(&name, 0);
        let (path, _, _, pax) = parse(&e, b"");
        assert_eq!(path, name);
        assert_eq!(pax[1], ("path".to_string(), name));
    }

    #[test]
    fn dir_gets_trailing_slash_and_type_5() {
        let e = Entry::new(b"rootimg".to_vec(), Kind::Dir, 0o1755);
        let bytes = encode_header(&e).unwrap();
        assert_eq!(&bytes[..8], b"rootimg/");
        let (_, _, h, _) = parse(&e, b"");
        assert_eq!(h.entry_type(), tar::EntryType::Directory);
        assert_eq!(h.mode().unwrap(), 0o1755);
    }

    #[test]
    fn links_devices_fifo() {
        let target = vec![b't'; 150];
        let e = Entry::new(b"rootimg/l".to_vec(), Kind::Symlink(target.clone()), 0o777);
        let (_, link, h, pax) = parse(&e, b"");
        assert_eq!(link.unwrap(), target);
        assert_eq!(h.entry_type(), tar::EntryType::Symlink);
        assert_eq!(pax[0].0, "linkpath");

        let e = Entry::new(
            b"rootimg/h".to_vec(),
            Kind::HardLink(b"rootimg/a".to_vec()),
            0o644,
        );
        let (_, link, h, _) = parse(&e, b"");
        assert_eq!(link.unwrap(), b"rootimg/a");
        assert_eq!(h.entry_type(), tar::EntryType::Link);
        assert_eq!(h.size().unwrap(), 0);

        let e = Entry::new(
            b"rootimg/dev/sda1".to_vec(),
            Kind::BlockDevice { major: 8, minor: 1 },
            0o660,
        );
        let (_, _, h, _) = parse(&e, b"");
        assert_eq!(h.entry_type(), tar::EntryType::Block);
        assert_eq!(h.device_major().unwrap(), Some(8));
        assert_eq!(h.device_minor().unwrap(), Some(1));

        let e = Entry::new(
            b"rootimg/dev/null".to_vec(),
            Kind::CharDevice { major: 1, minor: 3 },
            0o666,
        );
        assert_eq!(parse(&e, b"").2.entry_type(), tar::EntryType::Char);
        let e = Entry::new(b"rootimg/p".to_vec(), Kind::Fifo, 0o600);
        assert_eq!(parse(&e, b"").2.entry_type(), tar::EntryType::Fifo);
    }

    #[test]
    fn owners_times_xattrs() {
        let mut e = file(b"rootimg/x", 3);
        e.uid = 1234;
        e.gid = 5678;
        e.uname = Some(b"alice".to_vec());
        e.gname = Some(vec![b'g'; 40]);
        e.mtime = Timestamp {
            secs: 1_600_000_000,
            nanos: 120_000_000,
        };
        e.atime = Some(Timestamp { secs: 5, nanos: 1 });
        e.xattrs = vec![
            (b"user.bin".to_vec(), vec![0, 0xff, 0, b'\n']),
            (b"user.a=b%".to_vec(), b"v".to_vec()),
        ];
        let (_, _, h, pax) = parse(&e, b"abc");
        assert_eq!(h.uid().unwrap(), 1234);
        assert_eq!(h.gid().unwrap(), 5678);
        assert_eq!(h.username_bytes().unwrap(), b"alice");
        let get = |k: &str| pax.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        assert_eq!(get("gname").unwrap(), vec![b'g'; 40]);
        assert_eq!(get("mtime").unwrap(), b"1600000000.12");
        assert_eq!(get("atime").unwrap(), b"5.000000001");
        assert_eq!(
            get("SCHILY.xattr.user.bin").unwrap(),
            vec![0, 0xff, 0, b'\n']
        );
        assert_eq!(get("SCHILY.xattr.user.a%3Db%25").unwrap(), b"v");
    }

    #[test]
    fn big_numbers() {
        let mut e = Entry::new(b"rootimg/big".to_vec(), Kind::Dir, 0o755);
        e.uid = 3_000_000;
        e.gid = u32::MAX;
        e.mtime = Timestamp {
            secs: -2,
            nanos: 250_000_000,
        };
        let (_, _, h, pax) = parse(&e, b"");
        let get = |k: &str| pax.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        assert_eq!(get("uid").unwrap(), b"3000000");
        assert_eq!(get("gid").unwrap(), b"4294967295");
        assert_eq!(get("mtime").unwrap(), b"-1.75");
        // Base-256 fields decode to the same values for non-pax readers.
        assert_eq!(h.uid().unwrap(), 3_000_000);
        assert_eq!(h.gid().unwrap(), u64::from(u32::MAX));

        // A huge file: only the header is checked (no 8 GiB of data in a unit test).
        let mut e = file(b"rootimg/huge", 9 << 30);
        e.mtime.secs = 1;
        let bytes = encode_header(&e).unwrap();
        let text = String::from_utf8_lossy(&bytes[BLOCK_BYTES..2 * BLOCK_BYTES]).into_owned();
        assert!(text.contains(" size=9663676416\n"), "{text}");
        let h = tar::Header::from_byte_slice(&bytes[2 * BLOCK_BYTES..3 * BLOCK_BYTES]);
        assert_eq!(h.size().unwrap(), 9 << 30);
    }

    #[test]
    fn acl_xattr_becomes_gnu_text() {
        // getfattr -e hex of `setfacl -m u:1234:rwx` on a 0644 file.
        let blob: Vec<u8> = [
            "02000000",
            "01000600ffffffff",
            "02000700d2040000",
            "04000400ffffffff",
            "10000700ffffffff",
            "20000400ffffffff",
        ]
        .concat()
        .as_bytes()
        .chunks(2)
        .map(|h| u8::from_str_radix(std::str::from_utf8(h).unwrap(), 16).unwrap())
        .collect();
        assert_eq!(
            acl_text(&blob).unwrap(),
            "user::rw-\nuser:1234:rwx\ngroup::r--\nmask::rwx\nother::r--\n"
        );
        assert_eq!(acl_text(&blob[..7]), None);
        let mut e = file(b"rootimg/acl", 0);
        e.xattrs = vec![(b"system.posix_acl_access".to_vec(), blob)];
        let (_, _, _, pax) = parse(&e, b"");
        assert_eq!(pax[0].0, "SCHILY.acl.access");
        assert_eq!(pax[1].0, "SCHILY.xattr.system.posix_acl_access");
    }

    #[test]
    fn hdrcharset_only_for_non_utf8_names() {
        let e = file("rootimg/café".as_bytes(), 0);
        assert_eq!(parse(&e, b"").3[0].0, "path");
        let e = file(b"rootimg/caf\xe9", 0);
        let pax = parse(&e, b"").3;
        assert_eq!(pax[0], ("hdrcharset".to_string(), b"BINARY".to_vec()));
        assert_eq!(pax[1].0, "path");
    }

    #[test]
    fn time_format() {
        let t = |secs, nanos| format_time(Timestamp { secs, nanos });
        assert_eq!(t(0, 0), "0");
        assert_eq!(t(10, 500_000_000), "10.5");
        assert_eq!(t(-1, 0), "-1");
        assert_eq!(t(-1, 900_000_000), "-0.1");
    }

    #[test]
    fn sparse_layout_matches_gnu_tar() {
        let mut e = file(b"rootimg/d/f", 64 << 20);
        e.sparse = Some(vec![(1 << 20, 4096), (40 << 20, 4096)]);
        let bytes = encode_header(&e).unwrap();
        let text = String::from_utf8_lossy(&bytes[BLOCK_BYTES..2 * BLOCK_BYTES]).into_owned();
        assert!(text.starts_with(
            "22 GNU.sparse.major=1\n22 GNU.sparse.minor=0\n31 GNU.sparse.name=rootimg/d/f\n\
             32 GNU.sparse.realsize=67108864\n"
        ));
        let h = tar::Header::from_byte_slice(&bytes[2 * BLOCK_BYTES..3 * BLOCK_BYTES]);
        assert_eq!(h.path_bytes().as_ref(), b"rootimg/d/GNUSparseFile.0/f");
        assert_eq!(h.size().unwrap(), 512 + 8192);
        let map = &bytes[3 * BLOCK_BYTES..];
        assert_eq!(map.len(), BLOCK_BYTES);
        assert!(map.starts_with(b"3\n1048576\n4096\n41943040\n4096\n67108864\n0\n\0"));
    }
}

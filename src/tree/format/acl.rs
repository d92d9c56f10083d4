//! POSIX ACLs both ways: the kernel's binary `system.posix_acl_*` xattr and the text
//! form tar archives carry (`SCHILY.acl.*`, as GNU tar and bsdtar write it). The
//! encoder turns the xattr into text, the decoder turns text back into the xattr.

use crate::tree::format::pax::parse_dec;

/// Tag values of the Linux `system.posix_acl_*` xattr format (`<linux/posix_acl.h>`).
const ACL_USER_OBJ: u16 = 0x01;
const ACL_USER: u16 = 0x02;
const ACL_GROUP_OBJ: u16 = 0x04;
const ACL_GROUP: u16 = 0x08;
const ACL_MASK: u16 = 0x10;
const ACL_OTHER: u16 = 0x20;
/// The id field of entries that have no qualifier.
const ACL_UNDEFINED_ID: u32 = u32::MAX;
/// Version in the xattr blob's 4-byte header; entries follow as (u16 tag, u16 perm, u32 id), LE.
const ACL_XATTR_VERSION: u32 = 2;
const ACL_HEADER_BYTES: usize = 4;
const ACL_ENTRY_BYTES: usize = 8;

/// The text form GNU tar stores in `SCHILY.acl.*` (`user::rw-\nuser:1234:rwx\n...`),
/// from the kernel's binary ACL xattr. Qualifiers stay numeric: the ids belong to the
/// image, not to the host that extracts it. `None` for a malformed blob (the raw
/// xattr is still archived).
pub(crate) fn acl_text(blob: &[u8]) -> Option<String> {
    let body = blob.get(ACL_HEADER_BYTES..)?;
    let version = u32::from_le_bytes(blob[..ACL_HEADER_BYTES].try_into().ok()?);
    if version != ACL_XATTR_VERSION || body.len() % ACL_ENTRY_BYTES != 0 {
        return None;
    }
    let mut text = String::new();
    for e in body.chunks_exact(ACL_ENTRY_BYTES) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let perm = u16::from_le_bytes([e[2], e[3]]);
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        let head = match tag {
            ACL_USER_OBJ => "user::".to_string(),
            ACL_USER => format!("user:{id}:"),
            ACL_GROUP_OBJ => "group::".to_string(),
            ACL_GROUP => format!("group:{id}:"),
            ACL_MASK => "mask::".to_string(),
            ACL_OTHER => "other::".to_string(),
            _ => return None,
        };
        text.push_str(&head);
        text.push(if perm & 4 != 0 { 'r' } else { '-' });
        text.push(if perm & 2 != 0 { 'w' } else { '-' });
        text.push(if perm & 1 != 0 { 'x' } else { '-' });
        text.push('\n');
    }
    Some(text)
}

/// Converts a text ACL (GNU tar's newline form `user:1234:rwx` or bsdtar's comma
/// form with the numeric id appended, `user:bob:rwx:1234`) into the binary
/// `system.posix_acl_*` xattr value the kernel accepts. Returns `Ok(None)` for an
/// access ACL that only restates the mode bits (setting it would be a no-op).
pub(crate) fn acl_text_to_xattr(text: &[u8], is_default: bool) -> Result<Option<Vec<u8>>, String> {
    let mut entries: Vec<(u16, u32, u16)> = Vec::new();
    for raw in text.split(|&c| c == b'\n' || c == b',') {
        // Comments (`#effective:r--`) and surrounding blanks carry no information.
        let raw = match raw.iter().position(|&c| c == b'#') {
            Some(p) => &raw[..p],
            None => raw,
        };
        let raw = raw.trim_ascii();
        if raw.is_empty() {
            continue;
        }
        let mut fields: Vec<&[u8]> = raw.split(|&c| c == b':').collect();
        if matches!(fields.first(), Some(&b"default") | Some(&b"d")) {
            fields.remove(0);
        }
        let shown = String::from_utf8_lossy(raw).into_owned();
        if fields.len() < 3 || fields.len() > 4 {
            return Err(format!("bad ACL entry {shown:?}"));
        }
        let tag = match fields[0] {
            b"user" | b"u" => {
                if fields[1].is_empty() {
                    ACL_USER_OBJ
                } else {
                    ACL_USER
                }
            }
            b"group" | b"g" => {
                if fields[1].is_empty() {
                    ACL_GROUP_OBJ
                } else {
                    ACL_GROUP
                }
            }
            b"mask" | b"m" => ACL_MASK,
            b"other" | b"o" => ACL_OTHER,
            _ => return Err(format!("unknown ACL tag in {shown:?}")),
        };
        let id = if tag == ACL_USER || tag == ACL_GROUP {
            // Owners are restored by number: prefer bsdtar's appended id, else a
            // numeric qualifier; a bare name cannot be resolved without the image's
            // passwd, so the entry is refused rather than guessed.
            let num = fields.get(3).copied().unwrap_or(fields[1]);
            match parse_dec(num).and_then(|n| u32::try_from(n).ok()) {
                Some(n) if n != ACL_UNDEFINED_ID => n,
                _ => return Err(format!("ACL entry {shown:?} has no numeric id")),
            }
        } else {
            ACL_UNDEFINED_ID
        };
        let mut perm = 0u16;
        for &c in fields[2] {
            perm |= match c {
                b'r' => 4,
                b'w' => 2,
                b'x' => 1,
                b'-' => 0,
                _ => return Err(format!("bad ACL permissions in {shown:?}")),
            };
        }
        entries.push((tag, id, perm));
    }
    if entries.is_empty() {
        return Ok(None);
    }
    // The kernel keeps entries sorted by tag, then id, and rejects duplicates.
    entries.sort_by_key(|&(t, id, _)| (t, id));
    if entries
        .windows(2)
        .any(|w| w[0].0 == w[1].0 && w[0].1 == w[1].1)
    {
        return Err("duplicate ACL entry".into());
    }
    let minimal = entries.len() == 3
        && entries
            .iter()
            .all(|e| matches!(e.0, ACL_USER_OBJ | ACL_GROUP_OBJ | ACL_OTHER));
    if minimal && !is_default {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(4 + entries.len() * 8);
    out.extend_from_slice(&2u32.to_le_bytes());
    for (tag, id, perm) in entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&perm.to_le_bytes());
        out.extend_from_slice(&id.to_le_bytes());
    }
    Ok(Some(out))
}

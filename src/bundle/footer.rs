//! The bundle footer (FORMAT.md §1.1): an empty gzip member at the very end of a bundle
//! saying where the statelite tree's stored member is, so `ls`, `cat`, `verify` and
//! `inspect` can reach the tree's index without reading the payload. gunzip and tar see
//! nothing of it.

use std::io::{self, Read, Seek, SeekFrom};

use super::layout::{Location, STORED_BLOCK_BYTES};
use crate::tree::codec::gzip::{self, Header, ID_BUNDLE};

const MAGIC: &[u8; 8] = b"IMGPBND1";
/// Footer payload: magic, member offset, data skip, length, stored block size.
const PAYLOAD_BYTES: usize = 8 + 8 + 8 + 8 + 4;
/// Bytes of the footer member.
pub const FOOTER_BYTES: usize = 12 + 4 + PAYLOAD_BYTES + 2 + 8;

/// The footer member for a tree at `loc`.
pub fn encode(loc: &Location) -> Vec<u8> {
    let mut p = Vec::with_capacity(PAYLOAD_BYTES);
    p.extend_from_slice(MAGIC);
    p.extend_from_slice(&loc.member_offset.to_le_bytes());
    p.extend_from_slice(&loc.data_skip.to_le_bytes());
    p.extend_from_slice(&loc.len.to_le_bytes());
    p.extend_from_slice(&(STORED_BLOCK_BYTES as u32).to_le_bytes());
    gzip::encode_tagged(ID_BUNDLE, &p)
}

/// The tree location in the last [`FOOTER_BYTES`] of a bundle, or `None` when the
/// bundle has no footer (xCAT bundles, bundles without a tree).
pub fn parse(tail: &[u8]) -> Option<Location> {
    let Ok(Header::Tagged { id, payload, total }) = gzip::parse_header(tail) else {
        return None;
    };
    if id != ID_BUNDLE || total as usize != tail.len() || payload.len() != PAYLOAD_BYTES {
        return None;
    }
    if &payload[..8] != MAGIC {
        return None;
    }
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&payload[i..i + 8]);
        u64::from_le_bytes(b)
    };
    let block = u32::from_le_bytes([payload[32], payload[33], payload[34], payload[35]]);
    if block as usize != STORED_BLOCK_BYTES {
        return None;
    }
    Some(Location {
        member_offset: u64_at(8),
        data_skip: u64_at(16),
        len: u64_at(24),
    })
}

/// The tree location a bundle of `len` bytes records in its footer, or `None` when it
/// has none (xCAT bundles, bundles without a tree, a bare `rootimgtree.*`).
pub fn read_location<R: Read + Seek>(bundle: &mut R, len: u64) -> io::Result<Option<Location>> {
    let mut tail = vec![0u8; FOOTER_BYTES.min(len as usize)];
    bundle.seek(SeekFrom::Start(len - tail.len() as u64))?;
    bundle.read_exact(&mut tail)?;
    Ok(parse(&tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn footer_round_trips() {
        let loc = Location {
            member_offset: 12345,
            data_skip: 512,
            len: 1 << 40,
        };
        let f = encode(&loc);
        assert_eq!(f.len(), FOOTER_BYTES);
        assert_eq!(parse(&f), Some(loc));
        assert_eq!(parse(&f[1..]), None);
        assert_eq!(parse(&[0u8; FOOTER_BYTES]), None);
    }
}

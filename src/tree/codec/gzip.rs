//! The gzip member layout of a `rootimgtree.gz` (FORMAT.md §2).
//!
//! Every member is an ordinary, independent gzip member, so the file is plain
//! multi-member gzip to `gzip`, `pigz`, `tar -z`, bsdtar and python. What imgport adds
//! lives in the FEXTRA field, which those tools skip:
//! - data members carry subfield `IG` = the member's total length (gzp's Mgzip layout),
//!   so a reader can hop from member to member without inflating;
//! - index members are empty (they inflate to nothing) and carry `IX` = a chunk of the
//!   index;
//! - the footer is an empty member carrying `IF` = where the index is.
//!
//! This module encodes and decodes single members. It never allocates from a length
//! read off the input without checking it against [`MAX_UNIT_BYTES`].

use libdeflater::{CompressionLvl, Compressor, Crc, Decompressor};

pub use super::unit::MAX_UNIT_BYTES;

/// Size of a data member's header: the fixed 10 bytes, XLEN, and the 8-byte `IG`
/// subfield.
pub const DATA_HEADER_BYTES: usize = 20;
/// gzip trailer: CRC32 and ISIZE.
pub const TRAILER_BYTES: usize = 8;
/// Largest FEXTRA subfield payload (XLEN is 16 bits and includes the 4-byte subfield
/// header).
pub const MAX_SUBFIELD_PAYLOAD: usize = 65535 - 4;
/// The deflate encoding of empty input (one final fixed-Huffman block).
const EMPTY_DEFLATE: [u8; 2] = [0x03, 0x00];
/// deflate's largest possible expansion: a 258-byte match costs at least 2 bits
/// (zlib's "maximum compression factor is 1032:1"). A member or index whose stated
/// size is more than this times its compressed size is hostile or broken; checking
/// before inflating keeps a tiny member from allocating up to [`MAX_UNIT_BYTES`].
pub const MAX_DEFLATE_RATIO: u64 = 1032;
/// gzip OS byte "unknown", as gzp writes it.
const OS_UNKNOWN: u8 = 0xff;

/// Subfield id of a data member.
pub const ID_DATA: [u8; 2] = *b"IG";
/// Subfield id of an index chunk member.
pub const ID_INDEX: [u8; 2] = *b"IX";
/// Subfield id of the footer member.
pub const ID_FOOTER: [u8; 2] = *b"IF";
/// Subfield id of the bundle footer (FORMAT.md §1.1), which uses the same empty-member
/// encoding: the ids are this member format's namespace, so the table lives here.
pub const ID_BUNDLE: [u8; 2] = *b"IB";

/// A problem with one member; the caller adds where it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemberError {
    #[error("not a gzip member (bad magic or method)")]
    NotGzip,
    #[error("gzip member header is truncated")]
    Truncated,
    #[error("member length {0} is out of bounds")]
    BadLength(u64),
    #[error("member does not inflate: {0}")]
    Inflate(String),
    #[error("CRC32 mismatch: member says {expected:08x}, data has {actual:08x}")]
    Crc { expected: u32, actual: u32 },
    #[error("size mismatch: member says {expected} bytes, data has {actual}")]
    Size { expected: u32, actual: usize },
    #[error("content differs from the BLAKE3 digest the index gives it")]
    Digest,
}

/// What a member header says about the member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    /// An imgport data member of `total` bytes (header to trailer).
    Data { total: u64 },
    /// An empty member carrying an imgport subfield (`IX` or `IF`), whose whole
    /// length is `total`.
    Tagged {
        id: [u8; 2],
        payload: Vec<u8>,
        total: u64,
    },
    /// Any other gzip member: its length is unknown without inflating.
    Foreign,
}

/// Compresses `data` into one data member at `level` (1–12, libdeflate's scale).
pub fn encode_data(compressor: &mut Compressor, data: &[u8]) -> Vec<u8> {
    let bound = compressor.deflate_compress_bound(data.len());
    let mut out = vec![0u8; DATA_HEADER_BYTES + bound + TRAILER_BYTES];
    let n = compressor
        .deflate_compress(data, &mut out[DATA_HEADER_BYTES..DATA_HEADER_BYTES + bound])
        // The buffer is the bound libdeflate itself asked for: it cannot be too small.
        .unwrap_or(0);
    out.truncate(DATA_HEADER_BYTES + n);
    let total = (DATA_HEADER_BYTES + n + TRAILER_BYTES) as u32;
    write_header(&mut out[..DATA_HEADER_BYTES], ID_DATA, &total.to_le_bytes());
    let mut crc = Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// A libdeflate compressor for `level` (clamped to libdeflate's 0–12).
pub fn compressor(level: u32) -> Compressor {
    let lvl = CompressionLvl::new(level.min(12) as i32).unwrap_or_default();
    Compressor::new(lvl)
}

/// An empty member carrying `payload` in subfield `id` (index chunks, the footer).
pub fn encode_tagged(id: [u8; 2], payload: &[u8]) -> Vec<u8> {
    debug_assert!(payload.len() <= MAX_SUBFIELD_PAYLOAD);
    let xlen = 4 + payload.len();
    let mut out = Vec::with_capacity(12 + xlen + 2 + TRAILER_BYTES);
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0x04, 0, 0, 0, 0, 0, OS_UNKNOWN]);
    out.extend_from_slice(&(xlen as u16).to_le_bytes());
    out.extend_from_slice(&id);
    out.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&EMPTY_DEFLATE);
    out.extend_from_slice(&[0u8; TRAILER_BYTES]);
    out
}

/// Total length of a tagged member with a payload of `len` bytes.
pub fn tagged_len(len: usize) -> usize {
    12 + 4 + len + EMPTY_DEFLATE.len() + TRAILER_BYTES
}

fn write_header(out: &mut [u8], id: [u8; 2], payload: &[u8; 4]) {
    out[..10].copy_from_slice(&[0x1f, 0x8b, 8, 0x04, 0, 0, 0, 0, 0, OS_UNKNOWN]);
    out[10..12].copy_from_slice(&8u16.to_le_bytes());
    out[12..14].copy_from_slice(&id);
    out[14..16].copy_from_slice(&4u16.to_le_bytes());
    out[16..20].copy_from_slice(payload);
}

/// Reads what the header at the start of `buf` says. `buf` must hold the whole
/// FEXTRA field (at most 12 + 65535 bytes); `Truncated` asks for more.
pub fn parse_header(buf: &[u8]) -> Result<Header, MemberError> {
    if buf.len() < 10 {
        return Err(MemberError::Truncated);
    }
    if buf[0] != 0x1f || buf[1] != 0x8b || buf[2] != 8 {
        return Err(MemberError::NotGzip);
    }
    let flags = buf[3];
    if flags & 0x04 == 0 {
        return Ok(Header::Foreign);
    }
    if buf.len() < 12 {
        return Err(MemberError::Truncated);
    }
    let xlen = u16::from_le_bytes([buf[10], buf[11]]) as usize;
    let extra = buf.get(12..12 + xlen).ok_or(MemberError::Truncated)?;
    // Only headers with nothing but FEXTRA are ours; anything else is foreign.
    if flags != 0x04 {
        return Ok(Header::Foreign);
    }
    let mut rest = extra;
    while rest.len() >= 4 {
        let id = [rest[0], rest[1]];
        let len = u16::from_le_bytes([rest[2], rest[3]]) as usize;
        let Some(payload) = rest.get(4..4 + len) else {
            return Ok(Header::Foreign);
        };
        match id {
            ID_DATA if len == 4 && xlen == 8 => {
                let total =
                    u32::from_le_bytes([payload[0], payload[1], payload[2], payload[3]]) as u64;
                if total < (DATA_HEADER_BYTES + TRAILER_BYTES) as u64
                    || total > MAX_UNIT_BYTES as u64
                {
                    return Err(MemberError::BadLength(total));
                }
                return Ok(Header::Data { total });
            }
            ID_INDEX | ID_FOOTER | ID_BUNDLE if 4 + len == xlen => {
                return Ok(Header::Tagged {
                    id,
                    payload: payload.to_vec(),
                    total: tagged_len(len) as u64,
                });
            }
            _ => {}
        }
        rest = &rest[4 + len..];
    }
    Ok(Header::Foreign)
}

/// Inflates one complete data member (header to trailer) and checks its CRC32 and
/// size. `decompressor` is reused across calls by each worker.
pub fn decode_data(decompressor: &mut Decompressor, member: &[u8]) -> Result<Vec<u8>, MemberError> {
    let (mut out, len) = decode_into(decompressor, member, Vec::new())?;
    out.truncate(len);
    Ok(out)
}

/// [`decode_data`] into a recycled buffer: `out` is grown if needed, never shrunk or
/// cleared, and only its first `len` bytes (returned with it) are the member's
/// content. The stated size (ISIZE) is checked against what the compressed length
/// can hold before anything is allocated.
pub fn decode_into(
    decompressor: &mut Decompressor,
    member: &[u8],
    mut out: Vec<u8>,
) -> Result<(Vec<u8>, usize), MemberError> {
    if member.len() < DATA_HEADER_BYTES + TRAILER_BYTES {
        return Err(MemberError::Truncated);
    }
    let trailer = &member[member.len() - TRAILER_BYTES..];
    let expected_crc = u32::from_le_bytes([trailer[0], trailer[1], trailer[2], trailer[3]]);
    let isize = u32::from_le_bytes([trailer[4], trailer[5], trailer[6], trailer[7]]);
    let body = &member[DATA_HEADER_BYTES..member.len() - TRAILER_BYTES];
    // Refusing an impossible ISIZE here keeps a 28-byte member from making us
    // allocate 64 MiB.
    if isize as usize > MAX_UNIT_BYTES || isize as u64 > (body.len() as u64 + 1) * MAX_DEFLATE_RATIO
    {
        return Err(MemberError::BadLength(isize as u64));
    }
    let len = isize as usize;
    if out.len() < len {
        out.resize(len, 0);
    }
    let n = decompressor
        .deflate_decompress(body, &mut out[..len])
        .map_err(|e| MemberError::Inflate(e.to_string()))?;
    if n != len {
        return Err(MemberError::Size {
            expected: isize,
            actual: n,
        });
    }
    let mut crc = Crc::new();
    crc.update(&out[..len]);
    if crc.sum() != expected_crc {
        return Err(MemberError::Crc {
            expected: expected_crc,
            actual: crc.sum(),
        });
    }
    Ok((out, len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn data_members_round_trip_and_are_plain_gzip() {
        let data: Vec<u8> = (0..200_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        let m = encode_data(&mut compressor(6), &data);
        assert_eq!(
            parse_header(&m).unwrap(),
            Header::Data {
                total: m.len() as u64
            }
        );
        assert_eq!(decode_data(&mut Decompressor::new(), &m).unwrap(), data);
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(&m[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, data);
    }

    #[test]
    fn tagged_members_inflate_to_nothing() {
        let mut file = encode_data(&mut compressor(1), b"tar bytes");
        let tagged = encode_tagged(ID_INDEX, b"index chunk");
        assert_eq!(tagged.len(), tagged_len(11));
        match parse_header(&tagged).unwrap() {
            Header::Tagged { id, payload, total } => {
                assert_eq!(id, ID_INDEX);
                assert_eq!(payload, b"index chunk");
                assert_eq!(total, tagged.len() as u64);
            }
            other => panic!("{other:?}"),
        }
        file.extend_from_slice(&tagged);
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(&file[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, b"tar bytes");
    }

    #[test]
    fn corruption_is_detected() {
        let mut m = encode_data(&mut compressor(6), &[7u8; 10_000]);
        let n = m.len();
        m[n - 8] ^= 1;
        assert!(matches!(
            decode_data(&mut Decompressor::new(), &m),
            Err(MemberError::Crc { .. })
        ));
        let mut huge = encode_data(&mut compressor(6), b"x");
        let n = huge.len();
        huge[n - 4..].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            decode_data(&mut Decompressor::new(), &huge),
            Err(MemberError::BadLength(_))
        ));
    }

    #[test]
    fn foreign_and_bad_headers() {
        let mut plain = Vec::new();
        {
            let mut e = flate2::write::GzEncoder::new(&mut plain, flate2::Compression::default());
            std::io::Write::write_all(&mut e, b"x").unwrap();
            e.finish().unwrap();
        }
        assert_eq!(parse_header(&plain).unwrap(), Header::Foreign);
        assert_eq!(parse_header(b"PK\x03\x04......"), Err(MemberError::NotGzip));
        let mut m = encode_data(&mut compressor(6), b"x");
        m[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(parse_header(&m), Err(MemberError::BadLength(_))));
        assert_eq!(parse_header(&m[..15]), Err(MemberError::Truncated));
    }
}

//! The tree's byte formats, bytes only (no file system, no threads), both directions
//! of each format in one place: the ustar header block and its fields, pax records,
//! ACL text, the tar decoder, cpio newc, and the codec-neutral index model.

pub mod acl;
pub mod index;
pub mod newc;
pub mod pax;
pub mod sidecar;
pub mod tar_decode;
pub mod tar_header;

/// The tar block: headers and data areas come in multiples of it.
pub const BLOCK_BYTES: usize = 512;

/// Number of zero bytes that must follow `len` bytes of entry data to reach the next
/// 512-byte block boundary (0..=511). The one padding rule of every tar this crate
/// writes or reads (the tree's pax tar, the bundle's tar, cpio's final record).
pub fn padding(len: u64) -> usize {
    let rem = (len % BLOCK_BYTES as u64) as usize;
    if rem == 0 {
        0
    } else {
        BLOCK_BYTES - rem
    }
}

/// Appends zeros to `buf` until its length is a multiple of 512 bytes.
pub fn pad_to_block(buf: &mut Vec<u8>) {
    let pad = padding(buf.len() as u64);
    buf.resize(buf.len() + pad, 0);
}

//! The stored-member framing of a bundle (FORMAT.md §1.1): how a file carried in a
//! gzip member of stored deflate blocks maps onto bundle offsets. The writer produces
//! this layout, the footer records where it is, the view reads through it; all three
//! take its definition from here.

/// Payload bytes of every stored block but the last (the most a stored block holds).
pub const STORED_BLOCK_BYTES: usize = 65535;
/// Bytes of a stored block's header: the BFINAL/BTYPE byte, LEN and NLEN.
pub const STORED_BLOCK_HEADER: u64 = 5;
/// A plain gzip member header (no optional fields), as a stored member starts.
pub const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// Where a file carried in a stored member sits in the bundle, so a reader can map
/// its bytes to bundle offsets without inflating anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Offset of the member's gzip header in the bundle.
    pub member_offset: u64,
    /// Uncompressed bytes in the member before the file's first byte (its tar headers).
    pub data_skip: u64,
    /// The file's length.
    pub len: u64,
}

impl Location {
    /// Bundle offset of the file's byte `pos`, and how many bytes follow it in the
    /// same stored block: uncompressed offset `u` of the member is at bundle offset
    /// `member + 10 + (u / 65535) * 65540 + 5 + u % 65535`.
    pub fn map(&self, pos: u64) -> (u64, u64) {
        let block = STORED_BLOCK_BYTES as u64;
        let u = self.data_skip + pos;
        let (index, within) = (u / block, u % block);
        let at = self.member_offset
            + GZIP_HEADER.len() as u64
            + index * (block + STORED_BLOCK_HEADER)
            + STORED_BLOCK_HEADER
            + within;
        (at, block - within)
    }
}

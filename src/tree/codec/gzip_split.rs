//! The gzip side of the ordered parallel decoder: cutting a `rootimgtree.gz` stream
//! into whole data members from their headers (FORMAT.md §2), without inflating.
//!
//! A data member's `IG` subfield says how long it is, so finding its end costs one
//! header parse and a copy. Index and footer members (`IX`, `IF`, also the bundle's
//! `IB`) inflate to nothing and are skipped. A member without an `IG` subfield (anyone
//! else's gzip) has no length to hop by: the rest of the stream from there is handed
//! to flate2's streaming [`MultiGzDecoder`], single-threaded.

use std::io::{self, Chain, Cursor, Read};

use flate2::read::MultiGzDecoder;

use super::gzip::{self, Header, MemberError, MAX_UNIT_BYTES};
use super::unit::{RawUnit, UnitSplitter};
use crate::tree::io::fill;

/// The trailer of an empty member as [`gzip::encode_tagged`] writes it: the empty
/// deflate block, CRC32 0, ISIZE 0.
const EMPTY_BODY: [u8; 10] = [0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
/// Longest gzip header read to classify a member: 10 fixed bytes, XLEN, FEXTRA.
const MAX_HEADER: usize = 12 + 65535;

/// True when `head` (the first bytes of a stream, as many as are available up to
/// 512) starts with an imgport data, index or footer member, i.e. the stream can be
/// split into members. Any other gzip (xCAT's single member, pigz, GNU gzip) or
/// non-gzip input gives false.
pub fn is_member_stream(head: &[u8]) -> bool {
    if head.len() < 4 || head[..3] != [0x1f, 0x8b, 8] || head[3] != 0x04 {
        return false;
    }
    match gzip::parse_header(head) {
        Ok(Header::Data { .. } | Header::Tagged { .. }) => true,
        // A long FEXTRA that did not fit in `head`: let the splitter look at it whole;
        // it hands over to flate2 if the member turns out foreign.
        Err(MemberError::Truncated) => true,
        // A bad `IG` length is ours and broken: the splitter reports it with the
        // member's index.
        Err(MemberError::BadLength(_)) => true,
        _ => false,
    }
}

/// Cuts a member stream into data members; see the module docs.
pub struct MemberSplitter<R> {
    input: Option<R>,
    /// The header bytes of a foreign member, which starts the tail.
    foreign: Option<Vec<u8>>,
    /// Members seen (tagged ones included) and compressed bytes consumed, for errors.
    index: u64,
    offset: u64,
}

impl<R: Read> MemberSplitter<R> {
    /// `input` must be positioned at the start of a member.
    pub fn new(input: R) -> MemberSplitter<R> {
        MemberSplitter {
            input: Some(input),
            foreign: None,
            index: 0,
            offset: 0,
        }
    }

    fn err(&self, e: impl std::fmt::Display) -> io::Error {
        io::Error::other(format!("{}: {e}", self.label()))
    }

    fn label(&self) -> String {
        format!(
            "gzip member {} (at byte {} of the compressed stream)",
            self.index, self.offset
        )
    }

    fn advance(&mut self, total: u64) {
        self.index += 1;
        self.offset = self.offset.saturating_add(total);
    }

    /// Reads the rest of an empty (index, footer) member, whose header was `head`.
    fn skip_tagged(&mut self, head: &[u8], total: u64) -> io::Result<()> {
        let rest = usize::try_from(total)
            .ok()
            .and_then(|t| t.checked_sub(head.len()))
            .filter(|&r| r == EMPTY_BODY.len())
            .ok_or_else(|| self.err("tagged member length"))?;
        let mut body = [0u8; EMPTY_BODY.len()];
        let n = match self.input.as_mut() {
            Some(input) => fill(input, &mut body[..rest])?,
            None => 0,
        };
        if n < rest {
            return Err(self.err("truncated index member"));
        }
        if body != EMPTY_BODY {
            // It would inflate to data that `gzip -dc` sees and we would skip: refuse
            // rather than read something else than gzip.
            return Err(self.err("index or footer member is not empty"));
        }
        self.advance(total);
        Ok(())
    }

    /// Reads the rest of a data member of `total` bytes, whose header was `head`.
    fn read_data(&mut self, head: Vec<u8>, total: u64) -> io::Result<RawUnit> {
        // `total` is at most MAX_UNIT_BYTES (parse_header checks), and the buffer
        // grows only as bytes arrive.
        let total_usize = usize::try_from(total)
            .ok()
            .filter(|&t| t <= MAX_UNIT_BYTES && t >= head.len())
            .ok_or_else(|| self.err(MemberError::BadLength(total)))?;
        let mut raw = Vec::with_capacity(total_usize.min(8 << 20));
        raw.extend_from_slice(&head);
        let want = (total_usize - head.len()) as u64;
        if let Some(input) = self.input.as_mut() {
            input.by_ref().take(want).read_to_end(&mut raw)?;
        }
        if raw.len() < total_usize {
            return Err(self.err(format!("truncated: {} of {total} bytes", raw.len())));
        }
        let label = self.label();
        self.advance(total);
        Ok(RawUnit {
            bytes: raw,
            content_size: None,
            label,
        })
    }
}

impl<R: Read> UnitSplitter for MemberSplitter<R> {
    type Tail = MultiGzDecoder<Chain<Cursor<Vec<u8>>, R>>;

    /// The next data member; tagged members are skipped, a foreign one ends the
    /// splitting (the tail starts there).
    fn next_unit(&mut self) -> io::Result<Option<RawUnit>> {
        loop {
            let Some(input) = self.input.as_mut() else {
                return Ok(None);
            };
            let Some(head) = read_header(input).map_err(|e| self.err(e))? else {
                return Ok(None);
            };
            let header = match gzip::parse_header(&head) {
                Ok(h) => h,
                Err(MemberError::NotGzip) => {
                    return Err(
                        self.err("not a gzip member (trailing garbage after the last member?)")
                    )
                }
                Err(e) => return Err(self.err(e)),
            };
            match header {
                Header::Foreign => {
                    self.foreign = Some(head);
                    return Ok(None);
                }
                Header::Tagged { total, .. } => self.skip_tagged(&head, total)?,
                Header::Data { total } => return self.read_data(head, total).map(Some),
            }
        }
    }

    fn take_tail(&mut self) -> Option<Self::Tail> {
        let head = self.foreign.take()?;
        let input = self.input.take()?;
        Some(MultiGzDecoder::new(Cursor::new(head).chain(input)))
    }
}

/// Reads one gzip member header: the 10 fixed bytes and, when FEXTRA is set, XLEN
/// and the extra field (enough for [`gzip::parse_header`]). `None` at a clean end of
/// input; other flags' fields (FNAME, ...) are left for flate2.
fn read_header(input: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut head = vec![0u8; 12];
    let n = fill(input, &mut head[..10])?;
    if n == 0 {
        return Ok(None);
    }
    if n < 10 {
        return Err(io::Error::other(MemberError::Truncated));
    }
    if head[..3] != [0x1f, 0x8b, 8] || head[3] & 0x04 == 0 {
        head.truncate(10);
        return Ok(Some(head));
    }
    if fill(input, &mut head[10..12])? < 2 {
        return Err(io::Error::other(MemberError::Truncated));
    }
    let xlen = u16::from_le_bytes([head[10], head[11]]) as usize;
    debug_assert!(12 + xlen <= MAX_HEADER);
    head.resize(12 + xlen, 0);
    if fill(input, &mut head[12..])? < xlen {
        return Err(io::Error::other(MemberError::Truncated));
    }
    Ok(Some(head))
}

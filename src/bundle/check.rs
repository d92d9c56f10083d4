//! `verify`'s check of the bundle container itself: every gzip member inflated with
//! its CRC32 and ISIZE checked, every tar header parsed, every member's data read to
//! its end, and the end-of-archive marker present. The tree's own members and digests
//! are the tree engine's job ([`crate::tree::verify_archive`]); this covers the rest
//! (manifest, kernel, initrd, raw images, extras, litefile.csv...) and, for a bundle
//! xCAT made (one gzip stream over the whole tar), everything.
//!
//! A CRC is only checked at the end of its gzip member, and one deflated member may
//! hold several tar members (imgport writes a run of equally compressed files into
//! one), so an error names every tar member whose bytes lie in the failing gzip
//! member: the damage is in one of them, and nothing tells which.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::rc::Rc;

use flate2::bufread::GzDecoder;

use super::reader::split_member_name;
use super::MANIFEST_NAME;
use crate::error::{Error, Result};
use crate::manifest::Manifest;

/// Largest manifest.xml parsed (as import's limit).
const MANIFEST_MAX_BYTES: u64 = 16 << 20;
/// Bytes of a tar end-of-archive marker (two zero blocks).
const END_MARKER: u64 = 1024;

/// What the container check saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checked {
    /// Tar members below an image directory (what `inspect` lists as files), every
    /// one read to its end.
    pub members: u64,
    /// Gzip members inflated (0 for a plain tar).
    pub gzip_members: u64,
    /// Manifests parsed.
    pub manifests: u64,
    /// Name (as in the bundle) of each statelite tree member seen.
    pub trees: Vec<String>,
    /// A gzip member with an extra field, as imgport's bundle footer, was seen (so a footer that
    /// does not parse is damage, not an xCAT bundle).
    pub footer: bool,
}

/// One tar member's span in the uncompressed stream.
struct Span {
    name: String,
    /// Below an image directory (not `./` or `./<IMG>/`), so worth naming.
    payload: bool,
    start: u64,
    end: u64,
}

/// Where the decompressed stream is, shared between the reader the tar parser owns
/// and the check that reports errors.
#[derive(Default)]
struct Track {
    /// Uncompressed bytes handed out so far.
    out: u64,
    /// Index, bundle offset and first uncompressed byte of the gzip member being read.
    member: Option<(u64, u64, u64)>,
    members: u64,
    footer: bool,
}

/// A `BufRead` that counts what its consumer took, so gzip members can be located.
struct Tally<R> {
    inner: R,
    taken: u64,
}

impl<R: BufRead> Read for Tally<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.taken += n as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Tally<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, n: usize) {
        self.taken += n as u64;
        self.inner.consume(n);
    }
}

/// Multi-member gzip, one member at a time, recording where each starts.
struct Members<R: BufRead> {
    state: Option<Either<R>>,
    track: Rc<RefCell<Track>>,
}

enum Either<R: BufRead> {
    Between(Tally<R>),
    In(Box<GzDecoder<Tally<R>>>),
    Plain(Tally<R>),
}

impl<R: BufRead> Read for Members<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state.take() {
                None => return Ok(0),
                Some(Either::Plain(mut r)) => {
                    let n = r.read(buf)?;
                    self.state = Some(Either::Plain(r));
                    self.track.borrow_mut().out += n as u64;
                    return Ok(n);
                }
                Some(Either::Between(mut r)) => {
                    if r.fill_buf()?.is_empty() {
                        return Ok(0);
                    }
                    let mut t = self.track.borrow_mut();
                    t.member = Some((t.members, r.taken, t.out));
                    t.members += 1;
                    drop(t);
                    self.state = Some(Either::In(Box::new(GzDecoder::new(r))));
                }
                Some(Either::In(mut d)) => {
                    // An error leaves the state empty: nothing is read after it.
                    let n = d.read(buf)?;
                    if n > 0 {
                        self.state = Some(Either::In(d));
                        self.track.borrow_mut().out += n as u64;
                        return Ok(n);
                    }
                    // Of the bundle's own gzip members only imgport's footer has an
                    // extra field (gzip, pigz and imgport's payload members have
                    // none), so a damaged tag still counts.
                    let tagged = d.header().and_then(|h| h.extra()).is_some();
                    let mut t = self.track.borrow_mut();
                    t.member = None;
                    t.footer |= tagged;
                    drop(t);
                    self.state = Some(Either::Between(d.into_inner()));
                }
            }
        }
    }
}

/// Reads the whole bundle at `path` as [`Checked`] describes. Errors: the bundle
/// cannot be opened ([`Error::Io`]); any defect is [`Error::Bundle`] naming the tar
/// member(s) it lies in, a manifest that does not parse included.
pub fn check(path: &Path) -> Result<Checked> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut input = Tally {
        inner: BufReader::with_capacity(1 << 20, file),
        taken: 0,
    };
    let gzip = input
        .fill_buf()
        .map_err(|e| Error::bundle_read(path.display().to_string(), e))?
        .starts_with(&[0x1f, 0x8b]);
    let track = Rc::new(RefCell::new(Track::default()));
    let stream = Members {
        state: Some(if gzip {
            Either::Between(input)
        } else {
            Either::Plain(input)
        }),
        track: track.clone(),
    };
    let mut spans: Vec<Span> = Vec::new();
    let mut checked = Checked::default();
    let mut archive = tar::Archive::new(stream);
    let fail = |spans: &[Span], what: &str, e: &dyn std::fmt::Display| {
        Error::Bundle(describe(&track.borrow(), spans, what, e))
    };
    let entries = archive
        .entries()
        .map_err(|e| fail(&spans, "a tar header", &e))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| fail(&spans, "a tar header", &e))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let size = entry.size();
        let start = entry.raw_header_position();
        let data_end = entry.raw_file_position().saturating_add(size);
        let below = split_member_name(&name)?;
        spans.push(Span {
            name: name.clone(),
            payload: below.is_some(),
            start,
            end: data_end.saturating_add(pad(size)),
        });
        let rel = below.as_ref().map(|(_, rel)| rel.as_str());
        let is_tree = rel.is_some_and(|r| crate::tree::Codec::from_tree_file_name(r).is_some());
        let read = if rel == Some(MANIFEST_NAME) {
            let mut xml = Vec::new();
            (&mut entry)
                .take(MANIFEST_MAX_BYTES)
                .read_to_end(&mut xml)
                .map(|_| Some(xml))
        } else {
            io::copy(&mut entry, &mut io::sink()).map(|_| None)
        };
        let xml = read.map_err(|e| fail(&spans, &name, &e))?;
        // The tar crate ends a member early, silently, when its data is cut short.
        if track.borrow().out < data_end {
            return Err(fail(&spans, &name, &"cut short inside its data"));
        }
        if let Some(xml) = xml {
            Manifest::parse(&xml).map_err(|e| Error::Bundle(format!("{name}: {e}")))?;
            checked.manifests += 1;
        }
        if rel.is_some() {
            checked.members += 1;
        }
        if is_tree {
            checked.trees.push(name);
        }
    }
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| fail(&spans, "the end of the tar", &e))?;
    let end = spans.last().map_or(0, |s| s.end);
    if track.borrow().out < end.saturating_add(END_MARKER) {
        return Err(Error::Bundle(format!(
            "the bundle is cut short after {}: no end-of-archive marker",
            spans.last().map_or("its start", |s| s.name.as_str())
        )));
    }
    checked.gzip_members = track.borrow().members;
    checked.footer = track.borrow().footer;
    Ok(checked)
}

fn pad(size: u64) -> u64 {
    (512 - size % 512) % 512
}

/// The error text for a defect noticed while reading `what`: the tar members lying in
/// the gzip member being inflated (all of them, see the module doc), or `what` alone.
fn describe(track: &Track, spans: &[Span], what: &str, e: &dyn std::fmt::Display) -> String {
    let Some((index, at, first)) = track.member else {
        return format!("{what}: {e}");
    };
    let mut names: Vec<&str> = spans
        .iter()
        .filter(|s| s.payload && s.end > first && s.start < track.out)
        .map(|s| s.name.as_str())
        .collect();
    let header = what == "a tar header";
    if !header && !names.contains(&what) {
        names.push(what);
    }
    // A CRC is checked at the member's end, which is where the last member seen ends;
    // any other failure is inside the member, in the header being read or past it.
    let at_end = spans.last().is_some_and(|s| s.end == track.out);
    if header && !at_end {
        names.push("the tar header after them");
    }
    if !at_end {
        names.push("and whatever follows in that gzip member");
    }
    if names.is_empty() {
        names.push(what);
    }
    format!(
        "{}: {e} (gzip member {index} at bundle byte {at})",
        names.join(", ")
    )
}

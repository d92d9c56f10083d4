//! A strict, DTD-free XML reader that builds the small element tree the manifest
//! model is mapped from.
//!
//! xCAT reads manifest.xml with XML::Simple (expat underneath), which rejects anything
//! that is not well-formed. quick-xml is a lenient tokenizer, so the checks expat would
//! make and quick-xml does not (one root, no stray text, legal characters, no unknown
//! entities, the declaration only at the very start) are made here. Document type
//! declarations are refused outright: a manifest never needs one, and entity
//! declarations are how XXE and entity-expansion attacks get in.

use std::borrow::Cow;

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use super::{ManifestError, Position};

/// One element: its name, where it starts, its character data and its children.
#[derive(Debug)]
pub(super) struct Element {
    pub name: String,
    pub pos: Position,
    /// All character data directly inside this element (text, CDATA and references,
    /// concatenated in order, the way XML::Simple's SAX handler merges adjacent text).
    pub text: String,
    /// Child elements in document order. Attributes are included as leading
    /// text-only children, because XML::Simple's XMLin folds attributes and child
    /// elements into the same hash.
    pub children: Vec<Element>,
}

impl Element {
    /// Whether the element carries non-whitespace character data. XMLin ignores
    /// whitespace-only text, so only this decides whether the element "has text".
    pub fn has_text(&self) -> bool {
        !is_blank(&self.text)
    }
}

/// Perl's `\s` on character strings is Unicode White_Space, which is what
/// `char::is_whitespace` tests; XMLin skips text matching `^\s*$`.
pub(super) fn is_blank(s: &str) -> bool {
    s.chars().all(char::is_whitespace)
}

/// Parses a whole document and returns its root element.
pub(super) fn parse_document(input: &[u8]) -> Result<Element, ManifestError> {
    // A UTF-8 byte order mark is allowed before the declaration; positions reported
    // to the user still count it so they match what an editor shows.
    let (input, base) = match input.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (rest, 3u64),
        None => (input, 0u64),
    };
    let text = decode(input, base)?;
    check_chars(&text, base)?;

    let mut reader = Reader::from_str(&text);
    // `--` inside comments is a well-formedness error for expat, so check it too.
    reader.config_mut().check_comments = true;
    let mut tree = TreeBuilder {
        text: &text,
        base,
        stack: Vec::new(),
        root: None,
    };
    loop {
        let before = reader.buffer_position();
        let event = match reader.read_event() {
            Ok(Event::Eof) => break,
            Ok(event) => event,
            Err(err) => {
                return Err(ManifestError::Syntax {
                    pos: tree.pos_at(reader.error_position()),
                    message: err.to_string(),
                })
            }
        };
        tree.event(event, before)?;
    }
    tree.finish()
}

/// Builds the element tree from quick-xml's events, making the well-formedness checks
/// expat makes and quick-xml does not.
struct TreeBuilder<'t> {
    /// The whole document, for positions.
    text: &'t str,
    /// Bytes before `text` (a byte order mark).
    base: u64,
    /// Open elements, innermost last.
    stack: Vec<Element>,
    root: Option<Element>,
}

impl TreeBuilder<'_> {
    fn pos_at(&self, byte: u64) -> Position {
        Position::at(self.text, self.base, byte)
    }

    /// A syntax error at byte `at`.
    fn syntax(&self, at: u64, message: String) -> ManifestError {
        ManifestError::Syntax {
            pos: self.pos_at(at),
            message,
        }
    }

    /// Takes one event that starts at byte `before`.
    fn event(&mut self, event: Event<'_>, before: u64) -> Result<(), ManifestError> {
        match event {
            Event::Decl(_) => {
                // The XML declaration is only legal as the very first thing.
                if before != 0 {
                    return Err(self.syntax(
                        before,
                        "XML declaration is only allowed at the start of the document".into(),
                    ));
                }
            }
            Event::DocType(_) => {
                return Err(ManifestError::Doctype {
                    pos: self.pos_at(before),
                });
            }
            Event::PI(_) | Event::Comment(_) | Event::Eof => {}
            Event::Start(start) => {
                let element = self.open(&start, before)?;
                self.stack.push(element);
            }
            Event::Empty(start) => {
                let element = self.open(&start, before)?;
                self.close(element);
            }
            Event::End(end) => match self.stack.pop() {
                // quick-xml has already checked that the end name matches.
                Some(element) => self.close(element),
                None => {
                    let name = String::from_utf8_lossy(end.name().as_ref().as_bytes()).into_owned();
                    return Err(
                        self.syntax(before, format!("end tag </{name}> without a start tag"))
                    );
                }
            },
            Event::Text(chunk) => match self.stack.last_mut() {
                Some(element) => element
                    .text
                    .push_str(&chunk.xml_content(XmlVersion::Implicit1_0)),
                None => {
                    // Only whitespace may surround the root; point at the first
                    // offending character rather than the start of the run.
                    let raw: &str = chunk.as_ref();
                    if let Some(at) = raw.find(|c| !is_xml_space(c)) {
                        return Err(
                            self.syntax(before + at as u64, "text outside the root element".into())
                        );
                    }
                }
            },
            Event::CData(chunk) => {
                let chunk = chunk.xml_content(XmlVersion::Implicit1_0);
                match self.stack.last_mut() {
                    Some(element) => element.text.push_str(&chunk),
                    None => {
                        return Err(
                            self.syntax(before, "CDATA section outside the root element".into())
                        )
                    }
                }
            }
            Event::GeneralRef(reference) => {
                if self.stack.is_empty() {
                    return Err(
                        self.syntax(before, "entity reference outside the root element".into())
                    );
                }
                let ch = resolve_reference(&reference).map_err(|m| self.syntax(before, m))?;
                if let Some(element) = self.stack.last_mut() {
                    element.text.push(ch);
                }
            }
        }
        Ok(())
    }

    /// The element of a start (or empty-element) tag at byte `before`; refused after
    /// the root has ended.
    fn open(&self, start: &BytesStart<'_>, before: u64) -> Result<Element, ManifestError> {
        let element = open_element(start, self.pos_at(before))?;
        if self.stack.is_empty() && self.root.is_some() {
            return Err(self.syntax(
                before,
                format!(
                    "element <{}> after the root element has ended (only one root is allowed)",
                    element.name
                ),
            ));
        }
        Ok(element)
    }

    /// Attaches a finished element to its parent, or makes it the root.
    fn close(&mut self, element: Element) {
        match self.stack.last_mut() {
            Some(parent) => parent.children.push(element),
            None => self.root = Some(element),
        }
    }

    /// The root, once the document has ended with every element closed.
    fn finish(self) -> Result<Element, ManifestError> {
        let end = self.text.len() as u64;
        if let Some(open) = self.stack.last() {
            return Err(self.syntax(
                end,
                format!(
                    "document ends inside element <{}> opened at {}",
                    open.name, open.pos
                ),
            ));
        }
        match self.root {
            Some(root) => Ok(root),
            None => Err(self.syntax(end, "no root element".into())),
        }
    }
}

/// The character a reference stands for: a character reference to a legal XML
/// character, or one of the five predefined entities. The error is the message.
fn resolve_reference(reference: &BytesRef<'_>) -> Result<char, String> {
    if reference.is_char_ref() {
        return match reference.resolve_char_ref() {
            Ok(Some(ch)) if is_xml_char(ch) => Ok(ch),
            _ => Err(format!("invalid character reference &{};", &**reference)),
        };
    }
    predefined_entity(reference).ok_or_else(|| {
        format!(
            "unknown entity &{}; (only &amp; &lt; &gt; &quot; &apos; and character references are allowed)",
            &**reference
        )
    })
}

/// Creates the element for a start (or empty-element) tag, turning attributes into
/// text-only children the way XMLin merges them into the element's hash.
fn open_element(start: &BytesStart<'_>, pos: Position) -> Result<Element, ManifestError> {
    let name = start.name().as_ref().to_string();
    let mut children = Vec::new();
    for attr in start.attributes() {
        let bad = |message: String| ManifestError::Syntax {
            pos,
            message: format!("in the attributes of <{name}>: {message}"),
        };
        let attr = attr.map_err(|e| bad(e.to_string()))?;
        let value = attr
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| bad(e.to_string()))?;
        children.push(Element {
            name: attr.key.as_ref().to_string(),
            pos,
            text: value.into_owned(),
            children: Vec::new(),
        });
    }
    Ok(Element {
        name,
        pos,
        text: String::new(),
        children,
    })
}

fn predefined_entity(name: &str) -> Option<char> {
    Some(match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        _ => return None,
    })
}

/// XML 1.0 `Char` production. Rust strings cannot hold surrogates, so only the
/// C0 controls and U+FFFE/U+FFFF remain to be excluded.
fn is_xml_char(ch: char) -> bool {
    matches!(ch, '\t' | '\n' | '\r') || (ch >= ' ' && ch != '\u{FFFE}' && ch != '\u{FFFF}')
}

/// XML's own `S` production (used where the XML grammar, not XMLin, decides).
fn is_xml_space(ch: char) -> bool {
    matches!(ch, ' ' | '\t' | '\n' | '\r')
}

/// Rejects characters XML forbids anywhere in a document (expat does the same).
fn check_chars(text: &str, base: u64) -> Result<(), ManifestError> {
    match text.char_indices().find(|&(_, ch)| !is_xml_char(ch)) {
        None => Ok(()),
        Some((at, ch)) => Err(ManifestError::Syntax {
            pos: Position::at(text, base, at as u64),
            message: format!("character U+{:04X} is not allowed in XML", ch as u32),
        }),
    }
}

/// Turns the raw bytes into text. UTF-8 (the default, and what xCAT writes) and
/// US-ASCII are read as they are; ISO-8859-1 is transcoded because expat, and so
/// XMLin, accepts it. Anything else is refused rather than misread.
fn decode(input: &[u8], base: u64) -> Result<Cow<'_, str>, ManifestError> {
    if input.starts_with(b"\xFF\xFE") || input.starts_with(b"\xFE\xFF") {
        return Err(ManifestError::Syntax {
            pos: Position { line: 1, byte: 0 },
            message: "UTF-16 manifests are not supported".into(),
        });
    }
    let encoding = declared_encoding(input).map(|e| e.to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("utf-8" | "utf8" | "us-ascii" | "ascii") => match std::str::from_utf8(input) {
            Ok(text) => Ok(Cow::Borrowed(text)),
            Err(err) => {
                let at = err.valid_up_to();
                // Safe to slice: valid_up_to is a char boundary of valid UTF-8.
                let valid = std::str::from_utf8(&input[..at]).unwrap_or_default();
                Err(ManifestError::Syntax {
                    pos: Position::at(valid, base, at as u64),
                    message: "invalid UTF-8".into(),
                })
            }
        },
        Some("iso-8859-1" | "iso8859-1" | "latin1" | "latin-1" | "l1") => {
            Ok(Cow::Owned(input.iter().map(|&b| char::from(b)).collect()))
        }
        Some(other) => Err(ManifestError::Syntax {
            pos: Position {
                line: 1,
                byte: base,
            },
            message: format!("unsupported encoding {other:?} in the XML declaration"),
        }),
    }
}

/// The `encoding` pseudo-attribute of a leading `<?xml ...?>`, read from raw bytes
/// (the declaration is ASCII whatever the document's encoding).
fn declared_encoding(input: &[u8]) -> Option<&str> {
    let rest = input.strip_prefix(b"<?xml")?;
    if !rest.first().is_some_and(u8::is_ascii_whitespace) {
        return None;
    }
    let end = rest.windows(2).position(|w| w == b"?>")?;
    let decl = std::str::from_utf8(&rest[..end]).ok()?;
    let after = &decl[decl.find("encoding")? + "encoding".len()..];
    let after = after.trim_start().strip_prefix('=')?.trim_start();
    let quote = after.chars().next().filter(|q| *q == '"' || *q == '\'')?;
    let value = &after[1..];
    Some(&value[..value.find(quote)?])
}

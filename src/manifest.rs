//! The typed model of a bundle's `manifest.xml`, with a reader that accepts every
//! shape xCAT's importer accepts and a writer whose bytes equal xCAT's exporter's.
//!
//! xCAT writes the manifest with XML::Simple's `XMLout` and reads it back with a
//! default `XMLin`, whose data shape depends on how often an element occurs
//! (XCAT.md §5.1, §5.3). This module hides those shapes behind [`Manifest`]:
//!
//! * reading ([`Manifest::parse`]): root element dropped, whitespace-only text
//!   ignored, other text kept untrimmed, one-or-many elements (`extra`,
//!   `rawimagefiles/files`, `kit`/`kitrepo`/`kitcomp`) always become lists, empty
//!   elements become empty strings, and legacy flat (xCAT ≤ 2.7) manifests are moved
//!   into `osimage`/`linuximage` the way imgport.pm's `manifest_adapter` does;
//! * writing ([`Manifest::to_xml`]): the exact bytes of `XMLout($h, RootName =>
//!   'xcatimage', NoAttr => 1, XMLDecl => '<?xml version="1.0"?>')`, checked against
//!   goldens produced by the real Perl module (`scripts/xmlsimple-golden.pl`).
//!
//! Values are carried as strings exactly as they appear in the XML; an empty string
//! means "present but empty" and callers writing database rows must treat it as
//! NULL (xCAT writes NULL for absent values, never `''`, XCAT.md C15).

mod write;
mod xml;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

use crate::catalog::schema::{LINUXIMAGE, OSIMAGE};

use write::Value;
use xml::Element;

/// One table row as column name → value (only the columns present in the manifest).
pub type Columns = BTreeMap<String, String>;

/// One `-e` extra: a file or directory copied into the bundle's `extra/` and placed
/// back under `dest` on import. Either field may be empty if the manifest left the
/// child element out or empty; callers must validate before using them as paths.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extra {
    /// Absolute source path on the exporting host (`<src>`).
    pub src: String,
    /// Absolute destination directory on the importing host (`<dest>`).
    pub dest: String,
}

/// The content of one `manifest.xml` (XCAT.md §5.2), after the legacy adapter.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Manifest {
    /// `<osimage>`: the osimage table row.
    pub osimage: Columns,
    /// `<linuximage>`: the linuximage table row (plus discovered template/pkglist).
    pub linuximage: Columns,
    /// `<kernel>`: absolute path, also the import destination (netboot, statelite).
    pub kernel: Option<String>,
    /// `<ramdisk>`: absolute path of initrd-stateless.gz / initrd-statelite.gz.
    pub ramdisk: Option<String>,
    /// `<rootimg>`: absolute path of the compressed root image (netboot).
    pub rootimg: Option<String>,
    /// `<rootimgtree>`: `<rootimgdir>/rootimgtree.gz` (statelite).
    pub rootimgtree: Option<String>,
    /// `<litefile>`: `<rootimgdir>/litefile.csv` (statelite).
    pub litefile: Option<String>,
    /// `<media>`: `required` for install images.
    pub media: Option<String>,
    /// `<extra>` entries, in document order.
    pub extra: Vec<Extra>,
    /// Top-level `<postscripts>`: the `-p` comma list (in a flat legacy manifest
    /// this element is the osimage column instead and is moved into `osimage`).
    pub postscripts: Option<String>,
    /// Top-level `<postbootscripts>`, as for `postscripts`.
    pub postbootscripts: Option<String>,
    /// `<rawimagefiles><files>..</files>...</rawimagefiles>` (s390x), in order.
    pub rawimagefiles: Vec<String>,
    /// `<kit>` entries as (name, row). [`Manifest::parse`] returns them sorted by
    /// name with duplicate names collapsed (last wins), as XMLin's hash would.
    pub kit: Vec<(String, Columns)>,
    /// `<kitrepo>` entries as (name, row), like `kit`.
    pub kitrepo: Vec<(String, Columns)>,
    /// `<kitcomp>` entries as (name, row), like `kit`.
    pub kitcomp: Vec<(String, Columns)>,
    /// Other top-level scalar elements, kept and written back (imgport adds its own,
    /// e.g. a format version; xCAT ignores unknown keys).
    pub other: BTreeMap<String, String>,
}

/// Where in the manifest something was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line number.
    pub line: u64,
    /// 0-based byte offset into the file (for an ISO-8859-1 file, into its UTF-8
    /// transcoding).
    pub byte: u64,
}

impl Position {
    /// The position of byte offset `byte` of `text`, which starts `base` bytes into
    /// the file (a skipped byte order mark).
    fn at(text: &str, base: u64, byte: u64) -> Position {
        let end = usize::try_from(byte).map_or(text.len(), |b| b.min(text.len()));
        let newlines = text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        Position {
            line: newlines as u64 + 1,
            byte: byte + base,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} (byte {})", self.line, self.byte)
    }
}

/// Why a manifest could not be read. The CLI reports every variant with xCAT's
/// fixed text ("invalid manifest.xml file inside the bundle.  Please verify the
/// XML"); the variant carries the detail for verbose output and logs.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not well-formed XML (or not in a supported encoding).
    #[error("manifest.xml is not well-formed XML at {pos}: {message}")]
    Syntax {
        /// Where the problem was detected.
        pos: Position,
        /// What is wrong.
        message: String,
    },
    /// A `<!DOCTYPE>`: refused so that no entity declaration is ever processed
    /// (no XXE, no entity expansion); xCAT never writes one.
    #[error("manifest.xml has a DOCTYPE declaration at {pos}; document type and entity declarations are not accepted")]
    Doctype {
        /// Where the declaration starts.
        pos: Position,
    },
    /// Well-formed XML whose structure cannot be a manifest, e.g. a path element
    /// with child elements, or a repeated element that must occur once.
    #[error("manifest.xml element <{element}> at {pos}: {message}")]
    Structure {
        /// Slash-separated path of the element, e.g. `xcatimage/osimage/profile`.
        element: String,
        /// Where the element starts.
        pos: Position,
        /// What is wrong.
        message: String,
    },
}

/// Top-level elements with a typed field. Anything else goes to `other`.
const KNOWN: [&str; 15] = [
    "osimage",
    "linuximage",
    "kernel",
    "ramdisk",
    "rootimg",
    "rootimgtree",
    "litefile",
    "media",
    "extra",
    "postscripts",
    "postbootscripts",
    "rawimagefiles",
    "kit",
    "kitrepo",
    "kitcomp",
];

/// The osimage fields verify_manifest trims with `s/^\s*(\S*)\s*$/$1/`.
const TRIMMED_FIELDS: [&str; 5] = ["imagename", "provmethod", "profile", "osvers", "osarch"];

impl Manifest {
    /// Reads a manifest.xml, accepting every shape xCAT's XMLin-based importer
    /// accepts (XCAT.md §5.3, C13), then applies the legacy flat-manifest adapter.
    ///
    /// Shapes that would make xCAT store garbage or die (a path element with child
    /// elements, an osimage column given twice, a kit entry without `<name>`) are
    /// reported as [`ManifestError::Structure`]. Unknown top-level elements that are
    /// not plain text are ignored, as xCAT ignores them. Like XMLin, the root
    /// element's name is not checked, and attributes (which xCAT never writes) are
    /// read as if they were text-only child elements.
    pub fn parse(xml: &[u8]) -> Result<Manifest, ManifestError> {
        let root = xml::parse_document(xml)?;
        let root_path = root.name.clone();

        // XMLin groups same-named children: one is a scalar/hash, several an array.
        let mut groups: BTreeMap<&str, Vec<&Element>> = BTreeMap::new();
        for child in &root.children {
            groups.entry(child.name.as_str()).or_default().push(child);
        }
        // manifest_adapter runs only when both sections are absent.
        let flat = !groups.contains_key("osimage") && !groups.contains_key("linuximage");

        let mut m = Manifest::default();
        for (&name, elements) in &groups {
            let path = format!("{root_path}/{name}");
            if flat {
                let in_osimage = OSIMAGE.has_column(name);
                let in_linuximage = LINUXIMAGE.has_column(name);
                if in_osimage || in_linuximage {
                    let value = scalar(single(elements, &path)?, &path)?;
                    if in_linuximage {
                        m.linuximage.insert(name.to_string(), value.clone());
                    }
                    if in_osimage {
                        m.osimage.insert(name.to_string(), value);
                    }
                    continue;
                }
            }
            let text = || -> Result<Option<String>, ManifestError> {
                Ok(Some(scalar(single(elements, &path)?, &path)?))
            };
            match name {
                "osimage" => m.osimage = columns(single(elements, &path)?, &path)?,
                "linuximage" => m.linuximage = columns(single(elements, &path)?, &path)?,
                "kernel" => m.kernel = text()?,
                "ramdisk" => m.ramdisk = text()?,
                "rootimg" => m.rootimg = text()?,
                "rootimgtree" => m.rootimgtree = text()?,
                "litefile" => m.litefile = text()?,
                "media" => m.media = text()?,
                "postscripts" => m.postscripts = text()?,
                "postbootscripts" => m.postbootscripts = text()?,
                "extra" => {
                    m.extra = elements
                        .iter()
                        .map(|e| extra(e, &path))
                        .collect::<Result<_, _>>()?
                }
                "rawimagefiles" => m.rawimagefiles = raw_files(single(elements, &path)?, &path)?,
                "kit" => m.kit = keyed_rows(elements, &path)?,
                "kitrepo" => m.kitrepo = keyed_rows(elements, &path)?,
                "kitcomp" => m.kitcomp = keyed_rows(elements, &path)?,
                _ => {
                    // Only plain text is kept: `other` holds scalars, and xCAT never
                    // reads unknown keys, so dropping a nested one loses nothing it uses.
                    if let [element] = elements.as_slice() {
                        if element.children.is_empty() {
                            m.other.insert(name.to_string(), scalar(element, &path)?);
                        }
                    }
                }
            }
        }
        Ok(m)
    }

    /// Serializes the manifest byte-for-byte as xCAT's imgexport does (XCAT.md §5.1,
    /// C4): `XMLout` with RootName `xcatimage`, NoAttr and the `<?xml version="1.0"?>`
    /// declaration.
    ///
    /// The osimage and linuximage sections are always written (xCAT always has
    /// them, and their presence is what stops the legacy adapter on re-read).
    /// Kit entries are written sorted by name, one per distinct name (last wins).
    /// Keys in `other` that name a typed element or start with `-` (which XMLout
    /// skips) are not written. Element names are not validated: keys must be XML
    /// names. Values are not escaped beyond `& < > "`, exactly like XMLout, so a
    /// `\r` or control character in a value does not survive a re-read, as in xCAT.
    pub fn to_xml(&self) -> String {
        let mut root: BTreeMap<String, Value> = BTreeMap::new();
        for (key, value) in &self.other {
            if !KNOWN.contains(&key.as_str()) {
                root.insert(key.clone(), Value::Scalar(value.clone()));
            }
        }
        root.insert("osimage".into(), columns_value(&self.osimage));
        root.insert("linuximage".into(), columns_value(&self.linuximage));
        let scalars = [
            ("kernel", &self.kernel),
            ("ramdisk", &self.ramdisk),
            ("rootimg", &self.rootimg),
            ("rootimgtree", &self.rootimgtree),
            ("litefile", &self.litefile),
            ("media", &self.media),
            ("postscripts", &self.postscripts),
            ("postbootscripts", &self.postbootscripts),
        ];
        for (name, value) in scalars {
            if let Some(value) = value {
                root.insert(name.into(), Value::Scalar(value.clone()));
            }
        }
        if !self.extra.is_empty() {
            let entries = self.extra.iter().map(|e| {
                Value::Hash(BTreeMap::from([
                    ("dest".to_string(), Value::Scalar(e.dest.clone())),
                    ("src".to_string(), Value::Scalar(e.src.clone())),
                ]))
            });
            root.insert("extra".into(), Value::List(entries.collect()));
        }
        if !self.rawimagefiles.is_empty() {
            let files = self.rawimagefiles.iter().cloned().map(Value::Scalar);
            root.insert(
                "rawimagefiles".into(),
                Value::Hash(BTreeMap::from([(
                    "files".to_string(),
                    Value::List(files.collect()),
                )])),
            );
        }
        let keyed = [
            ("kit", &self.kit),
            ("kitrepo", &self.kitrepo),
            ("kitcomp", &self.kitcomp),
        ];
        for (name, rows) in keyed {
            if !rows.is_empty() {
                // xCAT holds these as a hash keyed by name, which XMLout unfolds.
                let hash = rows
                    .iter()
                    .map(|(key, row)| (key.clone(), columns_value(row)))
                    .collect();
                root.insert(name.into(), Value::Hash(hash));
            }
        }
        write::xml_out("xcatimage", &root)
    }

    /// `osimage.imagename`, trimmed and `None`-if-empty as [`Manifest::field`] does.
    pub fn imagename(&self) -> Option<&str> {
        self.field("imagename")
    }

    /// An osimage column as verify_manifest sees it: `imagename`, `provmethod`,
    /// `profile`, `osvers` and `osarch` lose surrounding whitespace, but only when
    /// the value has no inner whitespace (`s/^\s*(\S*)\s*$/$1/`); other columns are
    /// returned as stored. `None` if absent or empty.
    ///
    /// Note that xCAT also rejects the value `0` for the five required fields
    /// (Perl falsiness); this accessor returns it and leaves that to the caller.
    pub fn field(&self, name: &str) -> Option<&str> {
        let value = self.osimage.get(name)?.as_str();
        let value = if TRIMMED_FIELDS.contains(&name) {
            perl_trim(value)
        } else {
            value
        };
        (!value.is_empty()).then_some(value)
    }
}

/// `s/^\s*(\S*)\s*$/$1/`: strip surrounding whitespace only if none is left inside.
fn perl_trim(value: &str) -> &str {
    let trimmed = value.trim();
    if trimmed.contains(char::is_whitespace) {
        value
    } else {
        trimmed
    }
}

fn columns_value(columns: &Columns) -> Value {
    Value::Hash(
        columns
            .iter()
            .map(|(k, v)| (k.clone(), Value::Scalar(v.clone())))
            .collect(),
    )
}

fn structure(element: &Element, path: &str, message: impl Into<String>) -> ManifestError {
    ManifestError::Structure {
        element: path.to_string(),
        pos: element.pos,
        message: message.into(),
    }
}

/// The only element of a group that must occur once (XMLin would make an array
/// of a repeated one, which xCAT then mishandles).
fn single<'a>(elements: &[&'a Element], path: &str) -> Result<&'a Element, ManifestError> {
    match elements {
        [only] => Ok(only),
        [_, second, ..] => Err(structure(
            second,
            path,
            format!("appears {} times; it may appear only once", elements.len()),
        )),
        // Groups are built from at least one element.
        [] => Err(ManifestError::Structure {
            element: path.to_string(),
            pos: Position { line: 0, byte: 0 },
            message: "missing".into(),
        }),
    }
}

/// A text-only element's value: untrimmed, or empty if it is empty or blank
/// (XMLin yields `{}` for both, which must not become the string `HASH(0x..)`).
fn scalar(element: &Element, path: &str) -> Result<String, ManifestError> {
    if let Some(child) = element.children.first() {
        return Err(structure(
            element,
            path,
            format!(
                "must contain only text, but has child element or attribute <{}>",
                child.name
            ),
        ));
    }
    if element.has_text() {
        Ok(element.text.clone())
    } else {
        Ok(String::new())
    }
}

/// Children of a container element (osimage, linuximage, extra, kit...) grouped by
/// name; stray text inside a container is an error since it has nowhere to go.
fn container<'a>(
    element: &'a Element,
    path: &str,
) -> Result<BTreeMap<&'a str, Vec<&'a Element>>, ManifestError> {
    if element.has_text() {
        return Err(structure(
            element,
            path,
            "must contain only child elements, but has text",
        ));
    }
    let mut groups: BTreeMap<&str, Vec<&Element>> = BTreeMap::new();
    for child in &element.children {
        groups.entry(child.name.as_str()).or_default().push(child);
    }
    Ok(groups)
}

/// `<osimage>`/`<linuximage>`: one text child per column.
fn columns(element: &Element, path: &str) -> Result<Columns, ManifestError> {
    let mut row = Columns::new();
    for (name, children) in container(element, path)? {
        let child_path = format!("{path}/{name}");
        row.insert(
            name.to_string(),
            scalar(single(&children, &child_path)?, &child_path)?,
        );
    }
    Ok(row)
}

/// One `<extra>`; missing `src`/`dest` are empty, unknown children ignored.
fn extra(element: &Element, path: &str) -> Result<Extra, ManifestError> {
    let groups = container(element, path)?;
    let field = |name: &str| -> Result<String, ManifestError> {
        let child_path = format!("{path}/{name}");
        match groups.get(name) {
            Some(children) => scalar(single(children, &child_path)?, &child_path),
            None => Ok(String::new()),
        }
    };
    Ok(Extra {
        src: field("src")?,
        dest: field("dest")?,
    })
}

/// `<rawimagefiles>`: its `<files>` children, one or many, in document order.
fn raw_files(element: &Element, path: &str) -> Result<Vec<String>, ManifestError> {
    let groups = container(element, path)?;
    let child_path = format!("{path}/files");
    groups
        .get("files")
        .map(|files| files.iter().map(|f| scalar(f, &child_path)).collect())
        .unwrap_or_else(|| Ok(Vec::new()))
}

/// kit/kitrepo/kitcomp entries keyed by their `<name>` child. XMLin folds two or
/// more into a hash by name but leaves a single one unfolded (which crashes xCAT);
/// both shapes give the same list here, sorted by name, last duplicate winning.
fn keyed_rows(elements: &[&Element], path: &str) -> Result<Vec<(String, Columns)>, ManifestError> {
    let mut rows: BTreeMap<String, Columns> = BTreeMap::new();
    for element in elements {
        // `<kit/>` is an empty hash to XMLin, i.e. no entries; skip it.
        if element.children.is_empty() && !element.has_text() {
            continue;
        }
        let mut row = columns(element, path)?;
        match row.remove("name") {
            Some(name) if !name.is_empty() => {
                rows.insert(name, row);
            }
            Some(_) => return Err(structure(element, path, "entry has an empty <name>")),
            None => {
                return Err(structure(
                    element,
                    path,
                    "entry has no <name> child identifying it",
                ))
            }
        }
    }
    Ok(rows.into_iter().collect())
}

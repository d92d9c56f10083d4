//! One archived entry of a root tree: the record shared by every encoder, decoder
//! and the restorer, so a format change touches both sides in one place.

/// Seconds and nanoseconds since the epoch (seconds may be negative).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Timestamp {
    pub secs: i64,
    pub nanos: u32,
}

/// What an entry is, with the data that only that kind carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A regular file; its bytes follow the entry in the archive (`Entry::size`).
    File,
    Dir,
    /// A symbolic link and its target, as raw bytes (may dangle, may be absolute).
    Symlink(Vec<u8>),
    /// A hard link to an earlier entry, named by its archive path (raw bytes).
    HardLink(Vec<u8>),
    CharDevice {
        major: u32,
        minor: u32,
    },
    BlockDevice {
        major: u32,
        minor: u32,
    },
    Fifo,
}

/// One entry of a tree archive. Paths are raw bytes relative to the archive's top,
/// e.g. `rootimg` for the top directory itself and `rootimg/etc/passwd` below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: Vec<u8>,
    pub kind: Kind,
    /// Permission bits including setuid, setgid and sticky (`0o7777` mask).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Owner names, informational only: owners are restored by number.
    pub uname: Option<Vec<u8>>,
    pub gname: Option<Vec<u8>>,
    pub mtime: Timestamp,
    pub atime: Option<Timestamp>,
    /// Logical size of a regular file's content (holes included); 0 for other kinds.
    pub size: u64,
    /// Extended attributes, name → raw value, in the order read (binary-safe).
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// For sparse files: the data segments `(offset, length)`; the archive then holds
    /// only those bytes, concatenated. `None` for dense files.
    pub sparse: Option<Vec<(u64, u64)>>,
}

impl Entry {
    /// A new entry with no owner names, times, xattrs or data.
    pub fn new(path: Vec<u8>, kind: Kind, mode: u32) -> Entry {
        Entry {
            path,
            kind,
            mode,
            uid: 0,
            gid: 0,
            uname: None,
            gname: None,
            mtime: Timestamp::default(),
            atime: None,
            size: 0,
            xattrs: Vec::new(),
            sparse: None,
        }
    }

    /// Bytes of file content the archive stores for this entry (data segments only).
    pub fn stored_size(&self) -> u64 {
        match (&self.kind, &self.sparse) {
            (Kind::File, Some(map)) => map.iter().map(|&(_, len)| len).sum(),
            (Kind::File, None) => self.size,
            _ => 0,
        }
    }
}

//! A re-creation of the part of XML::Simple's `XMLout` that xCAT's imgexport uses:
//! `XML::Simple->new(RootName => 'xcatimage')->XMLout($h, noattr => 1,
//! xmldecl => '<?xml version="1.0"?>')`, with the default KeyAttr (`name`, `key`,
//! `id`). Written generically over a Perl-like value tree so that each XMLout rule
//! (sorting, key hoisting, unfolding) lives in one place and applies at every level,
//! as it does in Perl.

use std::collections::BTreeMap;

/// The Perl data shapes XMLout sees: a string, a hash or an array.
#[derive(Debug, Clone)]
pub(super) enum Value {
    Scalar(String),
    Hash(BTreeMap<String, Value>),
    List(Vec<Value>),
}

/// XMLout's default KeyAttr. In each hash the first of these present is written
/// first (sorted_keys), and unfolded hash-of-hashes entries get `name` as their key.
const KEY_ATTRS: [&str; 3] = ["name", "key", "id"];

const INDENT: &str = "  ";

/// Serializes `root` as the document element `root_name`, declaration first.
pub(super) fn xml_out(root_name: &str, root: &BTreeMap<String, Value>) -> String {
    let mut out = String::from("<?xml version=\"1.0\"?>\n");
    // The root hash is never unfolded (XMLout's `!$is_root` guard).
    write_hash(&mut out, root_name, root, "");
    out
}

fn write_value(out: &mut String, name: &str, value: &Value, indent: &str) {
    match value {
        Value::Scalar(text) => {
            out.push_str(indent);
            out.push('<');
            out.push_str(name);
            out.push('>');
            escape_into(out, text);
            out.push_str("</");
            out.push_str(name);
            out.push_str(">\n");
        }
        // An array becomes the element repeated; an empty array writes nothing.
        Value::List(items) => {
            for item in items {
                write_value(out, name, item, indent);
            }
        }
        Value::Hash(hash) if is_foldable(hash) => {
            // hash_to_array: `{ K => {..} }` becomes one element per K, each
            // `{ name => K, %$row }` (the row's own keys win, as in Perl).
            for (key, row) in hash {
                let mut entry = BTreeMap::new();
                entry.insert(KEY_ATTRS[0].to_string(), Value::Scalar(key.clone()));
                if let Value::Hash(row) = row {
                    entry.extend(row.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
                write_hash(out, name, &entry, indent);
            }
        }
        Value::Hash(hash) => write_hash(out, name, hash, indent),
    }
}

/// XMLout unfolds a non-empty hash whose values are all hashes.
fn is_foldable(hash: &BTreeMap<String, Value>) -> bool {
    !hash.is_empty() && hash.values().all(|v| matches!(v, Value::Hash(_)))
}

fn write_hash(out: &mut String, name: &str, hash: &BTreeMap<String, Value>, indent: &str) {
    out.push_str(indent);
    out.push('<');
    out.push_str(name);
    out.push('>');
    if hash.is_empty() {
        // An empty hash is `<x></x>` on one line.
        out.push_str("</");
        out.push_str(name);
        out.push_str(">\n");
        return;
    }
    out.push('\n');
    let inner = format!("{indent}{INDENT}");
    for (key, value) in sorted_entries(hash) {
        // XMLout skips keys starting with '-' (its marker for option-like keys).
        if key.starts_with('-') {
            continue;
        }
        write_value(out, key, value, &inner);
    }
    out.push_str(indent);
    out.push_str("</");
    out.push_str(name);
    out.push_str(">\n");
}

/// XMLout's sorted_keys: the first KeyAttr present goes first, the rest follow in
/// Perl `sort` order (code point order, which is UTF-8 byte order, i.e. BTreeMap's).
fn sorted_entries(hash: &BTreeMap<String, Value>) -> Vec<(&str, &Value)> {
    let hoisted = KEY_ATTRS.iter().find(|k| hash.contains_key(**k)).copied();
    let mut entries = Vec::with_capacity(hash.len());
    if let Some(key) = hoisted {
        if let Some(value) = hash.get(key) {
            entries.push((key, value));
        }
    }
    entries.extend(
        hash.iter()
            .filter(|(k, _)| Some(k.as_str()) != hoisted)
            .map(|(k, v)| (k.as_str(), v)),
    );
    entries
}

/// XMLout's escape_value: only `& < > "`. Apostrophes, control characters and
/// non-ASCII text are written as they are.
fn escape_into(out: &mut String, text: &str) {
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(ch),
        }
    }
}

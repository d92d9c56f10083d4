//! The `--json` documents (schema: docs/JSON.md). One document per run, on stdout.

use serde_json::{json, Map, Value};

use imgport::catalog::ChangeKind;
use imgport::export::ExportReport;
use imgport::import::{FileAction, ImportReport};

/// Schema version of every document; bumped on incompatible changes.
pub const SCHEMA: u32 = 1;

pub fn print(doc: &Value) {
    // serde_json renders any Value; a failure here can only be a closed stdout.
    if let Ok(text) = serde_json::to_string_pretty(doc) {
        println!("{text}");
    }
}

fn ratio(bytes_in: u64, bytes_out: u64) -> Value {
    if bytes_out == 0 {
        Value::Null
    } else {
        json!((bytes_in as f64 / bytes_out as f64 * 1000.0).round() / 1000.0)
    }
}

/// One image's entry in an export document.
pub fn export_image(
    image: &str,
    report: Option<&ExportReport>,
    warnings: &[String],
    errors: &[String],
) -> Value {
    match report {
        Some(r) => json!({
            "image": image,
            "ok": errors.is_empty(),
            "bundle": r.bundle.as_ref().map(|b| b.display().to_string()),
            "files": r.files,
            "tree_entries": r.tree_entries,
            "bytes_in": r.bytes_in,
            "bytes_out": r.bytes_out,
            "ratio": ratio(r.bytes_in, r.bytes_out),
            "seconds": (r.seconds * 1000.0).round() / 1000.0,
            "warnings": warnings,
            "errors": errors,
        }),
        None => json!({
            "image": image,
            "ok": false,
            "bundle": null,
            "warnings": warnings,
            "errors": errors,
        }),
    }
}

pub fn export_doc(images: Vec<Value>, exit_code: i32) -> Value {
    let failed: Vec<Value> = images
        .iter()
        .filter(|i| i["ok"] == json!(false))
        .map(|i| i["image"].clone())
        .collect();
    json!({
        "schema": SCHEMA,
        "command": "export",
        "ok": failed.is_empty(),
        "exit_code": exit_code,
        "images": images,
        "failed": failed,
    })
}

/// One bundle's entry in an import document.
pub fn import_bundle(
    bundle: &str,
    report: Option<&ImportReport>,
    warnings: &[String],
    errors: &[String],
) -> Value {
    let Some(r) = report else {
        return json!({
            "bundle": bundle,
            "ok": false,
            "images": [],
            "warnings": warnings,
            "errors": errors,
        });
    };
    let images: Vec<Value> = r
        .images
        .iter()
        .map(|i| {
            let mut v = json!({
                "image": i.image,
                "ok": i.ok,
                "files": i.files,
                "tree_entries": i.tree_entries,
                "errors": i.errors,
            });
            if let Some(plan) = &i.dry_run {
                let files: Vec<Value> = plan
                    .files
                    .iter()
                    .map(|(p, a)| {
                        json!({"path": p, "action": match a { FileAction::Create => "create", FileAction::Replace => "replace" }})
                    })
                    .collect();
                let rows: Vec<Value> = plan
                    .rows
                    .iter()
                    .map(|c| {
                        let key: Map<String, Value> = c.key.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
                        json!({
                            "table": c.table,
                            "key": key,
                            "change": match c.kind { ChangeKind::Insert => "insert", ChangeKind::Update => "update", ChangeKind::Unchanged => "unchanged" },
                            "old": c.old,
                            "new": c.new,
                        })
                    })
                    .collect();
                v["dry_run"] = json!({"files": files, "rows": rows, "restarts_xcatd": plan.restarts_xcatd});
            }
            v
        })
        .collect();
    json!({
        "bundle": bundle,
        "ok": r.all_ok(),
        "bytes_in": r.bytes_in,
        "seconds": (r.seconds * 1000.0).round() / 1000.0,
        "images": images,
        "warnings": warnings,
        "errors": errors,
    })
}

pub fn import_doc(bundles: Vec<Value>, exit_code: i32, dry_run: bool) -> Value {
    let failed: Vec<Value> = bundles
        .iter()
        .flat_map(|b| {
            let mut names: Vec<Value> = b["images"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|i| i["ok"] == json!(false))
                        .map(|i| i["image"].clone())
                        .collect()
                })
                .unwrap_or_default();
            if b["images"].as_array().is_none_or(|a| a.is_empty()) && b["ok"] == json!(false) {
                names.push(b["bundle"].clone());
            }
            names
        })
        .collect();
    json!({
        "schema": SCHEMA,
        "command": "import",
        "dry_run": dry_run,
        "ok": failed.is_empty(),
        "exit_code": exit_code,
        "bundles": bundles,
        "failed": failed,
    })
}

/// `imgport recover --json`: what recovery did, or `recovered: false`.
pub fn recovery(done: Option<&imgport::journal::Recovery>) -> Value {
    match done {
        None => json!({"schema": SCHEMA, "command": "recover", "ok": true,
            "recovered": false, "images": [], "actions": []}),
        Some(d) => json!({
            "schema": SCHEMA,
            "command": "recover",
            "ok": true,
            "recovered": true,
            "journal": d.journal.display().to_string(),
            "pid": d.pid,
            "images": d.images.iter().map(|i| json!({
                "image": i.image,
                "outcome": i.outcome.as_str(),
            })).collect::<Vec<_>>(),
            "actions": d.actions,
        }),
    }
}

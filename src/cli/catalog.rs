//! `imgport catalog copy`: moves catalog tables between backends (SQLite, PostgreSQL,
//! MySQL/MariaDB), as xCAT's dumpxCATdb / restorexCATdb do.

use clap::Subcommand;
use serde_json::{json, Value};

use imgport::catalog::{Catalog, CopyReport, Location};
use imgport::lock::{Access, MnLock};
use imgport::root::Root;

use super::{json as docs, Console, Globals, EXIT_OK};

#[derive(Debug, Subcommand)]
pub(crate) enum CatalogCommand {
    /// Copy tables from one catalog to another, replacing the target's rows
    #[command(
        after_help = "CFGLOC is a cfgloc line, a file whose first line is one (such as a cfgloc\n\
file: keeps the password out of `ps`), or an SQLite directory. Without --from the\n\
MN's own catalog is the source (cfgloc under --root, or $XCATCFG).\n\n\
Examples:\n  \
imgport catalog copy --to /root/pg.cfgloc                       # this MN's SQLite to PostgreSQL\n  \
imgport catalog copy --from /etc/xcat --to 'Pg:dbname=xcatdb;host=10.0.0.1|xcatadm|pw'\n  \
imgport catalog copy --from /root/my.cfgloc --to /srv/sqlite-copy osimage linuximage litefile\n  \
imgport catalog copy --to /root/pg.cfgloc --dry-run --json\n\n\
Default tables: every table imgport knows (osimage, linuximage, postscripts, litefile,\n\
nodelist, site, litetree, statelite, kit, kitrepo, kitcomponent). A table the source\n\
lacks is left alone in the target."
    )]
    Copy {
        /// Source catalog (default: this MN's)
        #[arg(long, value_name = "CFGLOC")]
        from: Option<String>,
        /// Target catalog
        #[arg(long, value_name = "CFGLOC")]
        to: String,
        /// Read both sides and report, write nothing
        #[arg(short = 'n', long)]
        dry_run: bool,
        /// Tables to copy (default: all)
        tables: Vec<String>,
    },
}

/// Runs a `catalog` subcommand.
pub(crate) fn run(cmd: CatalogCommand, g: &Globals) -> i32 {
    let CatalogCommand::Copy {
        from,
        to,
        dry_run,
        tables,
    } = cmd;
    let mut console = Console::new(false, g.json, g.quiet);
    // A copy writes a catalog, so it holds this MN's lock like any writer (README "Crash
    // safety and locking"); a dry run only reads.
    let access = if dry_run {
        Access::Shared
    } else {
        Access::Exclusive
    };
    let held = Root::new(&g.root).and_then(|root| {
        MnLock::acquire(
            &root,
            access,
            g.no_wait,
            "catalog copy",
            &mut |line: &str| eprintln!("imgport: {line}"),
        )
    });
    let _held = match held {
        Ok(l) => l,
        Err(e) => return finish(&mut console, g, dry_run, Err(e.to_string())),
    };
    let source = match from {
        Some(arg) => Location::from_arg(&arg).map(Catalog::at),
        None => Catalog::open(&g.root, std::env::var("XCATCFG").ok().as_deref()),
    };
    let target = Location::from_arg(&to).map(Catalog::at);
    let (source, target) = match (source, target) {
        (Ok(s), Ok(t)) => (s, t),
        (Err(e), _) | (_, Err(e)) => return finish(&mut console, g, dry_run, Err(e.to_string())),
    };
    let names: Vec<&str> = tables.iter().map(String::as_str).collect();
    let result = source
        .copy_to(&target, &names, dry_run)
        .map_err(|e| e.to_string());
    finish(&mut console, g, dry_run, result)
}

fn finish(
    console: &mut Console,
    g: &Globals,
    dry_run: bool,
    result: Result<CopyReport, String>,
) -> i32 {
    let code = match &result {
        Ok(report) => {
            if !g.json && !g.quiet {
                let verb = if dry_run { "Would copy" } else { "Copied" };
                for t in &report.tables {
                    if t.absent {
                        println!("{}: not in the source, left alone", t.table);
                    } else {
                        println!(
                            "{}: {verb} {} rows (replacing {})",
                            t.table, t.rows, t.replaced
                        );
                    }
                }
                println!("{verb} from {} to {}.", report.from, report.to);
            }
            EXIT_OK
        }
        Err(e) => console.fail(e),
    };
    if g.json {
        docs::print(&doc(dry_run, code, &result));
    }
    code
}

/// The `catalog copy` document (docs/JSON.md).
fn doc(dry_run: bool, code: i32, result: &Result<CopyReport, String>) -> Value {
    let (from, to, tables, errors): (Value, Value, Vec<Value>, Vec<&str>) = match result {
        Ok(r) => (
            json!(r.from),
            json!(r.to),
            r.tables
                .iter()
                .map(|t| {
                    json!({"table": t.table, "rows": t.rows, "replaced": t.replaced, "absent": t.absent})
                })
                .collect(),
            Vec::new(),
        ),
        Err(e) => (Value::Null, Value::Null, Vec::new(), vec![e.as_str()]),
    };
    json!({
        "schema": docs::SCHEMA,
        "command": "catalog copy",
        "dry_run": dry_run,
        "ok": result.is_ok(),
        "exit_code": code,
        "from": from,
        "to": to,
        "tables": tables,
        "errors": errors,
    })
}

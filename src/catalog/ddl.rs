//! xCAT's `buildcreatestmt` and `updateschema` statements, per backend (XCAT.md §8.3, §8.7).

use super::backend::Dialect;
use super::schema::TableSpec;

/// The `CREATE TABLE` text xCAT generates, byte for byte: the table name unquoted, one
/// column per line with a two-space indent, each column spelt as `delimitcol` does
/// (bare on SQLite, `"x"` on PostgreSQL, `` `x` `` on MySQL), TEXT by default, TEXT key
/// columns turned into `VARCHAR(128) ` (trailing space kept), schema types, ` NOT NULL`
/// on required columns, then `PRIMARY KEY (a,b)` with the keys spelt the same way.
pub(super) fn create(d: Dialect, spec: &TableSpec) -> String {
    let mut sql = format!("CREATE TABLE {} (\n  ", spec.name);
    for col in spec.columns {
        sql.push_str(&d.ddl_col(col));
        sql.push(' ');
        sql.push_str(column_type(spec, col));
        if spec.required.contains(col) {
            sql.push_str(" NOT NULL");
        }
        sql.push_str(",\n  ");
    }
    sql.push_str("PRIMARY KEY (");
    let keys: Vec<String> = spec.keys.iter().map(|k| d.ddl_col(k)).collect();
    sql.push_str(&keys.join(","));
    sql.push_str(")\n)");
    sql
}

/// `ALTER TABLE t ADD col type[ NOT NULL]`, as xCAT's schema update adds a column a
/// newer schema has.
pub(super) fn add_column(d: Dialect, spec: &TableSpec, col: &str) -> String {
    let mut sql = format!(
        "ALTER TABLE {} ADD {} {}",
        spec.name,
        d.ddl_col(col),
        column_type(spec, col)
    );
    if spec.required.contains(&col) {
        sql.push_str(" NOT NULL");
    }
    sql
}

/// A column's SQL type as xCAT derives it (explicit type, else TEXT; TEXT keys get
/// `VARCHAR(128) ` because the servers cannot index TEXT).
fn column_type(spec: &TableSpec, col: &str) -> &'static str {
    let ty = spec
        .types
        .iter()
        .find(|(c, _)| *c == col)
        .map_or("TEXT", |(_, t)| *t);
    if ty == "TEXT" && spec.is_key(col) {
        "VARCHAR(128) "
    } else {
        ty
    }
}

#[cfg(test)]
mod tests {
    use super::super::schema::{LITEFILE, NODELIST, OSIMAGE};
    use super::*;

    #[test]
    fn server_ddl_quotes_columns_as_xcat_does() {
        assert_eq!(
            create(Dialect::Postgres, &LITEFILE),
            "CREATE TABLE litefile (\n  \"image\" VARCHAR(128)  NOT NULL,\n  \
             \"file\" VARCHAR(128)  NOT NULL,\n  \"options\" TEXT,\n  \"comments\" TEXT,\n  \
             \"disable\" TEXT,\n  PRIMARY KEY (\"image\",\"file\")\n)"
        );
        assert_eq!(
            create(Dialect::Mysql, &LITEFILE),
            "CREATE TABLE litefile (\n  `image` VARCHAR(128)  NOT NULL,\n  \
             `file` VARCHAR(128)  NOT NULL,\n  `options` TEXT,\n  `comments` TEXT,\n  \
             `disable` TEXT,\n  PRIMARY KEY (`image`,`file`)\n)"
        );
        let my = create(Dialect::Mysql, &NODELIST);
        assert!(my.contains("\n  `groups` TEXT,\n"), "{my}");
        let pg = create(Dialect::Postgres, &OSIMAGE);
        assert!(pg.contains("\n  \"osupdatename\" VARCHAR(1024),\n"), "{pg}");
        assert!(pg.starts_with("CREATE TABLE osimage (\n  \"imagename\" VARCHAR(128) ,\n"));
        assert_eq!(
            add_column(Dialect::Mysql, &OSIMAGE, "groups"),
            "ALTER TABLE osimage ADD `groups` TEXT"
        );
        assert_eq!(
            add_column(Dialect::Sqlite, &LITEFILE, "file"),
            "ALTER TABLE litefile ADD file VARCHAR(128)  NOT NULL"
        );
    }
}

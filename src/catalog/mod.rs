//! xCAT's tables: schema, the SQLite store in xCAT's layout, tabdump/tabrestore CSV.

pub mod schema;

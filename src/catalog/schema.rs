//! xCAT's table definitions (Schema.pm `tabspec`, release 2.18.2): column names in
//! schema order, keys, and required columns. Data only; the SQLite store builds its
//! DDL from this, and the manifest adapter uses it to sort flat manifests.

/// One xCAT table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSpec {
    /// The table name, also the SQLite file's stem (`<name>.sqlite`).
    pub name: &'static str,
    /// Every column in schema order (the order tabdump prints).
    pub columns: &'static [&'static str],
    /// The primary key columns, in key order.
    pub keys: &'static [&'static str],
    /// Columns declared NOT NULL (only litefile's keys in the tables we carry).
    pub required: &'static [&'static str],
    /// Columns with an explicit SQL type other than the default (`TEXT`, or
    /// `VARCHAR(128) ` for keys).
    pub types: &'static [(&'static str, &'static str)],
}

impl TableSpec {
    /// Whether `column` is one of the table's schema columns (exact, case-sensitive).
    pub fn has_column(&self, column: &str) -> bool {
        self.columns.contains(&column)
    }

    /// Whether `column` is part of the primary key.
    pub fn is_key(&self, column: &str) -> bool {
        self.keys.contains(&column)
    }
}

/// The `osimage` table.
#[rustfmt::skip]
pub const OSIMAGE: TableSpec = TableSpec {
    name: "osimage",
    columns: &[
        "imagename",
        "groups",
        "profile",
        "imagetype",
        "description",
        "provmethod",
        "rootfstype",
        "osdistroname",
        "osupdatename",
        "cfmdir",
        "osname",
        "osvers",
        "osarch",
        "synclists",
        "postscripts",
        "postbootscripts",
        "serverrole",
        "isdeletable",
        "kitcomponents",
        "environvar",
        "comments",
        "disable",
    ],
    keys: &["imagename"],
    required: &[],
    types: &[("osupdatename", "VARCHAR(1024)")],
};

/// The `linuximage` table.
#[rustfmt::skip]
pub const LINUXIMAGE: TableSpec = TableSpec {
    name: "linuximage",
    columns: &[
        "imagename",
        "template",
        "boottarget",
        "addkcmdline",
        "pkglist",
        "pkgdir",
        "otherpkglist",
        "otherpkgdir",
        "exlist",
        "postinstall",
        "rootimgdir",
        "kerneldir",
        "nodebootif",
        "otherifce",
        "netdrivers",
        "kernelver",
        "krpmver",
        "permission",
        "dump",
        "crashkernelsize",
        "partitionfile",
        "driverupdatesrc",
        "comments",
        "disable",
    ],
    keys: &["imagename"],
    required: &[],
    types: &[],
};

/// The `postscripts` table.
#[rustfmt::skip]
pub const POSTSCRIPTS: TableSpec = TableSpec {
    name: "postscripts",
    columns: &[
        "node",
        "postscripts",
        "postbootscripts",
        "comments",
        "disable",
    ],
    keys: &["node"],
    required: &[],
    types: &[],
};

/// The `litefile` table.
#[rustfmt::skip]
pub const LITEFILE: TableSpec = TableSpec {
    name: "litefile",
    columns: &["image", "file", "options", "comments", "disable"],
    keys: &["image", "file"],
    required: &["image", "file"],
    types: &[],
};

/// The `nodelist` table.
#[rustfmt::skip]
pub const NODELIST: TableSpec = TableSpec {
    name: "nodelist",
    columns: &[
        "node",
        "groups",
        "status",
        "statustime",
        "appstatus",
        "appstatustime",
        "primarysn",
        "hidden",
        "updatestatus",
        "updatestatustime",
        "zonename",
        "comments",
        "disable",
    ],
    keys: &["node"],
    required: &[],
    types: &[],
};

/// The `site` table.
#[rustfmt::skip]
pub const SITE: TableSpec = TableSpec {
    name: "site",
    columns: &["key", "value", "comments", "disable"],
    keys: &["key"],
    required: &[],
    types: &[],
};

/// The `litetree` table.
#[rustfmt::skip]
pub const LITETREE: TableSpec = TableSpec {
    name: "litetree",
    columns: &[
        "priority",
        "image",
        "directory",
        "mntopts",
        "comments",
        "disable",
    ],
    keys: &["priority"],
    required: &[],
    types: &[],
};

/// The `statelite` table.
#[rustfmt::skip]
pub const STATELITE: TableSpec = TableSpec {
    name: "statelite",
    columns: &[
        "node", "image", "statemnt", "mntopts", "comments", "disable",
    ],
    keys: &["node"],
    required: &[],
    types: &[],
};

/// The `kit` table.
#[rustfmt::skip]
pub const KIT: TableSpec = TableSpec {
    name: "kit",
    columns: &[
        "kitname",
        "basename",
        "description",
        "version",
        "release",
        "ostype",
        "isinternal",
        "kitdeployparams",
        "kitdir",
        "comments",
        "disable",
    ],
    keys: &["kitname"],
    required: &[],
    types: &[],
};

/// The `kitrepo` table.
#[rustfmt::skip]
pub const KITREPO: TableSpec = TableSpec {
    name: "kitrepo",
    columns: &[
        "kitreponame",
        "kitname",
        "osbasename",
        "osmajorversion",
        "osminorversion",
        "osarch",
        "compat_osbasenames",
        "kitrepodir",
        "comments",
        "disable",
    ],
    keys: &["kitreponame"],
    required: &[],
    types: &[],
};

/// The `kitcomponent` table.
#[rustfmt::skip]
pub const KITCOMPONENT: TableSpec = TableSpec {
    name: "kitcomponent",
    columns: &[
        "kitcompname",
        "description",
        "kitname",
        "kitreponame",
        "basename",
        "version",
        "release",
        "serverroles",
        "kitpkgdeps",
        "prerequisite",
        "driverpacks",
        "kitcompdeps",
        "postbootscripts",
        "genimage_postinstall",
        "exlist",
        "comments",
        "disable",
    ],
    keys: &["kitcompname"],
    required: &[],
    types: &[],
};

/// Every table imgport knows, by name.
#[rustfmt::skip]
pub const TABLES: &[TableSpec] = &[
    OSIMAGE,
    LINUXIMAGE,
    POSTSCRIPTS,
    LITEFILE,
    NODELIST,
    SITE,
    LITETREE,
    STATELITE,
    KIT,
    KITREPO,
    KITCOMPONENT,
];

/// The spec of table `name`, if imgport knows it.
pub fn table_spec(name: &str) -> Option<&'static TableSpec> {
    TABLES.iter().find(|t| t.name == name)
}

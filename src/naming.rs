//! The names xCAT's rules give a bundle file: `<image>.tgz` when none is given, and
//! for `-R` the path on the remote host. Naming only, so that export, the command line
//! and the ssh transfer all take it from here and none reaches into another for it.

use crate::bundle::image_dir_name;

/// The default bundle file name for an image: its bundle directory name (whitespace
/// runs → `_`) plus `.tgz`.
pub fn bundle_name(image: &str) -> String {
    format!("{}.tgz", image_dir_name(image))
}

/// The remote path of an exported bundle, as xCAT's `imgexport -R` builds it:
/// `<directory part of destination><bundle name>`, where the directory part is `./`
/// when the destination has no `/`, and the bundle name is the destination's basename
/// or, when that is empty, [`bundle_name`]. With no destination at all it is just
/// the bundle name, relative to the remote login directory.
pub fn remote_bundle_path(destination: Option<&str>, image: &str) -> String {
    let default = bundle_name(image);
    match destination {
        None => default,
        Some(d) => {
            let (dir, base) = match d.rfind('/') {
                Some(i) => d.split_at(i + 1),
                None => ("./", d),
            };
            let base = if base.is_empty() { &default } else { base };
            format!("{dir}{base}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_name_is_the_image_dir_name_with_tgz() {
        assert_eq!(
            bundle_name("rhels8 x86_64  compute"),
            "rhels8_x86_64_compute.tgz"
        );
        assert_eq!(bundle_name("plain"), "plain.tgz");
    }

    #[test]
    fn remote_path_is_xcats_dirpart_plus_bundle_name() {
        let img = "my  image";
        assert_eq!(remote_bundle_path(None, img), "my_image.tgz");
        assert_eq!(remote_bundle_path(Some("foo.tgz"), img), "./foo.tgz");
        assert_eq!(
            remote_bundle_path(Some("/tmp/x/foo.tgz"), img),
            "/tmp/x/foo.tgz"
        );
        assert_eq!(
            remote_bundle_path(Some("/tmp/x/"), img),
            "/tmp/x/my_image.tgz"
        );
        assert_eq!(remote_bundle_path(Some("d/e.tgz"), img), "d/e.tgz");
    }
}

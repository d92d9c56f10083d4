//! After an image brought kit plugins: restart xcatd so it loads them, as xCAT's import
//! does (XCAT.md §1.1, §6.5 step 3), with the command of the installed release:
//! `$XCATROOT/sbin/restartxcatd` (2.18), else the init script `/etc/init.d/xcatd
//! restart` (older releases).
//!
//! xCAT's import runs inside xcatd, so xcatd is always there for it. imgport runs on its
//! own, on an MN or on a staged root where no xcatd runs: it restarts only an xcatd that
//! runs, found through the pid file its init script writes. Every path is the root's
//! (`--root`), so a scratch root never restarts the host's service; `/proc` is the
//! host's, since a pid can only be checked there.

use std::path::Path;
use std::process::{Command, Stdio};

use crate::report::Reporter;
use crate::root::Root;

/// Where a running xcatd leaves its pid: the init script's `-p` file, and the main
/// service's own file.
const PID_FILES: [&str; 3] = [
    "/var/run/xcatd.pid",
    "/run/xcatd.pid",
    "/var/run/xcat/mainservice.pid",
];

/// The running xcatd's pid, if any: a pid file whose process exists and is named
/// `xcatd` (xcatd renames itself `xcatd: ...`, so a prefix). A stale file left after a
/// crash, or naming a pid now used by another program, does not count.
fn running(root: &Root) -> Option<u32> {
    PID_FILES.iter().find_map(|mn| {
        let file = root.resolve(mn).ok()?;
        let pid: u32 = std::fs::read_to_string(file).ok()?.trim().parse().ok()?;
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        comm.starts_with("xcatd").then_some(pid)
    })
}

/// The restart command as (MN path shown, host path, arguments).
fn restart_command(
    root: &Root,
    xcatroot: &str,
) -> Option<(String, std::path::PathBuf, Vec<&'static str>)> {
    let candidates = [
        (format!("{xcatroot}/sbin/restartxcatd"), vec![]),
        ("/etc/init.d/xcatd".to_string(), vec!["restart"]),
    ];
    candidates.into_iter().find_map(|(mn, args)| {
        let host = root.resolve(&mn).ok()?;
        is_executable(&host).then_some((mn, host, args))
    })
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Restarts a running xcatd so it loads the kit plugins just placed, and says what was
/// done. A failure is only a warning: the image is in place, and a later restart loads
/// the plugins.
pub(super) fn restart_for_plugins(root: &Root, xcatroot: &str, report: &mut dyn Reporter) {
    let Some(pid) = running(root) else {
        report.info("Kit plugins were added; xcatd is not running, it loads them when it starts.");
        return;
    };
    let Some((shown, host, args)) = restart_command(root, xcatroot) else {
        report.warning(&format!(
            "Kit plugins were added but neither {xcatroot}/sbin/restartxcatd nor /etc/init.d/xcatd exists: restart xcatd (pid {pid}) to load them."
        ));
        return;
    };
    let command = if args.is_empty() {
        shown.clone()
    } else {
        format!("{shown} {}", args.join(" "))
    };
    let out = Command::new(&host)
        .args(&args)
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(out) => {
            for line in String::from_utf8_lossy(&out.stdout)
                .lines()
                .chain(String::from_utf8_lossy(&out.stderr).lines())
            {
                report.verbose(line);
            }
            if out.status.success() {
                report.info(&format!(
                    "Restarted xcatd (pid {pid}) with {command} to load the new kit plugins."
                ));
            } else {
                report.warning(&format!(
                    "Restarting xcatd with {command} failed ({}): restart it to load the new kit plugins.",
                    out.status
                ));
            }
        }
        Err(e) => report.warning(&format!(
            "Could not run {command} ({e}): restart xcatd to load the new kit plugins."
        )),
    }
}

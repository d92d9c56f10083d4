//! `-R user@host` against a real OpenSSH server on 127.0.0.1, started by each test with
//! its own host key, client key and config in a scratch directory, and stopped when the
//! test ends. The client side is pointed at it through `IMGPORT_SSH`.
//!
//! The "remote login directory" is a scratch directory too: the test key's
//! authorized_keys entry forces `cd <dir>` before the requested command, so relative
//! remote paths (xCAT's `imgexport IMG foo.tgz -R ...`) never touch the real home.

mod common;

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;

const SSHD: &str = "/usr/sbin/sshd";
const HOST: &str = "root@127.0.0.1";
const XCAT_PULL_MSG: &str = "from the remote host (Maybe passwordless ssh was not setup?)";

/// Installs openssh-server once per test process when sshd is missing; the reason it
/// could not be installed otherwise.
fn ensure_sshd() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        if Path::new(SSHD).exists() {
            return Ok(());
        }
        let apt = |args: &[&str]| {
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive")
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        };
        let install = ["install", "-y", "-qq", "openssh-server"];
        // Without a fresh package index the install may not find the package.
        let installed = apt(&install) || (apt(&["update", "-qq"]) && apt(&install));
        if !installed {
            return Err("openssh-server is not installed and apt-get could not install it".into());
        }
        if Path::new(SSHD).exists() {
            Ok(())
        } else {
            Err(format!("{SSHD} missing after installing openssh-server"))
        }
    })
    .clone()
}

/// A running sshd on 127.0.0.1 and the scratch files around it; killed on drop.
struct Sshd {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Sshd {
    /// Starts one, or says why it cannot (then the test prints that and returns).
    fn start() -> Result<Sshd, String> {
        ensure_sshd()?;
        // Privilege separation directory, which the package normally creates at boot.
        std::fs::create_dir_all("/run/sshd").map_err(|e| format!("/run/sshd: {e}"))?;
        let dir = tempfile::Builder::new()
            .prefix("imgport-sshd-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let d = dir.path();
        std::fs::create_dir(d.join("home")).map_err(|e| e.to_string())?;
        for key in ["host_key", "client_key", "wrong_key"] {
            keygen(&d.join(key));
        }
        let public =
            std::fs::read_to_string(d.join("client_key.pub")).map_err(|e| e.to_string())?;
        std::fs::write(
            d.join("authorized_keys"),
            format!(
                "command=\"cd {} && eval \\\"$SSH_ORIGINAL_COMMAND\\\"\" {public}",
                d.join("home").display()
            ),
        )
        .map_err(|e| e.to_string())?;
        let mut last = String::new();
        // A free port can be taken between probing and sshd's bind: try a few.
        for _ in 0..5 {
            let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .and_then(|l| l.local_addr())
                .map_err(|e| e.to_string())?
                .port();
            let cfg = d.join("sshd_config");
            std::fs::write(
                &cfg,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
                     AuthorizedKeysFile {d}/authorized_keys\nPermitRootLogin prohibit-password\n\
                     PubkeyAuthentication yes\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
                     PidFile {d}/sshd.pid\nLogLevel VERBOSE\n",
                    d = d.display()
                ),
            )
            .map_err(|e| e.to_string())?;
            let log = d.join("sshd.log");
            let mut child = Command::new(SSHD)
                .arg("-D")
                .arg("-f")
                .arg(&cfg)
                .arg("-E")
                .arg(&log)
                .stdin(Stdio::null())
                .spawn()
                .map_err(|e| format!("{SSHD}: {e}"))?;
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last = format!(
                        "sshd exited ({status}): {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                    break;
                }
                if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                    return Ok(Sshd { child, dir, port });
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last = "sshd did not accept connections within 10 s".into();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Err(last)
    }

    /// The remote login directory.
    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// `IMGPORT_SSH` with `key`: only that key, no agent, no config files, no
    /// known_hosts, no prompts, and no chatter on stderr.
    fn ssh_with(&self, key: &str) -> String {
        format!(
            "ssh -F /dev/null -p {} -i {} -o IdentitiesOnly=yes -o IdentityAgent=none -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR",
            self.port,
            self.dir.path().join(key).display()
        )
    }

    fn ssh(&self) -> String {
        self.ssh_with("client_key")
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .output()
        .expect("ssh-keygen");
    assert!(out.status.success(), "ssh-keygen: {}", text(&out));
}

/// Starts an sshd or prints why the test is skipped and returns from it.
macro_rules! sshd_or_skip {
    () => {
        match Sshd::start() {
            Ok(s) => s,
            Err(why) => {
                eprintln!("SKIPPED: no sshd to test -R against: {why}");
                return;
            }
        }
    };
}

/// Runs `program` (the binary or an alias to it) with `IMGPORT_SSH=ssh`, `--root` given
/// through `IMGPORT_ROOT` so aliases get it too, in `cwd`.
fn run(program: &Path, mn: &Mn, cwd: &Path, ssh: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("IMGPORT_ROOT", mn.root())
        .env("IMGPORT_SSH", ssh)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("run imgport")
}

fn rootimg(mn: &Mn) -> PathBuf {
    mn.path(&format!("{ROOTIMGDIR}/rootimg"))
}

/// rsync itemizes every difference of data, owners, modes, times, links, ACLs, xattrs.
fn assert_same_tree(a: &Mn, b: &Mn) {
    let diff = Command::new("rsync")
        .args(["-aHAXn", "--numeric-ids", "-i"])
        .arg(format!("{}/", rootimg(a).display()))
        .arg(format!("{}/", rootimg(b).display()))
        .output()
        .expect("rsync");
    assert!(diff.status.success(), "{}", text(&diff));
    assert_eq!(stdout(&diff), "", "trees differ");
}

fn assert_gzip_ok(path: &Path) {
    let out = Command::new("gzip")
        .arg("-t")
        .arg(path)
        .output()
        .expect("gzip");
    assert!(
        out.status.success(),
        "gzip -t {}: {}",
        path.display(),
        text(&out)
    );
}

/// Every file below `dir` (recursive), for "nothing was written" checks.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("read_dir") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            out.extend(files_below(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn imports_ok(out: &Output) -> bool {
    out.status.success()
        && stdout(out)
            .lines()
            .any(|l| l == format!("Successfully imported the image {IMG}."))
}

#[test]
fn export_pushes_and_import_pulls_through_ssh() {
    let sshd = sshd_or_skip!();
    let src = Mn::sample();
    let local = tempfile::tempdir().unwrap();
    // A path the remote shell must get exactly: spaces, both quote kinds, a `$`.
    let dir = sshd.home().join("dir with 'single' and \"double\" $HOME");
    std::fs::create_dir(&dir).unwrap();
    let remote = dir.join("it's a bundle.tgz");
    let remote_s = remote.to_str().unwrap();

    let out = run(
        &bin(),
        &src,
        local.path(),
        &sshd.ssh(),
        &["export", IMG, remote_s, "-R", HOST],
    );
    assert!(out.status.success(), "{}", text(&out));
    let lines = stdout(&out);
    assert!(
        lines.contains(&format!("Exporting {IMG} to {HOST}...")),
        "{lines}"
    );
    assert!(lines.lines().any(|l| l == "Done!"), "{lines}");
    assert_eq!(
        files_below(local.path()),
        Vec::<PathBuf>::new(),
        "nothing local"
    );
    assert_eq!(
        files_below(&dir),
        vec![remote.clone()],
        "only the bundle, no .imgport-part"
    );
    assert_gzip_ok(&remote);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&remote).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644, "umask 022 on the remote side");
    // The tree's tar header was rewritten remotely: tar, the index and every digest agree.
    let verify = src.run(&["verify", remote_s]);
    assert!(verify.status.success(), "{}", text(&verify));
    sh(&format!("tar -tzf {} >/dev/null", common_quote(remote_s)));

    let target = Mn::empty();
    let out = run(
        &bin(),
        &target,
        local.path(),
        &sshd.ssh(),
        &["import", "--remotehost", HOST, remote_s],
    );
    assert!(imports_ok(&out), "{}", text(&out));
    assert_eq!(
        files_below(local.path()),
        Vec::<PathBuf>::new(),
        "nothing local"
    );
    assert_same_tree(&src, &target);
}

/// Quotes for the local `sh` of [`sh`].
fn common_quote(s: &str) -> String {
    imgport::remote::shell_quote(s)
}

#[test]
fn xcat_aliases_use_the_remote_login_directory() {
    let sshd = sshd_or_skip!();
    let src = Mn::sample();
    let local = tempfile::tempdir().unwrap();
    let (_d, imgexport) = alias("imgexport");
    let (_e, imgimport) = alias("imgimport");

    let out = run(
        &imgexport,
        &src,
        local.path(),
        &sshd.ssh(),
        &[IMG, "foo.tgz", "-R", HOST],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout(&out).lines().any(|l| l == "Done!"), "{}", text(&out));
    assert!(
        stdout(&out).lines().any(|l| l
            == format!("Moving the image bundle to the remote system location {HOST}:./foo.tgz")),
        "{}",
        text(&out)
    );
    let foo = sshd.home().join("foo.tgz");
    assert_gzip_ok(&foo);
    // No destination: `<image>.tgz` in the remote login directory.
    let out = run(
        &imgexport,
        &src,
        local.path(),
        &sshd.ssh(),
        &[IMG, "-R", HOST],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_gzip_ok(&sshd.home().join(format!("{IMG}.tgz")));
    let mut names: Vec<_> = std::fs::read_dir(sshd.home())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["foo.tgz".to_string(), format!("{IMG}.tgz")]);
    assert_eq!(
        files_below(local.path()),
        Vec::<PathBuf>::new(),
        "nothing local"
    );

    let target = Mn::empty();
    let out = run(
        &imgimport,
        &target,
        local.path(),
        &sshd.ssh(),
        &["foo.tgz", "-R", HOST],
    );
    assert!(imports_ok(&out), "{}", text(&out));
    let lines: Vec<String> = stdout(&out).lines().map(str::to_string).collect();
    assert_eq!(
        lines[..2],
        [
            format!("Obtaining the image bundle from the remote system {HOST}:foo.tgz"),
            "Unbundling image...".to_string()
        ],
        "{}",
        text(&out)
    );
    assert_same_tree(&src, &target);
}

#[test]
fn a_refused_login_fails_with_xcats_message_and_sshs_reason() {
    let sshd = sshd_or_skip!();
    let src = Mn::sample();
    let local = tempfile::tempdir().unwrap();
    let wrong = sshd.ssh_with("wrong_key");

    let (_e, imgexport) = alias("imgexport");
    for (program, args) in [
        (bin(), &["export", IMG, "b.tgz", "-R", HOST][..]),
        (imgexport, &[IMG, "b.tgz", "-R", HOST][..]),
    ] {
        let out = run(&program, &src, local.path(), &wrong, args);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        let err = stderr(&out);
        assert!(
            err.contains(
                "]: Unable to copy the image bundle b.tgz to the remote host (Maybe passwordless ssh was not setup?)\n"
            ),
            "{err}"
        );
        assert!(err.contains("Permission denied"), "ssh's own line: {err}");
        assert!(!stdout(&out).contains("Done!"));
        assert_eq!(files_below(&sshd.home()), Vec::<PathBuf>::new());
    }

    // A bundle that does exist remotely, so only the login can be what fails.
    std::fs::write(sshd.home().join("b.tgz"), b"x").unwrap();
    let target = Mn::empty();
    let (_d, imgimport) = alias("imgimport");
    let out = run(
        &imgimport,
        &target,
        local.path(),
        &wrong,
        &["b.tgz", "-R", HOST],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    let at = lines
        .iter()
        .position(|l| {
            l.ends_with(&format!(
                "]: Unable to copy the image bundle b.tgz {XCAT_PULL_MSG}"
            ))
        })
        .unwrap_or_else(|| panic!("xCAT's message: {err}"));
    assert!(
        lines[at + 1..]
            .iter()
            .any(|l| l.contains("Permission denied")),
        "ssh's line below it: {err}"
    );
}

#[test]
fn a_missing_remote_bundle_fails_the_import() {
    let sshd = sshd_or_skip!();
    let target = Mn::empty();
    let local = tempfile::tempdir().unwrap();
    let out = run(
        &bin(),
        &target,
        local.path(),
        &sshd.ssh(),
        &["import", "-R", HOST, "no such.tgz"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "Unable to copy the image bundle no such.tgz {XCAT_PULL_MSG}"
        )),
        "{err}"
    );
    assert!(err.contains("No such file"), "{err}");
    assert!(!stdout(&out).contains("Successfully imported"));
}

#[test]
fn export_into_an_unwritable_remote_directory_fails_and_leaves_nothing() {
    let sshd = sshd_or_skip!();
    let src = Mn::sample();
    let local = tempfile::tempdir().unwrap();
    // The tests run as root, for whom no mode bit is a barrier: use a directory that
    // does not exist and one that is a regular file.
    std::fs::write(sshd.home().join("plainfile"), b"").unwrap();
    for dest in ["missing/b.tgz", "plainfile/b.tgz"] {
        let out = run(
            &bin(),
            &src,
            local.path(),
            &sshd.ssh(),
            &["export", IMG, dest, "-R", HOST],
        );
        assert_eq!(out.status.code(), Some(1), "{dest}: {}", text(&out));
        let err = stderr(&out);
        assert!(
            err.contains("Unable to copy the image bundle b.tgz to the remote host (Maybe passwordless ssh was not setup?)"),
            "{err}"
        );
        assert!(
            err.contains("b.tgz.imgport-part"),
            "the remote shell's line: {err}"
        );
        assert!(!stdout(&out).contains("Done!"));
    }
    assert_eq!(
        files_below(&sshd.home()),
        vec![sshd.home().join("plainfile")]
    );
    assert_eq!(files_below(local.path()), Vec::<PathBuf>::new());
}

/// A stream that ends early looks like a finished one to the remote `cat`; the commit
/// step must still refuse it. `IMGPORT_SSH` here is a wrapper that lets only the first
/// 100 kB of the export through to ssh and then closes the pipe.
#[test]
fn a_cut_stream_is_never_published() {
    let sshd = sshd_or_skip!();
    let src = Mn::sample();
    let local = tempfile::tempdir().unwrap();
    let wrapper = local.path().join("cut-ssh");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nhead -c 100000 | {} \"$@\"\n", sshd.ssh()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(
        &bin(),
        &src,
        local.path(),
        wrapper.to_str().unwrap(),
        &["export", IMG, "cut.tgz", "-R", HOST],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!stdout(&out).contains("Done!"));
    assert_eq!(
        files_below(&sshd.home()),
        Vec::<PathBuf>::new(),
        "{}",
        text(&out)
    );
    assert_eq!(files_below(local.path()), vec![wrapper]);
}

#[test]
fn a_missing_ssh_program_is_reported() {
    let src = Mn::sample();
    let local = tempfile::tempdir().unwrap();
    let ssh = "/nonexistent/imgport-test/ssh -p 1";
    let out = run(
        &bin(),
        &src,
        local.path(),
        ssh,
        &["import", "b.tgz", "-R", HOST],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "Unable to copy the image bundle b.tgz {XCAT_PULL_MSG}"
        )),
        "{err}"
    );
    assert!(
        err.contains("cannot run /nonexistent/imgport-test/ssh"),
        "{err}"
    );
    let out = run(
        &bin(),
        &src,
        local.path(),
        ssh,
        &["export", IMG, "-R", HOST],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stderr(&out).contains("cannot run"), "{}", text(&out));
    assert_eq!(files_below(local.path()), Vec::<PathBuf>::new());
}

#[test]
fn stdio_and_remote_do_not_mix() {
    let mn = Mn::empty();
    let local = tempfile::tempdir().unwrap();
    for args in [
        &["export", IMG, "-", "-R", HOST][..],
        &["import", "-", "-R", HOST][..],
    ] {
        let out = run(&bin(), &mn, local.path(), "false", args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(stderr(&out).contains("-R"), "{}", text(&out));
    }
}

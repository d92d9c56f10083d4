//! A bundle stream to or from another host over ssh (`-R user@host`).
//!
//! xCAT builds the bundle in a temporary file and copies it with `scp`. Here the bundle
//! flows through `ssh` itself, so neither side holds a temporary copy: export writes
//! into the stdin of a remote `cat` ([`Push`]), import reads the stdout of a remote
//! `cat` ([`Pull`]).
//!
//! Export commits in two steps. A remote `cat` cannot tell a finished stream from an
//! interrupted one (a dropped connection or a failed local export both look like end
//! of input, after which `cat > part && mv part final` would publish a truncated
//! bundle). So the stream lands in `<path>.imgport-part`, and only when the local side
//! knows the bundle is complete does a second, short ssh command rewrite the deferred
//! tar header (a [`Rewrite`]), check the byte count and rename the file into place.
//!
//! The ssh command is `ssh -o BatchMode=yes` (never a password prompt in a script), or
//! the words of `$IMGPORT_SSH` (for example `ssh -p 2222 -i /root/.ssh/mn2`) followed
//! by `-o BatchMode=yes`; an option given in `$IMGPORT_SSH` wins, since ssh keeps the
//! first value it sees. Remote commands are POSIX `sh` and every path is single-quoted.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Environment variable whose words replace `ssh` (program and options).
pub const SSH_ENV: &str = "IMGPORT_SSH";
/// Suffix of the remote file an export streams into before it is complete.
pub const PART_SUFFIX: &str = ".imgport-part";
/// Most of ssh's stderr kept for an error message; the rest is read and dropped so
/// ssh never blocks on a full pipe.
const STDERR_KEEP: usize = 64 << 10;
/// The exit status ssh itself uses for its own failures (connect, auth, host key).
const SSH_OWN_FAILURE: i32 = 255;

/// Bytes of the remote file to overwrite in place once the stream is complete (the
/// tar header of a member whose size was unknown when it was sent). What the bytes
/// mean is the bundle writer's business; this module only puts them there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewrite<'a> {
    /// Offset in the file of the first byte to overwrite.
    pub offset: u64,
    /// The new bytes (as many as they replace).
    pub bytes: &'a [u8],
}

/// Why a remote transfer failed.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The `-R` value could be read by ssh as an option or splits into words.
    #[error("invalid remote host '{0}': expected user@host (not starting with '-', no spaces)")]
    InvalidHost(String),
    /// The transfer failed: a headline, then ssh's own stderr lines (or its status).
    #[error("{headline}{}", below(.details))]
    Failed {
        headline: String,
        details: Vec<String>,
    },
}

fn below(details: &[String]) -> String {
    details.iter().map(|d| format!("\n{d}")).collect()
}

/// Quotes `s` as one word for a POSIX shell: inside single quotes nothing is special
/// except `'` itself, which becomes `'\''` (close, escaped quote, reopen).
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A remote path as the remote shell must see it: quoted, with a leading `~/` dropped
/// (a relative path already starts at the login directory, and quoting would keep `~`
/// from expanding).
fn shell_path(path: &str) -> String {
    shell_quote(path.strip_prefix("~/").unwrap_or(path))
}

/// How to run ssh: the program and the options before the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssh {
    argv: Vec<String>,
}

impl Ssh {
    /// `$IMGPORT_SSH` split on whitespace (no quoting), else plain `ssh`.
    pub fn from_env() -> Ssh {
        Ssh::new(&std::env::var(SSH_ENV).unwrap_or_default())
    }

    /// `words` split on whitespace; empty means `ssh`.
    pub fn new(words: &str) -> Ssh {
        let mut argv: Vec<String> = words.split_whitespace().map(str::to_string).collect();
        if argv.is_empty() {
            argv.push("ssh".into());
        }
        Ssh { argv }
    }

    /// The program run (for messages).
    pub fn program(&self) -> &str {
        // `new` never leaves `argv` empty.
        &self.argv[0]
    }

    /// `ssh [opts] -o BatchMode=yes -- host 'remote command'`. `--` ends ssh's options,
    /// so nothing after the host is read as one.
    fn command(&self, host: &str, remote: &str) -> Command {
        let mut c = Command::new(&self.argv[0]);
        c.args(&self.argv[1..])
            .args(["-o", "BatchMode=yes", "--", host, remote]);
        c
    }
}

/// Refuses a host ssh could take for an option or that is not one word.
fn check_host(host: &str) -> Result<(), RemoteError> {
    let bad = host.is_empty()
        || host.starts_with('-')
        || host.chars().any(|c| c.is_whitespace() || c.is_control());
    if bad {
        Err(RemoteError::InvalidHost(host.to_string()))
    } else {
        Ok(())
    }
}

/// Reads a child's stderr to the end on its own thread, keeping the first
/// [`STDERR_KEEP`] bytes.
fn collect_stderr(stderr: Option<std::process::ChildStderr>) -> Option<JoinHandle<String>> {
    let mut stderr = stderr?;
    Some(std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match stderr.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let room = STDERR_KEEP.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        String::from_utf8_lossy(&kept).into_owned()
    }))
}

/// The non-empty lines of a collected stderr.
fn stderr_lines(handle: Option<JoinHandle<String>>) -> Vec<String> {
    let text = handle.and_then(|h| h.join().ok()).unwrap_or_default();
    text.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// What to say when ssh printed nothing.
fn describe(program: &str, status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("{program} exited with status {code}"),
        (None, Some(sig)) => format!("{program} was killed by signal {sig}"),
        _ => format!("{program} failed"),
    }
}

/// ssh's stderr lines, or its status when it printed nothing.
fn details(program: &str, status: ExitStatus, lines: Vec<String>) -> Vec<String> {
    if lines.is_empty() {
        vec![describe(program, status)]
    } else {
        lines
    }
}

fn spawn_failed(ssh: &Ssh, e: &io::Error) -> String {
    format!(
        "cannot run {}: {e} (install openssh-client, or set {SSH_ENV})",
        ssh.program()
    )
}

/// An export's bundle on its way to `host:path`: write the bundle into it, then
/// [`finish`](Push::finish) it. Dropped or [`abort`](Push::abort)ed, it leaves nothing
/// at the final name and removes the partial file when ssh still can.
pub struct Push {
    ssh: Ssh,
    host: String,
    path: String,
    child: Child,
    stdin: Option<ChildStdin>,
    stderr: Option<JoinHandle<String>>,
    sent: u64,
    done: bool,
}

impl Push {
    /// Starts `ssh host 'umask 022; cat > <path>.imgport-part'`. The umask makes the
    /// bundle world-readable like a file written by xCAT's scp under the usual umask.
    pub fn start(ssh: &Ssh, host: &str, path: &str) -> Result<Push, RemoteError> {
        check_host(host)?;
        let part = format!("{path}{PART_SUFFIX}");
        let script = format!("umask 022; cat > {}", shell_path(&part));
        let mut child = ssh
            .command(host, &script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| RemoteError::Failed {
                headline: push_headline(path),
                details: vec![spawn_failed(ssh, &e)],
            })?;
        let stdin = child.stdin.take();
        let stderr = collect_stderr(child.stderr.take());
        Ok(Push {
            ssh: ssh.clone(),
            host: host.to_string(),
            path: path.to_string(),
            child,
            stdin,
            stderr,
            sent: 0,
            done: false,
        })
    }

    /// Bytes written so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Ends the stream and, when ssh succeeded, commits the bundle on the remote host:
    /// applies `patches` (the deferred tar headers), checks that the file holds exactly
    /// the bytes sent and renames it to its final name. Returns ssh's stderr lines of a
    /// successful transfer (warnings such as a newly added host key).
    pub fn finish(mut self, patches: &[Rewrite<'_>]) -> Result<Vec<String>, RemoteError> {
        self.done = true;
        drop(self.stdin.take());
        let status = self.child.wait();
        let mut lines = stderr_lines(self.stderr.take());
        let status = status.map_err(|e| self.failed(vec![e.to_string()]))?;
        if !status.success() {
            return Err(self.failed_status(status, lines));
        }
        match self.commit(patches) {
            Ok(more) => {
                lines.extend(more);
                Ok(lines)
            }
            Err(e) => {
                self.cleanup();
                Err(e)
            }
        }
    }

    /// Gives up after a local failure: ends the stream, waits for ssh and removes the
    /// partial file. Returns ssh's own failure when ssh had failed (its message explains
    /// a local "broken pipe" better than the local error does).
    pub fn abort(mut self) -> Option<RemoteError> {
        self.abandon()
    }

    fn abandon(&mut self) -> Option<RemoteError> {
        self.done = true;
        // Closing stdin ends the remote `cat` normally; the partial file is then removed
        // below, and without the commit step it never reaches the final name.
        drop(self.stdin.take());
        let status = self.child.wait();
        let lines = stderr_lines(self.stderr.take());
        match status {
            Ok(s) if s.success() => {
                self.cleanup();
                None
            }
            Ok(s) => {
                // ssh's own failure means the host cannot be reached: nothing to clean.
                if s.code() != Some(SSH_OWN_FAILURE) {
                    self.cleanup();
                }
                Some(self.failed_status(s, lines))
            }
            Err(e) => Some(self.failed(vec![e.to_string()])),
        }
    }

    /// The second connection: rewrite the deferred headers (their bytes arrive on
    /// stdin, read by `dd` one count at a time), check the size, rename.
    fn commit(&self, patches: &[Rewrite<'_>]) -> Result<Vec<String>, RemoteError> {
        let part = shell_path(&format!("{}{PART_SUFFIX}", self.path));
        let fin = shell_path(&self.path);
        let mut script = String::new();
        let mut input = Vec::new();
        for p in patches {
            script.push_str(&format!(
                "dd of={part} bs=1 seek={} count={} conv=notrunc 2>/dev/null || {{ echo \"imgport: cannot rewrite a tar header in \"{part} >&2; rm -f -- {part}; exit 1; }}\n",
                p.offset,
                p.bytes.len()
            ));
            input.extend_from_slice(p.bytes);
        }
        script.push_str(&format!(
            "n=$(wc -c < {part}) || exit 1\n\
             if [ $n -ne {sent} ]; then echo \"imgport: \"{part}\" holds $n bytes, not the {sent} sent; not renamed\" >&2; rm -f -- {part}; exit 1; fi\n\
             mv -f -- {part} {fin}",
            sent = self.sent
        ));
        let mut child = self
            .ssh
            .command(&self.host, &script)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.failed(vec![spawn_failed(&self.ssh, &e)]))?;
        let stderr = collect_stderr(child.stderr.take());
        let fed = child.stdin.take().map(|mut w| w.write_all(&input));
        let status = child.wait();
        let lines = stderr_lines(stderr);
        let status = status.map_err(|e| self.failed(vec![e.to_string()]))?;
        if !status.success() {
            return Err(self.failed_status(status, lines));
        }
        if let Some(Err(e)) = fed {
            return Err(self.failed(vec![format!("sending the tar header: {e}")]));
        }
        Ok(lines)
    }

    /// Best effort: removes the partial file; a failure here changes nothing for the
    /// user, who is already told the export failed.
    fn cleanup(&self) {
        let part = shell_path(&format!("{}{PART_SUFFIX}", self.path));
        let _ = self
            .ssh
            .command(&self.host, &format!("rm -f -- {part}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    fn failed_status(&self, status: ExitStatus, lines: Vec<String>) -> RemoteError {
        self.failed(details(self.ssh.program(), status, lines))
    }

    fn failed(&self, details: Vec<String>) -> RemoteError {
        RemoteError::Failed {
            headline: push_headline(&self.path),
            details,
        }
    }
}

/// xCAT's message, byte for byte (it names the bundle, not the host), whatever went
/// wrong; ssh's own lines follow it as details.
fn push_headline(path: &str) -> String {
    let bundle = path.rsplit('/').next().unwrap_or(path);
    format!(
        "Unable to copy the image bundle {bundle} to the remote host (Maybe passwordless ssh was not setup?)"
    )
}

impl Write for Push {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::BrokenPipe))?;
        let n = stdin.write(buf)?;
        self.sent += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        match self.stdin.as_mut() {
            Some(s) => s.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for Push {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.abandon();
        }
    }
}

/// An import's bundle coming from `host:path`: read it through the [`PullReader`],
/// then [`finish`](Pull::finish) (or [`abort`](Pull::abort) after a read failure) to
/// learn whether ssh delivered all of it.
pub struct Pull {
    ssh: Ssh,
    path: String,
    child: Child,
    /// A second descriptor of ssh's stdout, so the rest can be drained after the
    /// reader is gone: a bundle reader stops at the tar end, and closing the pipe early
    /// would make ssh fail with a broken pipe.
    pipe: File,
    eof: Arc<AtomicBool>,
    stderr: Option<JoinHandle<String>>,
    done: bool,
}

/// The bundle bytes ssh delivers.
pub struct PullReader {
    pipe: File,
    eof: Arc<AtomicBool>,
}

impl Read for PullReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.pipe.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.eof.store(true, Ordering::Relaxed);
        }
        Ok(n)
    }
}

impl Pull {
    /// Starts `ssh host cat -- <path>`.
    pub fn start(ssh: &Ssh, host: &str, path: &str) -> Result<(Pull, PullReader), RemoteError> {
        check_host(host)?;
        let failed = |detail: String| RemoteError::Failed {
            headline: pull_headline(path),
            details: vec![detail],
        };
        let script = format!("cat -- {}", shell_path(path));
        let mut child = ssh
            .command(host, &script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| failed(spawn_failed(ssh, &e)))?;
        let stderr = collect_stderr(child.stderr.take());
        let dup = child
            .stdout
            .take()
            .map(|s| File::from(OwnedFd::from(s)))
            .map(|f| f.try_clone().map(|g| (f, g)));
        let (pipe, reader_pipe) = match dup {
            Some(Ok(pair)) => pair,
            Some(Err(e)) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed(e.to_string()));
            }
            None => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(failed("ssh's stdout is not a pipe".into()));
            }
        };
        let eof = Arc::new(AtomicBool::new(false));
        let pull = Pull {
            ssh: ssh.clone(),
            path: path.to_string(),
            child,
            pipe,
            eof: eof.clone(),
            stderr,
            done: false,
        };
        Ok((
            pull,
            PullReader {
                pipe: reader_pipe,
                eof,
            },
        ))
    }

    /// After the bundle was read: drains what is left, waits for ssh and fails unless
    /// it succeeded (a missing file or a refused login shows up only here, since the
    /// reader merely saw an empty stream). Returns ssh's stderr lines of a success.
    pub fn finish(mut self) -> Result<Vec<String>, RemoteError> {
        self.done = true;
        let drained = io::copy(&mut self.pipe, &mut io::sink());
        let status = self.child.wait();
        let lines = stderr_lines(self.stderr.take());
        let status = status.map_err(|e| self.failed(vec![e.to_string()]))?;
        if !status.success() {
            return Err(self.failed(details(self.ssh.program(), status, lines)));
        }
        drained.map_err(|e| self.failed(vec![e.to_string()]))?;
        Ok(lines)
    }

    /// After a read failure: when the stream had ended, ssh has ended too and its
    /// failure (if any) is the real cause, returned here; otherwise the data itself was
    /// bad and ssh is stopped rather than made to send the rest.
    pub fn abort(mut self) -> Option<RemoteError> {
        self.abandon()
    }

    fn abandon(&mut self) -> Option<RemoteError> {
        self.done = true;
        if !self.eof.load(Ordering::Relaxed) {
            let _ = self.child.kill();
        }
        let status = self.child.wait();
        let lines = stderr_lines(self.stderr.take());
        match status {
            Ok(s) if s.success() => None,
            Ok(s) if self.eof.load(Ordering::Relaxed) => {
                Some(self.failed(details(self.ssh.program(), s, lines)))
            }
            _ => None,
        }
    }

    fn failed(&self, details: Vec<String>) -> RemoteError {
        RemoteError::Failed {
            headline: pull_headline(&self.path),
            details,
        }
    }
}

impl Drop for Pull {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.abandon();
        }
    }
}

/// xCAT's message, byte for byte, whatever went wrong with the copy.
fn pull_headline(path: &str) -> String {
    format!("Unable to copy the image bundle {path} from the remote host (Maybe passwordless ssh was not setup?)")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `printf %s <quoted>` through a real `sh` and returns what it printed.
    fn through_sh(word: &str) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", shell_quote(word)))
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn quoting_survives_the_shell() {
        for w in [
            "plain.tgz",
            "with space.tgz",
            "it's.tgz",
            "''",
            "a'b'c",
            "\"double\" $HOME `id` $(id) \\ ; | & * ? ~ !",
            "new\nline",
            "-starts-with-dash",
            "",
        ] {
            assert_eq!(through_sh(w), w, "{w:?}");
        }
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn tilde_slash_means_the_login_directory() {
        assert_eq!(shell_path("~/b.tgz"), "'b.tgz'");
        assert_eq!(shell_path("~x/b.tgz"), "'~x/b.tgz'");
        assert_eq!(shell_path("/abs/~/b"), "'/abs/~/b'");
    }

    #[test]
    fn hosts_that_ssh_would_read_as_options_are_refused() {
        for h in ["", "-oProxyCommand=x", "a b", "a\nb"] {
            assert!(
                matches!(check_host(h), Err(RemoteError::InvalidHost(_))),
                "{h:?}"
            );
        }
        for h in ["root@mn2", "mn2", "root@[::1]", "root@127.0.0.1"] {
            assert!(check_host(h).is_ok(), "{h}");
        }
    }

    #[test]
    fn ssh_words_come_first_and_batch_mode_is_always_added() {
        let ssh = Ssh::new("  ssh -p 2222   -i key ");
        let c = ssh.command("root@h", "cat -- 'x'");
        let args: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(c.get_program(), "ssh");
        assert_eq!(
            args,
            [
                "-p",
                "2222",
                "-i",
                "key",
                "-o",
                "BatchMode=yes",
                "--",
                "root@h",
                "cat -- 'x'"
            ]
        );
        assert_eq!(Ssh::new("").program(), "ssh");
    }

    #[test]
    fn a_missing_ssh_is_named_in_the_error() {
        let ssh = Ssh::new("/nonexistent/imgport-test-ssh");
        let e = Pull::start(&ssh, "root@h", "b.tgz")
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("Unable to copy the image bundle b.tgz from the remote host (Maybe passwordless ssh was not setup?)\ncannot run /nonexistent/imgport-test-ssh: "), "{e}");
        let e = Push::start(&ssh, "root@h", "b.tgz")
            .err()
            .unwrap()
            .to_string();
        assert!(e.starts_with("Unable to copy the image bundle b.tgz to the remote host (Maybe passwordless ssh was not setup?)\ncannot run /nonexistent/imgport-test-ssh: "), "{e}");
    }
}

//! Prints library lines as xCAT's client does: data lines on stdout, errors and
//! warnings on stderr as `Error: [<host>]: <text>`; any error line makes exit code 1.

use std::io::Write;

use imgport::report::Reporter;

pub struct Console {
    verbose: bool,
    /// Data lines go to stderr when stdout carries a bundle.
    info_to_stderr: bool,
    host: String,
    errors: usize,
}

impl Console {
    pub fn new(verbose: bool, info_to_stderr: bool) -> Console {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        Console {
            verbose,
            info_to_stderr,
            host,
            errors: 0,
        }
    }

    /// 0, or 1 when any error line was printed (xCAT's rule).
    pub fn exit_code(&self) -> i32 {
        if self.errors > 0 {
            super::EXIT_FAILED
        } else {
            super::EXIT_OK
        }
    }

    /// Prints `message` (each of its lines) as errors and returns exit code 1.
    pub fn fail(&mut self, message: &str) -> i32 {
        for line in message.lines() {
            self.error(line);
        }
        super::EXIT_FAILED
    }

    fn data(&self, line: &str) {
        if self.info_to_stderr {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        } else {
            let _ = writeln!(std::io::stdout().lock(), "{line}");
        }
    }
}

impl Reporter for Console {
    fn info(&mut self, line: &str) {
        self.data(line);
    }
    fn verbose(&mut self, line: &str) {
        if self.verbose {
            self.data(line);
        }
    }
    fn error(&mut self, line: &str) {
        self.errors += 1;
        let _ = writeln!(std::io::stderr().lock(), "Error: [{}]: {line}", self.host);
    }
    fn warning(&mut self, line: &str) {
        let _ = writeln!(std::io::stderr().lock(), "Warning: [{}]: {line}", self.host);
    }
}

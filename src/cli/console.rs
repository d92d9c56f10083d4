//! Prints library lines as xCAT's client does: data lines on stdout, errors and
//! warnings on stderr as `Error: [<host>]: <text>`; any error line makes exit code 1.
//! Also keeps the error and warning lines of the item in progress, for `--json`.

use std::io::Write;

use imgport::report::Reporter;

pub struct Console {
    verbose: bool,
    /// Data lines go to stderr when stdout carries a bundle or a JSON document.
    info_to_stderr: bool,
    quiet: bool,
    host: String,
    errors: usize,
    /// Lines of the current item, drained by [`Console::take_lines`].
    warnings_now: Vec<String>,
    errors_now: Vec<String>,
    /// The progress bar on screen, if any: lines are printed above it.
    bar: Option<indicatif::ProgressBar>,
}

impl Console {
    pub fn new(verbose: bool, info_to_stderr: bool, quiet: bool) -> Console {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        Console {
            verbose,
            info_to_stderr,
            quiet,
            host,
            errors: 0,
            warnings_now: Vec::new(),
            errors_now: Vec::new(),
            bar: None,
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
        self.errors_now.clear();
        super::EXIT_FAILED
    }

    /// The warning and error lines since the last call.
    pub fn take_lines(&mut self) -> (Vec<String>, Vec<String>) {
        (
            std::mem::take(&mut self.warnings_now),
            std::mem::take(&mut self.errors_now),
        )
    }

    /// A closing line of imgport's own (not xCAT's), shown unless `--quiet`.
    pub fn note(&mut self, line: &str) {
        if !self.quiet {
            self.data(line);
        }
    }

    /// Prints lines above `bar` while it is on screen.
    pub fn set_bar(&mut self, bar: Option<indicatif::ProgressBar>) {
        self.bar = bar;
    }

    fn data(&self, line: &str) {
        let to_stderr = self.info_to_stderr;
        self.above_bar(|| {
            if to_stderr {
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            } else {
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }
        });
    }

    fn above_bar(&self, print: impl FnOnce()) {
        match &self.bar {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }
}

impl Reporter for Console {
    fn info(&mut self, line: &str) {
        if !self.quiet {
            self.data(line);
        }
    }
    fn verbose(&mut self, line: &str) {
        if self.verbose && !self.quiet {
            self.data(line);
        }
    }
    fn error(&mut self, line: &str) {
        self.errors += 1;
        self.errors_now.push(line.to_string());
        self.above_bar(|| {
            let _ = writeln!(std::io::stderr().lock(), "Error: [{}]: {line}", self.host);
        });
    }
    fn failing_warning(&mut self, line: &str) {
        self.errors += 1;
        self.warning(line);
    }
    fn warning(&mut self, line: &str) {
        self.warnings_now.push(line.to_string());
        self.above_bar(|| {
            let _ = writeln!(std::io::stderr().lock(), "Warning: [{}]: {line}", self.host);
        });
    }
}

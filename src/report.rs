//! Where library flows send the lines a user sees. xCAT's plugin sends "data" lines
//! (stdout), "error" and "warning" lines (stderr, prefixed); scripts grep them, so the
//! texts are kept byte-exact and the CLI decides how to print them.

/// Receives progress, error and warning lines from export and import.
pub trait Reporter {
    /// A progress or result line (xCAT "data": stdout).
    fn info(&mut self, line: &str);
    /// A line shown only with `-v`.
    fn verbose(&mut self, line: &str);
    /// An error line. In xCAT every error sets exit code 1, fatal or not.
    fn error(&mut self, line: &str);
    fn warning(&mut self, line: &str);
    /// A warning that still sets exit code 1: xCAT sends some warnings with an
    /// `errorcode` (the nodes `-p` skips), and its client exits 1 for them.
    fn failing_warning(&mut self, line: &str) {
        self.warning(line);
    }
}

/// Collects every line; for tests and for callers that print later.
#[derive(Debug, Default, Clone)]
pub struct Collect {
    pub info: Vec<String>,
    pub verbose: Vec<String>,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

impl Reporter for Collect {
    fn info(&mut self, line: &str) {
        self.info.push(line.to_string());
    }
    fn verbose(&mut self, line: &str) {
        self.verbose.push(line.to_string());
    }
    fn error(&mut self, line: &str) {
        self.errors.push(line.to_string());
    }
    fn warning(&mut self, line: &str) {
        self.warnings.push(line.to_string());
    }
}

//! The `imgport` binary. Also answers to the names `imgexport` and `imgimport`
//! (symlinks), with xCAT's syntax, usage texts and exit codes.

mod cli;

fn main() {
    std::process::exit(cli::run(std::env::args_os().collect()));
}

//! `chatflow`: run chatflow blocks and flows from the command line.
//!
//! Run `chatflow --help` for the commands and their examples.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}

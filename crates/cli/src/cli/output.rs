//! The CLI's stdout and stderr, written without panicking.
//!
//! `std`'s `println!` panics when a write fails, and it fails as soon as the
//! reader of a pipe has gone: `chatflow demo | head -3` used to end with
//! `failed printing to stdout: Broken pipe`, a backtrace and exit code 101.
//! Every `print!`, `println!`, `eprint!` and `eprintln!` in `cli/` is
//! shadowed by the macros at the top of `cli/mod.rs`, which call the
//! functions here instead:
//!
//! - **A closed pipe on stdout** (`EPIPE`) stops the output quietly, as
//!   `ls | head` does: no message, and the rest of the output is dropped.
//!   The command still finishes and exits with its own status (`0`, `1` or
//!   `2`), so `chatflow run flow.json | head -1` reports a stopped flow the
//!   same way with or without `head`.
//! - **Any other write error on stdout** (a full disk) also drops the rest
//!   of the output, and the command then exits `2` with the error on stderr:
//!   the output it was asked for is incomplete.
//! - **Errors on stderr** are ignored: there is nowhere left to report them.
//!
//! Why not restore `SIGPIPE`'s default disposition instead (what `ls`
//! does)? The CLI also writes to sockets: the REST API block, the sandbox's
//! HTTP client, the demo API's server. With the default disposition, a
//! peer that closes a connection while we write would kill the whole
//! process with a signal rather than return `EPIPE` to the code that
//! handles it, and a process killed by a signal has no exit code at all,
//! let alone one of the documented three.

use std::fmt;
use std::io::{self, Write as _};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout failed: nothing more is written to it.
static STDOUT_DONE: AtomicBool = AtomicBool::new(false);
/// The first stdout error other than a closed pipe.
static STDOUT_ERROR: OnceLock<io::Error> = OnceLock::new();

/// `print!` for the CLI: writes to stdout unless it failed before.
pub fn stdout(args: fmt::Arguments<'_>) {
    if STDOUT_DONE.load(Ordering::Relaxed) {
        return;
    }
    if let Err(err) = io::stdout().lock().write_fmt(args) {
        stdout_failed(err);
    }
}

/// `eprint!` for the CLI: errors are ignored.
pub fn stderr(args: fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(args);
}

fn stdout_failed(err: io::Error) {
    STDOUT_DONE.store(true, Ordering::Relaxed);
    if err.kind() != io::ErrorKind::BrokenPipe {
        let _ = STDOUT_ERROR.set(err);
    }
}

/// Flushes stdout at the end of a command. Returns the write error that
/// made the output incomplete, if any; a closed pipe is not one.
pub fn finish() -> Option<&'static io::Error> {
    if !STDOUT_DONE.load(Ordering::Relaxed)
        && let Err(err) = io::stdout().lock().flush()
    {
        stdout_failed(err);
    }
    STDOUT_ERROR.get()
}

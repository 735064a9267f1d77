//! Logging to the run's log (the `log` import).
//!
//! Logs are kept for successful and failed runs alike, so they are the
//! author's debugging tool: the engine returns them with the run's outcome,
//! `chatflow code` prints them, and the native test host
//! ([`crate::testing`]) records them and prints them to the test's output.
//! Once the run's log budget is used up, further logs are dropped (and
//! counted) and the run goes on.
//!
//! ```no_run
//! use chatflow_sdk::{log, Context, Result};
//!
//! fn run(ctx: &mut Context) -> Result<()> {
//!     let phone = ctx.require("phone")?;
//!     log::info!("looking up {phone}");
//!     log::debug!("plain text without arguments is not formatted at all");
//!     ctx.log(log::Level::Warn, "the same thing without a macro");
//!     Ok(())
//! }
//! # chatflow_sdk::code_block!(run);
//! # fn main() {}
//! ```
//!
//! Do not log secrets (tokens, passwords): logs are shown to operators.

use std::fmt;

/// How important a log line is. The host keeps every level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Detail for debugging (ABI level `0`).
    Debug,
    /// Normal progress (ABI level `1`).
    Info,
    /// Something unexpected that the block handled (ABI level `2`).
    Warn,
    /// Something failed (ABI level `3`).
    Error,
}

impl Level {
    /// The ABI's number for this level.
    pub fn as_i32(self) -> i32 {
        match self {
            Level::Debug => 0,
            Level::Info => 1,
            Level::Warn => 2,
            Level::Error => 3,
        }
    }

    /// The level for an ABI number; out-of-range values are clamped into
    /// `0..=3`, as the host does.
    pub fn from_i32(level: i32) -> Self {
        match level {
            i32::MIN..=0 => Level::Debug,
            1 => Level::Info,
            2 => Level::Warn,
            _ => Level::Error,
        }
    }

    /// `"debug"`, `"info"`, `"warn"` or `"error"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Writes one line to the run's log.
pub fn log(level: Level, message: &str) {
    crate::sys::log(level.as_i32(), message);
}

/// Writes pre-formatted arguments, without allocating when they are a plain
/// string literal. Used by the macros.
#[doc(hidden)]
pub fn __log_args(level: Level, args: fmt::Arguments<'_>) {
    match args.as_str() {
        Some(text) => log(level, text),
        None => log(level, &fmt::format(args)),
    }
}

#[doc(hidden)]
#[macro_export]
macro_rules! __chatflow_log {
    ($level:ident, $($arg:tt)+) => {
        $crate::log::__log_args($crate::log::Level::$level, ::std::format_args!($($arg)+))
    };
}

/// Logs at debug level, with `format!` syntax.
#[doc(hidden)]
#[macro_export]
macro_rules! __chatflow_debug {
    ($($arg:tt)+) => { $crate::__chatflow_log!(Debug, $($arg)+) };
}

/// Logs at info level, with `format!` syntax.
#[doc(hidden)]
#[macro_export]
macro_rules! __chatflow_info {
    ($($arg:tt)+) => { $crate::__chatflow_log!(Info, $($arg)+) };
}

/// Logs at warn level, with `format!` syntax.
#[doc(hidden)]
#[macro_export]
macro_rules! __chatflow_warn {
    ($($arg:tt)+) => { $crate::__chatflow_log!(Warn, $($arg)+) };
}

/// Logs at error level, with `format!` syntax.
#[doc(hidden)]
#[macro_export]
macro_rules! __chatflow_error {
    ($($arg:tt)+) => { $crate::__chatflow_log!(Error, $($arg)+) };
}

/// Logs at debug level, with `format!` syntax: `log::debug!("got {n} items")`.
#[doc(inline)]
pub use crate::__chatflow_debug as debug;
/// Logs at error level, with `format!` syntax: `log::error!("CRM said {status}")`.
#[doc(inline)]
pub use crate::__chatflow_error as error;
/// Logs at info level, with `format!` syntax: `log::info!("looking up {phone}")`.
#[doc(inline)]
pub use crate::__chatflow_info as info;
/// Logs at warn level, with `format!` syntax: `log::warn!("no email, skipping")`.
#[doc(inline)]
pub use crate::__chatflow_warn as warn;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_round_trip_and_clamp() {
        for level in [Level::Debug, Level::Info, Level::Warn, Level::Error] {
            assert_eq!(Level::from_i32(level.as_i32()), level);
        }
        assert_eq!(Level::from_i32(-5), Level::Debug);
        assert_eq!(Level::from_i32(99), Level::Error);
        assert_eq!(Level::Warn.to_string(), "warn");
    }
}

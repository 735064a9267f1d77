//! How a Code block run ended: its output, or one typed reason per way of
//! failing, plus what is reported either way (logs, fuel, time).

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::limits::{LimitError, LimitKind};
use super::module::LoadError;
use crate::properties::ChangeSet;

/// Everything a run reports, successful or not.
///
/// On success, [`result`](Outcome::result) holds the [`Output`]: the
/// property changes (to commit with [`Properties::apply`]) and the messages
/// to deliver. On failure it holds the [`RunError`] and nothing is to be
/// committed. Logs and counters are reported in both cases, because authors
/// debug failed runs with them.
///
/// [`Properties::apply`]: crate::properties::Properties::apply
#[derive(Debug)]
#[non_exhaustive]
pub struct Outcome {
    /// The run's output, or why it failed.
    pub result: Result<Output, RunError>,
    /// Log lines, in order (up to the run's log bytes limit).
    pub logs: Vec<LogEntry>,
    /// Log lines dropped because the log bytes limit was reached.
    pub logs_dropped: u64,
    /// The guest's last `fail` message, if it called `fail` (also kept
    /// beside errors that are not [`RunError::GuestFailed`]).
    pub fail_message: Option<String>,
    /// Fuel consumed by the run (wasm instructions plus charged host work).
    /// Zero when fuel metering is off.
    pub fuel_used: u64,
    /// Wall-clock time of the run, from the start of instantiation.
    pub duration: Duration,
    /// HTTP requests the guest made (every `http_request` call).
    pub http_calls: u32,
    /// The size of the run's linear memory at its largest, in bytes (the
    /// module's initial memory plus every granted `memory.grow`; compare
    /// with [`Limits::memory_bytes`](super::Limits::memory_bytes)). Zero if
    /// the run failed before instantiation.
    pub memory_bytes: u64,
}

impl Outcome {
    /// Whether the run succeeded.
    pub fn is_ok(&self) -> bool {
        self.result.is_ok()
    }

    /// The error, if the run failed.
    pub fn error(&self) -> Option<&RunError> {
        self.result.as_ref().err()
    }

    /// The output, if the run succeeded.
    pub fn output(&self) -> Option<&Output> {
        self.result.as_ref().ok()
    }

    /// An outcome for a run that failed before the guest ran.
    pub(super) fn failed(error: RunError) -> Outcome {
        Outcome {
            result: Err(error),
            logs: Vec::new(),
            logs_dropped: 0,
            fail_message: None,
            fuel_used: 0,
            duration: Duration::ZERO,
            http_calls: 0,
            memory_bytes: 0,
        }
    }
}

/// What a successful run produced. Nothing of it has taken effect yet: the
/// caller commits the changes and delivers the messages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Output {
    /// Property writes and removals, to commit with
    /// [`Properties::apply`](crate::properties::Properties::apply).
    pub changes: ChangeSet,
    /// Chat messages to send to the user, in order.
    pub messages: Vec<String>,
}

/// One log line from a guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogEntry {
    /// Its level.
    pub level: LogLevel,
    /// Its text (invalid UTF-8 replaced with U+FFFD).
    pub message: String,
}

/// A guest log level (`log` import: 0 debug, 1 info, 2 warn, 3 error; other
/// values are clamped into that range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// `0`.
    Debug,
    /// `1`.
    Info,
    /// `2`.
    Warn,
    /// `3`.
    Error,
}

impl LogLevel {
    /// The level for a raw `log` argument, clamped into `0..=3`.
    pub fn from_raw(level: i32) -> LogLevel {
        match level {
            i32::MIN..=0 => LogLevel::Debug,
            1 => LogLevel::Info,
            2 => LogLevel::Warn,
            _ => LogLevel::Error,
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        })
    }
}

/// Why a Code block run failed: one variant per way a run can end other than
/// success. Nothing the run wrote is committed in any of these cases.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The run used up its fuel ([`Limits::fuel`](super::Limits::fuel),
    /// 1 000 000 000 by default), in wasm or in charged host work.
    #[error("out of fuel: the run used its whole budget of {limit} fuel")]
    FuelExhausted {
        /// The fuel limit.
        limit: u64,
    },
    /// The run took longer than its wall-clock limit
    /// ([`Limits::wall_time`](super::Limits::wall_time), 5 s by default),
    /// including time waiting on HTTP.
    #[error("timed out: the run took longer than its limit of {} ms", limit.as_millis())]
    Timeout {
        /// The wall-clock limit.
        limit: Duration,
    },
    /// The guest needed more linear memory than its limit
    /// ([`Limits::memory_bytes`](super::Limits::memory_bytes), 128 MiB by
    /// default): a `memory.grow` was refused and the guest then trapped, or
    /// the module's initial memory is already over the limit.
    #[error("out of memory: the run needed more than its limit of {limit} bytes")]
    MemoryLimit {
        /// The memory limit in bytes.
        limit: u64,
    },
    /// The guest overflowed the wasm stack (engine-wide
    /// [`SandboxConfig::max_wasm_stack`](super::SandboxConfig::max_wasm_stack),
    /// 512 KiB by default), usually by deep or infinite recursion.
    #[error("stack overflow: the guest exhausted its wasm stack")]
    StackOverflow,
    /// The guest trapped: an `unreachable`, a division by zero, an
    /// out-of-bounds memory access, an indirect call type mismatch …
    #[error("trap: {message}")]
    Trap {
        /// What trapped, e.g. `wasm trap: integer divide by zero`.
        message: String,
        /// The wasm backtrace (function names from the module's name
        /// section), if one was captured.
        backtrace: Option<String>,
    },
    /// The guest reported failure: `chatflow_run` returned non-zero, or the
    /// guest called `fail` and then aborted (a Rust guest's panic: the SDK
    /// calls `fail` with the panic message, then executes `unreachable`).
    #[error("guest failed: {message}")]
    GuestFailed {
        /// The guest's `fail` message, or `chatflow_run returned N`.
        message: String,
        /// What `chatflow_run` returned, if it returned.
        code: Option<i32>,
    },
    /// The guest passed an import a pointer/length pair that does not fit in
    /// its memory.
    #[error("{import}: {source}")]
    GuestMemory {
        /// The import that was called.
        import: &'static str,
        /// What was wrong with the argument.
        #[source]
        source: GuestMemoryError,
    },
    /// The run failed after an HTTP request was denied by the network
    /// policy; the denial is reported as the root cause (the guest's own
    /// message is in [`Outcome::fail_message`]).
    #[error("http request denied: {reason}")]
    HttpDenied {
        /// Why the request was denied (the URL is shown without query string
        /// or credentials).
        reason: String,
    },
    /// The run hit a limit that ends it: HTTP calls, HTTP response bytes,
    /// property value bytes, total written bytes or messages.
    #[error("limit reached: {which} (limit {value})")]
    Limit {
        /// Which limit.
        which: LimitKind,
        /// Its value for this run.
        value: u64,
    },
    /// The module could not be used (never returned by
    /// [`Sandbox::run`](super::Sandbox::run), whose module is already
    /// validated; returned by callers that load and run in one step).
    #[error("invalid module: {0}")]
    InvalidModule(#[from] LoadError),
    /// The limits given to the run are over the operator's maximums.
    #[error("invalid limits: {0}")]
    InvalidLimits(#[from] LimitError),
    /// The run was cancelled through its [`CancelToken`](super::CancelToken).
    #[error("cancelled")]
    Cancelled,
    /// The engine could not run the module for a reason that is not the
    /// guest's: for example the instance pool is misconfigured. The message
    /// comes from wasmtime.
    #[error("engine error: {message}")]
    Engine {
        /// What failed.
        message: String,
    },
}

impl RunError {
    /// A stable snake_case name for the variant (`fuel_exhausted`,
    /// `timeout`, …), for logs, metrics and JSON output.
    pub fn kind(&self) -> &'static str {
        match self {
            RunError::FuelExhausted { .. } => "fuel_exhausted",
            RunError::Timeout { .. } => "timeout",
            RunError::MemoryLimit { .. } => "memory_limit",
            RunError::StackOverflow => "stack_overflow",
            RunError::Trap { .. } => "trap",
            RunError::GuestFailed { .. } => "guest_failed",
            RunError::GuestMemory { .. } => "guest_memory",
            RunError::HttpDenied { .. } => "http_denied",
            RunError::Limit { .. } => "limit",
            RunError::InvalidModule(_) => "invalid_module",
            RunError::InvalidLimits(_) => "invalid_limits",
            RunError::Cancelled => "cancelled",
            RunError::Engine { .. } => "engine",
        }
    }
}

/// A guest pointer/length pair the host refused (after wiggle's
/// `GuestError`). Reported inside [`RunError::GuestMemory`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GuestMemoryError {
    /// `ptr + len` is past the end of the guest's memory.
    #[error("{arg}: {ptr:#x}+{len} is out of bounds of the {memory_size}-byte memory")]
    OutOfBounds {
        /// Which argument, e.g. `name_ptr/name_len`.
        arg: &'static str,
        /// The pointer.
        ptr: u32,
        /// The length.
        len: u32,
        /// The memory's size in bytes.
        memory_size: usize,
    },
    /// `ptr + len` overflows 32 bits.
    #[error("{arg}: {ptr:#x}+{len} overflows the 32-bit address space")]
    Overflow {
        /// Which argument.
        arg: &'static str,
        /// The pointer.
        ptr: u32,
        /// The length.
        len: u32,
    },
}

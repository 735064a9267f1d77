//! The host side of ABI v1: the imports a Code block may call, one file per
//! import family, and the per-run state they work on.
//!
//! Every import follows the same steps: charge the call's base fuel,
//! bounds-check every `(ptr, len)` argument against the guest's memory
//! (`range`), do the work, charge fuel for the bytes copied. A limit hit
//! ends the run by returning a [`RunError`] as the import's error, which
//! wasmtime turns into a trap and [`Sandbox::run`](super::Sandbox::run)
//! downcasts back. Conditions a guest can handle are negative return codes
//! ([`code`]) with a message for `last_error`.

use std::ops::Range;
use std::time::Instant;

use wasmtime::{Caller, Extern, Linker, Memory};

use super::limits::{LimitKind, Limits};
use super::outcome::{GuestMemoryError, LogEntry, RunError};
use super::{CancelToken, SandboxConfig};
use crate::net::HttpClient;
use crate::properties::{ChangeSet, Properties};

mod http;
mod log;
pub(crate) mod parse;
mod properties;

#[cfg(feature = "fuzzing")]
pub use parse::fuzzing;

/// The ABI v1 error codes (`docs/abi.md`, "Error codes").
pub mod code {
    /// Property not set; selector matched nothing; `last_error` with no
    /// error recorded.
    pub const NOT_FOUND: i32 = -1;
    /// An argument is invalid (not UTF-8, bad name, bad request, bad
    /// pointer or path syntax).
    pub const INVALID: i32 = -2;
    /// The property is not JSON (`json_select`) or not well-formed XML
    /// (`xml_select`).
    pub const NOT_PARSEABLE: i32 = -3;
    /// HTTP request refused by the network policy.
    pub const DENIED: i32 = -4;
    /// HTTP request timed out.
    pub const TIMEOUT: i32 = -5;
    /// HTTP request failed to connect or complete.
    pub const CONNECTION: i32 = -6;
    /// No HTTP response with that handle in this run.
    pub const BAD_HANDLE: i32 = -7;
}

/// Fuel charged for any import call.
pub(crate) const CALL_FUEL: u64 = 100;

/// Longest `fail` message kept, in bytes.
pub(crate) const MAX_FAIL_MESSAGE: usize = 64 * 1024;

/// Fuel for copying `bytes` between host and guest: 1 per 8 bytes, rounded up.
pub(crate) fn copy_fuel(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(8)
}

/// Everything one run owns: the store's data.
pub(crate) struct RunState {
    pub(crate) props: Properties,
    pub(crate) changes: ChangeSet,
    pub(crate) limits: Limits,
    pub(crate) fuel_metering: bool,
    pub(crate) deadline: Instant,
    pub(crate) cancel: Option<CancelToken>,
    pub(crate) http_client: HttpClient,
    pub(crate) memory: Option<Memory>,
    pub(crate) limiter: RunLimiter,
    pub(crate) messages: Vec<String>,
    pub(crate) logs: Vec<LogEntry>,
    pub(crate) log_bytes: u64,
    pub(crate) logs_dropped: u64,
    pub(crate) written: u64,
    pub(crate) fail_message: Option<String>,
    pub(crate) last_error: Option<String>,
    pub(crate) http: http::HttpState,
    pub(crate) parse: parse::ParseCache,
}

impl RunState {
    pub(crate) fn new(
        config: &SandboxConfig,
        http_client: &HttpClient,
        props: &Properties,
        limits: &Limits,
        deadline: Instant,
        cancel: Option<CancelToken>,
    ) -> Self {
        RunState {
            props: props.clone(),
            changes: ChangeSet::new(),
            limits: *limits,
            fuel_metering: config.fuel_metering,
            deadline,
            cancel,
            http_client: http_client.clone(),
            memory: None,
            limiter: RunLimiter {
                memory_bytes: usize::try_from(limits.memory_bytes).unwrap_or(usize::MAX),
                table_elements: config.table_elements as usize,
                memory_denied: false,
                memory_peak: 0,
            },
            messages: Vec::new(),
            logs: Vec::new(),
            log_bytes: 0,
            logs_dropped: 0,
            written: 0,
            fail_message: None,
            last_error: None,
            http: http::HttpState::default(),
            parse: parse::ParseCache::default(),
        }
    }

    /// Records `message` for `last_error` and returns `code`.
    pub(crate) fn error(&mut self, code: i32, message: impl Into<String>) -> i32 {
        self.last_error = Some(message.into());
        code
    }

    /// Counts `bytes` towards the run's total written bytes.
    pub(crate) fn count_written(&mut self, bytes: usize) -> Result<(), RunError> {
        self.written = self.written.saturating_add(bytes as u64);
        if self.written > self.limits.written_bytes {
            return Err(RunError::Limit {
                which: LimitKind::WrittenBytes,
                value: self.limits.written_bytes,
            });
        }
        Ok(())
    }
}

/// Limits linear memory and tables of one run, and remembers whether a
/// `memory.grow` was refused (so a guest that then aborts is reported as
/// [`RunError::MemoryLimit`]).
pub(crate) struct RunLimiter {
    memory_bytes: usize,
    table_elements: usize,
    pub(crate) memory_denied: bool,
    /// The largest linear memory granted (creation or growth), in bytes.
    pub(crate) memory_peak: usize,
}

impl wasmtime::ResourceLimiter for RunLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_denied = true;
            return Ok(false);
        }
        self.memory_peak = self.memory_peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements)
    }

    // One module instance per run, with at most one memory and one table
    // (ABI v1 forbids imports of either; the pool allows one of each).
    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }
}

/// Charges `fuel` for host work; running out ends the run with
/// [`RunError::FuelExhausted`].
pub(crate) fn charge(caller: &mut Caller<'_, RunState>, fuel: u64) -> wasmtime::Result<()> {
    if !caller.data().fuel_metering || fuel == 0 {
        return Ok(());
    }
    let left = caller.get_fuel()?;
    if left < fuel {
        caller.set_fuel(0)?;
        let limit = caller.data().limits.fuel;
        return Err(RunError::FuelExhausted { limit }.into());
    }
    caller.set_fuel(left - fuel)?;
    Ok(())
}

/// The guest's exported memory.
pub(crate) fn memory(caller: &mut Caller<'_, RunState>) -> wasmtime::Result<Memory> {
    if let Some(mem) = caller.data().memory {
        return Ok(mem);
    }
    // A start function runs before `Sandbox::run` has cached the export.
    match caller.get_export(super::module::MEMORY_EXPORT) {
        Some(Extern::Memory(mem)) => {
            caller.data_mut().memory = Some(mem);
            Ok(mem)
        }
        _ => Err(wasmtime::Error::msg("module has no exported memory")),
    }
}

/// Bounds-checks a guest `(ptr, len)` pair against a memory of `mem_len`
/// bytes. Both are unsigned 32-bit values carried in `i32`.
pub(crate) fn range(
    import: &'static str,
    arg: &'static str,
    ptr: i32,
    len: i32,
    mem_len: usize,
) -> Result<Range<usize>, RunError> {
    let (ptr, len) = (ptr as u32, len as u32);
    let end = u64::from(ptr) + u64::from(len);
    if end > u64::from(u32::MAX) + 1 {
        return Err(RunError::GuestMemory {
            import,
            source: GuestMemoryError::Overflow { arg, ptr, len },
        });
    }
    if end > mem_len as u64 {
        return Err(RunError::GuestMemory {
            import,
            source: GuestMemoryError::OutOfBounds {
                arg,
                ptr,
                len,
                memory_size: mem_len,
            },
        });
    }
    Ok(ptr as usize..end as usize)
}

/// The length protocol: copies `min(result.len(), buf.len())` bytes of
/// `result` to the front of `buf` (already bounds-checked) and returns the
/// full length (the import's return value) and the bytes copied.
pub(crate) fn put(buf: &mut [u8], result: &[u8]) -> (i32, usize) {
    let n = result.len().min(buf.len());
    buf[..n].copy_from_slice(&result[..n]);
    // Results are bounded by limits far below 2 GiB (property values, HTTP
    // bodies, documents); saturate rather than wrap if an operator ever
    // hands a run a larger property.
    (i32::try_from(result.len()).unwrap_or(i32::MAX), n)
}

/// Registers every ABI v1 import in `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    properties::add_to_linker(linker)?;
    log::add_to_linker(linker)?;
    http::add_to_linker(linker)?;
    parse::add_to_linker(linker)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(range("f", "a", 0, 0, 0).unwrap(), 0..0);
        assert_eq!(range("f", "a", 10, 6, 16).unwrap(), 10..16);
        assert_eq!(range("f", "a", 16, 0, 16).unwrap(), 16..16);
    }

    #[test]
    fn ranges_bad() {
        assert!(matches!(
            range("f", "a", 10, 7, 16),
            Err(RunError::GuestMemory {
                import: "f",
                source: GuestMemoryError::OutOfBounds {
                    ptr: 10,
                    len: 7,
                    ..
                }
            })
        ));
        assert!(matches!(
            range("f", "a", -1, 2, 1 << 20),
            Err(RunError::GuestMemory {
                source: GuestMemoryError::Overflow { .. },
                ..
            })
        ));
        assert!(matches!(
            range("f", "a", 17, 0, 16),
            Err(RunError::GuestMemory {
                source: GuestMemoryError::OutOfBounds { .. },
                ..
            })
        ));
    }

    #[test]
    fn copy_fuel_rounds_up() {
        assert_eq!(copy_fuel(0), 0);
        assert_eq!(copy_fuel(1), 1);
        assert_eq!(copy_fuel(8), 1);
        assert_eq!(copy_fuel(9), 2);
    }
}

//! The host side of ABI v1: the imports a Code block may call, one file per
//! import family, and the per-run state they work on.
//!
//! Every import follows the same steps: charge the call's base fuel,
//! bounds-check every `(ptr, len)` argument against the guest's memory
//! (`range`), check the limits that cost nothing to check, charge fuel for
//! the work about to be done (bytes scanned, validated, parsed), do it, and
//! charge for the bytes copied. A limit hit ends the run by returning a
//! [`RunError`] as the import's error, which wasmtime turns into a trap and
//! [`Sandbox::run`](super::Sandbox::run) downcasts back. Conditions a guest
//! can handle are negative return codes ([`code`]) with a message for
//! `last_error`.
//!
//! The fuel rates below are set from the `fuel_rate` bench
//! (`docs/benchmarks.md`): a guest calling any import in a loop, with the
//! worst arguments found, must not get host work cheaper per unit of fuel
//! than about half what plain wasm gets. What each import holds in host
//! memory is counted against the run's limits (`docs/security.md`, "Host
//! memory per run").

use std::ops::Range;
use std::time::Instant;

use wasmtime::{Caller, Extern, Linker, Memory};

use super::limits::{LimitKind, Limits};
use super::outcome::{GuestMemoryError, LogEntry, RunError};
use super::{CancelToken, SandboxConfig};
use crate::properties::{ChangeSet, Properties};
use chatflow_net::HttpClient;

mod http;
mod log;
pub(crate) mod parse;
mod properties;

#[cfg(feature = "fuzzing")]
pub use parse::fuzzing;

/// The ABI v1 error codes (`docs/abi.md`, "Error codes"), from the ABI
/// crate that the guest SDK reads them from too.
pub use chatflow_abi::code;

/// Fuel charged for any import call ([`chatflow_abi::fuel::CALL`]): the
/// call into the host and back, with the watchdog's wall-time and
/// cancellation check at its return (about 25 ns, what a plain wasm loop
/// does with some 250 units of fuel; the `fuel_rate` bench,
/// `docs/benchmarks.md`).
pub(crate) const CALL_FUEL: u64 = chatflow_abi::fuel::CALL;

/// Longest `fail` message kept, in bytes.
pub(crate) const MAX_FAIL_MESSAGE: usize = chatflow_abi::MAX_FAIL_MESSAGE_BYTES;

/// Longest `last_error` message kept, in bytes: messages that quote guest
/// input (a name, a path) are cut there.
pub(crate) const MAX_ERROR_MESSAGE: usize = chatflow_abi::MAX_LAST_ERROR_BYTES;

/// What a kept log line takes from the run's log budget beyond its text:
/// the host's entry for it, so that empty lines are not free.
pub(crate) const LOG_LINE_OVERHEAD: u64 = chatflow_abi::LOG_LINE_OVERHEAD;

/// What a property write or removal, a message or an HTTP request takes
/// from the run's written-bytes budget beyond its own bytes: the host's
/// entry for it (a change-set node, a message slot).
pub(crate) const WRITE_OVERHEAD: u64 = chatflow_abi::WRITE_OVERHEAD;

/// Fuel for an import call that records an error message for
/// `last_error` (formatting it, allocating it), on top of the call's
/// ([`chatflow_abi::fuel::ERROR`]).
pub(crate) const ERROR_FUEL: u64 = chatflow_abi::fuel::ERROR;

/// What [`HostMemory`](super::limits::HostMemory) counts for a response's
/// headers: [`http::MAX_RESPONSE_HEADER_BYTES`].
pub(crate) const HTTP_HEADER_BYTES: u64 = http::MAX_RESPONSE_HEADER_BYTES as u64;

/// The most bytes of index the selectors keep per byte of a property they
/// parsed: JSON's or XML's, whichever is more (a property is one or the
/// other, and each has at most one index).
pub(crate) const INDEX_BYTES_PER_BYTE: u64 =
    if parse::json::INDEX_BYTES_PER_TEXT_BYTE > parse::xml::INDEX_BYTES_PER_TEXT_BYTE {
        parse::json::INDEX_BYTES_PER_TEXT_BYTE as u64
    } else {
        parse::xml::INDEX_BYTES_PER_TEXT_BYTE as u64
    };

/// What [`HostMemory`](super::limits::HostMemory) counts for the `fail`
/// message (kept: 64 KiB; while bad bytes are replaced: up to 192 KiB) and
/// the last error (1 KiB): 256 KiB.
pub(crate) const MESSAGE_BYTES: u64 = 256 * 1024;

/// Fuel for copying `bytes` between host and guest: 1 per 8 bytes, rounded up.
pub(crate) fn copy_fuel(bytes: usize) -> u64 {
    (bytes as u64).div_ceil(8)
}

/// Fuel for keeping `bytes` in new host memory (a property value, a
/// message, a log line, a request): 2 per byte. Most of the cost is the
/// allocation's fresh pages, which the kernel faults in and zeroes.
pub(crate) fn store_fuel(bytes: usize) -> u64 {
    2 * bytes as u64
}

/// The host memory a write of `bytes` keeps: the bytes and the entry
/// holding them ([`WRITE_OVERHEAD`]); what [`store_fuel`] is charged on.
pub(crate) fn kept(bytes: usize) -> usize {
    bytes + WRITE_OVERHEAD as usize
}

/// Fuel for validating `bytes` of guest input as UTF-8: 2 per byte (text
/// mixing 1- to 4-byte characters, the slowest to validate).
pub(crate) fn scan_fuel(bytes: usize) -> u64 {
    2 * bytes as u64
}

/// Extra fuel for replacing the bad bytes of `bytes` of input that is not
/// valid UTF-8 with U+FFFD (`log`, `fail`): 16 per byte, each bad byte
/// costing a replacement.
pub(crate) fn lossy_fuel(bytes: usize) -> u64 {
    16 * bytes as u64
}

/// Fuel for finding a property of `name_len` bytes among `entries`
/// (the snapshot's properties and the run's writes), or inserting it: each
/// of the about log2(entries) levels of the B-tree walked costs a cache
/// miss and a few name comparisons.
pub(crate) fn lookup_fuel(name_len: usize, entries: usize) -> u64 {
    let levels = u64::from(usize::BITS - (entries + 2).leading_zeros());
    (64 + name_len as u64 / 4) * levels
}

/// `text` as a quoted string for an error message, cut after 64
/// characters (with `…`), so a message quoting guest input stays short.
pub(crate) fn quoted(text: &str) -> String {
    const SHOWN: usize = 64;
    match text.char_indices().nth(SHOWN) {
        None => format!("{text:?}"),
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
    }
}

/// `message` cut to at most `max` bytes, at a character boundary.
pub(crate) fn truncated(mut message: String, max: usize) -> String {
    if message.len() > max {
        let mut cut = max;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
    }
    message
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

    /// Records `message` for `last_error` (cut to [`MAX_ERROR_MESSAGE`]
    /// bytes) and returns `code`.
    pub(crate) fn error(&mut self, code: i32, message: impl Into<String>) -> i32 {
        self.last_error = Some(truncated(message.into(), MAX_ERROR_MESSAGE));
        code
    }

    /// Checks that a write of `bytes` (plus [`WRITE_OVERHEAD`]) fits in what
    /// is left of the run's written bytes, without counting it: lets an
    /// import refuse an oversized write before scanning it.
    pub(crate) fn check_written(&self, bytes: usize) -> Result<(), RunError> {
        let total = self
            .written
            .saturating_add(bytes as u64)
            .saturating_add(WRITE_OVERHEAD);
        if total > self.limits.written_bytes {
            return Err(RunError::Limit {
                which: LimitKind::WrittenBytes,
                value: self.limits.written_bytes,
            });
        }
        Ok(())
    }

    /// Counts a write of `bytes` (plus [`WRITE_OVERHEAD`]) towards the
    /// run's written bytes; over the limit ends the run.
    pub(crate) fn count_written(&mut self, bytes: usize) -> Result<(), RunError> {
        self.check_written(bytes)?;
        self.written += bytes as u64 + WRITE_OVERHEAD;
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

/// Records an error for `last_error` (charging [`ERROR_FUEL`]) and returns
/// `code`, the import's return value.
pub(crate) fn guest_error(
    caller: &mut Caller<'_, RunState>,
    code: i32,
    message: impl Into<String>,
) -> wasmtime::Result<i32> {
    charge(caller, ERROR_FUEL)?;
    Ok(caller.data_mut().error(code, message))
}

/// Text from guest bytes, bad UTF-8 replaced with U+FFFD, charging
/// [`scan_fuel`] and [`store_fuel`] for the check and the copy, and
/// [`lossy_fuel`] on top if there is anything to replace, each before the
/// work. Used where the ABI accepts any bytes (`log`, `fail`).
pub(crate) fn lossy_text(
    caller: &mut Caller<'_, RunState>,
    mem: Memory,
    bytes: Range<usize>,
) -> wasmtime::Result<String> {
    charge(caller, scan_fuel(bytes.len()) + store_fuel(bytes.len()))?;
    if let Ok(text) = std::str::from_utf8(&mem.data(&*caller)[bytes.clone()]) {
        return Ok(text.to_string());
    }
    charge(caller, lossy_fuel(bytes.len()))?;
    Ok(String::from_utf8_lossy(&mem.data(&*caller)[bytes]).into_owned())
}

/// The guest's exported memory.
pub(crate) fn memory(caller: &mut Caller<'_, RunState>) -> wasmtime::Result<Memory> {
    if let Some(mem) = caller.data().memory {
        return Ok(mem);
    }
    // A start function runs before `Sandbox::run` has cached the export.
    match caller.get_export(chatflow_abi::MEMORY_EXPORT) {
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

    /// What `add_to_linker` defines is exactly `chatflow_abi::IMPORTS`:
    /// every import, in module `chatflow`, with the ABI's type, and nothing
    /// else.
    #[test]
    fn the_linker_defines_exactly_the_abi_imports() {
        let engine = wasmtime::Engine::default();
        let mut linker = Linker::new(&engine);
        add_to_linker(&mut linker).unwrap();
        let http = HttpClient::new(chatflow_net::NetPolicy::default()).unwrap();
        let state = RunState::new(
            &SandboxConfig::default(),
            &http,
            &Properties::new(),
            &Limits::default(),
            Instant::now(),
            None,
        );
        let mut store = wasmtime::Store::new(&engine, state);
        let items: Vec<(&str, &str, Extern)> = linker.iter(&mut store).collect();
        let mut defined: Vec<(String, Vec<String>, Vec<String>)> = items
            .into_iter()
            .map(|(module, name, item)| {
                assert_eq!(module, chatflow_abi::IMPORT_MODULE, "{module}::{name}");
                let Extern::Func(func) = item else {
                    panic!("{module}::{name} is not a function");
                };
                let ty = func.ty(&store);
                let types = |types: &mut dyn Iterator<Item = wasmtime::ValType>| {
                    types.map(|t| t.to_string()).collect::<Vec<_>>()
                };
                (
                    name.to_string(),
                    types(&mut ty.params()),
                    types(&mut ty.results()),
                )
            })
            .collect();
        let mut abi: Vec<(String, Vec<String>, Vec<String>)> = chatflow_abi::IMPORTS
            .iter()
            .map(|f| {
                let types = |types: &[chatflow_abi::ValType]| {
                    types.iter().map(|t| t.to_string()).collect::<Vec<_>>()
                };
                (f.name.to_string(), types(f.params), types(f.results))
            })
            .collect();
        defined.sort();
        abi.sort();
        assert_eq!(defined, abi);
    }

    /// The limits' names are the ABI's, in the same order.
    #[test]
    fn limit_names_are_the_abis() {
        assert_eq!(
            LimitKind::ALL.map(LimitKind::as_str),
            chatflow_abi::limit::ALL
        );
    }

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
        assert_eq!(scan_fuel(3), 6);
        assert_eq!(store_fuel(3), 6);
        assert_eq!(lossy_fuel(3), 48);
    }

    #[test]
    fn lookups_cost_more_in_bigger_maps() {
        assert_eq!(lookup_fuel(0, 0), 64 * 2);
        assert_eq!(lookup_fuel(8, 1), 66 * 2);
        assert_eq!(lookup_fuel(0, 100_000), 64 * 17);
        assert_eq!(lookup_fuel(256, 1_000_000), 128 * 20);
    }

    #[test]
    fn messages_stay_short() {
        assert_eq!(quoted("a\"b"), r#""a\"b""#);
        let long = "é".repeat(100);
        let shown = quoted(&long);
        assert_eq!(shown, format!("{:?}…", "é".repeat(64)));
        assert_eq!(truncated("héllo".into(), 2), "h");
        assert_eq!(truncated("héllo".into(), 3), "hé");
        assert_eq!(truncated("hello".into(), 10), "hello");
    }
}

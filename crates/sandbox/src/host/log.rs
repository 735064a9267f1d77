//! `message_send`, `log`, `fail`, `last_error`: what the guest says to the
//! user (messages, delivered only if the run succeeds), to its author (logs,
//! kept either way), and about itself (its failure message, the last error).
//!
//! Memory: a message counts its text and
//! [`WRITE_OVERHEAD`](super::WRITE_OVERHEAD) towards the run's written
//! bytes; a kept log line counts its text (after U+FFFD replacement) and
//! [`LOG_LINE_OVERHEAD`] towards its log bytes; the `fail` message and the
//! last error are cut to fixed sizes. Fuel, besides the call's: the bytes
//! validated and kept ([`scan_fuel`], [`store_fuel`], and
//! [`lossy_fuel`](super::lossy_fuel) if bad bytes must be replaced) before
//! the work, the bytes copied to the guest ([`copy_fuel`]) after.

use wasmtime::{Caller, Linker};

use super::{
    CALL_FUEL, LOG_LINE_OVERHEAD, MAX_FAIL_MESSAGE, RunState, charge, code, copy_fuel, guest_error,
    kept, lossy_text, memory, put, range, scan_fuel, store_fuel, truncated,
};
use chatflow_abi::IMPORT_MODULE;
use chatflow_abi::imports::{FAIL, LAST_ERROR, LOG, MESSAGE_SEND};

use crate::limits::LimitKind;
use crate::outcome::{LogEntry, LogLevel, RunError};

pub(super) fn add_to_linker(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    linker.func_wrap(IMPORT_MODULE, MESSAGE_SEND.name, message_send)?;
    linker.func_wrap(IMPORT_MODULE, LOG.name, log)?;
    linker.func_wrap(IMPORT_MODULE, FAIL.name, fail)?;
    linker.func_wrap(IMPORT_MODULE, LAST_ERROR.name, last_error)?;
    Ok(())
}

fn message_send(
    mut caller: Caller<'_, RunState>,
    text_ptr: i32,
    text_len: i32,
) -> wasmtime::Result<i32> {
    const F: &str = "message_send";
    charge(&mut caller, CALL_FUEL)?;
    let mem = memory(&mut caller)?;
    let (data, state) = mem.data_and_store_mut(&mut caller);
    let text = range(F, "text_ptr/text_len", text_ptr, text_len, data.len())?;
    let bytes = text.len();
    let max = state.limits.messages;
    if state.messages.len() >= max as usize {
        return Err(RunError::Limit {
            which: LimitKind::Messages,
            value: max.into(),
        }
        .into());
    }
    state.check_written(bytes)?;
    charge(&mut caller, scan_fuel(bytes) + store_fuel(kept(bytes)))?;
    let (data, state) = mem.data_and_store_mut(&mut caller);
    let Ok(text) = std::str::from_utf8(&data[text]) else {
        return guest_error(&mut caller, code::INVALID, "message text is not UTF-8");
    };
    state.count_written(bytes)?;
    state.messages.push(text.to_string());
    Ok(0)
}

fn log(
    mut caller: Caller<'_, RunState>,
    level: i32,
    msg_ptr: i32,
    msg_len: i32,
) -> wasmtime::Result<()> {
    const F: &str = "log";
    charge(&mut caller, CALL_FUEL)?;
    let mem = memory(&mut caller)?;
    let (data, state) = mem.data_and_store_mut(&mut caller);
    let msg = range(F, "msg_ptr/msg_len", msg_ptr, msg_len, data.len())?;
    // U+FFFD replacement never makes a line shorter, so a line whose bytes
    // do not fit is dropped before it is looked at.
    let left = state.limits.log_bytes.saturating_sub(state.log_bytes);
    if msg.len() as u64 + LOG_LINE_OVERHEAD > left {
        state.logs_dropped += 1;
        return Ok(());
    }
    // The entry, then the text.
    charge(&mut caller, store_fuel(LOG_LINE_OVERHEAD as usize))?;
    let message = lossy_text(&mut caller, mem, msg)?;
    let state = caller.data_mut();
    let cost = message.len() as u64 + LOG_LINE_OVERHEAD;
    if cost > left {
        state.logs_dropped += 1;
        return Ok(());
    }
    state.log_bytes += cost;
    state.logs.push(LogEntry {
        level: LogLevel::from_raw(level),
        message,
    });
    Ok(())
}

fn fail(mut caller: Caller<'_, RunState>, msg_ptr: i32, msg_len: i32) -> wasmtime::Result<()> {
    const F: &str = "fail";
    charge(&mut caller, CALL_FUEL)?;
    let mem = memory(&mut caller)?;
    let msg = range(
        F,
        "msg_ptr/msg_len",
        msg_ptr,
        msg_len,
        mem.data_size(&caller),
    )?;
    // Only the first 64 KiB are looked at, and at most 64 KiB are kept.
    let looked_at = msg.start..msg.start + msg.len().min(MAX_FAIL_MESSAGE);
    let message = lossy_text(&mut caller, mem, looked_at)?;
    let message = truncated(message, MAX_FAIL_MESSAGE);
    caller.data_mut().fail_message = Some(message);
    Ok(())
}

fn last_error(
    mut caller: Caller<'_, RunState>,
    buf_ptr: i32,
    buf_cap: i32,
) -> wasmtime::Result<i32> {
    const F: &str = "last_error";
    charge(&mut caller, CALL_FUEL)?;
    let mem = memory(&mut caller)?;
    let (data, state) = mem.data_and_store_mut(&mut caller);
    let buf = range(F, "buf_ptr/buf_cap", buf_ptr, buf_cap, data.len())?;
    let Some(message) = &state.last_error else {
        return Ok(code::NOT_FOUND);
    };
    let (len, copied) = put(&mut data[buf], message.as_bytes());
    charge(&mut caller, copy_fuel(copied))?;
    Ok(len)
}

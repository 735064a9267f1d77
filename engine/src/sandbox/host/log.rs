//! `message_send`, `log`, `fail`, `last_error`: what the guest says to the
//! user (messages, delivered only if the run succeeds), to its author (logs,
//! kept either way), and about itself (its failure message, the last error).

use wasmtime::{Caller, Linker};

use super::{CALL_FUEL, MAX_FAIL_MESSAGE, RunState, charge, code, copy_fuel, memory, put, range};
use crate::sandbox::limits::LimitKind;
use crate::sandbox::module::IMPORT_MODULE;
use crate::sandbox::outcome::{LogEntry, LogLevel, RunError};

pub(super) fn add_to_linker(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    linker.func_wrap(IMPORT_MODULE, "message_send", message_send)?;
    linker.func_wrap(IMPORT_MODULE, "log", log)?;
    linker.func_wrap(IMPORT_MODULE, "fail", fail)?;
    linker.func_wrap(IMPORT_MODULE, "last_error", last_error)?;
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
    let copied = text.len();
    let Ok(text) = std::str::from_utf8(&data[text]) else {
        return Ok(state.error(code::INVALID, "message text is not UTF-8"));
    };
    let max = state.limits.messages;
    if state.messages.len() >= max as usize {
        return Err(RunError::Limit {
            which: LimitKind::Messages,
            value: max.into(),
        }
        .into());
    }
    state.count_written(copied)?;
    state.messages.push(text.to_string());
    charge(&mut caller, copy_fuel(copied))?;
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
    let copied = msg.len();
    // The text kept is never shorter than the guest's bytes (U+FFFD, three
    // bytes, replaces one to three bad ones): a line over the budget is
    // dropped before converting it, so the conversion is bounded by three
    // times the budget; then what is counted is what is kept.
    if state.log_bytes + copied as u64 > state.limits.log_bytes {
        state.logs_dropped += 1;
        return Ok(());
    }
    let message = String::from_utf8_lossy(&data[msg]).into_owned();
    let len = message.len() as u64;
    if state.log_bytes + len > state.limits.log_bytes {
        state.logs_dropped += 1;
        return Ok(());
    }
    state.log_bytes += len;
    state.logs.push(LogEntry {
        level: LogLevel::from_raw(level),
        message,
    });
    charge(&mut caller, copy_fuel(copied))?;
    Ok(())
}

fn fail(mut caller: Caller<'_, RunState>, msg_ptr: i32, msg_len: i32) -> wasmtime::Result<()> {
    const F: &str = "fail";
    charge(&mut caller, CALL_FUEL)?;
    let mem = memory(&mut caller)?;
    let (data, state) = mem.data_and_store_mut(&mut caller);
    let msg = range(F, "msg_ptr/msg_len", msg_ptr, msg_len, data.len())?;
    let kept = &data[msg][..(msg_len as u32 as usize).min(MAX_FAIL_MESSAGE)];
    let copied = kept.len();
    state.fail_message = Some(String::from_utf8_lossy(kept).into_owned());
    charge(&mut caller, copy_fuel(copied))?;
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

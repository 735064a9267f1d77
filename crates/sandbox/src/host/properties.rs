//! `property_get`, `property_set`, `property_remove`: the run reads the
//! conversation's snapshot through its own pending writes, and its writes go
//! to a change set committed only if the run succeeds.
//!
//! Fuel, besides the call's, charged before the work: the name and value
//! validated ([`scan_fuel`]), the lookup or insertion ([`lookup_fuel`]), the
//! bytes kept ([`store_fuel`]); and after it, the bytes copied to the guest
//! ([`copy_fuel`]).
//! Memory: every write or removal counts its name, its value and
//! [`WRITE_OVERHEAD`](super::WRITE_OVERHEAD) towards the run's written
//! bytes, so the change set stays within that limit.

use wasmtime::{Caller, Linker};

use super::{
    CALL_FUEL, RunState, charge, code, copy_fuel, guest_error, kept, lookup_fuel, memory, put,
    quoted, range, scan_fuel, store_fuel,
};
use chatflow_abi::IMPORT_MODULE;
use chatflow_abi::imports::{PROPERTY_GET, PROPERTY_REMOVE, PROPERTY_SET};

use crate::limits::LimitKind;
use crate::outcome::RunError;
use crate::properties::{MAX_NAME_LEN, NameError, validate_name};

pub(super) fn add_to_linker(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    linker.func_wrap(IMPORT_MODULE, PROPERTY_GET.name, property_get)?;
    linker.func_wrap(IMPORT_MODULE, PROPERTY_SET.name, property_set)?;
    linker.func_wrap(IMPORT_MODULE, PROPERTY_REMOVE.name, property_remove)?;
    Ok(())
}

/// Properties the run can see: the snapshot's and its own writes.
fn entries(state: &RunState) -> usize {
    state.props.len() + state.changes.len()
}

fn property_get(
    mut caller: Caller<'_, RunState>,
    name_ptr: i32,
    name_len: i32,
    buf_ptr: i32,
    buf_cap: i32,
) -> wasmtime::Result<i32> {
    const F: &str = "property_get";
    charge(&mut caller, CALL_FUEL)?;
    let mem = memory(&mut caller)?;
    let (data, state) = mem.data_and_store_mut(&mut caller);
    let name = range(F, "name_ptr/name_len", name_ptr, name_len, data.len())?;
    let buf = range(F, "buf_ptr/buf_cap", buf_ptr, buf_cap, data.len())?;
    let work = scan_fuel(name.len()) + lookup_fuel(name.len(), entries(state));
    charge(&mut caller, work)?;
    let (data, state) = mem.data_and_store_mut(&mut caller);
    let Ok(name) = std::str::from_utf8(&data[name]) else {
        return guest_error(&mut caller, code::INVALID, "property name is not UTF-8");
    };
    let Some(value) = state.changes.read(&state.props, name) else {
        let message = format!("property {} is not set", quoted(name));
        return guest_error(&mut caller, code::NOT_FOUND, message);
    };
    let (len, copied) = put(&mut data[buf], value.as_bytes());
    charge(&mut caller, copy_fuel(copied))?;
    Ok(len)
}

/// The message for a name longer than any valid one, which is refused
/// before it is scanned.
fn too_long(len: usize) -> Option<String> {
    (len > MAX_NAME_LEN).then(|| {
        NameError::TooLong {
            len,
            max: MAX_NAME_LEN,
        }
        .to_string()
    })
}

/// The name a write or removal names, checked: UTF-8 and a valid property
/// name; otherwise the message of the `INVALID` return.
fn valid_name(bytes: &[u8]) -> Result<&str, String> {
    let name = std::str::from_utf8(bytes).map_err(|_| "property name is not UTF-8".to_string())?;
    validate_name(name).map_err(|err| err.to_string())?;
    Ok(name)
}

fn property_set(
    mut caller: Caller<'_, RunState>,
    name_ptr: i32,
    name_len: i32,
    val_ptr: i32,
    val_len: i32,
) -> wasmtime::Result<i32> {
    const F: &str = "property_set";
    charge(&mut caller, CALL_FUEL)?;
    let mem = memory(&mut caller)?;
    let (data, state) = mem.data_and_store_mut(&mut caller);
    let name = range(F, "name_ptr/name_len", name_ptr, name_len, data.len())?;
    let value = range(F, "val_ptr/val_len", val_ptr, val_len, data.len())?;
    let limit = state.limits.property_value_bytes;
    if value.len() as u64 > limit {
        return Err(RunError::Limit {
            which: LimitKind::PropertyValueBytes,
            value: limit,
        }
        .into());
    }
    if let Some(message) = too_long(name.len()) {
        return guest_error(&mut caller, code::INVALID, message);
    }
    let bytes = name.len() + value.len();
    state.check_written(bytes)?;
    // Charged before the work, even if the name or value turns out bad.
    let work = scan_fuel(bytes) + lookup_fuel(name.len(), entries(state)) + store_fuel(kept(bytes));
    charge(&mut caller, work)?;
    let (data, state) = mem.data_and_store_mut(&mut caller);
    let name = match valid_name(&data[name]) {
        Ok(name) => name,
        Err(message) => return guest_error(&mut caller, code::INVALID, message),
    };
    let Ok(value) = std::str::from_utf8(&data[value]) else {
        let message = format!("value of property {} is not UTF-8", quoted(name));
        return guest_error(&mut caller, code::INVALID, message);
    };
    state.count_written(bytes)?;
    state.parse.forget(name);
    state.changes.set(name, value);
    Ok(0)
}

fn property_remove(
    mut caller: Caller<'_, RunState>,
    name_ptr: i32,
    name_len: i32,
) -> wasmtime::Result<i32> {
    const F: &str = "property_remove";
    charge(&mut caller, CALL_FUEL)?;
    let mem = memory(&mut caller)?;
    let (data, state) = mem.data_and_store_mut(&mut caller);
    let name = range(F, "name_ptr/name_len", name_ptr, name_len, data.len())?;
    if let Some(message) = too_long(name.len()) {
        return guest_error(&mut caller, code::INVALID, message);
    }
    let bytes = name.len();
    state.check_written(bytes)?;
    let work = scan_fuel(bytes) + lookup_fuel(bytes, entries(state)) + store_fuel(kept(bytes));
    charge(&mut caller, work)?;
    let (data, state) = mem.data_and_store_mut(&mut caller);
    let name = match valid_name(&data[name]) {
        Ok(name) => name,
        Err(message) => return guest_error(&mut caller, code::INVALID, message),
    };
    state.count_written(bytes)?;
    state.parse.forget(name);
    state.changes.remove(name);
    Ok(0)
}

//! `property_get`, `property_set`, `property_remove`: the run reads the
//! conversation's snapshot through its own pending writes, and its writes go
//! to a change set committed only if the run succeeds.

use wasmtime::{Caller, Linker};

use super::{CALL_FUEL, RunState, charge, code, copy_fuel, memory, put, range};
use crate::properties::validate_name;
use crate::sandbox::limits::LimitKind;
use crate::sandbox::module::IMPORT_MODULE;
use crate::sandbox::outcome::RunError;

pub(super) fn add_to_linker(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    linker.func_wrap(IMPORT_MODULE, "property_get", property_get)?;
    linker.func_wrap(IMPORT_MODULE, "property_set", property_set)?;
    linker.func_wrap(IMPORT_MODULE, "property_remove", property_remove)?;
    Ok(())
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
    let Ok(name) = std::str::from_utf8(&data[name]) else {
        return Ok(state.error(code::INVALID, "property name is not UTF-8"));
    };
    let Some(value) = state.changes.read(&state.props, name) else {
        let message = format!("property {name:?} is not set");
        return Ok(state.error(code::NOT_FOUND, message));
    };
    let (len, copied) = put(&mut data[buf], value.as_bytes());
    charge(&mut caller, copy_fuel(copied))?;
    Ok(len)
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
    let copied = name.len() + value.len();
    let Ok(name) = std::str::from_utf8(&data[name]) else {
        return Ok(state.error(code::INVALID, "property name is not UTF-8"));
    };
    if let Err(err) = validate_name(name) {
        return Ok(state.error(code::INVALID, err.to_string()));
    }
    let Ok(value) = std::str::from_utf8(&data[value]) else {
        let message = format!("value of property {name:?} is not UTF-8");
        return Ok(state.error(code::INVALID, message));
    };
    state.count_written(copied)?;
    state.parse.forget(name);
    state.changes.set(name, value);
    charge(&mut caller, copy_fuel(copied))?;
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
    let copied = name.len();
    let Ok(name) = std::str::from_utf8(&data[name]) else {
        return Ok(state.error(code::INVALID, "property name is not UTF-8"));
    };
    if let Err(err) = validate_name(name) {
        return Ok(state.error(code::INVALID, err.to_string()));
    }
    state.count_written(copied)?;
    state.parse.forget(name);
    state.changes.remove(name);
    charge(&mut caller, copy_fuel(copied))?;
    Ok(0)
}

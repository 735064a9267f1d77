//! The SDK's wasm output follows ABI v1 (docs/abi.md, and the tables of
//! `chatflow-abi`): every built guest and example is a valid module that
//! exports `memory`, `chatflow_run` and `chatflow_abi_v1` with the right
//! types, defines its own memory, and imports nothing outside module
//! `chatflow`'s functions, each with exactly its ABI type.

use std::collections::{BTreeMap, BTreeSet};

use wasmparser::{ExternalKind, FuncType, Parser, Payload, TypeRef, ValType, Validator};

/// An ABI function's type as wasmparser writes it.
fn func_type(func: &chatflow_abi::Func) -> FuncType {
    let types = |types: &[chatflow_abi::ValType]| -> Vec<ValType> {
        types
            .iter()
            .map(|ty| match ty {
                chatflow_abi::ValType::I32 => ValType::I32,
                other => panic!("ABI type {other} is new to this test"),
            })
            .collect()
    };
    FuncType::new(types(func.params), types(func.results))
}

#[derive(Debug, Default)]
struct Module {
    imports: BTreeMap<(String, String), Option<FuncType>>,
    non_func_imports: Vec<String>,
    exports: BTreeMap<String, (ExternalKind, Option<FuncType>)>,
    size: usize,
}

fn inspect(path: &str) -> Module {
    let bytes = std::fs::read(path).unwrap_or_else(|err| panic!("reading {path}: {err}"));
    Validator::new()
        .validate_all(&bytes)
        .unwrap_or_else(|err| panic!("{path} is not a valid module: {err}"));
    let mut types: Vec<FuncType> = Vec::new();
    let mut funcs: Vec<u32> = Vec::new(); // type index of every function, imports first
    let mut module = Module {
        size: bytes.len(),
        ..Module::default()
    };
    let mut exports = Vec::new();
    for payload in Parser::new(0).parse_all(&bytes) {
        match payload.unwrap() {
            Payload::TypeSection(reader) => {
                for ty in reader.into_iter_err_on_gc_types() {
                    types.push(ty.unwrap());
                }
            }
            Payload::ImportSection(reader) => {
                for import in reader.into_imports() {
                    let import = import.unwrap();
                    let key = (import.module.to_string(), import.name.to_string());
                    match import.ty {
                        TypeRef::Func(idx) => {
                            funcs.push(idx);
                            module.imports.insert(key, types.get(idx as usize).cloned());
                        }
                        other => module
                            .non_func_imports
                            .push(format!("{}::{} ({other:?})", key.0, key.1)),
                    }
                }
            }
            Payload::FunctionSection(reader) => {
                for idx in reader {
                    funcs.push(idx.unwrap());
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    let export = export.unwrap();
                    exports.push((export.name.to_string(), export.kind, export.index));
                }
            }
            _ => {}
        }
    }
    for (name, kind, index) in exports {
        let ty =
            (kind == ExternalKind::Func).then(|| types[funcs[index as usize] as usize].clone());
        module.exports.insert(name, (kind, ty));
    }
    module
}

fn all_modules() -> Vec<(&'static str, &'static str)> {
    let mut all: Vec<_> = chatflow_test_artifacts::ALL.to_vec();
    all.extend_from_slice(chatflow_test_artifacts::examples::ALL);
    all
}

#[test]
fn every_module_exports_the_abi_entry_points() {
    for (name, path) in all_modules() {
        let module = inspect(path);
        let memory = module.exports.get(chatflow_abi::MEMORY_EXPORT);
        assert!(
            matches!(memory, Some((ExternalKind::Memory, None))),
            "{name}: no exported memory ({:?})",
            module.exports.keys().collect::<Vec<_>>()
        );
        for export in chatflow_abi::FUNC_EXPORTS {
            let found = module.exports.get(export.name);
            assert_eq!(
                found.and_then(|(_, ty)| ty.clone()),
                Some(func_type(export)),
                "{name}: the type of export {}",
                export.name
            );
        }
    }
}

#[test]
fn the_sdk_imports_nothing_outside_abi_v1() {
    let abi: BTreeMap<&str, FuncType> = chatflow_abi::IMPORTS
        .iter()
        .map(|func| (func.name, func_type(func)))
        .collect();
    let mut used = BTreeSet::new();
    for (name, path) in all_modules() {
        let module = inspect(path);
        assert!(
            module.non_func_imports.is_empty(),
            "{name} imports a memory, table, global or tag: {:?}",
            module.non_func_imports
        );
        for ((import_module, import), ty) in &module.imports {
            assert_eq!(
                import_module,
                chatflow_abi::IMPORT_MODULE,
                "{name} imports {import_module}::{import}"
            );
            let want = abi.get(import.as_str()).unwrap_or_else(|| {
                panic!("{name} imports chatflow::{import}, which is not in ABI v1")
            });
            assert_eq!(
                ty.as_ref(),
                Some(want),
                "{name}: type of chatflow::{import}"
            );
            used.insert(import.clone());
        }
    }
    // The guests together use every import, so every one of the SDK's
    // import declarations was checked above.
    let missing: Vec<_> = abi.keys().filter(|name| !used.contains(**name)).collect();
    assert!(missing.is_empty(), "no guest uses {missing:?}");
}

#[test]
fn test_guests_cover_every_suite_and_examples_are_small() {
    let names: Vec<_> = chatflow_test_artifacts::ALL
        .iter()
        .map(|(n, _)| *n)
        .collect();
    for want in [
        "sdk_roundtrip",
        "sdk_panic",
        "sdk_err",
        "sdk_http",
        "sdk_selectors",
        "bench_empty",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for (name, path) in all_modules() {
        let module = inspect(path);
        // The guest profile strips and LTOs; a module several times this
        // size means the profile was not applied.
        assert!(module.size < 600 * 1024, "{name} is {} bytes", module.size);
        eprintln!("{name}: {} bytes", module.size);
    }
}

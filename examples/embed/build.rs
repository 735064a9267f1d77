//! Builds the Code block the embedded flow uses (`application-status-xml`)
//! for wasm32. An operator's real service would load modules uploaded by
//! flow authors instead; building one here keeps the example self-contained.
//! The nested build shares `target/wasm32-guests` with the other build
//! scripts, so the module is compiled once per workspace.

use chatflow_build_support::{GuestBuild, GuestKind};

fn main() {
    let manifest_dir = std::path::PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let guests = GuestBuild::new(manifest_dir.join("../../Cargo.toml"))
        .package("application-status-xml")
        .build()
        .unwrap_or_else(|err| panic!("{err}"));
    let module = guests
        .iter()
        .find(|g| g.kind == GuestKind::Cdylib)
        .expect("application-status-xml builds a cdylib");
    println!("cargo:rustc-env=STATUS_MODULE={}", module.path.display());
}

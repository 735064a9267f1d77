//! Builds the Extism guest (`guest-extism`) for wasm32 with the guest
//! profile and chatflow's guest flags, as chatflow's bench guests are.

use chatflow_build_support::{GuestBuild, GuestKind};

fn main() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").unwrap());
    let guests = GuestBuild::new(manifest)
        .package("chatflow-peers-guest-extism")
        .target_dir(out.join("guests"))
        .build()
        .unwrap_or_else(|err| panic!("{err}"));
    let guest = guests
        .iter()
        .find(|g| g.kind == GuestKind::Cdylib)
        .expect("the Extism guest is a cdylib");
    println!(
        "cargo:rustc-env=PEERS_EXTISM_GUEST={}",
        guest.path.display()
    );
}

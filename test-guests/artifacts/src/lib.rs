//! The test guests and example Code blocks, compiled to wasm32.
//!
//! `build.rs` builds `test-guests/src/bin/*.rs` and `examples/code-blocks/*`
//! with the `guest` profile (through `chatflow-build-support`) and this
//! crate exposes each module's absolute path as a constant, named after the
//! guest: `test-guests/src/bin/sdk_roundtrip.rs` → [`SDK_ROUNDTRIP`],
//! `examples/code-blocks/crm-profile` → [`examples::CRM_PROFILE`]. Each
//! guest's file says what it does with which properties.
//!
//! The engine's tests and benches dev-depend on this crate:
//!
//! ```no_run
//! let wasm = std::fs::read(chatflow_test_artifacts::SDK_ROUNDTRIP).unwrap();
//! assert_eq!(&wasm[..4], b"\0asm");
//! ```

#![deny(missing_docs)]

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

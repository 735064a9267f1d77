//! The `chatflow` command's integration tests: the built binary, run as a
//! user runs it, against real servers on 127.0.0.1 and real wasm.
//!
//! The engine's test support (its loopback test server, the demo API
//! helpers, the prebuilt modules) is shared rather than copied: `support`
//! is the engine's own `tests/all/support`.

mod author;
mod bench;
mod check;
mod code;
mod modules;
mod pipe;
mod readme;
mod rest;
mod run;
mod serve;
#[path = "../../../../engine/tests/all/support/mod.rs"]
mod support;

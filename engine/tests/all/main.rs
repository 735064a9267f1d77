//! The engine's integration tests: one binary, one module per feature.
//!
//! HTTP tests run against real servers on 127.0.0.1 started by
//! `support::server`; Code block tests run real wasm (hand-written WAT and
//! Rust guests built for wasm32 by a build script).

mod examples;
mod flow;
mod flow_code;
mod flow_examples;
mod flow_interrupted;
mod flow_modules;
mod invariants;
mod net;
mod perf;
mod rest;
mod sandbox;
mod sdk;
mod support;
mod template;

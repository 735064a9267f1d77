//! The server's integration tests: one binary, a module per feature. Each
//! test runs the real server on 127.0.0.1:0 against a real store: SQLite
//! always, PostgreSQL when `CHATFLOW_TEST_POSTGRES` names a server (`.ci/run`
//! starts one); the PostgreSQL variants pass with a message otherwise.

mod support;

mod auth;
mod bad_input;
mod conversations;
mod docs;
mod durability;
mod flows_and_modules;
mod operations;

//! chatflow-sdk: write chatflow Code blocks in Rust.

#!/usr/bin/env bash
# Installs what the fuzzers need: a nightly toolchain (cargo-fuzz builds with
# sanitizer flags only nightly accepts) and cargo-fuzz itself. Not part of CI
# and not needed for anything in the README: the workspace builds and tests on
# the pinned stable toolchain. Safe to run again (both steps are no-ops when
# already installed).
set -euo pipefail

rustup toolchain install nightly --profile minimal
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  # cargo-fuzz itself builds with any toolchain; `--locked` uses its own
  # Cargo.lock. Run from here so the repository's rust-toolchain.toml pin
  # does not matter either way.
  cargo +nightly install cargo-fuzz --locked
fi
cargo +nightly fuzz --version

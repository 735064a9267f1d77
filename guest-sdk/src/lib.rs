//! Write chatflow **Code blocks** in Rust.
//!
//! A Code block is a WebAssembly module that a chatbot flow runs in a
//! sandbox, typically right after a REST API block, to parse its
//! `{{API Response}}` (JSON or XML) into properties, or to make an API call
//! the REST API block cannot (a token first, then several pages). This crate
//! is everything such a module needs: the entry point, the conversation's
//! properties, messages to the user, logging, HTTP through the engine, and
//! JSON/XML helpers, over the engine's ABI v1 (`docs/abi.md`). Off wasm32 the
//! same code runs against an in-process test host, so blocks are unit-tested
//! with plain `cargo test` ([`testing`]).
//!
//! # A complete Code block
//!
//! `Cargo.toml`:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib", "rlib"]
//!
//! [dependencies]
//! chatflow-sdk = "0.1"
//! serde = { version = "1", features = ["derive"] }
//! ```
//!
//! `src/lib.rs`:
//!
//! ```no_run
//! use chatflow_sdk::{Context, Error, Result, http, log};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! struct Profile {
//!     name: String,
//!     email: Option<String>,
//!     #[serde(default)]
//!     tier: Option<String>,
//! }
//!
//! fn run(ctx: &mut Context) -> Result<()> {
//!     // The CRM's answer, stored by the REST API block before this one.
//!     let profile: Profile = match ctx.json("API Response") {
//!         Ok(profile) => profile,
//!         Err(Error::MissingProperty { .. }) => {
//!             ctx.send_message("Sorry, we could not find your profile.")?;
//!             return Ok(());
//!         }
//!         Err(err) => return Err(err), // fails the run with a clear message
//!     };
//!     log::info!("profile found for {}", profile.name);
//!     ctx.set("name", &profile.name)?;
//!     match &profile.email {
//!         Some(email) => ctx.set("email", email)?,
//!         None => ctx.remove("email")?, // so `{{email}} exists` is false
//!     }
//!     ctx.set("tier", profile.tier.as_deref().unwrap_or("standard"))?;
//!
//!     // An HTTP call through the engine, under the operator's network policy.
//!     let base = ctx.require("api_base_url")?;
//!     match http::Request::get(format!("{base}/offers")).query("tier", "gold").send() {
//!         Ok(response) if response.is_success() => ctx.set("offers", response.text()?)?,
//!         Ok(response) => log::warn!("offers API answered {}", response.status()),
//!         Err(http::Error::Timeout { .. }) => log::warn!("offers API timed out"),
//!         Err(err) => return Err(err.into()),
//!     }
//!     Ok(())
//! }
//!
//! // Exports `chatflow_run` (and the ABI marker) calling `run`.
//! chatflow_sdk::code_block!(run);
//! # fn main() {}
//! ```
//!
//! Build and check it:
//!
//! ```sh
//! cargo build --release --target wasm32-unknown-unknown
//! chatflow check target/wasm32-unknown-unknown/release/my_block.wasm
//! chatflow code target/wasm32-unknown-unknown/release/my_block.wasm \
//!     --set 'API Response=@profile.json' --set api_base_url=https://api.example.com
//! ```
//!
//! `docs/writing-code-blocks.md` walks through it all from an empty
//! directory, including the release profile that keeps modules small.
//!
//! # Core concepts
//!
//! - **Entry point**: [`code_block!`]`(run)` declares the block. `run`
//!   receives a [`Context`]; returning `Err(e)` fails the run with
//!   `e.to_string()` as the message, and a panic fails it with the panic
//!   message and location.
//! - **Properties** are the conversation's named text values
//!   ([`Context::get`], [`Context::set`], [`Context::remove`]). Reads see the
//!   run's own writes; writes and messages are committed only if the run
//!   succeeds, so a failing block leaves nothing half-written.
//! - **Parsing**: in the sandbox with serde ([`Context::json`]) or
//!   quick-xml ([`xml`], [`Context::xml`]), or natively in the host with a
//!   JSON pointer or XML path ([`Context::select_json`],
//!   [`Context::select_xml`]) when a few fields of a large document are
//!   enough.
//! - **HTTP** goes through the engine ([`http::Request`]), under the same
//!   network policy as the REST API block; failures are typed
//!   ([`http::Error::Denied`], [`http::Error::Timeout`] …).
//! - **Errors**: one [`Error`] type; `?` works on SDK calls, `serde_json`,
//!   `quick-xml` and HTTP errors, and text becomes an error with
//!   [`Error::msg`] or `.into()`.
//! - **Limits** (fuel, memory, time, HTTP calls, bytes written) are the
//!   operator's; hitting one ends the run at once with an error naming it.
//! - **Testing**: [`testing::TestHost`] runs a block natively with stubbed
//!   HTTP and reports what it did.
//!
//! # Features
//!
//! - `xml` (default): the [`xml`] module and [`Context::xml`], over
//!   quick-xml. Turn it off (`default-features = false`) for blocks that
//!   only handle JSON, to keep the module smaller.

#![deny(missing_docs)]

pub mod alloc;
mod context;
mod error;
pub mod http;
pub mod log;
mod mem;
mod sys;

#[cfg(feature = "xml")]
pub mod xml;
// The test host's `xml_select` needs the XML path code whatever the feature
// says (quick-xml is always a dependency off wasm32).
#[cfg(all(not(feature = "xml"), not(target_arch = "wasm32")))]
#[allow(dead_code)]
mod xml;

#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

pub use context::{API_RESPONSE, Context};
pub use error::{Error, Result};

/// Declares the Code block's entry point.
///
/// `code_block!(run)` with `fn run(ctx: &mut Context) -> chatflow_sdk::Result<()>`
/// exports, on wasm32, the two functions ABI v1 requires:
///
/// - `chatflow_run() -> i32`: installs a panic hook that reports the panic
///   message and location to the host (the run then fails with it), calls
///   `run`, and returns `0` for `Ok(())`; for `Err(e)` it reports
///   `e.to_string()` as the failure message and returns `1`;
/// - `chatflow_abi_v1()`: the marker saying the module targets ABI v1;
///
/// and it makes [`alloc::BumpAllocator`] the module's global allocator
/// (see "Allocator" below).
///
/// Off wasm32 it exports nothing (so several blocks can be linked into one
/// test binary) and only checks `run`'s signature; tests call `run` through
/// [`testing::TestHost::run`].
///
/// Use it once per module, at the crate root or in any module.
///
/// ```no_run
/// use chatflow_sdk::{Context, Result};
///
/// fn run(ctx: &mut Context) -> Result<()> {
///     ctx.set("greeting", "hello")?;
///     Ok(())
/// }
///
/// chatflow_sdk::code_block!(run);
/// # fn main() {}
/// ```
///
/// # Without the panic hook
///
/// `code_block!(run, panic_message = false)` skips the panic hook: a panic
/// then ends the run with a bare trap (`unreachable`) and no message. It
/// makes the module about 17 KiB smaller (the formatting code for the
/// message) and saves a few microseconds per run in a block that does
/// almost nothing (installing the hook writes to a memory page a fresh
/// instance has not touched yet). A block that does real work touches
/// those pages anyway; keep the hook unless you measured a reason not to.
///
/// # Allocator
///
/// Every run of a Code block is a fresh instance whose memory is thrown
/// away afterwards, so by default the block allocates with
/// [`alloc::BumpAllocator`], which never reuses memory freed in the middle
/// of a run (the most recent allocation excepted) and is much cheaper than
/// a general-purpose allocator: a small block's run takes about 40 % less
/// time and a large JSON parse about 12 % less (`docs/benchmarks.md`). The
/// price is that a block's peak memory is what it allocates in total
/// during the run. A block that churns through many large temporary values
/// (hundreds of pages of an API, each parsed and dropped) should use Rust's
/// standard allocator instead:
///
/// ```no_run
/// # use chatflow_sdk::{Context, Result};
/// # fn run(_: &mut Context) -> Result<()> { Ok(()) }
/// chatflow_sdk::code_block!(run, allocator = std);
/// # fn main() {}
/// ```
///
/// `allocator = std` also leaves the choice to the crate (its own
/// `#[global_allocator]`). Either way, a block that runs out of memory ends
/// with the memory limit error. Both options combine:
/// `code_block!(run, panic_message = false, allocator = std)`.
#[macro_export]
macro_rules! code_block {
    ($run:path) => {
        $crate::code_block!($run, panic_message = true, allocator = bump);
    };
    ($run:path, panic_message = $hook:literal) => {
        $crate::code_block!($run, panic_message = $hook, allocator = bump);
    };
    ($run:path, allocator = $alloc:ident) => {
        $crate::code_block!($run, panic_message = true, allocator = $alloc);
    };
    ($run:path, allocator = $alloc:ident, panic_message = $hook:literal) => {
        $crate::code_block!($run, panic_message = $hook, allocator = $alloc);
    };
    ($run:path, panic_message = $hook:literal, allocator = $alloc:ident) => {
        $crate::__global_allocator!($alloc);

        #[cfg(target_arch = "wasm32")]
        #[unsafe(no_mangle)]
        pub extern "C" fn chatflow_run() -> i32 {
            $crate::__private::run($run, $hook)
        }

        #[cfg(target_arch = "wasm32")]
        #[unsafe(no_mangle)]
        pub extern "C" fn chatflow_abi_v1() {}

        // Off wasm32: a compile-time check of `run`'s signature (it also
        // keeps `run` from being reported as unused in host builds).
        #[cfg(not(target_arch = "wasm32"))]
        const _: fn(&mut $crate::Context) -> $crate::Result<()> = $run;
        #[cfg(not(target_arch = "wasm32"))]
        const _: bool = $hook;
    };
}

/// Used by [`code_block!`]: the module's global allocator; not part of the
/// API.
#[doc(hidden)]
#[macro_export]
macro_rules! __global_allocator {
    (bump) => {
        #[cfg(target_arch = "wasm32")]
        #[global_allocator]
        static CHATFLOW_ALLOCATOR: $crate::alloc::BumpAllocator =
            $crate::alloc::BumpAllocator::new();
    };
    (std) => {};
    ($other:ident) => {
        ::core::compile_error!(::core::concat!(
            "unknown allocator `",
            ::core::stringify!($other),
            "`: write `allocator = bump` (the default) or `allocator = std`"
        ));
    };
}

/// Used by [`code_block!`]; not part of the API.
#[doc(hidden)]
pub mod __private {
    use crate::{Context, Result, sys};

    /// The body of `chatflow_run`. `panic_hook` is a literal at every call
    /// site, so with `false` the hook and its formatting code are not linked.
    #[inline(always)]
    pub fn run<F: FnOnce(&mut Context) -> Result<()>>(block: F, panic_hook: bool) -> i32 {
        // (A non-capturing closure: the Box does not allocate.)
        #[cfg(target_arch = "wasm32")]
        if panic_hook {
            std::panic::set_hook(Box::new(|info| sys::fail(&panic_message(info))));
        }
        #[cfg(not(target_arch = "wasm32"))]
        let _ = panic_hook; // the test host installs its own, see `testing`
        let mut ctx = Context::new();
        match block(&mut ctx) {
            Ok(()) => 0,
            Err(err) => {
                sys::fail(&err.to_string());
                1
            }
        }
    }

    /// `panicked at src/lib.rs:12:5: the message`, the failure message of a
    /// panicking block.
    pub fn panic_message(info: &std::panic::PanicHookInfo<'_>) -> String {
        let payload = info
            .payload_as_str()
            .unwrap_or("(a non-string panic payload)");
        match info.location() {
            Some(at) => format!(
                "panicked at {}:{}:{}: {payload}",
                at.file(),
                at.line(),
                at.column()
            ),
            None => format!("panicked: {payload}"),
        }
    }
}

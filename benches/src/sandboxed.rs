//! Running the bench guests in the engine's sandbox, as the benches do:
//! one [`Sandbox`] per variant, a fresh instance per run (what production
//! does), and answers checked against native before anything is timed.

use chatflow_engine::Properties;
use chatflow_engine::net::{HttpClient, NetPolicy};
use chatflow_engine::sandbox::{CodeModule, Limits, Output, Sandbox, SandboxConfig};
use serde::de::DeserializeOwned;

/// How the sandbox guards a run; one bench variant each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// `sandbox`: the engine's defaults, every limit on (fuel metering,
    /// memory, wall time through epoch interruption).
    Fuel,
    /// `sandbox-epoch`: fuel metering off (the operator option
    /// `SandboxConfig::fuel_metering = false`); runs are bounded by wall
    /// time and memory only.
    Epoch,
}

impl Guard {
    /// The variant's name in the bench output.
    pub fn variant(self) -> &'static str {
        match self {
            Guard::Fuel => "sandbox",
            Guard::Epoch => "sandbox-epoch",
        }
    }

    /// The sandbox configuration of this variant: the defaults, with fuel
    /// metering off for [`Guard::Epoch`].
    pub fn config(self) -> SandboxConfig {
        SandboxConfig::default().with_fuel_metering(self == Guard::Fuel)
    }
}

/// A sandbox and the limits its runs get, with helpers that fail loudly.
pub struct Bench {
    /// The sandbox.
    pub sandbox: Sandbox,
    /// The limits of every run: the sandbox's defaults.
    pub limits: Limits,
    rt: tokio::runtime::Runtime,
}

impl Bench {
    /// A sandbox with `config`, whose guests may reach loopback addresses
    /// (the benches' HTTP servers), and a current-thread runtime to drive
    /// runs one at a time.
    pub fn new(config: SandboxConfig) -> Bench {
        crate::warn_about_environment();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let http = rt
            .block_on(async { HttpClient::new(loopback_policy()) })
            .expect("HTTP client");
        let sandbox = Sandbox::new(config, http).expect("sandbox");
        let limits = sandbox.default_limits();
        Bench {
            sandbox,
            limits,
            rt,
        }
    }

    /// [`Bench::new`] for a guard variant.
    pub fn guarded(guard: Guard) -> Bench {
        Bench::new(guard.config())
    }

    /// Loads (compiles) the module at `path`, a `chatflow_test_artifacts`
    /// constant.
    pub fn load(&self, path: &str) -> CodeModule {
        let wasm = std::fs::read(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        self.sandbox
            .load(&wasm)
            .unwrap_or_else(|e| panic!("loading {path}: {e}"))
    }

    /// The runtime runs are driven on.
    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self.rt
    }

    /// One run, fresh instance; `Some` with the output when it succeeded.
    /// Nothing is checked, so a timed loop pays only for the run (and for
    /// dropping its outcome).
    #[inline]
    pub fn run(&self, module: &CodeModule, props: &Properties) -> Option<Output> {
        self.rt
            .block_on(self.sandbox.run(module, props, &self.limits))
            .result
            .ok()
    }

    /// One run that must succeed; panics with the run's error otherwise.
    pub fn run_ok(&self, module: &CodeModule, props: &Properties) -> Output {
        let outcome = self
            .rt
            .block_on(self.sandbox.run(module, props, &self.limits));
        match outcome.result {
            Ok(output) => output,
            Err(err) => panic!(
                "the bench guest failed: {err} (logs: {:?}, message: {:?})",
                outcome.logs, outcome.fail_message
            ),
        }
    }
}

/// A network policy that lets guests and REST blocks reach loopback
/// addresses (every bench server listens on 127.0.0.1).
pub fn loopback_policy() -> NetPolicy {
    let mut policy = NetPolicy::default();
    policy.allow_loopback = true;
    policy
}

/// The property `name` a run set, parsed from JSON (the bench guests write
/// their summaries as JSON).
pub fn summary<T: DeserializeOwned>(output: &Output, name: &str) -> T {
    let text = match output.changes.get(name) {
        Some(Some(text)) => text,
        _ => panic!("the guest did not set property {name:?}"),
    };
    serde_json::from_str(text).unwrap_or_else(|e| panic!("property {name:?}: {e}: {text}"))
}

/// The value property `name` was set to, if any.
pub fn property<'a>(output: &'a Output, name: &str) -> Option<&'a str> {
    output.changes.get(name).flatten()
}

//! [`Engine`]: what an operator embeds. It owns what every conversation
//! shares: the HTTP client (connection pool and network policy), the
//! sandbox (wasmtime engine, module cache, pooled instances) and the limits.
//!
//! Every public method of [`Engine`] is here. The work is done by the
//! parts it owns, each handed only what it needs: a
//! [`FlowLoader`] borrows the sandbox and the network policy, the flow
//! runner (`flow/runner.rs`) the HTTP client, the sandbox and the step
//! limit. Nothing under `flow/` depends on this file.

use std::path::Path;
use std::sync::Arc;

use crate::flow::{Conversation, Flow, FlowError, FlowLoader, Runner, Turn};
use crate::net::{Egress, HttpClient, NetPolicy, PolicyError};
use crate::properties::Properties;
use crate::sandbox::{self, Sandbox, SandboxConfig};

/// How an [`Engine`] is set up. Every field has a default suited to running
/// untrusted flows (no loopback or private addresses, default limits).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    /// The network policy both blocks' HTTP goes through.
    ///
    /// By default: any public host, no loopback or private addresses.
    pub net: NetPolicy,
    /// The Code block sandbox: limits (defaults and maximums), pooling,
    /// module cache.
    ///
    /// By default [`SandboxConfig::default`].
    pub sandbox: SandboxConfig,
    /// The most blocks one [`Engine::run`] executes before it stops the
    /// conversation with [`crate::flow::StopError::StepLimit`] (a loop in
    /// the flow). An `input` block resets the count: waiting for the user
    /// is not a loop.
    ///
    /// By default 1000.
    pub max_steps: u32,
    /// The operator's egress for both blocks' HTTP
    /// ([`HttpClient::with_egress`]); by default the engine's own client
    /// (the `reqwest` feature; without it an egress is required).
    pub egress: Option<Arc<dyn Egress>>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            net: NetPolicy::default(),
            sandbox: SandboxConfig::default(),
            max_steps: 1000,
            egress: None,
        }
    }
}

impl EngineConfig {
    /// Sets the network policy.
    pub fn with_net(mut self, net: NetPolicy) -> Self {
        self.net = net;
        self
    }

    /// Sets the sandbox configuration.
    pub fn with_sandbox(mut self, sandbox: SandboxConfig) -> Self {
        self.sandbox = sandbox;
        self
    }

    /// Sends both blocks' HTTP through `egress` (see [`crate::net::Egress`]
    /// for what it takes on).
    pub fn with_egress(mut self, egress: Arc<dyn Egress>) -> Self {
        self.egress = Some(egress);
        self
    }

    /// Sets the step limit.
    pub fn with_max_steps(mut self, steps: u32) -> Self {
        self.max_steps = steps;
        self
    }
}

/// Why an [`Engine`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The network policy is invalid.
    #[error("network policy: {0}")]
    Net(#[from] PolicyError),
    /// The sandbox configuration is invalid or wasmtime refused it.
    #[error("sandbox: {0}")]
    Sandbox(#[from] sandbox::ConfigError),
    /// The engine was built without the `reqwest` feature (no default
    /// egress) and [`EngineConfig::egress`] is `None`.
    #[error("no egress: enable the `reqwest` feature or set one with EngineConfig::with_egress")]
    NoEgress,
}

/// The engine an operator embeds: load flows, start conversations, run
/// them. `Send + Sync`; share one per process (clone is cheap).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    config: EngineConfig,
    http: HttpClient,
    sandbox: Arc<Sandbox>,
}

impl Engine {
    /// Builds an engine: one HTTP client, one sandbox.
    ///
    /// Without the `reqwest` feature, fails with [`EngineError::NoEgress`]
    /// unless the config has an egress.
    pub fn new(config: EngineConfig) -> Result<Engine, EngineError> {
        let http = match &config.egress {
            Some(egress) => HttpClient::with_egress(config.net.clone(), egress.clone())?,
            #[cfg(feature = "reqwest")]
            None => HttpClient::new(config.net.clone())?,
            #[cfg(not(feature = "reqwest"))]
            None => return Err(EngineError::NoEgress),
        };
        let sandbox = Sandbox::new(config.sandbox.clone(), http.clone())?;
        Ok(Engine {
            inner: Arc::new(Inner {
                config,
                http,
                sandbox: Arc::new(sandbox),
            }),
        })
    }

    /// The configuration the engine was built with.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// The shared HTTP client (for running a REST API block by hand).
    pub fn http(&self) -> &HttpClient {
        &self.inner.http
    }

    /// The shared sandbox (for running a Code block by hand).
    pub fn sandbox(&self) -> &Arc<Sandbox> {
        &self.inner.sandbox
    }

    /// A loader with options (module directory, modules supplied as bytes).
    pub fn flow_loader(&self) -> FlowLoader<'_> {
        FlowLoader::new(&self.inner.sandbox, self.inner.http.policy())
    }

    /// Loads and validates the flow file at `path`; Code block modules are
    /// read relative to the file's directory.
    pub fn load_flow(&self, path: impl AsRef<Path>) -> Result<Flow, FlowError> {
        self.flow_loader().load_file(path)
    }

    /// Starts a conversation on `flow` with the given initial properties.
    /// Nothing runs until [`Engine::run`].
    pub fn start(&self, flow: &Flow, properties: Properties) -> Conversation {
        Conversation::new(flow, properties)
    }

    /// Runs `conversation` until the flow ends, an `input` block waits for
    /// an answer, or a block stops it. Call again after
    /// [`Conversation::answer`] to resume. A finished conversation returns
    /// at once with an empty turn.
    ///
    /// # Dropping the future
    ///
    /// Dropping the returned future (a caller's timeout, a client gone)
    /// cancels the block in progress: a Code block stops promptly and a
    /// REST API block's request is abandoned, and nothing the block wrote
    /// is committed. The conversation is left *at that block*
    /// ([`Position::At`](crate::flow::Position::At)), with the properties
    /// committed by the blocks before it, so running it again runs that
    /// block again. External calls are therefore **at least once**: a
    /// request the dropped block had already sent may have reached its
    /// server, and the re-run sends it again. Messages of the dropped turn
    /// are lost with its [`Turn`] (blocks before the interrupted one are
    /// not re-run, so their messages are not shown again). See
    /// `docs/flow-format.md`, "Interrupted turns".
    pub async fn run(&self, flow: &Flow, conversation: &mut Conversation) -> Turn {
        let inner = &*self.inner;
        Runner::new(&inner.http, &inner.sandbox, inner.config.max_steps)
            .run(flow, conversation)
            .await
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::net::{Egress, EgressFuture, EgressRequest, EgressResponse, StatusCode};

    use super::*;

    /// An egress that answers every request with an empty 204.
    struct NoContent;

    impl Egress for NoContent {
        fn send(&self, _request: EgressRequest) -> EgressFuture<'_> {
            Box::pin(async { Ok(EgressResponse::new(StatusCode::NO_CONTENT, Vec::new())) })
        }
    }

    #[test]
    fn an_operator_egress_builds_an_engine_with_or_without_reqwest() {
        let config = EngineConfig::default().with_egress(Arc::new(NoContent));
        assert!(Engine::new(config).is_ok());
    }

    /// Only compiled when nothing in the build turns `reqwest` on (`cargo
    /// test -p chatflow-engine --lib --no-default-features`, which
    /// `.ci/run` runs).
    #[cfg(not(feature = "reqwest"))]
    #[test]
    fn without_reqwest_an_engine_needs_an_egress() {
        let err = Engine::new(EngineConfig::default()).unwrap_err();
        assert!(matches!(err, EngineError::NoEgress), "{err:?}");
        assert_eq!(
            err.to_string(),
            "no egress: enable the `reqwest` feature or set one with EngineConfig::with_egress"
        );
    }
}

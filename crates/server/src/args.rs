//! [`ServeArgs`]: the command line of `chatflow serve` (feature `clap`),
//! shared by the CLI and this crate's `serve` example.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chatflow_engine::EngineConfig;
use chatflow_engine::net::{NetPolicy, PolicyError};
use chatflow_engine::sandbox::SandboxConfig;

use crate::config::ServeConfig;

/// The environment variable holding bearer tokens (one, or several
/// separated by commas), as an alternative to `--token-file`.
pub const TOKEN_ENV: &str = "CHATFLOW_TOKEN";

const EXAMPLES: &str = "\
Examples:
  # One machine, an SQLite file, the example flows against the demo API
  chatflow serve --flows examples/flows --modules /tmp/modules \\
      --allow-host demo.chatflow.test --allow-loopback \\
      --resolve demo.chatflow.test=127.0.0.1:8081

  # A replica of several, on PostgreSQL, reachable from the network
  CHATFLOW_STORE=postgres://chatflow:secret@db/chatflow \\
      chatflow serve --listen 0.0.0.0:8080 --token-file /etc/chatflow/tokens

Tokens: --token-file (one per line; blank lines and # comments ignored) and
CHATFLOW_TOKEN (comma-separated); each at least 16 bytes. Without a token the
server listens on loopback only.

Stops on SIGTERM or Ctrl-C: no new requests, turns in flight finish (up to
--shutdown-grace), then exit.";

/// Serve the engine over HTTP, with conversations kept in SQLite or
/// PostgreSQL.
#[derive(Debug, Clone, clap::Args)]
#[command(after_long_help = EXAMPLES)]
#[non_exhaustive]
pub struct ServeArgs {
    /// The address to listen on. Anything but loopback needs a token.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where conversations, flows and modules are kept: `sqlite:PATH`
    /// (created if missing) or `postgres://user:password@host/db` (use the
    /// environment variable to keep the password out of the process list).
    #[arg(
        long,
        env = "CHATFLOW_STORE",
        hide_env_values = true,
        value_name = "sqlite:PATH|postgres://…",
        default_value = "sqlite:chatflow.db"
    )]
    pub store: String,
    /// Flow files (`*.json`) to store at start, each under its file name
    /// without `.json`. Module paths in them resolve against `--modules`.
    #[arg(long, value_name = "DIR")]
    pub flows: Option<PathBuf>,
    /// Code block modules (`*.wasm`) to upload at start.
    #[arg(long, value_name = "DIR")]
    pub modules: Option<PathBuf>,
    /// Bearer tokens, one per line.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Which hosts and addresses requests may reach.
    #[command(flatten)]
    pub net: NetArgs,
    /// Stop a turn after this many blocks (a flow that loops).
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub max_steps: u32,
    /// The largest JSON request body, in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// How long a replica's lease on a conversation lasts without renewal,
    /// in seconds: how soon another replica continues after a crash.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub lease_ttl: f64,
    /// On shutdown, how long turns in flight may take to finish, in
    /// seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    pub shutdown_grace: f64,
    /// Keep compiled modules in this directory between restarts.
    #[arg(long, value_name = "DIR")]
    pub module_cache: Option<PathBuf>,
}

/// The network-policy flags of every command that makes HTTP requests
/// (`chatflow serve`, `run`, `rest`, `code`): which hosts and addresses the
/// REST API blocks and the Code blocks may reach.
#[derive(Debug, Clone, Default, clap::Args)]
#[non_exhaustive]
pub struct NetArgs {
    /// Allow requests to this host pattern: `api.example.com`,
    /// `*.example.com`, `127.0.0.1`, `[::1]:8080`. Repeatable. Without any,
    /// every host is allowed (public addresses only). An IP literal permits
    /// that exact address even if it is loopback or private.
    #[arg(long = "allow-host", value_name = "PATTERN")]
    pub allow_hosts: Vec<String>,
    /// Allow loopback addresses (127.0.0.0/8, ::1) for any allowed host.
    #[arg(long)]
    pub allow_loopback: bool,
    /// Allow private addresses (10/8, 172.16/12, 192.168/16, 100.64/10,
    /// fc00::/7). Link-local and cloud metadata addresses stay denied.
    #[arg(long)]
    pub allow_private: bool,
    /// Pin a host name to an address, like curl's --resolve:
    /// `api.example.com=10.0.0.5:8443`. The address is still checked
    /// against the rules above. Repeatable.
    #[arg(long = "resolve", value_name = "HOST=ADDR:PORT")]
    pub resolve: Vec<String>,
    /// Also trust the root certificates in this PEM file for https (an
    /// internal CA), besides the system's. Repeatable.
    #[arg(long = "tls-root-cert", value_name = "FILE")]
    pub tls_root_certs: Vec<PathBuf>,
}

impl NetArgs {
    /// The network policy these flags describe (defaults otherwise).
    ///
    /// # Errors
    ///
    /// [`ArgsError::AllowHost`], [`ArgsError::Resolve`],
    /// [`ArgsError::TlsRootCert`] (unreadable file) or
    /// [`ArgsError::TlsRoots`] (no certificate in it).
    pub fn policy(&self) -> Result<NetPolicy, ArgsError> {
        let mut policy = NetPolicy::default();
        for pattern in &self.allow_hosts {
            policy.allow_host(pattern).map_err(ArgsError::AllowHost)?;
        }
        policy.allow_loopback = self.allow_loopback;
        policy.allow_private = self.allow_private;
        for pin in &self.resolve {
            let bad = |reason: String| ArgsError::Resolve {
                pin: pin.clone(),
                reason,
            };
            let (host, addr) = pin
                .split_once('=')
                .ok_or_else(|| bad("expected HOST=ADDR:PORT".into()))?;
            let addr: SocketAddr = addr
                .parse()
                .map_err(|_| bad(format!("{addr:?} is not an address with a port")))?;
            policy
                .resolve
                .insert(host.trim().to_ascii_lowercase(), addr);
        }
        for path in &self.tls_root_certs {
            let pem = std::fs::read_to_string(path).map_err(|error| ArgsError::TlsRootCert {
                path: path.clone(),
                error,
            })?;
            policy.tls_root_certificates.push(pem);
        }
        if !self.tls_root_certs.is_empty() {
            policy.validate().map_err(ArgsError::TlsRoots)?;
        }
        Ok(policy)
    }
}

/// Why the arguments do not make a configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArgsError {
    /// An `--allow-host` pattern is invalid. (The policy error is part of
    /// the message, not a `source`, so a printed chain says it once; the
    /// same for the other variants.)
    #[error("--allow-host: {0}")]
    AllowHost(PolicyError),
    /// A `--resolve` value is not `HOST=ADDR:PORT`.
    #[error("--resolve {pin:?}: {reason}")]
    Resolve {
        /// The value given.
        pin: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `--tls-root-cert` file cannot be read.
    #[error("--tls-root-cert {}: {error}", path.display())]
    TlsRootCert {
        /// The file.
        path: PathBuf,
        /// The OS error.
        error: std::io::Error,
    },
    /// The `--tls-root-cert` files hold no usable certificate.
    #[error("--tls-root-cert: {0}")]
    TlsRoots(PolicyError),
    /// The token file cannot be read.
    #[error("--token-file {}: {source}", path.display())]
    TokenFile {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A duration is negative or not finite.
    #[error("--{name} {value}: expected a number of seconds")]
    Seconds {
        /// The flag.
        name: &'static str,
        /// The value.
        value: f64,
    },
}

impl ServeArgs {
    /// The tokens of `--token-file` and `CHATFLOW_TOKEN`.
    ///
    /// # Errors
    ///
    /// [`ArgsError::TokenFile`] if the file cannot be read.
    pub fn tokens(&self) -> Result<Vec<String>, ArgsError> {
        let mut tokens = Vec::new();
        if let Some(path) = &self.token_file {
            let text = std::fs::read_to_string(path).map_err(|source| ArgsError::TokenFile {
                path: path.clone(),
                source,
            })?;
            tokens.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from),
            );
        }
        if let Ok(env) = std::env::var(TOKEN_ENV) {
            tokens.extend(
                env.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(String::from),
            );
        }
        Ok(tokens)
    }

    /// The server configuration the arguments describe.
    ///
    /// # Errors
    ///
    /// Every [`ArgsError`].
    pub fn config(&self) -> Result<ServeConfig, ArgsError> {
        let mut sandbox = SandboxConfig::default();
        if let Some(dir) = &self.module_cache {
            sandbox = sandbox.with_cache_dir(dir);
        }
        let engine = EngineConfig::default()
            .with_net(self.net.policy()?)
            .with_sandbox(sandbox)
            .with_max_steps(self.max_steps);
        let mut config = ServeConfig::default()
            .with_listen(self.listen)
            .with_store(self.store.clone())
            .with_engine(engine)
            .with_tokens(self.tokens()?)
            .with_max_body_bytes(self.max_body_bytes)
            .with_lease_ttl(seconds("lease-ttl", self.lease_ttl)?)
            .with_shutdown_grace(seconds("shutdown-grace", self.shutdown_grace)?);
        if let Some(dir) = &self.flows {
            config = config.with_flows_dir(dir);
        }
        if let Some(dir) = &self.modules {
            config = config.with_modules_dir(dir);
        }
        Ok(config)
    }
}

fn seconds(name: &'static str, value: f64) -> Result<Duration, ArgsError> {
    Duration::try_from_secs_f64(value).map_err(|_| ArgsError::Seconds { name, value })
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn parse(args: &[&str]) -> Result<ServeArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied())).map(|c| c.serve)
    }

    #[test]
    fn arguments() {
        let args = parse(&[
            "--listen",
            "127.0.0.1:0",
            "--store",
            "sqlite:/tmp/x.db",
            "--allow-host",
            "demo.chatflow.test",
            "--allow-loopback",
            "--resolve",
            "demo.chatflow.test=127.0.0.1:9",
            "--lease-ttl",
            "0.5",
        ])
        .unwrap();
        let config = args.config().unwrap();
        assert_eq!(config.store, "sqlite:/tmp/x.db");
        assert_eq!(config.lease_ttl, Duration::from_millis(500));
        assert!(config.engine.net.allow_loopback);
        assert_eq!(
            config.engine.net.resolve.get("demo.chatflow.test"),
            Some(&"127.0.0.1:9".parse().unwrap())
        );
    }

    #[test]
    fn arguments_bad() {
        let resolve = parse(&["--resolve", "nohost"]).unwrap();
        assert!(matches!(resolve.config(), Err(ArgsError::Resolve { .. })));
        let port = parse(&["--resolve", "h=127.0.0.1"]).unwrap();
        let err = port.config().unwrap_err().to_string();
        assert_eq!(
            err,
            "--resolve \"h=127.0.0.1\": \"127.0.0.1\" is not an address with a port"
        );
        let roots = parse(&["--tls-root-cert", "/definitely/not/here.pem"]).unwrap();
        assert!(matches!(roots.config(), Err(ArgsError::TlsRootCert { .. })));
        let ttl = parse(&["--lease-ttl=-1"]).unwrap();
        assert!(matches!(
            ttl.config(),
            Err(ArgsError::Seconds {
                name: "lease-ttl",
                ..
            })
        ));
        let tokens = parse(&["--token-file", "/definitely/not/here"]).unwrap();
        assert!(matches!(tokens.tokens(), Err(ArgsError::TokenFile { .. })));
        assert!(parse(&["--listen", "nowhere"]).is_err());
    }
}

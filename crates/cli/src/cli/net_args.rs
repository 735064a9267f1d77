//! Network-policy flags shared by the commands that make HTTP requests.

use std::net::SocketAddr;

use anyhow::{Context as _, Result};
use chatflow_engine::net::NetPolicy;

/// Which hosts and addresses requests may reach.
#[derive(Debug, Clone, Default, clap::Args)]
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
    pub tls_root_certs: Vec<std::path::PathBuf>,
}

impl NetArgs {
    /// The network policy these flags describe (defaults otherwise).
    pub fn policy(&self) -> Result<NetPolicy> {
        let mut policy = NetPolicy::default();
        for pattern in &self.allow_hosts {
            policy.allow_host(pattern).context("--allow-host")?;
        }
        policy.allow_loopback = self.allow_loopback;
        policy.allow_private = self.allow_private;
        for pin in &self.resolve {
            let (host, addr) = pin
                .split_once('=')
                .with_context(|| format!("--resolve {pin:?}: expected HOST=ADDR:PORT"))?;
            let addr: SocketAddr = addr.parse().with_context(|| {
                format!("--resolve {pin:?}: {addr:?} is not an address with a port")
            })?;
            policy
                .resolve
                .insert(host.trim().to_ascii_lowercase(), addr);
        }
        for file in &self.tls_root_certs {
            let pem = std::fs::read_to_string(file)
                .with_context(|| format!("--tls-root-cert {}", file.display()))?;
            policy.tls_root_certificates.push(pem);
        }
        if !self.tls_root_certs.is_empty() {
            policy.validate().context("--tls-root-cert")?;
        }
        Ok(policy)
    }
}

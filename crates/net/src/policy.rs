//! [`NetPolicy`]: which URLs and addresses a block may reach, and the
//! limits on each request.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use url::{Host, Url};

use super::{DenyReason, InvalidRequest, NetError, redact_url};

/// The network policy shared by the REST API block and the Code block's
/// HTTP imports: where requests may go, and how long and how large they may
/// be.
///
/// The rules, in the order [`NetPolicy::check_url`] and the client's DNS
/// resolver apply them:
///
/// 1. **Scheme**: `http` and `https` only.
/// 2. **Allowed hosts**: when [`allowed_hosts`](Self::allowed_hosts) is
///    empty every host may be called (subject to rule 3); otherwise the
///    URL's host and port must match one of the patterns (see
///    [`HostPattern`]).
/// 3. **Addresses**: every address a request would connect to is
///    classified ([`AddressClass`]). Only [`AddressClass::Public`] is
///    allowed by default; [`allow_loopback`](Self::allow_loopback) and
///    [`allow_private`](Self::allow_private) open those two classes; every
///    other class (cloud metadata addresses, [`METADATA_ADDRESSES`], even
///    those inside a private or public range; link-local, unspecified,
///    multicast, broadcast, documentation, reserved) is always denied. For a host name the check runs on each
///    address DNS returns, inside the client's resolver, so the address
///    checked is the address connected to (DNS rebinding cannot slip
///    through); addresses that fail are dropped and the request is denied
///    if none is left. For an IP literal (`http://10.0.0.1/`, and every
///    spelling the URL parser turns into one: `http://2130706433/`,
///    `http://0x7f.1/`, `http://[::ffff:127.0.0.1]/`) the check runs before
///    anything is sent.
/// 4. **IP-literal exception**: a URL whose host is an IP literal that
///    matches an IP entry of the allowed hosts (`127.0.0.1`, `[::1]:8080`)
///    skips rule 3 for that exact address: the operator named it. This is
///    how tests and the demo reach a server on `127.0.0.1`. A host *name*
///    entry never bypasses rule 3: `localhost` in the list still needs
///    `allow_loopback`.
///
/// Timeouts and the response size cap have a default, used when a request
/// does not set its own, and an operator maximum that per-request values
/// are clamped to.
///
/// `NetPolicy` is `#[non_exhaustive]`: start from [`NetPolicy::default`]
/// and set the fields you need.
///
/// ```
/// use std::time::Duration;
/// use chatflow_net::NetPolicy;
///
/// let mut policy = NetPolicy::default();
/// policy.allow_host("api.example.com")?.allow_host("*.partner.example")?;
/// policy.timeout = Duration::from_secs(5);
/// policy.validate()?;
/// # Ok::<(), chatflow_net::PolicyError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct NetPolicy {
    /// Host patterns requests may go to; empty means any host (addresses
    /// are still checked). See [`HostPattern`] for the syntax.
    ///
    /// By default the list is empty.
    pub allowed_hosts: Vec<HostPattern>,
    /// Allow loopback addresses (`127.0.0.0/8`, `::1`, and their
    /// IPv4-mapped forms).
    ///
    /// By default this is `false`.
    pub allow_loopback: bool,
    /// Allow private addresses: RFC 1918 (`10/8`, `172.16/12`,
    /// `192.168/16`), carrier-grade NAT (`100.64/10`) and IPv6 unique local
    /// addresses (`fc00::/7`). Link-local addresses and the cloud metadata
    /// addresses inside these ranges (AWS's `fd00:ec2::254`, Alibaba's
    /// `100.100.100.200`…, see [`METADATA_ADDRESSES`]) stay denied.
    ///
    /// By default this is `false`.
    pub allow_private: bool,
    /// How long establishing a connection (TCP and TLS) may take. Applies
    /// to every request of the default egress (an [`Egress`](super::Egress)
    /// of the operator's makes its own connections, and gets only the total
    /// timeout); not overridable per request.
    ///
    /// By default this is 5 seconds.
    #[serde(rename = "connect_timeout_ms", with = "crate::serde_millis")]
    pub connect_timeout: Duration,
    /// Total time for one request, from sending to the last body byte, when
    /// the request does not set its own.
    ///
    /// By default this is 10 seconds.
    #[serde(rename = "timeout_ms", with = "crate::serde_millis")]
    pub timeout: Duration,
    /// The longest total timeout a request may ask for; longer requests are
    /// clamped to it.
    ///
    /// By default this is 60 seconds.
    #[serde(rename = "max_timeout_ms", with = "crate::serde_millis")]
    pub max_timeout: Duration,
    /// The response body cap, in bytes, when the request does not set its
    /// own. A body over the cap fails the request with
    /// [`NetError::BodyTooLarge`] as soon as the cap is crossed.
    ///
    /// By default this is 1 MiB.
    pub response_bytes: u64,
    /// The largest response body cap a request may ask for; larger caps are
    /// clamped to it.
    ///
    /// By default this is 16 MiB.
    pub max_response_bytes: u64,
    /// Fixed addresses for host names, like curl's `--resolve`: a request
    /// to a host listed here connects to the given address without asking
    /// DNS. The address is still checked against the address rules (a
    /// loopback address needs [`allow_loopback`](Self::allow_loopback)).
    /// When the URL has no explicit port, the address's port is used (port
    /// `0` means the scheme's default). Keys are lower-case host names.
    ///
    /// Operators use it to give flows a stable name for a service whose
    /// address is only known at deployment (the demo maps
    /// `demo.chatflow.test` to its loopback server this way).
    ///
    /// By default there are none.
    pub resolve: BTreeMap<String, SocketAddr>,
    /// Extra root certificates trusted for `https`, as PEM text (each entry
    /// one or more `-----BEGIN CERTIFICATE-----` blocks), in addition to the
    /// system's roots: for APIs whose certificates an internal CA signs.
    /// An entry with no certificate in it is refused by
    /// [`validate`](Self::validate); one whose certificate does not parse
    /// makes `HttpClient::new` fail. Only the default egress (the `reqwest`
    /// feature) uses them: an [`Egress`](super::Egress) of the operator's
    /// makes its own connections.
    ///
    /// By default there are none.
    pub tls_root_certificates: Vec<String>,
}

impl Default for NetPolicy {
    fn default() -> Self {
        NetPolicy {
            allowed_hosts: Vec::new(),
            allow_loopback: false,
            allow_private: false,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            max_timeout: Duration::from_secs(60),
            response_bytes: 1 << 20,
            max_response_bytes: 16 << 20,
            resolve: BTreeMap::new(),
            tls_root_certificates: Vec::new(),
        }
    }
}

/// Why a [`NetPolicy`] or [`HostPattern`] was refused, or the HTTP client
/// could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// An allowed-host pattern does not parse.
    #[error("allowed host {pattern:?}: {reason}")]
    HostPattern {
        /// The refused pattern.
        pattern: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A timeout or size limit is zero, or a default is above its maximum.
    #[error("network policy: {0}")]
    Limits(&'static str),
    /// An entry of [`NetPolicy::tls_root_certificates`] holds no PEM
    /// certificate.
    #[error("network policy: tls_root_certificates[{index}] holds no PEM certificate")]
    RootCertificate {
        /// The entry's position in the list.
        index: usize,
        /// Why reading it failed, if it was more than finding none.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The default egress's HTTP client could not be built (TLS
    /// initialisation with the extra roots); only `HttpClient::new`, with
    /// the `reqwest` feature, returns it.
    #[error("building the http client")]
    Client(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl NetPolicy {
    /// Adds a pattern to [`allowed_hosts`](Self::allowed_hosts).
    pub fn allow_host(&mut self, pattern: &str) -> Result<&mut Self, PolicyError> {
        self.allowed_hosts.push(pattern.parse()?);
        Ok(self)
    }

    /// Checks the limits (every timeout and cap is non-zero, and each
    /// default is at most its maximum) and that every
    /// [`tls_root_certificates`](Self::tls_root_certificates) entry holds a
    /// certificate. `HttpClient::new` and
    /// [`HttpClient::with_egress`](super::HttpClient::with_egress) call
    /// this.
    ///
    /// With the `reqwest` feature the certificates are parsed as the
    /// default egress will load them; without it (no TLS stack to parse
    /// them with), an entry must hold a `-----BEGIN CERTIFICATE-----` …
    /// `-----END CERTIFICATE-----` block.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let err = |msg| Err(PolicyError::Limits(msg));
        if self.connect_timeout.is_zero() {
            return err("connect_timeout_ms must be more than 0");
        }
        if self.timeout.is_zero() || self.max_timeout.is_zero() {
            return err("timeout_ms and max_timeout_ms must be more than 0");
        }
        if self.timeout > self.max_timeout {
            return err("timeout_ms is more than max_timeout_ms");
        }
        if self.response_bytes == 0 || self.max_response_bytes == 0 {
            return err("response_bytes and max_response_bytes must be more than 0");
        }
        if self.response_bytes > self.max_response_bytes {
            return err("response_bytes is more than max_response_bytes");
        }
        self.check_root_certificates()
    }

    #[cfg(feature = "reqwest")]
    fn check_root_certificates(&self) -> Result<(), PolicyError> {
        self.root_certificates().map(drop)
    }

    #[cfg(not(feature = "reqwest"))]
    fn check_root_certificates(&self) -> Result<(), PolicyError> {
        for (index, pem) in self.tls_root_certificates.iter().enumerate() {
            let block = pem
                .split_once("-----BEGIN CERTIFICATE-----")
                .is_some_and(|(_, rest)| rest.contains("-----END CERTIFICATE-----"));
            if !block {
                return Err(PolicyError::RootCertificate {
                    index,
                    source: None,
                });
            }
        }
        Ok(())
    }

    /// The certificates of [`tls_root_certificates`](Self::tls_root_certificates),
    /// each entry required to hold at least one.
    #[cfg(feature = "reqwest")]
    pub(crate) fn root_certificates(&self) -> Result<Vec<reqwest::Certificate>, PolicyError> {
        let mut all = Vec::new();
        for (index, pem) in self.tls_root_certificates.iter().enumerate() {
            match reqwest::Certificate::from_pem_bundle(pem.as_bytes()) {
                Ok(certs) if !certs.is_empty() => all.extend(certs),
                Ok(_) => {
                    return Err(PolicyError::RootCertificate {
                        index,
                        source: None,
                    });
                }
                Err(e) => {
                    return Err(PolicyError::RootCertificate {
                        index,
                        source: Some(Box::new(e)),
                    });
                }
            }
        }
        Ok(all)
    }

    /// The total timeout for a request that asks for `requested` (or for
    /// the default): clamped to [`max_timeout`](Self::max_timeout). A
    /// requested zero is [`InvalidRequest::ZeroTimeout`].
    pub fn effective_timeout(
        &self,
        requested: Option<Duration>,
    ) -> Result<Duration, InvalidRequest> {
        match requested {
            Some(t) if t.is_zero() => Err(InvalidRequest::ZeroTimeout),
            Some(t) => Ok(t.min(self.max_timeout)),
            None => Ok(self.timeout.min(self.max_timeout)),
        }
    }

    /// The response body cap for a request that asks for `requested` (or
    /// for the default): clamped to
    /// [`max_response_bytes`](Self::max_response_bytes). A requested zero is
    /// [`InvalidRequest::ZeroResponseBytes`].
    pub fn effective_response_bytes(&self, requested: Option<u64>) -> Result<u64, InvalidRequest> {
        match requested {
            Some(0) => Err(InvalidRequest::ZeroResponseBytes),
            Some(n) => Ok(n.min(self.max_response_bytes)),
            None => Ok(self.response_bytes.min(self.max_response_bytes)),
        }
    }

    /// Checks a URL against rules 1, 2 and 4 (and rule 3 for IP literals);
    /// see the [type docs](Self). A host name's addresses are checked
    /// later, by the client's resolver, on every connection.
    pub fn check_url(&self, url: &Url) -> Result<(), NetError> {
        let denied = |reason| NetError::Denied {
            url: redact_url(url),
            reason,
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Err(denied(DenyReason::Scheme {
                scheme: url.scheme().to_string(),
            }));
        }
        let Some(host) = url.host() else {
            return Err(InvalidRequest::NoHost.into());
        };
        let port = url.port_or_known_default().unwrap_or(0);
        let matched = self.allowed_hosts.iter().find(|p| p.matches(&host, port));
        if !self.allowed_hosts.is_empty() && matched.is_none() {
            return Err(denied(DenyReason::HostNotAllowed {
                host: host_port(&host, url.port()),
            }));
        }
        let ip = match host {
            Host::Ipv4(ip) => IpAddr::V4(ip),
            Host::Ipv6(ip) => IpAddr::V6(ip),
            Host::Domain(_) => return Ok(()),
        };
        if matched.is_some_and(|p| p.ip().is_some()) {
            // Rule 4: the operator listed this exact address.
            return Ok(());
        }
        self.check_address(ip).map_err(denied)
    }

    /// Checks one address against rule 3 (the class rules), as the DNS
    /// resolver does for each resolved address; an [`Egress`](super::Egress)
    /// that resolves names itself calls it on each address.
    pub fn check_address(&self, ip: IpAddr) -> Result<(), DenyReason> {
        AddressRules::from(self).check(ip)
    }
}

fn host_port(host: &Host<&str>, port: Option<u16>) -> String {
    match port {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

/// The part of the policy the DNS resolver needs, copied into it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AddressRules {
    pub(crate) allow_loopback: bool,
    pub(crate) allow_private: bool,
}

impl From<&NetPolicy> for AddressRules {
    fn from(p: &NetPolicy) -> Self {
        AddressRules {
            allow_loopback: p.allow_loopback,
            allow_private: p.allow_private,
        }
    }
}

impl AddressRules {
    pub(crate) fn check(self, ip: IpAddr) -> Result<(), DenyReason> {
        let class = classify(ip);
        let allowed = match class {
            AddressClass::Public => true,
            AddressClass::Loopback => self.allow_loopback,
            AddressClass::Private => self.allow_private,
            _ => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(DenyReason::Address { ip, class })
        }
    }
}

/// What kind of address an IP is, for the policy's address rules.
///
/// IPv6 forms that embed an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`,
/// IPv4-compatible `::a.b.c.d`, IPv4-translated `::ffff:0:a.b.c.d`, NAT64
/// `64:ff9b::a.b.c.d`, 6to4 `2002:aabb:ccdd::`) take the class of the IPv4
/// address they embed, so `[::ffff:127.0.0.1]` is loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AddressClass {
    /// Globally routable: allowed.
    Public,
    /// `127.0.0.0/8`, `::1`. Allowed with `allow_loopback`.
    Loopback,
    /// RFC 1918 `10/8`, `172.16/12`, `192.168/16`; CGNAT `100.64/10`;
    /// unique local `fc00::/7`. Allowed with `allow_private`.
    Private,
    /// A cloud provider's instance metadata, credentials or platform
    /// endpoint ([`METADATA_ADDRESSES`]: `169.254.169.254`,
    /// `fd00:ec2::254`, `168.63.129.16`, `100.100.100.200`…), whatever
    /// range it sits in. Always denied, whatever
    /// [`allow_private`](NetPolicy::allow_private) and
    /// [`allow_loopback`](NetPolicy::allow_loopback) say, unless the exact
    /// IP is an allowed host (rule 4 of [`NetPolicy`]).
    Metadata,
    /// `169.254/16`, `fe80::/10`, other than the metadata addresses. Always
    /// denied (unless the exact IP is an allowed host).
    LinkLocal,
    /// `0.0.0.0`, `::`. Always denied.
    Unspecified,
    /// `224/4`, `ff00::/8`. Always denied.
    Multicast,
    /// `255.255.255.255`. Always denied.
    Broadcast,
    /// Documentation ranges `192.0.2/24`, `198.51.100/24`, `203.0.113/24`,
    /// `2001:db8::/32`, `3fff::/20`. Always denied.
    Documentation,
    /// Other special-purpose ranges: `0/8`, `192.0.0/24`, `192.88.99/24`,
    /// benchmarking `198.18/15`, `240/4`; IPv6 discard `100::/64`,
    /// `2001::/23` (IETF protocol assignments, including Teredo), local
    /// NAT64 `64:ff9b:1::/48`, site-local `fec0::/10`, and everything
    /// outside global unicast `2000::/3`. Always denied.
    Reserved,
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressClass::Public => "public",
            AddressClass::Loopback => "loopback",
            AddressClass::Metadata => "a cloud metadata address",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Multicast => "multicast",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Documentation => "documentation",
            AddressClass::Reserved => "reserved",
        })
    }
}

/// Classifies an address for the policy's address rules.
pub fn classify(ip: IpAddr) -> AddressClass {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// Cloud instance-metadata, credentials and platform addresses: reaching
/// one from a cloud VM hands out the instance's credentials or talks to the
/// host's agent. [`classify`] puts them in [`AddressClass::Metadata`],
/// which no `allow_*` switch opens; their IPv4-mapped, IPv4-compatible,
/// NAT64 and 6to4 forms too. Each entry cites the provider's documentation.
///
/// Providers whose metadata service shares an address listed here:
/// Google Cloud, Azure IMDS, Oracle Cloud, DigitalOcean, Hetzner, Huawei
/// Cloud, IBM Cloud VPC, OpenStack, Vultr and Akamai (Linode) all serve
/// metadata on `169.254.169.254`. Tencent Cloud documents only the name
/// `metadata.tencentyun.com` (its address is in `169.254.0.0/16`,
/// link-local and denied anyway); names are checked on the addresses they
/// resolve to.
pub const METADATA_ADDRESSES: &[IpAddr] = &[
    // AWS EC2 IMDS, IPv4 and IPv6 (Nitro instances):
    // https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/instancedata-data-retrieval.html
    // The same IPv4 address serves Google Cloud
    // (https://cloud.google.com/compute/docs/metadata/overview), Azure IMDS
    // (https://learn.microsoft.com/azure/virtual-machines/instance-metadata-service),
    // Oracle Cloud (https://docs.oracle.com/iaas/Content/Compute/Tasks/gettingmetadata.htm),
    // DigitalOcean (https://docs.digitalocean.com/products/droplets/how-to/access-metadata/),
    // Huawei Cloud (https://support.huaweicloud.com/intl/en-us/usermanual-ecs/ecs_03_0166.html),
    // IBM Cloud VPC (https://cloud.ibm.com/apidocs/vpc-metadata),
    // OpenStack (https://docs.openstack.org/nova/latest/user/metadata.html)
    // and Hetzner (https://docs.cloud-init.io/en/latest/reference/datasources/hetzner.html).
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254)),
    // AWS ECS task metadata and task IAM role credentials
    // (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI):
    // https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-iam-roles.html
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2)),
    // AWS EKS Pod Identity Agent, IPv4 and IPv6:
    // https://docs.aws.amazon.com/eks/latest/userguide/pod-id-agent-setup.html
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 23)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0023)),
    // Google Cloud metadata server over IPv6, for IPv6-only instances
    // (https://cloud.google.com/compute/docs/metadata/overview). The one
    // entry whose page could not be re-read when this list was collected;
    // it is kept because it is the address Google's IPv6-only VMs use, and
    // a wrong entry would only deny one unique local address.
    IpAddr::V6(Ipv6Addr::new(0xfd20, 0x00ce, 0, 0, 0, 0, 0, 0x0254)),
    // Azure WireServer, a public-range address that fronts the host agent,
    // DHCP and DNS of every Azure VM:
    // https://learn.microsoft.com/azure/virtual-network/what-is-ip-address-168-63-129-16
    IpAddr::V4(Ipv4Addr::new(168, 63, 129, 16)),
    // Alibaba Cloud ECS metadata, inside carrier-grade NAT 100.64/10:
    // https://www.alibabacloud.com/help/en/ecs/user-guide/overview-of-ecs-instance-metadata
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    // Oracle Cloud IMDS over IPv6, as the OCI SDK's instance principals
    // signer calls it (oracle/oci-python-sdk,
    // src/oci/auth/signers/instance_principals_security_token_signer.py):
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x00c1, 0, 0, 0, 0, 0xa9fe, 0xa9fe)),
    // Oracle Cloud@Customer (and OCI Classic) metadata, inside 192.0.0/24:
    // https://docs.oracle.com/en/cloud/cloud-at-customer/occ-get-started/retrieve-predefined-instance-metadata.html
    IpAddr::V4(Ipv4Addr::new(192, 0, 0, 192)),
    // Scaleway instance metadata, IPv4 and IPv6:
    // https://www.scaleway.com/en/developers/api/instance/user-data/
    IpAddr::V4(Ipv4Addr::new(169, 254, 42, 42)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0x0042, 0, 0, 0, 0, 0, 0x0042)),
    // Akamai (Linode) metadata over IPv6, from Akamai's own cloud-init
    // datasource: https://docs.cloud-init.io/en/latest/reference/datasources/akamai.html
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xa9fe, 0xa9fe, 0, 0, 0, 0, 1)),
    // OpenStack metadata over IPv6 (link-local anyway):
    // https://specs.openstack.org/openstack/neutron-specs/specs/ussuri/metadata-add-ipv6-support.html
    IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0xa9fe, 0xa9fe)),
];

fn classify_v4(ip: Ipv4Addr) -> AddressClass {
    if METADATA_ADDRESSES.contains(&IpAddr::V4(ip)) {
        return AddressClass::Metadata;
    }
    let [a, b, c, _] = ip.octets();
    match (a, b, c) {
        _ if ip.is_unspecified() => AddressClass::Unspecified,
        _ if ip.is_broadcast() => AddressClass::Broadcast,
        (127, ..) => AddressClass::Loopback,
        (10, ..) | (192, 168, _) => AddressClass::Private,
        (172, 16..=31, _) => AddressClass::Private,
        (100, 64..=127, _) => AddressClass::Private,
        (169, 254, _) => AddressClass::LinkLocal,
        (224..=239, ..) => AddressClass::Multicast,
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => AddressClass::Documentation,
        (0, ..) | (192, 0, 0) | (192, 88, 99) | (198, 18..=19, _) | (240..=255, ..) => {
            AddressClass::Reserved
        }
        _ => AddressClass::Public,
    }
}

fn classify_v6(ip: Ipv6Addr) -> AddressClass {
    let s = ip.segments();
    let embedded =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if ip.is_unspecified() {
        return AddressClass::Unspecified;
    }
    if METADATA_ADDRESSES.contains(&IpAddr::V6(ip)) {
        return AddressClass::Metadata;
    }
    if ip.is_loopback() {
        return AddressClass::Loopback;
    }
    match s {
        // IPv4-mapped ::ffff:a.b.c.d and IPv4-compatible ::a.b.c.d.
        [0, 0, 0, 0, 0, 0xffff, hi, lo] | [0, 0, 0, 0, 0, 0, hi, lo] => {
            return classify_v4(embedded(hi, lo));
        }
        // IPv4-translated ::ffff:0:a.b.c.d.
        [0, 0, 0, 0, 0xffff, 0, hi, lo] => return classify_v4(embedded(hi, lo)),
        // NAT64 well-known prefix 64:ff9b::/96.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => return classify_v4(embedded(hi, lo)),
        // 6to4 2002:aabb:ccdd::/48: a public 6to4 address is public only if
        // the IPv4 address it embeds is.
        [0x2002, hi, lo, ..] => return classify_v4(embedded(hi, lo)),
        _ => {}
    }
    match s[0] {
        0xff00..=0xffff => AddressClass::Multicast,
        0xfe80..=0xfebf => AddressClass::LinkLocal,
        0xfc00..=0xfdff => AddressClass::Private,
        0x2001 if s[1] == 0x0db8 => AddressClass::Documentation,
        0x3fff if s[1] < 0x1000 => AddressClass::Documentation,
        0x2001 if s[1] < 0x0200 => AddressClass::Reserved,
        0x2000..=0x3fff => AddressClass::Public,
        _ => AddressClass::Reserved,
    }
}

/// One entry of [`NetPolicy::allowed_hosts`].
///
/// | pattern | matches |
/// |---|---|
/// | `api.example.com` | that host name exactly (ASCII case-insensitive, a trailing dot ignored; international names in their punycode form) |
/// | `*.example.com` | any subdomain at any depth (`a.example.com`, `a.b.example.com`), not `example.com` itself |
/// | `127.0.0.1`, `[::1]`, `::1` | that IP literal; it also lets the URL reach that exact address whatever its class |
/// | any of the above + `:port` | the same, on that port only (the URL's explicit port, or 80/443 by scheme) |
///
/// Unspecified, multicast and broadcast IPs are refused as patterns.
/// Serializes as its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    host: PatternHost,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PatternHost {
    Exact(String),
    /// The suffix after `*.`.
    Wildcard(String),
    Ip(IpAddr),
}

impl HostPattern {
    /// The IP address, if this pattern is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.host {
            PatternHost::Ip(ip) => Some(ip),
            _ => None,
        }
    }

    /// The port, if the pattern names one.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Whether `host` on `port` (the URL's port or its scheme's default)
    /// matches.
    pub fn matches<S: AsRef<str>>(&self, host: &Host<S>, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        match (&self.host, host) {
            (PatternHost::Exact(want), Host::Domain(got)) => got
                .as_ref()
                .trim_end_matches('.')
                .eq_ignore_ascii_case(want),
            (PatternHost::Wildcard(suffix), Host::Domain(got)) => {
                // Compared as bytes: a host handed in as `Host::Domain` may
                // hold any text (the URL parser's are ASCII, a caller's need
                // not be), and slicing a `str` at a byte offset inside a
                // multi-byte character would panic.
                let got = got.as_ref().trim_end_matches('.').as_bytes();
                let suffix = suffix.as_bytes();
                got.len() > suffix.len() + 1
                    && got[got.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
                    && got[got.len() - suffix.len() - 1] == b'.'
            }
            (PatternHost::Ip(IpAddr::V4(want)), Host::Ipv4(got)) => want == got,
            (PatternHost::Ip(IpAddr::V6(want)), Host::Ipv6(got)) => want == got,
            _ => false,
        }
    }
}

impl FromStr for HostPattern {
    type Err = PolicyError;

    fn from_str(pattern: &str) -> Result<Self, Self::Err> {
        let bad = |reason| PolicyError::HostPattern {
            pattern: pattern.to_string(),
            reason,
        };
        let (host, port) = if let Some(rest) = pattern.strip_prefix('[') {
            let (inside, after) = rest
                .split_once(']')
                .ok_or_else(|| bad("missing ] after the IPv6 address"))?;
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| bad("expected :port after ]"))?,
                ),
            };
            let ip: Ipv6Addr = inside.parse().map_err(|_| bad("invalid IPv6 address"))?;
            (PatternHost::Ip(IpAddr::V6(ip)), port)
        } else if pattern.matches(':').count() > 1 {
            let ip: Ipv6Addr = pattern.parse().map_err(|_| bad("invalid IPv6 address"))?;
            (PatternHost::Ip(IpAddr::V6(ip)), None)
        } else {
            let (host, port) = match pattern.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (pattern, None),
            };
            let host = match host.strip_prefix("*.") {
                Some(suffix) => match Host::parse(suffix) {
                    Ok(Host::Domain(d)) => match canonical_name(&d) {
                        Some(name) => PatternHost::Wildcard(name),
                        None => return Err(bad("invalid host name after *.")),
                    },
                    Ok(_) => return Err(bad("a wildcard must be followed by a host name")),
                    Err(_) => return Err(bad("invalid host name after *.")),
                },
                None => match Host::parse(host) {
                    _ if host.contains('*') => {
                        return Err(bad(
                            "* is only allowed as the first label, as in *.example.com",
                        ));
                    }
                    Ok(Host::Domain(d)) => match canonical_name(&d) {
                        Some(name) => PatternHost::Exact(name),
                        None => return Err(bad("invalid host name")),
                    },
                    Ok(Host::Ipv4(ip)) => PatternHost::Ip(IpAddr::V4(ip)),
                    Ok(Host::Ipv6(ip)) => PatternHost::Ip(IpAddr::V6(ip)),
                    Err(_) => return Err(bad("invalid host name")),
                },
            };
            (host, port)
        };
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => return Err(bad("invalid port")),
                Ok(p) => Some(p),
            },
        };
        if let PatternHost::Ip(ip) = host {
            match classify(ip) {
                AddressClass::Unspecified => {
                    return Err(bad("the unspecified address cannot be allowed"));
                }
                AddressClass::Multicast | AddressClass::Broadcast => {
                    return Err(bad("multicast and broadcast addresses cannot be allowed"));
                }
                _ => {}
            }
        }
        Ok(HostPattern { host, port })
    }
}

/// A parsed host name without its root dots, if that is itself a name the
/// URL parser keeps as it is and holds no `*`: `.` and `..` leave nothing,
/// `0..` leaves `0` (an IP address once parsed again), `a。` maps to `a.`,
/// `﹡` to `*`. Refusing these keeps every pattern printable as text that
/// parses back to it (the property test `patterns_never_panic` found them).
fn canonical_name(parsed: &str) -> Option<String> {
    let name = parsed.trim_end_matches('.');
    match Host::parse(name) {
        Ok(Host::Domain(again)) if !name.is_empty() && !name.contains('*') && again == name => {
            Some(again)
        }
        _ => None,
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            PatternHost::Exact(h) => f.write_str(h)?,
            PatternHost::Wildcard(h) => write!(f, "*.{h}")?,
            PatternHost::Ip(IpAddr::V4(ip)) => write!(f, "{ip}")?,
            PatternHost::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
        }
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

impl Serialize for HostPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HostPattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn classes() {
        use AddressClass::*;
        let cases = [
            ("8.8.8.8", Public),
            ("1.1.1.1", Public),
            ("100.63.255.255", Public),
            ("100.128.0.0", Public),
            ("172.15.0.1", Public),
            ("172.32.0.1", Public),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("10.0.0.1", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("100.64.0.1", Private),
            ("169.254.169.254", Metadata),
            ("169.254.169.253", LinkLocal),
            ("169.254.170.2", Metadata),
            ("168.63.129.16", Metadata),
            ("168.63.129.17", Public),
            ("100.100.100.200", Metadata),
            ("100.100.100.201", Private),
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", Reserved),
            ("224.0.0.1", Multicast),
            ("239.255.255.255", Multicast),
            ("255.255.255.255", Broadcast),
            ("240.0.0.1", Reserved),
            ("192.0.0.8", Reserved),
            ("198.18.0.1", Reserved),
            ("192.0.2.1", Documentation),
            ("203.0.113.9", Documentation),
            ("2606:4700::1111", Public),
            ("2a00:1450:4009:81f::200e", Public),
            ("::1", Loopback),
            ("::", Unspecified),
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:7f00:1", Loopback),
            ("::ffff:8.8.8.8", Public),
            ("::ffff:169.254.169.254", Metadata),
            ("::ffff:169.254.1.1", LinkLocal),
            ("::ffff:10.0.0.1", Private),
            ("::127.0.0.1", Loopback),
            ("::ffff:0:127.0.0.1", Loopback),
            ("64:ff9b::127.0.0.1", Loopback),
            ("64:ff9b::a9fe:a9fe", Metadata),
            ("64:ff9b::a9fe:101", LinkLocal),
            ("fd00:ec2::254", Metadata),
            ("fd00:ec2::255", Private),
            ("fe80::a9fe:a9fe", Metadata),
            ("64:ff9b::8.8.8.8", Public),
            ("64:ff9b:1::1", Reserved),
            ("2002:7f00:1::", Loopback),
            ("2002:808:808::1", Public),
            ("fc00::1", Private),
            ("fd12:3456::1", Private),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fec0::1", Reserved),
            ("ff02::1", Multicast),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("2001::1", Reserved),
            ("100::1", Reserved),
            ("4000::1", Reserved),
        ];
        for (addr, want) in cases {
            assert_eq!(classify(ip(addr)), want, "{addr}");
        }
    }

    #[test]
    fn address_rules() {
        let strict = AddressRules {
            allow_loopback: false,
            allow_private: false,
        };
        let open = AddressRules {
            allow_loopback: true,
            allow_private: true,
        };
        assert_eq!(strict.check(ip("8.8.8.8")), Ok(()));
        for denied in ["127.0.0.1", "10.0.0.1", "::ffff:127.0.0.1", "fd00::1"] {
            assert!(strict.check(ip(denied)).is_err(), "{denied}");
            assert_eq!(open.check(ip(denied)), Ok(()), "{denied}");
        }
        for always in [
            "169.254.169.254",
            "fe80::1",
            "0.0.0.0",
            "::",
            "224.0.0.1",
            "255.255.255.255",
        ] {
            assert_eq!(
                open.check(ip(always)),
                Err(DenyReason::Address {
                    ip: ip(always),
                    class: classify(ip(always)),
                }),
                "{always}"
            );
        }
    }

    /// Every metadata address, in every spelling the classifier unwraps,
    /// is denied with every switch open; its neighbours follow their range.
    #[test]
    fn metadata_addresses() {
        let open = AddressRules {
            allow_loopback: true,
            allow_private: true,
        };
        let v4_forms = |v4: Ipv4Addr| {
            let [a, b, c, d] = v4.octets();
            let (hi, lo) = (u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]));
            [
                IpAddr::V4(v4),
                IpAddr::V6(v4.to_ipv6_mapped()),
                IpAddr::V6(v4.to_ipv6_compatible()),
                IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, hi, lo)),
                IpAddr::V6(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, hi, lo)),
                IpAddr::V6(Ipv6Addr::new(0x2002, hi, lo, 0, 0, 0, 0, 1)),
            ]
        };
        let mut forms = Vec::new();
        for &ip in METADATA_ADDRESSES {
            match ip {
                IpAddr::V4(v4) => forms.extend(v4_forms(v4)),
                IpAddr::V6(_) => forms.push(ip),
            }
        }
        assert!(forms.len() > 40, "{}", forms.len());
        for ip in forms {
            assert_eq!(classify(ip), AddressClass::Metadata, "{ip}");
            assert_eq!(
                open.check(ip),
                Err(DenyReason::Address {
                    ip,
                    class: AddressClass::Metadata
                }),
                "{ip}"
            );
        }
    }

    /// The ones `allow_private` used to open, and the one the default
    /// policy used to allow (Azure's WireServer is a public address).
    #[test]
    fn metadata_addresses_bad() {
        let url = |s: &str| Url::parse(s).unwrap();
        let open = NetPolicy {
            allow_loopback: true,
            allow_private: true,
            ..NetPolicy::default()
        };
        for u in [
            "http://[fd00:ec2::254]/latest/meta-data/",
            "http://100.100.100.200/latest/meta-data/",
            "http://[::ffff:100.100.100.200]/",
            "http://[64:ff9b::6464:64c8]/",
            "http://168.63.129.16/machine?comp=goalstate",
            "http://[2002:a83f:8110::1]/",
            "http://[fd20:ce::254]/computeMetadata/v1/",
            "http://[fd00:ec2::23]/v1/credentials",
            "http://1684301000/",
        ] {
            match open.check_url(&url(u)) {
                Err(NetError::Denied {
                    reason:
                        DenyReason::Address {
                            class: AddressClass::Metadata,
                            ..
                        },
                    ..
                }) => {}
                other => panic!("{u}: expected a metadata denial, got {other:?}"),
            }
        }
        // Rule 4: the operator may still name one exact address.
        let mut named = open.clone();
        named.allow_host("[fd00:ec2::254]").unwrap();
        assert!(named.check_url(&url("http://[fd00:ec2::254]/")).is_ok());
        assert!(named.check_url(&url("http://[fd00:ec2::23]/")).is_err());
    }

    #[test]
    fn patterns() {
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, u16)], &'a [(&'a str, u16)]);
        let cases: &[Case<'_>] = &[
            (
                "api.example.com",
                "api.example.com",
                &[
                    ("api.example.com", 443),
                    ("API.Example.COM", 80),
                    ("api.example.com.", 1),
                ],
                &[
                    ("example.com", 443),
                    ("x.api.example.com", 443),
                    ("api.example.co", 443),
                ],
            ),
            (
                "*.Example.com",
                "*.example.com",
                &[("a.example.com", 443), ("a.b.example.com", 80)],
                &[
                    ("example.com", 443),
                    ("aexample.com", 443),
                    ("example.com.evil", 443),
                ],
            ),
            (
                "api.example.com:8443",
                "api.example.com:8443",
                &[("api.example.com", 8443)],
                &[("api.example.com", 443)],
            ),
            (
                "127.0.0.1",
                "127.0.0.1",
                &[("127.0.0.1", 1)],
                &[("127.0.0.2", 1), ("localhost", 1)],
            ),
            (
                "127.0.0.1:8080",
                "127.0.0.1:8080",
                &[("127.0.0.1", 8080)],
                &[("127.0.0.1", 8081)],
            ),
            (
                "[::1]",
                "[::1]",
                &[("[::1]", 80)],
                &[("[::2]", 80), ("127.0.0.1", 80)],
            ),
            ("::1", "[::1]", &[("[::1]", 80)], &[]),
            (
                "[::1]:9000",
                "[::1]:9000",
                &[("[::1]", 9000)],
                &[("[::1]", 80)],
            ),
            (
                "bücher.example",
                "xn--bcher-kva.example",
                &[("xn--bcher-kva.example", 443)],
                &[],
            ),
        ];
        for (pattern, display, yes, no) in cases {
            let p: HostPattern = pattern.parse().unwrap_or_else(|e| panic!("{pattern}: {e}"));
            assert_eq!(p.to_string(), *display);
            for (host, port) in *yes {
                let h = Host::parse(host).unwrap();
                assert!(p.matches(&h, *port), "{pattern} should match {host}:{port}");
            }
            for (host, port) in *no {
                let h = Host::parse(host).unwrap();
                assert!(
                    !p.matches(&h, *port),
                    "{pattern} should not match {host}:{port}"
                );
            }
        }
    }

    #[test]
    fn patterns_bad() {
        for bad in [
            "",
            "*",
            "*.",
            "*.127.0.0.1",
            "a.*.example.com",
            "api.*",
            "api.example.com:",
            "api.example.com:0",
            "api.example.com:99999",
            "api.example.com:http",
            "[::1",
            "[::1]8080",
            "[nope]",
            "0.0.0.0",
            "[::]",
            "224.0.0.1",
            "255.255.255.255",
            "exa mple.com",
            "http://example.com",
            ".",
            "..",
            "*..",
            ".:80",
            "0..",
            "*.1..",
            "⁰﹡",
            "*.a﹡",
        ] {
            assert!(
                matches!(
                    bad.parse::<HostPattern>(),
                    Err(PolicyError::HostPattern { .. })
                ),
                "{bad:?} should be refused"
            );
        }
    }

    /// Hosts handed to `matches` as `Host::Domain` may hold any text; the
    /// URL parser's are punycode, a caller's need not be. Each case used to
    /// slice inside a multi-byte character.
    #[test]
    fn patterns_match_non_ascii_hosts() {
        let wildcard: HostPattern = "*.example.com".parse().unwrap();
        let exact: HostPattern = "api.example.com".parse().unwrap();
        for host in [
            "aaéxample.com",
            "aéxample.com",
            "éexample.com",
            "ü.example.com.",
            "x.exampé.com",
            "日本.example.com",
            "\u{10FFFF}\u{10FFFF}\u{10FFFF}\u{10FFFF}",
            "é",
            "",
            ".",
        ] {
            let h = Host::Domain(host);
            let want = host.trim_end_matches('.').ends_with(".example.com");
            assert_eq!(wildcard.matches(&h, 443), want, "{host:?}");
            assert!(!exact.matches(&h, 443), "{host:?}");
        }
        // Non-ASCII patterns are stored in punycode, and match only that.
        let idn: HostPattern = "*.bücher.example".parse().unwrap();
        assert!(idn.matches(&Host::Domain("a.xn--bcher-kva.example"), 80));
        assert!(!idn.matches(&Host::Domain("a.bücher.example"), 80));
    }

    #[test]
    fn patterns_non_ascii_bad() {
        for bad in [
            "*.é:",
            "é:99999",
            "[é]",
            "[::1]:é",
            "*.\u{0}",
            "*.ü*.com",
            "ü.*",
        ] {
            assert!(
                matches!(
                    bad.parse::<HostPattern>(),
                    Err(PolicyError::HostPattern { .. })
                ),
                "{bad:?} should be refused"
            );
        }
    }

    proptest::proptest! {
        /// Parsing any text and matching any host never panics; a pattern
        /// that parses prints as text that parses back to itself.
        #[test]
        fn patterns_never_panic(
            pattern in proptest::prop_oneof![
                proptest::prelude::any::<String>(),
                "(\\*\\.)?[a-zé日.\\-0-9*\\[\\]:]{0,24}(:[0-9]{0,6})?",
            ],
            host in proptest::prop_oneof![
                proptest::prelude::any::<String>(),
                "[a-zé日\u{10FFFF}.]{0,12}(\\.example\\.com)?\\.?",
            ],
            port in proptest::prelude::any::<u16>(),
        ) {
            if let Ok(p) = pattern.parse::<HostPattern>() {
                let _ = p.matches(&Host::Domain(host.as_str()), port);
                if let Ok(parsed) = Host::parse(&host) {
                    let _ = p.matches(&parsed, port);
                }
                let again: HostPattern = p.to_string().parse().unwrap();
                proptest::prop_assert_eq!(again, p);
            }
            for fixed in ["*.example.com", "*.é.example", "example.com", "127.0.0.1", "[::1]:8080"] {
                let p: HostPattern = fixed.parse().unwrap();
                let _ = p.matches(&Host::Domain(host.as_str()), port);
            }
        }
    }

    #[test]
    fn check_url() {
        let url = |s: &str| Url::parse(s).unwrap();
        let mut p = NetPolicy::default();
        assert!(p.check_url(&url("https://8.8.8.8/")).is_ok());
        assert!(
            p.check_url(&url("https://api.example.com/")).is_ok(),
            "names are checked at resolve time"
        );
        let denied = |p: &NetPolicy, u: &str| match p.check_url(&url(u)) {
            Err(NetError::Denied { reason, url }) => {
                assert!(!url.contains('?'), "{url}");
                reason
            }
            other => panic!("{u}: expected denied, got {other:?}"),
        };
        assert_eq!(
            denied(&p, "ftp://example.com/"),
            DenyReason::Scheme {
                scheme: "ftp".into()
            }
        );
        assert_eq!(
            denied(&p, "file:///etc/passwd"),
            DenyReason::Scheme {
                scheme: "file".into()
            }
        );
        for (u, addr, class) in [
            ("http://127.0.0.1/", "127.0.0.1", AddressClass::Loopback),
            ("http://2130706433/", "127.0.0.1", AddressClass::Loopback),
            ("http://0x7f.1/", "127.0.0.1", AddressClass::Loopback),
            ("http://0177.0.0.1/", "127.0.0.1", AddressClass::Loopback),
            ("http://[::1]/", "::1", AddressClass::Loopback),
            (
                "http://[::ffff:127.0.0.1]/",
                "::ffff:127.0.0.1",
                AddressClass::Loopback,
            ),
            (
                "http://169.254.169.254/latest/meta-data?x=1",
                "169.254.169.254",
                AddressClass::Metadata,
            ),
            ("http://0.0.0.0/", "0.0.0.0", AddressClass::Unspecified),
            ("http://0/", "0.0.0.0", AddressClass::Unspecified),
            ("http://10.0.0.1/", "10.0.0.1", AddressClass::Private),
        ] {
            assert_eq!(
                denied(&p, u),
                DenyReason::Address {
                    ip: ip(addr),
                    class
                },
                "{u}"
            );
        }

        p.allow_host("127.0.0.1:8080")
            .unwrap()
            .allow_host("*.example.com")
            .unwrap();
        assert!(
            p.check_url(&url("http://127.0.0.1:8080/x")).is_ok(),
            "listed IP literal"
        );
        assert!(
            p.check_url(&url("http://2130706433:8080/x")).is_ok(),
            "same address, other spelling"
        );
        assert!(p.check_url(&url("https://a.example.com/")).is_ok());
        assert_eq!(
            denied(&p, "http://127.0.0.1:8081/"),
            DenyReason::HostNotAllowed {
                host: "127.0.0.1:8081".into()
            }
        );
        assert_eq!(
            denied(&p, "https://example.com/"),
            DenyReason::HostNotAllowed {
                host: "example.com".into()
            }
        );
        assert_eq!(
            denied(&p, "http://[::ffff:127.0.0.1]:8080/"),
            DenyReason::HostNotAllowed {
                host: "[::ffff:7f00:1]:8080".into()
            }
        );

        let mut p = NetPolicy::default();
        p.allow_host("169.254.169.254").unwrap();
        assert!(
            p.check_url(&url("http://169.254.169.254/")).is_ok(),
            "exact IP listed"
        );
        let p = NetPolicy {
            allow_loopback: true,
            ..NetPolicy::default()
        };
        assert!(p.check_url(&url("http://[::ffff:127.0.0.1]/")).is_ok());
        assert!(matches!(
            denied(&p, "http://10.1.2.3/"),
            DenyReason::Address {
                class: AddressClass::Private,
                ..
            }
        ));
    }

    #[test]
    fn limits() {
        let p = NetPolicy::default();
        assert_eq!(p.validate().ok(), Some(()));
        assert_eq!(p.effective_timeout(None), Ok(Duration::from_secs(10)));
        assert_eq!(
            p.effective_timeout(Some(Duration::from_millis(5))),
            Ok(Duration::from_millis(5))
        );
        assert_eq!(
            p.effective_timeout(Some(Duration::from_secs(3600))),
            Ok(Duration::from_secs(60))
        );
        assert_eq!(p.effective_response_bytes(None), Ok(1 << 20));
        assert_eq!(p.effective_response_bytes(Some(1 << 30)), Ok(16 << 20));
    }

    #[test]
    fn limits_bad() {
        assert_eq!(
            p_timeout(Some(Duration::ZERO)),
            Err(InvalidRequest::ZeroTimeout)
        );
        assert_eq!(
            NetPolicy::default().effective_response_bytes(Some(0)),
            Err(InvalidRequest::ZeroResponseBytes)
        );
        let p = NetPolicy {
            timeout: Duration::from_secs(120),
            ..NetPolicy::default()
        };
        assert!(matches!(p.validate(), Err(PolicyError::Limits(_))));
        let p = NetPolicy {
            response_bytes: 0,
            ..NetPolicy::default()
        };
        assert!(matches!(p.validate(), Err(PolicyError::Limits(_))));
        let p = NetPolicy {
            connect_timeout: Duration::ZERO,
            ..NetPolicy::default()
        };
        assert!(matches!(p.validate(), Err(PolicyError::Limits(_))));
    }

    fn p_timeout(t: Option<Duration>) -> Result<Duration, InvalidRequest> {
        NetPolicy::default().effective_timeout(t)
    }

    /// An entry without a certificate is refused with and without the
    /// `reqwest` feature; a well-formed PEM block passes `validate` either
    /// way (with the feature, a block that is not a certificate fails
    /// `HttpClient::new` instead: `extra_root_certificates_bad` in the
    /// engine's tests).
    #[test]
    fn root_certificates_bad() {
        for (entries, index) in [
            (vec!["not a certificate"], 0),
            (vec![""], 0),
            (
                vec!["-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"],
                0,
            ),
            (
                vec![
                    "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
                    "-----BEGIN CERTIFICATE-----\n",
                ],
                1,
            ),
        ] {
            let p = NetPolicy {
                tls_root_certificates: entries.iter().map(|e| e.to_string()).collect(),
                ..NetPolicy::default()
            };
            match p.validate() {
                Err(PolicyError::RootCertificate { index: got, .. }) => {
                    assert_eq!(got, index, "{entries:?}")
                }
                other => panic!("{entries:?}: expected a refused root, got {other:?}"),
            }
        }
        let p = NetPolicy {
            tls_root_certificates: vec![
                "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"
                    .into(),
            ],
            ..NetPolicy::default()
        };
        assert_eq!(p.validate().ok(), Some(()));
    }

    #[test]
    fn serde() {
        let json = r#"{"allowed_hosts": ["api.example.com", "127.0.0.1:8080"], "allow_loopback": true, "timeout_ms": 2000}"#;
        let p: NetPolicy = serde_json::from_str(json).unwrap();
        assert_eq!(p.allowed_hosts.len(), 2);
        assert!(p.allow_loopback);
        assert_eq!(p.timeout, Duration::from_secs(2));
        assert_eq!(p.max_timeout, NetPolicy::default().max_timeout);
        let back: NetPolicy = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        assert!(serde_json::from_str::<NetPolicy>(r#"{"allowed_hosts": ["*"]}"#).is_err());
        assert!(serde_json::from_str::<NetPolicy>(r#"{"allow_everything": true}"#).is_err());
    }
}

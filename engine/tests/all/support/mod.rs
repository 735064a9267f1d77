//! Test helpers: loopback HTTP servers, guest loaders, fixtures.

#![allow(dead_code)] // each test module uses a different part

pub mod demo;
pub mod golden;
pub mod hanging;
pub mod invariants;
pub mod modules;
pub mod server;

use chatflow_engine::net::{HttpClient, NetPolicy};

/// A client that may reach 127.0.0.1 (the test servers) and nothing else
/// that is not public: the exact-IP allowed-host entry, as an operator
/// running the demo would configure it.
pub fn loopback_client() -> HttpClient {
    HttpClient::new(loopback_policy()).unwrap()
}

/// The policy behind [`loopback_client`], to adjust before building.
pub fn loopback_policy() -> NetPolicy {
    let mut policy = NetPolicy::default();
    policy.allow_host("127.0.0.1").unwrap();
    policy
}

/// A loopback port with nothing listening: bound, then released.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

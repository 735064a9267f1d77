//! A [`Duration`] as whole milliseconds in config files, for
//! `#[serde(with = "chatflow_net::serde_millis")]`: [`NetPolicy`](crate::NetPolicy)'s
//! timeouts use it, and so may other crates' configs, so every
//! `*_ms` field reads and writes the same way. Serializing saturates at
//! `u64::MAX` milliseconds; deserializing takes any `u64`.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// Writes `d` as whole milliseconds (sub-millisecond parts dropped).
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Reads a whole number of milliseconds.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

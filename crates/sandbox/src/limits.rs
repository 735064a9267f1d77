//! Per-run limits of a Code block: what one run may consume.
//!
//! Three layers decide the limits of a run:
//!
//! 1. the operator's **defaults** ([`SandboxConfig::default_limits`], which
//!    start as [`Limits::default`]);
//! 2. the Code block's **overrides** from the flow file ([`LimitOverrides`],
//!    each field optional), which may lower or raise a limit;
//! 3. the operator's **maximums** ([`SandboxConfig::max_limits`], which start
//!    as [`Limits::maximum`]): an override above a maximum is refused with
//!    [`LimitError::OverMaximum`] rather than silently clamped, so a flow
//!    author learns at once that their block asks for more than this
//!    deployment allows.
//!
//! [`Limits::resolve`] combines them. `docs/security.md` explains how each
//! limit is enforced.
//!
//! [`SandboxConfig::default_limits`]: super::SandboxConfig::default_limits
//! [`SandboxConfig::max_limits`]: super::SandboxConfig::max_limits

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// The resolved limits of one Code block run.
///
/// Hitting a limit ends the run with an error naming it (see
/// [`RunError`](super::RunError)); only [`log_bytes`](Limits::log_bytes) is
/// soft (excess logs are dropped and counted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Limits {
    /// WebAssembly fuel: about one unit per wasm instruction, plus the host
    /// work charged by the fuel table of `docs/abi.md`. Running out ends the
    /// run with [`RunError::FuelExhausted`](super::RunError::FuelExhausted).
    /// Ignored when the operator turned fuel metering off
    /// ([`SandboxConfig::fuel_metering`](super::SandboxConfig::fuel_metering)).
    ///
    /// By default 1 000 000 000 (about a second of busy wasm); at most
    /// 10 000 000 000.
    pub fuel: u64,
    /// Linear memory, in bytes (rounded down to whole 64 KiB wasm pages). A
    /// `memory.grow` past it returns `-1` inside the guest; a guest that
    /// then traps ends with [`RunError::MemoryLimit`](super::RunError::MemoryLimit).
    ///
    /// By default 128 MiB; at most 1 GiB.
    pub memory_bytes: u64,
    /// Wall-clock time of the whole run: instantiation, wasm execution and
    /// time spent waiting on host HTTP. Exceeding it ends the run with
    /// [`RunError::Timeout`](super::RunError::Timeout). Checked once a tick
    /// ([`SandboxConfig::epoch_tick`](super::SandboxConfig::epoch_tick))
    /// whenever the guest comes back from the host: from an import, or from
    /// a fuel yield or epoch tick in a loop without imports; HTTP waits race
    /// the deadline itself.
    ///
    /// By default 5 s; at most 60 s.
    #[serde(with = "chatflow_net::serde_millis")]
    pub wall_time: Duration,
    /// HTTP requests a run may make (every `http_request` call counts,
    /// whatever its result).
    ///
    /// By default 10; at most 100.
    pub http_calls: u32,
    /// Bytes of HTTP response bodies a run holds at once: one body of up
    /// to this size, or several whose sum is. A body is held until the
    /// guest has copied it in full, then released at its next
    /// `http_request` (`docs/abi.md`, HTTP). A response over what is left
    /// ends the run.
    ///
    /// By default 4 MiB; at most 64 MiB.
    pub http_response_bytes: u64,
    /// Bytes of one property value written by `property_set`.
    ///
    /// By default 4 MiB; at most 64 MiB.
    pub property_value_bytes: u64,
    /// Total bytes a run writes: property names and values over all
    /// `property_set` and `property_remove` calls, message texts and HTTP
    /// request objects, each with 128 bytes more for the host's entry
    /// holding it. What the run keeps of them (the change set, the
    /// messages) is bounded by this.
    ///
    /// By default 8 MiB; at most 128 MiB.
    pub written_bytes: u64,
    /// Chat messages a run may send with `message_send`.
    ///
    /// By default 20; at most 1 000.
    pub messages: u32,
    /// Bytes of log kept per run: each kept line counts its text and 64
    /// bytes more for its entry (so an empty line costs 64). Lines past it
    /// are dropped and counted; the run goes on.
    ///
    /// By default 64 KiB; at most 16 MiB.
    pub log_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 1_000_000_000,
            memory_bytes: 128 * MIB,
            wall_time: Duration::from_secs(5),
            http_calls: 10,
            http_response_bytes: 4 * MIB,
            property_value_bytes: 4 * MIB,
            written_bytes: 8 * MIB,
            messages: 20,
            log_bytes: 64 * KIB,
        }
    }
}

impl Limits {
    /// The built-in operator maximums: the largest value a Code block may ask
    /// for unless the operator configures other maximums.
    pub fn maximum() -> Self {
        Limits {
            fuel: 10_000_000_000,
            memory_bytes: GIB,
            wall_time: Duration::from_secs(60),
            http_calls: 100,
            http_response_bytes: 64 * MIB,
            property_value_bytes: 64 * MIB,
            written_bytes: 128 * MIB,
            messages: 1_000,
            log_bytes: 16 * MIB,
        }
    }

    /// Sets [`fuel`](Limits::fuel).
    pub fn with_fuel(mut self, fuel: u64) -> Self {
        self.fuel = fuel;
        self
    }

    /// Sets [`memory_bytes`](Limits::memory_bytes).
    pub fn with_memory_bytes(mut self, bytes: u64) -> Self {
        self.memory_bytes = bytes;
        self
    }

    /// Sets [`wall_time`](Limits::wall_time).
    pub fn with_wall_time(mut self, wall_time: Duration) -> Self {
        self.wall_time = wall_time;
        self
    }

    /// Sets [`http_calls`](Limits::http_calls).
    pub fn with_http_calls(mut self, calls: u32) -> Self {
        self.http_calls = calls;
        self
    }

    /// Sets [`http_response_bytes`](Limits::http_response_bytes).
    pub fn with_http_response_bytes(mut self, bytes: u64) -> Self {
        self.http_response_bytes = bytes;
        self
    }

    /// Sets [`property_value_bytes`](Limits::property_value_bytes).
    pub fn with_property_value_bytes(mut self, bytes: u64) -> Self {
        self.property_value_bytes = bytes;
        self
    }

    /// Sets [`written_bytes`](Limits::written_bytes).
    pub fn with_written_bytes(mut self, bytes: u64) -> Self {
        self.written_bytes = bytes;
        self
    }

    /// Sets [`messages`](Limits::messages).
    pub fn with_messages(mut self, messages: u32) -> Self {
        self.messages = messages;
        self
    }

    /// Sets [`log_bytes`](Limits::log_bytes).
    pub fn with_log_bytes(mut self, bytes: u64) -> Self {
        self.log_bytes = bytes;
        self
    }

    /// The most host memory a run with these limits can hold beyond its
    /// linear memory, when the conversation's properties it starts with
    /// total `property_bytes` (names and values,
    /// [`Properties::byte_size`](crate::properties::Properties::byte_size)).
    ///
    /// ```
    /// use chatflow_sandbox::Limits;
    /// let bound = Limits::default().host_memory(0);
    /// // 2 × 8 MiB + 3 × 64 KiB + 2 × 4 MiB + 10 × 64 KiB + 4 × 8 MiB + 256 KiB
    /// assert_eq!(bound.total(), (56 << 20) + (1088 << 10));
    /// ```
    pub fn host_memory(&self, property_bytes: u64) -> HostMemory {
        use super::host::{HTTP_HEADER_BYTES, INDEX_BYTES_PER_BYTE, MESSAGE_BYTES};
        HostMemory {
            writes: 2 * self.written_bytes,
            logs: 3 * self.log_bytes,
            http: 2 * self.http_response_bytes + u64::from(self.http_calls) * HTTP_HEADER_BYTES,
            selectors: INDEX_BYTES_PER_BYTE * (property_bytes + self.written_bytes),
            messages: MESSAGE_BYTES,
        }
    }

    /// The value of one limit, as a number (milliseconds for
    /// [`LimitKind::WallTime`]).
    pub fn get(&self, which: LimitKind) -> u64 {
        match which {
            LimitKind::Fuel => self.fuel,
            LimitKind::MemoryBytes => self.memory_bytes,
            LimitKind::WallTime => u64::try_from(self.wall_time.as_millis()).unwrap_or(u64::MAX),
            LimitKind::HttpCalls => self.http_calls.into(),
            LimitKind::HttpResponseBytes => self.http_response_bytes,
            LimitKind::PropertyValueBytes => self.property_value_bytes,
            LimitKind::WrittenBytes => self.written_bytes,
            LimitKind::Messages => self.messages.into(),
            LimitKind::LogBytes => self.log_bytes,
        }
    }

    /// Applies a Code block's `overrides` on top of these limits (the
    /// operator's defaults), checking the result against `max`.
    ///
    /// # Errors
    ///
    /// [`LimitError::OverMaximum`] for an override above its maximum, and
    /// [`LimitError::Zero`] for a zero fuel, memory or wall-time limit, which
    /// could never let a run start.
    pub fn resolve(&self, overrides: &LimitOverrides, max: &Limits) -> Result<Limits, LimitError> {
        self.resolve_all(overrides, max)
            .map_err(|mut errors| errors.remove(0))
    }

    /// [`Limits::resolve`], reporting every limit that is over its maximum
    /// or zero (in [`LimitKind::ALL`] order) instead of the first: what a
    /// flow loader shows an author who asked for several at once.
    ///
    /// # Errors
    ///
    /// At least one [`LimitError`], as for [`Limits::resolve`].
    pub fn resolve_all(
        &self,
        overrides: &LimitOverrides,
        max: &Limits,
    ) -> Result<Limits, Vec<LimitError>> {
        let mut out = *self;
        let o = overrides;
        if let Some(v) = o.fuel {
            out.fuel = v;
        }
        if let Some(v) = o.memory_bytes {
            out.memory_bytes = v;
        }
        if let Some(ms) = o.wall_time_ms {
            out.wall_time = Duration::from_millis(ms);
        }
        if let Some(v) = o.http_calls {
            out.http_calls = v;
        }
        if let Some(v) = o.http_response_bytes {
            out.http_response_bytes = v;
        }
        if let Some(v) = o.property_value_bytes {
            out.property_value_bytes = v;
        }
        if let Some(v) = o.written_bytes {
            out.written_bytes = v;
        }
        if let Some(v) = o.messages {
            out.messages = v;
        }
        if let Some(v) = o.log_bytes {
            out.log_bytes = v;
        }
        let errors = out.problems(max);
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(errors)
        }
    }

    /// Checks these limits against the operator's maximums `max`.
    ///
    /// # Errors
    ///
    /// As for [`Limits::resolve`].
    pub fn check(&self, max: &Limits) -> Result<(), LimitError> {
        match self.problems(max).into_iter().next() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Every limit over its maximum or zero, in [`LimitKind::ALL`] order.
    fn problems(&self, max: &Limits) -> Vec<LimitError> {
        let mut errors = Vec::new();
        for which in LimitKind::ALL {
            let value = self.get(which);
            let limit = max.get(which);
            if value > limit {
                errors.push(LimitError::OverMaximum {
                    which,
                    value,
                    max: limit,
                });
            } else if value == 0
                && matches!(
                    which,
                    LimitKind::Fuel | LimitKind::MemoryBytes | LimitKind::WallTime
                )
            {
                errors.push(LimitError::Zero { which });
            }
        }
        errors
    }
}

/// The most host memory one run can hold beyond its linear memory, by what
/// holds it, for given [`Limits`] ([`Limits::host_memory`]; the formula is
/// in `docs/security.md`, "Host memory per run"). Every structure an import
/// creates is counted against one of these; what is left out is a constant
/// per run (the store, the instance, the fiber stack) and the run's linear
/// memory itself ([`Limits::memory_bytes`] at most).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostMemory {
    /// Property writes and removals, messages and HTTP requests: each
    /// counts its bytes and an entry towards [`Limits::written_bytes`], so
    /// what they keep is at most that; a request being sent is copied once
    /// more while it is parsed. `2 × written_bytes`.
    pub writes: u64,
    /// Kept log lines, each counting its text and an entry towards
    /// [`Limits::log_bytes`]; a line with bad UTF-8 is up to three times its
    /// size while it is converted. `3 × log_bytes`.
    pub logs: u64,
    /// HTTP response bodies held at once (at most
    /// [`Limits::http_response_bytes`], and up to twice that while one is
    /// received), and each response's headers (at most 64 KiB).
    /// `2 × http_response_bytes + http_calls × 64 KiB`.
    pub http: u64,
    /// The selectors' parse indexes: at most 4 bytes per byte of the
    /// properties parsed, which are the conversation's (`property_bytes`)
    /// and the run's own writes. `4 × (property_bytes + written_bytes)`.
    pub selectors: u64,
    /// The `fail` message and the last error: a fixed 256 KiB.
    pub messages: u64,
}

impl HostMemory {
    /// The sum of every part.
    pub fn total(&self) -> u64 {
        self.writes + self.logs + self.http + self.selectors + self.messages
    }
}

/// A Code block's limit overrides, as written in a flow file.
///
/// Every field is optional; a missing field keeps the operator's default.
/// Unknown fields are refused, so a typo (`"fule": 5`) is an error instead of
/// a silently ignored setting.
///
/// ```
/// use chatflow_sandbox::LimitOverrides;
/// let o: LimitOverrides = serde_json::from_str(r#"{"fuel": 5000000, "wall_time_ms": 2000}"#).unwrap();
/// assert_eq!(o.fuel, Some(5_000_000));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitOverrides {
    /// See [`Limits::fuel`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
    /// See [`Limits::memory_bytes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// See [`Limits::wall_time`], in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_time_ms: Option<u64>,
    /// See [`Limits::http_calls`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_calls: Option<u32>,
    /// See [`Limits::http_response_bytes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_response_bytes: Option<u64>,
    /// See [`Limits::property_value_bytes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property_value_bytes: Option<u64>,
    /// See [`Limits::written_bytes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_bytes: Option<u64>,
    /// See [`Limits::messages`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<u32>,
    /// See [`Limits::log_bytes`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_bytes: Option<u64>,
}

/// Names one limit, in errors and in [`Limits::get`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum LimitKind {
    /// [`Limits::fuel`].
    Fuel,
    /// [`Limits::memory_bytes`].
    MemoryBytes,
    /// [`Limits::wall_time`] (values in milliseconds).
    WallTime,
    /// [`Limits::http_calls`].
    HttpCalls,
    /// [`Limits::http_response_bytes`].
    HttpResponseBytes,
    /// [`Limits::property_value_bytes`].
    PropertyValueBytes,
    /// [`Limits::written_bytes`].
    WrittenBytes,
    /// [`Limits::messages`].
    Messages,
    /// [`Limits::log_bytes`].
    LogBytes,
}

impl LimitKind {
    /// Every limit, in declaration order.
    pub const ALL: [LimitKind; 9] = [
        LimitKind::Fuel,
        LimitKind::MemoryBytes,
        LimitKind::WallTime,
        LimitKind::HttpCalls,
        LimitKind::HttpResponseBytes,
        LimitKind::PropertyValueBytes,
        LimitKind::WrittenBytes,
        LimitKind::Messages,
        LimitKind::LogBytes,
    ];

    /// The limit's name as written in flow files (`wall_time` is
    /// `wall_time_ms` there).
    pub fn as_str(self) -> &'static str {
        use chatflow_abi::limit;
        match self {
            LimitKind::Fuel => limit::FUEL,
            LimitKind::MemoryBytes => limit::MEMORY_BYTES,
            LimitKind::WallTime => limit::WALL_TIME_MS,
            LimitKind::HttpCalls => limit::HTTP_CALLS,
            LimitKind::HttpResponseBytes => limit::HTTP_RESPONSE_BYTES,
            LimitKind::PropertyValueBytes => limit::PROPERTY_VALUE_BYTES,
            LimitKind::WrittenBytes => limit::WRITTEN_BYTES,
            LimitKind::Messages => limit::MESSAGES,
            LimitKind::LogBytes => limit::LOG_BYTES,
        }
    }
}

impl fmt::Display for LimitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a set of limits was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitError {
    /// A limit is above the operator's maximum for it.
    #[error("limit {which} = {value} is over the maximum of {max}")]
    OverMaximum {
        /// The limit.
        which: LimitKind,
        /// The value asked for.
        value: u64,
        /// The operator's maximum.
        max: u64,
    },
    /// Fuel, memory or wall time is zero: no run could ever start.
    #[error("limit {which} must be greater than zero")]
    Zero {
        /// The limit.
        which: LimitKind,
    },
}

impl LimitError {
    /// The limit the error is about.
    pub fn which(&self) -> LimitKind {
        match self {
            LimitError::OverMaximum { which, .. } | LimitError::Zero { which } => *which,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_within_maximums() {
        assert_eq!(Limits::default().check(&Limits::maximum()), Ok(()));
        assert_eq!(Limits::maximum().check(&Limits::maximum()), Ok(()));
    }

    #[test]
    fn overrides_lower_and_raise() {
        let o: LimitOverrides =
            serde_json::from_str(r#"{"fuel": 5, "wall_time_ms": 60000, "messages": 0}"#).unwrap();
        let got = Limits::default().resolve(&o, &Limits::maximum()).unwrap();
        assert_eq!(got.fuel, 5);
        assert_eq!(got.wall_time, Duration::from_secs(60));
        assert_eq!(got.messages, 0);
        assert_eq!(got.memory_bytes, Limits::default().memory_bytes);
    }

    #[test]
    fn overrides_bad() {
        let max = Limits::maximum();
        let cases = [
            (
                LimitOverrides {
                    fuel: Some(max.fuel + 1),
                    ..Default::default()
                },
                LimitError::OverMaximum {
                    which: LimitKind::Fuel,
                    value: max.fuel + 1,
                    max: max.fuel,
                },
            ),
            (
                LimitOverrides {
                    wall_time_ms: Some(60_001),
                    ..Default::default()
                },
                LimitError::OverMaximum {
                    which: LimitKind::WallTime,
                    value: 60_001,
                    max: 60_000,
                },
            ),
            (
                LimitOverrides {
                    memory_bytes: Some(0),
                    ..Default::default()
                },
                LimitError::Zero {
                    which: LimitKind::MemoryBytes,
                },
            ),
        ];
        for (o, want) in cases {
            assert_eq!(Limits::default().resolve(&o, &max), Err(want), "{o:?}");
        }
        // All of them at once: every problem, in LimitKind::ALL order.
        let all = LimitOverrides {
            wall_time_ms: Some(60_001),
            fuel: Some(max.fuel + 1),
            memory_bytes: Some(0),
            ..Default::default()
        };
        let errors = Limits::default().resolve_all(&all, &max).unwrap_err();
        let kinds: Vec<LimitKind> = errors
            .iter()
            .map(|e| match e {
                LimitError::OverMaximum { which, .. } | LimitError::Zero { which } => *which,
            })
            .collect();
        assert_eq!(
            kinds,
            [LimitKind::Fuel, LimitKind::MemoryBytes, LimitKind::WallTime]
        );
        assert_eq!(
            Limits::default().resolve(&all, &max),
            Err(errors[0].clone())
        );
        let typo = serde_json::from_str::<LimitOverrides>(r#"{"fule": 5}"#);
        assert!(
            typo.unwrap_err()
                .to_string()
                .contains("unknown field `fule`")
        );
    }
}

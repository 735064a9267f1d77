//! One run of a module: the run loop (a pool slot, a fresh store with the
//! run's fuel, deadline and cancel token, instantiation and the call of
//! `chatflow_run`), the [`Watchdog`] that checks the deadline and the cancel
//! token whenever the guest comes back from the host, and [`classify`],
//! the one place that decides how a run ended.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use wasmtime::{
    CallHook, CallHookHandler, Extern, Store, StoreContextMut, Trap, UpdateDeadline, WasmBacktrace,
};

use super::Sandbox;
use super::cancel::{CancelToken, or_cancelled};
use super::host::RunState;
use super::limits::Limits;
use super::module::{CodeModule, LoadError, ModuleInner};
use super::outcome::{Outcome, Output, RunError};
use crate::properties::Properties;

impl Sandbox {
    /// [`Sandbox::run`] and [`Sandbox::run_with_cancel`]: checks the limits
    /// and the module, waits for a pool slot, sets up the store (fuel, the
    /// [`Watchdog`], epochs when used), calls the module and reports how
    /// the run ended.
    pub(super) async fn run_inner(
        &self,
        module: &CodeModule,
        props: &Properties,
        limits: &Limits,
        cancel: Option<&CancelToken>,
    ) -> Outcome {
        if let Err(err) = limits.check(&self.config.max_limits) {
            return Outcome::failed(err.into());
        }
        if module.inner.sandbox_id != self.id {
            return Outcome::failed(RunError::InvalidModule(LoadError::Engine {
                message: "the module was loaded by another sandbox".into(),
            }));
        }
        // Wait for a pool slot rather than fail when all are busy.
        let Some(permit) = or_cancelled(cancel, self.slots.acquire()).await else {
            return Outcome::failed(RunError::Cancelled);
        };
        let _permit = permit.expect("the semaphore is never closed");
        if cancel.is_some_and(CancelToken::is_cancelled) {
            return Outcome::failed(RunError::Cancelled);
        }

        let start = Instant::now();
        let state = RunState::new(
            &self.config,
            &self.http,
            props,
            limits,
            start + limits.wall_time,
            cancel.cloned(),
        );
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.limiter);
        if self.config.fuel_metering {
            let fueled = store
                .set_fuel(limits.fuel)
                .and_then(|()| store.fuel_async_yield_interval(self.config.fuel_yield_interval));
            if let Err(err) = fueled {
                return Outcome::failed(RunError::Engine {
                    message: format!("{err:#}"),
                });
            }
        }
        // Every return from the host (an import, a fuel or epoch yield,
        // memory growth) checks the cancel token, and once a tick the
        // deadline, yielding to the executor then.
        store.call_hook_async(Watchdog::new(
            start,
            limits.wall_time,
            cancel.cloned(),
            self.ticker.ticks().clone(),
            self.config.epoch_tick,
        ));
        if self.config.uses_epochs() {
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(|ctx| {
                let state = ctx.data();
                if state.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
                    return Err(RunError::Cancelled.into());
                }
                if Instant::now() >= state.deadline {
                    return Err(RunError::Timeout {
                        limit: state.limits.wall_time,
                    }
                    .into());
                }
                Ok(UpdateDeadline::Yield(1))
            });
        }
        let result = call(&mut store, &module.inner).await;
        let fuel_used = if self.config.fuel_metering {
            limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0))
        } else {
            0
        };
        let duration = start.elapsed();
        let state = store.into_data();
        let result = classify(result, &state).map(|()| Output {
            changes: state.changes,
            messages: state.messages,
        });
        Outcome {
            result,
            logs: state.logs,
            logs_dropped: state.logs_dropped,
            fail_message: state.fail_message,
            fuel_used,
            duration,
            http_calls: state.http.calls,
            memory_bytes: state.limiter.memory_peak as u64,
        }
    }
}

/// Instantiates the module in `store` and calls `chatflow_run`.
async fn call(store: &mut Store<RunState>, module: &ModuleInner) -> wasmtime::Result<i32> {
    let instance = module.pre.instantiate_async(&mut *store).await?;
    let memory = instance
        .get_module_export(&mut *store, &module.memory)
        .and_then(Extern::into_memory)
        .ok_or_else(|| wasmtime::Error::msg("memory export not found"))?;
    store.data_mut().memory = Some(memory);
    let run = instance
        .get_module_export(&mut *store, &module.run)
        .and_then(Extern::into_func)
        .ok_or_else(|| wasmtime::Error::msg("chatflow_run export not found"))?
        .typed::<(), i32>(&*store)?;
    run.call_async(&mut *store, ()).await
}

/// Checks a run's cancel token every time its guest comes back from the
/// host, and once a tick (the sandbox's [`Ticker`](super::ticker::Ticker))
/// its deadline, making the guest yield to the executor at the same time.
/// It also reads the clock every [`CLOCK_EVERY`] returns, and then makes
/// the guest yield if it has not for a tick, so a starved ticker thread
/// delays neither.
///
/// wasmtime calls it around every host call: each import, and each libcall
/// (a fuel yield, an epoch yield, `memory.grow`). So a guest cannot stay
/// past its deadline, ignore its cancel token or keep its thread by calling
/// imports, which neither fuel yields (every import's fuel charge restarts
/// wasmtime's countdown to the next yield: `Store::set_fuel` refills the
/// yield slice) nor epoch checks (compiled into loop heads and function
/// entries only) would stop; a pure wasm loop comes back through here at
/// each fuel or epoch yield. Between ticks the check is two atomic loads:
/// reading the clock at every import would cost more than the cheapest
/// imports themselves (`docs/benchmarks.md`, "Wall time and cancellation").
struct Watchdog {
    started: Instant,
    deadline: Instant,
    wall_time: Duration,
    cancel: Option<CancelToken>,
    /// The sandbox's tick count.
    ticks: Arc<AtomicU64>,
    /// The ticker's period, in nanoseconds.
    tick_nanos: u64,
    // The rest is the run's own bookkeeping. Only the run's fiber touches
    // it (atomics because the hook is called through `&self`).
    /// The tick count at the last check.
    seen: AtomicU64,
    /// Host returns so far.
    returns: AtomicU64,
    /// When the guest is next made to yield if no tick comes first, in
    /// nanoseconds after `started`.
    next_yield: AtomicU64,
}

/// Every this many host returns the clock is read even if the ticker has
/// not ticked, so the deadline holds even if the ticker thread is starved
/// of CPU (a clock read every 256 returns adds well under a nanosecond to
/// each).
const CLOCK_EVERY: u64 = 256;

/// What [`Watchdog`] decided at one return from the host.
enum Verdict {
    Proceed,
    Yield,
    Stop(RunError),
}

impl Watchdog {
    fn new(
        started: Instant,
        wall_time: Duration,
        cancel: Option<CancelToken>,
        ticks: Arc<AtomicU64>,
        tick: Duration,
    ) -> Watchdog {
        let seen = AtomicU64::new(ticks.load(Ordering::Relaxed));
        let tick_nanos = u64::try_from(tick.as_nanos()).unwrap_or(u64::MAX);
        Watchdog {
            started,
            deadline: started + wall_time,
            wall_time,
            cancel,
            ticks,
            tick_nanos,
            seen,
            returns: AtomicU64::new(0),
            next_yield: AtomicU64::new(tick_nanos),
        }
    }

    fn verdict(&self) -> Verdict {
        if self.cancel.as_ref().is_some_and(CancelToken::is_cancelled) {
            return Verdict::Stop(RunError::Cancelled);
        }
        let ticks = self.ticks.load(Ordering::Relaxed);
        let ticked = ticks != self.seen.load(Ordering::Relaxed);
        let returns = self.returns.load(Ordering::Relaxed).wrapping_add(1);
        self.returns.store(returns, Ordering::Relaxed);
        if !ticked && !returns.is_multiple_of(CLOCK_EVERY) {
            return Verdict::Proceed;
        }
        let now = Instant::now();
        if now >= self.deadline {
            return Verdict::Stop(RunError::Timeout {
                limit: self.wall_time,
            });
        }
        let elapsed =
            u64::try_from(now.duration_since(self.started).as_nanos()).unwrap_or(u64::MAX);
        if ticked || elapsed >= self.next_yield.load(Ordering::Relaxed) {
            self.seen.store(ticks, Ordering::Relaxed);
            self.next_yield
                .store(elapsed.saturating_add(self.tick_nanos), Ordering::Relaxed);
            return Verdict::Yield;
        }
        Verdict::Proceed
    }
}

// The signature is what `#[async_trait]` makes of the trait's `async fn`,
// written out so that the common case costs no allocation: the boxed
// future is zero-sized unless the run yields or stops.
impl CallHookHandler<RunState> for Watchdog {
    fn handle_call_event<'life0, 'life1, 'async_trait>(
        &'life0 self,
        _store: StoreContextMut<'life1, RunState>,
        hook: CallHook,
    ) -> Pin<Box<dyn Future<Output = wasmtime::Result<()>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        'life1: 'async_trait,
        Self: 'async_trait,
    {
        if !hook.exiting_host() {
            return Box::pin(Proceed);
        }
        match self.verdict() {
            Verdict::Proceed => Box::pin(Proceed),
            Verdict::Yield => Box::pin(YieldOnce { yielded: false }),
            Verdict::Stop(err) => Box::pin(std::future::ready(Err(err.into()))),
        }
    }
}

/// A future that is ready at once (zero-sized: boxing it allocates nothing).
struct Proceed;

impl Future for Proceed {
    type Output = wasmtime::Result<()>;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(Ok(()))
    }
}

/// Returns to the executor once (asking to be polled again at once), as
/// wasmtime's own fuel and epoch yields do.
struct YieldOnce {
    yielded: bool,
}

impl Future for YieldOnce {
    type Output = wasmtime::Result<()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.yielded {
            return Poll::Ready(Ok(()));
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// How a run ended, from what calling `chatflow_run` gave (its return
/// value, or the error wasmtime stopped it with) and what the run left in
/// its state: `Ok` if it succeeded, otherwise the one [`RunError`] to
/// report.
fn classify(result: wasmtime::Result<i32>, state: &RunState) -> Result<(), RunError> {
    let error = match result {
        Ok(0) => return Ok(()),
        Ok(code) => RunError::GuestFailed {
            message: state
                .fail_message
                .clone()
                .unwrap_or_else(|| format!("chatflow_run returned {code}")),
            code: Some(code),
        },
        // The host's own errors (a limit, cancellation, the deadline) come
        // back as they were raised; wasmtime's are mapped.
        Err(err) => match err.downcast::<RunError>() {
            Ok(run_error) => run_error,
            Err(err) => wasmtime_error(&err, state),
        },
    };
    // A guest that gives up after a denied request reports the denial as
    // the root cause (its own message stays in `Outcome::fail_message`).
    match (error, &state.http.denied) {
        (RunError::GuestFailed { .. } | RunError::Trap { .. }, Some(reason)) => {
            Err(RunError::HttpDenied {
                reason: reason.clone(),
            })
        }
        (error, _) => Err(error),
    }
}

/// The run's error for an error wasmtime raised itself (a trap, or a
/// failed instantiation), by downcast to [`Trap`], never by message text.
fn wasmtime_error(err: &wasmtime::Error, state: &RunState) -> RunError {
    let limits = &state.limits;
    let memory_limit = RunError::MemoryLimit {
        limit: limits.memory_bytes,
    };
    let Some(trap) = err.downcast_ref::<Trap>() else {
        // Not a trap: instantiation failed (e.g. the initial memory is over
        // the run's limit, which the limiter refused).
        if state.limiter.memory_denied {
            return memory_limit;
        }
        return RunError::Engine {
            message: format!("{err:#}"),
        };
    };
    match trap {
        Trap::OutOfFuel => RunError::FuelExhausted { limit: limits.fuel },
        Trap::Interrupt => RunError::Timeout {
            limit: limits.wall_time,
        },
        Trap::StackOverflow => RunError::StackOverflow,
        _ if state.limiter.memory_denied => memory_limit,
        Trap::UnreachableCodeReached if state.fail_message.is_some() => RunError::GuestFailed {
            message: state.fail_message.clone().unwrap_or_default(),
            code: None,
        },
        trap => RunError::Trap {
            message: trap.to_string(),
            backtrace: err
                .downcast_ref::<WasmBacktrace>()
                .map(|bt| bt.to_string())
                .filter(|bt| !bt.trim().is_empty()),
        },
    }
}

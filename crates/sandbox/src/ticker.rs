//! The sandbox's ticker thread: the clock every run's deadline checks and
//! yields are paced by.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use wasmtime::EngineWeak;

/// The sandbox's ticker thread: every `epoch_tick` it advances the tick
/// count each run's `Watchdog` ([`run`](super::run)) watches and, when
/// runs are interrupted with epochs, the engine's epoch. It holds only a
/// weak reference to the engine, and is told to stop when the sandbox is
/// dropped.
pub(super) struct Ticker {
    stop: Arc<AtomicBool>,
    ticks: Arc<AtomicU64>,
    thread: std::thread::Thread,
}

impl Ticker {
    /// Starts the thread, ticking every `tick`, and advancing `engine`'s
    /// epoch at each tick if `epochs`.
    pub(super) fn spawn(
        engine: EngineWeak,
        tick: Duration,
        epochs: bool,
    ) -> std::io::Result<Ticker> {
        let stop = Arc::new(AtomicBool::new(false));
        let ticks = Arc::new(AtomicU64::new(0));
        let (stop_flag, counter) = (stop.clone(), ticks.clone());
        let handle = std::thread::Builder::new()
            .name("chatflow-ticker".into())
            .spawn(move || {
                loop {
                    std::thread::park_timeout(tick);
                    if stop_flag.load(Ordering::Acquire) {
                        break;
                    }
                    counter.fetch_add(1, Ordering::Relaxed);
                    if epochs {
                        match engine.upgrade() {
                            Some(engine) => engine.increment_epoch(),
                            None => break,
                        }
                    }
                }
            })?;
        Ok(Ticker {
            stop,
            ticks,
            thread: handle.thread().clone(),
        })
    }

    /// The tick count, which the thread increments every tick.
    pub(super) fn ticks(&self) -> &Arc<AtomicU64> {
        &self.ticks
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

//! Cancelling a run from outside: [`CancelToken`], and [`or_cancelled`] to
//! end a wait (for a pool slot) as soon as the token fires.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// A handle to cancel a run started with [`Sandbox::run_with_cancel`](super::Sandbox::run_with_cancel).
///
/// Cloning gives another handle to the same token. Cancelling stops the run
/// the next time its guest comes back from the host: at once in a loop
/// calling imports, at the next fuel yield or epoch tick in a loop without
/// any, at once while it waits on HTTP or for a free instance slot; the run
/// ends with [`RunError::Cancelled`](super::RunError::Cancelled). Dropping the run's future also stops
/// it.
#[derive(Debug, Clone, Default)]
pub struct CancelToken {
    inner: Arc<CancelInner>,
}

#[derive(Debug, Default)]
struct CancelInner {
    cancelled: AtomicBool,
    notify: Notify,
}

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every run holding this token.
    pub fn cancel(&self) {
        self.inner.cancelled.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancelled.load(Ordering::SeqCst)
    }

    /// Completes once the token is cancelled.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.inner.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// Awaits `fut` unless `cancel` fires first.
pub(super) async fn or_cancelled<F: Future>(
    cancel: Option<&CancelToken>,
    fut: F,
) -> Option<F::Output> {
    match cancel {
        None => Some(fut.await),
        Some(token) => tokio::select! {
            out = fut => Some(out),
            () = token.cancelled() => None,
        },
    }
}

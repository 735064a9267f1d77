//! A loopback endpoint that holds requests until the test opens it: a turn
//! whose REST API block calls it stays in flight as long as the test needs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use tokio::sync::{Notify, watch};

struct Shared {
    open: watch::Sender<bool>,
    arrived: AtomicUsize,
    arrival: Notify,
}

/// The gate; stops serving when dropped.
pub struct Gate {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Gate {
    pub async fn start() -> Gate {
        let shared = Arc::new(Shared {
            open: watch::Sender::new(false),
            arrived: AtomicUsize::new(0),
            arrival: Notify::new(),
        });
        let app = Router::new()
            .route("/gate", get(wait))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Gate { addr, shared, task }
    }

    /// The URL a flow calls.
    pub fn url(&self) -> String {
        format!("http://{}/gate", self.addr)
    }

    /// Requests that reached the gate so far.
    pub fn arrived(&self) -> usize {
        self.shared.arrived.load(Ordering::SeqCst)
    }

    /// Waits until `n` requests have reached the gate.
    pub async fn wait_for(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        while self.arrived() < n {
            let notified = self.shared.arrival.notified();
            if self.arrived() >= n {
                break;
            }
            tokio::time::timeout_at(deadline, notified)
                .await
                .expect("requests reach the gate within 20 s");
        }
    }

    /// Lets every waiting and future request through.
    pub fn open(&self) {
        self.shared.open.send_replace(true);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn wait(State(shared): State<Arc<Shared>>) -> &'static str {
    let mut open = shared.open.subscribe();
    shared.arrived.fetch_add(1, Ordering::SeqCst);
    shared.arrival.notify_waiters();
    let _ = open.wait_for(|o| *o).await;
    "opened"
}

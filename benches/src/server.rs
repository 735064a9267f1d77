//! A loopback HTTP server for the benches, on its own thread and runtime so
//! that it never competes with the bench's own executor for polling.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::http::header;
use axum::routing::get;

/// A 1 KB image API response: the shape of `demo.json` (the JSON spec's
/// `Image` example) with the fields a real API adds. What the small-block
/// benches parse, and what `/image` answers.
pub const IMAGE_1K_JSON: &str = include_str!("image_1k.json");

/// A server on `127.0.0.1:<port>` with a few fixed routes:
///
/// | route | answers |
/// |---|---|
/// | `GET /ping` | `pong` |
/// | `GET /image` | [`IMAGE_1K_JSON`] as `application/json` |
/// | `GET /slow/{ms}` | `ok` after `ms` milliseconds |
/// | `GET /bytes/{n}` | `n` bytes of `x` |
/// | `POST /ping` | `pong`, the request body read and dropped |
/// | `GET /close` | `pong`, then the connection is closed |
/// | `GET /inflight` | how many `/slow` requests are waiting right now |
///
/// It stops when dropped.
pub struct LoopbackServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LoopbackServer {
    /// Starts the server with `workers` runtime threads.
    pub fn start(workers: usize) -> LoopbackServer {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("bench-server".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers)
                    .enable_all()
                    .build()
                    .expect("server runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .expect("binding 127.0.0.1:0");
                    addr_tx
                        .send(listener.local_addr().expect("local address"))
                        .expect("bench thread waiting");
                    let inflight = Arc::new(AtomicUsize::new(0));
                    let waiting = inflight.clone();
                    let app = Router::new()
                        .route("/ping", get(|| async { "pong" }).post(|| async { "pong" }))
                        .route(
                            "/close",
                            get(|| async { ([(header::CONNECTION, "close")], "pong") }),
                        )
                        .route(
                            "/bytes/{n}",
                            get(|Path(n): Path<usize>| async move { vec![b'x'; n] }),
                        )
                        .route(
                            "/image",
                            get(|| async {
                                ([(header::CONTENT_TYPE, "application/json")], IMAGE_1K_JSON)
                            }),
                        )
                        .route(
                            "/slow/{ms}",
                            get(move |Path(ms): Path<u64>| {
                                let waiting = waiting.clone();
                                async move {
                                    let _waiting = Waiting::new(&waiting);
                                    tokio::time::sleep(Duration::from_millis(ms)).await;
                                    "ok"
                                }
                            }),
                        )
                        .route(
                            "/inflight",
                            get(move || async move { inflight.load(Ordering::SeqCst).to_string() }),
                        );
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })
            .expect("spawning the server thread");
        let addr = addr_rx.recv().expect("the server started");
        LoopbackServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Connections kept alive by clients would hold a graceful shutdown
        // open; the thread is detached rather than joined.
        drop(self.thread.take());
    }
}

/// Counts one waiting `/slow` request while alive (also when the client
/// goes away and the handler is dropped).
struct Waiting(Arc<AtomicUsize>);

impl Waiting {
    fn new(count: &Arc<AtomicUsize>) -> Waiting {
        count.fetch_add(1, Ordering::SeqCst);
        Waiting(count.clone())
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

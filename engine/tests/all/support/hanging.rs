//! A loopback HTTP server that accepts connections and never answers the
//! first ones: what a run waiting on a dead upstream sees.
//!
//! It runs on plain threads, not on the test's runtime, so it keeps
//! accepting while a test's current-thread runtime is busy.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The server. Its threads live as long as the test binary (they hold a
/// listener on a port nobody else knows).
pub struct HangingServer {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl HangingServer {
    /// A server that never answers any request.
    pub fn silent() -> HangingServer {
        HangingServer::start(usize::MAX)
    }

    /// A server that leaves the first `silent` connections unanswered (it
    /// reads them and holds them open) and answers each later request with
    /// `200` and the body `ok`.
    pub fn start(silent: usize) -> HangingServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let count = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let n = count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || serve(stream, n >= silent));
            }
        });
        HangingServer { port, connections }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Reads requests off `stream` until the client closes it, answering each
/// (once its headers are in) if `answer`.
fn serve(mut stream: TcpStream, answer: bool) {
    let mut buf = [0u8; 4096];
    let mut pending = Vec::new();
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        // The tests send requests without bodies.
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            pending.drain(..end + 4);
            if answer {
                let reply =
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 2\r\n\r\nok";
                if stream.write_all(reply).is_err() {
                    return;
                }
            }
        }
    }
}

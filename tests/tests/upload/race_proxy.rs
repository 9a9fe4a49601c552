//! A TCP proxy on 127.0.0.1 that lets another writer win a race: the first time a request line
//! naming one object passes towards the server (`PUT /<bucket>/<key>`), the proxy first runs the
//! other writer (a callback that writes that object straight to the server), then forwards the
//! request. The uploader has listed the bucket by then and found nothing at the key, so only the
//! write's own condition (`If-None-Match: *`) can keep it from replacing the other writer's object.
//!
//! The request line is looked for in every chunk sent towards the server, not only at the start
//! of a connection: the client sends many requests over one kept-alive connection.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

type Writer = Arc<dyn Fn() + Send + Sync>;

/// What the copy towards the server watches for: the request lines, the other writer, and
/// whether it ran.
struct Watch<'a> {
    lines: &'a [Vec<u8>],
    writer: &'a dyn Fn(),
    fired: &'a AtomicBool,
}

pub struct RaceProxy {
    addr: SocketAddr,
    fired: Arc<AtomicBool>,
}

impl RaceProxy {
    /// Proxies to `upstream`; runs `other_writer` once, just before the first `PUT` of `key` in
    /// `bucket` (path-style, as the suites address their servers) reaches the server.
    pub fn start(
        upstream: SocketAddr,
        bucket: &str,
        key: &str,
        other_writer: impl Fn() + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let fired = Arc::new(AtomicBool::new(false));
        let lines: Arc<Vec<Vec<u8>>> = Arc::new(
            ["?", " "]
                .iter()
                .map(|end| format!("PUT /{bucket}/{key}{end}").into_bytes())
                .collect(),
        );
        let writer: Writer = Arc::new(other_writer);
        let state = fired.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (lines, writer, fired) = (lines.clone(), writer.clone(), state.clone());
                std::thread::spawn(move || {
                    let watch = Watch {
                        lines: &lines,
                        writer: &*writer,
                        fired: &fired,
                    };
                    copy(c2, s2, Some(watch));
                });
                std::thread::spawn(move || copy(server, client, None));
            }
        });
        Self { addr, fired }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Whether the other writer ran (the watched request passed the proxy).
    pub fn fired(&self) -> bool {
        self.fired.load(Ordering::SeqCst)
    }
}

/// Copies until EOF; towards the server, runs the other writer before the first chunk that holds
/// the watched request line.
fn copy(mut from: TcpStream, mut to: TcpStream, watch: Option<Watch>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(w) = &watch {
            let chunk = &buf[..n];
            let holds = w
                .lines
                .iter()
                .any(|l| chunk.windows(l.len()).any(|c| c == l.as_slice()));
            if holds && !w.fired.swap(true, Ordering::SeqCst) {
                (w.writer)();
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

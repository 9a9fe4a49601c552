//! A TCP proxy on 127.0.0.1 that sits between the uploader and the emulator and misbehaves the
//! way real networks and real S3 do: connections reset before or in the middle of a request or
//! response, `500 InternalError` and `503 SlowDown` answers, and connections that stall without
//! ever answering. Faults stop after a budget so every test ends.
//!
//! A fault is chosen when a connection is accepted but only applied, and only recorded, once the
//! client starts a request on it, together with that request's first line (method and target), so
//! a test can tell which request each fault met. The HTTP client races a new connection against a pooled one
//! and keeps whichever is not used idle (or drops it), so a connection can carry no request at
//! all; a fault on such a connection meets no attempt and must not be counted as one that did.
//!
//! At most [`MAX_FAULTS_PER_REQUEST`] faults meet the same request (same request line, so the same
//! object or part), fewer than the uploader's attempts per request (8 by default). With a random
//! draw and no such bound, one unlucky object can meet a fault on every attempt; the upload then
//! rightly gives up, and the test would be measuring the dice, not the engine.

use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    ResetAtOnce,
    ResetAfter { bytes: usize, upstream: bool },
    Status503,
    Status500,
    Stall,
    Pass,
}

/// A fault that met a request: which, and the request line it met (`PUT /bucket/key?… HTTP/1.1`).
#[derive(Debug, Clone)]
pub struct Injected {
    pub fault: Fault,
    pub request: String,
}

/// Faults that may meet one request line before the proxy lets it through.
pub const MAX_FAULTS_PER_REQUEST: usize = 3;

pub struct FaultProxy {
    addr: SocketAddr,
    injected: Arc<Mutex<Vec<Injected>>>,
}

impl FaultProxy {
    /// Starts proxying to `upstream`: a fault on every connection until `at_least` faults have met
    /// requests, then on a random share of them; at most `budget` faults met by requests (and at
    /// most two stalls).
    pub fn start(upstream: SocketAddr, at_least: usize, budget: usize, seed: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let injected = Arc::new(Mutex::new(Vec::new()));
        let log = injected.clone();
        let stalls = Arc::new(AtomicUsize::new(0));
        let chosen = Arc::new(AtomicUsize::new(0));
        let per_request: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        std::thread::spawn(move || {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let met = chosen.load(Ordering::Relaxed);
                let fault = if met >= budget {
                    Fault::Pass
                } else {
                    // Until `at_least` faults have met requests, every connection gets one (the
                    // draw leaves out stalls and passes): a client that keeps a few healthy
                    // connections alive would otherwise meet only the faults of its first ones.
                    let roll = if met < at_least {
                        rng.gen_range(0..63)
                    } else {
                        rng.gen_range(0..100)
                    };
                    match roll {
                        0..=14 => Fault::ResetAtOnce,
                        15..=44 => Fault::ResetAfter {
                            bytes: rng.gen_range(1..6_000_000),
                            upstream: rng.gen_bool(0.7),
                        },
                        45..=54 => Fault::Status503,
                        55..=62 => Fault::Status500,
                        63..=66 if stalls.fetch_add(1, Ordering::Relaxed) < 2 => Fault::Stall,
                        _ => Fault::Pass,
                    }
                };
                let log = log.clone();
                let per_request = per_request.clone();
                let chosen = chosen.clone();
                std::thread::spawn(move || {
                    if fault == Fault::Pass {
                        return serve(client, upstream, fault);
                    }
                    if let Some(request) = request_line(&client) {
                        let met = {
                            let mut seen = per_request.lock().unwrap();
                            let n = seen.entry(request.clone()).or_default();
                            *n += 1;
                            *n
                        };
                        // The budget counts faults that met a request: one drawn for a
                        // connection the client then left idle must not use it up, or a run
                        // whose client opened spare connections ends with a handful of faults.
                        let within_budget = || {
                            chosen
                                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                                    (n < budget).then_some(n + 1)
                                })
                                .is_ok()
                        };
                        if met > MAX_FAULTS_PER_REQUEST || !within_budget() {
                            return serve(client, upstream, Fault::Pass);
                        }
                        log.lock().unwrap().push(Injected { fault, request });
                        serve(client, upstream, fault);
                    } else {
                        // Never used: closing it is what an idle timeout would do.
                        let _ = client.shutdown(Shutdown::Both);
                    }
                });
            }
        });
        Self { addr, injected }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn faults(&self) -> Vec<Injected> {
        self.injected.lock().unwrap().clone()
    }
}

/// Closes with RST instead of FIN, like a dropped NAT entry or a crashed peer.
fn reset(s: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    let _ = s.shutdown(Shutdown::Both);
}

/// Waits (bounded) for the start of a request without consuming it; its first line as far as it
/// has arrived, or `None` when the client never sends one.
fn request_line(client: &TcpStream) -> Option<String> {
    let _ = client.set_read_timeout(Some(Duration::from_secs(30)));
    let mut head = [0u8; 512];
    let seen = match client.peek(&mut head) {
        Ok(n) if n > 0 => Some(
            String::from_utf8_lossy(&head[..n])
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
        ),
        _ => None,
    };
    let _ = client.set_read_timeout(None);
    seen
}

fn read_head(client: &mut TcpStream) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(5)));
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
        match client.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

fn serve(mut client: TcpStream, upstream: SocketAddr, fault: Fault) {
    match fault {
        Fault::ResetAtOnce => reset(&client),
        Fault::Status503 | Fault::Status500 => {
            read_head(&mut client);
            let (status, code) = if fault == Fault::Status503 {
                ("503 Service Unavailable", "SlowDown")
            } else {
                ("500 Internal Server Error", "InternalError")
            };
            let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>");
            let _ = write!(client, "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            let _ = client.flush();
            std::thread::sleep(Duration::from_millis(50));
            reset(&client);
        }
        Fault::Stall => {
            // Swallow everything and never answer; the client's attempt timeout must fire.
            let _ = client.set_read_timeout(Some(Duration::from_secs(60)));
            let mut buf = [0u8; 65536];
            while matches!(client.read(&mut buf), Ok(n) if n > 0) {}
        }
        Fault::ResetAfter {
            bytes,
            upstream: up,
        } => pipe(client, upstream, Some((bytes, up))),
        Fault::Pass => pipe(client, upstream, None),
    }
}

fn pipe(client: TcpStream, upstream: SocketAddr, cut: Option<(usize, bool)>) {
    let Ok(server) = TcpStream::connect(upstream) else {
        reset(&client);
        return;
    };
    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let (cut_up, cut_down) = match cut {
        Some((n, true)) => (Some(n), None),
        Some((n, false)) => (None, Some(n)),
        None => (None, None),
    };
    let t = std::thread::spawn(move || copy(c2, s2, cut_up));
    copy(server, client, cut_down);
    let _ = t.join();
}

/// Copies until EOF; after `cut` bytes, resets both sides.
fn copy(mut from: TcpStream, mut to: TcpStream, cut: Option<usize>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0usize;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(limit) = cut {
            if total + n >= limit {
                let _ = to.write_all(&buf[..limit - total]);
                reset(&to);
                reset(&from);
                return;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        total += n;
    }
    let _ = to.shutdown(Shutdown::Write);
}

//! `wan-proxy`: a user-space TCP proxy that makes a loopback S3 endpoint behave like a lab's
//! uplink, so benchmarks and tests see what round trips and a bandwidth cap cost.
//!
//! - **Round trip.** Every chunk read in one direction is held for half the configured round
//!   trip before it is written on, so a request and its answer together take at least the round
//!   trip. Chunks are time-stamped and queued, never slept on inline: a connection keeps
//!   reading while earlier chunks wait (the link pipelines, as a real one does), and no
//!   connection waits for another's chunks.
//! - **Bandwidth.** One token bucket shared by all connections caps the bytes sent
//!   *upstream* (client → server): uploads are what a lab's uplink limits, and answers are small.
//!   `--cap-both` makes the server → client direction draw from the same bucket too.
//! - **Safe to leave running.** It listens on 127.0.0.1 only and exits after `--max-seconds`.
//!
//! Usage: `wan-proxy --target 127.0.0.1:PORT --rtt-ms 40 --mbit 500 [--listen 127.0.0.1:0]
//! [--cap-both] [--max-seconds 3600]`. The first line on stdout is the address it listens on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Mutex};
use tokio::time::Instant;

/// Bytes read at once per direction; at 500 Mbit/s 64 KiB is about 1 ms of link time.
const CHUNK: usize = 64 * 1024;
/// Chunks queued per direction and connection: well above a 40 ms, 1 Gbit/s window.
const QUEUE: usize = 4096;

struct Options {
    listen: SocketAddr,
    target: SocketAddr,
    rtt: Duration,
    /// Bytes per second; `None` for no cap.
    rate: Option<f64>,
    cap_both: bool,
    max_seconds: u64,
}

fn usage(msg: &str) -> ! {
    eprintln!("wan-proxy: {msg}\nusage: wan-proxy --target 127.0.0.1:PORT --rtt-ms MS [--mbit MBIT] [--listen 127.0.0.1:0] [--cap-both] [--max-seconds S]");
    std::process::exit(2)
}

fn parse_args() -> Options {
    let mut o = Options {
        listen: "127.0.0.1:0".parse().unwrap(),
        target: "127.0.0.1:0".parse().unwrap(),
        rtt: Duration::ZERO,
        rate: None,
        cap_both: false,
        max_seconds: 3600,
    };
    let mut target = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| usage(&format!("{name} needs a value")))
        };
        match a.as_str() {
            "--listen" => {
                o.listen = value("--listen")
                    .parse()
                    .unwrap_or_else(|_| usage("--listen: not an address like 127.0.0.1:0"))
            }
            "--target" => {
                o.target = value("--target")
                    .parse()
                    .unwrap_or_else(|_| usage("--target: not an address like 127.0.0.1:9000"));
                target = true;
            }
            "--rtt-ms" => {
                let ms: f64 = value("--rtt-ms")
                    .parse()
                    .unwrap_or_else(|_| usage("--rtt-ms: not a number"));
                o.rtt = Duration::from_secs_f64(ms.max(0.0) / 1000.0);
            }
            "--mbit" => {
                let mbit: f64 = value("--mbit")
                    .parse()
                    .unwrap_or_else(|_| usage("--mbit: not a number"));
                if mbit <= 0.0 {
                    usage("--mbit must be above 0 (leave it out for no cap)");
                }
                o.rate = Some(mbit * 1e6 / 8.0);
            }
            "--cap-both" => o.cap_both = true,
            "--max-seconds" => {
                o.max_seconds = value("--max-seconds")
                    .parse()
                    .unwrap_or_else(|_| usage("--max-seconds: not a whole number"))
            }
            other => usage(&format!("unknown argument {other}")),
        }
    }
    if !target {
        usage("--target is required");
    }
    if !o.listen.ip().is_loopback() {
        usage("--listen must be a loopback address (127.0.0.1): this proxy is for local tests");
    }
    o
}

/// A token bucket as a schedule: each chunk reserves its transmission time on one shared
/// timeline (`free_at`), so all connections together never exceed the rate, each in turn.
struct Bucket {
    rate: f64,
    free_at: Mutex<Instant>,
}

impl Bucket {
    /// Waits until `bytes` may go out.
    async fn take(&self, bytes: usize) {
        let cost = Duration::from_secs_f64(bytes as f64 / self.rate);
        let start = {
            let mut free = self.free_at.lock().await;
            let now = Instant::now();
            // A short burst allowance (one chunk's time) smooths scheduling jitter without
            // letting an idle link bank a large credit.
            let start = (*free).max(
                now.checked_sub(cost.min(Duration::from_millis(2)))
                    .unwrap_or(now),
            );
            *free = start + cost;
            start
        };
        tokio::time::sleep_until(start + cost).await;
    }
}

/// Copies one direction: read chunks, charge them to the bucket, stamp them with when they may
/// arrive, and let a writer task deliver each at its time.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    bucket: Option<Arc<Bucket>>,
) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(QUEUE);
    let writer = tokio::spawn(async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if chunk.is_empty() {
                break;
            }
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    });
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => 0,
            Ok(n) => n,
        };
        if n > 0 {
            if let Some(b) = &bucket {
                b.take(n).await;
            }
        }
        // An empty chunk carries the end of the stream, delayed like the data before it.
        if tx
            .send((Instant::now() + delay, buf[..n].to_vec()))
            .await
            .is_err()
            || n == 0
        {
            break;
        }
    }
    drop(tx);
    let _ = writer.await;
}

async fn serve(client: TcpStream, o: Arc<Options>, bucket: Option<Arc<Bucket>>) {
    let server = match TcpStream::connect(o.target).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wan-proxy: cannot reach {}: {e}", o.target);
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let half = o.rtt / 2;
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let down = if o.cap_both { bucket.clone() } else { None };
    tokio::join!(pipe(cr, sw, half, bucket), pipe(sr, cw, half, down));
}

#[tokio::main]
async fn main() {
    let o = Arc::new(parse_args());
    let listener = TcpListener::bind(o.listen).await.unwrap_or_else(|e| {
        eprintln!("wan-proxy: cannot listen on {}: {e}", o.listen);
        std::process::exit(1)
    });
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    println!("{addr}");
    eprintln!(
        "wan-proxy: {addr} → {}, round trip {:?}, cap {}, exits after {} s",
        o.target,
        o.rtt,
        o.rate.map_or("none".to_string(), |r| format!(
            "{:.0} Mbit/s {}",
            r * 8.0 / 1e6,
            if o.cap_both {
                "both directions"
            } else {
                "upstream"
            }
        )),
        o.max_seconds
    );
    let bucket = o.rate.map(|rate| {
        Arc::new(Bucket {
            rate,
            free_at: Mutex::new(Instant::now()),
        })
    });
    let accept = async {
        loop {
            match listener.accept().await {
                Ok((client, _)) => {
                    tokio::spawn(serve(client, o.clone(), bucket.clone()));
                }
                Err(e) => eprintln!("wan-proxy: accept: {e}"),
            }
        }
    };
    tokio::select! {
        _ = accept => {}
        _ = tokio::time::sleep(Duration::from_secs(o.max_seconds)) => {
            eprintln!("wan-proxy: --max-seconds reached, exiting");
        }
    }
}

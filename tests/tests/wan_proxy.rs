//! The `wan-proxy` benchmark helper does what the benchmarks rely on: every exchange through it
//! takes at least the round trip, connections do not wait for each other's delay, and the bytes
//! of all connections together stay under the cap.

use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const RTT_MS: u64 = 80;
const MBIT: f64 = 40.0;

/// A server on 127.0.0.1: echoes one byte per byte for pings; after a 0xFF byte it swallows the
/// rest of the stream and answers one byte when it ends (a sink).
async fn server() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut b = [0u8; 1];
                while s.read_exact(&mut b).await.is_ok() {
                    if b[0] == 0xFF {
                        let mut sink = vec![0u8; 64 * 1024];
                        while s.read(&mut sink).await.is_ok_and(|n| n > 0) {}
                        let _ = s.write_all(&[1]).await;
                        return;
                    }
                    if s.write_all(&b).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

struct Proxy {
    child: tokio::process::Child,
    addr: String,
}

async fn proxy(target: std::net::SocketAddr) -> Proxy {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wan-proxy"))
        .args([
            "--target",
            &target.to_string(),
            "--rtt-ms",
            &RTT_MS.to_string(),
        ])
        .args(["--mbit", &MBIT.to_string(), "--max-seconds", "120"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the wan-proxy binary runs");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .await
        .unwrap();
    let addr = line.trim().to_string();
    assert!(
        addr.starts_with("127.0.0.1:"),
        "listens on loopback: {addr:?}"
    );
    Proxy { child, addr }
}

async fn ping(addr: &str) -> Duration {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let t = Instant::now();
    s.write_all(&[7]).await.unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await.unwrap();
    assert_eq!(b, [7]);
    t.elapsed()
}

/// Sends `bytes` through a fresh connection and waits for the server's acknowledgement.
async fn send(addr: String, bytes: usize) {
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(&[0xFF]).await.unwrap();
    s.write_all(&vec![0x5A; bytes]).await.unwrap();
    s.shutdown().await.unwrap();
    let mut b = [0u8; 1];
    s.read_exact(&mut b).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn delay_is_at_least_the_round_trip_per_connection_and_the_cap_is_shared() {
    let mut p = proxy(server().await).await;
    let rtt = Duration::from_millis(RTT_MS);

    // One exchange costs at least the round trip, and not much more.
    for _ in 0..3 {
        let took = ping(&p.addr).await;
        assert!(
            took >= rtt,
            "a ping took {took:?}, under the {rtt:?} round trip"
        );
        assert!(took < rtt * 3, "a ping took {took:?}, far over {rtt:?}");
    }

    // Eight connections at once: each sees one round trip, not eight queued behind each other.
    let t = Instant::now();
    let pings: Vec<_> = (0..8)
        .map(|_| {
            let a = p.addr.clone();
            tokio::spawn(async move { ping(&a).await })
        })
        .collect();
    for h in pings {
        h.await.unwrap();
    }
    let together = t.elapsed();
    assert!(
        together < rtt * 3,
        "8 parallel pings took {together:?}: connections delay each other"
    );

    // 4 MB over two connections at once: together they stay under the one shared cap.
    let cap = MBIT * 1e6 / 8.0;
    let bytes = 2_000_000;
    let t = Instant::now();
    let a = tokio::spawn(send(p.addr.clone(), bytes));
    let b = tokio::spawn(send(p.addr.clone(), bytes));
    a.await.unwrap();
    b.await.unwrap();
    let took = t.elapsed().as_secs_f64();
    let rate = (2 * bytes) as f64 / took;
    eprintln!(
        "4 MB in {took:.2} s: {:.1} Mbit/s through a {MBIT} Mbit/s cap",
        rate * 8.0 / 1e6
    );
    assert!(
        rate <= cap * 1.1,
        "{rate:.0} B/s through a cap of {cap:.0} B/s"
    );
    assert!(
        rate >= cap * 0.5,
        "{rate:.0} B/s: far under the cap of {cap:.0} B/s"
    );
    p.child.kill().await.unwrap();
}

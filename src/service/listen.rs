//! Accepting the HTTP service's connections, with the limits `axum::serve` has no knobs for
//! (it keeps a socket that sends nothing open for ever): a time to send each request head, an
//! idle time for kept-alive connections, and caps on the connections open at once, in all and
//! per client ([`HttpLimits`]). Without them about 20,000 idle sockets used up the process's
//! file descriptors: the service stopped answering and a `dir:` source could no longer open
//! its pictures.
//!
//! A connection over a cap is answered `503` with the reason and closed at once; the
//! connections already open, and inference, go on. The HTTP side is hyper's HTTP/1 server
//! (what `axum::serve` runs, axum being built with `http1` only) serving the same router.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::settings::HttpLimits;

/// Refusals being handed over at once; past this a connection over the caps is closed
/// without an answer, so a flood of refused connections holds no more sockets either.
const MAX_REFUSING: usize = 64;
/// How long a refused client gets to take its `503` before the socket is closed anyway.
const REFUSAL_TIME: Duration = Duration::from_secs(2);

/// Accepts connections on `listener` and serves `app` on each, within `limits`; never ends.
pub(super) async fn serve_connections(listener: TcpListener, app: Router, limits: HttpLimits) {
    let admission = Arc::new(Admission::new(
        limits.max_connections,
        limits.max_per_client,
    ));
    let refusing = Arc::new(AtomicUsize::new(0));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            // The client gave up before it was accepted: nothing to do.
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors (EMFILE) or memory: wait for some to be freed
                // instead of spinning, as axum::serve does.
                log::error!("HTTP service: cannot accept a connection: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        match admission.admit(peer.ip()) {
            Ok(ticket) => {
                tokio::spawn(serve_connection(
                    stream,
                    app.clone(),
                    limits.clone(),
                    ticket,
                ));
            }
            Err(full) => {
                log::debug!("HTTP service: refusing {peer}: {}", full.reason());
                if refusing.fetch_add(1, Ordering::SeqCst) < MAX_REFUSING {
                    let refusing = refusing.clone();
                    tokio::spawn(async move {
                        refuse(stream, full).await;
                        refusing.fetch_sub(1, Ordering::SeqCst);
                    });
                } else {
                    refusing.fetch_sub(1, Ordering::SeqCst);
                    drop(stream);
                }
            }
        }
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// One connection, HTTP/1.1 with keep-alive. hyper closes it when a request head takes longer
/// than `header_read` (its timer starts when it waits for a head); a watchdog closes it
/// gracefully after `idle` without traffic, since hyper does not start that timer on a
/// kept-alive connection until the next request's first bytes arrive.
async fn serve_connection(stream: TcpStream, app: Router, limits: HttpLimits, ticket: Ticket) {
    let activity = Activity::new();
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    let mut conn = Box::pin(http.serve_connection(io, TowerToHyperService::new(app)));
    let mut closing = false;
    loop {
        let quiet = tokio::time::Instant::from_std(activity.quiet_until(limits.idle));
        tokio::select! {
            ended = conn.as_mut() => {
                if let Err(e) = ended {
                    log::debug!("HTTP connection ended: {e}");
                }
                break;
            }
            () = tokio::time::sleep_until(quiet), if !closing => {
                if activity.quiet_until(limits.idle) <= Instant::now() {
                    // Closes at once between requests; an answer still being sent (a preview
                    // stream, a capture) finishes first, then the connection closes.
                    conn.as_mut().graceful_shutdown();
                    closing = true;
                }
            }
        }
    }
    // The connection's place is free only once its socket is closed.
    drop(conn);
    drop(ticket);
}

/// When a connection last read or wrote, shared by its socket and its watchdog.
#[derive(Clone)]
struct Activity {
    start: Instant,
    /// Milliseconds after `start`.
    last: Arc<AtomicU64>,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
        }
    }

    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(ms, Ordering::Relaxed);
    }

    /// When the connection will have been quiet for `idle`, unless it reads or writes first.
    fn quiet_until(&self, idle: Duration) -> Instant {
        self.start + Duration::from_millis(self.last.load(Ordering::Relaxed)) + idle
    }
}

/// A socket that notes each read and write in its [`Activity`].
struct Watched {
    inner: TcpStream,
    activity: Activity,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        if poll.is_ready() {
            this.activity.touch();
        }
        poll
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        if poll.is_ready() {
            this.activity.touch();
        }
        poll
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if poll.is_ready() {
            this.activity.touch();
        }
        poll
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// How many connections each client, and all of them, hold; decides whether one more may open.
struct Admission {
    max_total: usize,
    max_per_client: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// Why a connection is refused, with the limit reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Full {
    All(usize),
    Client(usize),
}

impl Full {
    fn reason(self) -> String {
        match self {
            Full::All(n) => {
                format!("the service has {n} connections open, its limit: try again in a moment")
            }
            Full::Client(n) => format!(
                "{n} connections from your address are open, the limit per client: close some \
                 (previews, event streams, other tabs) and try again"
            ),
        }
    }
}

/// An admitted connection's place; dropping it frees the place.
struct Ticket {
    admission: Arc<Admission>,
    client: IpAddr,
}

impl Admission {
    fn new(max_total: usize, max_per_client: usize) -> Admission {
        Admission {
            max_total,
            max_per_client,
            open: Mutex::new(Open::default()),
        }
    }

    fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Ticket, Full> {
        let client = client_key(ip);
        let mut guard = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let open = &mut *guard;
        if open.total >= self.max_total {
            return Err(Full::All(self.max_total));
        }
        let held = open.per_client.get(&client).copied().unwrap_or(0);
        if held >= self.max_per_client {
            return Err(Full::Client(self.max_per_client));
        }
        open.per_client.insert(client, held + 1);
        open.total += 1;
        Ok(Ticket {
            admission: self.clone(),
            client,
        })
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut guard = self
            .admission
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let open = &mut *guard;
        open.total = open.total.saturating_sub(1);
        let left = match open.per_client.get_mut(&self.client) {
            Some(held) => {
                *held = held.saturating_sub(1);
                *held
            }
            None => return,
        };
        if left == 0 {
            open.per_client.remove(&self.client);
        }
    }
}

/// The address a client is counted under: IPv4 as it is (also when mapped into IPv6), IPv6
/// by its /64, the block one host is usually given.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        v4 => v4,
    }
}

/// Answers `503` with the reason and closes, within [`REFUSAL_TIME`].
async fn refuse(mut stream: TcpStream, full: Full) {
    let body = serde_json::json!({ "error": full.reason() }).to_string();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSAL_TIME, hand_over(&mut stream, answer.as_bytes())).await;
}

/// Writes `answer`, ends the sending side, then reads what the client sent until it closes:
/// closing a socket with unread data resets the connection, and the client could lose the
/// answer before reading it.
async fn hand_over(stream: &mut TcpStream, answer: &[u8]) -> io::Result<()> {
    let mut sent = 0;
    while sent < answer.len() {
        stream.writable().await?;
        match stream.try_write(&answer[sent..]) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_shutdown(cx)).await?;
    let mut sink = [0u8; 1024];
    loop {
        stream.readable().await?;
        match stream.try_read(&mut sink) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::SocketAddr;

    /// The accept loop on loopback, serving `ok` at `/`.
    fn start(limits: HttpLimits) -> (tokio::runtime::Runtime, SocketAddr) {
        let runtime = super::super::runtime().unwrap();
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let listener = {
            let _entered = runtime.enter();
            TcpListener::from_std(std_listener).unwrap()
        };
        let app = Router::new().route("/", axum::routing::get(|| async { "ok" }));
        runtime.spawn(serve_connections(listener, app, limits));
        (runtime, addr)
    }

    fn limits(header_read: u64, idle: u64, max_connections: usize) -> HttpLimits {
        HttpLimits {
            header_read: Duration::from_secs(header_read),
            idle: Duration::from_secs(idle),
            max_connections,
            ..HttpLimits::default()
        }
    }

    /// Whether the server closes the connection (reading until it does, at most 20 s per read).
    fn closed_by_server(s: &mut std::net::TcpStream) -> bool {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return true,
                // Timed out: still open.
                Err(_) => return false,
            }
        }
    }

    /// `GET /` on a fresh connection, read to its end: the answer's text.
    fn get(addr: SocketAddr) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        s.read_to_end(&mut answer).unwrap();
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[test]
    fn silent_and_half_sent_requests_are_closed_after_the_header_time() {
        let (_runtime, addr) = start(limits(1, 600, 10));
        let mut silent = std::net::TcpStream::connect(addr).unwrap();
        let mut half = std::net::TcpStream::connect(addr).unwrap();
        half.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
        assert!(
            closed_by_server(&mut silent),
            "a silent connection stayed open"
        );
        assert!(
            closed_by_server(&mut half),
            "half a request head kept it open"
        );
    }

    #[test]
    fn a_kept_alive_connection_is_closed_once_idle() {
        // The header time is long: only the idle time can close it within the test.
        let (_runtime, addr) = start(limits(600, 1, 10));
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 1024];
        while !answer.ends_with(b"\r\n\r\nok") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed before the answer");
            answer.extend_from_slice(&buf[..n]);
        }
        assert!(answer.starts_with(b"HTTP/1.1 200"));
        assert!(closed_by_server(&mut s), "an idle connection stayed open");
    }

    #[test]
    fn connections_over_the_cap_are_answered_503_and_the_others_served() {
        let (_runtime, addr) = start(limits(600, 600, 3));
        let held: Vec<_> = (0..3)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        let refused = get(addr);
        assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
        assert!(
            refused.contains("the service has 3 connections open, its limit"),
            "{refused}"
        );
        drop(held);
        // The places are free once the server has seen the sockets close.
        let served = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            get(addr).starts_with("HTTP/1.1 200")
        });
        assert!(served, "no answer after the held connections closed");
    }

    #[test]
    fn places_are_counted_per_client_and_in_all() {
        let admission = Arc::new(Admission::new(3, 2));
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let two: IpAddr = "192.0.2.2".parse().unwrap();
        let first = admission.admit(one).unwrap();
        let _second = admission.admit(one).unwrap();
        assert_eq!(admission.admit(one).err(), Some(Full::Client(2)));
        // The same address mapped into IPv6 is the same client.
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(admission.admit(mapped).err(), Some(Full::Client(2)));
        let _third = admission.admit(two).unwrap();
        assert_eq!(admission.admit(two).err(), Some(Full::All(3)));
        drop(first);
        assert!(admission.admit(one).is_ok());
        // Addresses of one IPv6 /64 count as one client.
        assert_eq!(
            client_key("2001:db8:1:2::5".parse().unwrap()),
            client_key("2001:db8:1:2:ffff::9".parse().unwrap())
        );
        assert_ne!(
            client_key("2001:db8:1:2::5".parse().unwrap()),
            client_key("2001:db8:1:3::5".parse().unwrap())
        );
    }
}

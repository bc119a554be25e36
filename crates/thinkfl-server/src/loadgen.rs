//! A small HTTP/1.1 load client for benchmarks and tests: many keep-alive connections, each
//! sending requests from a list of probes whose exact expected answers are known, malformed ones
//! included. Bounded by a request count and a deadline; loopback targets only.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One request and what must come back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The whole request as sent (may be deliberately malformed).
    pub raw: Vec<u8>,
    /// The status the answer must have.
    pub expect_status: u16,
    /// The exact body expected, when known.
    pub expect_body: Option<Vec<u8>>,
    /// The body must contain this, when set.
    pub expect_contains: Option<String>,
    /// The server closes the connection after answering (a request it cannot parse as HTTP).
    pub closes: bool,
}

impl Probe {
    /// `GET path`, answered with `expect_status`.
    pub fn get(path: &str, expect_status: u16) -> Self {
        Self {
            raw: format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes(),
            expect_status,
            expect_body: None,
            expect_contains: None,
            closes: false,
        }
    }

    /// Bytes that are not HTTP: the server answers 400 and closes.
    pub fn garbage(raw: &[u8]) -> Self {
        Self {
            raw: raw.to_vec(),
            expect_status: 400,
            expect_body: None,
            expect_contains: None,
            closes: true,
        }
    }

    /// `POST path` with a JSON `body`, answered with `expect_status`.
    pub fn post_json(path: &str, body: &str, expect_status: u16) -> Self {
        Self {
            raw: format!(
                "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes(),
            expect_status,
            expect_body: None,
            expect_contains: None,
            closes: false,
        }
    }

    /// The answer's body must be exactly `body`.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.expect_body = Some(body.into());
        self
    }

    /// The answer's body must contain `s`.
    pub fn containing(mut self, s: impl Into<String>) -> Self {
        self.expect_contains = Some(s.into());
        self
    }
}

/// Settings of one load run.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadConfig {
    /// The server.
    pub addr: SocketAddr,
    /// Concurrent keep-alive connections.
    pub connections: usize,
    /// Total requests over all connections.
    pub requests: usize,
    /// Stop sending after this long even if requests remain.
    pub deadline: Duration,
    /// Per-response read timeout.
    pub io_timeout: Duration,
}

/// What a run measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadReport {
    /// Requests sent.
    pub sent: usize,
    /// Responses with the expected status and body.
    pub correct: usize,
    /// Responses that came back wrong; the first few are described in `examples`.
    pub wrong: usize,
    /// Connection failures, timeouts and unparsable responses.
    pub io_errors: usize,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Latency of each answered request, µs.
    pub latencies_us: Vec<u32>,
    /// The first wrong answers, described.
    pub examples: Vec<String>,
}

impl LoadReport {
    /// Requests sent per second of the run.
    pub fn requests_per_s(&self) -> f64 {
        self.sent as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Latency quantile in µs (`q` in 0..=1); 0 with no samples.
    pub fn latency_us(&self, q: f64) -> u32 {
        let mut v = self.latencies_us.clone();
        if v.is_empty() {
            return 0;
        }
        v.sort_unstable();
        v[((v.len() - 1) as f64 * q).round() as usize]
    }
}

/// One parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header, when sent.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
    /// The server said `Connection: close`.
    pub close: bool,
}

impl Response {
    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one raw request on a fresh connection and reads the answer.
pub async fn send_once(
    addr: SocketAddr,
    raw: &[u8],
    timeout: Duration,
) -> std::io::Result<Response> {
    tokio::time::timeout(timeout, async {
        let mut s = BufReader::new(TcpStream::connect(addr).await?);
        s.get_mut().write_all(raw).await?;
        read_response(&mut s).await
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time"))?
}

/// Sends one raw request on an open keep-alive connection and reads the answer (clients that
/// chain requests, such as an episode's steps, keep one connection per client).
pub async fn send_on(
    conn: &mut BufReader<TcpStream>,
    raw: &[u8],
    timeout: Duration,
) -> std::io::Result<Response> {
    tokio::time::timeout(timeout, async {
        conn.get_mut().write_all(raw).await?;
        read_response(conn).await
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time"))?
}

async fn read_response(r: &mut BufReader<TcpStream>) -> std::io::Result<Response> {
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, m.to_string());
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        return Err(bad("connection closed before a response"));
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let mut len: Option<usize> = None;
    let mut close = false;
    let mut chunked = false;
    let mut content_type = None;
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Err(bad("connection closed in headers"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            match k.as_str() {
                "content-length" => len = v.parse().ok(),
                "connection" => close = v.eq_ignore_ascii_case("close"),
                "content-type" => content_type = Some(v.to_string()),
                "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
                _ => {}
            }
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).await?;
            let n = usize::from_str_radix(line.trim(), 16).map_err(|_| bad("bad chunk size"))?;
            let mut chunk = vec![0u8; n + 2];
            r.read_exact(&mut chunk).await?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = len {
        body.resize(n, 0);
        r.read_exact(&mut body).await?;
    }
    Ok(Response {
        status,
        content_type,
        body,
        close,
    })
}

fn check(p: &Probe, resp: &Response) -> Result<(), String> {
    if resp.status != p.expect_status {
        return Err(format!(
            "status {} instead of {} for {:?}: {}",
            resp.status,
            p.expect_status,
            String::from_utf8_lossy(&p.raw[..p.raw.len().min(80)]),
            String::from_utf8_lossy(&resp.body[..resp.body.len().min(200)])
        ));
    }
    if let Some(b) = &p.expect_body
        && *b != resp.body
    {
        return Err(format!(
            "unexpected body for {:?}: {}",
            String::from_utf8_lossy(&p.raw[..p.raw.len().min(80)]),
            String::from_utf8_lossy(&resp.body[..resp.body.len().min(200)])
        ));
    }
    if let Some(s) = &p.expect_contains
        && !String::from_utf8_lossy(&resp.body).contains(s.as_str())
    {
        return Err(format!(
            "body lacks {s:?}: {}",
            String::from_utf8_lossy(&resp.body[..resp.body.len().min(200)])
        ));
    }
    Ok(())
}

/// Runs the load: connection `c` sends probes `c, c + connections, ...` (mod the list), so the
/// mix is deterministic. Refuses a non-loopback target.
pub async fn run(cfg: &LoadConfig, probes: Arc<Vec<Probe>>) -> std::io::Result<LoadReport> {
    if !cfg.addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the load client only targets loopback addresses",
        ));
    }
    if probes.is_empty() || cfg.connections == 0 {
        return Ok(LoadReport::default());
    }
    let remaining = Arc::new(AtomicUsize::new(cfg.requests));
    let start = Instant::now();
    let deadline = start + cfg.deadline;
    let mut tasks = Vec::with_capacity(cfg.connections);
    for c in 0..cfg.connections {
        let probes = probes.clone();
        let remaining = remaining.clone();
        let (addr, io_timeout, conns) = (cfg.addr, cfg.io_timeout, cfg.connections);
        tasks.push(tokio::spawn(async move {
            let mut rep = LoadReport::default();
            let mut conn: Option<BufReader<TcpStream>> = None;
            let mut k = c;
            loop {
                if Instant::now() >= deadline
                    || remaining
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |r| r.checked_sub(1))
                        .is_err()
                {
                    break;
                }
                let p = &probes[k % probes.len()];
                k += conns;
                if conn.is_none() {
                    match tokio::time::timeout(io_timeout, TcpStream::connect(addr)).await {
                        Ok(Ok(s)) => {
                            let _ = s.set_nodelay(true);
                            conn = Some(BufReader::new(s));
                        }
                        _ => {
                            rep.sent += 1;
                            rep.io_errors += 1;
                            continue;
                        }
                    }
                }
                let stream = conn.as_mut().expect("connected above");
                let t0 = Instant::now();
                rep.sent += 1;
                let res = tokio::time::timeout(io_timeout, async {
                    stream.get_mut().write_all(&p.raw).await?;
                    read_response(stream).await
                })
                .await;
                match res {
                    Ok(Ok(resp)) => {
                        rep.latencies_us
                            .push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                        match check(p, &resp) {
                            Ok(()) => rep.correct += 1,
                            Err(e) => {
                                rep.wrong += 1;
                                if rep.examples.len() < 3 {
                                    rep.examples.push(e);
                                }
                            }
                        }
                        if resp.close || p.closes {
                            conn = None;
                        }
                    }
                    Ok(Err(e)) => {
                        rep.io_errors += 1;
                        if rep.examples.len() < 3 {
                            rep.examples.push(format!("io: {e}"));
                        }
                        conn = None;
                    }
                    Err(_) => {
                        rep.io_errors += 1;
                        if rep.examples.len() < 3 {
                            rep.examples.push("timeout".into());
                        }
                        conn = None;
                    }
                }
            }
            rep
        }));
    }
    let mut total = LoadReport::default();
    for t in tasks {
        let r = t.await.map_err(std::io::Error::other)?;
        total.sent += r.sent;
        total.correct += r.correct;
        total.wrong += r.wrong;
        total.io_errors += r.io_errors;
        total.latencies_us.extend(r.latencies_us);
        for e in r.examples {
            if total.examples.len() < 5 {
                total.examples.push(e);
            }
        }
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

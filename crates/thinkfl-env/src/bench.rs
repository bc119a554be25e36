//! `thinkfl bench env`: many concurrent episodes against a running environment server, each
//! on its own keep-alive connection, played by a fixed script with malformed replies and
//! malformed requests mixed in. Valid steps must all answer 200; malformed replies must answer
//! 200 with an error observation (`valid: false`), malformed requests a JSON 4xx.

use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use thinkfl_server::loadgen::{Response, send_on};
use tokio::io::BufReader;
use tokio::net::TcpStream;

/// Settings of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvBenchConfig {
    /// The server.
    pub addr: SocketAddr,
    /// Episodes in flight at once (one connection each).
    pub concurrency: usize,
    /// Episodes each client plays in a row.
    pub episodes_per_client: usize,
    /// Stop starting episodes after this long.
    pub deadline: Duration,
    /// Per-request timeout.
    pub io_timeout: Duration,
}

/// A question to play: data set id, case, entry span.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    /// Data set id.
    pub dataset: String,
    /// Case index.
    pub case: usize,
    /// Entry span.
    pub span: String,
}

/// What a run measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnvBenchReport {
    /// Episodes played to `done` and graded.
    pub episodes: usize,
    /// Step requests with a well-formed body (valid or malformed model text).
    pub steps: usize,
    /// Of those, model texts that were not a valid call (answered with an error observation).
    pub malformed_text_steps: usize,
    /// Requests with a malformed body (bad JSON, missing field).
    pub malformed_requests: usize,
    /// Answers that were not what the script expected (a non-200 to a well-formed step, a 200 to
    /// a malformed request, a `done` at the wrong step), or I/O failures.
    pub errors: usize,
    /// The first errors, described.
    pub examples: Vec<String>,
    /// Wall time.
    pub elapsed: Duration,
    /// Latency of each well-formed step, µs.
    pub step_latencies_us: Vec<u32>,
}

impl EnvBenchReport {
    /// Well-formed steps per second.
    pub fn steps_per_s(&self) -> f64 {
        self.steps as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Step latency quantile, µs.
    pub fn step_latency_us(&self, q: f64) -> u32 {
        let mut v = self.step_latencies_us.clone();
        if v.is_empty() {
            return 0;
        }
        v.sort_unstable();
        v[((v.len() - 1) as f64 * q).round() as usize]
    }
}

fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn call(name: &str, args: Value) -> String {
    format!(
        "<tool_call>{}</tool_call>",
        json!({"name": name, "arguments": args})
    )
}

/// The script of one episode: (model text, whether it is a valid call, whether it ends the
/// episode). Three answers walk the three phases; a malformed reply sits in the first.
fn script(q: &Question) -> Vec<(String, bool, bool)> {
    let answer = call(
        "print_results",
        json!({"root_causes": [{"pod": "frontend-0", "reason": "slowest span"}]}),
    );
    vec![
        (
            call("search_traces", json!({"parent_span_id": q.span})),
            true,
            false,
        ),
        (
            "<tool_call>{\"name\": \"search_traces\", \"arguments\": {".into(),
            false,
            false,
        ),
        (answer.clone(), true, false),
        (
            call("search_traces", json!({"parent_span_id": q.span})),
            true,
            false,
        ),
        (answer.clone(), true, false),
        (answer, true, true),
    ]
}

fn note(rep: &mut EnvBenchReport, m: String) {
    rep.errors += 1;
    if rep.examples.len() < 3 {
        rep.examples.push(m);
    }
}

struct Client {
    conn: BufReader<TcpStream>,
    timeout: Duration,
}

impl Client {
    async fn send(&mut self, raw: &[u8]) -> std::io::Result<(Response, Duration)> {
        let t0 = Instant::now();
        let r = send_on(&mut self.conn, raw, self.timeout).await?;
        Ok((r, t0.elapsed()))
    }
}

fn json_of(r: &Response) -> Value {
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

async fn play(c: &mut Client, q: &Question, rep: &mut EnvBenchReport) -> std::io::Result<()> {
    let body = json!({"dataset": q.dataset, "case": q.case, "query_span": q.span, "reward": 3});
    let (r, _) = c.send(&post("/v1/episodes", &body.to_string())).await?;
    let Some(id) = json_of(&r)["episode_id"].as_str().map(str::to_string) else {
        note(rep, format!("create answered {}: {}", r.status, r.text()));
        return Ok(());
    };
    let path = format!("/v1/episodes/{id}/step");
    // A malformed request: a body that is not the step's shape.
    let (r, _) = c.send(&post(&path, "{\"txt\": 1}")).await?;
    rep.malformed_requests += 1;
    if !(400..500).contains(&r.status) || json_of(&r)["error"].as_str().is_none() {
        note(rep, format!("malformed step body answered {}", r.status));
    }
    for (text, valid, ends) in script(q) {
        let body = json!({ "text": text }).to_string();
        let (r, dt) = c.send(&post(&path, &body)).await?;
        rep.steps += 1;
        rep.step_latencies_us
            .push(dt.as_micros().min(u32::MAX as u128) as u32);
        if !valid {
            rep.malformed_text_steps += 1;
        }
        let v = json_of(&r);
        let ok = r.status == 200
            && v["valid"].as_bool() == Some(valid)
            && v["done"].as_bool() == Some(ends)
            && v["observation"].as_array().is_some_and(|o| !o.is_empty());
        if !ok {
            note(
                rep,
                format!("step {text:?} answered {}: {}", r.status, r.text()),
            );
            return Ok(());
        }
    }
    let (r, _) = c
        .send(&post(&format!("/v1/episodes/{id}/grade"), ""))
        .await?;
    if r.status != 200 || json_of(&r)["reward"].as_f64().is_none() {
        note(rep, format!("grade answered {}: {}", r.status, r.text()));
        return Ok(());
    }
    let del = format!("DELETE /v1/episodes/{id} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let (r, _) = c.send(del.as_bytes()).await?;
    if r.status != 204 {
        note(rep, format!("delete answered {}", r.status));
        return Ok(());
    }
    rep.episodes += 1;
    Ok(())
}

/// Runs the load: `concurrency` clients, each playing `episodes_per_client` questions drawn
/// round-robin from `questions`.
pub async fn run(
    cfg: &EnvBenchConfig,
    questions: Arc<Vec<Question>>,
) -> std::io::Result<EnvBenchReport> {
    if questions.is_empty() {
        return Err(std::io::Error::other("no questions to play"));
    }
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(cfg.concurrency);
    for client in 0..cfg.concurrency {
        let cfg = cfg.clone();
        let questions = questions.clone();
        tasks.push(tokio::spawn(async move {
            let mut rep = EnvBenchReport::default();
            let mut c = match TcpStream::connect(cfg.addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    Client {
                        conn: BufReader::new(s),
                        timeout: cfg.io_timeout,
                    }
                }
                Err(e) => {
                    note(&mut rep, format!("connect: {e}"));
                    return rep;
                }
            };
            for k in 0..cfg.episodes_per_client {
                if start.elapsed() > cfg.deadline {
                    break;
                }
                let q = &questions[(client * cfg.episodes_per_client + k) % questions.len()];
                if let Err(e) = play(&mut c, q, &mut rep).await {
                    note(&mut rep, format!("i/o: {e}"));
                    break;
                }
            }
            rep
        }));
    }
    let mut total = EnvBenchReport::default();
    for t in tasks {
        let r = t.await.map_err(std::io::Error::other)?;
        total.episodes += r.episodes;
        total.steps += r.steps;
        total.malformed_text_steps += r.malformed_text_steps;
        total.malformed_requests += r.malformed_requests;
        total.errors += r.errors;
        for e in r.examples {
            if total.examples.len() < 5 {
                total.examples.push(e);
            }
        }
        total.step_latencies_us.extend(r.step_latencies_us);
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

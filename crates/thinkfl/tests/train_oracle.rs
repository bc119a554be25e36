//! `thinkfl train --oracle openai:URL#MODEL`: stage 0 asks an OpenAI-compatible server for its
//! trajectories (here a canned server in the test that always blames a pod that does not exist)
//! and rejection sampling keeps none of its wrong answers.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Answers every chat completion with a print_results naming `pod`; counts the requests.
fn canned_server(pod: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            let _ = reader.read_exact(&mut body);
            seen.fetch_add(1, Ordering::SeqCst);
            let content = format!(
                "<tool_call>{{\"name\": \"print_results\", \"arguments\": {{\"root_causes\": [{{\"pod\": \"{pod}\", \"service\": \"{}\"}}]}}}}</tool_call>",
                pod.rsplit_once('-').unwrap().0
            );
            let reply = serde_json::json!({
                "choices": [{"message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 20}
            })
            .to_string();
            let mut s = stream;
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (url, count)
}

#[test]
fn stage_zero_asks_an_openai_oracle_and_drops_its_wrong_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("sim");
    common::simulate_small(&data);
    let bin = env!("CARGO_BIN_EXE_thinkfl");
    let (url, requests) = canned_server("nosuchservice-0");
    let config = tmp.path().join("stages.toml");
    std::fs::write(
        &config,
        "seed = 1\nheld_out_fraction = 0.3\n[[stage]]\nname = \"prime\"\nkind = \"sft\"\nsteps = 1\nbatch = 1\nlr = 1e-4\n",
    )
    .unwrap();
    let out = Command::new(bin)
        .args(["train", "--quiet", "--until-stage", "0", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(tmp.path().join("run"))
        .arg("--oracle")
        .arg(format!("openai:{url}#canned"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        requests.load(Ordering::SeqCst) > 0,
        "the oracle was never asked: {err}"
    );
    assert!(
        err.contains(" 0 of ")
            && err.contains(&format!("oracle (openai:{url}#canned) trajectories right")),
        "{err}"
    );
    // Nothing right, nothing to prime on: a clear error, not an empty training run.
    assert!(!out.status.success());
    assert!(err.contains("no training sequences"), "{err}");

    let bad = Command::new(bin)
        .args(["train", "--oracle", "gpt", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(tmp.path().join("run2"))
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let e = String::from_utf8_lossy(&bad.stderr);
    assert!(
        e.contains("--oracle gpt") && e.contains("openai:URL#MODEL"),
        "{e}"
    );
}

/// A corpus data set with nothing to ask about (here: its traces removed) is skipped with a
/// warning naming it, and the run goes on with the others; the same set alone is an error.
#[test]
fn a_corpus_set_without_queries_is_skipped_and_alone_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    let bin = env!("CARGO_BIN_EXE_thinkfl");
    let ok = Command::new(bin)
        .args([
            "corpus", "build", "--scale", "small", "--seed", "5", "--out",
        ])
        .arg(&corpus)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let manifest_path = corpus.join("corpus.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    let sets = m["datasets"].as_array_mut().unwrap();
    let first = sets
        .iter()
        .find(|e| e["role"] == "train" && e["excerpt_of"].is_null())
        .unwrap()
        .clone();
    let mut quiet = first.clone();
    let quiet_path = format!("{}-quiet", first["path"].as_str().unwrap());
    quiet["path"] = quiet_path.clone().into();
    quiet["name"] = format!("{}-quiet", first["name"].as_str().unwrap()).into();
    let (src, dst) = (
        corpus.join(first["path"].as_str().unwrap()),
        corpus.join(&quiet_path),
    );
    std::fs::create_dir_all(dst.join("log/all")).unwrap();
    std::fs::copy(src.join("groundtruth.csv"), dst.join("groundtruth.csv")).unwrap();
    let log = "log/all/log_filebeat-testbed-log-service.csv";
    std::fs::copy(src.join(log), dst.join(log)).unwrap();
    *sets = vec![first, quiet];
    std::fs::write(&manifest_path, m.to_string()).unwrap();

    let (url, _) = canned_server("nosuchservice-0");
    let config = tmp.path().join("stages.toml");
    std::fs::write(
        &config,
        "seed = 1\n[[stage]]\nname = \"prime\"\nkind = \"sft\"\nsteps = 1\nbatch = 1\nlr = 1e-4\n",
    )
    .unwrap();
    let run = |source: &[&std::ffi::OsStr], out: &str| {
        let o = Command::new(bin)
            .args(["train", "--quiet", "--until-stage", "0", "--config"])
            .arg(&config)
            .args(source)
            .arg("--out")
            .arg(tmp.path().join(out))
            .arg("--oracle")
            .arg(format!("openai:{url}#canned"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let err = run(&["--corpus".as_ref(), manifest_path.as_os_str()], "run");
    assert!(
        err.contains(&format!("{quiet_path}: no anomalous-trace queries"))
            && err.contains("skipped"),
        "{err}"
    );
    // The other set went on to the oracle (which is always wrong here).
    assert!(err.contains("trajectories right"), "{err}");
    let err = run(&["--data".as_ref(), dst.as_os_str()], "run2");
    assert!(
        err.contains("no anomalous-trace queries") && !err.contains("skipped"),
        "{err}"
    );
}

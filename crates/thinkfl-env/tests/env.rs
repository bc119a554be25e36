//! The environment against the in-process actor: the scripted expert's episodes stepped through
//! the service give the same messages and the same reward as `thinkfl`'s own actor and grader;
//! malformed replies are error observations; stage 2's cache is per run; TTL; the HTTP layer's
//! errors; OpenRLHF's `/get_reward`; the verl parquet export read back.

use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use thinkfl_agent::expert::ExpertConfig;
use thinkfl_agent::{Actor, ExpertPolicy};
use thinkfl_core::Role;
use thinkfl_env::replay::{assistant_texts, grade_as_training, replay};
use thinkfl_env::service::CreateRequest;
use thinkfl_env::{EnvConfig, EnvDataset, EnvService};
use thinkfl_grader::Reward;
use thinkfl_server::loadgen::send_once;
use thinkfl_server::{LoadedDataset, ServeLimits};
use thinkfl_sim::SimConfig;
use thinkfl_store::TelemetryStore;

fn sim_dataset() -> thinkfl_core::Dataset {
    thinkfl_sim::simulate_dataset(&SimConfig {
        duration_s: 3600,
        faults: 5,
        seed: 3,
        ..SimConfig::default()
    })
    .expect("simulates")
}

fn service(cfg: EnvConfig) -> (EnvService, Arc<TelemetryStore>) {
    let data = sim_dataset();
    let store = Arc::new(TelemetryStore::from_dataset(data.clone()));
    let ds = EnvDataset::new(LoadedDataset::new(
        "sim-s3",
        TelemetryStore::from_dataset(data),
    ));
    (EnvService::new(vec![ds], cfg).unwrap(), store)
}

fn cases_with_queries(s: &EnvService) -> Vec<usize> {
    let d = &s.datasets()[0];
    (0..d.queries.len())
        .filter(|&c| !d.queries[c].is_empty())
        .collect()
}

fn create(s: &EnvService, case: usize, reward: Value, run: &str) -> String {
    let v = s
        .create(&CreateRequest {
            case,
            reward: Some(reward),
            run: Some(run.into()),
            ..Default::default()
        })
        .unwrap();
    v["episode_id"].as_str().unwrap().to_string()
}

#[test]
fn expert_episodes_served_equal_the_in_process_actor_and_grader() {
    let (s, store) = service(EnvConfig::default());
    let cases = cases_with_queries(&s);
    assert!(cases.len() >= 2, "the simulated set has questions");
    for &case in &cases {
        let d = &s.datasets()[0];
        let q = d.queries[case][0].clone();
        let actor = Actor::new(
            ExpertPolicy::new(store.clone(), ExpertConfig::default()),
            s.config().episode_config(),
        )
        .unwrap();
        let reference = actor.run(&store, &q).unwrap();
        let texts = assistant_texts(&reference);
        for reward in [
            Reward::Stage(1),
            Reward::Stage(3),
            Reward::Named(thinkfl_grader::RewardName::Mrr),
        ] {
            let id = create(&s, case, json!(reward.to_string()), "r");
            let mut sum = 0.0;
            let mut steps = 0;
            let mut done = false;
            for t in &texts {
                assert!(!done, "done came before the last reply");
                let r = s.step(&id, t).unwrap();
                sum += r.reward;
                done = r.done;
                steps += 1;
                if !done {
                    assert_eq!(r.reward, 0.0);
                }
            }
            assert!(done, "done comes on the final print_results (case {case})");
            assert_eq!(steps, texts.len());
            let (expect, _) = grade_as_training(d, s.config(), &reference, reward);
            assert_eq!(sum, expect, "case {case}, reward {reward}");
            // The served trajectory is the actor's, message for message.
            let got = s.get(&id).unwrap();
            let served: thinkfl_core::Trajectory =
                serde_json::from_value(got["trajectory"].clone()).unwrap();
            assert_eq!(served.messages, reference.messages);
            assert_eq!(served.path, reference.path);
            assert_eq!(served.prediction, reference.prediction);
            // And replaying the texts in process gives it back too.
            let replayed = replay(d, s.config(), case, Some(&q.span_id), texts.clone()).unwrap();
            assert_eq!(replayed.messages, reference.messages);
            assert!(matches!(s.step(&id, "x"), Err(thinkfl_env::Error::Over(_))));
        }
    }
}

#[test]
fn malformed_replies_are_error_observations_and_dmax_ends_the_episode() {
    let cfg = EnvConfig {
        actor: thinkfl_agent::ActorConfig {
            d_max: 3,
            ..Default::default()
        },
        ..Default::default()
    };
    let (s, _) = service(cfg);
    let case = cases_with_queries(&s)[0];
    let id = create(&s, case, json!(3), "r");
    for bad in [
        "<tool_call>{\"name\": \"search_traces\", \"arguments\": {",
        "<tool_call>{\"name\": \"rm_rf\", \"arguments\": {}}</tool_call>",
        "",
    ] {
        let r = s.step(&id, bad).unwrap();
        assert!(!r.valid, "{bad:?} is not a valid call");
        assert!(!r.observation.is_empty());
        let text: String = r.observation.iter().map(|m| m.content.as_str()).collect();
        assert!(
            text.contains("rror") || text.contains("tool"),
            "{bad:?} -> {text}"
        );
        if r.done {
            break;
        }
    }
    // d_max = 3 spent: the final review; one more unparseable reply ends it.
    let r = s.step(&id, "no call at all").unwrap();
    assert!(r.done);
    let f = r.factors.unwrap();
    assert_eq!(f.format, 0.0, "no final answer");
    assert_eq!(r.reward, f.stage3);
}

#[test]
fn stage_two_diversity_is_per_run_and_counted_once_per_episode() {
    let (s, store) = service(EnvConfig::default());
    let case = cases_with_queries(&s)[0];
    let q = s.datasets()[0].queries[case][0].clone();
    let actor = Actor::new(
        ExpertPolicy::new(store.clone(), ExpertConfig::default()),
        s.config().episode_config(),
    )
    .unwrap();
    let texts = assistant_texts(&actor.run(&store, &q).unwrap());
    let play = |run: &str| {
        let id = create(&s, case, json!(2), run);
        let mut last = None;
        for t in &texts {
            last = Some(s.step(&id, t).unwrap());
        }
        (id, last.unwrap())
    };
    let g = s.config().grader.clone();
    let (id1, first) = play("a");
    let v1 = first.factors.as_ref().unwrap().diversity.unwrap();
    assert!(v1 == g.diversity_new_correct || v1 == g.diversity_new_incorrect);
    let (_, second) = play("a");
    assert_eq!(second.factors.unwrap().diversity, Some(g.diversity_seen));
    let (_, other) = play("b");
    assert_eq!(
        other.factors.unwrap().diversity,
        Some(v1),
        "a new run explores anew"
    );
    // Grading again does not enter the cache again.
    let again = s.grade(&id1, None).unwrap();
    assert_eq!(again.factors.diversity, Some(v1));
    assert_eq!(s.run_cache("a")["questions"], 1);
    assert!(s.reset_run("a"));
}

#[test]
fn abandoned_episodes_expire() {
    let (s, _) = service(EnvConfig {
        ttl: Duration::from_millis(50),
        ..Default::default()
    });
    let case = cases_with_queries(&s)[0];
    let id = create(&s, case, json!(1), "r");
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(s.sweep(), 1);
    assert!(matches!(
        s.step(&id, "x"),
        Err(thinkfl_env::Error::UnknownEpisode(_))
    ));
}

#[test]
fn bad_requests_name_the_field() {
    let (s, _) = service(EnvConfig::default());
    let e = s
        .create(&CreateRequest {
            case: 10_000,
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("case"), "{e}");
    let e = s
        .create(&CreateRequest {
            case: 0,
            reward: Some(json!(7)),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("reward"), "{e}");
    let e = s
        .create(&CreateRequest {
            case: 0,
            dataset: Some("nope".into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope") && e.contains("sim-s3"), "{e}");
}

fn post(path: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_episodes_errors_and_get_reward() {
    let (s, store) = tokio::task::spawn_blocking(|| service(EnvConfig::default()))
        .await
        .unwrap();
    let s = Arc::new(s);
    let case = cases_with_queries(&s)[0];
    let q = s.datasets()[0].queries[case][0].clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let limits = ServeLimits::default();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let s = s.clone();
        async move {
            thinkfl_env::http::serve(listener, s, &limits, async {
                let _ = rx.await;
            })
            .await
        }
    });
    let t = Duration::from_secs(20);
    let send = |raw: Vec<u8>| async move { send_once(addr, &raw, t).await.unwrap() };
    let json_of = |r: &thinkfl_server::loadgen::Response| -> Value {
        serde_json::from_slice(&r.body).unwrap()
    };

    let r = send(post(
        "/v1/episodes",
        &json!({"case": case, "reward": "3"}).to_string(),
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = json_of(&r);
    let id = v["episode_id"].as_str().unwrap().to_string();
    assert_eq!(v["messages"][0]["role"], "system");
    let step = format!("/v1/episodes/{id}/step");
    for (raw, status, needle) in [
        (post(&step, "{not json"), 400, "expected"),
        (post(&step, "{\"txt\": \"a\"}"), 422, "text"),
        (
            post("/v1/episodes/ep-999999/step", "{\"text\": \"a\"}"),
            404,
            "ep-999999",
        ),
        (
            post("/v1/episodes", "{\"case\": 0, \"reward\": 9}"),
            422,
            "reward",
        ),
        (post("/nope", "{}"), 404, "endpoint"),
        (
            post(&step, &format!("{{\"text\": \"{}\"}}", "a".repeat(70_000))),
            413,
            "",
        ),
    ] {
        let r = send(raw).await;
        assert_eq!(r.status, status, "{}", r.text());
        let e = json_of(&r)["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_default();
        assert!(e.contains(needle), "{status}: {e}");
    }
    let texts = {
        let store = store.clone();
        let cfg = s.config().episode_config();
        tokio::task::spawn_blocking(move || {
            let actor = Actor::new(
                ExpertPolicy::new(store.clone(), ExpertConfig::default()),
                cfg,
            )
            .unwrap();
            assistant_texts(&actor.run(&store, &q).unwrap())
        })
        .await
        .unwrap()
    };
    let mut sum = 0.0;
    for t in &texts {
        let r = send(post(&step, &json!({ "text": t }).to_string())).await;
        assert_eq!(r.status, 200, "{}", r.text());
        sum += json_of(&r)["reward"].as_f64().unwrap();
    }
    let r = send(post(&format!("/v1/episodes/{id}/grade"), "")).await;
    assert_eq!(json_of(&r)["reward"].as_f64().unwrap(), sum);

    // OpenRLHF's single-turn contract: the final answer alone, graded as one reply.
    let label = json!({"dataset": "sim-s3", "case": case, "query_span": texts.len().to_string()});
    let r = send(post(
        "/get_reward",
        &json!({"query": ["x"], "prompts": ["p"], "labels": [label.to_string()]}).to_string(),
    ))
    .await;
    assert_eq!(
        r.status,
        422,
        "a label whose span is not a query: {}",
        r.text()
    );
    let answer = texts.last().unwrap();
    let label = json!({"dataset": "sim-s3", "case": case}).to_string();
    let prompt = "PROMPT ";
    let r = send(post(
        "/get_reward",
        &json!({"query": [format!("{prompt}{answer}"), format!("{prompt}nothing")],
                "prompts": [prompt, prompt], "labels": [label, label], "reward": "mrr"})
        .to_string(),
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = json_of(&r);
    assert_eq!(v["rewards"].as_array().unwrap().len(), 2);
    assert_eq!(v["rewards"][1], 0.0, "no answer, no reward");
    assert_eq!(v["rewards"], v["scores"]);
    assert_eq!(v["extra_logs"]["mrr"][0], v["rewards"][0]);
    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}

#[test]
fn verl_parquet_export_reads_back() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let (s, _) = service(EnvConfig::default());
    let cases: Vec<(usize, thinkfl_env::export::Split)> = cases_with_queries(&s)
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            (
                c,
                if i == 0 {
                    thinkfl_env::export::Split::Test
                } else {
                    thinkfl_env::export::Split::Train
                },
            )
        })
        .collect();
    let data = sim_dataset();
    let ds = EnvDataset::new(LoadedDataset::new(
        "sim-s3",
        TelemetryStore::from_dataset(data),
    ));
    let rows = thinkfl_env::export::rows_of(ds, s.config(), &cases, 1).unwrap();
    assert_eq!(rows.len(), cases.len());
    assert_eq!(
        rows[0].prompt,
        s.opening(0, rows[0].label.case, rows[0].label.query_span.as_deref())
            .unwrap()
    );
    assert_eq!(rows[0].prompt[0].role, Role::System);
    let dir = tempfile::tempdir().unwrap();
    let tools = ["search_traces", "print_results"];
    let written = thinkfl_env::export::write(
        dir.path(),
        &rows,
        &[
            thinkfl_env::export::Format::Verl,
            thinkfl_env::export::Format::OpenRlhf,
        ],
        &tools,
    )
    .unwrap();
    assert_eq!(written.len(), 4);
    let f = std::fs::File::open(dir.path().join("verl/train.parquet")).unwrap();
    let reader = SerializedFileReader::new(f).unwrap();
    assert_eq!(
        reader.metadata().file_metadata().num_rows() as usize,
        rows.len() - 1
    );
    let first = reader.get_row_iter(None).unwrap().next().unwrap().unwrap();
    let text = first.to_string();
    assert!(
        text.contains("thinkfl_agent") && text.contains("create_kwargs"),
        "{text}"
    );
    let line = std::fs::read_to_string(dir.path().join("openrlhf/test.jsonl")).unwrap();
    let v: Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    let label: Value = serde_json::from_str(v["label"].as_str().unwrap()).unwrap();
    assert_eq!(label["case"], rows[0].label.case);
}

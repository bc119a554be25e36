//! The training log: JSON lines round trip, located errors, and the report's charts.

use thinkfl_train::log::{LogWriter, StepLog, read_log, report_html};

fn rec(step: u64, stage: usize, loss: Option<f64>, reward: Option<f64>) -> StepLog {
    let mut r = StepLog::default();
    r.global_step = step;
    r.stage = stage;
    r.stage_name = if stage == 0 {
        "prime".into()
    } else {
        "format".into()
    };
    r.kind = if stage == 0 {
        "sft".into()
    } else {
        "grpo1".into()
    };
    r.loss = loss;
    r.reward = reward;
    r
}

#[test]
fn log_round_trips_and_reports_curves() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("train.jsonl");
    let mut w = LogWriter::append(&p).unwrap();
    let recs = vec![
        rec(1, 0, Some(0.7), None),
        rec(2, 0, Some(0.5), None),
        rec(3, 1, Some(0.1), Some(0.4)),
    ];
    for r in &recs {
        w.write(r).unwrap();
    }
    let back = read_log(&p).unwrap();
    assert_eq!(back, recs);
    let html = report_html(&back, "t");
    // loss and reward have points; the other series are empty and not drawn.
    assert_eq!(html.matches("<svg").count(), 2);
    assert!(html.contains(">loss<") && html.contains(">reward<"));
    assert!(
        html.contains(">prime<") && html.contains(">format<"),
        "stage boundaries are marked"
    );
}

#[test]
fn a_bad_line_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("train.jsonl");
    let good = serde_json::to_string(&rec(1, 0, Some(0.7), None)).unwrap();
    std::fs::write(&p, format!("{good}\n{{\"global_step\": \"x\"}}\n")).unwrap();
    let e = read_log(&p).unwrap_err().to_string();
    assert!(e.contains("train.jsonl") && e.contains("line 2"), "{e}");
}

//! Hostile sizes: JSON nested 100,000 deep, a million-column row, a GGUF whose tensor claims
//! 2^60 elements (and one whose element count overflows 64 bits), a 10 MB tool argument. Each
//! is an error that names the file, line or field; none overflows the stack (that would abort
//! this test binary) or allocates what the input claims.

use std::path::Path;
use thinkfl_store::{LoadOptions, TelemetryStore};

const DEEP: usize = 100_000;

fn deep_array() -> String {
    let mut s = "[".repeat(DEEP);
    s.push_str(&"]".repeat(DEEP));
    s
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn json_nested_100000_deep_is_an_error_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let deep = deep_array();
    let nested_obj = format!("{{\"nodes\": {deep}}}");

    let ds = dir.path().join("ds");
    write(&ds.join("topology.json"), nested_obj.as_bytes());
    let e = TelemetryStore::load(&ds, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("topology.json"), "{e}");
    write(&ds.join("topology.json"), deep.as_bytes());
    let e = TelemetryStore::load(&ds, &LoadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("topology.json"), "{e}");

    for (name, body) in [
        ("otlp.json", format!("{{\"resourceSpans\": {deep}}}")),
        ("jaeger.json", format!("{{\"data\": {deep}}}")),
    ] {
        let p = dir.path().join(name);
        write(&p, body.as_bytes());
        let e = if name.starts_with("otlp") {
            thinkfl_store::read_otlp_json(&p, &LoadOptions::default()).map(|_| ())
        } else {
            thinkfl_store::read_jaeger_json(&p, &LoadOptions::default()).map(|_| ())
        }
        .unwrap_err()
        .to_string();
        assert!(e.contains(name), "{e}");
    }

    // Model text: a call whose arguments nest 100,000 deep is a call error, not a crash.
    let text =
        format!("<tool_call>{{\"name\": \"search_traces\", \"arguments\": {deep}}}</tool_call>");
    let calls = thinkfl_llm::parse::parse_tool_calls(&text);
    assert_eq!(calls.len(), 1);
    let e = calls[0].call.as_ref().unwrap_err();
    assert!(
        e.message.contains("recursion") || e.message.contains("JSON"),
        "{e:?}"
    );

    // A grammar in JSON and a tokenizer.json nested as deep.
    assert!(serde_json::from_str::<thinkfl_llm::grammar::Grammar>(&deep).is_err());
    let tok = dir.path().join("tokenizer.json");
    write(&tok, nested_obj.as_bytes());
    let e = thinkfl_candle::Tok::from_file(&tok)
        .unwrap_err()
        .to_string();
    assert!(e.contains("tokenizer.json"), "{e}");
    let adapter = dir.path().join("adapter");
    write(&adapter.join("adapter_config.json"), nested_obj.as_bytes());
    let e = thinkfl_candle::adapter::read_adapter_config(&adapter)
        .unwrap_err()
        .to_string();
    assert!(e.contains("adapter_config.json"), "{e}");
}

#[test]
fn a_million_column_row_names_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = thinkfl_store::aiops::SPAN_HEADER.join(",").into_bytes();
    csv.push(b'\n');
    csv.extend_from_slice(b"1647747340693,frontend-2,a,t,10,http,0,op,\n");
    csv.extend(std::iter::repeat_n(b',', 1_000_000));
    csv.push(b'\n');
    write(&dir.path().join("trace/all/trace_jaeger-span.csv"), &csv);
    for lenient in [false, true] {
        let r = TelemetryStore::load(dir.path(), &LoadOptions { lenient });
        match r {
            Err(e) => {
                let e = e.to_string();
                assert!(!lenient, "a lenient load skips the row: {e}");
                assert!(
                    e.contains("trace_jaeger-span.csv:3") && e.contains("1000001"),
                    "{e}"
                );
            }
            Ok((store, report)) => {
                assert!(lenient);
                assert_eq!((store.span_count(), report.skipped_rows), (1, 1));
            }
        }
    }
}

/// Offset of the first tensor-info record named `name` in a GGUF v3 file: its u64 length,
/// then the bytes.
fn tensor_info_at(bytes: &[u8], name: &str) -> usize {
    let mut needle = (name.len() as u64).to_le_bytes().to_vec();
    needle.extend_from_slice(name.as_bytes());
    // Metadata holds no such string; the tensor table is the only place.
    bytes
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .expect("the tensor is in the table")
        + needle.len()
}

#[test]
fn a_gguf_tensor_claiming_2_pow_60_elements_is_an_error() {
    let seed = thinkfl_fuzz::model::tiny_gguf(thinkfl_fuzz::model::TOOLS_TEMPLATE).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("model.gguf");
    std::fs::write(&p, &seed).unwrap();
    thinkfl_candle::load(&p, &thinkfl_candle::LoadOptions::f32_only()).expect("the seed loads");
    // After the name: u32 dimension count (2), then the u64 dimensions.
    let at = tensor_info_at(&seed, "token_embd.weight");
    assert_eq!(u32::from_le_bytes(seed[at..at + 4].try_into().unwrap()), 2);
    for dims in [[1u64 << 30, 1 << 30], [1 << 32, 1 << 32], [u64::MAX, 2]] {
        let mut bad = seed.clone();
        bad[at + 4..at + 12].copy_from_slice(&dims[0].to_le_bytes());
        bad[at + 12..at + 20].copy_from_slice(&dims[1].to_le_bytes());
        std::fs::write(&p, &bad).unwrap();
        let e = thinkfl_candle::load(&p, &thinkfl_candle::LoadOptions::f32_only())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("model.gguf") && e.contains("token_embd.weight"),
            "{dims:?}: {e}"
        );
    }
}

#[test]
fn a_10_mb_tool_argument_is_a_bounded_error() {
    let corpus = thinkfl_fuzz::Corpus::new(thinkfl_fuzz::Corpus::default_shared()).unwrap();
    let dir = corpus.sample().expect("the shared AIOps 2022 sample");
    let (store, _) = TelemetryStore::load(&dir, &LoadOptions::default()).unwrap();
    let registry = thinkfl_tools::ToolRegistry::standard();
    let env = thinkfl_tools::ToolEnv::new(&store, thinkfl_tools::ToolsConfig::default());
    let huge = "f".repeat(10 << 20);
    for (tool, args) in [
        (
            "search_traces",
            serde_json::json!({ "parent_span_id": huge }),
        ),
        (
            "search_logs",
            serde_json::json!({ "service_name": huge, "timestamp": 1647747340 }),
        ),
        (
            "search_traces",
            serde_json::json!({ "parent_span_id": 1, huge.clone(): 1 }),
        ),
    ] {
        let e = registry.call(&env, tool, &args).unwrap_err().to_string();
        assert!(
            e.len() <= env.config.max_output_bytes,
            "{tool}: an error of {} bytes goes back to the model",
            e.len()
        );
    }
}

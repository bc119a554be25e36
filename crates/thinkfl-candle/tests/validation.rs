//! Bad requests and settings are errors that say which request and which field, never a panic:
//! sampling parameters no sampler can follow, empty prompts, a batch size of 0.

mod common;

use thinkfl_candle::{Engine, EngineConfig, Error};
use thinkfl_llm::SamplingParams;

fn engine() -> Engine {
    let ct = thinkfl_candle::load::read_gguf_content(&common::smollm2_path()).unwrap();
    let tok = thinkfl_candle::Tok::from_gguf(&ct).unwrap();
    let model = common::tiny_model(tok.vocab_size(), 5, false, 8);
    Engine::new(model, tok, EngineConfig::default()).unwrap()
}

#[test]
fn bad_sampling_parameters_name_the_request_and_the_field() {
    let e = engine();
    let prompts = vec![vec![1u32, 2, 3], vec![4u32, 5]];
    let ok = SamplingParams::greedy(2);
    let cases: [(&str, SamplingParams); 5] = [
        (
            "temperature",
            SamplingParams {
                temperature: f32::NAN,
                ..ok.clone()
            },
        ),
        (
            "temperature",
            SamplingParams {
                temperature: -1.0,
                ..ok.clone()
            },
        ),
        (
            "top_p",
            SamplingParams {
                temperature: 0.7,
                top_p: 0.0,
                ..ok.clone()
            },
        ),
        (
            "top_p",
            SamplingParams {
                top_p: 1.5,
                ..ok.clone()
            },
        ),
        ("max_tokens", SamplingParams::greedy(0)),
    ];
    for (want, bad) in cases {
        match e.generate(&prompts, &[ok.clone(), bad]) {
            Err(Error::Params {
                request: 1,
                source: thinkfl_llm::Error::InvalidParams { field, .. },
            }) => assert_eq!(field, want),
            other => panic!("{want}: expected a parameter error, got {other:?}"),
        }
    }
    // Through the ChatModel error the caller sees its own parameter error.
    let err = e
        .generate(&prompts[..1], &[SamplingParams::greedy(0)])
        .unwrap_err();
    assert!(matches!(
        thinkfl_llm::Error::from(err),
        thinkfl_llm::Error::InvalidParams {
            field: "max_tokens",
            ..
        }
    ));
    assert_eq!(e.generate(&prompts, &[ok.clone(), ok]).unwrap().len(), 2);
}

#[test]
fn empty_prompts_and_mismatched_batches_are_request_errors() {
    let e = engine();
    let p = SamplingParams::greedy(2);
    match e.generate(&[vec![1u32], vec![]], &[p.clone(), p.clone()]) {
        Err(Error::Request {
            request: 1,
            message,
        }) => assert!(message.contains("empty")),
        other => panic!("expected a request error, got {other:?}"),
    }
    assert!(matches!(
        e.generate(&[vec![1u32]], &[p.clone(), p]),
        Err(Error::Options(_))
    ));
}

#[test]
fn an_engine_without_batches_is_refused_at_construction() {
    let ct = thinkfl_candle::load::read_gguf_content(&common::smollm2_path()).unwrap();
    let tok = thinkfl_candle::Tok::from_gguf(&ct).unwrap();
    for config in [
        EngineConfig {
            max_batch: 0,
            ..EngineConfig::default()
        },
        EngineConfig {
            prefill_chunk_tokens: 0,
            ..EngineConfig::default()
        },
    ] {
        let model = common::tiny_model(tok.vocab_size(), 5, false, 8);
        assert!(matches!(
            Engine::new(model, tok.clone(), config),
            Err(Error::Options(_))
        ));
    }
}

/// Logits a broken model could produce (NaN, infinities, none finite, none at all) give a token
/// or the sentinel, never a panic, under every sampling mode.
#[test]
fn sampling_survives_logits_without_a_distribution() {
    use rand::SeedableRng;
    let cases: Vec<(Vec<f32>, Option<u32>)> = vec![
        (vec![f32::NAN; 8], None),
        (vec![0.5, f32::NAN, 2.0, f32::NAN], None),
        (vec![f32::INFINITY, 1.0, 3.0], None),
        (vec![f32::NEG_INFINITY; 4], Some(0)),
        (vec![], Some(0)),
    ];
    for (logits, want) in cases {
        for (temperature, top_p) in [(0.0, 1.0), (0.7, 1.0), (0.7, 0.9), (1.3, 0.5)] {
            let params = SamplingParams {
                temperature,
                top_p,
                ..SamplingParams::greedy(1)
            };
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
            let (id, _) = thinkfl_candle::generate::sample(&logits, &params, &mut rng);
            assert!(
                (id as usize) < logits.len().max(1),
                "{logits:?} at t={temperature}, top_p={top_p}: id {id}"
            );
            if let Some(w) = want {
                assert_eq!(id, w, "{logits:?} at t={temperature}, top_p={top_p}");
            }
        }
    }
}

//! The short run of every harness (the long one is `thinkfl fuzz`): every seed is taken (a
//! harness that refused its own seeds would test nothing past the first check), a few hundred
//! to a few thousand mutated inputs give no panic and no broken contract, and the mutations
//! reach both outcomes.

use thinkfl_fuzz::{Corpus, Report, TARGETS, Verdict};

/// Inputs per target: the model and server harnesses cost more per input.
fn budget(name: &str) -> u64 {
    match name {
        "gguf" | "peft-adapter" | "tokenizer-json" | "env-server-http" => 200,
        "chat-template" | "tool-server-http" | "tool-args" => 500,
        _ => 1000,
    }
}

/// Seeds a harness refuses by design: plain text without a call.
fn refused_seed(name: &str, seed: &[u8]) -> bool {
    name == "tool-call" && seed == b"no call at all, just words"
}

fn show(r: &Report) -> String {
    let mut s = format!(
        "{}: tried {} accepted {} rejected {} findings {}",
        r.target, r.tried, r.accepted, r.rejected, r.findings
    );
    for f in &r.kept {
        s.push_str(&format!(
            "\n  {} at {}: {}\n    {:?}",
            if f.panic { "PANIC" } else { "finding" },
            f.iteration,
            f.message,
            String::from_utf8_lossy(&f.input[..f.input.len().min(300)])
        ));
    }
    s
}

#[test]
fn every_harness_takes_its_seeds_and_survives_a_short_run() {
    let corpus = Corpus::new(Corpus::default_shared()).unwrap();
    let mut failures = Vec::new();
    for (name, _) in TARGETS {
        let mut t = thinkfl_fuzz::target(name, &corpus).unwrap();
        assert!(!t.seeds.is_empty(), "{name} has seeds");
        for (i, seed) in t.seeds.clone().iter().enumerate() {
            let v = t.feed(seed);
            if v != Ok(Verdict::Accepted) && !refused_seed(name, seed) {
                failures.push(format!("{name}: seed {i} gives {v:?}"));
            }
        }
        let n = budget(name);
        let r = thinkfl_fuzz::run(&mut t, 42, 0, n, |_| {});
        eprintln!("{}", show(&r));
        assert_eq!(r.tried, n);
        assert_eq!(r.accepted + r.rejected + r.findings, n);
        if r.findings > 0 {
            failures.push(show(&r));
        }
        if r.accepted == 0 || r.rejected == 0 {
            failures.push(format!(
                "{name}: mutations reach one outcome only: {}",
                show(&r)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn unknown_target_names_the_known_ones() {
    let corpus = Corpus::new(None).unwrap();
    let e = thinkfl_fuzz::target("csv", &corpus)
        .unwrap_err()
        .to_string();
    assert!(e.contains("csv") && e.contains("spans-csv"), "{e}");
}

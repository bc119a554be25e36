//! The severity of a log line, from an explicit `severity:`/`level` field when there is one,
//! else from keywords (error, exception, fatal, panic, traceback, warn). Shared by `search_logs`
//! and the global ranking of suspects, which both count error and warning lines.

/// Severity of a log line that matters for diagnosis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// An error line, or worse (fatal, critical, panic...).
    Error,
    /// A warning line.
    Warning,
}

impl Severity {
    /// `"error"` or `"warning"`, as tool output writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

fn word_severity(w: &str) -> Option<Option<Severity>> {
    let w = w
        .trim_matches(|c: char| !c.is_ascii_alphabetic())
        .to_ascii_lowercase();
    match w.as_str() {
        "error" | "err" | "fatal" | "critical" | "crit" | "panic" | "emerg" | "alert"
        | "severe" => Some(Some(Severity::Error)),
        "warn" | "warning" => Some(Some(Severity::Warning)),
        "info" | "debug" | "trace" | "notice" | "verbose" => Some(None),
        _ => None,
    }
}

/// The severity of a line, or `None` for info and debug lines.
pub fn severity(line: &str) -> Option<Severity> {
    let lower = line.to_ascii_lowercase();
    // An explicit field wins: "severity: info, message: ... error" is an info line.
    for key in ["severity", "level", "lvl"] {
        let mut from = 0;
        while let Some(pos) = lower[from..].find(key) {
            let start = from + pos + key.len();
            let rest = lower[start..].trim_start_matches(['"', '\'', ' ']);
            if let Some(rest) = rest.strip_prefix([':', '=']) {
                let word: String = rest
                    .trim_start_matches(['"', '\'', ' '])
                    .chars()
                    .take_while(|c| c.is_ascii_alphabetic())
                    .collect();
                if let Some(s) = word_severity(&word) {
                    return s;
                }
            }
            from = start;
        }
    }
    const ERROR_WORDS: [&str; 6] = ["error", "exception", "fatal", "panic", "traceback", "rror:"];
    if ERROR_WORDS.iter().any(|w| lower.contains(w)) {
        return Some(Severity::Error);
    }
    lower.contains("warn").then_some(Severity::Warning)
}

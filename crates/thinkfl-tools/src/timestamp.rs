//! The `timestamp` argument: seconds or milliseconds since the epoch, as a string (the paper's
//! schema) or a number. Like the paper's server, an integer longer than ten digits is cut to its
//! first ten (ms, µs and ns all become seconds); a decimal is floored.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;

/// A timestamp as the model wrote it; [`TimestampArg::seconds`] interprets it.
#[derive(Debug, Clone, PartialEq)]
pub struct TimestampArg(pub String);

impl<'de> Deserialize<'de> for TimestampArg {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = TimestampArg;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a timestamp as a string or a number")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<TimestampArg, E> {
                Ok(TimestampArg(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<TimestampArg, E> {
                Ok(TimestampArg(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<TimestampArg, E> {
                Ok(TimestampArg(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<TimestampArg, E> {
                Ok(TimestampArg(format!("{v}")))
            }
        }
        // deserialize_any keeps serde's own "missing field" error when the field is absent.
        d.deserialize_any(V)
    }
}

impl JsonSchema for TimestampArg {
    fn inline_schema() -> bool {
        true
    }
    fn schema_name() -> Cow<'static, str> {
        "TimestampArg".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string" })
    }
}

/// Why a timestamp was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bad timestamp {given:?}: expected seconds or milliseconds since the epoch, e.g. 1647747340 or 1647747340693"
)]
pub struct BadTimestamp {
    /// The value as the caller wrote it.
    pub given: String,
}

impl TimestampArg {
    /// Seconds since the epoch.
    pub fn seconds(&self) -> Result<i64, BadTimestamp> {
        parse_seconds(&self.0)
    }
}

/// See the module documentation.
pub fn parse_seconds(raw: &str) -> Result<i64, BadTimestamp> {
    let bad = || BadTimestamp {
        given: raw.chars().take(64).collect(),
    };
    let s = raw.trim();
    let (int_part, frac) = match s.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (s, None),
    };
    if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if let Some(f) = frac
        && !f.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let digits = int_part.trim_start_matches('0');
    if digits.is_empty() {
        return Err(bad());
    }
    let head = if digits.len() > 10 {
        &digits[..10]
    } else {
        digits
    };
    if digits.len() > 19 + 10 {
        return Err(bad());
    }
    head.parse::<i64>().map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_and_milliseconds() {
        assert_eq!(parse_seconds("1647747340"), Ok(1647747340));
        assert_eq!(parse_seconds("1647747340693"), Ok(1647747340));
        assert_eq!(parse_seconds(" 1647747340693 "), Ok(1647747340));
        assert_eq!(parse_seconds("1647747340693000"), Ok(1647747340));
        assert_eq!(parse_seconds("1647747340.693"), Ok(1647747340));
        assert_eq!(parse_seconds("86400"), Ok(86400));
    }

    #[test]
    fn garbage_is_refused_with_the_value() {
        for bad in [
            "",
            "abc",
            "-5",
            "12a",
            "1.2.3",
            "0",
            "1e9",
            "1647747340.69x",
        ] {
            let e = parse_seconds(bad).unwrap_err();
            assert!(e.to_string().contains("bad timestamp"), "{bad}: {e}");
        }
    }

    #[test]
    fn numbers_and_strings_deserialize() {
        let t: TimestampArg = serde_json::from_str("1647747340693").unwrap();
        assert_eq!(t.seconds(), Ok(1647747340));
        let t: TimestampArg = serde_json::from_str("\"1647747340\"").unwrap();
        assert_eq!(t.seconds(), Ok(1647747340));
        let t: TimestampArg = serde_json::from_str("1647747340.5").unwrap();
        assert_eq!(t.seconds(), Ok(1647747340));
        assert!(serde_json::from_str::<TimestampArg>("[1]").is_err());
    }
}

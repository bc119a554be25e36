//! The exact text and arithmetic of the paper's Python tool server (LLM4AIOps/ThinkFL,
//! `tool_server_all.py`: Flask + pandas), so that the plain output mode is byte-for-byte what the
//! released ThinkFL models were trained on.
//!
//! - Flask's `jsonify`: `json.dumps` with `sort_keys=True`, `ensure_ascii=True`, separators
//!   `(",", ":")`, `NaN` for missing floats, and a trailing newline.
//! - pandas: `Series.mean()` / `Series.std()` (ddof 1, two-pass) over numpy's pairwise sum;
//!   `round(np.float64, 2)` (scale, round half to even, unscale); `DataFrame.to_csv` with numpy's
//!   shortest float repr and an empty field for NaN.

use std::fmt::Write;

/// Appends `s` as a JSON string the way Python's `json.dumps(ensure_ascii=True)` writes it.
pub fn push_py_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                // Python escapes everything outside printable ASCII (DEL included) as \uXXXX,
                // lowercase, with surrogate pairs above the BMP.
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{:04x}", unit);
                }
            }
        }
    }
    out.push('"');
}

/// A float as Python's `repr` (and numpy's `str` for float64) writes it: shortest round-trip
/// digits, positional for 1e-4 <= |x| < 1e16, scientific (`1e-05`, `1.5e+16`) otherwise.
pub fn py_float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "-1.2345e3".
    let sci = format!("{:e}", x);
    let (mantissa, exp) = sci.split_once('e').expect("`{:e}` always has an exponent");
    let exp: i32 = exp.parse().expect("`{:e}` exponent is an integer");
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::with_capacity(24);
    if neg {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else if exp + 1 >= n {
            out.push_str(&digits);
            for _ in 0..(exp + 1 - n) {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            let (a, b) = digits.split_at((exp + 1) as usize);
            out.push_str(a);
            out.push('.');
            out.push_str(b);
        }
    } else {
        let (a, b) = digits.split_at(1);
        out.push_str(a);
        if !b.is_empty() {
            out.push('.');
            out.push_str(b);
        }
        let _ = write!(out, "e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
    }
    out
}

/// A float cell of `DataFrame.to_csv`: NaN is an empty field.
pub fn pandas_csv_float(x: f64) -> String {
    if x.is_nan() {
        String::new()
    } else {
        py_float_repr(x)
    }
}

/// A text cell of `DataFrame.to_csv` (csv.QUOTE_MINIMAL).
pub fn push_csv_field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// numpy's pairwise summation of a contiguous float64 array (`np.add.reduce`), which pandas'
/// `mean` and `std` use: blocks of up to 128 summed with eight accumulators, larger arrays split
/// in halves (rounded down to a multiple of 8).
pub fn np_pairwise_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut res = 0.0;
        for &v in a {
            res += v;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - (n % 8) {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res += a[i];
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        np_pairwise_sum(&a[..n2]) + np_pairwise_sum(&a[n2..])
    }
}

/// `np.add.reduce`: the identity 0.0 plus the pairwise sum.
pub fn np_sum(a: &[f64]) -> f64 {
    0.0 + np_pairwise_sum(a)
}

/// pandas `Series.mean()` of values without NaN; NaN for an empty series.
pub fn pandas_mean(a: &[f64]) -> f64 {
    if a.is_empty() {
        return f64::NAN;
    }
    np_sum(a) / a.len() as f64
}

/// pandas `Series.std()` (ddof 1, two-pass) of values without NaN; NaN with fewer than 2 values.
pub fn pandas_std(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 2 {
        return f64::NAN;
    }
    let avg = np_sum(a) / n as f64;
    // Metric windows are small: square into a stack buffer when they fit.
    let mut buf = [0.0f64; 256];
    let heap: Vec<f64>;
    let sqr: &[f64] = if n <= buf.len() {
        for (d, v) in buf.iter_mut().zip(a) {
            *d = (avg - v) * (avg - v);
        }
        &buf[..n]
    } else {
        heap = a.iter().map(|v| (avg - v) * (avg - v)).collect();
        &heap
    };
    let var = np_sum(sqr) / (n - 1) as f64;
    var.sqrt()
}

/// `round(np.float64(x), 2)`: numpy scales, rounds half to even, and scales back.
pub fn np_round2(x: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    (x * 100.0).round_ties_even() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_matches_python() {
        // Expected strings are what CPython's repr() prints for the same doubles.
        let cases: &[(f64, &str)] = &[
            (0.2, "0.2"),
            (1.0, "1.0"),
            (-3.0, "-3.0"),
            (12.35, "12.35"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e-4, "0.0001"),
            (1e-5, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (123456789.0, "123456789.0"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (1.2345e17, "1.2345e+17"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (0.01, "0.01"),
            (1e100, "1e+100"),
            (f64::NAN, "nan"),
        ];
        for (x, want) in cases {
            assert_eq!(py_float_repr(*x), *want, "{x:e}");
        }
        assert_eq!(pandas_csv_float(f64::NAN), "");
    }

    #[test]
    fn json_strings_match_python_ensure_ascii() {
        let mut s = String::new();
        push_py_json_str(&mut s, "No trace with parent_span = 'ab'。");
        assert_eq!(s, r#""No trace with parent_span = 'ab'\u3002""#);
        let mut s = String::new();
        push_py_json_str(&mut s, "a\"b\\c\n\u{7f}\u{1}😀");
        assert_eq!(s, r#""a\"b\\c\n\u007f\u0001\ud83d\ude00""#);
    }

    #[test]
    fn pairwise_sum_blocks() {
        // Below 8 values: left to right.
        assert_eq!(np_pairwise_sum(&[1e16, 1.0, -1e16]), 0.0);
        // 8..=128 values: eight accumulators, so 1e16 + 1 + 1 - 1e16 differs from left to right.
        let mut a = vec![0.0; 16];
        a[0] = 1e16;
        a[8] = -1e16;
        a[1] = 1.0;
        a[9] = 1.0;
        // r0 = 1e16 + -1e16 = 0, r1 = 2: exact, where a left-to-right sum loses one of the ones
        // (1e16 + 1 rounds back to 1e16).
        assert_eq!(np_pairwise_sum(&a), 2.0);
        let naive: f64 = a.iter().sum();
        assert_eq!(naive, 1.0);
        // The recursive split keeps the total of exactly representable values.
        let b: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        assert_eq!(np_pairwise_sum(&b), 499500.0);
    }

    #[test]
    fn sums_equal_numpy_on_a_recursive_split() {
        // 187 values (> 128: split at 88): numpy 2.4 prints sum 14.925, mean
        // 0.07981283422459894, std(ddof=1) 0.03433065412851502.
        let mut x = vec![0.1; 137];
        x.extend((0..50).map(|i| 1e-3 * i as f64));
        assert_eq!(py_float_repr(np_sum(&x)), "14.925");
        assert_eq!(py_float_repr(pandas_mean(&x)), "0.07981283422459894");
        assert_eq!(py_float_repr(pandas_std(&x)), "0.03433065412851502");
    }

    #[test]
    fn pandas_statistics() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(pandas_mean(&v), 2.5);
        // sqrt(5/3)
        assert_eq!(pandas_std(&v), (5.0f64 / 3.0).sqrt());
        assert!(pandas_std(&[1.0]).is_nan());
        assert!(pandas_mean(&[]).is_nan());
    }

    #[test]
    fn numpy_round_is_half_even_on_the_scaled_value() {
        assert_eq!(np_round2(0.125), 0.12);
        assert_eq!(np_round2(0.375), 0.38);
        // 2.675 * 100 rounds to exactly 267.5, so numpy gives 2.68 where Python's round gives 2.67
        // (checked against numpy 2.4: round(np.float64(2.675), 2) == 2.68).
        assert_eq!(np_round2(2.675), 2.68);
        assert_eq!(np_round2(-1.005), -1.0);
        assert_eq!(np_round2(1234.5678), 1234.57);
        assert!(np_round2(f64::NAN).is_nan());
    }
}

//! Small samplers on the seeded generator; everything random in the simulator goes through
//! `ChaCha8Rng` streams derived from the one seed.

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Independent generator streams, so that e.g. turning logs off does not change the traces.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Stream {
    Model = 1,
    Schedule = 2,
    Traffic = 3,
    Metrics = 4,
    Logs = 5,
    /// What the tracing pipeline does to spans (drops, clock skew, statusless services).
    Export = 6,
}

pub(crate) fn stream(seed: u64, s: Stream) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(s as u64);
    r
}

pub(crate) fn std_normal(rng: &mut impl RngCore) -> f64 {
    StandardNormal.sample(rng)
}

/// Log-normal with median 1.
pub(crate) fn lognormal1(rng: &mut impl RngCore, sigma: f64) -> f64 {
    (sigma * std_normal(rng)).exp()
}

/// Poisson count; normal approximation for large means.
pub(crate) fn poisson(rng: &mut impl RngCore, lambda: f64) -> u64 {
    if lambda <= 0.0 {
        return 0;
    }
    if lambda > 60.0 {
        let x = lambda + lambda.sqrt() * std_normal(rng);
        return x.round().max(0.0) as u64;
    }
    let l = (-lambda).exp();
    let mut k = 0u64;
    let mut p = 1.0;
    loop {
        p *= rng.random::<f64>();
        if p <= l {
            return k;
        }
        k += 1;
    }
}

/// Pareto with scale `xm` and shape `alpha`.
pub(crate) fn pareto(rng: &mut impl RngCore, xm: f64, alpha: f64) -> f64 {
    let u: f64 = rng.random::<f64>().max(1e-12);
    xm / u.powf(1.0 / alpha)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `v` as `digits` lowercase hex digits.
pub(crate) fn push_hex(out: &mut String, v: u128, digits: usize) {
    for i in (0..digits).rev() {
        out.push(HEX[((v >> (i * 4)) & 0xf) as usize] as char);
    }
}

/// A random version-4 UUID string.
pub(crate) fn uuid(rng: &mut impl RngCore) -> String {
    let v = ((rng.next_u64() as u128) << 64) | rng.next_u64() as u128;
    let mut s = String::with_capacity(36);
    let mut h = String::with_capacity(32);
    push_hex(&mut h, v, 32);
    let b = h.as_bytes();
    for (i, part) in [(0, 8), (8, 12), (12, 16), (16, 20), (20, 32)]
        .iter()
        .enumerate()
    {
        if i > 0 {
            s.push('-');
        }
        for (k, &c) in b[part.0..part.1].iter().enumerate() {
            // Version nibble 4 and variant bits 10xx, as real UUIDs.
            let c = if i == 2 && k == 0 {
                b'4'
            } else if i == 3 && k == 0 {
                b"89ab"[(c as usize) % 4]
            } else {
                c
            };
            s.push(c as char);
        }
    }
    s
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// An Elasticsearch-style 20-character document id, as the data set's `log_id`, derived from a
/// counter so that ids are unique and cheap.
pub(crate) fn log_id(seed: u64, counter: u64) -> String {
    let mut a = splitmix(seed ^ counter.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut b = splitmix(a ^ counter);
    let mut s = String::with_capacity(20);
    for i in 0..20 {
        let v = if i < 10 { &mut a } else { &mut b };
        s.push(B64[(*v & 63) as usize] as char);
        *v >>= 6;
    }
    s
}

pub(crate) fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samplers_have_the_right_moments() {
        let mut r = stream(1, Stream::Traffic);
        let n = 20_000;
        let m: f64 = (0..n).map(|_| poisson(&mut r, 4.0) as f64).sum::<f64>() / n as f64;
        assert!((m - 4.0).abs() < 0.1, "{m}");
        let m: f64 = (0..n).map(|_| poisson(&mut r, 400.0) as f64).sum::<f64>() / n as f64;
        assert!((m - 400.0).abs() < 1.0, "{m}");
        let mut v: Vec<f64> = (0..n).map(|_| lognormal1(&mut r, 0.5)).collect();
        v.sort_by(f64::total_cmp);
        assert!((v[n / 2] - 1.0).abs() < 0.03);
        let u = uuid(&mut r);
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_eq!(log_id(1, 2).len(), 20);
        assert_ne!(log_id(1, 2), log_id(1, 3));
    }
}

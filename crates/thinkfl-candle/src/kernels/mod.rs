//! Kernels that know nothing of the model: packed 8/4-bit weight products ([`packed`]), strided
//! f32 matrix products, causal attention with a recomputing backward, attention of new tokens
//! over a KV cache ([`cache_attention`]), RMSNorm, rotary embeddings and SwiGLU with their
//! backward passes, and the lane reductions, dot product and `exp` they share ([`math`]).
//! Every function here works on slices and shapes; [`ops`] wraps the training kernels as candle
//! custom ops so that the llama forward (`crate::llama`) can put them in its autograd graph.
//! Nothing in this module imports another module of the crate.
//!
//! Instruction sets are picked at run time: the elementwise kernels are written once as
//! `#[inline(always)]` bodies over 16-lane chunks and compiled twice, for AVX-512 and for the
//! portable baseline ([`Isa::detect`]); the packed products have a kernel per instruction set
//! ([`packed::Kernel::best`]); cache attention takes its AVX2 kernel where the CPU has it; the
//! matrix products go through the `gemm` crate, which dispatches on its own.

pub mod attention;
pub mod cache_attention;
pub mod elementwise;
pub mod math;
pub mod matmul;
pub mod ops;
pub mod packed;

#[cfg(test)]
mod tests;

/// What a kernel refuses. The crate's [`crate::Error`] converts it into its own variants of the
/// same names (this module stays a leaf, so it cannot name that type itself).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Operands whose sizes do not fit the kernel or each other.
    #[error("shape: {0}")]
    Shape(String),
    /// A kernel this CPU cannot run.
    #[error("unsupported: {0}")]
    Unsupported(String),
}

/// The instruction set the elementwise kernels run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Baseline of the target (SSE2 on x86-64).
    Portable,
    /// AVX-512 F/BW/VL with FMA.
    Avx512,
}

impl Isa {
    /// The best set this CPU has (detected once). `THINKFL_KERNELS=portable` forces the portable
    /// path (for comparing the two).
    pub fn detect() -> Isa {
        static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *ISA.get_or_init(|| {
            if std::env::var("THINKFL_KERNELS").is_ok_and(|v| v == "portable") {
                return Isa::Portable;
            }
            #[cfg(target_arch = "x86_64")]
            {
                if is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("fma")
                {
                    return Isa::Avx512;
                }
            }
            Isa::Portable
        })
    }
}

/// Defines `pub fn $name(args)` that runs `$body` (an `#[inline(always)]` function of the same
/// arguments) compiled for AVX-512 where [`Isa::detect`] finds it, else for the baseline.
macro_rules! multiversion {
    ($(#[$m:meta])* pub fn $name:ident($($a:ident: $t:ty),* $(,)?) => $body:ident) => {
        $(#[$m])*
        pub fn $name($($a: $t),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
                unsafe fn fast($($a: $t),*) {
                    $body($($a),*)
                }
                if $crate::kernels::Isa::detect() == $crate::kernels::Isa::Avx512 {
                    // SAFETY: `Isa::detect` found every feature `fast` is compiled with.
                    unsafe { fast($($a),*) };
                    return;
                }
            }
            $body($($a),*)
        }
    };
}
pub(crate) use multiversion;

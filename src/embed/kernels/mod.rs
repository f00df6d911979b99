//! The forward pass's CPU kernels, one set per instruction-set level, chosen at run time.
//!
//! [`KernelPath`] names a level (AMX, AVX-512 with VNNI, AVX-512, AVX-VNNI, AVX2, portable).
//! The widest level the CPU (and the OS, for AMX tiles) supports is picked once at start;
//! `SEMDEX_KERNELS=<name>` forces another one the CPU can run, so that every path a machine
//! has is tested on it. An encoder holds its path and hands it to every kernel call, so one
//! process can run several paths side by side (the tests do).
//!
//! - [`math`]: element-wise kernels (bias + GELU, softmax, layer norm), compiled once per
//!   vector width from one portable body.
//! - [`matmul`]: f32 dense layers over panel-packed weights (AVX2: 16 outputs × 6 tokens per
//!   step; AVX-512: 32 outputs × 12 tokens).
//! - [`int8`]: int8 dense layers (weights per output channel, activations per token), by
//!   AVX-512 VNNI, AVX-VNNI or AVX2 `vpmaddubsw`/`vpmaddwd`, with int32 accumulation.
//! - [`amx`]: the int8 dense layers on AMX tiles.
//! - [`bf16x3`]: the f32 dense layers on AMX bf16 tiles, each operand split in two bf16s.
//! - [`maxsim`]: late interaction's int8 dot products.
//!
//! Every `unsafe` kernel is reached only through a safe function that checks the CPU's
//! features (through the [`KernelPath`] it was given, which cannot be built for an
//! unsupported level) and the slice bounds before the call.

mod amx;
pub mod bf16x3;
pub mod int8;
pub mod math;
pub mod matmul;
mod maxsim;

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

pub use maxsim::int8_best_matches;

/// The environment variable that forces a kernel path.
pub const KERNELS_ENV: &str = "SEMDEX_KERNELS";

/// An instruction-set level the kernels are compiled for, widest last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KernelPath {
    /// Plain Rust, for any CPU (f32 dense layers by the gemm crate).
    Portable,
    /// AVX2 + FMA, 256-bit (Haswell, Zen 1–3); int8 by `vpmaddubsw`/`vpmaddwd`.
    Avx2,
    /// AVX2 + FMA with AVX-VNNI's 256-bit `vpdpbusd` for int8 (Alder Lake and later).
    AvxVnni,
    /// AVX-512 F/BW/VL, 512-bit f32 kernels; int8 as on AVX2 (Skylake-SP).
    Avx512,
    /// AVX-512 with VNNI: 512-bit `vpdpbusd` for int8 (Ice Lake, Zen 4 and later).
    Avx512Vnni,
    /// AVX-512 VNNI plus AMX int8 tiles for the int8 dense layers (Sapphire Rapids and later).
    Amx,
}

impl KernelPath {
    /// Every level, narrowest first.
    pub const ALL: [KernelPath; 6] = [
        KernelPath::Portable,
        KernelPath::Avx2,
        KernelPath::AvxVnni,
        KernelPath::Avx512,
        KernelPath::Avx512Vnni,
        KernelPath::Amx,
    ];

    /// The name used in `/info`, benchmarks and `SEMDEX_KERNELS`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Portable => "portable",
            Self::Avx2 => "avx2",
            Self::AvxVnni => "avx-vnni",
            Self::Avx512 => "avx512",
            Self::Avx512Vnni => "avx512-vnni",
            Self::Amx => "amx",
        }
    }

    /// Whether this CPU (and OS) can run the level.
    pub fn is_supported(self) -> bool {
        static SUPPORTED: OnceLock<Vec<KernelPath>> = OnceLock::new();
        SUPPORTED
            .get_or_init(|| KernelPath::ALL.into_iter().filter(|p| p.detect()).collect())
            .contains(&self)
    }

    /// Probes the CPU's features (and asks the OS for AMX tile state).
    fn detect(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx2 = has!("avx2") && has!("fma");
            let avx512 = avx2 && has!("avx512f") && has!("avx512bw") && has!("avx512vl");
            match self {
                Self::Portable => true,
                Self::Avx2 => avx2,
                Self::AvxVnni => avx2 && has!("avxvnni"),
                Self::Avx512 => avx512,
                Self::Avx512Vnni => avx512 && has!("avx512vnni"),
                Self::Amx => avx512 && has!("avx512vnni") && amx::request_tiles(),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Self::Portable
        }
    }

    /// Every level this CPU can run, narrowest first (what the tests iterate over).
    pub fn supported() -> Vec<KernelPath> {
        Self::ALL.into_iter().filter(|p| p.is_supported()).collect()
    }

    /// The widest level this CPU can run.
    pub fn best() -> KernelPath {
        Self::supported()
            .last()
            .copied()
            .unwrap_or(KernelPath::Portable)
    }

    /// The level named by `SEMDEX_KERNELS`, or the widest one when it is unset; an unknown
    /// name, or one this CPU cannot run, is an error naming the levels it can.
    pub fn from_env() -> Result<KernelPath, String> {
        match std::env::var(KERNELS_ENV) {
            Ok(name) if !name.trim().is_empty() => {
                let path: KernelPath = name.trim().parse()?;
                if path.is_supported() {
                    Ok(path)
                } else {
                    Err(format!(
                        "{KERNELS_ENV}={name}: this CPU cannot run the {path} kernels; it can run {}",
                        Self::supported_names()
                    ))
                }
            }
            _ => Ok(Self::best()),
        }
    }

    /// The level in force for code that has no encoder at hand (late interaction): the
    /// environment's choice when valid, else the widest.
    pub fn selected() -> KernelPath {
        static SELECTED: OnceLock<KernelPath> = OnceLock::new();
        *SELECTED.get_or_init(|| Self::from_env().unwrap_or_else(|_| Self::best()))
    }

    fn supported_names() -> String {
        Self::supported()
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The vector width its f32 kernels use.
    pub fn width(self) -> Width {
        match self {
            Self::Portable => Width::Portable,
            Self::Avx2 | Self::AvxVnni => Width::Avx2,
            Self::Avx512 | Self::Avx512Vnni | Self::Amx => Width::Avx512,
        }
    }
}

impl FromStr for KernelPath {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown kernel path {s:?}; expected one of {}",
                    Self::ALL.map(|p| p.as_str()).join(", ")
                )
            })
    }
}

impl fmt::Display for KernelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The vector width of the f32 kernels: what the element-wise and f32 matrix kernels are
/// compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Width {
    /// Scalar code the compiler may vectorise for the baseline target only.
    Portable,
    /// 256-bit AVX2 + FMA.
    Avx2,
    /// 512-bit AVX-512 F/BW/VL (+ AVX2, FMA).
    Avx512,
}

/// Below this many multiply-adds a matrix product runs on one thread (fork/join costs more).
pub const PARALLEL_FROM: usize = 1 << 16;

/// An AVX-512 lane mask of the first `n` of 16 lanes (all 16 when `n` ≥ 16): the tails of
/// rows whose length is not a multiple of the vector width.
pub(crate) fn lanes16(n: usize) -> u16 {
    if n >= 16 {
        u16::MAX
    } else {
        ((1u32 << n) - 1) as u16
    }
}

/// A raw pointer shared by tasks that touch disjoint parts of one buffer.
#[derive(Clone, Copy)]
pub struct Shared<T>(pub *mut T);
// SAFETY: only ever used for disjoint accesses (see the callers).
unsafe impl<T> Send for Shared<T> {}
unsafe impl<T> Sync for Shared<T> {}

impl<T> Shared<T> {
    /// The pointer (a method, so closures capture the Send wrapper, not the raw field).
    pub fn get(self) -> *mut T {
        self.0
    }
}

/// Runs `run(range)` over `0..units` split into about two ranges per thread of the current
/// rayon pool, in parallel when the pool has several threads and `parallel` holds.
pub fn split_units(units: usize, parallel: bool, run: impl Fn(std::ops::Range<usize>) + Sync) {
    let threads = rayon::current_num_threads().min(units);
    if threads > 1 && parallel {
        let per_task = units.div_ceil(threads * 2);
        let run = &run;
        rayon::scope(|scope| {
            for start in (0..units).step_by(per_task) {
                let range = start..(start + per_task).min(units);
                scope.spawn(move |_| run(range));
            }
        });
    } else {
        run(0..units);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_the_portable_path_is_always_there() {
        for path in KernelPath::ALL {
            assert_eq!(path.as_str().parse::<KernelPath>().unwrap(), path);
        }
        assert!("avx1024".parse::<KernelPath>().is_err());
        assert!(KernelPath::Portable.is_supported());
        assert!(KernelPath::supported().contains(&KernelPath::best()));
        assert!(KernelPath::best() >= KernelPath::Portable);
    }
}

//! The index's inner loops: f32 dot products (exact scores, rescoring) and u8 × i8 dot
//! products (quantised scores while walking the graph), each with one implementation per
//! instruction set, picked once per process from what the CPU reports (as ONNX Runtime's MLAS
//! does). Every path computes the same value — integer sums exactly, float sums up to rounding
//! — and the tests compare each path this CPU has with the portable one.

use std::sync::LazyLock;

/// The implementations this process uses.
struct Kernels {
    dot: fn(&[f32], &[f32]) -> f32,
    dot_u8_i8: fn(&[u8], &[i8]) -> i32,
    name: &'static str,
}

static KERNELS: LazyLock<Kernels> = LazyLock::new(detect);

fn detect() -> Kernels {
    #[cfg(target_arch = "x86_64")]
    {
        let avx512 = is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw");
        if avx512 && is_x86_feature_detected!("avx512vnni") {
            return Kernels {
                dot: x86::dot_f32_avx512,
                dot_u8_i8: x86::dot_u8_i8_avx512_vnni,
                name: "avx512-vnni",
            };
        }
        if avx512 {
            return Kernels {
                dot: x86::dot_f32_avx512,
                dot_u8_i8: x86::dot_u8_i8_avx512bw,
                name: "avx512",
            };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return Kernels {
                dot: x86::dot_f32_avx2,
                dot_u8_i8: x86::dot_u8_i8_avx2,
                name: "avx2",
            };
        }
    }
    Kernels {
        dot: portable::dot_f32,
        dot_u8_i8: portable::dot_u8_i8,
        name: "portable",
    }
}

/// Dot product of two equally long f32 slices (the shorter length is used).
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    (KERNELS.dot)(a, b)
}

/// Σ codes[i] · weights[i] over two equally long slices, exactly.
#[inline]
pub fn dot_u8_i8(codes: &[u8], weights: &[i8]) -> i32 {
    (KERNELS.dot_u8_i8)(codes, weights)
}

/// A u8 × i8 dot product chosen at compile time, so that a search loop specialised for one
/// instruction set (see [`has_vnni`]) inlines it instead of calling through a pointer.
pub(crate) trait CodeScore {
    /// Σ codes[i] · weights[i].
    fn score(codes: &[u8], weights: &[i8]) -> i32;
}

/// The kernel picked at run time, through a function pointer.
pub(crate) struct Dispatched;

impl CodeScore for Dispatched {
    #[inline(always)]
    fn score(codes: &[u8], weights: &[i8]) -> i32 {
        dot_u8_i8(codes, weights)
    }
}

/// The AVX-512 VNNI kernel, for loops compiled with those features.
#[cfg(target_arch = "x86_64")]
pub(crate) struct Vnni;

#[cfg(target_arch = "x86_64")]
impl CodeScore for Vnni {
    #[inline(always)]
    fn score(codes: &[u8], weights: &[i8]) -> i32 {
        // SAFETY: only used by code that runs after `has_vnni()` returned true.
        unsafe { x86::dot_u8_i8_vnni_impl(codes, weights) }
    }
}

/// Whether the CPU has AVX-512 F, BW and VNNI (the kernels picked are those).
pub(crate) fn has_vnni() -> bool {
    KERNELS.name == "avx512-vnni"
}

/// The instruction set the kernels use, for logs and benchmark reports.
pub fn kernel_name() -> &'static str {
    KERNELS.name
}

/// Asks the CPU to bring `bytes` bytes from `ptr` into its caches; a hint that never faults.
#[inline(always)]
pub(crate) fn prefetch(ptr: *const u8, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let mut offset = 0;
        while offset < bytes {
            // SAFETY: prefetching is a hint: it never faults, whatever the address.
            unsafe {
                use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                _mm_prefetch(ptr.wrapping_add(offset).cast::<i8>(), _MM_HINT_T0);
            }
            offset += 64;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (ptr, bytes);
}

/// Plain Rust, auto-vectorised where the compiler can: the reference the others are tested
/// against, and the path of CPUs without AVX2.
mod portable {
    pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        // Eight independent accumulators break the dependency chain so the loop vectorises.
        let mut acc = [0.0f32; 8];
        let whole = n / 8 * 8;
        for (ca, cb) in a[..whole].chunks_exact(8).zip(b[..whole].chunks_exact(8)) {
            for i in 0..8 {
                acc[i] += ca[i] * cb[i];
            }
        }
        let tail: f32 = a[whole..].iter().zip(&b[whole..]).map(|(x, y)| x * y).sum();
        acc.iter().sum::<f32>() + tail
    }

    pub fn dot_u8_i8(codes: &[u8], weights: &[i8]) -> i32 {
        codes
            .iter()
            .zip(weights)
            .map(|(&c, &w)| i32::from(c) * i32::from(w))
            .sum()
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    pub fn dot_f32_avx512(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: chosen only when the CPU reports AVX-512 F and BW.
        unsafe { dot_f32_avx512_impl(a, b) }
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn dot_f32_avx512_impl(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm512_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY (every load below): offsets stay below `n`, the length of both slices; the
        // last partial block is read with a mask that covers only the remaining elements.
        unsafe {
            while i + 64 <= n {
                for (j, acc) in acc.iter_mut().enumerate() {
                    let x = _mm512_loadu_ps(pa.add(i + 16 * j));
                    let y = _mm512_loadu_ps(pb.add(i + 16 * j));
                    *acc = _mm512_fmadd_ps(x, y, *acc);
                }
                i += 64;
            }
            while i + 16 <= n {
                let x = _mm512_loadu_ps(pa.add(i));
                let y = _mm512_loadu_ps(pb.add(i));
                acc[0] = _mm512_fmadd_ps(x, y, acc[0]);
                i += 16;
            }
            if i < n {
                let mask: __mmask16 = (1u16 << (n - i)) - 1;
                let x = _mm512_maskz_loadu_ps(mask, pa.add(i));
                let y = _mm512_maskz_loadu_ps(mask, pb.add(i));
                acc[1] = _mm512_fmadd_ps(x, y, acc[1]);
            }
        }
        let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
        _mm512_reduce_add_ps(sum)
    }

    pub fn dot_f32_avx2(a: &[f32], b: &[f32]) -> f32 {
        // SAFETY: chosen only when the CPU reports AVX2 and FMA.
        unsafe { dot_f32_avx2_impl(a, b) }
    }

    #[target_feature(enable = "avx2,fma")]
    unsafe fn dot_f32_avx2_impl(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        // SAFETY: offsets stay below `n`, the length of both slices.
        unsafe {
            while i + 32 <= n {
                for (j, acc) in acc.iter_mut().enumerate() {
                    let x = _mm256_loadu_ps(pa.add(i + 8 * j));
                    let y = _mm256_loadu_ps(pb.add(i + 8 * j));
                    *acc = _mm256_fmadd_ps(x, y, *acc);
                }
                i += 32;
            }
            while i + 8 <= n {
                let x = _mm256_loadu_ps(pa.add(i));
                let y = _mm256_loadu_ps(pb.add(i));
                acc[0] = _mm256_fmadd_ps(x, y, acc[0]);
                i += 8;
            }
        }
        let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
        let half = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps(sum, 1));
        let pairs = _mm_add_ps(half, _mm_movehl_ps(half, half));
        let one = _mm_add_ss(pairs, _mm_shuffle_ps(pairs, pairs, 1));
        let tail: f32 = a[i..n].iter().zip(&b[i..n]).map(|(x, y)| x * y).sum();
        _mm_cvtss_f32(one) + tail
    }

    pub fn dot_u8_i8_avx512_vnni(codes: &[u8], weights: &[i8]) -> i32 {
        // SAFETY: chosen only when the CPU reports AVX-512 F, BW and VNNI.
        unsafe { dot_u8_i8_vnni_impl(codes, weights) }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    pub(super) unsafe fn dot_u8_i8_vnni_impl(codes: &[u8], weights: &[i8]) -> i32 {
        let n = codes.len().min(weights.len());
        let (pc, pw) = (codes.as_ptr(), weights.as_ptr());
        let mut acc = [_mm512_setzero_si512(); 2];
        let mut i = 0;
        // SAFETY: offsets stay below `n`; the last block is read under a mask.
        unsafe {
            while i + 128 <= n {
                for (j, acc) in acc.iter_mut().enumerate() {
                    let c = _mm512_loadu_si512(pc.add(i + 64 * j).cast());
                    let w = _mm512_loadu_si512(pw.add(i + 64 * j).cast());
                    // u8 × i8 products, four at a time summed into each i32 lane: at most
                    // 4 · 255 · 128 per step, far from overflow for any vector length here.
                    *acc = _mm512_dpbusd_epi32(*acc, c, w);
                }
                i += 128;
            }
            while i < n {
                let left = n - i;
                let mask: __mmask64 = if left >= 64 {
                    u64::MAX
                } else {
                    (1u64 << left) - 1
                };
                let c = _mm512_maskz_loadu_epi8(mask, pc.add(i).cast());
                let w = _mm512_maskz_loadu_epi8(mask, pw.add(i).cast());
                acc[0] = _mm512_dpbusd_epi32(acc[0], c, w);
                i += 64;
            }
        }
        _mm512_reduce_add_epi32(_mm512_add_epi32(acc[0], acc[1]))
    }

    pub fn dot_u8_i8_avx512bw(codes: &[u8], weights: &[i8]) -> i32 {
        // SAFETY: chosen only when the CPU reports AVX-512 F and BW.
        unsafe { dot_u8_i8_avx512bw_impl(codes, weights) }
    }

    #[target_feature(enable = "avx512f,avx512bw")]
    unsafe fn dot_u8_i8_avx512bw_impl(codes: &[u8], weights: &[i8]) -> i32 {
        let n = codes.len().min(weights.len());
        let (pc, pw) = (codes.as_ptr(), weights.as_ptr());
        let mut acc = _mm512_setzero_si512();
        let mut i = 0;
        // SAFETY: offsets stay below `n`; the last block is read under a mask.
        unsafe {
            while i < n {
                let left = n - i;
                let mask: __mmask32 = if left >= 32 {
                    u32::MAX
                } else {
                    (1u32 << left) - 1
                };
                // Widened to i16 first: products then fit, and pairs sum into i32 exactly.
                let c = _mm512_cvtepu8_epi16(_mm256_maskz_loadu_epi8(mask, pc.add(i).cast()));
                let w = _mm512_cvtepi8_epi16(_mm256_maskz_loadu_epi8(mask, pw.add(i).cast()));
                acc = _mm512_add_epi32(acc, _mm512_madd_epi16(c, w));
                i += 32;
            }
        }
        _mm512_reduce_add_epi32(acc)
    }

    pub fn dot_u8_i8_avx2(codes: &[u8], weights: &[i8]) -> i32 {
        // SAFETY: chosen only when the CPU reports AVX2.
        unsafe { dot_u8_i8_avx2_impl(codes, weights) }
    }

    #[target_feature(enable = "avx2")]
    unsafe fn dot_u8_i8_avx2_impl(codes: &[u8], weights: &[i8]) -> i32 {
        let n = codes.len().min(weights.len());
        let (pc, pw) = (codes.as_ptr(), weights.as_ptr());
        let mut acc = _mm256_setzero_si256();
        let mut i = 0;
        // SAFETY: each 16-byte load lies below `n`.
        unsafe {
            while i + 16 <= n {
                let c = _mm256_cvtepu8_epi16(_mm_loadu_si128(pc.add(i).cast()));
                let w = _mm256_cvtepi8_epi16(_mm_loadu_si128(pw.add(i).cast()));
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(c, w));
                i += 16;
            }
        }
        let mut lanes = [0i32; 8];
        // SAFETY: `lanes` is 32 bytes, the size of the store.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc) };
        lanes.iter().sum::<i32>() + super::portable::dot_u8_i8(&codes[i..n], &weights[i..n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: u64) -> impl FnMut() -> u64 {
        let mut s = seed;
        move || {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            s >> 33
        }
    }

    /// Every implementation this CPU can run, with the portable one.
    #[allow(clippy::type_complexity)]
    fn available() -> Vec<(
        &'static str,
        fn(&[f32], &[f32]) -> f32,
        fn(&[u8], &[i8]) -> i32,
    )> {
        let mut paths: Vec<(
            &'static str,
            fn(&[f32], &[f32]) -> f32,
            fn(&[u8], &[i8]) -> i32,
        )> = vec![("portable", portable::dot_f32, portable::dot_u8_i8)];
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                paths.push(("avx2", x86::dot_f32_avx2, x86::dot_u8_i8_avx2));
            }
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw") {
                paths.push(("avx512", x86::dot_f32_avx512, x86::dot_u8_i8_avx512bw));
                if is_x86_feature_detected!("avx512vnni") {
                    paths.push((
                        "avx512-vnni",
                        x86::dot_f32_avx512,
                        x86::dot_u8_i8_avx512_vnni,
                    ));
                }
            }
        }
        paths
    }

    #[test]
    fn every_path_matches_the_portable_one() {
        let mut next = lcg(3);
        for n in [
            0, 1, 7, 15, 16, 17, 31, 63, 64, 65, 127, 128, 129, 383, 384, 385, 1000,
        ] {
            let a: Vec<f32> = (0..n)
                .map(|_| next() as f32 / (1u64 << 31) as f32 - 0.5)
                .collect();
            let b: Vec<f32> = (0..n)
                .map(|_| next() as f32 / (1u64 << 31) as f32 - 0.5)
                .collect();
            let codes: Vec<u8> = (0..n).map(|_| next() as u8).collect();
            let weights: Vec<i8> = (0..n).map(|_| next() as i8).collect();
            // The extremes: every product at its largest magnitude.
            let top: Vec<u8> = vec![255; n];
            let low: Vec<i8> = vec![-128; n];
            let exact_f32: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(x * y)).sum();
            for (name, dot, dot_q) in available() {
                let got = dot(&a, &b);
                assert!(
                    (f64::from(got) - exact_f32).abs() < 1e-4,
                    "{name} f32 at n={n}: {got} vs {exact_f32}"
                );
                assert_eq!(
                    dot_q(&codes, &weights),
                    portable::dot_u8_i8(&codes, &weights),
                    "{name} u8×i8 at n={n}"
                );
                assert_eq!(
                    dot_q(&top, &low),
                    -255 * 128 * n as i32,
                    "{name} at the extremes"
                );
            }
        }
        assert!(!kernel_name().is_empty());
    }
}

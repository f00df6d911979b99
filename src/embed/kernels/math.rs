//! The element-wise kernels of the forward pass, written so the compiler vectorises them.
//!
//! Each kernel has one portable body, compiled three times: for the baseline target, for
//! AVX2 + FMA (8 lanes) and for AVX-512 F/BW/VL (16 lanes), and run at the [`Width`] of the
//! caller's kernel path; no `target-cpu=native` build is needed. `exp` and `erf` are
//! branch-free polynomial approximations (the libm calls they replace were scalar and took
//! ~15% of the forward pass); their errors (≤ 2 ulp for exp, 1.5e-7 absolute for erf) are far
//! inside what the 0.9999 agreement with sentence-transformers allows — see the tests below.

use super::Width;

/// Defines `pub fn $name(width, args)` that runs `$body` compiled for `width`. Inside the
/// body, `madd!(a, b, c)` is `a * b + c`, fused where FMA is available, and `LANES` is the
/// number of f32 in one vector register (the width of the kernels' partial sums).
macro_rules! multiversion {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident : $ty:ty),*) $body:block) => {
        $(#[$doc])*
        pub fn $name(width: Width, $($arg: $ty),*) {
            #[inline(always)]
            fn body<const FMA: bool, const LANES: usize>($($arg: $ty),*) {
                #[allow(unused)]
                #[inline(always)]
                fn madd<const F: bool>(a: f32, b: f32, c: f32) -> f32 {
                    if F { a.mul_add(b, c) } else { a * b + c }
                }
                #[allow(unused_macros)]
                macro_rules! madd { ($a:expr, $b:expr, $c:expr) => { madd::<FMA>($a, $b, $c) }; }
                $body
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            fn avx2($($arg: $ty),*) {
                body::<true, 8>($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl")]
            fn avx512($($arg: $ty),*) {
                body::<true, 16>($($arg),*)
            }
            match width {
                // SAFETY: a Width other than Portable comes from a KernelPath the CPU
                // supports (KernelPath::width), so these features are present.
                #[cfg(target_arch = "x86_64")]
                Width::Avx512 => unsafe { avx512($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                Width::Avx2 => unsafe { avx2($($arg),*) },
                _ => body::<false, 8>($($arg),*),
            }
        }
    };
}

/// e^x for one value, the Cephes single-precision polynomial.
#[inline(always)]
fn exp_one<const FMA: bool>(x: f32) -> f32 {
    let madd = |a: f32, b: f32, c: f32| if FMA { a.mul_add(b, c) } else { a * b + c };
    let x = x.clamp(-87.336_54, 88.722_83);
    let n = madd(x, std::f32::consts::LOG2_E, 0.5).floor();
    let r = madd(n, -0.693_359_4, x);
    let r = madd(n, 2.121_944_4e-4, r);
    let mut p = 1.987_569_1e-4;
    p = madd(p, r, 1.398_199_9e-3);
    p = madd(p, r, 8.333_452e-3);
    p = madd(p, r, 4.166_579_6e-2);
    p = madd(p, r, 0.166_666_65);
    p = madd(p, r, 0.5);
    let y = madd(p, r * r, r + 1.0);
    // 2^n by building the exponent bits; n is in [-126, 128] after the clamp.
    let scale = f32::from_bits(((n as i32 + 127).clamp(0, 255) as u32) << 23);
    y * scale
}

/// erf(x) by Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7).
#[inline(always)]
fn erf_one<const FMA: bool>(x: f32) -> f32 {
    let madd = |a: f32, b: f32, c: f32| if FMA { a.mul_add(b, c) } else { a * b + c };
    let a = x.abs();
    let t = 1.0 / madd(0.327_591_1, a, 1.0);
    let mut p = 1.061_405_4;
    p = madd(p, t, -1.453_152);
    p = madd(p, t, 1.421_413_8);
    p = madd(p, t, -0.284_496_74);
    p = madd(p, t, 0.254_829_6);
    let y = 1.0 - p * t * exp_one::<FMA>(-a * a);
    y.copysign(x)
}

pub(super) use multiversion;

/// `x = gelu(x + bias)` row by row, with the exact (erf) GELU that BERT uses.
pub fn bias_gelu(width: Width, x: &mut [f32], bias: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if width == Width::Avx512 {
        // SAFETY: Width::Avx512 comes from a supported KernelPath.
        return unsafe { avx512::bias_gelu(x, bias) };
    }
    bias_gelu_auto(width, x, bias)
}

/// Softmax of each `row_len`-long row of `x`, in place, after multiplying by `scale`.
pub fn softmax_rows(width: Width, x: &mut [f32], row_len: usize, scale: f32) {
    #[cfg(target_arch = "x86_64")]
    if width == Width::Avx512 {
        // SAFETY: Width::Avx512 comes from a supported KernelPath.
        return unsafe { avx512::softmax_rows(x, row_len, scale) };
    }
    softmax_rows_auto(width, x, row_len, scale)
}

multiversion! {
    /// [`bias_gelu`] as the compiler vectorises it (the portable and AVX2 builds).
    fn bias_gelu_auto(x: &mut [f32], bias: &[f32]) {
        for row in x.chunks_exact_mut(bias.len()) {
            for (v, b) in row.iter_mut().zip(bias) {
                let u = *v + b;
                *v = 0.5 * u * (1.0 + erf_one::<FMA>(u * std::f32::consts::FRAC_1_SQRT_2));
            }
        }
    }
}

multiversion! {
    /// [`softmax_rows`] as the compiler vectorises it (the portable and AVX2 builds).
    fn softmax_rows_auto(x: &mut [f32], row_len: usize, scale: f32) {
        for row in x.chunks_exact_mut(row_len) {
            let mut lanes = [f32::NEG_INFINITY; LANES];
            let split = row.len() / LANES * LANES;
            for c in row[..split].chunks_exact(LANES) {
                for i in 0..LANES {
                    lanes[i] = lanes[i].max(c[i]);
                }
            }
            let mut max = lanes.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            for &v in &row[split..] {
                max = max.max(v);
            }
            let shift = max * scale;
            let mut sums = [0.0f32; LANES];
            for c in row[..split].chunks_exact_mut(LANES) {
                for i in 0..LANES {
                    let e = exp_one::<FMA>(madd!(c[i], scale, -shift));
                    c[i] = e;
                    sums[i] += e;
                }
            }
            let mut sum: f32 = sums.iter().sum();
            for v in &mut row[split..] {
                let e = exp_one::<FMA>(madd!(*v, scale, -shift));
                *v = e;
                sum += e;
            }
            let inv = 1.0 / sum;
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}

multiversion! {
    /// LayerNorm of each row of `x` in place: `(x - mean) / sqrt(var + eps) * weight + bias`.
    fn layer_norm_rows(x: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
        let width = weight.len();
        for row in x.chunks_exact_mut(width) {
            let split = width / LANES * LANES;
            let mut sums = [0.0f32; LANES];
            for c in row[..split].chunks_exact(LANES) {
                for i in 0..LANES {
                    sums[i] += c[i];
                }
            }
            let mean = (sums.iter().sum::<f32>() + row[split..].iter().sum::<f32>()) / width as f32;
            let mut squares = [0.0f32; LANES];
            for c in row[..split].chunks_exact(LANES) {
                for i in 0..LANES {
                    let d = c[i] - mean;
                    squares[i] = madd!(d, d, squares[i]);
                }
            }
            let tail: f32 = row[split..].iter().map(|v| (v - mean) * (v - mean)).sum();
            let var = (squares.iter().sum::<f32>() + tail) / width as f32;
            let inv = 1.0 / (var + eps).sqrt();
            for ((v, w), b) in row.iter_mut().zip(weight).zip(bias) {
                *v = madd!((*v - mean) * inv, *w, *b);
            }
        }
    }
}

multiversion! {
    /// `dst = a + b`, element-wise (a residual plus a bias, before a matmul accumulates).
    fn add_into(dst: &mut [f32], a: &[f32], b: &[f32]) {
        for ((d, x), y) in dst.iter_mut().zip(a).zip(b) {
            *d = x + y;
        }
    }
}

/// Hand-written AVX-512 versions of the two kernels with transcendental functions: the
/// compiler's 16-lane builds of the portable bodies were several times slower than 8-lane
/// AVX2 (profiled: softmax 17 % and GELU 12 % of an int8 forward pass).
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::super::lanes16;
    use std::arch::x86_64::*;

    /// e^x, the same Cephes polynomial as `exp_one`, with `vscalefps` for the 2^n.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    #[inline]
    fn exp(x: __m512) -> __m512 {
        let x = _mm512_min_ps(
            _mm512_max_ps(x, _mm512_set1_ps(-87.336_54)),
            _mm512_set1_ps(88.722_83),
        );
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm512_set1_ps(1.987_569_1e-4);
        for c in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            0.166_666_65,
            0.5,
        ] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        let y = _mm512_fmadd_ps(
            p,
            _mm512_mul_ps(r, r),
            _mm512_add_ps(r, _mm512_set1_ps(1.0)),
        );
        _mm512_scalef_ps(y, n)
    }

    /// gelu(u) = u/2 · (1 + erf(u/√2)), erf by Abramowitz & Stegun 7.1.26 as `erf_one`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    #[inline]
    fn gelu(u: __m512) -> __m512 {
        let z = _mm512_mul_ps(u, _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
        let a = _mm512_abs_ps(z);
        let d = _mm512_fmadd_ps(_mm512_set1_ps(0.327_591_1), a, _mm512_set1_ps(1.0));
        // 1/d: the 14-bit estimate and one Newton step (relative error ~1e-8).
        let e = _mm512_rcp14_ps(d);
        let t = _mm512_mul_ps(e, _mm512_fnmadd_ps(d, e, _mm512_set1_ps(2.0)));
        let mut p = _mm512_set1_ps(1.061_405_4);
        for c in [-1.453_152, 1.421_413_8, -0.284_496_74, 0.254_829_6] {
            p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(c));
        }
        let tail = _mm512_mul_ps(
            _mm512_mul_ps(p, t),
            exp(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), a), a)),
        );
        // erf(|z|) = 1 − tail; with the sign: 1 + erf(z) = 2 − tail (z ≥ 0) or tail (z < 0).
        let negative = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(z, _mm512_setzero_ps());
        let one_plus =
            _mm512_mask_blend_ps(negative, _mm512_sub_ps(_mm512_set1_ps(2.0), tail), tail);
        _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5), u), one_plus)
    }

    /// [`super::bias_gelu`] on AVX-512.
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW/VL.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    pub(super) unsafe fn bias_gelu(x: &mut [f32], bias: &[f32]) {
        for row in x.chunks_exact_mut(bias.len()) {
            for j in (0..row.len()).step_by(16) {
                let m = lanes16(row.len() - j);
                // SAFETY: the mask keeps every access inside `row` and `bias` (same length).
                unsafe {
                    let v = _mm512_maskz_loadu_ps(m, row.as_ptr().add(j));
                    let b = _mm512_maskz_loadu_ps(m, bias.as_ptr().add(j));
                    _mm512_mask_storeu_ps(row.as_mut_ptr().add(j), m, gelu(_mm512_add_ps(v, b)));
                }
            }
        }
    }

    /// [`super::softmax_rows`] on AVX-512.
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW/VL.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    pub(super) unsafe fn softmax_rows(x: &mut [f32], row_len: usize, scale: f32) {
        let scale_v = _mm512_set1_ps(scale);
        for row in x.chunks_exact_mut(row_len) {
            let ptr = row.as_mut_ptr();
            let mut max = _mm512_set1_ps(f32::NEG_INFINITY);
            for j in (0..row_len).step_by(16) {
                // SAFETY (this block and the ones below): the masks keep every access inside
                // the row.
                let v = unsafe { _mm512_mask_loadu_ps(max, lanes16(row_len - j), ptr.add(j)) };
                max = _mm512_max_ps(max, v);
            }
            let shift = _mm512_set1_ps(_mm512_reduce_max_ps(max) * scale);
            let mut sum = _mm512_setzero_ps();
            for j in (0..row_len).step_by(16) {
                let m = lanes16(row_len - j);
                unsafe {
                    let v = _mm512_maskz_loadu_ps(m, ptr.add(j));
                    let e = exp(_mm512_fmsub_ps(v, scale_v, shift));
                    _mm512_mask_storeu_ps(ptr.add(j), m, e);
                    sum = _mm512_mask_add_ps(sum, m, sum, e);
                }
            }
            let inv = _mm512_set1_ps(1.0 / _mm512_reduce_add_ps(sum));
            for j in (0..row_len).step_by(16) {
                let m = lanes16(row_len - j);
                unsafe {
                    let v = _mm512_maskz_loadu_ps(m, ptr.add(j));
                    _mm512_mask_storeu_ps(ptr.add(j), m, _mm512_mul_ps(v, inv));
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::super::KernelPath;
    use super::*;
    use proptest::prelude::*;

    /// Every f32 vector width this CPU runs.
    fn widths() -> Vec<Width> {
        let mut widths: Vec<Width> = KernelPath::supported().iter().map(|p| p.width()).collect();
        widths.dedup();
        widths
    }

    fn libm_gelu(x: f64) -> f64 {
        0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2))
    }

    #[test]
    fn exp_is_accurate_over_the_softmax_range() {
        for i in -8700..=880 {
            let x = i as f32 * 0.01;
            for fma in [false, true] {
                let got = if fma {
                    exp_one::<true>(x)
                } else {
                    exp_one::<false>(x)
                } as f64;
                let want = (x as f64).exp();
                assert!(
                    ((got - want) / want).abs() < 3e-7,
                    "exp({x}) = {got}, want {want}"
                );
            }
        }
        assert_eq!(exp_one::<false>(-1000.0), exp_one::<false>(-87.336_54));
    }

    #[test]
    fn gelu_matches_the_exact_erf_gelu_at_every_width() {
        let xs: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.005).collect();
        for width in widths() {
            let mut got = xs.clone();
            bias_gelu(width, &mut got, &[0.0]);
            for (x, g) in xs.iter().zip(&got) {
                let want = libm_gelu(*x as f64);
                assert!(
                    (*g as f64 - want).abs() < 2e-6,
                    "{width:?}: gelu({x}) = {g}, want {want}"
                );
            }
            let mut with_bias = vec![1.0f32, 1.0];
            bias_gelu(width, &mut with_bias, &[0.5, -1.0]);
            assert!((with_bias[0] as f64 - libm_gelu(1.5)).abs() < 1e-6);
            assert!(with_bias[1].abs() < 1e-7);
        }
    }

    fn softmax_reference(row: &[f32], scale: f32) -> Vec<f64> {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64 * scale as f64;
        let exps: Vec<f64> = row
            .iter()
            .map(|&v| (v as f64 * scale as f64 - max).exp())
            .collect();
        let sum: f64 = exps.iter().sum();
        exps.iter().map(|e| e / sum).collect()
    }

    fn layer_norm_reference(row: &[f32], w: &[f32], b: &[f32], eps: f32) -> Vec<f64> {
        let n = row.len() as f64;
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        row.iter()
            .zip(w)
            .zip(b)
            .map(|((&v, &w), &b)| {
                (v as f64 - mean) / (var + eps as f64).sqrt() * w as f64 + b as f64
            })
            .collect()
    }

    #[test]
    fn softmax_handles_huge_negative_scores() {
        let mut rows: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin() * 5.0).collect();
        rows.extend([-1e30f32, 0.0, 1.0]);
        for width in widths() {
            let mut got = rows.clone();
            softmax_rows(width, &mut got, 20, 0.5);
            for (r, g) in rows.chunks(20).zip(got.chunks(20)) {
                for (p, want) in g.iter().zip(softmax_reference(r, 0.5)) {
                    assert!((*p as f64 - want).abs() < 1e-6, "{width:?}: {p} vs {want}");
                }
            }
        }
    }

    /// Row lengths around the vector widths, 1-element rows and the 256-token window.
    fn row_len() -> impl Strategy<Value = usize> {
        prop_oneof![1usize..=40, 250usize..=260, Just(384), Just(1536)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn softmax_matches_a_scalar_reference(
            len in row_len(),
            rows in 1usize..4,
            seed in any::<u64>(),
            scale in 0.05f32..2.0,
        ) {
            let data = random(len * rows, seed, 8.0);
            for width in widths() {
                let mut got = data.clone();
                softmax_rows(width, &mut got, len, scale);
                for (r, g) in data.chunks(len).zip(got.chunks(len)) {
                    for (p, want) in g.iter().zip(softmax_reference(r, scale)) {
                        prop_assert!((*p as f64 - want).abs() < 1e-6, "{:?}: {} vs {}", width, p, want);
                    }
                }
            }
        }

        #[test]
        fn layer_norm_matches_a_scalar_reference(
            len in row_len(),
            rows in 1usize..4,
            seed in any::<u64>(),
        ) {
            let data = random(len * rows, seed, 3.0);
            let w = random(len, seed ^ 1, 1.0);
            let b = random(len, seed ^ 2, 1.0);
            for width in widths() {
                let mut got = data.clone();
                layer_norm_rows(width, &mut got, &w, &b, 1e-12);
                for (r, g) in data.chunks(len).zip(got.chunks(len)) {
                    if len == 1 {
                        // One value: (x - mean) is exactly 0, so the output is the bias.
                        prop_assert!((g[0] - b[0]).abs() < 1e-6);
                        continue;
                    }
                    for (y, want) in g.iter().zip(layer_norm_reference(r, &w, &b, 1e-12)) {
                        prop_assert!((*y as f64 - want).abs() < 2e-5, "{:?}: {} vs {}", width, y, want);
                    }
                }
            }
        }

        #[test]
        fn bias_gelu_and_add_match_scalar_references(
            len in row_len(),
            rows in 1usize..4,
            seed in any::<u64>(),
        ) {
            let data = random(len * rows, seed, 6.0);
            let bias = random(len, seed ^ 3, 1.0);
            for width in widths() {
                let mut got = data.clone();
                bias_gelu(width, &mut got, &bias);
                for (i, (g, x)) in got.iter().zip(&data).enumerate() {
                    let want = libm_gelu(*x as f64 + bias[i % len] as f64);
                    prop_assert!((*g as f64 - want).abs() < 4e-6, "{:?}: {} vs {}", width, g, want);
                }
                let mut sum = vec![0.0f32; len];
                add_into(width, &mut sum, &data[..len], &bias);
                for ((s, a), b) in sum.iter().zip(&data).zip(&bias) {
                    prop_assert_eq!(*s, a + b);
                }
            }
        }
    }

    /// `n` values uniform in `-amplitude..amplitude`, from `seed` (a small xorshift, so the
    /// test needs no extra crate).
    pub(crate) fn random(n: usize, seed: u64, amplitude: f32) -> Vec<f32> {
        let mut state = seed | 1;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * amplitude
            })
            .collect()
    }
}

//! The hot element-wise kernels of the forward pass, written so the compiler vectorises them.
//!
//! Each kernel has one portable body; on x86-64 CPUs with AVX2 and FMA (checked once at run
//! time) the same body is compiled a second time with those features enabled, so LLVM emits
//! 8-wide FMA code without a `target-cpu=native` build. `exp` and `erf` are branch-free
//! polynomial approximations (the libm calls they replace were scalar and took ~15% of the
//! forward pass); their errors (≤ 2 ulp for exp, 1.5e-7 absolute for erf) are far inside what
//! the 0.9999 agreement with sentence-transformers allows — see the tests below.

use std::sync::OnceLock;

/// Whether the AVX2 + FMA versions can run here (and so whether [`panel_matmul`] is the fast
/// path for dense layers, or gemm is).
pub fn fast_simd() -> bool {
    static FAST: OnceLock<bool> = OnceLock::new();
    *FAST.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// Defines `pub fn $name(args)` that runs `$body` compiled for AVX2+FMA when the CPU has them,
/// else the portable build. Inside the body, `madd(a, b, c)` is `a * b + c`, fused where FMA
/// is available.
macro_rules! multiversion {
    ($(#[$doc:meta])* fn $name:ident($($arg:ident : $ty:ty),*) $body:block) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn body<const FMA: bool>($($arg: $ty),*) {
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
            fn fast($($arg: $ty),*) {
                body::<true>($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if fast_simd() {
                // SAFETY: the CPU supports AVX2 and FMA (checked above).
                return unsafe { fast($($arg),*) };
            }
            body::<false>($($arg),*)
        }
    };
}

/// Lanes processed together by the kernels' inner loops (one AVX register of f32).
const LANES: usize = 8;

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

/// Late interaction's inner loop on int8 codes: for every passage token and every query
/// token (each `codes × scale`), raises `best[query token]` to their dot product when it is
/// larger. Integer products sum exactly in i32 (at most 2 × 127² per lane and step).
pub fn int8_best_matches(
    passage: &[i8],
    passage_scales: &[f32],
    query: &[i8],
    query_scales: &[f32],
    best: &mut [f32],
) {
    let d = query.len() / query_scales.len().max(1);
    if d == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if d.is_multiple_of(16) && fast_simd() {
        // SAFETY: the CPU has AVX2 (checked above); rows are whole multiples of 16 codes.
        unsafe { int8_best_matches_avx2(passage, passage_scales, query, query_scales, best, d) };
        return;
    }
    for (row, ps) in passage.chunks_exact(d).zip(passage_scales) {
        for ((q, qs), b) in query.chunks_exact(d).zip(query_scales).zip(best.iter_mut()) {
            let dot: i32 = row
                .iter()
                .zip(q)
                .map(|(x, y)| i32::from(*x) * i32::from(*y))
                .sum();
            *b = b.max(dot as f32 * ps * qs);
        }
    }
}

/// [`int8_best_matches`] with AVX2: each 16 passage codes are widened to i16 once and
/// multiplied-and-added (`vpmaddwd`) with four query tokens at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn int8_best_matches_avx2(
    passage: &[i8],
    passage_scales: &[f32],
    query: &[i8],
    query_scales: &[f32],
    best: &mut [f32],
    d: usize,
) {
    use std::arch::x86_64::*;
    const GROUP: usize = 4;
    let wide: Vec<i16> = query.iter().map(|&v| i16::from(v)).collect();
    let tokens = query_scales.len();
    for (row, ps) in passage.chunks_exact(d).zip(passage_scales) {
        for first in (0..tokens).step_by(GROUP) {
            let count = GROUP.min(tokens - first);
            let mut acc = [_mm256_setzero_si256(); GROUP];
            for k in (0..d).step_by(16) {
                // SAFETY: k + 16 <= d, within this row and within each query token's row.
                let p =
                    unsafe { _mm256_cvtepi8_epi16(_mm_loadu_si128(row.as_ptr().add(k).cast())) };
                for (j, a) in acc.iter_mut().enumerate().take(count) {
                    let q = unsafe {
                        _mm256_loadu_si256(wide.as_ptr().add((first + j) * d + k).cast())
                    };
                    *a = _mm256_add_epi32(*a, _mm256_madd_epi16(p, q));
                }
            }
            for (j, a) in acc.iter().enumerate().take(count) {
                let half =
                    _mm_add_epi32(_mm256_castsi256_si128(*a), _mm256_extracti128_si256(*a, 1));
                let pairs = _mm_hadd_epi32(half, half);
                let dot = _mm_cvtsi128_si32(_mm_hadd_epi32(pairs, pairs));
                let b = &mut best[first + j];
                *b = b.max(dot as f32 * ps * query_scales[first + j]);
            }
        }
    }
}

multiversion! {
    /// `x = gelu(x + bias)` row by row, with the exact (erf) GELU that BERT uses.
    fn bias_gelu(x: &mut [f32], bias: &[f32]) {
        for row in x.chunks_exact_mut(bias.len()) {
            for (v, b) in row.iter_mut().zip(bias) {
                let u = *v + b;
                *v = 0.5 * u * (1.0 + erf_one::<FMA>(u * std::f32::consts::FRAC_1_SQRT_2));
            }
        }
    }
}

multiversion! {
    /// Softmax of each `width`-long row of `x`, in place, after multiplying by `scale`.
    fn softmax_rows(x: &mut [f32], width: usize, scale: f32) {
        for row in x.chunks_exact_mut(width) {
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

/// Output features per weight panel: two AVX registers of f32.
pub const PANEL: usize = 16;
/// Tokens a micro-kernel call handles at once (12 accumulators + 3 working registers).
const TOKENS_PER_STEP: usize = 6;

/// A weight matrix re-laid out for [`panel_matmul`]: panels of [`PANEL`] output features,
/// each panel holding, input by input, its 16 weights contiguously. The kernel then reads the
/// weights strictly sequentially, once per block of tokens, instead of striding through them.
pub struct PanelWeights {
    data: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

impl PanelWeights {
    /// Packs a `[inputs, outputs]` row-major (transposed) weight.
    pub fn pack(weight_t: &[f32], inputs: usize, outputs: usize) -> Self {
        let panels = outputs.div_ceil(PANEL);
        let mut data = vec![0.0f32; panels * inputs * PANEL];
        for p in 0..panels {
            for k in 0..inputs {
                for j in 0..PANEL {
                    let o = p * PANEL + j;
                    if o < outputs {
                        data[(p * inputs + k) * PANEL + j] = weight_t[k * outputs + o];
                    }
                }
            }
        }
        Self {
            data,
            inputs,
            outputs,
        }
    }

    /// Number of panels.
    pub fn panels(&self) -> usize {
        self.outputs.div_ceil(PANEL)
    }
}

/// `dst[t, o] (+)= Σₖ x[t, k] · W[o, k]`, with `x` `[tokens, inputs]` and `dst`
/// `[tokens, outputs]`, both row-major; panels are shared out over the current rayon pool.
/// Fast where [`fast_simd`] holds; elsewhere a plain loop computes the same thing (callers use
/// gemm there instead).
pub fn panel_matmul(dst: &mut [f32], x: &[f32], w: &PanelWeights, tokens: usize, accumulate: bool) {
    assert!(x.len() >= tokens * w.inputs && dst.len() >= tokens * w.outputs);
    #[cfg(target_arch = "x86_64")]
    if fast_simd() {
        let panels = w.panels();
        let threads = rayon::current_num_threads().min(panels);
        let out = Shared(dst.as_mut_ptr());
        let x = Shared(x.as_ptr().cast_mut());
        let run = move |range: std::ops::Range<usize>| {
            // SAFETY: the CPU has AVX2 and FMA; the assert above bounds every access, and
            // tasks own disjoint panels, i.e. disjoint columns of dst.
            unsafe { panel_matmul_avx2(out.get(), x.get(), w, tokens, accumulate, range) };
        };
        if threads > 1 {
            let per_task = panels.div_ceil(threads * 2);
            rayon::scope(|scope| {
                for start in (0..panels).step_by(per_task) {
                    let range = start..(start + per_task).min(panels);
                    scope.spawn(move |_| run(range));
                }
            });
        } else {
            run(0..panels);
        }
        return;
    }
    panel_matmul_portable(dst, x, w, tokens, accumulate);
}

/// [`panel_matmul`] without SIMD, for CPUs without AVX2/FMA (and as the tests' second opinion).
fn panel_matmul_portable(
    dst: &mut [f32],
    x: &[f32],
    w: &PanelWeights,
    tokens: usize,
    accumulate: bool,
) {
    for t in 0..tokens {
        for o in 0..w.outputs {
            let (p, j) = (o / PANEL, o % PANEL);
            let panel = &w.data[p * w.inputs * PANEL..];
            let sum: f32 = (0..w.inputs)
                .map(|k| x[t * w.inputs + k] * panel[k * PANEL + j])
                .sum();
            let cell = &mut dst[t * w.outputs + o];
            *cell = if accumulate { *cell + sum } else { sum };
        }
    }
}

/// A raw pointer shared by tasks that touch disjoint parts of one buffer.
#[derive(Clone, Copy)]
pub struct Shared(pub *mut f32);
// SAFETY: only ever used for disjoint accesses (see the callers).
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

impl Shared {
    /// The pointer (a method, so closures capture the Send wrapper, not the raw field).
    pub fn get(self) -> *mut f32 {
        self.0
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn panel_matmul_avx2(
    dst: *mut f32,
    x: *const f32,
    w: &PanelWeights,
    tokens: usize,
    accumulate: bool,
    panels: std::ops::Range<usize>,
) {
    let block = token_block(w.inputs);
    let mut block_start = 0;
    while block_start < tokens {
        let block_end = (block_start + block).min(tokens);
        for p in panels.clone() {
            let panel = unsafe { w.data.as_ptr().add(p * w.inputs * PANEL) };
            let full = (p + 1) * PANEL <= w.outputs;
            let mut t = block_start;
            while t < block_end {
                let n = (block_end - t).min(TOKENS_PER_STEP);
                // SAFETY: rows t..t+n of x and dst, columns of panel p (guarded by `full`).
                unsafe {
                    match n {
                        6 => panel_step::<6>(dst, x, panel, w, t, p, accumulate, full),
                        5 => panel_step::<5>(dst, x, panel, w, t, p, accumulate, full),
                        4 => panel_step::<4>(dst, x, panel, w, t, p, accumulate, full),
                        3 => panel_step::<3>(dst, x, panel, w, t, p, accumulate, full),
                        2 => panel_step::<2>(dst, x, panel, w, t, p, accumulate, full),
                        _ => panel_step::<1>(dst, x, panel, w, t, p, accumulate, full),
                    }
                }
                t += n;
            }
        }
        block_start = block_end;
    }
}

/// Bytes of input rows a token block may take, so that the block stays in L2 while every
/// panel of the task streams past it (instead of streaming all of x once per panel).
const TOKEN_BLOCK_BYTES: usize = 192 * 1024;

/// Tokens per block for `inputs` features: a multiple of [`TOKENS_PER_STEP`].
fn token_block(inputs: usize) -> usize {
    let rows = TOKEN_BLOCK_BYTES / (inputs.max(1) * std::mem::size_of::<f32>());
    (rows / TOKENS_PER_STEP).max(1) * TOKENS_PER_STEP
}

/// One panel × `N` tokens: 2·N accumulators over all inputs.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn panel_step<const N: usize>(
    dst: *mut f32,
    x: *const f32,
    panel: *const f32,
    w: &PanelWeights,
    t0: usize,
    p: usize,
    accumulate: bool,
    full: bool,
) {
    use std::arch::x86_64::*;
    let k = w.inputs;
    let mut lo = [_mm256_setzero_ps(); N];
    let mut hi = [_mm256_setzero_ps(); N];
    for kk in 0..k {
        // SAFETY (whole block): kk < inputs, t0 + N ≤ tokens, as the caller guarantees.
        unsafe {
            let w0 = _mm256_loadu_ps(panel.add(kk * PANEL));
            let w1 = _mm256_loadu_ps(panel.add(kk * PANEL + 8));
            for t in 0..N {
                let xb = _mm256_broadcast_ss(&*x.add((t0 + t) * k + kk));
                lo[t] = _mm256_fmadd_ps(w0, xb, lo[t]);
                hi[t] = _mm256_fmadd_ps(w1, xb, hi[t]);
            }
        }
    }
    let out = w.outputs;
    for t in 0..N {
        // SAFETY: row t0+t of dst, columns p·16.. within `out` (checked by `full` or below).
        unsafe {
            let row = dst.add((t0 + t) * out + p * PANEL);
            if full {
                let (mut a, mut b) = (lo[t], hi[t]);
                if accumulate {
                    a = _mm256_add_ps(a, _mm256_loadu_ps(row));
                    b = _mm256_add_ps(b, _mm256_loadu_ps(row.add(8)));
                }
                _mm256_storeu_ps(row, a);
                _mm256_storeu_ps(row.add(8), b);
            } else {
                let mut tmp = [0.0f32; PANEL];
                _mm256_storeu_ps(tmp.as_mut_ptr(), lo[t]);
                _mm256_storeu_ps(tmp.as_mut_ptr().add(8), hi[t]);
                for (j, v) in tmp.iter().enumerate().take(out - p * PANEL) {
                    let cell = row.add(j);
                    *cell = if accumulate { *cell + v } else { *v };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn gelu_matches_the_exact_erf_gelu() {
        let xs: Vec<f32> = (-2000..=2000).map(|i| i as f32 * 0.005).collect();
        let mut got = xs.clone();
        bias_gelu(&mut got, &[0.0]);
        for (x, g) in xs.iter().zip(&got) {
            let want = libm_gelu(*x as f64);
            assert!(
                (*g as f64 - want).abs() < 2e-6,
                "gelu({x}) = {g}, want {want}"
            );
        }
        let mut with_bias = vec![1.0f32, 1.0];
        bias_gelu(&mut with_bias, &[0.5, -1.0]);
        assert!((with_bias[0] as f64 - libm_gelu(1.5)).abs() < 1e-6);
        assert!(with_bias[1].abs() < 1e-7);
    }

    #[test]
    fn panel_matmul_matches_naive() {
        for (tokens, inputs, outputs) in [(1, 8, 16), (7, 33, 40), (13, 384, 1152), (77, 1536, 40)]
        {
            let x: Vec<f32> = (0..tokens * inputs)
                .map(|i| ((i * 7) % 13) as f32 * 0.1 - 0.6)
                .collect();
            let w_t: Vec<f32> = (0..inputs * outputs)
                .map(|i| ((i * 5) % 11) as f32 * 0.05 - 0.25)
                .collect();
            let packed = PanelWeights::pack(&w_t, inputs, outputs);
            let mut dst = vec![1.0f32; tokens * outputs];
            panel_matmul(&mut dst, &x, &packed, tokens, true);
            for t in 0..tokens {
                for o in 0..outputs {
                    let want: f32 = 1.0
                        + (0..inputs)
                            .map(|k| x[t * inputs + k] * w_t[k * outputs + o])
                            .sum::<f32>();
                    assert!(
                        (dst[t * outputs + o] - want).abs() < 1e-3 * want.abs().max(1.0),
                        "{tokens}x{inputs}x{outputs} at {t},{o}"
                    );
                }
            }
            let mut fresh = vec![9.0f32; tokens * outputs];
            panel_matmul(&mut fresh, &x, &packed, tokens, false);
            assert!((fresh[0] + 1.0 - dst[0]).abs() < 1e-4);
            let mut portable = vec![9.0f32; tokens * outputs];
            panel_matmul_portable(&mut portable, &x, &packed, tokens, false);
            for (a, b) in portable.iter().zip(&fresh) {
                assert!((a - b).abs() < 1e-3 * a.abs().max(1.0));
            }
        }
    }

    #[test]
    fn softmax_and_layer_norm() {
        let mut rows: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin() * 5.0).collect();
        rows.extend([-1e30f32, 0.0, 1.0]);
        let width = 20;
        let mut got = rows.clone();
        softmax_rows(&mut got, width, 0.5);
        for (r, g) in rows.chunks(width).zip(got.chunks(width)) {
            let max = r.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64 * 0.5;
            let sum: f64 = r.iter().map(|&v| (v as f64 * 0.5 - max).exp()).sum();
            for (v, p) in r.iter().zip(g) {
                let want = (*v as f64 * 0.5 - max).exp() / sum;
                assert!((*p as f64 - want).abs() < 1e-6, "{p} vs {want}");
            }
        }

        let mut x: Vec<f32> = (0..384 * 2)
            .map(|i| (i as f32 * 0.01).cos() * 3.0 + 1.0)
            .collect();
        let w: Vec<f32> = (0..384).map(|i| 1.0 + i as f32 * 0.001).collect();
        let b: Vec<f32> = (0..384).map(|i| i as f32 * -0.002).collect();
        let orig = x.clone();
        layer_norm_rows(&mut x, &w, &b, 1e-12);
        for (r, y) in orig.chunks(384).zip(x.chunks(384)) {
            let mean = r.iter().map(|&v| v as f64).sum::<f64>() / 384.0;
            let var = r.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / 384.0;
            for i in 0..384 {
                let want = (r[i] as f64 - mean) / (var + 1e-12).sqrt() * w[i] as f64 + b[i] as f64;
                assert!((y[i] as f64 - want).abs() < 1e-5);
            }
        }
    }
}

//! f32 dense layers: `dst (+)= x · Wᵀ` over weights re-laid out in panels.
//!
//! A panel holds, input by input, the weights of [`PanelWeights::panel`] consecutive output
//! features (16 for AVX2: two registers; 32 for AVX-512: two registers), so the micro-kernel
//! reads the weights strictly sequentially, once per block of tokens, and keeps a
//! `tokens × panel` tile of sums in registers (AVX2: 6 tokens, 12 of its 16 registers;
//! AVX-512: 12 tokens, 24 of its 32).

use super::{Shared, Width, split_units};

/// A weight matrix re-laid out for [`panel_matmul`] at one vector width.
pub struct PanelWeights {
    data: Vec<f32>,
    inputs: usize,
    outputs: usize,
    panel: usize,
    width: Width,
}

impl PanelWeights {
    /// Packs a `[inputs, outputs]` row-major (transposed) weight for `width`'s kernel.
    pub fn pack(width: Width, weight_t: &[f32], inputs: usize, outputs: usize) -> Self {
        assert_eq!(weight_t.len(), inputs * outputs, "weight shape");
        let panel = match width {
            Width::Avx512 => 32,
            Width::Avx2 | Width::Portable => 16,
        };
        let panels = outputs.div_ceil(panel);
        let mut data = vec![0.0f32; panels * inputs * panel];
        for p in 0..panels {
            for k in 0..inputs {
                for j in 0..panel {
                    let o = p * panel + j;
                    if o < outputs {
                        data[(p * inputs + k) * panel + j] = weight_t[k * outputs + o];
                    }
                }
            }
        }
        Self {
            data,
            inputs,
            outputs,
            panel,
            width,
        }
    }

    /// Output features per panel.
    pub fn panel(&self) -> usize {
        self.panel
    }

    /// Number of panels.
    pub fn panels(&self) -> usize {
        self.outputs.div_ceil(self.panel)
    }

    /// Input features.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Output features.
    pub fn outputs(&self) -> usize {
        self.outputs
    }
}

/// `dst[t, o] (+)= Σₖ x[t, k] · W[o, k]`, with `x` `[tokens, inputs]` and `dst`
/// `[tokens, outputs]`, both row-major; panels are shared out over the current rayon pool.
/// Weights packed for [`Width::Portable`] run a plain loop (the encoder uses gemm there).
///
/// # Panics
/// When `x` or `dst` is shorter than the shapes say.
pub fn panel_matmul(dst: &mut [f32], x: &[f32], w: &PanelWeights, tokens: usize, accumulate: bool) {
    assert!(x.len() >= tokens * w.inputs && dst.len() >= tokens * w.outputs);
    if tokens == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if w.width != Width::Portable {
        let out = Shared(dst.as_mut_ptr());
        let x = Shared(x.as_ptr().cast_mut());
        let parallel = tokens * w.inputs * w.outputs >= super::PARALLEL_FROM;
        split_units(w.panels(), parallel, move |range| {
            // SAFETY: `w.width` came from a supported KernelPath, so the CPU has its
            // features; the assert above bounds every access, and tasks own disjoint
            // panels, i.e. disjoint columns of dst.
            unsafe {
                let (rows, step): (PanelRows, usize) = match w.width {
                    Width::Avx512 => (avx512::rows, avx512::STEP),
                    _ => (avx2::rows, avx2::STEP),
                };
                panel_loop(rows, step, out.get(), x.get(), w, tokens, accumulate, range)
            }
        });
        return;
    }
    panel_matmul_portable(dst, x, w, tokens, accumulate);
}

/// [`panel_matmul`] without SIMD: the tests' reference and the fallback of any width.
fn panel_matmul_portable(
    dst: &mut [f32],
    x: &[f32],
    w: &PanelWeights,
    tokens: usize,
    accumulate: bool,
) {
    for t in 0..tokens {
        for o in 0..w.outputs {
            let (p, j) = (o / w.panel, o % w.panel);
            let panel = &w.data[p * w.inputs * w.panel..];
            let sum: f32 = (0..w.inputs)
                .map(|k| x[t * w.inputs + k] * panel[k * w.panel + j])
                .sum();
            let cell = &mut dst[t * w.outputs + o];
            *cell = if accumulate { *cell + sum } else { sum };
        }
    }
}

/// `dst[i, j] = Σₖ x[i, k] · w[k, j]` for `i < rows`, `j < cols`, `k < inner`, on the calling
/// thread: attention's two small products per (sequence, head), read in place through strides
/// (row `i` of x starts at `x + i·x_stride`, row `k` of w at `w + k·w_stride`, row `i` of dst
/// at `dst + i·dst_stride`).
///
/// # Safety
/// Every element the shapes and strides address is in bounds, and `dst` overlaps neither input.
#[allow(clippy::too_many_arguments)]
pub unsafe fn strided_matmul(
    width: Width,
    dst: *mut f32,
    dst_stride: usize,
    x: *const f32,
    x_stride: usize,
    w: *const f32,
    w_stride: usize,
    rows: usize,
    inner: usize,
    cols: usize,
) {
    let (dst, x, w) = (
        Strided::new(dst, dst_stride),
        Strided::new(x.cast_mut(), x_stride),
        Strided::new(w.cast_mut(), w_stride),
    );
    // SAFETY (all arms): forwarded from the caller; a width other than Portable comes from a
    // supported KernelPath.
    match width {
        #[cfg(target_arch = "x86_64")]
        Width::Avx512 => unsafe {
            panels_of(avx512::rows, avx512::PANEL, dst, x, w, rows, inner, cols)
        },
        #[cfg(target_arch = "x86_64")]
        Width::Avx2 => unsafe { panels_of(avx2::rows, avx2::PANEL, dst, x, w, rows, inner, cols) },
        _ => {
            for i in 0..rows {
                for j in 0..cols {
                    let mut sum = 0.0f32;
                    for k in 0..inner {
                        unsafe { sum += *x.at(i, k) * *w.at(k, j) };
                    }
                    unsafe { *dst.at(i, j) = sum };
                }
            }
        }
    }
}

/// One width's driver: every row (`count` of them) of one panel of `cols` columns of
/// `dst (+)= x · w`, summed over `inner`.
///
/// # Safety (of calling one)
/// The CPU has the width's features; every element addressed is in bounds and `dst` overlaps
/// neither input.
#[cfg(target_arch = "x86_64")]
type PanelRows = unsafe fn(Strided, Strided, Strided, usize, usize, usize, bool);

/// The panels of [`panel_matmul`] in `panels`, token block by token block.
///
/// # Safety
/// `rows` may run on this CPU; `x` holds `tokens × w.inputs` floats and `dst`
/// `tokens × w.outputs`; no other thread touches these panels' columns of `dst`.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn panel_loop(
    rows: PanelRows,
    step: usize,
    dst: *mut f32,
    x: *const f32,
    w: &PanelWeights,
    tokens: usize,
    accumulate: bool,
    panels: std::ops::Range<usize>,
) {
    let (dst, x) = (
        Strided::new(dst, w.outputs),
        Strided::new(x.cast_mut(), w.inputs),
    );
    let block = token_block(w.inputs, step);
    let mut block_start = 0;
    while block_start < tokens {
        let block_end = (block_start + block).min(tokens);
        for p in panels.clone() {
            let panel = Strided::new(
                w.data[p * w.inputs * w.panel..].as_ptr().cast_mut(),
                w.panel,
            );
            let cols = (w.outputs - p * w.panel).min(w.panel);
            // SAFETY: rows block_start..block_end of x and dst, columns of panel p.
            unsafe {
                rows(
                    dst.offset(block_start, p * w.panel),
                    x.offset(block_start, 0),
                    panel,
                    block_end - block_start,
                    w.inputs,
                    cols,
                    accumulate,
                )
            };
        }
        block_start = block_end;
    }
}

/// [`strided_matmul`] panel by panel of `panel` columns.
///
/// # Safety
/// As for [`strided_matmul`], and `rows` may run on this CPU.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::too_many_arguments)]
unsafe fn panels_of(
    rows: PanelRows,
    panel: usize,
    dst: Strided,
    x: Strided,
    w: Strided,
    count: usize,
    inner: usize,
    cols: usize,
) {
    for j0 in (0..cols).step_by(panel) {
        // SAFETY: forwarded; columns j0..j0 + min(panel, cols − j0).
        unsafe {
            rows(
                dst.offset(0, j0),
                x,
                w.offset(0, j0),
                count,
                inner,
                (cols - j0).min(panel),
                false,
            )
        };
    }
}

/// A row-major matrix in memory: element (i, j) at `ptr + i·stride + j`.
#[derive(Clone, Copy)]
struct Strided {
    ptr: *mut f32,
    stride: usize,
}

impl Strided {
    fn new(ptr: *mut f32, stride: usize) -> Self {
        Self { ptr, stride }
    }

    /// The address of element (i, j), computed without asserting it lies in the allocation
    /// (a masked-out lane may point past the end; it is never dereferenced).
    fn at(self, i: usize, j: usize) -> *mut f32 {
        self.ptr.wrapping_add(i * self.stride + j)
    }

    /// The matrix from row `i`, column `j` on.
    fn offset(self, i: usize, j: usize) -> Self {
        Self {
            ptr: self.at(i, j),
            stride: self.stride,
        }
    }
}

/// Bytes of input rows a token block may take, so that the block stays in L2 while every
/// panel of the task streams past it (instead of streaming all of x once per panel).
const TOKEN_BLOCK_BYTES: usize = 192 * 1024;

/// Tokens per block for `inputs` features: a multiple of `step`.
fn token_block(inputs: usize, step: usize) -> usize {
    let rows = TOKEN_BLOCK_BYTES / (inputs.max(1) * std::mem::size_of::<f32>());
    (rows / step).max(1) * step
}

/// Calls `$f::<N>(args)` for the `N` in 1..=`$max` that `$n` names (the micro-kernels'
/// token counts are compile-time constants, so their sums stay in registers).
macro_rules! by_tokens {
    ($n:expr, $f:ident $args:tt, [$($k:literal),*]) => {
        match $n {
            $($k => $f::<$k> $args,)*
            _ => unreachable!("token step out of range"),
        }
    };
    // `f[G](args)`: `f::<N, G>(args)`, with one more const parameter.
    ($n:expr, $f:ident [$g:ident] $args:tt, [$($k:literal),*]) => {
        match $n {
            $($k => $f::<$k, $g> $args,)*
            _ => unreachable!("token step out of range"),
        }
    };
}
pub(super) use by_tokens;

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::Strided;
    use std::arch::x86_64::*;

    pub(super) const PANEL: usize = 16;
    /// Tokens a micro-kernel call handles at once (12 accumulators + 3 working registers).
    pub(super) const STEP: usize = 6;

    /// Every row of one 16-column panel, `STEP` rows per micro-kernel call.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; see [`super::PanelRows`].
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn rows(
        dst: Strided,
        x: Strided,
        w: Strided,
        count: usize,
        inner: usize,
        cols: usize,
        accumulate: bool,
    ) {
        let mut t = 0;
        while t < count {
            let n = (count - t).min(STEP);
            let (d, xs) = (dst.offset(t, 0), x.offset(t, 0));
            // SAFETY: rows t..t+n, `cols` columns, as the caller guarantees.
            unsafe {
                if cols == PANEL {
                    super::by_tokens!(
                        n,
                        step_full(d, xs, w, inner, accumulate),
                        [1, 2, 3, 4, 5, 6]
                    )
                } else {
                    super::by_tokens!(
                        n,
                        step_partial(d, xs, w, inner, cols, accumulate),
                        [1, 2, 3, 4, 5, 6]
                    )
                }
            };
            t += n;
        }
    }

    /// `N` rows × 16 columns, summed over `inner`: 2·N accumulators.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn step_full<const N: usize>(
        dst: Strided,
        x: Strided,
        w: Strided,
        inner: usize,
        accumulate: bool,
    ) {
        let mut lo = [_mm256_setzero_ps(); N];
        let mut hi = [_mm256_setzero_ps(); N];
        for k in 0..inner {
            // SAFETY (whole block): row k of w has 16 columns here; rows < N of x have `inner`.
            unsafe {
                let w0 = _mm256_loadu_ps(w.at(k, 0));
                let w1 = _mm256_loadu_ps(w.at(k, 8));
                for t in 0..N {
                    let xb = _mm256_broadcast_ss(&*x.at(t, k));
                    lo[t] = _mm256_fmadd_ps(w0, xb, lo[t]);
                    hi[t] = _mm256_fmadd_ps(w1, xb, hi[t]);
                }
            }
        }
        for t in 0..N {
            // SAFETY: row t of dst has these 16 columns.
            unsafe {
                let row = dst.at(t, 0);
                let (mut a, mut b) = (lo[t], hi[t]);
                if accumulate {
                    a = _mm256_add_ps(a, _mm256_loadu_ps(row));
                    b = _mm256_add_ps(b, _mm256_loadu_ps(row.add(8)));
                }
                _mm256_storeu_ps(row, a);
                _mm256_storeu_ps(row.add(8), b);
            }
        }
    }

    /// As [`step_full`] for a last panel of `cols` < 16 columns: masked loads, and stores of
    /// the real columns only.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn step_partial<const N: usize>(
        dst: Strided,
        x: Strided,
        w: Strided,
        inner: usize,
        cols: usize,
        accumulate: bool,
    ) {
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols.min(8) as i32), lanes);
        let m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols.saturating_sub(8) as i32), lanes);
        let mut lo = [_mm256_setzero_ps(); N];
        let mut hi = [_mm256_setzero_ps(); N];
        for k in 0..inner {
            // SAFETY (whole block): the masks load only the `cols` real columns of row k.
            unsafe {
                let w0 = _mm256_maskload_ps(w.at(k, 0), m0);
                let w1 = _mm256_maskload_ps(w.at(k, 8), m1);
                for t in 0..N {
                    let xb = _mm256_broadcast_ss(&*x.at(t, k));
                    lo[t] = _mm256_fmadd_ps(w0, xb, lo[t]);
                    hi[t] = _mm256_fmadd_ps(w1, xb, hi[t]);
                }
            }
        }
        for t in 0..N {
            let mut tmp = [0.0f32; PANEL];
            // SAFETY: 16 floats into a 16-float array; then the `cols` real cells of row t.
            unsafe {
                _mm256_storeu_ps(tmp.as_mut_ptr(), lo[t]);
                _mm256_storeu_ps(tmp.as_mut_ptr().add(8), hi[t]);
                for (j, v) in tmp.iter().enumerate().take(cols) {
                    let cell = dst.at(t, j);
                    *cell = if accumulate { *cell + v } else { *v };
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Strided;
    use std::arch::x86_64::*;

    pub(super) const PANEL: usize = 32;
    /// Tokens a micro-kernel call handles at once (24 accumulators + 3 working registers).
    pub(super) const STEP: usize = 12;

    /// Every row of one panel of `cols` ≤ 32 columns, `STEP` rows per micro-kernel call.
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW/VL; see [`super::PanelRows`].
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    pub(super) unsafe fn rows(
        dst: Strided,
        x: Strided,
        w: Strided,
        count: usize,
        inner: usize,
        cols: usize,
        accumulate: bool,
    ) {
        let valid = cols as u32;
        let m0 = ((1u32 << valid.min(16)) - 1) as u16;
        let m1 = ((1u32 << valid.saturating_sub(16)) - 1) as u16;
        let mut t = 0;
        while t < count {
            let n = (count - t).min(STEP);
            let (d, xs) = (dst.offset(t, 0), x.offset(t, 0));
            // SAFETY: rows t..t+n; the masks keep every load and store to the `cols` columns.
            unsafe {
                super::by_tokens!(
                    n,
                    step(d, xs, w, inner, m0, m1, accumulate),
                    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
                )
            };
            t += n;
        }
    }

    /// `N` rows × 32 columns (masked to the real ones), summed over `inner`: 2·N
    /// accumulators.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    unsafe fn step<const N: usize>(
        dst: Strided,
        x: Strided,
        w: Strided,
        inner: usize,
        m0: u16,
        m1: u16,
        accumulate: bool,
    ) {
        let mut lo = [_mm512_setzero_ps(); N];
        let mut hi = [_mm512_setzero_ps(); N];
        for k in 0..inner {
            // SAFETY (whole block): masked loads touch only the real columns of row k of w;
            // rows < N of x have `inner` elements.
            unsafe {
                let w0 = _mm512_maskz_loadu_ps(m0, w.at(k, 0));
                let w1 = _mm512_maskz_loadu_ps(m1, w.at(k, 16));
                for t in 0..N {
                    let xb = _mm512_set1_ps(*x.at(t, k));
                    lo[t] = _mm512_fmadd_ps(w0, xb, lo[t]);
                    hi[t] = _mm512_fmadd_ps(w1, xb, hi[t]);
                }
            }
        }
        for t in 0..N {
            // SAFETY: row t of dst; the masks keep every access to the real columns.
            unsafe {
                let (row0, row1) = (dst.at(t, 0), dst.at(t, 16));
                let (mut a, mut b) = (lo[t], hi[t]);
                if accumulate {
                    a = _mm512_add_ps(a, _mm512_maskz_loadu_ps(m0, row0));
                    b = _mm512_add_ps(b, _mm512_maskz_loadu_ps(m1, row1));
                }
                _mm512_mask_storeu_ps(row0, m0, a);
                _mm512_mask_storeu_ps(row1, m1, b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::KernelPath;
    use super::super::math::tests::random;
    use super::*;
    use proptest::prelude::*;

    fn widths() -> Vec<Width> {
        let mut widths: Vec<Width> = KernelPath::supported().iter().map(|p| p.width()).collect();
        widths.dedup();
        widths
    }

    fn check(tokens: usize, inputs: usize, outputs: usize, seed: u64) -> Result<(), TestCaseError> {
        let x = random(tokens * inputs, seed, 1.0);
        let w_t = random(inputs * outputs, seed ^ 7, 0.5);
        let start = random(tokens * outputs, seed ^ 9, 1.0);
        for width in widths() {
            let packed = PanelWeights::pack(width, &w_t, inputs, outputs);
            for accumulate in [false, true] {
                let mut dst = start.clone();
                panel_matmul(&mut dst, &x, &packed, tokens, accumulate);
                for t in 0..tokens {
                    for o in 0..outputs {
                        let sum: f64 = (0..inputs)
                            .map(|k| x[t * inputs + k] as f64 * w_t[k * outputs + o] as f64)
                            .sum();
                        let want = if accumulate {
                            sum + start[t * outputs + o] as f64
                        } else {
                            sum
                        };
                        let got = dst[t * outputs + o] as f64;
                        prop_assert!(
                            (got - want).abs() < 1e-5 * (inputs as f64).sqrt().max(1.0) * 4.0,
                            "{:?} {}x{}x{} at {},{}: {} vs {}",
                            width,
                            tokens,
                            inputs,
                            outputs,
                            t,
                            o,
                            got,
                            want
                        );
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn panel_matmul_matches_naive_on_the_model_shapes() {
        for (tokens, inputs, outputs) in [(1, 384, 1152), (13, 384, 1536), (25, 1536, 384)] {
            check(tokens, inputs, outputs, tokens as u64).unwrap();
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn strided_matmul_matches_naive(
            rows in prop_oneof![1usize..=30, Just(256)],
            inner in prop_oneof![1usize..=40, Just(256)],
            cols in prop_oneof![1usize..=70, Just(256)],
            pad in 0usize..5,
            seed in any::<u64>(),
        ) {
            let (x_stride, w_stride, d_stride) = (inner + pad, cols + 2 * pad, cols + pad);
            let x = random(rows * x_stride, seed, 1.0);
            let w = random(inner * w_stride, seed ^ 3, 1.0);
            for width in widths() {
                let mut dst = vec![7.0f32; rows * d_stride];
                // SAFETY: the buffers hold every row at these strides.
                unsafe {
                    strided_matmul(width, dst.as_mut_ptr(), d_stride, x.as_ptr(), x_stride,
                        w.as_ptr(), w_stride, rows, inner, cols);
                }
                for i in 0..rows {
                    for j in 0..d_stride {
                        let got = dst[i * d_stride + j] as f64;
                        if j >= cols {
                            prop_assert_eq!(got, 7.0, "{:?}: padding column {} written", width, j);
                            continue;
                        }
                        let want: f64 = (0..inner)
                            .map(|k| x[i * x_stride + k] as f64 * w[k * w_stride + j] as f64)
                            .sum();
                        prop_assert!((got - want).abs() < 1e-4 * (inner as f64).sqrt(),
                            "{:?} {}x{}x{} at {},{}: {} vs {}", width, rows, inner, cols, i, j, got, want);
                    }
                }
            }
        }

        #[test]
        fn panel_matmul_matches_naive(
            tokens in prop_oneof![1usize..=30, Just(256)],
            inputs in 1usize..70,
            outputs in 1usize..80,
            seed in any::<u64>(),
        ) {
            check(tokens, inputs, outputs, seed)?;
        }
    }
}

//! int8 dense layers: weights quantised per output channel at load, activations per token at
//! run time, products summed exactly in int32 and rescaled to f32.
//!
//! `y[t, n] = sx[t] · sw[n] · Σₖ (qx[t, k] − zx[t]) · qw[n, k]`. Weights are symmetric,
//! `qw = round(w / sw)` in −127..=127; activations are asymmetric, `qx = round(x / sx) + zx`
//! in 0..=255 over each token's own range (a GELU output, nearly all positive, keeps all 8
//! bits), and the zero point is taken out afterwards as `zx[t] · Σₖ qw[n, k]`.
//!
//! The weights are laid out once for every kernel: panels of 16 output channels, inputs in
//! groups of 4, so that one 64-byte line holds 4 inputs of 16 channels. That is the operand
//! of AVX-512 VNNI's `vpdpbusd` (16 int32 lanes, each summing 4 unsigned × signed byte
//! products), of AVX-VNNI's 256-bit form (two registers per line), of the AVX2 emulation and
//! of an AMX B tile (16 such lines). The VNNI and AMX kernels read the codes as unsigned
//! bytes; the AVX2 kernel reads them less 128 as signed bytes and moves their sign onto the
//! weights (`vpsignb`), so that `vpmaddubsw` never saturates (|pair sum| ≤ 2 · 128 · 127).
//! All kernels compute the same integers.

use super::math::multiversion;
use super::{KernelPath, Shared, Width, split_units};

/// Output channels per panel (one 512-bit register of int32 sums).
pub const PANEL: usize = 16;
/// Panels the AVX-512 kernel handles at once; weights are padded to a multiple of it.
const PANEL_GROUP: usize = 4;
/// Inputs are padded to a multiple of this (one AMX tile row, 64 bytes).
pub const INPUT_ALIGN: usize = 64;
/// Activation rows are padded to a multiple of this (two AMX tiles of 16 rows).
pub const ROW_ALIGN: usize = 32;

/// The int8 dot-product instructions a [`KernelPath`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Int8Kernel {
    /// Scalar Rust.
    Portable,
    /// AVX2 `vpsignb` + `vpmaddubsw` + `vpmaddwd`.
    Avx2,
    /// AVX-VNNI 256-bit `vpdpbusd`.
    AvxVnni,
    /// AVX-512 VNNI 512-bit `vpdpbusd`.
    Avx512Vnni,
    /// AMX `tdpbusd` on 16 × 64-byte tiles.
    Amx,
}

impl Int8Kernel {
    /// The kernel a path runs.
    pub fn of(path: KernelPath) -> Self {
        match path {
            KernelPath::Portable => Self::Portable,
            KernelPath::Avx2 | KernelPath::Avx512 => Self::Avx2,
            KernelPath::AvxVnni => Self::AvxVnni,
            KernelPath::Avx512Vnni => Self::Avx512Vnni,
            KernelPath::Amx => Self::Amx,
        }
    }

    /// Whether activation codes are stored as unsigned bytes (0..=255) rather than less 128
    /// as signed ones.
    pub fn unsigned_activations(self) -> bool {
        matches!(self, Self::AvxVnni | Self::Avx512Vnni | Self::Amx)
    }
}

/// A dense layer's weight as int8 codes with one scale per output channel.
pub struct Int8Weights {
    /// Panels of [`PANEL`] channels × `padded_inputs / 4` groups × 4 inputs.
    data: Vec<i8>,
    /// Per channel: `w ≈ code · scale` (0 for padding channels).
    scales: Vec<f32>,
    /// Per channel: `Σₖ code`, the sum a zero point multiplies.
    code_sums: Vec<i32>,
    inputs: usize,
    padded_inputs: usize,
    outputs: usize,
}

impl Int8Weights {
    /// Quantises a `[outputs, inputs]` row-major weight (the checkpoint's layout), each output
    /// channel symmetrically by its largest magnitude.
    pub fn quantize(weight: &[f32], inputs: usize, outputs: usize) -> Self {
        assert_eq!(weight.len(), inputs * outputs, "weight shape");
        let padded_inputs = inputs.next_multiple_of(INPUT_ALIGN).max(INPUT_ALIGN);
        let panels = outputs.div_ceil(PANEL).next_multiple_of(PANEL_GROUP);
        let groups = padded_inputs / 4;
        let mut data = vec![0i8; panels * PANEL * padded_inputs];
        let mut scales = vec![0.0f32; panels * PANEL];
        let mut code_sums = vec![0i32; panels * PANEL];
        for n in 0..outputs {
            let row = &weight[n * inputs..(n + 1) * inputs];
            let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let scale = if max > 0.0 { max / 127.0 } else { 0.0 };
            let inv = if max > 0.0 { 127.0 / max } else { 0.0 };
            let (p, j) = (n / PANEL, n % PANEL);
            let mut sum = 0i32;
            for (k, &v) in row.iter().enumerate() {
                let code = (v * inv).round().clamp(-127.0, 127.0) as i8;
                sum += i32::from(code);
                data[((p * groups + k / 4) * PANEL + j) * 4 + k % 4] = code;
            }
            scales[n] = scale;
            code_sums[n] = sum;
        }
        Self {
            data,
            scales,
            code_sums,
            inputs,
            padded_inputs,
            outputs,
        }
    }

    /// Input features.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// Output features.
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    fn panels(&self) -> usize {
        self.scales.len() / PANEL
    }

    /// Where panel `p`'s codes start.
    pub(super) fn panel_ptr(&self, p: usize) -> *const i8 {
        self.data[p * PANEL * self.padded_inputs..].as_ptr()
    }

    /// Bytes the codes take (for memory figures).
    pub fn bytes(&self) -> usize {
        self.data.len() + self.scales.len() * 4 + self.code_sums.len() * 4
    }
}

/// Activations quantised per row (token), in the encoding one [`Int8Kernel`] reads.
#[derive(Default)]
pub struct QuantizedRows {
    /// `rows` rows of `stride` bytes: `qx`, or `qx − 128` as a signed byte.
    codes: Vec<u8>,
    /// Per row: `x ≈ (qx − zx) · scale`.
    scales: Vec<f32>,
    /// Per row: what to take out of a stored sum, as a multiple of the weights' code sum:
    /// `zx`, or `zx − 128` for signed storage.
    zeros: Vec<i32>,
    rows: usize,
    inputs: usize,
    stride: usize,
    unsigned: bool,
}

impl QuantizedRows {
    /// Quantises `tokens` rows of `inputs` floats for `kernel`, reusing this buffer.
    pub fn quantize(
        &mut self,
        width: Width,
        kernel: Int8Kernel,
        x: &[f32],
        tokens: usize,
        inputs: usize,
    ) {
        assert!(x.len() >= tokens * inputs, "activation shape");
        let stride = inputs.next_multiple_of(INPUT_ALIGN).max(INPUT_ALIGN);
        let rows = tokens.next_multiple_of(ROW_ALIGN);
        let unsigned = kernel.unsigned_activations();
        // Padding inputs meet zero weights: any code will do.
        self.codes.clear();
        self.codes.resize(rows * stride, 0);
        self.scales.clear();
        self.scales.resize(rows, 0.0);
        self.zeros.clear();
        self.zeros.resize(rows, 0);
        self.rows = tokens;
        self.inputs = inputs;
        self.stride = stride;
        self.unsigned = unsigned;
        let codes = Shared(self.codes.as_mut_ptr());
        let scales = Shared(self.scales.as_mut_ptr());
        let zeros = Shared(self.zeros.as_mut_ptr());
        let parallel = tokens * inputs >= 1 << 15;
        split_units(tokens, parallel, move |range| {
            for t in range {
                // SAFETY: row t of `codes` (stride bytes), `scales[t]` and `zeros[t]` are
                // written by this task alone; the buffers were sized above and outlive it.
                let (row, scale, zero) = unsafe {
                    (
                        std::slice::from_raw_parts_mut(codes.get().add(t * stride), inputs),
                        &mut *scales.get().add(t),
                        &mut *zeros.get().add(t),
                    )
                };
                let (s, z) = quantize_row(width, &x[t * inputs..(t + 1) * inputs], row, unsigned);
                *scale = s;
                *zero = z;
            }
        });
    }

    /// Row `t`'s scale.
    fn scale(&self, t: usize) -> f32 {
        self.scales[t]
    }

    /// Row `t`'s zero correction (see `zeros`).
    fn zero(&self, t: usize) -> i32 {
        self.zeros[t]
    }

    /// Real (unpadded) rows.
    pub(super) fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes per row.
    pub(super) fn stride(&self) -> usize {
        self.stride
    }

    /// Where row `t` (real or padding) starts.
    pub(super) fn row_ptr(&self, t: usize) -> *const u8 {
        self.codes[t * self.stride..].as_ptr()
    }
}

/// One row's codes, scale and zero correction (see [`QuantizedRows`]).
fn quantize_row(width: Width, x: &[f32], codes: &mut [u8], unsigned: bool) -> (f32, i32) {
    let (mut low, mut high) = (0.0f32, 0.0f32);
    let fast = cfg!(target_arch = "x86_64") && width == Width::Avx512;
    if fast {
        // SAFETY: Width::Avx512 comes from a supported KernelPath.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            (low, high) = avx512::row_range(x)
        };
    } else {
        row_range(width, x, &mut low, &mut high);
    }
    if high <= low {
        // An all-zero row: every code 0 with zero point 0 gives zeros.
        let zero = if unsigned { 0 } else { -128 };
        codes.fill(if unsigned { 0 } else { 0x80 });
        return (0.0, zero);
    }
    let scale = (high - low) / 255.0;
    let zero = (-low / scale).round().clamp(0.0, 255.0);
    let shift = if unsigned { 0.0 } else { 128.0 };
    if fast {
        // SAFETY: as above; `codes` holds at least x.len() bytes (the row's stride).
        #[cfg(target_arch = "x86_64")]
        unsafe {
            avx512::encode_row(x, codes, 1.0 / scale, zero, shift)
        };
    } else {
        encode_row(width, x, codes, 1.0 / scale, zero, shift);
    }
    (scale, zero as i32 - if unsigned { 0 } else { 128 })
}

multiversion! {
    /// The smallest and largest value of `x`, with 0 (so that zero is a code).
    fn row_range(x: &[f32], low: &mut f32, high: &mut f32) {
        let mut lows = [0.0f32; LANES];
        let mut highs = [0.0f32; LANES];
        let split = x.len() / LANES * LANES;
        // Comparisons rather than f32::min/max (whose NaN rules keep LLVM from using the
        // vector min and max instructions).
        for c in x[..split].chunks_exact(LANES) {
            for i in 0..LANES {
                lows[i] = if c[i] < lows[i] { c[i] } else { lows[i] };
                highs[i] = if c[i] > highs[i] { c[i] } else { highs[i] };
            }
        }
        for &v in &x[split..] {
            lows[0] = if v < lows[0] { v } else { lows[0] };
            highs[0] = if v > highs[0] { v } else { highs[0] };
        }
        *low = lows.iter().copied().fold(0.0f32, f32::min);
        *high = highs.iter().copied().fold(0.0f32, f32::max);
    }
}

multiversion! {
    /// `codes = clamp(round(x · inv) + zero, 0, 255) − shift`, as bytes (two's complement
    /// when shifted).
    fn encode_row(x: &[f32], codes: &mut [u8], inv: f32, zero: f32, shift: f32) {
        for (c, v) in codes.iter_mut().zip(x) {
            // round_ties_even, unlike round, is one vector instruction.
            let q = (v * inv).round_ties_even() + zero;
            let q = q.clamp(0.0, 255.0) - shift;
            *c = q as i32 as u8;
        }
    }
}

/// `dst[t, n] (+)= sx[t] · sw[n] · Σₖ qx[t, k] · qw[n, k]` for the `x.rows` tokens, with
/// `dst` `[tokens, outputs]` row-major; channel panels are shared out over the current rayon
/// pool.
///
/// # Panics
/// When `x` was quantised for another kernel or another input width, or `dst` is too short.
pub fn int8_matmul(
    kernel: Int8Kernel,
    dst: &mut [f32],
    x: &QuantizedRows,
    w: &Int8Weights,
    accumulate: bool,
) {
    let tokens = x.rows;
    assert_eq!(x.inputs, w.inputs, "activation width");
    assert_eq!(x.stride, w.padded_inputs, "activation stride");
    assert_eq!(
        x.unsigned,
        kernel.unsigned_activations(),
        "activation encoding"
    );
    assert!(dst.len() >= tokens * w.outputs, "output shape");
    if tokens == 0 {
        return;
    }
    let parallel = tokens * w.inputs * w.outputs >= super::PARALLEL_FROM;
    #[cfg(target_arch = "x86_64")]
    {
        let out = Shared(dst.as_mut_ptr());
        // SAFETY (every arm): `kernel` came from a supported KernelPath, so the CPU has its
        // features; `x` holds `rows.next_multiple_of(ROW_ALIGN)` rows of `stride` bytes and
        // `w` `panels × 16 × padded_inputs` codes (checked above to match), `dst` holds
        // `tokens × outputs` floats (asserted), and tasks own disjoint channel ranges.
        match kernel {
            Int8Kernel::Amx => {
                split_units(w.panels() / 2, parallel, move |pairs| unsafe {
                    super::amx::int8_matmul(out.get(), x, w, accumulate, pairs)
                });
                return;
            }
            Int8Kernel::Avx512Vnni => {
                split_units(w.panels() / PANEL_GROUP, parallel, move |groups| unsafe {
                    avx512::int8_matmul(out.get(), x, w, accumulate, groups)
                });
                return;
            }
            Int8Kernel::AvxVnni => {
                split_units(w.outputs.div_ceil(PANEL), parallel, move |panels| unsafe {
                    avx2::int8_matmul_vnni(out.get(), x, w, accumulate, panels)
                });
                return;
            }
            Int8Kernel::Avx2 => {
                split_units(w.outputs.div_ceil(PANEL), parallel, move |panels| unsafe {
                    avx2::int8_matmul_emulated(out.get(), x, w, accumulate, panels)
                });
                return;
            }
            Int8Kernel::Portable => {}
        }
    }
    let _ = parallel;
    int8_matmul_portable(dst, x, w, accumulate);
}

/// The integer sum `Σₖ (qx[t, k] − zx[t]) · qw[n, k]`, from the packed layouts.
fn dot_portable(x: &QuantizedRows, w: &Int8Weights, t: usize, n: usize) -> i32 {
    let groups = w.padded_inputs / 4;
    let (p, j) = (n / PANEL, n % PANEL);
    let row = &x.codes[t * x.stride..t * x.stride + w.inputs];
    let mut sum = 0i32;
    for (k, &c) in row.iter().enumerate() {
        let code = if x.unsigned {
            i32::from(c)
        } else {
            i32::from(c as i8)
        };
        sum += code * i32::from(w.data[((p * groups + k / 4) * PANEL + j) * 4 + k % 4]);
    }
    sum - x.zero(t) * w.code_sums[n]
}

/// [`int8_matmul`] in scalar Rust: any CPU, and the tests' reference.
fn int8_matmul_portable(dst: &mut [f32], x: &QuantizedRows, w: &Int8Weights, accumulate: bool) {
    for t in 0..x.rows {
        for n in 0..w.outputs {
            let y = dot_portable(x, w, t, n) as f32 * (x.scale(t) * w.scales[n]);
            let cell = &mut dst[t * w.outputs + n];
            *cell = if accumulate { *cell + y } else { y };
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod avx512 {
    use super::super::lanes16;
    use super::super::matmul::by_tokens;
    use super::{Int8Weights, PANEL, PANEL_GROUP, QuantizedRows};
    use std::arch::x86_64::*;

    /// Tokens per micro-kernel call: 6 × 4 accumulators of the 32 registers.
    const STEP: usize = 6;

    /// Channel groups `groups` (of 64 channels) of [`super::int8_matmul`] by AVX-512 VNNI.
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW/VL and VNNI; `x` (unsigned codes) and `w` match, `dst` holds
    /// `x.rows × w.outputs` floats, and no other thread writes these groups' columns.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
    pub(in super::super) unsafe fn int8_matmul(
        dst: *mut f32,
        x: &QuantizedRows,
        w: &Int8Weights,
        accumulate: bool,
        groups: std::ops::Range<usize>,
    ) {
        let k4 = w.padded_inputs / 4;
        for g in groups {
            let first_panel = g * PANEL_GROUP;
            // SAFETY: panel group g lies inside `w.data` (panels are a multiple of the group).
            let panel = unsafe { w.data.as_ptr().add(first_panel * PANEL * w.padded_inputs) };
            let mut t = 0;
            while t < x.rows {
                let n = (x.rows - t).min(STEP);
                // SAFETY: rows t..t+n of x and dst, channels of group g.
                unsafe {
                    by_tokens!(
                        n,
                        step(dst, x, w, panel, k4, t, first_panel, accumulate),
                        [1, 2, 3, 4, 5, 6]
                    )
                };
                t += n;
            }
        }
    }

    /// Four panels × `N` tokens, summed over every input.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn step<const N: usize>(
        dst: *mut f32,
        x: &QuantizedRows,
        w: &Int8Weights,
        panel: *const i8,
        k4: usize,
        t0: usize,
        first_panel: usize,
        accumulate: bool,
    ) {
        let mut acc = [[_mm512_setzero_si512(); PANEL_GROUP]; N];
        let codes = x.codes.as_ptr();
        let stride = x.stride;
        for g in 0..k4 {
            // SAFETY: group g < k4 of each of the 4 panels (each panel is k4 × 64 bytes), and
            // 4 bytes at column 4g of rows t0..t0+N, inside the padded rows.
            unsafe {
                let mut wv = [_mm512_setzero_si512(); PANEL_GROUP];
                for (p, v) in wv.iter_mut().enumerate() {
                    *v = _mm512_loadu_si512(panel.add((p * k4 + g) * 64).cast());
                }
                for (t, row) in acc.iter_mut().enumerate() {
                    let xb = _mm512_set1_epi32(
                        codes
                            .add((t0 + t) * stride + g * 4)
                            .cast::<i32>()
                            .read_unaligned(),
                    );
                    for (a, v) in row.iter_mut().zip(&wv) {
                        *a = _mm512_dpbusd_epi32(*a, xb, *v);
                    }
                }
            }
        }
        for (t, row) in acc.iter().enumerate() {
            for (p, a) in row.iter().enumerate() {
                // SAFETY: row t0+t of dst, channels of panel first_panel + p (masked to
                // `outputs`).
                unsafe { store(dst, x, w, *a, t0 + t, (first_panel + p) * PANEL, accumulate) };
            }
        }
    }

    /// The smallest and largest value of `x`, with 0 (the vectorised `row_range`).
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW/VL.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    pub(in super::super) unsafe fn row_range(x: &[f32]) -> (f32, f32) {
        let (mut low, mut high) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        for j in (0..x.len()).step_by(16) {
            // SAFETY: the mask keeps the load inside `x`; masked-off lanes read as 0, which
            // the range includes anyway.
            let v = unsafe { _mm512_maskz_loadu_ps(lanes16(x.len() - j), x.as_ptr().add(j)) };
            low = _mm512_min_ps(low, v);
            high = _mm512_max_ps(high, v);
        }
        (_mm512_reduce_min_ps(low), _mm512_reduce_max_ps(high))
    }

    /// `codes = clamp(round(x · inv) + zero, 0, 255) − shift` as bytes (the vectorised
    /// `encode_row`, rounding ties to even as it does).
    ///
    /// # Safety
    /// The CPU has AVX-512 F/BW/VL; `codes` holds at least `x.len()` bytes.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    pub(in super::super) unsafe fn encode_row(
        x: &[f32],
        codes: &mut [u8],
        inv: f32,
        zero: f32,
        shift: f32,
    ) {
        assert!(codes.len() >= x.len());
        let (inv, zero, shift) = (
            _mm512_set1_ps(inv),
            _mm512_set1_ps(zero),
            _mm512_set1_ps(shift),
        );
        let (floor, ceiling) = (_mm512_setzero_ps(), _mm512_set1_ps(255.0));
        for j in (0..x.len()).step_by(16) {
            let m = lanes16(x.len() - j);
            // SAFETY: the mask keeps the load inside `x` and the store inside `codes`.
            unsafe {
                let v = _mm512_maskz_loadu_ps(m, x.as_ptr().add(j));
                let q = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
                    _mm512_mul_ps(v, inv),
                );
                let q = _mm512_sub_ps(
                    _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(q, zero), floor), ceiling),
                    shift,
                );
                // −128..=255 as int32, stored as its low byte (two's complement when shifted).
                _mm512_mask_cvtepi32_storeu_epi8(
                    codes.as_mut_ptr().add(j).cast(),
                    m,
                    _mm512_cvtps_epi32(q),
                );
            }
        }
    }

    /// Rescales one register of 16 int32 sums (row `t`, channels `first..first + 16`) and
    /// stores it, masked to the real channels.
    ///
    /// # Safety
    /// As for [`int8_matmul`]; `first` is a panel's first channel.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
    pub(in super::super) unsafe fn store(
        dst: *mut f32,
        x: &QuantizedRows,
        w: &Int8Weights,
        sums: __m512i,
        t: usize,
        first: usize,
        accumulate: bool,
    ) {
        let valid = w.outputs.saturating_sub(first).min(PANEL) as u32;
        if valid == 0 {
            return;
        }
        let mask = ((1u32 << valid) - 1) as u16;
        // SAFETY: scales and code sums are padded to whole panels; the mask keeps the
        // access to dst inside row t.
        unsafe {
            let mut sums = sums;
            let code_sums = _mm512_loadu_si512(w.code_sums.as_ptr().add(first).cast());
            sums = _mm512_sub_epi32(
                sums,
                _mm512_mullo_epi32(_mm512_set1_epi32(x.zero(t)), code_sums),
            );
            let scale = _mm512_mul_ps(
                _mm512_loadu_ps(w.scales.as_ptr().add(first)),
                _mm512_set1_ps(x.scale(t)),
            );
            let row = dst.add(t * w.outputs + first);
            let mut y = _mm512_mul_ps(_mm512_cvtepi32_ps(sums), scale);
            if accumulate {
                y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mask, row));
            }
            _mm512_mask_storeu_ps(row, mask, y);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::super::matmul::by_tokens;
    use super::{Int8Weights, PANEL, QuantizedRows};
    use std::arch::x86_64::*;

    /// Tokens per micro-kernel call: 12 accumulators with VNNI, 8 with the emulation (which
    /// needs working registers for the sign and the 16-bit sums).
    const STEP_VNNI: usize = 6;
    const STEP_EMULATED: usize = 4;

    /// Channel panels `panels` of [`super::int8_matmul`] by AVX-VNNI's 256-bit `vpdpbusd`.
    ///
    /// # Safety
    /// The CPU has AVX2, FMA and AVX-VNNI; `x` holds unsigned codes and matches `w`; `dst` holds
    /// `x.rows × w.outputs` floats; no other thread writes these panels' columns.
    #[target_feature(enable = "avx2,fma,avxvnni")]
    pub(super) unsafe fn int8_matmul_vnni(
        dst: *mut f32,
        x: &QuantizedRows,
        w: &Int8Weights,
        accumulate: bool,
        panels: std::ops::Range<usize>,
    ) {
        // SAFETY: forwarded.
        unsafe { run::<true>(dst, x, w, accumulate, panels) }
    }

    /// Channel panels `panels` of [`super::int8_matmul`] by AVX2 alone.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `x` holds signed codes and matches `w`; `dst` holds
    /// `x.rows × w.outputs` floats; no other thread writes these panels' columns.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn int8_matmul_emulated(
        dst: *mut f32,
        x: &QuantizedRows,
        w: &Int8Weights,
        accumulate: bool,
        panels: std::ops::Range<usize>,
    ) {
        // SAFETY: forwarded.
        unsafe { run::<false>(dst, x, w, accumulate, panels) }
    }

    #[inline(always)]
    unsafe fn run<const VNNI: bool>(
        dst: *mut f32,
        x: &QuantizedRows,
        w: &Int8Weights,
        accumulate: bool,
        panels: std::ops::Range<usize>,
    ) {
        let k4 = w.padded_inputs / 4;
        let per_call = if VNNI { STEP_VNNI } else { STEP_EMULATED };
        for p in panels {
            // SAFETY: panel p < panels of w.
            let panel = unsafe { w.data.as_ptr().add(p * PANEL * w.padded_inputs) };
            let mut t = 0;
            while t < x.rows {
                let n = (x.rows - t).min(per_call);
                // SAFETY: rows t..t+n, channels of panel p; the VNNI steps run only in
                // int8_matmul_vnni, whose caller checked AVX-VNNI.
                unsafe {
                    by_tokens!(
                        n,
                        step[VNNI](dst, x, w, panel, k4, t, p, accumulate),
                        [1, 2, 3, 4, 5, 6]
                    )
                };
                t += n;
            }
        }
    }

    /// Broadcasts the 4 codes of row `t` at group `g`.
    #[inline(always)]
    unsafe fn codes4(x: &QuantizedRows, t: usize, g: usize) -> __m256i {
        // SAFETY: the caller keeps t within the padded rows and g within the row's groups.
        unsafe {
            _mm256_set1_epi32(
                x.codes
                    .as_ptr()
                    .add(t * x.stride + g * 4)
                    .cast::<i32>()
                    .read_unaligned(),
            )
        }
    }

    /// One panel × `N` tokens: 2·N accumulators of 8 int32 sums over every input group, by
    /// AVX-VNNI's `vpdpbusd` when `VNNI`, else by `vpsignb` + `vpmaddubsw` + `vpmaddwd`.
    /// Inlined into the two entry points, whose target features it runs under.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn step<const N: usize, const VNNI: bool>(
        dst: *mut f32,
        x: &QuantizedRows,
        w: &Int8Weights,
        panel: *const i8,
        k4: usize,
        t0: usize,
        p: usize,
        accumulate: bool,
    ) {
        // SAFETY: AVX2, as the entry points this is inlined into enable.
        let (ones, mut lo, mut hi) = unsafe {
            (
                _mm256_set1_epi16(1),
                [_mm256_setzero_si256(); N],
                [_mm256_setzero_si256(); N],
            )
        };
        for g in 0..k4 {
            // SAFETY: group g of panel p (64 bytes), rows t0..t0+N; `vpdpbusd` runs only in
            // int8_matmul_vnni, whose caller checked AVX-VNNI.
            unsafe {
                let w0 = _mm256_loadu_si256(panel.add(g * 64).cast());
                let w1 = _mm256_loadu_si256(panel.add(g * 64 + 32).cast());
                for t in 0..N {
                    let xb = codes4(x, t0 + t, g);
                    if VNNI {
                        lo[t] = _mm256_dpbusd_avx_epi32(lo[t], xb, w0);
                        hi[t] = _mm256_dpbusd_avx_epi32(hi[t], xb, w1);
                    } else {
                        let magnitude = _mm256_abs_epi8(xb);
                        // |x| · (w · sign x) = x · w; each pair sum is at most 2 · 128 · 127.
                        let p0 = _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(w0, xb));
                        let p1 = _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(w1, xb));
                        lo[t] = _mm256_add_epi32(lo[t], _mm256_madd_epi16(p0, ones));
                        hi[t] = _mm256_add_epi32(hi[t], _mm256_madd_epi16(p1, ones));
                    }
                }
            }
        }
        for t in 0..N {
            // SAFETY: row t0+t, channels of panel p.
            unsafe { store(dst, x, w, lo[t], hi[t], t0 + t, p * PANEL, accumulate) };
        }
    }

    /// Rescales 16 int32 sums (row `t`, channels `first..first + 16`) and stores the real
    /// channels among them.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    unsafe fn store(
        dst: *mut f32,
        x: &QuantizedRows,
        w: &Int8Weights,
        lo: __m256i,
        hi: __m256i,
        t: usize,
        first: usize,
        accumulate: bool,
    ) {
        let mut sums = [0i32; PANEL];
        // SAFETY: 16 int32 into a 16-element array.
        unsafe {
            _mm256_storeu_si256(sums.as_mut_ptr().cast(), lo);
            _mm256_storeu_si256(sums.as_mut_ptr().add(8).cast(), hi);
        }
        let valid = w.outputs.saturating_sub(first).min(PANEL);
        let sx = x.scale(t);
        for (j, &sum) in sums.iter().enumerate().take(valid) {
            let n = first + j;
            let sum = sum - x.zero(t) * w.code_sums[n];
            let y = sum as f32 * (sx * w.scales[n]);
            // SAFETY: row t, channel n < outputs.
            let cell = unsafe { &mut *dst.add(t * w.outputs + n) };
            *cell = if accumulate { *cell + y } else { y };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::math::tests::random;
    use super::*;
    use proptest::prelude::*;

    /// Every int8 kernel this CPU runs, with a width for the quantisation pass.
    fn kernels() -> Vec<(Int8Kernel, Width)> {
        let mut kernels: Vec<(Int8Kernel, Width)> = KernelPath::supported()
            .into_iter()
            .map(|p| (Int8Kernel::of(p), p.width()))
            .collect();
        kernels.dedup_by_key(|k| k.0);
        kernels
    }

    /// The exact integer result the kernels must reproduce, rescaled in f64.
    fn reference(x: &QuantizedRows, w: &Int8Weights, t: usize, n: usize) -> f64 {
        dot_portable(x, w, t, n) as f64 * x.scale(t) as f64 * w.scales[n] as f64
    }

    fn check(tokens: usize, inputs: usize, outputs: usize, seed: u64) -> Result<(), TestCaseError> {
        let x = random(tokens * inputs, seed, 2.0);
        let weight = random(inputs * outputs, seed ^ 5, 0.3);
        let start = random(tokens * outputs, seed ^ 11, 1.0);
        let w = Int8Weights::quantize(&weight, inputs, outputs);
        let mut first: Option<Vec<f32>> = None;
        for (kernel, width) in kernels() {
            let mut q = QuantizedRows::default();
            q.quantize(width, kernel, &x, tokens, inputs);
            for accumulate in [false, true] {
                let mut dst = start.clone();
                int8_matmul(kernel, &mut dst, &q, &w, accumulate);
                for t in 0..tokens {
                    for n in 0..outputs {
                        let want = reference(&q, &w, t, n)
                            + if accumulate {
                                start[t * outputs + n] as f64
                            } else {
                                0.0
                            };
                        let got = dst[t * outputs + n] as f64;
                        prop_assert!(
                            (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                            "{:?} {}x{}x{} at {},{}: {} vs {}",
                            kernel,
                            tokens,
                            inputs,
                            outputs,
                            t,
                            n,
                            got,
                            want
                        );
                        // And the quantised product is within the rounding of its codes of
                        // the f32 one: |w − ŵ| ≤ sw/2, and |x − x̂| ≤ sx (half a step, or a
                        // whole one where the zero point's rounding pushes the top code past 255).
                        let (sx, sw) = (q.scale(t) as f64, w.scales[n] as f64);
                        let (exact, bound) = (0..inputs).fold((0.0f64, 1e-4), |(e, b), k| {
                            let (xv, wv) =
                                (x[t * inputs + k] as f64, weight[n * inputs + k] as f64);
                            (
                                e + xv * wv,
                                b + xv.abs() * sw / 2.0 + wv.abs() * sx + sx * sw / 2.0,
                            )
                        });
                        let base = if accumulate {
                            start[t * outputs + n] as f64
                        } else {
                            0.0
                        };
                        prop_assert!(
                            (got - base - exact).abs() <= bound,
                            "{} vs {} ± {}",
                            got - base,
                            exact,
                            bound
                        );
                    }
                }
                if !accumulate {
                    // Every kernel computes the same integers: outputs agree to rounding.
                    match &first {
                        None => first = Some(dst.clone()),
                        Some(f) => {
                            for (a, b) in f.iter().zip(&dst) {
                                prop_assert!((a - b).abs() <= 1e-6 * a.abs().max(1.0));
                            }
                        }
                    }
                }
            }
        }
        Ok(())
    }

    #[test]
    fn int8_matmul_matches_the_reference_on_the_model_shapes() {
        for (tokens, inputs, outputs) in [(1, 384, 1152), (37, 384, 1536), (20, 1536, 384)] {
            check(tokens, inputs, outputs, 3 + tokens as u64).unwrap();
        }
    }

    #[test]
    fn zero_rows_and_channels_quantise_to_zero() {
        let w = Int8Weights::quantize(&[0.0; 8], 4, 2);
        assert_eq!(w.scales[..2], [0.0, 0.0]);
        for (kernel, width) in kernels() {
            let mut q = QuantizedRows::default();
            q.quantize(width, kernel, &[0.0; 4], 1, 4);
            let mut dst = [5.0f32; 2];
            int8_matmul(kernel, &mut dst, &q, &w, false);
            assert_eq!(dst, [0.0, 0.0], "{kernel:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn int8_matmul_matches_the_reference(
            tokens in prop_oneof![1usize..=40, Just(256)],
            inputs in 1usize..140,
            outputs in 1usize..100,
            seed in any::<u64>(),
        ) {
            check(tokens, inputs, outputs, seed)?;
        }
    }
}

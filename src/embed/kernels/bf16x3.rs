//! f32 dense layers on AMX bf16 tiles, at f32's accuracy: each operand split into two bf16s.
//!
//! A float `x` is `hi + lo` with `hi = bf16(x)` and `lo = bf16(x − hi)`: 16 of its 24
//! significant bits. Then `x·y ≈ hi·hi' + hi·lo' + lo·hi'` (the dropped `lo·lo'` is below
//! 2⁻¹⁶ of the product), three `tdpbf16ps`, each of which multiplies 16 × 32 bf16 by
//! 32 × 16 bf16 into 16 × 16 f32 sums: 8,192 multiply-adds, 16 times a 512-bit FMA's 32
//! (two ports). Three of them still do five times the work of AVX-512 per cycle, and the
//! sums stay f32. The result differs from an f32 product by about 2⁻¹⁶ relative per term,
//! far inside what sentence-transformers agreement allows (cosine ≥ 0.9999; tests run the
//! reference sentences through this path).
//!
//! Weights are split once at load into the B-tile layout (per 16 output channels and 32
//! inputs, one 1 KiB tile: 16 rows of input pairs × 16 channels × 2); activations are split
//! per call into rows padded to 16 tokens and 32 inputs. Tiles are 16 × 64 bytes throughout.

use super::{Shared, split_units};

/// Output channels per B tile.
const CHANNELS: usize = 16;
/// Inputs per tile (bf16 pairs × 2).
const DEPTH: usize = 32;
/// Tokens per A tile.
const TOKENS: usize = 16;
/// Tokens split and multiplied per pass over the weights: their split rows (at 1,536 inputs,
/// 768 KiB) stay in L2 while every channel block of a task reads them.
const TOKEN_CHUNK: usize = 128;

/// Rounds to the nearest bf16 (ties to even), as the upper 16 bits of an f32.
#[inline(always)]
fn to_bf16(x: f32) -> u16 {
    if x.is_nan() {
        return 0x7fc0;
    }
    let bits = x.to_bits();
    (bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

#[inline(always)]
fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// `x` as `hi + lo`, two bf16s.
#[inline(always)]
fn split(x: f32) -> (u16, u16) {
    let hi = to_bf16(x);
    (hi, to_bf16(x - from_bf16(hi)))
}

/// A weight matrix split into two bf16 halves, in B-tile order.
pub struct SplitWeights {
    hi: Vec<u16>,
    lo: Vec<u16>,
    inputs: usize,
    outputs: usize,
    depth_blocks: usize,
}

impl SplitWeights {
    /// Splits a `[inputs, outputs]` row-major (transposed) weight.
    pub fn pack(weight_t: &[f32], inputs: usize, outputs: usize) -> Self {
        assert_eq!(weight_t.len(), inputs * outputs, "weight shape");
        let depth_blocks = inputs.div_ceil(DEPTH);
        let channel_blocks = outputs.div_ceil(CHANNELS);
        let len = channel_blocks * depth_blocks * DEPTH * CHANNELS;
        let (mut hi, mut lo) = (vec![0u16; len], vec![0u16; len]);
        for k in 0..inputs {
            for o in 0..outputs {
                let (cb, n) = (o / CHANNELS, o % CHANNELS);
                let (kb, r, half) = (k / DEPTH, (k % DEPTH) / 2, k % 2);
                let at =
                    ((cb * depth_blocks + kb) * (DEPTH / 2) + r) * (2 * CHANNELS) + n * 2 + half;
                (hi[at], lo[at]) = split(weight_t[k * outputs + o]);
            }
        }
        Self {
            hi,
            lo,
            inputs,
            outputs,
            depth_blocks,
        }
    }

    fn tile(&self, channel_block: usize, depth_block: usize) -> usize {
        (channel_block * self.depth_blocks + depth_block) * DEPTH * CHANNELS
    }
}

/// Activations split into two bf16 halves: rows padded to [`TOKENS`], inputs to [`DEPTH`]
/// (zeros, which add nothing). Reused from call to call.
#[derive(Default)]
pub struct SplitRows {
    hi: Vec<u16>,
    lo: Vec<u16>,
    rows: usize,
    stride: usize,
}

impl SplitRows {
    /// Splits `rows` rows of `inputs` floats from `x`.
    #[cfg(target_arch = "x86_64")]
    fn split(&mut self, x: &[f32], rows: usize, inputs: usize) {
        let stride = inputs.div_ceil(DEPTH) * DEPTH;
        let padded = rows.div_ceil(TOKENS) * TOKENS;
        // Every row is written below; only the padding (rows past `rows`, inputs past
        // `inputs`) must be zeros.
        self.hi.resize(padded * stride, 0);
        self.lo.resize(padded * stride, 0);
        self.hi[rows * stride..padded * stride].fill(0);
        self.lo[rows * stride..padded * stride].fill(0);
        if stride > inputs {
            for t in 0..rows {
                self.hi[t * stride + inputs..(t + 1) * stride].fill(0);
                self.lo[t * stride + inputs..(t + 1) * stride].fill(0);
            }
        }
        for t in 0..rows {
            let src = &x[t * inputs..(t + 1) * inputs];
            let hi = &mut self.hi[t * stride..t * stride + inputs];
            let lo = &mut self.lo[t * stride..t * stride + inputs];
            // SAFETY: only called by `bf16x3_matmul`, whose path (checked there) has AVX-512;
            // the three slices have one length.
            unsafe { split_row(src, hi, lo) }
        }
        self.rows = rows;
        self.stride = stride;
    }
}

/// [`split`] over one row, 16 floats at a time (a NaN's halves are not kept NaN: none
/// reaches a dense layer of a finite model).
///
/// # Safety
/// The CPU has AVX-512 F/BW; the slices have one length.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn split_row(src: &[f32], hi: &mut [u16], lo: &mut [u16]) {
    use std::arch::x86_64::*;
    debug_assert!(hi.len() == src.len() && lo.len() == src.len());
    // Rounds each lane to bf16 (ties to even), kept in the upper half of the lane.
    #[target_feature(enable = "avx512f")]
    fn round(v: __m512) -> __m512i {
        let bits = _mm512_castps_si512(v);
        let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(bits), _mm512_set1_epi32(1));
        let rounded = _mm512_add_epi32(_mm512_add_epi32(bits, _mm512_set1_epi32(0x7fff)), odd);
        _mm512_and_si512(rounded, _mm512_set1_epi32(0xffff_0000u32 as i32))
    }
    // The bf16 in each lane's upper half, as 16 packed halves.
    #[target_feature(enable = "avx512f")]
    fn pack(x: __m512i) -> __m256i {
        _mm512_cvtepi32_epi16(_mm512_srli_epi32::<16>(x))
    }
    for start in (0..src.len()).step_by(16) {
        let mask = super::lanes16(src.len() - start);
        // SAFETY: lanes past the row's end are masked off in the load and both stores.
        unsafe {
            let v = _mm512_maskz_loadu_ps(mask, src.as_ptr().add(start));
            let h = round(v);
            let l = round(_mm512_sub_ps(v, _mm512_castsi512_ps(h)));
            _mm256_mask_storeu_epi16(hi.as_mut_ptr().add(start).cast(), mask, pack(h));
            _mm256_mask_storeu_epi16(lo.as_mut_ptr().add(start).cast(), mask, pack(l));
        }
    }
}

/// Whether the CPU has AMX-BF16 (the caller has checked AMX tiles and their OS grant).
/// Probed once: every matrix product asks, and CPUID is slow (a VM exit under a hypervisor).
pub(super) fn has_bf16_tiles() -> bool {
    static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *HAS.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            // CPUID leaf 7, sub-leaf 0: EDX bit 22 AMX-BF16.
            std::arch::x86_64::__cpuid_count(7, 0).edx & (1 << 22) != 0
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// Whether f32 dense layers on `path` run on bf16 tiles: the AMX path on a CPU with AMX-BF16.
pub fn available(path: super::KernelPath) -> bool {
    path == super::KernelPath::Amx && has_bf16_tiles()
}

/// `dst[t, o] (+)= Σₖ x[t, k] · W[o, k]` for `tokens` rows, as [`super::matmul::panel_matmul`],
/// through AMX bf16 tiles; `scratch` holds the split activations.
///
/// # Panics
/// When `x` or `dst` is shorter than the shapes say, or `path` cannot run AMX bf16 tiles.
pub fn bf16x3_matmul(
    path: super::KernelPath,
    dst: &mut [f32],
    x: &[f32],
    w: &SplitWeights,
    tokens: usize,
    accumulate: bool,
    scratch: &mut SplitRows,
) {
    assert!(x.len() >= tokens * w.inputs && dst.len() >= tokens * w.outputs);
    assert!(
        available(path),
        "bf16 tiles need the amx path on a CPU with AMX-BF16"
    );
    #[cfg(target_arch = "x86_64")]
    {
        let parallel = TOKEN_CHUNK.min(tokens) * w.inputs * w.outputs >= super::PARALLEL_FROM;
        let channel_pairs = w.outputs.div_ceil(2 * CHANNELS);
        for first in (0..tokens).step_by(TOKEN_CHUNK) {
            let rows = TOKEN_CHUNK.min(tokens - first);
            scratch.split(&x[first * w.inputs..], rows, w.inputs);
            let out = Shared(dst[first * w.outputs..].as_mut_ptr());
            let split: &SplitRows = scratch;
            split_units(channel_pairs, parallel, move |pairs| {
                // SAFETY: the path is AMX on a CPU with AMX-BF16 (asserted above; KernelPath
                // only exists for supported levels, and its detection asked for the tile
                // state); `split` holds `rows` rows padded as the kernel reads them; `dst`
                // has `rows` rows of `outputs` from `out` (asserted); tasks own disjoint
                // channel pairs, i.e. disjoint columns of dst.
                unsafe { tiles(out.get(), split, w, accumulate, pairs) }
            });
        }
    }
}

/// Two 16 × 16 f32 sum tiles, as `tilestored` writes them.
#[cfg(target_arch = "x86_64")]
#[repr(C, align(64))]
struct SumTiles([f32; 2 * 256]);

/// Channel pairs `pairs` (32 channels each) of every row of `x` into `dst`.
///
/// # Safety
/// The CPU has AMX-TILE and AMX-BF16 and the OS granted the tile state; `x` is split from
/// rows of `w.inputs` floats; `dst` holds `x.rows` rows of `w.outputs` floats; no other thread
/// writes these channels.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
unsafe fn tiles(
    dst: *mut f32,
    x: &SplitRows,
    w: &SplitWeights,
    accumulate: bool,
    pairs: std::ops::Range<usize>,
) {
    use std::arch::asm;
    use std::arch::x86_64::*;

    let a_stride = x.stride * 2;
    let token_blocks = x.rows.div_ceil(TOKENS);
    let channel_blocks = w.outputs.div_ceil(CHANNELS);
    let mut sums = SumTiles([0.0; 2 * 256]);
    // SAFETY: the caller's path has AMX tiles; released below.
    unsafe { super::amx::configure_tiles() };
    for pair in pairs {
        let cb0 = pair * 2;
        // The second block of an odd count repeats the first; its sums are not stored.
        let cb1 = (cb0 + 1).min(channel_blocks - 1);
        for tb in 0..token_blocks {
            let a_hi = x.hi[tb * TOKENS * x.stride..].as_ptr();
            let a_lo = x.lo[tb * TOKENS * x.stride..].as_ptr();
            // SAFETY: A tiles read 16 rows of 64 bytes at depth block kb of split rows
            // tb·16.. (padded to 16 rows and 32 inputs); B tiles read one 1 KiB tile of each
            // half. The stores write 2 KiB into `sums`.
            unsafe {
                asm!("tilezero tmm0", "tilezero tmm1", options(nostack, nomem));
                for kb in 0..w.depth_blocks {
                    let b0 = w.tile(cb0, kb);
                    let b1 = w.tile(cb1, kb);
                    asm!(
                        "tileloadd tmm2, [{ah} + {sa} * 1]",
                        "tileloadd tmm3, [{al} + {sa} * 1]",
                        "tileloadd tmm4, [{bh0} + {sb} * 1]",
                        "tileloadd tmm5, [{bl0} + {sb} * 1]",
                        "tdpbf16ps tmm0, tmm2, tmm4",
                        "tdpbf16ps tmm0, tmm2, tmm5",
                        "tdpbf16ps tmm0, tmm3, tmm4",
                        "tileloadd tmm6, [{bh1} + {sb} * 1]",
                        "tileloadd tmm7, [{bl1} + {sb} * 1]",
                        "tdpbf16ps tmm1, tmm2, tmm6",
                        "tdpbf16ps tmm1, tmm2, tmm7",
                        "tdpbf16ps tmm1, tmm3, tmm6",
                        ah = in(reg) a_hi.add(kb * DEPTH),
                        al = in(reg) a_lo.add(kb * DEPTH),
                        bh0 = in(reg) w.hi.as_ptr().add(b0),
                        bl0 = in(reg) w.lo.as_ptr().add(b0),
                        bh1 = in(reg) w.hi.as_ptr().add(b1),
                        bl1 = in(reg) w.lo.as_ptr().add(b1),
                        sa = in(reg) a_stride,
                        sb = in(reg) 64usize,
                        options(nostack, readonly)
                    );
                }
                let out = sums.0.as_mut_ptr();
                asm!(
                    "tilestored [{s0} + {st} * 1], tmm0",
                    "tilestored [{s1} + {st} * 1], tmm1",
                    s0 = in(reg) out,
                    s1 = in(reg) out.add(256),
                    st = in(reg) 64usize,
                    options(nostack)
                );
            }
            for r in 0..TOKENS {
                let t = tb * TOKENS + r;
                if t >= x.rows {
                    break;
                }
                for (half, cb) in [(0, cb0), (1, cb0 + 1)] {
                    if cb >= channel_blocks {
                        break;
                    }
                    let first = cb * CHANNELS;
                    let mask = super::lanes16(w.outputs - first);
                    // SAFETY: one 16-float row of a stored tile; row t of dst, the block's
                    // channels masked to `outputs`.
                    unsafe {
                        let sum = _mm512_loadu_ps(sums.0.as_ptr().add(half * 256 + r * 16));
                        let cell = dst.add(t * w.outputs + first);
                        let value = if accumulate {
                            _mm512_add_ps(_mm512_maskz_loadu_ps(mask, cell), sum)
                        } else {
                            sum
                        };
                        _mm512_mask_storeu_ps(cell, mask, value);
                    }
                }
            }
        }
    }
    // SAFETY: configured above.
    unsafe { super::amx::release_tiles() };
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::embed::KernelPath;

    fn amx() -> Option<KernelPath> {
        (KernelPath::Amx.is_supported() && available(KernelPath::Amx)).then_some(KernelPath::Amx)
    }

    #[test]
    fn a_float_splits_into_two_bf16s_to_16_bits() {
        for x in [
            1.0f32,
            -std::f32::consts::PI,
            1e-20,
            6.0e4,
            0.1,
            -0.333_333_34,
        ] {
            let (hi, lo) = split(x);
            let back = from_bf16(hi) + from_bf16(lo);
            assert!((back - x).abs() <= x.abs() * 2f32.powi(-16), "{x}: {back}");
        }
        assert_eq!(to_bf16(1.0), 0x3f80);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
    }

    #[test]
    fn the_vector_split_equals_the_scalar_one() {
        if !KernelPath::Avx512.is_supported() {
            return;
        }
        let values: Vec<f32> = (0..1000)
            .map(|i| ((i * 7919) % 1013) as f32 * 0.37 - 180.0 + 1.0 / (i + 1) as f32)
            .chain([0.0, -0.0, 1e-40, f32::MAX, f32::MIN_POSITIVE, 65504.0])
            .collect();
        for len in [0, 1, 15, 16, 17, values.len()] {
            let (mut hi, mut lo) = (vec![0u16; len], vec![0u16; len]);
            // SAFETY: AVX-512 checked above; equal lengths.
            unsafe { split_row(&values[..len], &mut hi, &mut lo) };
            for i in 0..len {
                assert_eq!((hi[i], lo[i]), split(values[i]), "{}", values[i]);
            }
        }
    }

    /// Runs the tiles on one product and checks every output against an f64 reference,
    /// within 2⁻¹⁴ of the sum of |terms|; the first output outside it, if any.
    fn check_against_f64(
        path: KernelPath,
        (tokens, inputs, outputs): (usize, usize, usize),
        x: &[f32],
        wt: &[f32],
        start: &[f32],
        accumulate: bool,
        scratch: &mut SplitRows,
    ) -> Result<(), String> {
        let w = SplitWeights::pack(wt, inputs, outputs);
        let mut dst = start.to_vec();
        bf16x3_matmul(path, &mut dst, x, &w, tokens, accumulate, scratch);
        for t in 0..tokens {
            for o in 0..outputs {
                let (mut sum, mut size) = (0f64, 0f64);
                for k in 0..inputs {
                    let term = x[t * inputs + k] as f64 * wt[k * outputs + o] as f64;
                    sum += term;
                    size += term.abs();
                }
                if accumulate {
                    sum += start[t * outputs + o] as f64;
                    size += (start[t * outputs + o] as f64).abs();
                }
                let got = dst[t * outputs + o] as f64;
                if (got - sum).abs() > size * 2f64.powi(-14) + 1e-30 {
                    return Err(format!(
                        "{tokens}x{inputs}x{outputs} [{t},{o}]: {got} vs {sum}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// The model's shapes and odd ones: one token, lengths that are not multiples of a tile.
    #[test]
    fn tiles_match_an_f64_product_on_any_shape() {
        let Some(path) = amx() else {
            eprintln!("no AMX-BF16 on this CPU: the bf16x3 kernel is not exercised");
            return;
        };
        let mut seed = 0x2545f491u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        let mut scratch = SplitRows::default();
        for shape @ (tokens, inputs, outputs) in [
            (1, 384, 384),
            (17, 384, 1152),
            (130, 1536, 384),
            (33, 45, 50),
            (5, 3, 17),
            (300, 384, 1536),
        ] {
            let x: Vec<f32> = (0..tokens * inputs).map(|_| next() * 3.0).collect();
            let wt: Vec<f32> = (0..inputs * outputs).map(|_| next() * 0.1).collect();
            for accumulate in [false, true] {
                let start: Vec<f32> = (0..tokens * outputs).map(|_| next()).collect();
                check_against_f64(path, shape, &x, &wt, &start, accumulate, &mut scratch).unwrap();
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// Random shapes (none need be a multiple of a tile) and values.
        #[test]
        fn tiles_match_an_f64_product_on_random_shapes(
            tokens in 1usize..70,
            inputs in 1usize..100,
            outputs in 1usize..70,
            seed in any::<u32>(),
            accumulate in any::<bool>(),
        ) {
            let Some(path) = amx() else { return Ok(()) };
            let value = |i: usize| {
                (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 2001) as f32 / 1000.0 - 1.0
            };
            let x: Vec<f32> = (0..tokens * inputs).map(value).collect();
            let wt: Vec<f32> = (0..inputs * outputs).map(|i| value(i + 7) * 0.5).collect();
            let start: Vec<f32> = (0..tokens * outputs).map(|i| value(i + 13)).collect();
            let shape = (tokens, inputs, outputs);
            let mut scratch = SplitRows::default();
            let checked = check_against_f64(path, shape, &x, &wt, &start, accumulate, &mut scratch);
            prop_assert!(checked.is_ok(), "{}", checked.unwrap_err());
        }
    }
}

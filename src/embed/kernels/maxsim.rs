//! Late interaction's inner loop (MaxSim) on int8 token codes.

use super::{KernelPath, Width};

/// For every passage token and every query token (each `codes × scale`), raises
/// `best[query token]` to their dot product when it is larger. Integer products sum exactly in
/// i32 (at most 2 × 127² per lane and step). Runs on [`KernelPath::selected`].
pub fn int8_best_matches(
    passage: &[i8],
    passage_scales: &[f32],
    query: &[i8],
    query_scales: &[f32],
    best: &mut [f32],
) {
    best_matches_on(
        KernelPath::selected().width(),
        passage,
        passage_scales,
        query,
        query_scales,
        best,
    );
}

/// [`int8_best_matches`] at a given width (the tests run every width the CPU has).
fn best_matches_on(
    width: Width,
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
    let rows = passage_scales.len().min(passage.len() / d);
    let tokens = query_scales.len().min(best.len());
    let (passage, query) = (&passage[..rows * d], &query[..tokens * d]);
    let (passage_scales, query_scales) = (&passage_scales[..rows], &query_scales[..tokens]);
    let best = &mut best[..tokens];
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY (both): the width comes from a supported KernelPath, so the CPU has its
        // features; rows are whole multiples of the step, and the slices were cut above to
        // `rows` passage rows and `tokens` query rows of d codes.
        if width == Width::Avx512 && d.is_multiple_of(32) {
            unsafe { avx512(passage, passage_scales, query, query_scales, best, d) };
            return;
        }
        if width != Width::Portable && d.is_multiple_of(16) {
            unsafe { avx2(passage, passage_scales, query, query_scales, best, d) };
            return;
        }
    }
    let _ = width;
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

/// Query tokens scored together against one passage row.
#[cfg(target_arch = "x86_64")]
const GROUP: usize = 4;

/// AVX2: each 16 passage codes are widened to i16 once and multiplied-and-added
/// (`vpmaddwd`) with four query tokens at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2(
    passage: &[i8],
    passage_scales: &[f32],
    query: &[i8],
    query_scales: &[f32],
    best: &mut [f32],
    d: usize,
) {
    use std::arch::x86_64::*;
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

/// AVX-512 BW: as [`avx2`], 32 codes per step.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2")]
unsafe fn avx512(
    passage: &[i8],
    passage_scales: &[f32],
    query: &[i8],
    query_scales: &[f32],
    best: &mut [f32],
    d: usize,
) {
    use std::arch::x86_64::*;
    let wide: Vec<i16> = query.iter().map(|&v| i16::from(v)).collect();
    let tokens = query_scales.len();
    for (row, ps) in passage.chunks_exact(d).zip(passage_scales) {
        for first in (0..tokens).step_by(GROUP) {
            let count = GROUP.min(tokens - first);
            let mut acc = [_mm512_setzero_si512(); GROUP];
            for k in (0..d).step_by(32) {
                // SAFETY: k + 32 <= d, within this row and within each query token's row.
                let p =
                    unsafe { _mm512_cvtepi8_epi16(_mm256_loadu_si256(row.as_ptr().add(k).cast())) };
                for (j, a) in acc.iter_mut().enumerate().take(count) {
                    let q = unsafe {
                        _mm512_loadu_si512(wide.as_ptr().add((first + j) * d + k).cast())
                    };
                    *a = _mm512_add_epi32(*a, _mm512_madd_epi16(p, q));
                }
            }
            for (j, a) in acc.iter().enumerate().take(count) {
                let dot = _mm512_reduce_add_epi32(*a);
                let b = &mut best[first + j];
                *b = b.max(dot as f32 * ps * query_scales[first + j]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn every_width_finds_the_scalar_best_matches(
            d in prop_oneof![Just(16usize), Just(32), Just(48), Just(384), 1usize..40],
            rows in 1usize..12,
            tokens in 1usize..11,
            seed in any::<u64>(),
        ) {
            let codes = |n: usize, s: u64| -> Vec<i8> {
                super::super::math::tests::random(n, s, 127.4)
                    .into_iter()
                    .map(|v| v.round().clamp(-127.0, 127.0) as i8)
                    .collect()
            };
            let passage = codes(rows * d, seed);
            let query = codes(tokens * d, seed ^ 1);
            let passage_scales: Vec<f32> = (0..rows).map(|i| 0.01 + i as f32 * 1e-3).collect();
            let query_scales: Vec<f32> = (0..tokens).map(|i| 0.02 - i as f32 * 1e-3).collect();
            let mut want = vec![f32::NEG_INFINITY; tokens];
            best_matches_on(Width::Portable, &passage, &passage_scales, &query, &query_scales, &mut want);
            let mut widths: Vec<Width> = KernelPath::supported().iter().map(|p| p.width()).collect();
            widths.dedup();
            for width in widths {
                let mut got = vec![f32::NEG_INFINITY; tokens];
                best_matches_on(width, &passage, &passage_scales, &query, &query_scales, &mut got);
                prop_assert_eq!(&got, &want, "{:?}", width);
            }
        }
    }
}

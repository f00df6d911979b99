//! The int8 dense layers on AMX tiles (Intel Sapphire Rapids and later).
//!
//! One `tdpbusd` multiplies a 16 × 64-byte tile of activations by a 16 × 64-byte tile of
//! weights into 16 × 16 int32 sums: 16,384 multiply-adds, 16 times the work of a 512-bit
//! `vpdpbusd`. The weights' panel layout ([`super::int8`]) is already the B-tile layout, so
//! tiles load straight from it. Four sum tiles (32 tokens × 32 channels) stay resident while
//! the inputs stream through in 64-byte blocks; sums are then rescaled by the AVX-512 store.
//!
//! Rust has no stable AMX intrinsics, so the tile instructions are inline assembly; Linux
//! hands a process the tile state only after `arch_prctl(ARCH_REQ_XCOMP_PERM)`, asked once
//! in [`request_tiles`].

#[cfg(target_arch = "x86_64")]
use super::int8::{Int8Weights, PANEL, QuantizedRows};

/// Whether the CPU has AMX-TILE and AMX-INT8 and the OS granted this process the tile state.
pub(super) fn request_tiles() -> bool {
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    {
        // CPUID leaf 7, sub-leaf 0: EDX bit 24 AMX-TILE, bit 25 AMX-INT8.
        // CPUID leaf 7 exists on every CPU with AVX2 (the caller checked AVX-512).
        let leaf = std::arch::x86_64::__cpuid_count(7, 0);
        if leaf.edx & (1 << 24) == 0 || leaf.edx & (1 << 25) == 0 {
            return false;
        }
        const SYS_ARCH_PRCTL: i64 = 158;
        const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
        const XFEATURE_XTILEDATA: i64 = 18;
        let result: i64;
        // SAFETY: arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA) only asks the kernel to enable
        // the tile state for this process; it reads and writes no memory of ours.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") SYS_ARCH_PRCTL => result,
                in("rdi") ARCH_REQ_XCOMP_PERM,
                in("rsi") XFEATURE_XTILEDATA,
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        if result != 0 {
            tracing::debug!(
                errno = -result,
                "the kernel refused AMX tile state; AMX kernels stay off"
            );
        }
        result == 0
    }
    #[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
    {
        false
    }
}

/// The `ldtilecfg` operand: palette 1, every tile used as 16 rows × 64 bytes.
#[cfg(target_arch = "x86_64")]
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    bytes_per_row: [u16; 16],
    rows: [u8; 16],
}

/// Configures this thread's eight tiles as 16 rows × 64 bytes each (what every AMX kernel
/// here uses); [`release_tiles`] gives the state back.
///
/// # Safety
/// [`request_tiles`] returned true; the caller releases the tiles before returning.
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn configure_tiles() {
    let config = TileConfig {
        palette: 1,
        start_row: 0,
        reserved: [0; 14],
        bytes_per_row: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
        rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
    };
    // SAFETY: a valid palette-1 configuration; this thread's tile state is the caller's
    // until it calls release_tiles.
    unsafe { std::arch::asm!("ldtilecfg [{}]", in(reg) &config, options(nostack, readonly)) };
}

/// Gives this thread's tile state back.
///
/// # Safety
/// [`configure_tiles`] was called on this thread.
#[cfg(target_arch = "x86_64")]
pub(super) unsafe fn release_tiles() {
    // SAFETY: tilerelease has no operands.
    unsafe { std::arch::asm!("tilerelease", options(nostack, nomem)) };
}

/// Four 16 × 16 int32 sum tiles, as `tilestored` writes them.
#[cfg(target_arch = "x86_64")]
#[repr(C, align(64))]
struct SumTiles([i32; 4 * 256]);

/// Channel-panel pairs `pairs` (32 channels each) of [`super::int8::int8_matmul`] on tiles.
///
/// # Safety
/// [`request_tiles`] returned true and the CPU has AVX-512 F/BW/VL; `x` holds unsigned codes
/// with its rows padded to [`super::int8::ROW_ALIGN`] and matches `w`; `dst` holds
/// `x.rows × w.outputs` floats; no other thread writes these channels.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
pub(super) unsafe fn int8_matmul(
    dst: *mut f32,
    x: &QuantizedRows,
    w: &Int8Weights,
    accumulate: bool,
    pairs: std::ops::Range<usize>,
) {
    use std::arch::asm;
    use std::arch::x86_64::_mm512_loadu_si512;

    let stride = x.stride();
    let blocks = stride / 64;
    let token_pairs = x.rows().div_ceil(32);
    let mut sums = SumTiles([0; 4 * 256]);
    // SAFETY: the caller checked request_tiles; released below.
    unsafe { configure_tiles() };
    for pair in pairs {
        let first = pair * 2 * PANEL;
        let b0 = w.panel_ptr(pair * 2);
        let b1 = w.panel_ptr(pair * 2 + 1);
        for tp in 0..token_pairs {
            let a0 = x.row_ptr(tp * 32);
            let a1 = x.row_ptr(tp * 32 + 16);
            // SAFETY: every tile load reads 16 rows of 64 bytes: activation rows tp·32..+32
            // exist (rows are padded to 32) and each has `stride` bytes, of which block kb
            // is 64; a weight panel holds blocks × 1,024 bytes. The stores write 4 KiB into
            // `sums`.
            unsafe {
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    options(nostack, nomem)
                );
                for kb in 0..blocks {
                    asm!(
                        "tileloadd tmm4, [{a0} + {sa} * 1]",
                        "tileloadd tmm5, [{a1} + {sa} * 1]",
                        "tileloadd tmm6, [{b0} + {sb} * 1]",
                        "tileloadd tmm7, [{b1} + {sb} * 1]",
                        "tdpbusd tmm0, tmm4, tmm6",
                        "tdpbusd tmm1, tmm4, tmm7",
                        "tdpbusd tmm2, tmm5, tmm6",
                        "tdpbusd tmm3, tmm5, tmm7",
                        a0 = in(reg) a0.add(kb * 64),
                        a1 = in(reg) a1.add(kb * 64),
                        b0 = in(reg) b0.add(kb * 1024),
                        b1 = in(reg) b1.add(kb * 1024),
                        sa = in(reg) stride,
                        sb = in(reg) 64usize,
                        options(nostack, readonly)
                    );
                }
                let out = sums.0.as_mut_ptr();
                asm!(
                    "tilestored [{s0} + {st} * 1], tmm0",
                    "tilestored [{s1} + {st} * 1], tmm1",
                    "tilestored [{s2} + {st} * 1], tmm2",
                    "tilestored [{s3} + {st} * 1], tmm3",
                    s0 = in(reg) out,
                    s1 = in(reg) out.add(256),
                    s2 = in(reg) out.add(512),
                    s3 = in(reg) out.add(768),
                    st = in(reg) 64usize,
                    options(nostack)
                );
            }
            for r in 0..32 {
                let t = tp * 32 + r;
                if t >= x.rows() {
                    break;
                }
                for half in 0..2 {
                    let tile = (r / 16) * 2 + half;
                    // SAFETY: one 16-int row of a stored tile; row t of dst, channels of the
                    // pair's panel `half` (the store masks them to `outputs`).
                    unsafe {
                        let row = _mm512_loadu_si512(
                            sums.0.as_ptr().add(tile * 256 + (r % 16) * 16).cast(),
                        );
                        super::int8::avx512::store(
                            dst,
                            x,
                            w,
                            row,
                            t,
                            first + half * PANEL,
                            accumulate,
                        );
                    }
                }
            }
        }
    }
    // SAFETY: configured above.
    unsafe { release_tiles() };
}

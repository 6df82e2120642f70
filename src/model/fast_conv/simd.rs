//! The few vector operations the fused kernels need, once per instruction set, so that each
//! kernel ([`super::kernel`], [`super::depthwise`]) is written once, generic over [`Simd`],
//! and compiled for AVX-512, AVX2+FMA, NEON and plain Rust.
//!
//! Why a trait of our own rather than a crate such as `pulp`: the kernels use eight
//! operations (splat, load, store, fused multiply-add, max, min and the partial load and
//! store for a ragged last vector), the tile shape differs per instruction set (it is chosen
//! by register count, see [`super::kernel`]), and the one thing that matters is that every
//! operation becomes its single instruction inside the kernel's loop. That holds when every
//! method is `#[inline(always)]` and the kernel is entered through a
//! `#[target_feature]` function per instruction set (`kernel::run`, `depthwise::run`): the
//! always-inliner pulls the generic code into that function before the intrinsics are inlined
//! into it, so they are compiled with its features (checked by the instruction counts in
//! docs/performance.md, and by tests comparing every path with the scalar definition).
//!
//! # Safety
//! Every method is `unsafe`: the caller guarantees the CPU has the implementation's features
//! (the dispatchers check [`crate::model::Isa::available`]) and that the pointers name
//! `LANES` (or `n`) readable or writable floats.

/// One instruction set's `f32` vector.
///
/// # Safety
/// For every method: the CPU has the implementation's features, and each pointer names
/// `LANES` (or `n`) readable or writable floats.
#[allow(clippy::missing_safety_doc)] // the trait's section above covers every method
pub trait Simd {
    /// Floats per vector.
    const LANES: usize;
    type V: Copy;

    unsafe fn splat(x: f32) -> Self::V;
    unsafe fn load(p: *const f32) -> Self::V;
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `a * b + c`, rounded once.
    unsafe fn mul_add(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V;

    /// The first `n < LANES` floats at `p`, zeros after; reads nothing past `p + n`.
    #[inline(always)]
    unsafe fn load_part(p: *const f32, n: usize) -> Self::V {
        let mut buf = [0.0f32; 16];
        // SAFETY: the caller vouches for `n` floats at `p`; `n < LANES <= 16`.
        unsafe {
            std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n);
            Self::load(buf.as_ptr())
        }
    }

    /// Stores the first `n < LANES` lanes of `v` at `p`; writes nothing past `p + n`.
    #[inline(always)]
    unsafe fn store_part(p: *mut f32, v: Self::V, n: usize) {
        let mut buf = [0.0f32; 16];
        // SAFETY: as for `load_part`.
        unsafe {
            Self::store(buf.as_mut_ptr(), v);
            std::ptr::copy_nonoverlapping(buf.as_ptr(), p, n);
        }
    }
}

/// Plain Rust over arrays of 8: what the kernels compute, on any CPU (forced with
/// `EDGE_TL_KERNELS=portable`, and the path tests use to check the kernels' loops apart from
/// any intrinsic). The compiler vectorises it for the target's baseline (SSE2, NEON). Its
/// multiply-add rounds twice: a fused `f32::mul_add` on a CPU without FMA is a call to the C
/// library's `fmaf` per element (100x slower, measured); the kernels' tests allow for it.
pub struct Portable;

impl Simd for Portable {
    const LANES: usize = 8;
    type V = [f32; 8];

    #[inline(always)]
    unsafe fn splat(x: f32) -> [f32; 8] {
        [x; 8]
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> [f32; 8] {
        // SAFETY: the caller vouches for 8 floats at `p`.
        unsafe { std::ptr::read_unaligned(p as *const [f32; 8]) }
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: [f32; 8]) {
        // SAFETY: as for `load`.
        unsafe { std::ptr::write_unaligned(p as *mut [f32; 8], v) }
    }
    #[inline(always)]
    unsafe fn mul_add(a: [f32; 8], b: [f32; 8], c: [f32; 8]) -> [f32; 8] {
        std::array::from_fn(|i| a[i] * b[i] + c[i])
    }
    #[inline(always)]
    unsafe fn max(a: [f32; 8], b: [f32; 8]) -> [f32; 8] {
        // Written as a comparison (not `f32::max`, whose NaN rule defeats vectorising).
        std::array::from_fn(|i| if a[i] > b[i] { a[i] } else { b[i] })
    }
    #[inline(always)]
    unsafe fn min(a: [f32; 8], b: [f32; 8]) -> [f32; 8] {
        std::array::from_fn(|i| if a[i] < b[i] { a[i] } else { b[i] })
    }
}

#[cfg(target_arch = "x86_64")]
pub use x86::{Avx2, Avx512};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Simd;
    use std::arch::x86_64::*;

    /// 512-bit vectors (AVX-512F), with masked loads and stores for the ragged end.
    pub struct Avx512;

    impl Simd for Avx512 {
        const LANES: usize = 16;
        type V = __m512;

        #[inline(always)]
        unsafe fn splat(x: f32) -> __m512 {
            unsafe { _mm512_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m512 {
            unsafe { _mm512_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m512) {
            unsafe { _mm512_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn mul_add(a: __m512, b: __m512, c: __m512) -> __m512 {
            unsafe { _mm512_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn max(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_max_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn min(a: __m512, b: __m512) -> __m512 {
            unsafe { _mm512_min_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn load_part(p: *const f32, n: usize) -> __m512 {
            unsafe { _mm512_maskz_loadu_ps(((1u32 << n) - 1) as u16, p) }
        }
        #[inline(always)]
        unsafe fn store_part(p: *mut f32, v: __m512, n: usize) {
            unsafe { _mm512_mask_storeu_ps(p, ((1u32 << n) - 1) as u16, v) }
        }
    }

    /// 256-bit vectors (AVX2 and FMA), with `vmaskmovps` for the ragged end.
    pub struct Avx2;

    #[inline(always)]
    unsafe fn first_lanes(n: usize) -> __m256i {
        unsafe {
            _mm256_cmpgt_epi32(
                _mm256_set1_epi32(n as i32),
                _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            )
        }
    }

    impl Simd for Avx2 {
        const LANES: usize = 8;
        type V = __m256;

        #[inline(always)]
        unsafe fn splat(x: f32) -> __m256 {
            unsafe { _mm256_set1_ps(x) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> __m256 {
            unsafe { _mm256_loadu_ps(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: __m256) {
            unsafe { _mm256_storeu_ps(p, v) }
        }
        #[inline(always)]
        unsafe fn mul_add(a: __m256, b: __m256, c: __m256) -> __m256 {
            unsafe { _mm256_fmadd_ps(a, b, c) }
        }
        #[inline(always)]
        unsafe fn max(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_max_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn min(a: __m256, b: __m256) -> __m256 {
            unsafe { _mm256_min_ps(a, b) }
        }
        #[inline(always)]
        unsafe fn load_part(p: *const f32, n: usize) -> __m256 {
            unsafe { _mm256_maskload_ps(p, first_lanes(n)) }
        }
        #[inline(always)]
        unsafe fn store_part(p: *mut f32, v: __m256, n: usize) {
            unsafe { _mm256_maskstore_ps(p, first_lanes(n), v) }
        }
    }
}

#[cfg(target_arch = "aarch64")]
pub use arm::Neon;

#[cfg(target_arch = "aarch64")]
mod arm {
    use super::Simd;
    use std::arch::aarch64::*;

    /// 128-bit NEON vectors (every aarch64 CPU, the Pi 3 to 5 among them). The ragged end goes
    /// through a stack buffer (NEON has no masked load), which MobileNet's channel counts
    /// (multiples of 8) never reach.
    pub struct Neon;

    impl Simd for Neon {
        const LANES: usize = 4;
        type V = float32x4_t;

        #[inline(always)]
        unsafe fn splat(x: f32) -> float32x4_t {
            unsafe { vdupq_n_f32(x) }
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> float32x4_t {
            unsafe { vld1q_f32(p) }
        }
        #[inline(always)]
        unsafe fn store(p: *mut f32, v: float32x4_t) {
            unsafe { vst1q_f32(p, v) }
        }
        #[inline(always)]
        unsafe fn mul_add(a: float32x4_t, b: float32x4_t, c: float32x4_t) -> float32x4_t {
            unsafe { vfmaq_f32(c, a, b) }
        }
        #[inline(always)]
        unsafe fn max(a: float32x4_t, b: float32x4_t) -> float32x4_t {
            unsafe { vmaxq_f32(a, b) }
        }
        #[inline(always)]
        unsafe fn min(a: float32x4_t, b: float32x4_t) -> float32x4_t {
            unsafe { vminq_f32(a, b) }
        }
    }
}

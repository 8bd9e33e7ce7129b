//! NEON paths (aarch64, where NEON is part of the baseline but still detected at runtime).
#![allow(unsafe_code)]

use std::arch::aarch64::*;

macro_rules! define_neon {
    ($impl_name:ident, $name:ident, $step:ident, $scalar:expr) => {
        #[target_feature(enable = "neon")]
        unsafe fn $impl_name(a: &[f32], b: &[f32]) -> f32 {
            let n = a.len().min(b.len());
            let (pa, pb) = (a.as_ptr(), b.as_ptr());
            let mut acc0 = vdupq_n_f32(0.0);
            let mut acc1 = vdupq_n_f32(0.0);
            let mut i = 0;
            // SAFETY: every load reads 4 floats at offsets i..i+4 <= n, inside both slices.
            unsafe {
                while i + 8 <= n {
                    acc0 = $step(vld1q_f32(pa.add(i)), vld1q_f32(pb.add(i)), acc0);
                    acc1 = $step(vld1q_f32(pa.add(i + 4)), vld1q_f32(pb.add(i + 4)), acc1);
                    i += 8;
                }
            }
            let mut sum = vaddvq_f32(vaddq_f32(acc0, acc1));
            while i < n {
                sum += $scalar(a[i], b[i]);
                i += 1;
            }
            sum
        }

        /// Safe wrapper, installed only after NEON was detected.
        pub(super) fn $name(a: &[f32], b: &[f32]) -> f32 {
            // SAFETY: the dispatch table installs this only after
            // `is_aarch64_feature_detected!("neon")` returned true.
            unsafe { $impl_name(a, b) }
        }
    };
}

#[target_feature(enable = "neon")]
fn l2_step(x: float32x4_t, y: float32x4_t, acc: float32x4_t) -> float32x4_t {
    let d = vsubq_f32(x, y);
    vfmaq_f32(acc, d, d)
}

#[target_feature(enable = "neon")]
fn dot_step(x: float32x4_t, y: float32x4_t, acc: float32x4_t) -> float32x4_t {
    vfmaq_f32(acc, x, y)
}

define_neon!(l2sq_impl, l2sq_neon, l2_step, |x: f32, y: f32| (x - y)
    * (x - y));
define_neon!(dot_impl, dot_neon, dot_step, |x: f32, y: f32| x * y);

//! Whose kernels run the convolutions: edge-tl's fused ones ([`crate::model::fast_conv`]) or
//! tract's own plan. Chosen by the caller (the commands read `EDGE_TL_KERNELS`), carried by
//! the [`ResolvedModel`](crate::model::ResolvedModel) so every extractor loaded from it agrees.

/// Whose kernels run the convolutions [`crate::model::fast_conv`] knows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Kernels {
    /// edge-tl's fused channel-last convolutions where the CPU has AVX-512, tract's elsewhere.
    #[default]
    Fused,
    /// tract's own plan throughout (to compare against, or to rule ours out).
    Tract,
}

impl std::str::FromStr for Kernels {
    type Err = String;

    fn from_str(s: &str) -> Result<Kernels, String> {
        match s {
            "fused" | "" => Ok(Kernels::Fused),
            "tract" => Ok(Kernels::Tract),
            other => Err(format!("unknown kernels {other:?}: use fused or tract")),
        }
    }
}

//! Whose kernels run the convolutions: edge-tl's fused ones ([`crate::model::fast_conv`]),
//! compiled for one instruction set ([`Isa`]), or tract's own plan. Chosen by the caller (the
//! commands read `EDGE_TL_KERNELS`), carried by the [`ResolvedModel`](crate::model::ResolvedModel)
//! so every extractor loaded from it agrees.
//!
//! The default is the best instruction set this CPU has; any path the CPU can run can be
//! forced, so the paths below a machine's best are tested on that machine.

/// The instruction sets the fused kernels are compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// x86_64 with AVX-512F: 16 floats a vector, 32 registers.
    Avx512,
    /// x86_64 with AVX2 and FMA: 8 floats, 16 registers (AMD before Zen 4, Intel N100-class).
    Avx2,
    /// aarch64 NEON: 4 floats, 32 registers (every Raspberry Pi since the 3).
    Neon,
    /// Plain Rust, on any CPU: the reference path, and for CPUs none of the above fits.
    Portable,
}

impl Isa {
    /// Every instruction set, best first.
    pub const ALL: [Isa; 4] = [Isa::Avx512, Isa::Avx2, Isa::Neon, Isa::Portable];

    /// Whether this CPU can run it.
    pub fn available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => true,
            Isa::Portable => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The best vector path this CPU has; `None` where only [`Isa::Portable`] would run (an
    /// x86_64 CPU before AVX2, 32-bit ARM), where tract's own kernels are the better choice.
    pub fn best() -> Option<Isa> {
        Isa::ALL
            .into_iter()
            .find(|isa| *isa != Isa::Portable && isa.available())
    }

    /// The name `EDGE_TL_KERNELS` takes.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2 => "avx2",
            Isa::Neon => "neon",
            Isa::Portable => "portable",
        }
    }
}

/// Whose kernels run the convolutions [`crate::model::fast_conv`] knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kernels {
    /// edge-tl's fused channel-last convolutions on this instruction set.
    Fused(Isa),
    /// tract's own plan throughout (to compare against, to rule ours out, and the default
    /// where the CPU has no vector path of ours).
    Tract,
}

impl Default for Kernels {
    /// The best this CPU has: [`Isa::best`], else tract's.
    fn default() -> Kernels {
        Isa::best().map_or(Kernels::Tract, Kernels::Fused)
    }
}

impl Kernels {
    /// What ran, as `bench` and the logs print it: `avx2`, `tract`...
    pub fn name(self) -> &'static str {
        match self {
            Kernels::Fused(isa) => isa.name(),
            Kernels::Tract => "tract",
        }
    }
}

impl std::fmt::Display for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Kernels {
    type Err = String;

    /// `fused` (or empty) is the default; a named instruction set must be one this CPU has.
    fn from_str(s: &str) -> Result<Kernels, String> {
        if matches!(s, "" | "fused" | "best") {
            return Ok(Kernels::default());
        }
        if s == "tract" {
            return Ok(Kernels::Tract);
        }
        let names = "fused, avx512, avx2, neon, portable or tract";
        let Some(isa) = Isa::ALL.into_iter().find(|isa| isa.name() == s) else {
            return Err(format!("unknown kernels {s:?}: use {names}"));
        };
        if !isa.available() {
            let usable: Vec<&str> = Isa::ALL
                .into_iter()
                .filter(|i| i.available())
                .map(Isa::name)
                .chain(["tract"])
                .collect();
            return Err(format!(
                "this CPU cannot run the {s} kernels (its vector features: {}); use {}",
                cpu_vector_flags(),
                usable.join(", ")
            ));
        }
        Ok(Kernels::Fused(isa))
    }
}

/// The CPU's vector features that decide the kernels, as `/proc/cpuinfo` names them
/// (`avx2 fma`, `avx512f ...`, `neon`), for every printed speed figure.
pub fn cpu_vector_flags() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        let mut flags = vec!["sse2"];
        macro_rules! has {
            ($($f:tt),*) => {$(
                if std::arch::is_x86_feature_detected!($f) {
                    flags.push($f);
                }
            )*};
        }
        has!(
            "avx",
            "avx2",
            "fma",
            "avx512f",
            "avx512bw",
            "avx512vnni",
            "avxvnni"
        );
        flags.join(" ")
    }
    #[cfg(target_arch = "aarch64")]
    {
        let mut flags = vec!["neon"];
        if std::arch::is_aarch64_feature_detected!("dotprod") {
            flags.push("dotprod");
        }
        if std::arch::is_aarch64_feature_detected!("i8mm") {
            flags.push("i8mm");
        }
        flags.join(" ")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        String::from("none known")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_unavailable_sets_are_refused_by_name() {
        for isa in Isa::ALL {
            let parsed = isa.name().parse::<Kernels>();
            if isa.available() {
                assert_eq!(parsed, Ok(Kernels::Fused(isa)));
            } else {
                let err = parsed.unwrap_err();
                assert!(
                    err.starts_with(&format!("this CPU cannot run the {} kernels", isa.name())),
                    "{err}"
                );
                assert!(err.contains("portable") && err.contains("tract"), "{err}");
            }
        }
        assert_eq!("tract".parse(), Ok(Kernels::Tract));
        assert_eq!("".parse(), Ok(Kernels::default()));
        assert_eq!(
            "sse".parse::<Kernels>().unwrap_err(),
            "unknown kernels \"sse\": use fused, avx512, avx2, neon, portable or tract"
        );
        // Portable always runs; the default is a vector path or tract's, never portable.
        assert!(Isa::Portable.available());
        assert_ne!(Kernels::default(), Kernels::Fused(Isa::Portable));
        #[cfg(target_arch = "aarch64")]
        assert_eq!(Kernels::default(), Kernels::Fused(Isa::Neon));
    }
}

//! edge-tl's fused convolutions (`model::fast_conv`) against tract's own plan, on the real
//! backbones and photos: same embeddings up to rounding, same ImageNet answers.

use edge_tl::model::{Extractor, Isa, Kernels, Outputs, ResolvedModel, Threads};
use edge_tl::preprocess;

use crate::common::{data, shared};

/// The shared ImageNet test photos and a spread of Cats vs Dogs test photos.
fn photos() -> Vec<std::path::PathBuf> {
    let mut photos: Vec<_> = std::fs::read_dir(shared().join("models/testdata"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for label in ["cat", "dog"] {
        let mut split: Vec<_> = std::fs::read_dir(data(&format!("catsdogs/test/{label}")))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        split.sort();
        photos.extend(split.into_iter().step_by(20));
    }
    photos.sort();
    photos
}

fn argmax(v: &[f32]) -> usize {
    (0..v.len()).max_by(|&a, &b| v[a].total_cmp(&v[b])).unwrap()
}

/// Every convolution of the float MobileNetV2 moves to the fused kernels (1 stem, 17
/// depthwise, 34 pointwise; all 49 of EfficientNet-Lite0, whose depthwise layers are 3x3
/// and 5x5) on every instruction set this CPU has, and nothing a user sees
/// changes: on every photo the embedding is the same as tract's plan up to float rounding
/// and the ImageNet top-1 is the same. In the int8 MobileNetV1 (QDQ) every activation is
/// re-rounded to an 8-bit grid between layers (edge-tl in the fused convolutions, tract in
/// passes of its own), so a rounding difference can move a value by one grid step: there
/// the bar is a cosine of 0.999 (onnxruntime itself is 0.9999 from
/// tract) and the same top-1. On two threads (the ops share their rows out across tract's
/// pool) the embedding is bit-identical to one thread's.
#[test]
fn fused_kernels_agree_with_tracts_plan() {
    let isas: Vec<Isa> = Isa::ALL.into_iter().filter(|i| i.available()).collect();
    // Portable runs everywhere, and a vector path on every CPU this suite runs on.
    assert!(isas.len() >= 2, "{isas:?}");
    let photos = photos();
    assert!(photos.len() >= 27, "{} photos", photos.len());
    // (file, fused convolutions, QDQ pairs folded into them and left as ops of their own)
    for (name, fusable, grids) in [
        ("mobilenet-v2-f32", 52, (0, 0)),
        // Every convolution rounds its output to the 8-bit grid in its epilogue; two pairs on
        // the way to the logits (after the average pool) stay ops of their own.
        ("mobilenet-v1-int8", 27, (27, 2)),
        // 5x5 depthwise layers, stride 2 at 5x5, a PyTorch export (NCHW in the file).
        ("efficientnet-lite0-f32", 49, (0, 0)),
    ] {
        let model = crate::common::resolve(name);
        let tract_model = ResolvedModel {
            kernels: Kernels::Tract,
            ..model.clone()
        };
        let tract = Extractor::load(&tract_model, Outputs::EmbeddingAndLogits).unwrap();
        assert_eq!(tract.fused_convolutions(), 0, "{name}");
        assert_eq!(tract.fused_grids(), (0, 0), "{name}");
        let inputs: Vec<_> = photos
            .iter()
            .map(|p| preprocess::to_input(&preprocess::decode_file(p).unwrap(), &model.manifest))
            .collect();
        let want: Vec<_> = inputs.iter().map(|i| tract.run(i).unwrap()).collect();
        for &isa in &isas {
            let fused_model = ResolvedModel {
                kernels: Kernels::Fused(isa),
                ..model.clone()
            };
            let mut fused = Extractor::load(&fused_model, Outputs::EmbeddingAndLogits).unwrap();
            assert_eq!(fused.fused_convolutions(), fusable, "{name} {isa:?}");
            assert_eq!(fused.fused_grids(), grids, "{name} {isa:?}");
            // The portable path is the slow reference (and this crate is built at opt-level 1
            // in tests): every fourth photo.
            let step = if isa == Isa::Portable { 4 } else { 1 };
            for (photo, (input, b)) in photos.iter().zip(inputs.iter().zip(&want)).step_by(step) {
                let a = fused.run(input).unwrap();
                let at = format!("{name}, {isa:?}, {}", photo.display());
                if name.ends_with("f32") {
                    let scale = b.embedding.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                    let worst = a
                        .embedding
                        .iter()
                        .zip(&b.embedding)
                        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
                    assert!(
                        worst <= 1e-4 * scale.max(1.0),
                        "{at}: embeddings differ by {worst} (largest value {scale})"
                    );
                } else {
                    let cos = crate::common::cosine(&a.embedding, &b.embedding);
                    assert!(cos >= 0.999, "{at}: cosine {cos}");
                }
                let (la, lb) = (a.logits.unwrap(), b.logits.as_ref().unwrap());
                assert_eq!(argmax(&la), argmax(lb), "{at}");
            }
            // The float file on two threads: the same bits as one thread, photo by photo.
            if name.ends_with("f32") {
                let one: Vec<_> = inputs.iter().map(|i| fused.run(i).unwrap()).collect();
                fused.set_threads(2);
                for (input, one) in inputs.iter().zip(&one) {
                    assert_eq!(
                        fused.run(input).unwrap().embedding,
                        one.embedding,
                        "{isa:?}"
                    );
                }
                // Measured threads (run's default) switch counts between pictures: the first
                // 11 pictures run on 2 threads, the next 11 on 1, then on the faster; every
                // one has the same bits as on one thread.
                if Some(isa) == Isa::best() {
                    fused.set_threads(Threads::Auto { most: 2 });
                    let mut ran_on = std::collections::BTreeSet::new();
                    for _ in 0..2 {
                        for (input, one) in inputs.iter().zip(&one) {
                            ran_on.insert(fused.threads());
                            assert_eq!(fused.run(input).unwrap().embedding, one.embedding);
                        }
                    }
                    assert_eq!(ran_on, [1, 2].into(), "{isa:?}");
                }
            }
        }
    }
}

/// The default is the best vector path this CPU has (tract's where it has none), named
/// from the CPU's own feature flags rather than from `Isa::best`.
#[test]
fn the_default_kernels_are_the_best_this_cpu_has() {
    let model = crate::common::resolve("mobilenet-v2-f32");
    #[cfg(target_arch = "x86_64")]
    let want = if std::arch::is_x86_feature_detected!("avx512f") {
        Kernels::Fused(Isa::Avx512)
    } else if std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
    {
        Kernels::Fused(Isa::Avx2)
    } else {
        Kernels::Tract
    };
    #[cfg(target_arch = "aarch64")]
    let want = Kernels::Fused(Isa::Neon);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let want = Kernels::Tract;
    assert_eq!(model.kernels, want);
}

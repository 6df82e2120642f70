//! edge-tl's fused convolutions (`model::fast_conv`) against tract's own plan, on the real
//! backbones and photos: same embeddings up to rounding, same ImageNet answers.

use edge_tl::model::{Extractor, Kernels, Outputs, ResolvedModel};
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

/// Where the CPU has AVX-512 every convolution of the float MobileNetV2 moves to the fused
/// kernels (1 stem, 17 depthwise, 34 pointwise), and nothing a user sees changes: on every
/// photo the embedding is the same up to float rounding and the ImageNet top-1 is the same.
/// In the int8 MobileNetV1 (QDQ) every activation is re-rounded to an 8-bit grid between
/// layers, so a rounding difference can move a value by one grid step: there the bar is a
/// cosine of 0.999 (onnxruntime itself is 0.9999 from tract) and the same top-1.
#[test]
fn fused_kernels_agree_with_tracts_plan() {
    let avx512 = edge_tl::model::fast_conv::kernel::has_avx512();
    for (name, fused_if_avx512, exact) in [
        ("mobilenet-v2-f32", 52, true),
        ("mobilenet-v1-int8", 27, false),
    ] {
        let model = crate::common::resolve(name);
        let fused = Extractor::load(&model, Outputs::EmbeddingAndLogits).unwrap();
        let tract_model = ResolvedModel {
            kernels: Kernels::Tract,
            ..model.clone()
        };
        let tract = Extractor::load(&tract_model, Outputs::EmbeddingAndLogits).unwrap();
        let want = if avx512 { fused_if_avx512 } else { 0 };
        assert_eq!(fused.fused_convolutions(), want, "{name}");
        assert_eq!(tract.fused_convolutions(), 0, "{name}");
        let photos = photos();
        assert!(photos.len() >= 27, "{} photos", photos.len());
        for photo in photos {
            let frame = preprocess::decode_file(&photo).unwrap();
            let input = preprocess::to_input(&frame, &model.manifest);
            let (a, b) = (fused.run(&input).unwrap(), tract.run(&input).unwrap());
            let scale = b.embedding.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let worst = a
                .embedding
                .iter()
                .zip(&b.embedding)
                .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
            if exact {
                assert!(
                    worst <= 1e-4 * scale.max(1.0),
                    "{name} {}: embeddings differ by {worst} (largest value {scale})",
                    photo.display()
                );
            } else {
                let cos = crate::common::cosine(&a.embedding, &b.embedding);
                assert!(cos >= 0.999, "{name} {}: cosine {cos}", photo.display());
            }
            let (la, lb) = (a.logits.unwrap(), b.logits.unwrap());
            assert_eq!(argmax(&la), argmax(&lb), "{name} {}", photo.display());
        }
    }
}

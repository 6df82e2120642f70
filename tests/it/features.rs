//! `edge-tl features`: layers listed from the real backbone, activations that agree with the
//! extractor, and the grid PNG.

use edge_tl::model::layers::Layers;
use edge_tl::preprocess;

use crate::common::{data, default_model, edge_tl, extractor, stderr, stdout};

#[test]
fn the_last_feature_map_averaged_is_the_embedding() {
    let layers = Layers::open(default_model()).unwrap();
    let list = layers.list();
    assert!(list.len() >= 50, "{} layers", list.len());
    assert_eq!(list[0].shape, [32, 112, 112], "{:?}", list[0]);
    let last = list.last().unwrap();
    assert_eq!(last.shape, [1280, 7, 7], "{last:?}");
    assert!(last.name.contains("Conv_1"), "{last:?}");
    // Residual sums are listed too, and every layer has a readable name.
    assert!(list.iter().any(|l| l.op == "Add"));
    assert!(
        list.iter().all(|l| l.name.starts_with("MobilenetV2/")),
        "{list:?}"
    );

    let photo = data("catsdogs/test/cat/cat.101.jpg");
    let frame = preprocess::decode_file(&photo).unwrap();
    let input = preprocess::to_input(&frame, &default_model().manifest);
    let maps = layers.activations(last, &input).unwrap();
    let pooled: Vec<f32> = maps
        .outer_iter()
        .map(|c| c.iter().sum::<f32>() / 49.0)
        .collect();
    let embedding = extractor().run(&input).unwrap().embedding;
    let worst = pooled
        .iter()
        .zip(&embedding)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "largest difference {worst}");
    assert!(layers.find("Conv_1").is_ok());
    let e = layers.find("expanded_conv_3").unwrap_err().to_string();
    assert!(
        e.contains("matches") && e.contains("give more of the name"),
        "{e}"
    );
    let e = layers.find("999").unwrap_err().to_string();
    assert!(
        e.contains("has no layer \"999\"") && e.contains("--layer list"),
        "{e}"
    );
}

#[test]
fn features_writes_a_grid_of_the_first_layer() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("maps.png");
    let photo = data("catsdogs/test/cat/cat.101.jpg");
    let o = edge_tl(&[
        "features",
        photo.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("32 of 32 channels of 112x112, 6x6 grid"),
        "{}",
        stdout(&o)
    );
    let img = image::open(&out).unwrap().to_luma8();
    // 6 tiles of 112 px and 7 gaps of 2 px each way.
    assert_eq!(img.dimensions(), (686, 686));
    let tile = |i: u32| {
        let (x0, y0) = (2 + (i % 6) * 114, 2 + (i / 6) * 114);
        (0..112).flat_map(move |y| (0..112).map(move |x| (x0 + x, y0 + y)))
    };
    let distinct: std::collections::HashSet<u8> =
        tile(0).map(|(x, y)| img.get_pixel(x, y).0[0]).collect();
    assert!(
        distinct.len() > 50,
        "the first channel is a picture, not a flat tile"
    );
    assert!(!dir.path().read_dir().unwrap().any(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".part")));

    let o = edge_tl(&["features", "--layer", "list"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("1280 x 7 x 7  MobilenetV2/Conv_1/Relu6"),
        "{text}"
    );
    let o = edge_tl(&["features", photo.to_str().unwrap(), "--layer", "nope"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("has no layer \"nope\""),
        "{}",
        stderr(&o)
    );
}

//! Broken and unusual files: a clear, specific error for each broken one, the right upright
//! RGB picture for each unusual one, and training that goes on without the broken ones.

use edge_tl::error::DecodeError;
use edge_tl::preprocess::decode_file;

use crate::common::{data, small_catsdogs, stderr, stdout, train_cli};

/// A bad file, the error kind it must give, and text the message must contain.
type Expectation = (&'static str, fn(&DecodeError) -> bool, &'static str);

#[test]
fn each_bad_file_gets_its_own_error() {
    let expect: &[Expectation] = &[
        (
            "zero_bytes.jpg",
            |e| matches!(e, DecodeError::Empty { .. }),
            "the file is empty (0 bytes)",
        ),
        (
            "truncated.jpg",
            |e| matches!(e, DecodeError::TruncatedJpeg { .. }),
            "truncated JPEG",
        ),
        (
            "header_only.jpg",
            |e| matches!(e, DecodeError::Corrupt { .. }),
            "corrupt or unsupported image data",
        ),
        (
            "text_not_image.jpg",
            |e| matches!(e, DecodeError::UnknownFormat { .. }),
            "not an image",
        ),
        (
            "corrupt_scan_data.jpg",
            |e| matches!(e, DecodeError::Corrupt { .. }),
            "corrupt or unsupported image data",
        ),
        (
            "huge_64000x64000.png",
            |e| matches!(e, DecodeError::TooLarge { .. }),
            "64000x64000 pixels is larger than",
        ),
    ];
    let mut names: Vec<String> = std::fs::read_dir(data("bad"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| !n.ends_with(".csv"))
        .collect();
    names.sort();
    let mut listed: Vec<String> = expect.iter().map(|(n, _, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(names, listed, "every file in bad/ has an expectation");
    for (name, is_kind, text) in expect {
        let path = data("bad").join(name);
        let Err(err) = decode_file(&path) else {
            panic!("{name} decoded without an error")
        };
        let shown = err.to_string();
        assert!(is_kind(&err), "{name}: unexpected error {shown}");
        assert!(
            shown.starts_with(&path.display().to_string()),
            "{name}: error must name the file: {shown}"
        );
        assert!(shown.contains(text), "{name}: {shown}");
    }
}

fn mean_abs_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let total: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| u64::from(x.abs_diff(y)))
        .sum();
    total as f64 / a.as_raw().len() as f64
}

fn luma(img: &image::RgbImage) -> image::RgbImage {
    image::RgbImage::from_fn(img.width(), img.height(), |x, y| {
        let p = img.get_pixel(x, y).0;
        let l = (0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
            .round() as u8;
        image::Rgb([l, l, l])
    })
}

#[test]
fn odd_files_decode_upright_to_the_same_picture() {
    let odd = data("odd");
    // progressive.jpg, cmyk.jpg, grayscale.jpg, rgba.png and exif_orientation_6.jpg share one
    // donor photo (258x320 upright); each must decode to (nearly) the same RGB picture.
    let reference = decode_file(&odd.join("progressive.jpg")).unwrap().image;
    assert_eq!(reference.dimensions(), (258, 320));
    for (name, tolerance) in [
        ("exif_orientation_6.jpg", 6.0),
        ("cmyk.jpg", 12.0),
        ("rgba.png", 6.0),
    ] {
        let img = decode_file(&odd.join(name)).unwrap().image;
        let d = mean_abs_diff(&img, &reference);
        assert!(
            d < tolerance,
            "{name}: mean difference {d:.2} to the upright reference"
        );
    }
    let gray = decode_file(&odd.join("grayscale.jpg")).unwrap().image;
    let d = mean_abs_diff(&gray, &luma(&reference));
    assert!(d < 6.0, "grayscale.jpg: mean difference {d:.2}");
    // A GIF and an RGBA PNG named .jpg, and a single pixel.
    assert_eq!(
        decode_file(&odd.join("Abyssinian_34.jpg"))
            .unwrap()
            .image
            .dimensions(),
        (250, 202)
    );
    assert_eq!(
        decode_file(&odd.join("Abyssinian_5.jpg"))
            .unwrap()
            .image
            .dimensions(),
        (200, 150)
    );
    assert_eq!(
        decode_file(&odd.join("one_pixel.jpg"))
            .unwrap()
            .image
            .dimensions(),
        (1, 1)
    );
}

#[test]
fn training_skips_bad_files_names_them_and_uses_odd_ones() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("data");
    small_catsdogs(&root, 6);
    for entry in std::fs::read_dir(data("bad")).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e != "csv") {
            std::fs::copy(&p, root.join("cat").join(p.file_name().unwrap())).unwrap();
        }
    }
    for name in ["exif_orientation_6.jpg", "cmyk.jpg", "Abyssinian_34.jpg"] {
        std::fs::copy(data("odd").join(name), root.join("cat").join(name)).unwrap();
    }
    let head = dir.path().join("h.head");
    let out = train_cli(&root, &head, &["--folds", "3"]);
    let (so, se) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "train failed: {se}");
    assert!(so.contains("6 pictures skipped"), "{so}");
    assert!(
        se.contains("corrupt_scan_data.jpg: corrupt or unsupported image data: "),
        "{se}"
    );
    for name in [
        "zero_bytes.jpg",
        "truncated.jpg",
        "header_only.jpg",
        "text_not_image.jpg",
        "corrupt_scan_data.jpg",
        "huge_64000x64000.png",
    ] {
        assert!(se.contains(name), "stderr does not name {name}: {se}");
    }
    assert!(
        se.contains("truncated JPEG") && se.contains("decompression bomb"),
        "{se}"
    );
    // 6 photos + 3 odd ones for cat, 6 for dog
    assert!(so.contains("cat                             9"), "{so}");
    assert!(so.contains("dog                             6"), "{so}");
    assert!(head.is_file());
}

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::*;
use crate::source::{FrameData, RawFrame};

/// A frame of one colour; `k` sets the colour and the capture time.
fn frame(k: u64) -> Arc<RawFrame> {
    let rgb = image::RgbImage::from_fn(64, 48, |x, y| {
        image::Rgb([(k * 37 % 256) as u8, (x * 4) as u8, (y * 5) as u8])
    });
    Arc::new(RawFrame {
        index: k,
        captured: SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_000_000_000 + k * 40),
        name: None,
        data: FrameData::Rgb(rgb),
    })
}

/// An embedding pointing along axis `k` (so no two are near copies), or `v` itself.
fn axis(k: usize) -> Vec<f32> {
    let mut v = vec![0.01; 16];
    v[k % 16] = 1.0;
    v
}

fn candidate(k: u64, embedding: Vec<f32>, best: (&str, f32)) -> Candidate {
    Candidate {
        frame: frame(k),
        camera: Some("door".into()),
        best: (best.0.into(), best.1),
        second: Some(("dog".into(), 1.0 - best.1)),
        embedding,
        reason: Reason::Unsure,
    }
}

fn settings(keep: usize, max_bytes: u64) -> ReviewSettings {
    ReviewSettings {
        keep,
        max_bytes,
        ..ReviewSettings::default()
    }
}

/// Bytes one entry of [`candidate`] takes on disk, measured in a queue of its own.
fn one_entry_bytes() -> u64 {
    let probe = tempfile::tempdir().unwrap();
    let q = ReviewQueue::open(probe.path(), settings(10, 1 << 20)).unwrap();
    q.offer(&candidate(0, axis(0), ("cat", 0.5))).unwrap();
    q.used()
}

/// Bytes of every file in `dir`, temporary ones included.
fn disk_use(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// The visible files of `dir` (not the lock file).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

#[test]
fn queues_lists_uncertain_first_labels_into_the_dataset_and_discards() {
    let data = tempfile::tempdir().unwrap();
    let q = ReviewQueue::open(data.path(), settings(10, 1 << 20)).unwrap();
    let a = q
        .offer(&candidate(1, axis(1), ("cat", 0.9)))
        .unwrap()
        .unwrap();
    let b = q
        .offer(&candidate(2, axis(2), ("cat", 0.55)))
        .unwrap()
        .unwrap();
    let c = q
        .offer(&candidate(3, axis(3), ("cat", 0.7)))
        .unwrap()
        .unwrap();
    let order: Vec<String> = q.list().into_iter().map(|e| e.id).collect();
    assert_eq!(
        order,
        [b.clone(), c.clone(), a.clone()],
        "smallest margin first"
    );
    assert_eq!(a, "20261118T110640.040Z-0");
    let e = &q.list()[2];
    assert_eq!(
        (
            e.camera.as_deref(),
            e.label.as_str(),
            e.second.as_deref(),
            e.reason
        ),
        (Some("door"), "cat", Some("dog"), Reason::Unsure)
    );
    assert_eq!(e.ts, "2026-11-18T11:06:40.040Z");
    assert_eq!(disk_use(q.dir()), q.used());

    let done = q
        .assign(&[a.clone(), c.clone(), "gone".into()], "cat")
        .unwrap();
    assert_eq!(
        done.done,
        [
            (a.clone(), PathBuf::from(format!("cat/{a}.jpg"))),
            (c.clone(), PathBuf::from(format!("cat/{c}.jpg")))
        ]
    );
    assert_eq!(done.missing, ["gone"]);
    let moved = crate::preprocess::decode_file(&data.path().join(format!("cat/{a}.jpg"))).unwrap();
    assert_eq!(moved.image.dimensions(), (64, 48));
    assert_eq!(names(q.dir()), [format!("{b}.jpg"), format!("{b}.json")]);

    // A label folder's own file of that name is never replaced.
    let d = q
        .offer(&candidate(1, axis(4), ("cat", 0.5)))
        .unwrap()
        .unwrap();
    assert_eq!(d, a, "the same capture time, free again in the queue");
    let again = q.assign(std::slice::from_ref(&d), "cat").unwrap();
    assert_eq!(again.done[0].1, PathBuf::from(format!("cat/{a}-1.jpg")));

    assert!(matches!(
        q.assign(std::slice::from_ref(&b), "../up"),
        Err(ReviewError::Capture(CaptureError::Label(_)))
    ));
    let gone = q.discard(&[b.clone(), b.clone()]);
    assert_eq!((gone.done.len(), gone.missing), (1, vec![b.clone()]));
    assert!(names(q.dir()).is_empty());
    assert_eq!(q.used(), 0);
    // The scenes just labelled or discarded do not come back while the camera still sees them.
    for k in [1, 2, 3, 4] {
        assert!(q
            .offer(&candidate(10 + k, axis(k as usize), ("cat", 0.5)))
            .unwrap()
            .is_none());
    }
    assert!(q
        .offer(&candidate(20, axis(5), ("cat", 0.5)))
        .unwrap()
        .is_some());
}

#[test]
fn skips_near_copies_of_a_queued_frame() {
    let data = tempfile::tempdir().unwrap();
    let q = ReviewQueue::open(data.path(), settings(10, 1 << 20)).unwrap();
    assert!(q
        .offer(&candidate(1, axis(1), ("cat", 0.5)))
        .unwrap()
        .is_some());
    let mut close = axis(1);
    close[2] = 0.3; // cosine 0.96 with the first
    assert!(q
        .offer(&candidate(2, close, ("cat", 0.5)))
        .unwrap()
        .is_none());
    let mut apart = axis(1);
    apart[2] = 0.8; // cosine 0.78
    assert!(q
        .offer(&candidate(3, apart, ("cat", 0.5)))
        .unwrap()
        .is_some());
    assert_eq!(q.list().len(), 2);
}

#[test]
fn never_holds_more_than_its_bounds_and_makes_room_from_the_oldest() {
    let data = tempfile::tempdir().unwrap();
    let one = one_entry_bytes();
    // Room for three and a half entries.
    let bound = one * 7 / 2;
    let q = ReviewQueue::open(data.path(), settings(100, bound)).unwrap();
    let mut ids = Vec::new();
    for k in 0..12 {
        ids.push(
            q.offer(&candidate(k, axis(k as usize), ("cat", 0.5)))
                .unwrap()
                .unwrap(),
        );
        assert!(
            disk_use(q.dir()) <= bound,
            "{} > {bound}",
            disk_use(q.dir())
        );
    }
    let kept: Vec<String> = q.list().into_iter().map(|e| e.id).collect();
    assert_eq!(kept, ids[9..], "the newest three");
    // The count bound, on reopening with a smaller one.
    drop(q);
    let q = ReviewQueue::open(data.path(), settings(2, bound)).unwrap();
    assert_eq!(
        q.list().into_iter().map(|e| e.id).collect::<Vec<_>>(),
        ids[10..]
    );
    assert_eq!(names(q.dir()).len(), 4);
    drop(q);
    // keep = 0: no queue.
    let off = ReviewQueue::open(data.path(), settings(0, bound)).unwrap();
    assert!(off
        .offer(&candidate(20, axis(5), ("cat", 0.5)))
        .unwrap()
        .is_none());
    assert!(names(off.dir()).is_empty());
}

#[test]
fn reopening_keeps_whole_entries_and_removes_what_a_crash_or_damage_left() {
    let data = tempfile::tempdir().unwrap();
    let q = ReviewQueue::open(data.path(), settings(10, 1 << 20)).unwrap();
    let ids: Vec<String> = (0..4)
        .map(|k| {
            q.offer(&candidate(k, axis(k as usize), ("cat", 0.5)))
                .unwrap()
                .unwrap()
        })
        .collect();
    let dir = q.dir().to_path_buf();
    drop(q);
    // A picture whose record was never written, a record cut short, a picture cut short,
    // a record without its picture.
    std::fs::write(dir.join("20261201T000000.000Z-0.jpg"), b"\xFF\xD8half").unwrap();
    let record = std::fs::read(dir.join(format!("{}.json", ids[0]))).unwrap();
    std::fs::write(
        dir.join(format!("{}.json", ids[0])),
        &record[..record.len() / 2],
    )
    .unwrap();
    let jpg = std::fs::read(dir.join(format!("{}.jpg", ids[1]))).unwrap();
    std::fs::write(dir.join(format!("{}.jpg", ids[1])), &jpg[..jpg.len() - 10]).unwrap();
    std::fs::remove_file(dir.join(format!("{}.jpg", ids[2]))).unwrap();
    let q = ReviewQueue::open(data.path(), settings(10, 1 << 20)).unwrap();
    assert_eq!(
        q.list().into_iter().map(|e| e.id).collect::<Vec<_>>(),
        [ids[3].clone()]
    );
    assert_eq!(
        names(&dir),
        [format!("{}.jpg", ids[3]), format!("{}.json", ids[3])]
    );
    assert_eq!(q.used(), disk_use(&dir));
    // Its embedding came back: a near copy of it is still skipped.
    assert!(q
        .offer(&candidate(9, axis(3), ("cat", 0.5)))
        .unwrap()
        .is_none());
}

#[test]
fn the_writer_thread_queues_what_the_tap_selects() {
    let data = tempfile::tempdir().unwrap();
    let q = Arc::new(ReviewQueue::open(data.path(), settings(10, 1 << 20)).unwrap());
    let writer = ReviewWriter::spawn(q.clone()).unwrap();
    let mut tap = writer.tap(
        None,
        SelectSettings {
            every: 0,
            ..SelectSettings::default()
        },
    );
    let labels = vec!["cat".to_string(), "dog".to_string()];
    // A sure frame is not offered, an unsure one is.
    tap.see(&frame(1), &[0.95, 0.05], &labels, &axis(1));
    tap.see(&frame(2), &[0.45, 0.55], &labels, &axis(2));
    drop(tap);
    drop(writer);
    for _ in 0..200 {
        if !q.list().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let list = q.list();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        (list[0].label.as_str(), list[0].reason),
        ("dog", Reason::Unsure)
    );
}

#[test]
fn files_that_are_no_entries_count_against_the_bound_and_one_process_keeps_a_queue() {
    let data = tempfile::tempdir().unwrap();
    let one = one_entry_bytes();
    let bound = one * 7 / 2;
    let dir = data.path().join(REVIEW_DIR);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.bin"), vec![0u8; (one * 3) as usize]).unwrap();
    let q = ReviewQueue::open(data.path(), settings(10, bound)).unwrap();
    // Three entries' worth is taken: a fourth does not fit, and is not kept.
    assert!(q
        .offer(&candidate(1, axis(1), ("cat", 0.5)))
        .unwrap()
        .is_none());
    assert!(disk_use(&dir) <= bound + 1, "{} > {bound}", disk_use(&dir));
    assert_eq!(q.list().len(), 0);
    // A second queue on the same folder (another process, or a second service) is refused.
    assert!(matches!(
        ReviewQueue::open(data.path(), settings(10, bound)),
        Err(ReviewError::Busy { .. })
    ));
    drop(q);
    assert!(ReviewQueue::open(data.path(), settings(10, bound)).is_ok());
}

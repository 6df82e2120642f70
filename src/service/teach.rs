//! Teaching from the page: capture samples of a label from the live frames, and train a new
//! head from the dataset folder, both beside the running inference loop. A trained head is
//! written atomically to the head file, where the loop's [`HeadWatcher`] picks it up, so the
//! loop never stops and never sees a half-written head.
//!
//! [`HeadWatcher`]: crate::live::HeadWatcher

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

use crate::dataset::capture::{label_dir, save_sample, CaptureError};
use crate::dataset::{visible_entries, Dataset, EmbedOptions};
use crate::error::chain;
use crate::head::curve::{verdict, CurvePoint};
use crate::head::file as head_file;
use crate::head::train::{train_folder, CvReport, Mistake, TrainParams};
use crate::metrics::ClassReport;
use crate::model::{Extractor, Outputs, ResolvedModel};
use crate::region::Region;
use crate::review::{ReviewQueue, ReviewWriter};
use crate::source::RawFrame;

/// Where samples go and where a trained head is written.
#[derive(Debug, Clone)]
pub struct TeachSettings {
    /// Dataset folder (`<data>/<label>/*.jpg`).
    pub data: PathBuf,
    /// Head file the loop watches; training is refused without one.
    pub head: Option<PathBuf>,
    /// Backbone the head is trained on (the one the loop runs).
    pub model: ResolvedModel,
    /// The review queue beside the dataset, when one is kept.
    pub review: Option<ReviewWriter>,
    /// The part of the frame Train teaches the head on, until the page draws another.
    pub region: Option<Region>,
}

/// A label folder and how many pictures it has.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelCount {
    pub label: String,
    pub samples: usize,
}

/// The state of the last training, for `GET /api/train`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TrainStatus {
    /// `idle`, `running`, `done` or `failed`.
    pub state: &'static str,
    /// Cross-validated accuracy of the new head, when every label had enough pictures.
    pub cv_accuracy: Option<f64>,
    pub samples: Vec<LabelCount>,
    /// Pictures that could not be used, with the reason.
    pub skipped: Vec<String>,
    pub seconds: Option<f64>,
    pub error: Option<String>,
    pub head: Option<PathBuf>,
    /// Per-label precision and recall from the cross-validation.
    pub per_class: Vec<ClassReport>,
    /// `confusion[true][predicted]` counts from the cross-validation, labels in the order of
    /// `per_class`.
    pub confusion: Vec<Vec<usize>>,
    /// The pictures cross-validation took for another label (paths inside the data folder).
    pub mistakes: Vec<Mistake>,
    /// Said when one label has far more pictures than another.
    pub imbalance: Option<String>,
    /// The region the head was taught on (the whole frame when absent).
    pub region: Option<Region>,
    /// Cross-validated accuracy by pictures per label, and what it says.
    pub learning_curve: Vec<CurvePoint>,
    pub enough: Option<String>,
}

/// What a finished training tells the page.
struct Trained {
    cv_accuracy: Option<f64>,
    /// Pictures that could not be used, with the reason.
    skipped: Vec<String>,
    report: Option<CvReport>,
    imbalance: Option<String>,
    region: Option<Region>,
    learning_curve: Vec<CurvePoint>,
}

/// Why a capture request failed.
#[derive(Debug, thiserror::Error)]
pub enum TeachError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error("no frame from the source for {0:?}; is the camera delivering?")]
    NoFrame(Duration),
    #[error("a training is already running")]
    Busy,
    #[error(
        "no head file to write: start `edge-tl run` with --head FILE (or `head` in the settings)"
    )]
    NoHeadFile,
}

/// The message of a caught panic.
fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

fn pictures_in(dir: &Path) -> usize {
    visible_entries(dir)
        .map(|v| v.iter().filter(|f| f.is_file()).count())
        .unwrap_or(0)
}

/// Capturing and training; shared by the HTTP handlers.
pub struct Teach {
    settings: TeachSettings,
    status: Mutex<TrainStatus>,
    /// What the next training learns from (starts as the settings' region).
    region: Mutex<Option<Region>>,
}

/// How long a capture waits for the next frame.
const FRAME_WAIT: Duration = Duration::from_secs(5);

impl Teach {
    pub fn new(settings: TeachSettings) -> Teach {
        Teach {
            region: Mutex::new(settings.region),
            settings,
            status: Mutex::new(TrainStatus {
                state: "idle",
                ..TrainStatus::default()
            }),
        }
    }

    pub fn data(&self) -> &Path {
        &self.settings.data
    }

    /// The review queue's writer, when one is kept.
    pub fn review(&self) -> Option<&ReviewWriter> {
        self.settings.review.as_ref()
    }

    /// The review queue, when one is kept.
    pub fn review_queue(&self) -> Option<&Arc<ReviewQueue>> {
        self.review().map(ReviewWriter::queue)
    }

    /// The region the next training teaches the head on (`None`: the whole frame).
    pub fn region(&self) -> Option<Region> {
        *self.region.lock().unwrap()
    }

    /// Sets the region of the next training, checked.
    pub fn set_region(&self, region: Option<Region>) -> Result<(), String> {
        if let Some(r) = &region {
            r.check()?;
        }
        *self.region.lock().unwrap() = region;
        Ok(())
    }

    /// The region of the head file as it is now (what the loop looks at once it has loaded
    /// it); `None` without a head file or a region.
    pub fn head_region(&self) -> Option<Region> {
        let path = self.settings.head.as_ref()?;
        head_file::load(path).ok()?.region
    }

    /// The head file this writes, if any.
    pub fn head(&self) -> Option<&Path> {
        self.settings.head.as_deref()
    }

    /// The label folders of the dataset and their picture counts, by name.
    pub fn labels(&self) -> Vec<LabelCount> {
        let Ok(entries) = visible_entries(&self.settings.data) else {
            return Vec::new();
        };
        entries
            .into_iter()
            .filter(|p| p.is_dir())
            .map(|p| LabelCount {
                label: p.file_name().unwrap_or_default().to_string_lossy().into(),
                samples: pictures_in(&p),
            })
            .collect()
    }

    /// Pictures in one label's folder (0 when it does not exist).
    pub fn samples(&self, label: &str) -> usize {
        pictures_in(&self.settings.data.join(label))
    }

    /// Saves the next `count` frames of `frames` as samples of `label`, `interval` apart.
    /// Returns the file names written.
    pub async fn capture(
        &self,
        frames: &mut watch::Receiver<Option<Arc<RawFrame>>>,
        label: &str,
        count: usize,
        interval: Duration,
    ) -> Result<Vec<String>, TeachError> {
        let data = self.settings.data.clone();
        let owned = label.to_string();
        let dir = tokio::task::spawn_blocking(move || label_dir(&data, &owned))
            .await
            .expect("label_dir does not panic")?;
        let mut saved = Vec::new();
        for n in 0..count {
            if n > 0 {
                tokio::time::sleep(interval).await;
            }
            let frame = tokio::time::timeout(FRAME_WAIT, super::next_latest(frames))
                .await
                .ok()
                .flatten()
                .ok_or(TeachError::NoFrame(FRAME_WAIT))?;
            let dir = dir.clone();
            let path = tokio::task::spawn_blocking(move || save_sample(&dir, &frame, n as u64))
                .await
                .expect("save_sample does not panic")?;
            saved.push(
                path.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into(),
            );
        }
        Ok(saved)
    }

    pub fn status(&self) -> TrainStatus {
        self.status.lock().unwrap().clone()
    }

    /// Starts training on a thread of its own; refused while one runs.
    pub fn start_training(self: &Arc<Self>) -> Result<(), TeachError> {
        self.start_with(Teach::train_into)
    }

    /// Runs `train` on a thread of its own with the status kept: `running`, then `done` or
    /// `failed` with the reason, also when `train` panics.
    fn start_with(
        self: &Arc<Self>,
        train: impl FnOnce(&Teach, &Path) -> Result<Trained, String> + Send + 'static,
    ) -> Result<(), TeachError> {
        let head = self.settings.head.clone().ok_or(TeachError::NoHeadFile)?;
        {
            let mut status = self.status.lock().unwrap();
            if status.state == "running" {
                return Err(TeachError::Busy);
            }
            *status = TrainStatus {
                state: "running",
                samples: self.labels(),
                head: Some(head.clone()),
                ..TrainStatus::default()
            };
        }
        let me = self.clone();
        std::thread::Builder::new()
            .name("edge-tl-train".into())
            .spawn(move || {
                let t = Instant::now();
                // A panic in training must not leave the status `running` for good (every
                // later request would be refused as busy): it ends as `failed`, with its text.
                let outcome =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| train(&me, &head)))
                        .unwrap_or_else(|panic| {
                            Err(format!("training panicked: {}", panic_text(&panic)))
                        });
                let mut status = me.status.lock().unwrap();
                status.seconds = Some(t.elapsed().as_secs_f64());
                match outcome {
                    Ok(trained) => {
                        log::warn!("{}: trained from the page", head.display());
                        status.state = "done";
                        status.cv_accuracy = trained.cv_accuracy;
                        status.skipped = trained.skipped;
                        status.imbalance = trained.imbalance;
                        status.region = trained.region;
                        status.enough = verdict(&trained.learning_curve);
                        status.learning_curve = trained.learning_curve;
                        if let Some(r) = trained.report {
                            status.per_class = r.per_class;
                            status.confusion = r.confusion;
                            status.mistakes = r.mistakes;
                        }
                    }
                    Err(e) => {
                        log::error!("training from the page failed: {e}");
                        status.state = "failed";
                        status.error = Some(e);
                    }
                }
            })
            .expect("spawning a thread");
        Ok(())
    }

    /// Embeds the dataset (through its cache; one thread, leaving the rest to inference),
    /// trains with cross-validation, and writes the head atomically.
    fn train_into(&self, head_path: &Path) -> Result<Trained, String> {
        let s = &self.settings;
        let dataset = Dataset::open(&s.data).map_err(|e| chain(&e))?;
        let extractor = Extractor::load(&s.model, Outputs::Embedding).map_err(|e| chain(&e))?;
        let options = EmbedOptions {
            jobs: 1,
            region: self.region(),
            ..EmbedOptions::default()
        };
        let trained = train_folder(
            &dataset,
            &extractor,
            &options,
            &TrainParams::default(),
            &crate::progress::Silent,
        )
        .map_err(|e| chain(&e))?;
        let skipped = trained
            .set
            .skipped
            .iter()
            .map(|(_, e)| format!("{}: {}", e.path().display(), e.reason()))
            .collect();
        let head = trained.head;
        head_file::save(&head, head_path).map_err(|e| chain(&e))?;
        Ok(Trained {
            cv_accuracy: head.training.cv_accuracy,
            skipped,
            report: trained.cv,
            imbalance: trained.imbalance,
            region: head.region,
            learning_curve: head.training.learning_curve.clone().unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::manifest::Manifest;

    fn teach(data: &Path) -> Arc<Teach> {
        let manifest = Manifest::builtin().remove(0);
        Arc::new(Teach::new(TeachSettings {
            data: data.to_path_buf(),
            head: Some(data.join("new.head")),
            model: ResolvedModel {
                manifest,
                path: data.join("missing.onnx"),
                sha256: String::new(),
                labels: None,
                kernels: Default::default(),
            },
            review: None,
            region: None,
        }))
    }

    fn finished(t: &Teach) -> TrainStatus {
        for _ in 0..500 {
            let s = t.status();
            if s.state != "running" {
                return s;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("the training never finished");
    }

    #[test]
    fn a_training_that_fails_or_panics_ends_as_failed_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let t = teach(dir.path());
        t.start_training().unwrap();
        let s = finished(&t);
        assert_eq!(s.state, "failed");
        assert!(
            s.error.unwrap().contains("no label folders"),
            "{:?}",
            t.status()
        );
        t.start_with(|_, _| panic!("boom")).unwrap();
        let s = finished(&t);
        assert_eq!(s.state, "failed");
        assert_eq!(s.error.as_deref(), Some("training panicked: boom"));
        // Not stuck as busy: the next request is taken.
        t.start_with(|_, _| {
            Ok(Trained {
                cv_accuracy: Some(1.0),
                skipped: Vec::new(),
                report: None,
                imbalance: None,
                region: None,
                learning_curve: Vec::new(),
            })
        })
        .unwrap();
        assert_eq!(finished(&t).state, "done");
    }
}

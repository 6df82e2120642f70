//! edge-tl: transfer learning on small devices.
//!
//! The modules follow the data: a [`frame`] is decoded and shaped by [`preprocess`], the
//! [`model`] extractor turns it into an embedding, a [`head`] trained on a [`dataset`] turns
//! embeddings into label probabilities, and [`predict`] / [`metrics`] make answers and numbers
//! of those. [`pipeline`] strings the steps together for one picture. For the camera, a
//! [`source`] delivers frames, [`live`] runs them through the pipeline in real time and a
//! [`sink`] publishes the results; the [`service`] serves them over HTTP and takes new
//! samples and training requests from its page.

pub mod atomic_file;
pub mod dataset;
pub mod error;
#[cfg(feature = "grad")]
pub mod explain;
pub mod feature_grid;
#[cfg(feature = "grad")]
pub mod finetune;
pub mod folder;
pub mod frame;
#[cfg(feature = "grad")]
pub mod grad;
pub mod head;
pub mod live;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod predict;
pub mod prediction;
pub mod preprocess;
pub mod progress;
pub mod region;
pub mod report;
pub mod review;
#[cfg(feature = "service")]
pub mod service;
pub mod settings;
pub mod sink;
pub mod source;

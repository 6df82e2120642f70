//! End-to-end tests on the real models and photos in `$EDGE_TL_SHARED` (default `../shared`):
//! one integration test binary (link time on 2 cores), one module per area.

mod accuracy;
mod capture;
mod cli;
mod common;
mod decode;
mod errors;
mod features;
#[cfg(feature = "grad")]
mod finetune;
mod fuzz;
#[cfg(feature = "grad")]
mod grad;
mod hardening_files;
#[cfg(feature = "service")]
mod hardening_http;
mod hardening_sources;
mod harness;
mod import;
mod kernels;
mod live;
#[cfg(feature = "service")]
mod mqtt;
mod pull;
mod region;
#[cfg(feature = "service")]
mod review;
#[cfg(all(feature = "rtsp", feature = "service"))]
mod rtsp;
#[cfg(feature = "service")]
mod service;
mod settings;

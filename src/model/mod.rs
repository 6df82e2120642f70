//! Backbones: their descriptions ([`manifest`]), where their files are ([`store`]), running
//! them ([`extractor`]) and looking inside them ([`layers`]); the only modules that use tract.

mod depthwise_avx;
pub mod extractor;
pub mod fast_conv;
pub mod import;
pub mod input;
pub mod kernels;
pub mod layers;
pub mod manifest;
pub mod pull;
pub mod store;
pub mod threads;

pub use extractor::{Extractor, Features, Outputs};
pub use kernels::{cpu_vector_flags, Isa, Kernels};
pub use manifest::Manifest;
pub use store::{ModelDirs, ResolvedModel};
pub use threads::Threads;

//! Backbones: their descriptions ([`manifest`]), where their files are ([`store`]) and running
//! them ([`extractor`], the only module that uses tract).

pub mod extractor;
pub mod manifest;
pub mod store;

pub use extractor::{Extractor, Features, Outputs};
pub use manifest::Manifest;
pub use store::ResolvedModel;

//! What the network sees and how easily it is fooled, on the backbone the device runs:
//! an "ideal" picture of a class optimised from noise ([`dream`]) and pictures nudged into
//! another class within a small pixel budget ([`attack`]). Both differentiate the float model
//! in the gradient engine ([`crate::grad`]); [`transfer`] checks the result in tract on the
//! int8 model. (Feature maps need no gradients: [`crate::feature_grid`].)

pub mod attack;
pub mod dream;
pub mod scorer;
pub mod target;
pub mod transfer;

pub use scorer::Scorer;
pub use target::find_label;

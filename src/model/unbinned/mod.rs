//! Unbinned (per-event) likelihoods: HS3 distributions compiled into channels of
//! one-dimensional densities with closed-form normalisation, evaluated with exact
//! gradients and Hessians in one pass over contiguous event columns.
//!
//! See docs/unbinned.md for the conventions (twice_nll, constants, Asimov data,
//! weighted fits).

pub mod asimov;
pub mod atoms;
mod cb;
pub mod channel;
pub mod constraint;
pub mod dual;
pub mod hs3;
pub mod kernel;
mod lanes;
mod pairs;
pub mod part;
pub mod parts;
pub mod sample;
pub mod shapes;
pub mod slots;
pub mod vmath;
pub mod weighted;

#[cfg(test)]
mod tests;

pub use channel::{Axis, Channel, Extension, Leaf};
pub use constraint::{ConstraintKind, ConstraintPart, ConstraintTerm};
pub use hs3::{Hs3Model, Hs3Part, is_hs3, read_hs3};
pub use part::{Events, UnbinnedPart};
pub use parts::load_hs3;
pub use shapes::{Hist, Shape};

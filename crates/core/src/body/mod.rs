//! Request and response bodies: the bounded streaming ring, its global budget, and the limited
//! request body.

pub mod budget;
pub mod incoming;
mod queue;
pub mod ring;
pub mod segments;

//! Request and response bodies: the bounded streaming ring and the limited request body.

pub mod incoming;
pub mod ring;

//! A Kubernetes operator for the spiffile profile.
#![forbid(unsafe_code)]

pub mod crd;
pub mod duration;
pub mod names;
pub mod secrets;
pub mod status;
pub mod world;

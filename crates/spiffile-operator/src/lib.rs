//! A Kubernetes operator for the spiffile profile, interchangeable with the
//! upstream Go operator: the same `spiffile.io/v1alpha1` CRDs, objects and
//! annotations.
//!
//! * [`crd`]: `ServiceIdentity` and `ServiceIdentityClaim`;
//! * [`world`]: the pure computation of every bundle and object state;
//! * [`identity`], [`claim`]: the two reconcilers;
//! * [`bundles`]: the coalescing bundle writer;
//! * [`webhook`], [`tls`]: pod injection over hot-reloaded TLS;
//! * [`leader`], [`http`], [`metrics`], [`run`]: operations;
//! * [`extract`]: a trust domain's material from the cluster into a
//!   provisioning root (`spiffile k8s extract`).
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]

pub mod bundles;
pub mod claim;
pub mod config;
pub mod context;
pub mod crd;
pub mod duration;
pub mod error;
pub mod extract;
pub mod http;
pub mod identity;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod run;
pub mod secrets;
pub mod status;
pub mod tls;
pub mod webhook;
pub mod world;

//! SPIRE: its start-up and (feature `spire`) the test handle.

pub mod deploy;
#[cfg(feature = "spire")]
mod handle;
#[cfg(feature = "spire")]
pub use handle::{
    HelperFiles, HelperProcess, JwtAuthority, Registration, Spire, Workload, X509Files,
};

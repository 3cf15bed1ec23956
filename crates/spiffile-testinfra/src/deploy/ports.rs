//! Free TCP ports on 127.0.0.1.
//!
//! Several clones on one machine run their own deployments at once, so no
//! port is fixed: each is asked of the kernel (bind to port 0) and released
//! just before the server binds it. Another process could take it in
//! between; start-up therefore retries with fresh ports when a server's log
//! says its address is in use ([`address_in_use`]).

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;

use crate::error::{Result, io};

/// `n` distinct free ports on 127.0.0.1.
pub fn free_ports(n: usize) -> Result<Vec<u16>> {
    // Hold every listener until all are chosen so the kernel cannot hand
    // out the same port twice.
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<std::io::Result<Vec<_>>>()
        .map_err(io("127.0.0.1:0"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()).map_err(io("127.0.0.1:0")))
        .collect()
}

/// Whether a server's log says it could not bind its address.
pub fn address_in_use(log: &Path) -> bool {
    std::fs::read_to_string(log)
        .map(|t| t.contains("address already in use"))
        .unwrap_or(false)
}

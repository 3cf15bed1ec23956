//! orders and billing over real HTTP (work in progress).
#![forbid(unsafe_code)]

fn main() {}

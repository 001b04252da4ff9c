//! End-to-end tests of the `ctd-decoder` binary, run exactly as containerd runs it, on layers
//! encrypted by Debian's skopeo (Go ocicrypt).

#[path = "../support/mod.rs"]
mod support;

mod battery;
mod cli;
mod failures;
mod hygiene;
mod interop;
mod keys_dir;
mod pgp;
mod pkcs7;
mod store;

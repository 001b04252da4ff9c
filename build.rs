//! Link options for the `ctd-decoder` binary.
//!
//! On glibc Linux the binary is linked with `-z pack-relative-relocs` (DT_RELR). A
//! position-independent executable carries one 24-byte relocation record per absolute pointer in
//! its data (vtables, OpenSSL's method and object tables): about 33,000 records, 770 KiB that
//! start-up applied one by one. RELR packs the relative ones into a bitmap of about 10 KiB, so
//! each decoder process maps 0.75 MiB less and starts sooner, with ASLR kept.
//!
//! The code that applies RELR at start-up is glibc's: the dynamic loader for a dynamic binary,
//! the linked-in start code for the static-pie the packaging builds. Both know RELR from glibc
//! 2.36 on, so the option is only passed when the build machine's glibc is 2.36 or newer (and the
//! build is not a cross-build, whose target glibc this script cannot see). A dynamic binary built
//! that way also records a need for `GLIBC_ABI_DT_RELR`, so an older glibc on a node refuses it
//! with a loader error instead of running it wrongly.
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let linux_gnu = var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu";
    if !linux_gnu || var("TARGET") != var("HOST") {
        return;
    }
    match host_glibc() {
        Some(version) if version >= (2, 36) => {
            println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
        }
        found => println!(
            "cargo:warning=glibc {} on this machine: linking without -z pack-relative-relocs \
             (needs 2.36+); the decoder works, it only starts a little slower",
            found.map_or("of unknown version".to_string(), |(a, b)| format!(
                "{a}.{b}"
            ))
        ),
    }
}

/// The build machine's glibc version, from `getconf GNU_LIBC_VERSION` ("glibc 2.36").
fn host_glibc() -> Option<(u32, u32)> {
    let out = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let (major, minor) = text.trim().strip_prefix("glibc ")?.split_once('.')?;
    let minor = minor.split(|c: char| !c.is_ascii_digit()).next()?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

//! Link options for the `ctd-decoder` binary.
//!
//! On glibc Linux the binary is linked with `-z pack-relative-relocs` (DT_RELR). A
//! position-independent executable carries one 24-byte relocation record per absolute pointer in
//! its data (vtables, OpenSSL's method and object tables): about 33,000 records, 770 KiB that the
//! dynamic loader reads at every start. RELR packs the relative ones into a bitmap of a few KiB,
//! so each decoder process maps 0.75 MiB less and starts faster, with ASLR kept. GNU ld (2.38+)
//! and lld only emit it when glibc supports it (2.36+, `GLIBC_ABI_DT_RELR`); an older linker
//! ignores the option with a warning.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

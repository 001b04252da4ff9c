//! The command line, as containerd's `[stream_processors]` `args` pass it.
//!
//! imgcrypt's decoder uses Go's flag syntax, where `-flag` and `--flag` are the same and values
//! follow as `-flag v` or `-flag=v`. [`normalize`] rewrites single-dash long flags so that any
//! `args` list written for imgcrypt works unchanged.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

/// Decrypts an ocicrypt-encrypted OCI image layer: the encrypted blob on stdin, the original blob
/// on stdout, the layer descriptor and client keys on fd 3 (as containerd passes them).
#[derive(Debug, Parser)]
#[command(name = "ctd-decoder", version, about, long_about = None)]
pub struct Cli {
    /// Directory (or file) of private keys, certificates and OpenPGP keyrings; repeatable.
    /// Symlinks are followed (Kubernetes Secret volumes work as mounted).
    #[arg(long = "decryption-keys-path", value_name = "DIR")]
    pub decryption_keys_path: Vec<PathBuf>,

    /// containerd's content store, searched for the layer's descriptor when containerd passes
    /// none on fd 3 (`ctr` pulls, zstd layers, containerd 2.x transfer service).
    #[arg(long = "content-store", value_name = "DIR", default_value = ctd_store_default())]
    pub content_store: PathBuf,

    /// Release no byte of plaintext before the layer's MAC has verified: spool the ciphertext
    /// to an unlinked private file first (costs a second pass and disk space for the layer).
    #[arg(long = "verify-before-release")]
    pub verify_before_release: bool,

    /// Directory for the --verify-before-release spool file.
    #[arg(long = "spool-dir", value_name = "DIR", default_value = DEFAULT_SPOOL_DIR)]
    pub spool_dir: PathBuf,
}

/// Default `--spool-dir`: on disk (unlike a tmpfs `/tmp`), since a layer can be gigabytes.
pub const DEFAULT_SPOOL_DIR: &str = "/var/tmp";

const fn ctd_store_default() -> &'static str {
    crate::store::DEFAULT_CONTENT_STORE
}

/// Long option names that Go's flag package also accepts with one dash.
const LONG_FLAGS: &[&str] = &[
    "decryption-keys-path",
    "content-store",
    "verify-before-release",
    "spool-dir",
];

/// Turns `-decryption-keys-path[=v]` into `--decryption-keys-path[=v]`.
pub fn normalize(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    args.into_iter()
        .map(|arg| {
            let Some(text) = arg.to_str() else { return arg };
            if let Some(rest) = text.strip_prefix('-') {
                if !rest.starts_with('-') {
                    let name = rest.split('=').next().unwrap_or("");
                    if LONG_FLAGS.contains(&name) {
                        return OsString::from(format!("-{text}"));
                    }
                }
            }
            arg
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let args = normalize(args.iter().map(OsString::from));
        Cli::try_parse_from(args).unwrap()
    }

    #[test]
    fn accepts_go_flag_spellings() {
        for args in [
            &["ctd-decoder", "--decryption-keys-path", "/k"][..],
            &["ctd-decoder", "-decryption-keys-path", "/k"],
            &["ctd-decoder", "--decryption-keys-path=/k"],
            &["ctd-decoder", "-decryption-keys-path=/k"],
        ] {
            assert_eq!(
                parse(args).decryption_keys_path,
                vec![PathBuf::from("/k")],
                "{args:?}"
            );
        }
        let cli = parse(&[
            "ctd-decoder",
            "--decryption-keys-path",
            "/a",
            "-decryption-keys-path",
            "/b",
        ]);
        assert_eq!(cli.decryption_keys_path.len(), 2);
        assert!(parse(&["ctd-decoder"]).decryption_keys_path.is_empty());
    }

    #[test]
    fn rejects_unknown_arguments() {
        assert!(Cli::try_parse_from(["ctd-decoder", "--bogus"]).is_err());
        assert!(Cli::try_parse_from(["ctd-decoder", "positional"]).is_err());
    }
}

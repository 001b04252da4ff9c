//! Encrypted layer media types and what each decrypts to (protocol.md §3.1).
//!
//! The decoder never decompresses: it returns the original blob, so the output media type is
//! the input type without `+encrypted`, and containerd's own decompressor runs next.

/// Suffix that every ocicrypt-encrypted layer media type carries.
pub const ENCRYPTED_SUFFIX: &str = "+encrypted";

/// Every encrypted layer media type this decoder accepts, in the order the packaging lists them.
pub const ENCRYPTED_MEDIA_TYPES: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar+encrypted",
    "application/vnd.oci.image.layer.v1.tar+gzip+encrypted",
    "application/vnd.oci.image.layer.v1.tar+zstd+encrypted",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+encrypted",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip+encrypted",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd+encrypted",
    "application/vnd.docker.image.rootfs.diff.tar.gzip+encrypted",
    "application/vnd.wasm.content.layer.v1+wasm+encrypted",
];

/// Whether `media_type` is one of [`ENCRYPTED_MEDIA_TYPES`].
pub fn is_supported(media_type: &str) -> bool {
    ENCRYPTED_MEDIA_TYPES.contains(&media_type)
}

/// The media type of the decrypted blob: `media_type` without its `+encrypted` suffix.
pub fn decrypted(media_type: &str) -> Option<&str> {
    media_type.strip_suffix(ENCRYPTED_SUFFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_type_has_a_plain_form() {
        for mt in ENCRYPTED_MEDIA_TYPES {
            let plain = decrypted(mt).unwrap();
            assert!(!plain.contains("encrypted"), "{plain}");
            assert!(is_supported(mt));
        }
        assert_eq!(
            decrypted("application/vnd.oci.image.layer.v1.tar+gzip+encrypted"),
            Some("application/vnd.oci.image.layer.v1.tar+gzip")
        );
        assert!(!is_supported("application/vnd.oci.image.layer.v1.tar+gzip"));
        assert!(!is_supported(
            "application/vnd.oci.image.layer.v1.tar+bzip2+encrypted"
        ));
    }
}

//! containerd's diff service, `containerd.services.diff.v1.Diff/Apply`: the call containerd's
//! clients make to extract a layer blob from the content store into a snapshot's mounts, through
//! the configured stream processors. ctr's unpack (`rootfs.ApplyLayer`) makes it with no
//! payloads; the CRI plugin's unpacker adds the fd-3 payload in `payloads`.
//!
//! The messages are written by hand with the field numbers of containerd 1.6's
//! `api/services/diff/v1/diff.proto`, `api/types/descriptor.proto` and `api/types/mount.proto`.

use std::collections::HashMap;
use std::path::Path;

use super::containerd::NAMESPACE;
use super::grpc::UnixGrpc;

/// `containerd.types.Descriptor`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Descriptor {
    #[prost(string, tag = "1")]
    pub media_type: String,
    #[prost(string, tag = "2")]
    pub digest: String,
    #[prost(int64, tag = "3")]
    pub size: i64,
    #[prost(map = "string, string", tag = "5")]
    pub annotations: HashMap<String, String>,
}

/// `containerd.types.Mount`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Mount {
    #[prost(string, tag = "1")]
    pub r#type: String,
    #[prost(string, tag = "2")]
    pub source: String,
    #[prost(string, tag = "3")]
    pub target: String,
    #[prost(string, repeated, tag = "4")]
    pub options: Vec<String>,
}

/// `google.protobuf.Any`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Any {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

/// `ApplyRequest`: the layer blob, where to extract it, and the payloads by processor ID.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ApplyRequest {
    #[prost(message, optional, tag = "1")]
    pub diff: Option<Descriptor>,
    #[prost(message, repeated, tag = "2")]
    pub mounts: Vec<Mount>,
    #[prost(map = "string, message", tag = "3")]
    pub payloads: HashMap<String, Any>,
}

/// `ApplyResponse`: the descriptor of the uncompressed tar that was extracted.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ApplyResponse {
    #[prost(message, optional, tag = "1")]
    pub applied: Option<Descriptor>,
}

/// A diff-service client in the `k8s.io` namespace.
pub struct Diff {
    grpc: UnixGrpc,
}

impl Diff {
    pub fn connect(socket: &Path) -> Diff {
        Diff {
            grpc: UnixGrpc::connect(socket),
        }
    }

    /// `Apply`: returns the digest of the uncompressed tar containerd extracted.
    pub fn apply(
        &self,
        diff: Descriptor,
        mounts: Vec<Mount>,
        payloads: HashMap<String, Any>,
    ) -> Result<String, tonic::Status> {
        let response: ApplyResponse = self.grpc.call(
            "/containerd.services.diff.v1.Diff/Apply",
            ApplyRequest {
                diff: Some(diff),
                mounts,
                payloads,
            },
            Some(NAMESPACE),
        )?;
        Ok(response.applied.map(|d| d.digest).unwrap_or_default())
    }
}

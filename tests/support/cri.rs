//! A minimal Kubernetes CRI client: the four `runtime.v1.ImageService` calls the end-to-end
//! suite makes, over containerd's unix socket, the way the kubelet makes them.
//!
//! Debian has no `crictl`, so the messages are written by hand: only the fields used here, with
//! the names and field numbers of `k8s.io/cri-api/pkg/apis/runtime/v1/api.proto` (protobuf
//! ignores the fields a message leaves out, in both directions).

use std::collections::HashMap;
use std::path::Path;

use super::grpc::UnixGrpc;

/// `ImageSpec`: the image reference.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ImageSpec {
    #[prost(string, tag = "1")]
    pub image: String,
    #[prost(map = "string, string", tag = "2")]
    pub annotations: HashMap<String, String>,
}

/// `PullImageRequest` without `auth` (2) and `sandbox_config` (3): the registry is anonymous.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PullImageRequest {
    #[prost(message, optional, tag = "1")]
    pub image: Option<ImageSpec>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PullImageResponse {
    #[prost(string, tag = "1")]
    pub image_ref: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ImageStatusRequest {
    #[prost(message, optional, tag = "1")]
    pub image: Option<ImageSpec>,
    #[prost(bool, tag = "2")]
    pub verbose: bool,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ImageStatusResponse {
    #[prost(message, optional, tag = "1")]
    pub image: Option<Image>,
    #[prost(map = "string, string", tag = "2")]
    pub info: HashMap<String, String>,
}

/// `Image`, first four fields.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Image {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, repeated, tag = "2")]
    pub repo_tags: Vec<String>,
    #[prost(string, repeated, tag = "3")]
    pub repo_digests: Vec<String>,
    #[prost(uint64, tag = "4")]
    pub size: u64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ImageFilter {
    #[prost(message, optional, tag = "1")]
    pub image: Option<ImageSpec>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListImagesRequest {
    #[prost(message, optional, tag = "1")]
    pub filter: Option<ImageFilter>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListImagesResponse {
    #[prost(message, repeated, tag = "1")]
    pub images: Vec<Image>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RemoveImageRequest {
    #[prost(message, optional, tag = "1")]
    pub image: Option<ImageSpec>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct RemoveImageResponse {}

const SERVICE: &str = "/runtime.v1.ImageService/";

/// A blocking CRI image-service client on a unix socket.
pub struct Cri {
    grpc: UnixGrpc,
}

impl Cri {
    /// Connects to `socket` (the connection itself is made on the first call).
    pub fn connect(socket: &Path) -> Cri {
        Cri {
            grpc: UnixGrpc::connect(socket),
        }
    }

    fn call<Req, Resp>(&self, method: &'static str, request: Req) -> Result<Resp, tonic::Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        self.grpc.call(&format!("{SERVICE}{method}"), request, None)
    }

    fn spec(image: &str) -> Option<ImageSpec> {
        Some(ImageSpec {
            image: image.to_string(),
            annotations: HashMap::new(),
        })
    }

    /// `PullImage`: returns the image reference containerd reports (the image ID).
    pub fn pull_image(&self, image: &str) -> Result<String, tonic::Status> {
        let resp: PullImageResponse = self.call(
            "PullImage",
            PullImageRequest {
                image: Self::spec(image),
            },
        )?;
        Ok(resp.image_ref)
    }

    /// `ImageStatus`: `None` if the runtime does not have the image.
    pub fn image_status(&self, image: &str) -> Result<Option<Image>, tonic::Status> {
        let resp: ImageStatusResponse = self.call(
            "ImageStatus",
            ImageStatusRequest {
                image: Self::spec(image),
                verbose: false,
            },
        )?;
        Ok(resp.image)
    }

    /// `ListImages` without a filter.
    pub fn list_images(&self) -> Result<Vec<Image>, tonic::Status> {
        let resp: ListImagesResponse =
            self.call("ListImages", ListImagesRequest { filter: None })?;
        Ok(resp.images)
    }

    /// `RemoveImage`.
    pub fn remove_image(&self, image: &str) -> Result<(), tonic::Status> {
        let _: RemoveImageResponse = self.call(
            "RemoveImage",
            RemoveImageRequest {
                image: Self::spec(image),
            },
        )?;
        Ok(())
    }
}

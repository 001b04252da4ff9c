//! A blocking gRPC client on containerd's unix socket, for the hand-written prost messages of the
//! CRI client (`cri`) and of containerd's diff service (`diff`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic_prost::ProstCodec;

/// How long one call may take (a pull of the test images takes about a second).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// containerd's namespace header.
const NAMESPACE_HEADER: &str = "containerd-namespace";

pub struct UnixGrpc {
    runtime: tokio::runtime::Runtime,
    channel: Channel,
}

impl UnixGrpc {
    /// Connects to `socket` (the connection itself is made on the first call).
    pub fn connect(socket: &Path) -> UnixGrpc {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        let socket: PathBuf = socket.to_path_buf();
        // The URI is required by the API but unused: every connection goes to the socket.
        let channel = runtime.block_on(async {
            Endpoint::from_static("http://localhost")
                .connect_timeout(Duration::from_secs(5))
                .timeout(CALL_TIMEOUT)
                .connect_with_connector_lazy(tower::service_fn(move |_: Uri| {
                    let socket = socket.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(socket).await?;
                        Ok::<_, std::io::Error>(TokioIo::new(stream))
                    }
                }))
        });
        UnixGrpc { runtime, channel }
    }

    /// One unary call of `path` (`/<package>.<Service>/<Method>`), in containerd `namespace` if
    /// given.
    pub fn call<Req, Resp>(
        &self,
        path: &str,
        request: Req,
        namespace: Option<&str>,
    ) -> Result<Resp, tonic::Status>
    where
        Req: prost::Message + Send + Sync + 'static,
        Resp: prost::Message + Default + Send + Sync + 'static,
    {
        let path = PathAndQuery::try_from(path.to_string()).expect("method path");
        self.runtime.block_on(async {
            let mut grpc = tonic::client::Grpc::new(self.channel.clone());
            grpc.ready()
                .await
                .map_err(|e| tonic::Status::unavailable(format!("gRPC connection: {e}")))?;
            let mut request = tonic::Request::new(request);
            request.set_timeout(CALL_TIMEOUT);
            if let Some(ns) = namespace {
                let value: MetadataValue<_> = ns.parse().expect("namespace header value");
                request.metadata_mut().insert(NAMESPACE_HEADER, value);
            }
            grpc.unary(request, path, ProstCodec::<Req, Resp>::default())
                .await
                .map(tonic::Response::into_inner)
        })
    }
}

//! A private Docker registry (Debian's `docker-registry`, distribution v2) on 127.0.0.1, with
//! its storage in a test directory.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use super::process::Daemon;

pub struct Registry {
    daemon: Daemon,
    host: String,
}

impl Registry {
    /// Starts a registry listening on a free loopback port, storing blobs under `dir`, and waits
    /// until it answers `GET /v2/`.
    pub fn start(dir: &Path) -> Registry {
        let program = super::require_tool("docker-registry", "docker-registry");
        std::fs::create_dir_all(dir).unwrap();
        let host = format!("127.0.0.1:{}", free_port());
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\n\
                 log:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: {host}\n",
                dir.join("data").display()
            ),
        )
        .unwrap();
        let mut daemon = Daemon::spawn(
            "docker-registry",
            &program,
            &["serve".into(), config.display().to_string()],
            &dir.join("registry.log"),
        );
        daemon.wait_ready("GET /v2/", Duration::from_secs(30), || {
            http_status(&host, "/v2/") == Some(200)
        });
        Registry { daemon, host }
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.daemon.log_tail(lines)
    }

    pub fn stop(&mut self) {
        self.daemon.stop();
    }

    /// Uploads `bytes` as a blob of `repository` (distribution's two-step upload: POST for an
    /// upload location, then one PUT of the whole blob with its digest); returns the digest.
    pub fn upload_blob(&self, repository: &str, bytes: &[u8]) -> String {
        let digest = super::oci::sha256(bytes);
        let started = http(
            &self.host,
            "POST",
            &format!("/v2/{repository}/blobs/uploads/"),
            &[],
            &[],
        );
        assert_eq!(started.status, 202, "start blob upload: {started:?}");
        let location = started.header("location").expect("upload Location");
        // The Location is absolute (http://127.0.0.1:<port>/v2/...?_state=...).
        let path = location
            .strip_prefix(&format!("http://{}", self.host))
            .unwrap_or(location);
        let separator = if path.contains('?') { '&' } else { '?' };
        let done = http(
            &self.host,
            "PUT",
            &format!("{path}{separator}digest={digest}"),
            &[("Content-Type", "application/octet-stream")],
            bytes,
        );
        assert_eq!(done.status, 201, "finish blob upload: {done:?}");
        assert_eq!(done.header("docker-content-digest"), Some(digest.as_str()));
        digest
    }

    /// PUTs `manifest` as `repository:tag` with `media_type` as its Content-Type; returns the
    /// digest the registry reports.
    pub fn put_manifest(
        &self,
        repository: &str,
        tag: &str,
        media_type: &str,
        manifest: &[u8],
    ) -> String {
        let response = http(
            &self.host,
            "PUT",
            &format!("/v2/{repository}/manifests/{tag}"),
            &[("Content-Type", media_type)],
            manifest,
        );
        assert_eq!(response.status, 201, "PUT manifest: {response:?}");
        response
            .header("docker-content-digest")
            .expect("Docker-Content-Digest")
            .to_string()
    }
}

/// An HTTP response: status, headers (names lowercased) and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request to `host` on a fresh connection (`Connection: close`, read to EOF).
pub fn http(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut s = TcpStream::connect(host).unwrap_or_else(|e| panic!("connect {host}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{method} {path}: no HTTP status in {head:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_string(),
    }
}

/// A loopback TCP port that was free a moment ago (the OS picks it; the listener is closed so the
/// daemon can bind it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// The status code of `GET http://<host><path>`, or `None` if nothing answered.
pub fn http_status(host: &str, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&host.parse().ok()?, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut head = [0u8; 64];
    let n = s.read(&mut head).ok()?;
    let line = std::str::from_utf8(&head[..n]).ok()?;
    line.split_whitespace().nth(1)?.parse().ok()
}

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

//! Child processes the end-to-end suite starts and must stop: long-running daemons (containerd,
//! the registry) owned by a guard that stops them by PID, and one-shot commands with a deadline.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// How long a daemon gets to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A daemon started by this process and stopped (by its PID) when the guard is dropped, which
/// also happens while a failing test unwinds.
///
/// It is started under `setpriv --pdeathsig KILL`, so even if this process dies without
/// unwinding (SIGKILL, a harness timeout), the kernel kills the daemon when the thread that
/// started it ends. Drop the guard on the thread that created it.
pub struct Daemon {
    name: String,
    child: Child,
    log: PathBuf,
    stopped: Option<ExitStatus>,
}

impl Daemon {
    /// Starts `program args...` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, program: &Path, args: &[String], log: &Path) -> Daemon {
        let out = File::create(log).expect("create daemon log");
        let err = out.try_clone().expect("dup daemon log");
        let mut cmd = Command::new(super::require_tool("setpriv", "util-linux"));
        cmd.arg("--pdeathsig").arg("KILL").arg("--").arg(program);
        cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({}): {e}", program.display()));
        Daemon {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
            stopped: None,
        }
    }

    /// The daemon's PID (setpriv execs it, so it is the PID we spawned).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the daemon's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let mut text = String::new();
        if let Ok(mut f) = File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Panics with the log tail if the daemon has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().expect("wait") {
            self.stopped = Some(status);
            panic!(
                "{} (pid {}) exited with {status}; last log lines:\n{}",
                self.name,
                self.pid(),
                self.log_tail(30)
            );
        }
    }

    /// Polls `ready` every 50 ms until it returns true, the daemon exits, or `timeout` passes.
    pub fn wait_ready(&mut self, what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
        let start = Instant::now();
        loop {
            self.assert_running();
            if ready() {
                return;
            }
            if start.elapsed() > timeout {
                panic!(
                    "{} (pid {}) not ready ({what}) after {timeout:?}; last log lines:\n{}",
                    self.name,
                    self.pid(),
                    self.log_tail(30)
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then SIGKILL after a grace period; reaps the process. Idempotent.
    pub fn stop(&mut self) -> ExitStatus {
        if let Some(status) = self.stopped {
            return status;
        }
        let pid = Pid::from_raw(self.child.id() as i32);
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = kill(pid, Signal::SIGTERM);
            let start = Instant::now();
            while self.child.try_wait().ok().flatten().is_none() && start.elapsed() < STOP_GRACE {
                thread::sleep(Duration::from_millis(20));
            }
            if self.child.try_wait().ok().flatten().is_none() {
                eprintln!("{} (pid {pid}) ignored SIGTERM; killing it", self.name);
                let _ = self.child.kill();
            }
        }
        let status = self.child.wait().expect("reap daemon");
        self.stopped = Some(status);
        status
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `cmd` to completion with stdin closed, collecting its output; kills it and panics if it
/// takes longer than `timeout`.
pub fn output_within(cmd: &mut Command, timeout: Duration) -> Output {
    output_with_stdin(cmd, Stdio::null(), timeout)
}

/// [`output_within`] with `stdin` (a file, say) as the command's standard input.
pub fn output_with_stdin(cmd: &mut Command, stdin: Stdio, timeout: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err = thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// Like [`output_within`], and panics unless the command succeeds; returns stdout as text.
pub fn checked(cmd: &mut Command, timeout: Duration) -> String {
    let what = format!("{cmd:?}");
    let out = output_within(cmd, timeout);
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The TCP sockets process `pid` is listening on (from /proc: its socket inodes matched against
/// the LISTEN entries of /proc/net/tcp and tcp6).
pub fn listening_tcp(pid: u32) -> Vec<std::net::SocketAddr> {
    let mut inodes = std::collections::HashSet::new();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                let t = target.to_string_lossy();
                if let Some(inode) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                    inodes.insert(inode.to_string());
                }
            }
        }
    }
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            if cols.len() > 9 && cols[3] == "0A" && inodes.contains(cols[9]) {
                found.push(parse_proc_addr(cols[1]));
            }
        }
    }
    found
}

/// `0100007F:1F90` (IPv4) or 32 hex digits + port (IPv6), as the kernel prints them: each 32-bit
/// word in host byte order.
pub fn parse_proc_addr(s: &str) -> std::net::SocketAddr {
    let (ip, port) = s.split_once(':').expect("address:port");
    let port = u16::from_str_radix(port, 16).expect("port");
    let words: Vec<[u8; 4]> = (0..ip.len() / 8)
        .map(|i| {
            u32::from_str_radix(&ip[i * 8..i * 8 + 8], 16)
                .expect("hex")
                .to_ne_bytes()
        })
        .collect();
    let ip: std::net::IpAddr = match words.len() {
        1 => std::net::Ipv4Addr::from(words[0]).into(),
        4 => {
            let mut b = [0u8; 16];
            for (i, w) in words.iter().enumerate() {
                b[i * 4..i * 4 + 4].copy_from_slice(w);
            }
            std::net::Ipv6Addr::from(b).into()
        }
        _ => panic!("unexpected address {s}"),
    };
    std::net::SocketAddr::new(ip, port)
}

/// PIDs of the live children of `pid`.
pub fn children(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may contain spaces, so split after the last ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let comm = head
            .split_once('(')
            .map(|(_, c)| c)
            .unwrap_or("")
            .to_string();
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() > 1 && fields[0] != "Z" && fields[1] == pid.to_string() {
            out.push((child, comm));
        }
    }
    out
}

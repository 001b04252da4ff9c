//! Runs the `ctd-decoder` binary the way containerd does: argv from the config, the input media
//! type in `STREAM_PROCESSOR_MEDIATYPE`, the blob on stdin, the payload on fd 3 (a pipe that is
//! written and then closed), stdout and stderr collected.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use command_fds::{CommandFdExt, FdMapping};

/// Path of the binary under test.
pub fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CTD_DECODER_BIN") {
        return PathBuf::from(p);
    }
    // Cargo sets this for test targets; the demo example is told with CTD_DECODER_BIN.
    match option_env!("CARGO_BIN_EXE_ctd-decoder") {
        Some(p) => PathBuf::from(p),
        None => panic!("set CTD_DECODER_BIN to the ctd-decoder binary to use"),
    }
}

/// What fd 3 holds.
#[derive(Clone)]
pub enum Fd3 {
    /// fd 3 closed (ctr pulls, transfer service).
    Closed,
    /// A pipe carrying these bytes, then EOF.
    Pipe(Vec<u8>),
    /// /dev/null (an open but empty fd 3).
    DevNull,
}

/// How stdout is consumed.
#[derive(Clone, Copy)]
pub enum Stdout {
    /// Read to the end.
    ReadAll,
    /// Read this many bytes, then close the read end.
    CloseAfter(usize),
}

/// One decoder invocation.
pub struct Decoder {
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    fd3: Fd3,
    stdin: Vec<u8>,
    stdout: Stdout,
    timeout: Duration,
    uid: Option<u32>,
}

/// What the decoder did.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Outcome {
    /// Asserts success and returns stdout.
    pub fn ok(self) -> Vec<u8> {
        assert!(
            self.status.success(),
            "decoder failed: {:?}: {}",
            self.status,
            self.stderr
        );
        self.stdout
    }

    /// Asserts a clean failure (exit 1, no signal, no panic) with exactly one stderr line, and
    /// returns that line.
    pub fn failed(&self) -> &str {
        use std::os::unix::process::ExitStatusExt;
        assert!(
            self.status.signal().is_none(),
            "killed by signal: {:?} stderr: {}",
            self.status,
            self.stderr
        );
        assert!(!self.status.success(), "decoder unexpectedly succeeded");
        assert_eq!(self.status.code(), Some(1), "stderr: {}", self.stderr);
        assert!(
            !self.stderr.contains("panicked") && !self.stderr.contains("internal error"),
            "{}",
            self.stderr
        );
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(
            lines.len(),
            1,
            "expected one stderr line, got: {:?}",
            self.stderr
        );
        assert!(lines[0].starts_with("ctd-decoder: "), "{}", lines[0]);
        lines[0]
    }
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Self {
            args: Vec::new(),
            env: Vec::new(),
            fd3: Fd3::Closed,
            stdin: Vec::new(),
            stdout: Stdout::ReadAll,
            timeout: Duration::from_secs(120),
            uid: None,
        }
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }

    pub fn keys(self, dir: &Path) -> Self {
        self.arg("--decryption-keys-path").arg(dir)
    }

    pub fn media_type(mut self, mt: &str) -> Self {
        self.env
            .push(("STREAM_PROCESSOR_MEDIATYPE".into(), mt.into()));
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn payload(mut self, bytes: Vec<u8>) -> Self {
        self.fd3 = Fd3::Pipe(bytes);
        self
    }

    pub fn fd3(mut self, fd3: Fd3) -> Self {
        self.fd3 = fd3;
        self
    }

    pub fn stdin(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = bytes;
        self
    }

    pub fn stdout(mut self, s: Stdout) -> Self {
        self.stdout = s;
        self
    }

    /// Runs the decoder as this user (and group of the same number), supplementary groups
    /// dropped.
    pub fn run_as_user(mut self, uid: u32) -> Self {
        self.uid = Some(uid);
        self
    }

    pub fn run(self) -> Outcome {
        let mut cmd = Command::new(binary());
        if let Some(uid) = self.uid {
            use std::os::unix::process::CommandExt;
            cmd.uid(uid).gid(uid);
        }
        cmd.args(&self.args)
            .env_remove("STREAM_PROCESSOR_MEDIATYPE")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut payload_writer = None;
        match &self.fd3 {
            Fd3::Closed => {}
            Fd3::Pipe(bytes) => {
                let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
                cmd.fd_mappings(vec![FdMapping {
                    parent_fd: r,
                    child_fd: 3,
                }])
                .expect("fd mapping");
                payload_writer = Some((w, bytes.clone()));
            }
            Fd3::DevNull => {
                let f: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
                cmd.fd_mappings(vec![FdMapping {
                    parent_fd: f,
                    child_fd: 3,
                }])
                .expect("fd mapping");
            }
        }
        let mut child = cmd.spawn().expect("spawn ctd-decoder");
        // Drop our copy of the read end (command-fds keeps it in `cmd`).
        drop(cmd);
        let payload_thread = payload_writer.map(|(w, bytes)| {
            thread::spawn(move || {
                let mut f = std::fs::File::from(w);
                let _ = f.write_all(&bytes);
            })
        });
        let mut stdin = child.stdin.take().unwrap();
        let input = self.stdin;
        let stdin_thread = thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let mut stdout = child.stdout.take().unwrap();
        let mode = self.stdout;
        let stdout_thread = thread::spawn(move || {
            let mut out = Vec::new();
            match mode {
                Stdout::ReadAll => {
                    let _ = stdout.read_to_end(&mut out);
                }
                Stdout::CloseAfter(n) => {
                    let _ = (&mut stdout).take(n as u64).read_to_end(&mut out);
                    drop(stdout);
                }
            }
            out
        });
        let mut stderr = child.stderr.take().unwrap();
        let stderr_thread = thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if start.elapsed() > self.timeout {
                let _ = child.kill();
                panic!("ctd-decoder did not finish within {:?}", self.timeout);
            }
            thread::sleep(Duration::from_millis(2));
        };
        let _ = stdin_thread.join();
        if let Some(t) = payload_thread {
            let _ = t.join();
        }
        Outcome {
            status,
            stdout: stdout_thread.join().unwrap(),
            stderr: stderr_thread.join().unwrap(),
        }
    }
}

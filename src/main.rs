//! The `ctd-decoder` binary: everything process-specific, and nothing else.
//!
//! 1. Take fd 3 before anything can open a file (the lowest free fd would be 3).
//! 2. Make the process non-dumpable and disable core dumps: it is about to hold keys.
//! 3. Parse arguments; read the bounded payload; dup stdin/stdout into unbuffered files.
//! 4. Run, then print one line and exit non-zero on any failure.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::process::ExitCode;

use clap::Parser;
use ctd_decoder::cli::{self, Cli};
use ctd_decoder::payload::{self, Payload};
use ctd_decoder::{error::one_line, Config, Error};

fn main() -> ExitCode {
    let fd3 = take_fd3();
    install_panic_hook();
    harden_process();
    init_openssl();

    let args: Vec<OsString> = cli::normalize(std::env::args_os());
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    match run(cli, fd3) {
        Ok(warnings) => {
            for w in warnings {
                eprintln!("ctd-decoder: warning: {}", one_line(&w));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", e.line());
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, fd3: Option<OwnedFd>) -> Result<Vec<String>, Error> {
    let payload = read_payload(fd3)?;
    let config = Config {
        key_paths: cli.decryption_keys_path,
        content_store: cli.content_store,
        verify_before_release: cli.verify_before_release.then_some(cli.spool_dir),
        media_type: std::env::var("STREAM_PROCESSOR_MEDIATYPE")
            .ok()
            .filter(|s| !s.is_empty()),
        ..Config::default()
    };
    enlarge_pipes();
    let stdin = dup_stdio(io::stdin().as_fd())
        .map_err(|e| Error::Usage(format!("cannot use stdin: {e}")))?;
    let stdout = dup_stdio(io::stdout().as_fd())
        .map_err(|e| Error::Usage(format!("cannot use stdout: {e}")))?;
    let report = ctd_decoder::run(&config, payload, stdin, stdout)?;
    Ok(report.warnings)
}

/// Owns fd 3 if it is open. Must run before anything opens a file.
#[allow(unsafe_code)]
fn take_fd3() -> Option<OwnedFd> {
    // SAFETY: fcntl(F_GETFD) takes no pointers; on a closed descriptor it returns -1 (EBADF)
    // and has no other effect.
    let flags = unsafe { libc::fcntl(3, libc::F_GETFD) };
    if flags == -1 {
        return None;
    }
    // SAFETY: fd 3 is open (checked just above) and nothing else in this process owns it: this
    // is the first statement of `main`, and Rust's runtime only ever touches fds 0-2 before
    // `main`, so this OwnedFd is the sole owner and closing it on drop is sound.
    Some(unsafe { OwnedFd::from_raw_fd(3) })
}

/// Reads the payload if fd 3 is a pipe, FIFO or regular file (what containerd passes). Anything
/// else on fd 3 (a terminal inherited from a shell, say) is not a payload and is ignored.
fn read_payload(fd3: Option<OwnedFd>) -> Result<Option<Payload>, Error> {
    let Some(fd) = fd3 else { return Ok(None) };
    let stat = match nix::sys::stat::fstat(fd.as_fd()) {
        Ok(s) => s,
        Err(_) => return Ok(None),
    };
    let kind = stat.st_mode & libc::S_IFMT;
    if kind != libc::S_IFIFO && kind != libc::S_IFREG && kind != libc::S_IFSOCK {
        return Ok(None);
    }
    let bytes = payload::read_fd(File::from(fd), payload::PAYLOAD_TIMEOUT)?;
    Ok(payload::parse(&bytes)?)
}

/// Asks for 1 MiB pipe buffers on stdin and stdout (the unprivileged maximum by default) when
/// they are pipes, as containerd's are: fewer, larger transfers and fewer wake-ups between
/// containerd, the decoder and the decompressor. Best effort; the kernel may refuse.
fn enlarge_pipes() {
    use nix::fcntl::{fcntl, FcntlArg};
    for fd in [io::stdin().as_fd(), io::stdout().as_fd()] {
        let is_pipe = nix::sys::stat::fstat(fd)
            .map(|s| s.st_mode & libc::S_IFMT == libc::S_IFIFO)
            .unwrap_or(false);
        if is_pipe {
            let _ = fcntl(fd, FcntlArg::F_SETPIPE_SZ(1 << 20));
        }
    }
}

/// A `File` on a duplicate of a stdio descriptor: no line buffering, no lock, and `Send`.
fn dup_stdio(fd: std::os::fd::BorrowedFd<'_>) -> io::Result<File> {
    fd.try_clone_to_owned().map(File::from)
}

/// Initialises libcrypto with only what the decoder uses: the system configuration (so an
/// operator's crypto policy applies) and the providers, but no libssl, no error-string tables
/// (OpenSSL's error texts never reach our messages) and no legacy cipher-name table (every
/// cipher is taken by its constructor). Saves about a millisecond of start-up.
#[allow(unsafe_code)]
fn init_openssl() {
    extern "C" {
        fn OPENSSL_init_crypto(opts: u64, settings: *const std::ffi::c_void) -> std::ffi::c_int;
    }
    const NO_LOAD_CRYPTO_STRINGS: u64 = 0x0000_0001;
    const NO_ADD_ALL_CIPHERS: u64 = 0x0000_0010;
    const LOAD_CONFIG: u64 = 0x0000_0040;
    const NO_ATEXIT: u64 = 0x0008_0000;
    // SAFETY: OPENSSL_init_crypto is documented as callable at any time, from any thread; with
    // a null settings pointer it reads no memory of ours. Options it has already applied are
    // ignored on later calls.
    let ok = unsafe {
        OPENSSL_init_crypto(
            NO_LOAD_CRYPTO_STRINGS | NO_ADD_ALL_CIPHERS | LOAD_CONFIG | NO_ATEXIT,
            std::ptr::null(),
        )
    };
    if ok == 1 {
        // SAFETY: libcrypto is initialised (just above), which is all the openssl crate's own
        // initialisation (OPENSSL_init_ssl) would do for the calls this program makes: it never
        // uses libssl. `assume_init` only marks that one-time initialisation as done.
        unsafe { openssl_sys::assume_init() };
    }
}

/// No core dumps, no ptrace by other users, no /proc/<pid>/mem reads: the process will hold
/// private keys and the layer key.
fn harden_process() {
    let _ = nix::sys::prctl::set_dumpable(false);
    let _ = nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_CORE, 0, 0);
}

/// A panic is a bug; report it on one line (no payload values: our panics carry none) and
/// exit non-zero like any other failure.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!("ctd-decoder: internal error{location} (a bug, please report it); the layer was not decrypted");
    }));
}

fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        _ => {
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("{}", Error::Usage(first.to_string()).line());
            ExitCode::from(2)
        }
    }
}

//! Process hygiene while the decoder holds keys, and `--verify-before-release`.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use command_fds::{CommandFdExt, FdMapping};

use crate::interop::{encrypt_for, source};
use crate::support::decoder::{binary, Decoder};
use crate::support::keys;
use crate::support::oci::FoundLayer;
use crate::support::scratch;

fn layers() -> &'static [FoundLayer] {
    static L: OnceLock<Vec<FoundLayer>> = OnceLock::new();
    L.get_or_init(|| encrypt_for("hygiene", &[keys::rsa2048()]))
}

fn keys_dir() -> std::path::PathBuf {
    static D: OnceLock<std::path::PathBuf> = OnceLock::new();
    D.get_or_init(|| keys::rsa2048().keys_dir(&scratch("keys-hygiene")))
        .clone()
}

/// While a decoder holds the unwrapped layer key (it waits for the rest of its stdin), it is not
/// dumpable (its /proc files belong to root, so another process of the same user cannot read its
/// memory or attach to it) and its core-file limit is 0.
#[test]
fn a_decoder_holding_keys_is_not_dumpable_and_cannot_dump_core() {
    // Large enough for the streaming pipeline (its threads are the sign that keys are unwrapped).
    let (layer, plain) = crate::interop::large_layer();
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let mut w = std::fs::File::from(w);
    w.write_all(&layer.cri_payload()).unwrap();
    drop(w);
    let mut cmd = Command::new(binary());
    cmd.arg("--decryption-keys-path")
        .arg(keys_dir())
        .env("STREAM_PROCESSOR_MEDIATYPE", &layer.media_type)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.fd_mappings(vec![FdMapping {
        parent_fd: r,
        child_fd: 3,
    }])
    .unwrap();
    {
        use std::os::unix::process::CommandExt;
        if nix::unistd::geteuid().is_root() {
            // As an unprivileged user, /proc/<pid> of a dumpable process belongs to that user.
            std::fs::set_permissions(
                keys_dir(),
                std::os::unix::fs::PermissionsExt::from_mode(0o755),
            )
            .unwrap();
            for f in std::fs::read_dir(keys_dir()).unwrap() {
                std::fs::set_permissions(
                    f.unwrap().path(),
                    std::os::unix::fs::PermissionsExt::from_mode(0o644),
                )
                .unwrap();
            }
            cmd.uid(65534).gid(65534);
        }
    }
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    let mut stdin = child.stdin.take().unwrap();
    // Half the layer: the decoder unwraps the key, starts streaming, and waits for more.
    stdin
        .write_all(&layer.blob[..layer.blob.len() / 2])
        .unwrap();
    let pid = child.id();
    let proc_dir = format!("/proc/{pid}");
    // Wait until the MAC thread exists: keys are unwrapped by then.
    let start = Instant::now();
    loop {
        let threads = std::fs::read_dir(format!("{proc_dir}/task"))
            .map(|d| d.count())
            .unwrap_or(0);
        if threads >= 3 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "decoder never started streaming"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let limits = std::fs::read_to_string(format!("{proc_dir}/limits")).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap()
        .to_string();
    assert_eq!(core.split_whitespace().nth(4), Some("0"), "{core}");
    assert_eq!(core.split_whitespace().nth(5), Some("0"), "{core}");
    if nix::unistd::geteuid().is_root() {
        // A dumpable process running as uid 65534 would own these; a non-dumpable one does not.
        let meta = std::fs::metadata(format!("{proc_dir}/mem")).unwrap();
        assert_eq!(
            meta.uid(),
            0,
            "/proc/{pid}/mem owned by uid {}: process is dumpable",
            meta.uid()
        );
        let status = std::fs::read_to_string(format!("{proc_dir}/status")).unwrap();
        assert!(
            status
                .lines()
                .any(|l| l.starts_with("Uid:") && l.contains("65534")),
            "{status}"
        );
    }
    // Finish the layer: it decrypts normally.
    stdin
        .write_all(&layer.blob[layer.blob.len() / 2..])
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == plain.blob);
}

fn spool_decoder(layer: &FoundLayer, spool: &std::path::Path) -> Decoder {
    Decoder::new()
        .keys(&keys_dir())
        .arg("--verify-before-release")
        .arg("--spool-dir")
        .arg(spool)
        .media_type(&layer.media_type)
        .payload(layer.cri_payload())
}

#[test]
fn verify_before_release_decrypts_and_releases_nothing_on_failure() {
    let spool = scratch("spool");
    for (enc, orig) in layers().iter().zip(&source().layers) {
        let out = spool_decoder(enc, &spool)
            .stdin(enc.blob.clone())
            .run()
            .ok();
        assert!(out == orig.blob, "{}", enc.media_type);
        let mut bad = enc.blob.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let o = spool_decoder(enc, &spool).stdin(bad).run();
        assert!(o.failed().contains("failed authentication"), "{}", o.stderr);
        assert!(
            o.stdout.is_empty(),
            "{} bytes released before the verdict",
            o.stdout.len()
        );
    }
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        0,
        "spool files must not outlive the decoder"
    );
    let o = spool_decoder(&layers()[0], &spool.join("missing"))
        .stdin(layers()[0].blob.clone())
        .run();
    let line = o.failed();
    assert!(
        line.contains("cannot spool the encrypted layer") && line.contains("--spool-dir"),
        "{line}"
    );
}

//! A private containerd: its own root, state and sockets under a test directory, its
//! `[stream_processors]` pointing at the decoder under test, CRI with `key_model = "node"`, and
//! a hosts.toml that lets it pull from the test registry over plain HTTP.
//!
//! The config is generated from `packaging/containerd/config-v2.toml`, the snippet operators
//! install: only the decoder's path and keys directory are changed, so every run also proves that
//! containerd accepts the snippet as shipped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;
use toml::{Table, Value as Toml};

use super::cri::Cri;
use super::process::{self, Daemon};

/// The namespace of the CRI plugin's images.
pub const NAMESPACE: &str = "k8s.io";

/// The label that keeps content or a snapshot from containerd's garbage collector.
const GC_ROOT: &str = "containerd.io/gc.root=ctd-e2e";

/// The shipped config snippet for containerd 1.6/1.7.
pub fn snippet_v2_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/containerd/config-v2.toml")
}

/// What the test containerd is configured with.
pub struct Options {
    /// The decoder binary the stream processors run.
    pub decoder: PathBuf,
    /// The node's keys directory (`--decryption-keys-path`).
    pub keys_dir: PathBuf,
    /// `127.0.0.1:<port>` of the registry to pull from over plain HTTP.
    pub registry: String,
    /// The decoder's `--content-store`; `None` for this containerd's own store (what a node
    /// configures). A directory with no blobs in it shows which layers the decoder could only
    /// have decrypted with a payload on fd 3.
    pub content_store: Option<PathBuf>,
}

pub struct Containerd {
    daemon: Daemon,
    dir: PathBuf,
    socket: PathBuf,
    snapshotter: &'static str,
    stopped: bool,
}

impl Containerd {
    /// Writes the config into `dir`, starts containerd, and waits until CRI answers.
    pub fn start(dir: &Path, options: &Options) -> Containerd {
        let program = super::require_tool("containerd", "containerd");
        super::require_tool("ctr", "containerd");
        super::require_tool("runc", "runc");
        std::fs::create_dir_all(dir).unwrap();
        let socket = dir.join("containerd.sock");
        assert!(
            socket.as_os_str().len() < 100,
            "{} is too long for a unix socket path; set CTD_TEST_TMPDIR to a shorter directory",
            socket.display()
        );
        let snapshotter = pick_snapshotter(dir);
        write_hosts_toml(&dir.join("certs.d"), &options.registry);
        let snippet = std::fs::read_to_string(snippet_v2_path()).expect("read config-v2.toml");
        let config = render_config(&snippet, dir, options, snapshotter);
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, config).unwrap();

        let mut daemon = Daemon::spawn(
            "containerd",
            &program,
            &["--config".into(), config_path.display().to_string()],
            &dir.join("containerd.log"),
        );
        let cri = Cri::connect(&socket);
        daemon.wait_ready("CRI ListImages", Duration::from_secs(60), || {
            socket.exists() && cri.list_images().is_ok()
        });
        Containerd {
            daemon,
            dir: dir.to_path_buf(),
            socket,
            snapshotter,
            stopped: false,
        }
    }

    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    pub fn snapshotter(&self) -> &'static str {
        self.snapshotter
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.daemon.log_tail(lines)
    }

    /// A CRI client on this containerd's socket.
    pub fn cri(&self) -> Cri {
        Cri::connect(&self.socket)
    }

    /// The TCP sockets containerd listens on.
    pub fn tcp_listeners(&self) -> Vec<SocketAddr> {
        process::listening_tcp(self.pid())
    }

    /// `ctr -a <socket> -n k8s.io <args>`.
    pub fn ctr(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(&self.socket)
            .arg("--namespace")
            .arg(NAMESPACE)
            .args(args);
        cmd
    }

    fn ctr_text(&self, args: &[&str]) -> String {
        process::checked(&mut self.ctr(args), Duration::from_secs(60))
    }

    /// This containerd's content store (`<root>/io.containerd.content.v1.content`).
    pub fn content_store(&self) -> PathBuf {
        content_store(&self.dir)
    }

    /// `ctr images pull --plain-http --snapshotter <s> <reference>`: fetch, then unpack for this
    /// platform. ctr attaches no payload to the unpack, so the decoder gets no fd 3.
    pub fn ctr_pull(&self, reference: &str) -> Output {
        process::output_within(
            &mut self.ctr(&[
                "images",
                "pull",
                "--plain-http",
                "--snapshotter",
                self.snapshotter,
                reference,
            ]),
            Duration::from_secs(120),
        )
    }

    /// `ctr content ingest` of `file` (checked against `digest` and its size), then labelled as
    /// a GC root. ctr ingests without a lease, so a garbage collection that runs before the
    /// label is set (containerd schedules one after any deletion) removes the unreferenced
    /// blob; then it is ingested again.
    pub fn ingest(&self, file: &Path, digest: &str) {
        let size = std::fs::metadata(file).unwrap().len().to_string();
        for _ in 0..3 {
            let out = process::output_with_stdin(
                &mut self.ctr(&[
                    "content",
                    "ingest",
                    "--expected-size",
                    &size,
                    "--expected-digest",
                    digest,
                    &format!("ctd-e2e-ingest-{digest}"),
                ]),
                std::fs::File::open(file).unwrap().into(),
                Duration::from_secs(60),
            );
            assert!(
                out.status.success(),
                "ctr content ingest {}: {}",
                file.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            let label = process::output_within(
                &mut self.ctr(&["content", "label", digest, GC_ROOT]),
                Duration::from_secs(60),
            );
            if label.status.success() {
                return;
            }
            let error = String::from_utf8_lossy(&label.stderr);
            assert!(error.contains("not found"), "ctr content label: {error}");
        }
        panic!("{digest} was collected after each of 3 ingests before it could be labelled");
    }

    /// `ctr snapshots prepare --mounts <key>` without a parent, labelled as a GC root (ctr
    /// creates it without a lease; a collection between the two calls would remove it, so
    /// remove snapshots only after preparing the last one); returns its mounts.
    pub fn prepare_snapshot(&self, key: &str) -> Vec<super::diff::Mount> {
        let json = self.ctr_text(&[
            "snapshots",
            "--snapshotter",
            self.snapshotter,
            "prepare",
            "--mounts",
            key,
        ]);
        self.ctr_text(&[
            "snapshots",
            "--snapshotter",
            self.snapshotter,
            "label",
            key,
            GC_ROOT,
        ]);
        let mounts: Vec<Value> = serde_json::from_str(&json).expect("snapshot mounts JSON");
        mounts
            .iter()
            .map(|m| super::diff::Mount {
                r#type: m["Type"].as_str().unwrap_or_default().to_string(),
                source: m["Source"].as_str().unwrap_or_default().to_string(),
                target: String::new(),
                options: m["Options"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect()
    }

    /// `ctr snapshots rm <key>`.
    pub fn remove_snapshot(&self, key: &str) {
        self.ctr_text(&["snapshots", "--snapshotter", self.snapshotter, "rm", key]);
    }

    /// `ctr content rm <digest>`.
    pub fn remove_content(&self, digest: &str) {
        self.ctr_text(&["content", "rm", digest]);
    }

    /// Waits until [`Containerd::unpack_leftovers`] is empty, or returns what is still there
    /// after `timeout`.
    pub fn wait_until_unpacked_nothing(&self, timeout: Duration) -> Result<(), Vec<String>> {
        let start = Instant::now();
        loop {
            let left = self.unpack_leftovers();
            if left.is_empty() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(left);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `ctr content fetch --plain-http <reference>`: the image's blobs and its image record,
    /// not unpacked.
    pub fn ctr_fetch(&self, reference: &str) {
        self.ctr_text(&["content", "fetch", "--plain-http", reference]);
    }

    /// Committed and active snapshots: `(key, parent)`, parent empty for a base layer.
    pub fn snapshots(&self) -> Vec<(String, String)> {
        self.ctr_text(&["snapshots", "--snapshotter", self.snapshotter, "ls"])
            .lines()
            .skip(1)
            .filter_map(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                match cols.as_slice() {
                    [key, _kind] => Some((key.to_string(), String::new())),
                    [key, parent, _kind] => Some((key.to_string(), parent.to_string())),
                    _ => None,
                }
            })
            .collect()
    }

    /// Everything an image pull can leave behind in containerd, one description per item:
    /// images, content blobs, snapshots, leases, mounts under the containerd root, and decoder
    /// processes still running.
    pub fn leftovers(&self, cri: &Cri) -> Vec<String> {
        let mut found = Vec::new();
        match cri.list_images() {
            Ok(images) => found.extend(
                images
                    .iter()
                    .map(|i| format!("CRI image {} {:?}", i.id, i.repo_tags)),
            ),
            Err(e) => found.push(format!("CRI ListImages failed: {}", e.message())),
        }
        for (what, args) in [
            ("image", &["images", "ls", "-q"][..]),
            ("content", &["content", "ls", "-q"][..]),
        ] {
            found.extend(
                self.ctr_text(args)
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(|l| format!("{what} {l}")),
            );
        }
        found.extend(self.unpack_leftovers());
        found
    }

    /// What an unpack (failed or not) can leave behind besides image records and blobs:
    /// leases, snapshots, mounts under the containerd root, and decoder processes.
    pub fn unpack_leftovers(&self) -> Vec<String> {
        let mut found: Vec<String> = self
            .ctr_text(&["leases", "ls", "-q"])
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| format!("lease {l}"))
            .collect();
        found.extend(
            self.snapshots()
                .into_iter()
                .map(|(k, p)| format!("snapshot {k} (parent {p})")),
        );
        found.extend(
            mounts_under(&self.dir)
                .into_iter()
                .map(|m| format!("mount {}", m.display())),
        );
        found.extend(
            process::children(self.pid())
                .into_iter()
                .filter(|(_, comm)| comm.starts_with("ctd-decoder"))
                .map(|(pid, comm)| format!("process {pid} ({comm})")),
        );
        found
    }

    /// Waits (containerd's garbage collector runs asynchronously after a lease is released)
    /// until nothing is left, or returns what is still there after `timeout`.
    pub fn wait_until_clean(&self, cri: &Cri, timeout: Duration) -> Result<(), Vec<String>> {
        let start = Instant::now();
        loop {
            let left = self.leftovers(cri);
            if left.is_empty() {
                return Ok(());
            }
            if start.elapsed() > timeout {
                return Err(left);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Mounts a read-only view of the committed snapshot `parent` (a chain ID) at `target`.
    pub fn view(&self, parent: &str, target: &Path) -> RootfsView<'_> {
        std::fs::create_dir_all(target).unwrap();
        let key = format!("ctd-e2e-view-{}", std::process::id());
        let json = self.ctr_text(&[
            "snapshots",
            "--snapshotter",
            self.snapshotter,
            "view",
            "--mounts",
            &key,
            parent,
        ]);
        let mut view = RootfsView {
            containerd: self,
            key,
            target: target.to_path_buf(),
            mounted: false,
        };
        let mounts: Vec<Value> = serde_json::from_str(&json).expect("snapshot mounts JSON");
        assert_eq!(mounts.len(), 1, "one mount expected: {json}");
        let m = &mounts[0];
        let options: Vec<&str> = m["Options"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut cmd = Command::new("mount");
        // A bind mount is spelled with options (`rbind,ro`), not as a filesystem type.
        if m["Type"] != "bind" {
            cmd.arg("-t").arg(m["Type"].as_str().expect("mount type"));
        }
        cmd.arg("-o")
            .arg(options.join(","))
            .arg(m["Source"].as_str().expect("mount source"))
            .arg(target);
        process::checked(&mut cmd, Duration::from_secs(30));
        view.mounted = true;
        view
    }

    /// `ctr run --rm <image> <id> <args>`: a container from the image, run by runc. If the image
    /// is unpacked, ctr only adds a writable snapshot on top; if it is not, ctr unpacks it first
    /// (through the stream processors, without a payload).
    pub fn run(&self, image: &str, id: &str, args: &[&str]) -> Output {
        let runc_root = self.dir.join("runc");
        let fifo_dir = self.dir.join("fifo");
        let mut all = vec![
            "run",
            "--rm",
            "--snapshotter",
            self.snapshotter,
            "--runc-root",
            runc_root.to_str().unwrap(),
            "--fifo-dir",
            fifo_dir.to_str().unwrap(),
            image,
            id,
        ];
        all.extend_from_slice(args);
        process::output_within(&mut self.ctr(&all), Duration::from_secs(60))
    }

    /// Removes containers and tasks that a failed test may have left running.
    fn remove_containers(&self) {
        let quick = Duration::from_secs(20);
        let ids = |what: &str| -> Vec<String> {
            let out = process::output_within(&mut self.ctr(&[what, "ls", "-q"]), quick);
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_string)
                .collect()
        };
        for id in ids("tasks") {
            let _ = process::output_within(
                &mut self.ctr(&["tasks", "kill", "--signal", "SIGKILL", &id]),
                quick,
            );
            let _ =
                process::output_within(&mut self.ctr(&["tasks", "delete", "--force", &id]), quick);
        }
        for id in ids("containers") {
            let _ = process::output_within(&mut self.ctr(&["containers", "delete", &id]), quick);
        }
    }

    /// Stops containerd (and whatever a failed test left running in it). Idempotent.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        self.remove_containers();
        self.daemon.stop();
        // Shims outlive containerd by design; kill any left (by the PID each one recorded).
        for pid_file in find_files(&self.dir.join("state"), "shim.pid") {
            if let Some(pid) = std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<i32>().ok())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A mounted read-only view of a snapshot; unmounted and removed on drop.
pub struct RootfsView<'a> {
    containerd: &'a Containerd,
    key: String,
    target: PathBuf,
    mounted: bool,
}

impl RootfsView<'_> {
    pub fn path(&self) -> &Path {
        &self.target
    }
}

impl Drop for RootfsView<'_> {
    fn drop(&mut self) {
        if self.mounted {
            let _ = process::output_within(
                Command::new("umount").arg(&self.target),
                Duration::from_secs(30),
            );
        }
        let _ = process::output_within(
            &mut self.containerd.ctr(&[
                "snapshots",
                "--snapshotter",
                self.containerd.snapshotter,
                "rm",
                &self.key,
            ]),
            Duration::from_secs(30),
        );
    }
}

/// overlayfs if an overlay mount works in `dir` (it does on a normal host; some container
/// sandboxes forbid it), else the native (copying) snapshotter.
fn pick_snapshotter(dir: &Path) -> &'static str {
    let probe = dir.join("overlay-probe");
    let [lower, upper, work, merged] = ["lower", "upper", "work", "merged"].map(|d| probe.join(d));
    for d in [&lower, &upper, &work, &merged] {
        std::fs::create_dir_all(d).unwrap();
    }
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    let mounted = process::output_within(
        Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &options])
            .arg(&merged),
        Duration::from_secs(30),
    )
    .status
    .success();
    if mounted {
        let _ =
            process::output_within(Command::new("umount").arg(&merged), Duration::from_secs(30));
    }
    let _ = std::fs::remove_dir_all(&probe);
    if mounted {
        "overlayfs"
    } else {
        eprintln!("overlay mounts do not work here; using containerd's native snapshotter");
        "native"
    }
}

/// `certs.d/<host>/hosts.toml`: pull and resolve from the test registry over plain HTTP.
fn write_hosts_toml(certs_d: &Path, registry: &str) {
    let dir = certs_d.join(registry);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("hosts.toml"),
        format!(
            "server = \"http://{registry}\"\n\n[host.\"http://{registry}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        ),
    )
    .unwrap();
}

/// The `table.path...` table of `root`, created if missing.
fn table<'a>(root: &'a mut Table, path: &[&str]) -> &'a mut Table {
    let mut t = root;
    for key in path {
        t = t
            .entry(key.to_string())
            .or_insert_with(|| Toml::Table(Table::new()))
            .as_table_mut()
            .unwrap_or_else(|| panic!("{key} is not a table"));
    }
    t
}

/// The content store of the containerd whose directory is `dir`.
pub fn content_store(dir: &Path) -> PathBuf {
    dir.join("root").join("io.containerd.content.v1.content")
}

fn text(p: &Path) -> Toml {
    Toml::String(p.display().to_string())
}

/// The test containerd's config: the shipped v2 snippet with the decoder's path, keys
/// directory and content store replaced, plus everything that keeps this containerd private to `dir`.
pub fn render_config(snippet: &str, dir: &Path, options: &Options, snapshotter: &str) -> String {
    let mut doc: Table = snippet
        .parse()
        .expect("the v2 config snippet parses as TOML");
    assert_eq!(doc.get("version").and_then(Toml::as_integer), Some(2));

    let processors = table(&mut doc, &["stream_processors"]);
    assert_eq!(
        processors.len(),
        ctd_decoder::media_type::ENCRYPTED_MEDIA_TYPES.len(),
        "one stream processor per encrypted media type in the snippet"
    );
    for (_, processor) in processors.iter_mut() {
        let p = processor.as_table_mut().expect("processor table");
        p.insert("path".into(), text(&options.decoder));
        p.insert(
            "args".into(),
            Toml::Array(vec![
                Toml::String("--decryption-keys-path".into()),
                text(&options.keys_dir),
                // This containerd's root is private, so its content store is not the default.
                Toml::String("--content-store".into()),
                text(
                    options
                        .content_store
                        .as_deref()
                        .unwrap_or(&content_store(dir)),
                ),
            ]),
        );
    }

    doc.insert("root".into(), text(&dir.join("root")));
    doc.insert("state".into(), text(&dir.join("state")));
    table(&mut doc, &["grpc"]).insert("address".into(), text(&dir.join("containerd.sock")));
    table(&mut doc, &["ttrpc"]).insert("address".into(), text(&dir.join("containerd.sock.ttrpc")));
    // No debug socket, no metrics listener.
    table(&mut doc, &["debug"]).insert("address".into(), Toml::String(String::new()));
    table(&mut doc, &["metrics"]).insert("address".into(), Toml::String(String::new()));
    // Snapshotters this suite never uses: their probes depend on the host's filesystems.
    doc.insert(
        "disabled_plugins".into(),
        Toml::Array(
            [
                "io.containerd.snapshotter.v1.aufs",
                "io.containerd.snapshotter.v1.btrfs",
                "io.containerd.snapshotter.v1.devmapper",
                "io.containerd.snapshotter.v1.zfs",
            ]
            .map(|s| Toml::String(s.into()))
            .to_vec(),
        ),
    );
    table(&mut doc, &["plugins", "io.containerd.internal.v1.opt"])
        .insert("path".into(), text(&dir.join("opt")));

    let cri = table(&mut doc, &["plugins", "io.containerd.grpc.v1.cri"]);
    // The streaming server (exec/attach) is unused but always started: keep it on loopback.
    cri.insert("stream_server_address".into(), "127.0.0.1".into());
    cri.insert("stream_server_port".into(), "0".into());
    cri.insert("disable_tcp_service".into(), true.into());
    table(cri, &["containerd"]).insert("snapshotter".into(), snapshotter.into());
    let cni = table(cri, &["cni"]);
    cni.insert("bin_dir".into(), text(&dir.join("cni/bin")));
    cni.insert("conf_dir".into(), text(&dir.join("cni/conf")));
    table(cri, &["registry"]).insert("config_path".into(), text(&dir.join("certs.d")));
    // The snippet's own setting, checked rather than set: the suite tests what is shipped.
    assert_eq!(
        table(cri, &["image_decryption"]).get("key_model"),
        Some(&Toml::String("node".into())),
        "the snippet sets key_model = \"node\""
    );
    toml::to_string(&doc).expect("serialize config")
}

/// Mount points at or below `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(|m| PathBuf::from(m.replace("\\040", " ")))
        .filter(|m| m.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

fn find_files(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => found.extend(find_files(&p, name)),
            Ok(t) if t.is_file() && e.file_name() == name => found.push(p),
            _ => {}
        }
    }
    found
}

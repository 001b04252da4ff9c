//! Helper for `scripts/bench`: prepares encrypted layers, streams large ones, runs the HMAC-only
//! reference pass, and measures start-up to the first output byte. Not part of the product.
//!
//! ```text
//! bench_tool prepare --out DIR --size BYTES [--plaintext FILE] [--no-file]
//! bench_tool gen --dir DIR                  # streams DIR's ciphertext to stdout (regenerated)
//! bench_tool hmac --impl sha2|openssl       # HMAC-SHA256 over stdin, prints bytes and seconds
//! bench_tool startup --dir DIR --decoder BIN --runs N
//! ```
//!
//! Layers are encrypted here with the format's primitives (AES-256-CTR keystream, HMAC-SHA256
//! over the ciphertext, a JWE RSA-OAEP wrapped key as Go ocicrypt writes it): the benchmark needs
//! multi-GiB layers on demand, which skopeo cannot stream. Interop with real encrypters is what
//! the test suites prove; the benchmark checks the output digest against the plaintext's.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ctd_decoder::encoding::encode_std;
use ctd_decoder::payload::{self, Descriptor};
use ctd_decoder::secret::{LayerKey, Nonce};
use ctd_decoder::stream::cipher::{Authenticator, Keystream};
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use sha2::{Digest, Sha256};

const CHUNK: usize = 1 << 20;

/// Fills a buffer with the next plaintext bytes; 0 at the end.
type Source = dyn FnMut(&mut [u8]) -> usize;
const MT: &str = "application/vnd.oci.image.layer.v1.tar+gzip+encrypted";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str| -> Option<String> {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1).cloned())
    };
    match args.first().map(String::as_str) {
        Some("prepare") => prepare(
            Path::new(&get("--out").expect("--out")),
            get("--size").map(|s| s.parse().expect("--size")),
            get("--plaintext").map(PathBuf::from),
            args.iter().any(|a| a == "--no-file"),
        ),
        Some("gen") => gen(Path::new(&get("--dir").expect("--dir"))),
        Some("hmac") => hmac(&get("--impl").unwrap_or_else(|| "sha2".into())),
        Some("primitives") => primitives(),
        Some("startup") => startup(
            Path::new(&get("--dir").expect("--dir")),
            Path::new(&get("--decoder").expect("--decoder")),
            get("--runs").map(|s| s.parse().unwrap()).unwrap_or(100),
        ),
        _ => {
            eprintln!("usage: see the module docs of examples/bench_tool.rs");
            std::process::exit(2);
        }
    }
}

/// Secrets of a generated layer, kept so that `gen` can regenerate the same ciphertext.
fn secrets(dir: &Path) -> (LayerKey, Nonce, LayerKey, u64) {
    let s: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("gen.json")).unwrap()).unwrap();
    let b = |k: &str| hex::decode(s[k].as_str().unwrap()).unwrap();
    (
        LayerKey::from_slice(&b("key")).unwrap(),
        Nonce::from_slice(&b("nonce")).unwrap(),
        LayerKey::from_slice(&b("plain_seed")).unwrap(),
        s["size"].as_u64().unwrap(),
    )
}

/// Pseudo-random incompressible plaintext: AES-CTR keystream of `seed` over zeros.
struct Plain {
    ks: Keystream,
    left: u64,
}

impl Plain {
    fn next(&mut self, buf: &mut [u8]) -> usize {
        let n = (buf.len() as u64).min(self.left) as usize;
        buf[..n].fill(0);
        self.ks.apply(&mut buf[..n]);
        self.left -= n as u64;
        n
    }
}

fn prepare(out: &Path, size: Option<u64>, plaintext: Option<PathBuf>, no_file: bool) {
    fs::create_dir_all(out.join("keys")).unwrap();
    let rsa = Rsa::generate(2048).unwrap();
    let pkey = PKey::from_rsa(rsa).unwrap();
    let key_path = out.join("keys/node.pem");
    fs::write(&key_path, pkey.private_key_to_pem_pkcs8().unwrap()).unwrap();
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).unwrap();

    let mut rand = [0u8; 32 + 16 + 32];
    openssl::rand::rand_bytes(&mut rand).unwrap();
    let key = LayerKey::from_slice(&rand[..32]).unwrap();
    let nonce = Nonce::from_slice(&rand[32..48]).unwrap();
    let seed = LayerKey::from_slice(&rand[48..]).unwrap();

    let mut mac = Authenticator::new(&key);
    let mut ks = Keystream::new(&key, &nonce);
    let mut plain_digest = Sha256::new();
    let mut enc_digest = Sha256::new();
    let mut writer = if no_file {
        None
    } else {
        Some(BufWriter::new(File::create(out.join("layer.enc")).unwrap()))
    };
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    let mut source: Box<Source> = match &plaintext {
        Some(p) => {
            let mut f = File::open(p).unwrap();
            Box::new(move |b: &mut [u8]| read_full(&mut f, b))
        }
        None => {
            let mut g = Plain {
                ks: Keystream::new(&seed, &Nonce::from_slice(&[0; 16]).unwrap()),
                left: size.expect("--size"),
            };
            Box::new(move |b: &mut [u8]| g.next(b))
        }
    };
    loop {
        let n = source(&mut buf);
        if n == 0 {
            break;
        }
        plain_digest.update(&buf[..n]);
        ks.apply(&mut buf[..n]);
        mac.update(&buf[..n]);
        enc_digest.update(&buf[..n]);
        if let Some(w) = writer.as_mut() {
            w.write_all(&buf[..n]).unwrap();
        }
        total += n as u64;
    }
    if let Some(mut w) = writer {
        w.flush().unwrap();
    }
    let mac = mac.finalize();

    let private = serde_json::json!({
        "symkey": encode_std(key.expose()),
        "digest": format!("sha256:{}", hex::encode(plain_digest.clone().finalize())),
        "cipheroptions": {"nonce": encode_std(nonce.expose())},
    });
    let mut header = josekit::jwe::JweHeader::new();
    header.set_content_encryption("A256GCM");
    header.set_algorithm("RSA-OAEP");
    let encrypter = josekit::jwe::RSA_OAEP
        .encrypter_from_der(pkey.public_key_to_der().unwrap())
        .unwrap();
    let jwe = josekit::jwe::serialize_flattened_json(
        private.to_string().as_bytes(),
        None,
        Some(&header),
        None,
        &encrypter,
    )
    .unwrap();
    let pubopts = serde_json::json!({"cipher": "AES_256_CTR_HMAC_SHA256", "hmac": encode_std(&mac), "cipheroptions": {}});
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "org.opencontainers.image.enc.keys.jwe".to_string(),
        encode_std(jwe.as_bytes()),
    );
    annotations.insert(
        "org.opencontainers.image.enc.pubopts".to_string(),
        encode_std(pubopts.to_string().as_bytes()),
    );
    let descriptor = Descriptor {
        media_type: MT.into(),
        digest: format!("sha256:{}", hex::encode(enc_digest.finalize())),
        size: Some(total),
        annotations,
    };
    fs::write(
        out.join("payload.bin"),
        payload::encode(&BTreeMap::new(), &descriptor),
    )
    .unwrap();
    fs::write(
        out.join("plain.sha256"),
        hex::encode(plain_digest.finalize()),
    )
    .unwrap();
    let gen = serde_json::json!({
        "key": hex::encode(key.expose()), "nonce": hex::encode(nonce.expose()),
        "plain_seed": hex::encode(seed.expose()), "size": total, "generated": plaintext.is_none(),
    });
    fs::write(out.join("gen.json"), gen.to_string()).unwrap();
    println!("{total}");
}

fn read_full(f: &mut File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("{e}"),
        }
    }
    n
}

/// Streams the ciphertext of a generated layer (no file needed for multi-GiB layers).
fn gen(dir: &Path) {
    let (key, nonce, seed, size) = secrets(dir);
    let mut plain = Plain {
        ks: Keystream::new(&seed, &Nonce::from_slice(&[0; 16]).unwrap()),
        left: size,
    };
    let mut ks = Keystream::new(&key, &nonce);
    let mut out = io::stdout().lock();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = plain.next(&mut buf);
        if n == 0 {
            break;
        }
        ks.apply(&mut buf[..n]);
        if out.write_all(&buf[..n]).is_err() {
            std::process::exit(1);
        }
    }
}

/// The reference: HMAC-SHA256 over stdin with nothing else to do, reading in the decoder's
/// chunk size.
fn hmac(implementation: &str) {
    // The same pipe as the decoder gets: it asks for a 1 MiB buffer too.
    let _ = nix::fcntl::fcntl(io::stdin(), nix::fcntl::FcntlArg::F_SETPIPE_SZ(1 << 20));
    let mut input = File::from(io::stdin().lock().as_fd_owned());
    let mut buf = vec![0u8; 256 * 1024];
    let start = Instant::now();
    let mut total = 0u64;
    let tag = match implementation {
        "openssl" => {
            let key = PKey::hmac(&[7u8; 32]).unwrap();
            let mut signer =
                openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &key).unwrap();
            loop {
                let n = read_full(&mut input, &mut buf);
                if n == 0 {
                    break;
                }
                signer.update(&buf[..n]).unwrap();
                total += n as u64;
            }
            signer.sign_to_vec().unwrap()
        }
        _ => {
            let mut mac = Authenticator::new(&LayerKey::from_slice(&[7u8; 32]).unwrap());
            loop {
                let n = read_full(&mut input, &mut buf);
                if n == 0 {
                    break;
                }
                mac.update(&buf[..n]);
                total += n as u64;
            }
            mac.finalize().to_vec()
        }
    };
    let secs = start.elapsed().as_secs_f64();
    println!("{total} {secs:.6} {}", hex::encode(&tag[..4]));
}

trait AsFdOwned {
    fn as_fd_owned(&self) -> std::os::fd::OwnedFd;
}

impl<T: std::os::fd::AsFd> AsFdOwned for T {
    fn as_fd_owned(&self) -> std::os::fd::OwnedFd {
        self.as_fd().try_clone_to_owned().unwrap()
    }
}

/// Time from spawning the decoder to its first output byte, for a small layer (the whole layer
/// is held back until the MAC verdict, so this includes key unwrap, decryption and the verdict).
fn startup(dir: &Path, decoder: &Path, runs: usize) {
    use command_fds::{CommandFdExt, FdMapping};
    let layer = fs::read(dir.join("layer.enc")).unwrap();
    let payload = fs::read(dir.join("payload.bin")).unwrap();
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let mut w = File::from(w);
        w.write_all(&payload).unwrap();
        drop(w);
        let stdin_file = tempfile_with(&layer);
        let mut cmd = Command::new(decoder);
        if !decoder.ends_with("cat") {
            cmd.arg("--decryption-keys-path").arg(dir.join("keys"));
        }
        cmd.env("STREAM_PROCESSOR_MEDIATYPE", MT)
            .stdin(stdin_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        cmd.fd_mappings(vec![FdMapping {
            parent_fd: r,
            child_fd: 3,
        }])
        .unwrap();
        let start = Instant::now();
        let mut child = cmd.spawn().unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut first = [0u8; 1];
        out.read_exact(&mut first).unwrap();
        let took = start.elapsed();
        let mut rest = Vec::new();
        out.read_to_end(&mut rest).unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(rest.len() + 1, layer.len());
        times.push(took);
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{:.3} {:.3} {:.3}",
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() * 9 / 10])
    );
}

fn tempfile_with(bytes: &[u8]) -> File {
    let mut f = tempfile::tempfile().unwrap();
    f.write_all(bytes).unwrap();
    use std::io::Seek;
    f.seek(io::SeekFrom::Start(0)).unwrap();
    f
}

/// In-memory speed of each primitive implementation, 64 KiB at a time (no I/O).
fn primitives() {
    let total = 512usize << 20;
    let mut buf = vec![0u8; 64 << 10];
    let key = LayerKey::from_slice(&[7u8; 32]).unwrap();
    let nonce = Nonce::from_slice(&[1u8; 16]).unwrap();
    let report = |name: &str, start: Instant| {
        let s = start.elapsed().as_secs_f64();
        println!("{name:32} {:.2} GB/s", total as f64 / s / 1e9);
    };
    let start = Instant::now();
    let mut ks = Keystream::new(&key, &nonce);
    for _ in 0..total / buf.len() {
        ks.apply(&mut buf);
    }
    report("aes-256-ctr (RustCrypto)", start);
    let start = Instant::now();
    let mut c = openssl::symm::Crypter::new(
        openssl::symm::Cipher::aes_256_ctr(),
        openssl::symm::Mode::Decrypt,
        key.expose(),
        Some(nonce.expose()),
    )
    .unwrap();
    let mut out = vec![0u8; buf.len() + 16];
    for _ in 0..total / buf.len() {
        c.update(&buf, &mut out).unwrap();
    }
    report("aes-256-ctr (OpenSSL)", start);
    let start = Instant::now();
    let mut m = Authenticator::new(&key);
    for _ in 0..total / buf.len() {
        m.update(&buf);
    }
    let _ = m.finalize();
    report("hmac-sha256 (RustCrypto)", start);
    let start = Instant::now();
    let k = PKey::hmac(key.expose()).unwrap();
    let mut signer =
        openssl::sign::Signer::new(openssl::hash::MessageDigest::sha256(), &k).unwrap();
    for _ in 0..total / buf.len() {
        signer.update(&buf).unwrap();
    }
    let _ = signer.sign_to_vec().unwrap();
    report("hmac-sha256 (OpenSSL)", start);
}

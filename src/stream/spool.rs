//! The private spool file behind `--verify-before-release`.
//!
//! It holds only ciphertext (never plaintext), is created without a name where the filesystem
//! allows (`O_TMPFILE`), or otherwise with an unguessable name that is unlinked at once, mode
//! 0600, close-on-exec. Either way it disappears with the process, whatever way it ends.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;

/// Creates an anonymous spool file in `dir`.
pub fn create(dir: &Path) -> io::Result<File> {
    let mode = Mode::S_IRUSR | Mode::S_IWUSR;
    match open(
        dir,
        OFlag::O_TMPFILE | OFlag::O_RDWR | OFlag::O_CLOEXEC,
        mode,
    ) {
        Ok(fd) => return Ok(File::from(fd)),
        // Filesystems without O_TMPFILE say EOPNOTSUPP (or EISDIR on old kernels).
        Err(nix::errno::Errno::EOPNOTSUPP | nix::errno::Errno::EISDIR) => {}
        Err(e) => return Err(e.into()),
    }
    let mut random = [0u8; 12];
    openssl::rand::rand_bytes(&mut random).map_err(io::Error::other)?;
    let name = dir.join(format!(".ctd-decoder-spool-{}", hex_lower(&random)));
    let flags =
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_RDWR | OFlag::O_CLOEXEC;
    let fd: OwnedFd = open(&name, flags, mode)?;
    std::fs::remove_file(&name)?;
    Ok(File::from(fd))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, Write};

    #[test]
    fn the_spool_file_has_no_name_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = create(dir.path()).unwrap();
        f.write_all(b"ciphertext").unwrap();
        f.seek(io::SeekFrom::Start(0)).unwrap();
        let mut back = String::new();
        f.read_to_string(&mut back).unwrap();
        assert_eq!(back, "ciphertext");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no name left behind"
        );
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(f.metadata().unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_missing_directory_is_an_error() {
        assert!(create(Path::new("/nonexistent/ctd-spool")).is_err());
    }
}

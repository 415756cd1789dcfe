//! Checksums. The hub names every file by its ETag, and the cache stores the file as
//! `blobs/ETAG`: for a Git LFS file (the weights) the ETag is the SHA-256 of its bytes; for a
//! plain git file (configs, tokenizer) it is the git blob id, SHA-1 of `blob LEN\0BYTES`.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha1::Digest;

use crate::error::io;
use crate::Result;

/// How a file was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// Its SHA-256 equals its LFS ETag.
    Sha256,
    /// Its git blob id equals its ETag.
    GitSha1,
    /// The ETag is neither (a hub that does not follow the convention): not checked.
    Unchecked,
}

impl std::fmt::Display for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Checked::Sha256 => "sha256 ok",
            Checked::GitSha1 => "git sha1 ok",
            Checked::Unchecked => "not checked (no checksum ETag)",
        })
    }
}

/// What hashing `path` against `etag` found: `Ok(kind)` or `Err(actual)`.
pub fn check(path: &Path, etag: &str) -> Result<std::result::Result<Checked, String>> {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let etag = etag.to_ascii_lowercase();
    if hex(&etag, 64) {
        let actual = hash_file(path, sha2::Sha256::new())?;
        Ok(if actual == etag {
            Ok(Checked::Sha256)
        } else {
            Err(actual)
        })
    } else if hex(&etag, 40) {
        let len = std::fs::metadata(path).map_err(io(path))?.len();
        let mut h = sha1::Sha1::new();
        h.update(format!("blob {len}\0").as_bytes());
        let actual = hash_file(path, h)?;
        Ok(if actual == etag {
            Ok(Checked::GitSha1)
        } else {
            Err(actual)
        })
    } else {
        Ok(Ok(Checked::Unchecked))
    }
}

fn hash_file<D: Digest>(path: &Path, mut h: D) -> Result<String> {
    let mut f = File::open(path).map_err(io(path))?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>())
}

/// The SHA-256 of `bytes`, hex (for stand-ins and tests).
pub fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The git blob id of `bytes`, hex (for stand-ins and tests).
pub fn git_blob_id(bytes: &[u8]) -> String {
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_checked_by_their_length() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"hello\n").unwrap();
        // `printf 'hello\n' | sha256sum` and `git hash-object`.
        let sha = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
        let git = "ce013625030ba8dba906f756967f9e9ca394464a";
        assert_eq!(sha256_hex(b"hello\n"), sha);
        assert_eq!(git_blob_id(b"hello\n"), git);
        assert_eq!(check(&p, sha).unwrap(), Ok(Checked::Sha256));
        assert_eq!(
            check(&p, &git.to_uppercase()).unwrap(),
            Ok(Checked::GitSha1)
        );
        assert_eq!(check(&p, "W/abc").unwrap(), Ok(Checked::Unchecked));
        let wrong = "0".repeat(64);
        assert_eq!(check(&p, &wrong).unwrap(), Err(sha.to_string()));
    }
}

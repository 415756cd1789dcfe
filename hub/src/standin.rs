//! A local stand-in of the Hugging Face Hub's HTTP API, enough for `hf-hub` clients: repo
//! listings (`/api/models/OWNER/NAME[/revision/REV]`), file downloads
//! (`/OWNER/NAME/resolve/REV/FILE`) with range requests, and for LFS files the redirect to
//! a content server (`/cdn/SHA256`) with `X-Linked-Etag`, as the real hub does. It serves
//! from memory on a loopback port, one thread per connection.
//!
//! For tests and for trying `pull` without a network; it can also cut a download short,
//! serve bytes that do not match their checksum, and record the `Range` headers it saw.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use crate::verify::{git_blob_id, sha256_hex};

/// One file of a stand-in repo.
#[derive(Debug, Clone)]
pub struct StandInFile {
    /// Its name in the repo.
    pub name: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Stored in LFS (served through the content server, SHA-256 ETag) or in git (git blob
    /// id ETag).
    pub lfs: bool,
}

impl StandInFile {
    /// A file; names ending in `.gguf` or `.safetensors` are LFS files.
    pub fn new(name: &str, bytes: Vec<u8>) -> StandInFile {
        let lfs = name.ends_with(".gguf") || name.ends_with(".safetensors");
        StandInFile {
            name: name.to_string(),
            bytes,
            lfs,
        }
    }

    fn etag(&self) -> String {
        if self.lfs {
            sha256_hex(&self.bytes)
        } else {
            git_blob_id(&self.bytes)
        }
    }
}

#[derive(Default)]
struct State {
    repos: BTreeMap<String, (String, Vec<StandInFile>)>,
    ranges: Vec<String>,
    cut_after: Option<usize>,
    corrupt: bool,
}

/// A running stand-in hub. It stops serving when dropped.
pub struct StandIn {
    endpoint: String,
    state: Arc<Mutex<State>>,
}

fn lock(s: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl StandIn {
    /// Starts serving on a free loopback port.
    pub fn start() -> std::io::Result<StandIn> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(State::default()));
        let weak = Arc::downgrade(&state);
        let ep = endpoint.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Some(state) = weak.upgrade() else { break };
                let Ok(conn) = conn else { continue };
                let ep = ep.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &state, &ep);
                });
            }
        });
        Ok(StandIn { endpoint, state })
    }

    /// The address to give as `HF_ENDPOINT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Publishes `repo` at `commit` with `files` (replacing an earlier version).
    pub fn publish(&self, repo: &str, commit: &str, files: Vec<StandInFile>) {
        lock(&self.state)
            .repos
            .insert(repo.to_string(), (commit.to_string(), files));
    }

    /// The next download response stops after `bytes` bytes of its body.
    pub fn cut_next_download_after(&self, bytes: usize) {
        lock(&self.state).cut_after = Some(bytes);
    }

    /// Downloads serve bytes that do not match their ETag (one byte flipped).
    pub fn corrupt_downloads(&self, on: bool) {
        lock(&self.state).corrupt = on;
    }

    /// The `Range` headers of the downloads so far (`-` for none), in order.
    pub fn ranges(&self) -> Vec<String> {
        lock(&self.state).ranges.clone()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        // Wake the accept loop so that it sees the state is gone.
        let addr = self.endpoint.trim_start_matches("http://").to_string();
        let state = std::mem::take(&mut self.state);
        drop(state);
        let _ = TcpStream::connect(addr);
    }
}

struct Response {
    status: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    cut: Option<usize>,
}

fn respond(status: &'static str, body: impl Into<Vec<u8>>) -> Response {
    Response {
        status,
        headers: Vec::new(),
        body: body.into(),
        cut: None,
    }
}

fn serve(conn: TcpStream, state: &Mutex<State>, endpoint: &str) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.trim().eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    let resp = route(&method, &target, range, state, endpoint);
    write(conn, &method, resp)
}

fn write(mut conn: TcpStream, method: &str, r: Response) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        r.status,
        r.body.len()
    );
    for (k, v) in &r.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    if method != "HEAD" {
        let n = r.cut.unwrap_or(r.body.len()).min(r.body.len());
        conn.write_all(&r.body[..n])?;
    }
    conn.flush()?;
    conn.shutdown(std::net::Shutdown::Both)
}

fn route(
    method: &str,
    target: &str,
    range: Option<String>,
    state: &Mutex<State>,
    endpoint: &str,
) -> Response {
    if method != "GET" && method != "HEAD" {
        return respond("405 Method Not Allowed", "");
    }
    let path = target.split('?').next().unwrap_or_default();
    let mut st = lock(state);
    if let Some(rest) = path.strip_prefix("/api/models/") {
        let repo: Vec<&str> = rest.splitn(3, '/').collect();
        let id = repo.iter().take(2).copied().collect::<Vec<_>>().join("/");
        return match st.repos.get(&id) {
            Some((commit, files)) => {
                // As `?blobs=true` answers: the git blob id of each file (for an LFS file,
                // of its pointer) and the LFS SHA-256.
                let siblings: Vec<_> = files
                    .iter()
                    .map(|f| {
                        if f.lfs {
                            let pointer = format!(
                                "version https://git-lfs.github.com/spec/v1\noid sha256:{}\nsize {}\n",
                                f.etag(),
                                f.bytes.len()
                            );
                            serde_json::json!({ "rfilename": f.name,
                                "blobId": git_blob_id(pointer.as_bytes()),
                                "lfs": {"sha256": f.etag(), "size": f.bytes.len(),
                                        "pointerSize": pointer.len()} })
                        } else {
                            serde_json::json!({ "rfilename": f.name, "blobId": f.etag() })
                        }
                    })
                    .collect();
                let body = serde_json::json!({ "id": id, "sha": commit, "siblings": siblings });
                json(body)
            }
            None => respond("404 Not Found", r#"{"error":"Repository not found"}"#),
        };
    }
    if let Some(sha) = path.strip_prefix("/cdn/") {
        let found = st
            .repos
            .values()
            .flat_map(|(_, files)| files.iter())
            .find(|f| f.lfs && f.etag() == sha)
            .cloned();
        return match found {
            Some(f) => content(&mut st, &f, range),
            None => respond("404 Not Found", ""),
        };
    }
    // /OWNER/NAME/resolve/REV/FILE
    let segs: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
    let [owner, name, "resolve", _rev, file] = segs.as_slice() else {
        return respond("404 Not Found", "");
    };
    let id = format!("{owner}/{name}");
    let Some((commit, files)) = st.repos.get(&id).cloned() else {
        return respond("404 Not Found", r#"{"error":"Repository not found"}"#);
    };
    let Some(f) = files.iter().find(|f| f.name == *file).cloned() else {
        return respond("404 Not Found", r#"{"error":"Entry not found"}"#);
    };
    let etag = f.etag();
    if f.lfs {
        let mut r = respond("302 Found", "");
        r.headers = vec![
            ("Location".into(), format!("{endpoint}/cdn/{etag}")),
            ("X-Linked-Etag".into(), format!("\"{etag}\"")),
            ("X-Linked-Size".into(), f.bytes.len().to_string()),
            ("X-Repo-Commit".into(), commit),
            ("ETag".into(), "\"git-pointer\"".into()),
        ];
        return r;
    }
    let mut r = content(&mut st, &f, range);
    r.headers.push(("ETag".into(), format!("\"{etag}\"")));
    r.headers.push(("X-Repo-Commit".into(), commit));
    r
}

fn json(v: serde_json::Value) -> Response {
    let mut r = respond("200 OK", v.to_string());
    r.headers
        .push(("Content-Type".into(), "application/json".into()));
    r
}

/// The bytes of `f`, or the range asked for.
fn content(st: &mut State, f: &StandInFile, range: Option<String>) -> Response {
    let total = f.bytes.len();
    let mut bytes = f.bytes.clone();
    if st.corrupt {
        if let Some(b) = bytes.last_mut() {
            *b ^= 0xff;
        }
    }
    st.ranges.push(range.clone().unwrap_or_else(|| "-".into()));
    let (start, end) = match range.as_deref().and_then(|r| r.strip_prefix("bytes=")) {
        Some(r) => {
            let (a, b) = r.split_once('-').unwrap_or((r, ""));
            let a: usize = a.parse().unwrap_or(0);
            let b: usize = b.parse().map(|b: usize| b + 1).unwrap_or(total).min(total);
            (a, b)
        }
        None => (0, total),
    };
    if start >= total.max(1) || start > end {
        let mut r = respond("416 Range Not Satisfiable", "");
        r.headers
            .push(("Content-Range".into(), format!("bytes */{total}")));
        return r;
    }
    let partial = range.is_some();
    let mut r = respond(
        if partial {
            "206 Partial Content"
        } else {
            "200 OK"
        },
        bytes[start..end].to_vec(),
    );
    if partial {
        r.headers.push((
            "Content-Range".into(),
            format!("bytes {start}-{}/{total}", end.saturating_sub(1)),
        ));
    }
    if st.cut_after.is_some_and(|n| end - start > n) {
        r.cut = st.cut_after.take();
    }
    r
}

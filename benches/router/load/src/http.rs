//! Just enough HTTP/1.1 for the router's API over plain TCP: one request per connection
//! (`Connection: close`), a JSON body out, the whole body back; and a streamed `GET` whose
//! chunked body is read chunk by chunk (a tail session).

use std::io::{BufRead, BufReader, Read, Write as _};
use std::net::TcpStream;

use anyhow::{Context, bail};

/// An `http://host:port` base and a path.
#[derive(Debug, Clone)]
pub struct Url {
    /// `host:port`, to connect to and to send as `Host`.
    pub authority: String,
    /// From the first `/` on (`/` when none).
    pub path: String,
}

impl Url {
    /// Reads `http://host:port/path`.
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .with_context(|| format!("{url}: only http:// URLs are supported"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            bail!("{url}: no host");
        }
        let authority = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:80")
        };
        Ok(Url {
            authority,
            path: path.to_owned(),
        })
    }

    /// The same host with another path.
    pub fn with_path(&self, path: &str) -> Url {
        Url {
            authority: self.authority.clone(),
            path: path.to_owned(),
        }
    }
}

fn send_request(
    url: &Url,
    method: &str,
    key: Option<&str>,
    accept: &str,
    body: Option<&serde_json::Value>,
) -> anyhow::Result<TcpStream> {
    let mut stream = TcpStream::connect(&url.authority)
        .with_context(|| format!("connecting to {}", url.authority))?;
    stream.set_nodelay(true)?;
    let body = body.map(serde_json::Value::to_string).unwrap_or_default();
    let mut req = format!(
        "{method} {} HTTP/1.1\r\nHost: {}\r\nAccept: {accept}\r\nConnection: close\r\nContent-Length: {}\r\n",
        url.path,
        url.authority,
        body.len()
    );
    if let Some(key) = key {
        req.push_str(&format!("Authorization: Bearer {key}\r\n"));
    }
    if !body.is_empty() {
        req.push_str("Content-Type: application/json\r\n");
    }
    req.push_str("\r\n");
    req.push_str(&body);
    stream.write_all(req.as_bytes())?;
    Ok(stream)
}

/// The status line and headers: the status and whether the body is chunked.
fn read_head<R: BufRead>(r: &mut R) -> anyhow::Result<(u16, bool)> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP response: {line:?}"))?;
    let mut chunked = false;
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            bail!("the response ended inside its headers");
        }
        let l = line.trim_end();
        if l.is_empty() {
            return Ok((status, chunked));
        }
        if let Some((name, value)) = l.split_once(':')
            && name.eq_ignore_ascii_case("transfer-encoding")
            && value.trim().eq_ignore_ascii_case("chunked")
        {
            chunked = true;
        }
    }
}

/// Reads one chunk of a chunked body into `out` (replacing it); `false` at the last chunk.
fn read_chunk<R: BufRead>(r: &mut R, out: &mut Vec<u8>) -> anyhow::Result<bool> {
    let mut size = String::new();
    if r.read_line(&mut size)? == 0 {
        return Ok(false);
    }
    let hex = size.trim_end().split(';').next().unwrap_or("");
    let n = usize::from_str_radix(hex, 16).with_context(|| format!("bad chunk size {size:?}"))?;
    out.resize(n, 0);
    r.read_exact(out)?;
    let mut crlf = [0u8; 2];
    r.read_exact(&mut crlf)?;
    Ok(n > 0)
}

/// Sends one request and reads the whole response: its status and body.
pub fn call(
    url: &Url,
    method: &str,
    key: Option<&str>,
    body: Option<&serde_json::Value>,
) -> anyhow::Result<(u16, Vec<u8>)> {
    let stream = send_request(url, method, key, "application/json", body)?;
    let mut r = BufReader::new(stream);
    let (status, chunked) = read_head(&mut r)?;
    let mut body = Vec::new();
    if chunked {
        let mut chunk = Vec::new();
        while read_chunk(&mut r, &mut chunk)? {
            body.extend_from_slice(&chunk);
        }
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok((status, body))
}

/// Sends a request that must answer `want` with a JSON body, and returns that body.
pub fn json(
    url: &Url,
    method: &str,
    key: Option<&str>,
    body: Option<&serde_json::Value>,
    want: u16,
) -> anyhow::Result<serde_json::Value> {
    let (status, bytes) = call(url, method, key, body)?;
    if status != want {
        bail!(
            "{method} {}: {status} (wanted {want}): {}",
            url.path,
            String::from_utf8_lossy(&bytes)
        );
    }
    serde_json::from_slice(&bytes).with_context(|| format!("{method} {}: not JSON", url.path))
}

/// A streamed response body, read chunk by chunk.
#[derive(Debug)]
pub struct Stream {
    reader: BufReader<TcpStream>,
    chunked: bool,
    /// The socket, to end the stream from another thread.
    pub socket: TcpStream,
}

impl Stream {
    /// `GET url` with `accept`; fails unless the answer is 200.
    pub fn get(url: &Url, accept: &str) -> anyhow::Result<Self> {
        let stream = send_request(url, "GET", None, accept, None)?;
        let socket = stream.try_clone()?;
        let mut reader = BufReader::with_capacity(256 * 1024, stream);
        let (status, chunked) = read_head(&mut reader)?;
        if status != 200 {
            let mut body = Vec::new();
            let _ = reader.read_to_end(&mut body);
            bail!(
                "GET {}: {status}: {}",
                url.path,
                String::from_utf8_lossy(&body)
            );
        }
        Ok(Stream {
            reader,
            chunked,
            socket,
        })
    }

    /// The next piece of the body into `out`; `false` at its end (or when the socket is shut).
    pub fn next(&mut self, out: &mut Vec<u8>) -> bool {
        if self.chunked {
            return read_chunk(&mut self.reader, out).unwrap_or(false);
        }
        out.resize(64 * 1024, 0);
        match self.reader.read(out) {
            Ok(n) if n > 0 => {
                out.truncate(n);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let u = Url::parse("http://127.0.0.1:8601/log-sessions/abc").unwrap();
        assert_eq!(
            (u.authority.as_str(), u.path.as_str()),
            ("127.0.0.1:8601", "/log-sessions/abc")
        );
        let u = Url::parse("http://localhost").unwrap();
        assert_eq!(
            (u.authority.as_str(), u.path.as_str()),
            ("localhost:80", "/")
        );
        assert!(Url::parse("https://x").is_err());
    }

    #[test]
    fn chunked_bodies() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;x=y\r\n ab\r\n0\r\n\r\n";
        let mut r = BufReader::new(&raw[..]);
        assert_eq!(read_head(&mut r).unwrap(), (200, true));
        let mut c = Vec::new();
        assert!(read_chunk(&mut r, &mut c).unwrap());
        assert_eq!(c, b"hello");
        assert!(read_chunk(&mut r, &mut c).unwrap());
        assert_eq!(c, b" ab");
        assert!(!read_chunk(&mut r, &mut c).unwrap());
    }
}

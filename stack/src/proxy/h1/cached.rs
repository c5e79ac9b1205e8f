//! The HTTP cache on the forwarding path: what the exchange step asks it before `Mesh::pick`
//! (`before`: answer from memory, wait for another request's miss, or go to a dyno, with
//! conditional headers when a stale entry is to be revalidated), how a stored answer is
//! written (`answer_head`), and what is kept of a dyno's answer while it passes (`Storing`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use std::rc::Rc;

use crate::cache::policy::{self, Meta};
use crate::cache::store::{Flight, Found, Landing, Stored, VaryValues};
use crate::cache::{HttpCache, Outcome};
use crate::proxy::h1::chunked::ChunkedDecoder;
use crate::proxy::h1::conn::{MAX_HEADERS, Request, Worker};
use crate::proxy::h1::forward::push_header;
use crate::proxy::h1::framing::Remaining;
use crate::proxy::h1::io;
use crate::proxy::h1::response::{self, Framing};
use crate::proxy::headers::VIA;

/// A request's dealings with the cache, on its way to a dyno.
#[derive(Debug)]
pub(crate) struct Caching {
    pub cache: Arc<HttpCache>,
    /// Its URL: host and path.
    pub key: String,
    /// The entry it has that is not fresh: revalidated (`revalidating`), or answered if the
    /// dyno fails (`stale-if-error`).
    pub stale: Option<Arc<Stored>>,
    pub revalidating: bool,
    /// The lead of the misses for its URL, when it is.
    pub flight: Option<Flight>,
    /// What the line says when a dyno answers (`miss` or `pass`).
    pub outcome: Outcome,
    /// The answer being kept, when it can be.
    pub storing: Option<Storing>,
}

/// A dyno's answer being kept as it passes.
#[derive(Debug)]
pub(crate) struct Storing {
    pub status: u16,
    pub reason: Box<str>,
    pub headers: Vec<(Box<str>, Box<[u8]>)>,
    pub vary: VaryValues,
    pub meta: Meta,
    pub body: Vec<u8>,
}

/// What the cache makes of a request.
#[derive(Debug)]
pub(crate) enum Before {
    /// It is answered from memory.
    Answer(Arc<Stored>, Outcome),
    /// It goes to a dyno (with the cache's part in it, if it has one).
    Forward(Option<Box<Caching>>),
    /// It is answered with another request's answer as that comes (coalesced).
    Stream(Arc<Landing>),
}

/// The value of header `name` in `head`, a head as `forward::request_head` wrote it (one
/// header a line, `name: value`).
pub(crate) fn request_value<'h>(head: &'h [u8], name: &str) -> Option<&'h [u8]> {
    let name = name.as_bytes();
    // Each line starts after a `\n`; only one that has `name:` there is looked at further.
    memchr::memchr_iter(b'\n', head).find_map(|end| {
        let line = &head[end + 1..];
        if line.get(name.len()) != Some(&b':') || !line[..name.len()].eq_ignore_ascii_case(name) {
            return None;
        }
        let value = &line[name.len() + 1..];
        let value = &value[..memchr::memchr(b'\n', value).unwrap_or(value.len())];
        Some(value.trim_ascii())
    })
}

/// Asks the cache about `req` for `host` and `path`, whose head for the dyno is `out`
/// (conditional headers are added to it when a stale entry is revalidated). A miss another
/// request is already fetching waits for it, `wait` at most.
pub(crate) async fn before(
    cache: &Arc<HttpCache>,
    req: &Request,
    host: &str,
    path: &str,
    out: &mut Vec<u8>,
    wait: Duration,
) -> Before {
    let key = format!("{host}\n{path}");
    if !req.get && !req.head {
        // An unsafe method changes what the URL's entries said (RFC 9111 §4.4).
        if req.unsafe_method {
            cache.store().invalidate(&key);
        }
        return Before::Forward(None);
    }
    let store = cache.store().clone();
    let mut waited = false;
    loop {
        let found = store.lookup(&key, |name| request_value(out, name));
        let mut caching = Caching {
            cache: cache.clone(),
            key: key.clone(),
            stale: None,
            revalidating: false,
            flight: None,
            outcome: Outcome::Miss,
            storing: None,
        };
        let now = Instant::now();
        match found {
            Found::Stored(stored) if stored.fresh(now) => {
                let outcome = if waited {
                    Outcome::Coalesced
                } else {
                    Outcome::Hit
                };
                return Before::Answer(stored, outcome);
            }
            Found::Stored(stored) if stored.usable_while_revalidating(now) => {
                return Before::Answer(stored, Outcome::Stale);
            }
            Found::Stored(stored) => {
                let conditional = request_value(out, "if-none-match").is_some()
                    || request_value(out, "if-modified-since").is_some();
                if !conditional && add_validators(out, &stored) {
                    caching.revalidating = true;
                }
                caching.stale = Some(stored);
                return Before::Forward(Some(Box::new(caching)));
            }
            Found::Pass => {
                caching.outcome = Outcome::Pass;
                return Before::Forward(Some(Box::new(caching)));
            }
            Found::Nothing if waited => return Before::Forward(Some(Box::new(caching))),
            Found::Nothing => match store.fly(&key) {
                Ok(flight) => {
                    caching.flight = Some(flight);
                    return Before::Forward(Some(Box::new(caching)));
                }
                Err(landing) => {
                    // Until the lead's answer can be streamed, or the lead is over (then the
                    // cache is asked again: stored, passed, or nothing).
                    let deadline = tokio::time::Instant::now() + wait;
                    loop {
                        let changed = landing.changed.notified();
                        tokio::pin!(changed);
                        changed.as_mut().enable();
                        let (head, over) = landing.with(|s| (s.head.is_some(), s.over));
                        if head && !over {
                            return Before::Stream(landing.clone());
                        }
                        if over || tokio::time::timeout_at(deadline, changed).await.is_err() {
                            break;
                        }
                    }
                    waited = true;
                }
            },
        }
    }
}

/// Adds the stored entry's validators to the head for the dyno (before its blank line):
/// whether it had any.
fn add_validators(out: &mut Vec<u8>, stored: &Stored) -> bool {
    if stored.meta.etag.is_none() && stored.meta.last_modified.is_none() {
        return false;
    }
    // The head ends with its blank line.
    out.truncate(out.len().saturating_sub(2));
    if let Some(etag) = &stored.meta.etag {
        push_header(out, "if-none-match", etag);
    }
    if let Some(at) = stored.meta.last_modified {
        push_header(
            out,
            "if-modified-since",
            httpdate::fmt_http_date(at).as_bytes(),
        );
    }
    out.extend_from_slice(b"\r\n");
    true
}

/// Whether the client's own conditional request (in `head`) is met by `stored`: its copy is
/// current, and a 304 is the answer.
pub(crate) fn not_modified(head: &[u8], stored: &Stored) -> bool {
    if let Some(tags) = request_value(head, "if-none-match") {
        let Some(etag) = &stored.meta.etag else {
            return false;
        };
        let weak = |t: &[u8]| t.strip_prefix(b"W/").unwrap_or(t).to_vec();
        return tags
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
            .any(|t| t == b"*" || weak(t) == weak(etag));
    }
    match (
        request_value(head, "if-modified-since").and_then(policy::http_date),
        stored.meta.last_modified,
    ) {
        (Some(since), Some(modified)) => modified <= since,
        _ => false,
    }
}

/// Writes into `out` (cleared first) the head of a stored answer, `age` seconds old, for a
/// client that speaks HTTP/1.1 (`http11`) and keeps the connection (`keep_alive`); a 304
/// when `not_modified`; `length`: the body's, when it is not the stored body's (an answer
/// still arriving).
pub(crate) fn answer_head(
    out: &mut Vec<u8>,
    stored: &Stored,
    age: u64,
    http11: bool,
    keep_alive: bool,
    not_modified: bool,
    length: Option<u64>,
) {
    use std::io::Write as _;
    out.clear();
    if not_modified {
        out.extend_from_slice(b"HTTP/1.1 304 Not Modified\r\n");
    } else {
        let _ = write!(out, "HTTP/1.1 {} ", stored.status);
        out.extend_from_slice(stored.reason.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in &stored.headers {
        // A 304 carries what describes the entry, not its body (RFC 9110 §15.4.5).
        if not_modified
            && !matches!(
                &**name,
                n if n.eq_ignore_ascii_case("etag")
                    || n.eq_ignore_ascii_case("cache-control")
                    || n.eq_ignore_ascii_case("expires")
                    || n.eq_ignore_ascii_case("vary")
                    || n.eq_ignore_ascii_case("date")
                    || n.eq_ignore_ascii_case("last-modified")
                    || n.eq_ignore_ascii_case("content-location")
            )
        {
            continue;
        }
        push_header(out, name, value);
    }
    let _ = write!(out, "age: {age}\r\nvia: {VIA}\r\n");
    if !not_modified {
        let length = length.unwrap_or(stored.body.len() as u64);
        let _ = write!(out, "content-length: {length}\r\n");
    }
    if !keep_alive {
        out.extend_from_slice(b"connection: close\r\n");
    } else if !http11 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Starts keeping a dyno's answer (`status`, `reason`, `fields`) to the request whose head
/// for the dyno is `request`, when it may be stored; `None` (a pass) when not.
pub(crate) fn storing(
    req: &Request,
    request: &[u8],
    status: u16,
    reason: &str,
    fields: &[httparse::Header<'_>],
    max_object: usize,
    declared: Option<u64>,
) -> Option<Storing> {
    let credentials = request_value(request, "authorization").is_some()
        || request_value(request, "cookie").is_some();
    let meta = policy::storable(req.get, status, fields, credentials, SystemTime::now()).ok()?;
    if declared.is_some_and(|n| n > max_object as u64) {
        return None;
    }
    let kept = |name: &str| {
        !matches!(
            name.to_ascii_lowercase().as_str(),
            "connection"
                | "keep-alive"
                | "proxy-connection"
                | "te"
                | "trailer"
                | "transfer-encoding"
                | "upgrade"
                | "content-length"
                | "age"
                | "via"
                | "proxy-authenticate"
                | "proxy-authorization"
        )
    };
    let headers = fields
        .iter()
        .filter(|f| kept(f.name))
        .map(|f| (Box::from(f.name), Box::from(f.value)))
        .collect();
    let vary = meta
        .vary
        .iter()
        .map(|name| {
            let value = request_value(request, name).map(Box::from);
            (Box::from(name.as_str()), value)
        })
        .collect();
    Some(Storing {
        status,
        reason: Box::from(reason),
        headers,
        vary,
        meta,
        body: Vec::new(),
    })
}

impl Storing {
    /// Its head, to share with the misses waiting on it (the body left out).
    pub(crate) fn head(&self) -> Stored {
        Stored {
            status: self.status,
            reason: self.reason.clone(),
            headers: self.headers.clone(),
            body: bytes::Bytes::new(),
            vary: self.vary.clone(),
            at: Instant::now(),
            meta: self.meta.clone(),
        }
    }

    /// The answer as stored now.
    pub(crate) fn into_stored(self) -> Stored {
        Stored {
            status: self.status,
            reason: self.reason,
            headers: self.headers,
            body: self.body.into(),
            vary: self.vary,
            at: Instant::now(),
            meta: self.meta,
        }
    }
}

/// `stored` confirmed by the dyno's 304 (`fields`): stored again from now, with what the 304
/// says of its freshness when it says.
pub(crate) fn refreshed(stored: &Stored, fields: &[httparse::Header<'_>]) -> Stored {
    let meta = policy::storable(true, 200, fields, false, SystemTime::now())
        .map(|fresh| Meta {
            etag: fresh.etag.or_else(|| stored.meta.etag.clone()),
            last_modified: fresh.last_modified.or(stored.meta.last_modified),
            vary: stored.meta.vary.clone(),
            ..fresh
        })
        .unwrap_or_else(|_| Meta {
            initial_age: 0,
            ..stored.meta.clone()
        });
    Stored {
        status: stored.status,
        reason: stored.reason.clone(),
        headers: stored.headers.clone(),
        body: stored.body.clone(),
        vary: stored.vary.clone(),
        at: Instant::now(),
        meta,
    }
}

/// Refreshes `stored`, answered stale under `stale-while-revalidate`, in the background: the
/// request (`head`, as the dyno would have had it, no body) goes to a dyno with the entry's
/// validators; a 304 or a storable answer replaces the entry. One refresh a URL at a time
/// (it leads the URL's misses); bounded by the request timeout and the largest object.
pub(crate) async fn refresh(
    worker: Rc<Worker>,
    cache: Arc<HttpCache>,
    key: String,
    mut head: Vec<u8>,
    stored: Arc<Stored>,
) {
    let Ok(flight) = cache.store().fly(&key) else {
        return;
    };
    let proxy = worker.proxy.clone();
    let config = proxy.config();
    add_validators(&mut head, &stored);
    let fetched = tokio::time::timeout(config.response_timeout, async {
        let lease = proxy.mesh().pick(config.boot_wait).await.ok()?;
        let mut dyno = match worker.pool.take(lease.addr) {
            Some(dyno) => dyno,
            None => {
                io::connect(lease.addr, config.connect_timeout)
                    .await
                    .ok()?
                    .0
            }
        };
        io::write_all(&mut dyno, &mut [std::io::IoSlice::new(&head)])
            .await
            .ok()?;
        let fetched = fetch(&mut dyno, &head, &stored, cache.store().max_object()).await?;
        if fetched.1 {
            worker.pool.give_back(lease.addr, dyno);
        }
        Some(fetched.0)
    })
    .await;
    if let Ok(Some(fresh)) = fetched {
        cache.store().insert(&key, fresh);
    }
    drop(flight);
}

/// Reads a dyno's answer to a refresh of `stored` (the request `head`): the entry to store,
/// and whether the connection is clean to reuse; `None` when there is nothing to store.
async fn fetch(
    dyno: &mut tokio::net::TcpStream,
    head: &[u8],
    stored: &Stored,
    max_object: usize,
) -> Option<(Stored, bool)> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::with_capacity(4096);
    loop {
        if dyno.read_buf(&mut buf).await.ok()? == 0 || buf.len() > 64 << 10 {
            return None;
        }
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let Some((answer, fields)) = response::parse(&buf, &mut slots, false).ok()? else {
            continue;
        };
        if answer.status == 304 {
            let clean = answer.keep_alive && buf.len() == answer.len;
            return Some((refreshed(stored, fields), clean));
        }
        let declared = match answer.framing {
            Framing::Length(n) => Some(n),
            _ => None,
        };
        let req = Request::bodiless(false);
        let mut keeping = storing(
            &req,
            head,
            answer.status,
            answer.reason,
            fields,
            max_object,
            declared,
        )?;
        let (len, framing, keep_alive) = (answer.len, answer.framing, answer.keep_alive);
        let mut body = match framing {
            Framing::Empty => Remaining::Length(0),
            Framing::Length(n) => Remaining::Length(n),
            Framing::Chunked => Remaining::Chunked(ChunkedDecoder::default()),
            Framing::UntilClose => Remaining::UntilClose,
        };
        buf.drain(..len);
        loop {
            let mut over = false;
            let taken = body
                .take(&buf, |d| {
                    over |= keeping.body.len() + d.len() > max_object;
                    if !over {
                        keeping.body.extend_from_slice(d);
                    }
                })
                .ok()?;
            if over {
                return None;
            }
            if taken.done {
                let clean = keep_alive && taken.len == buf.len();
                return Some((keeping.into_stored(), clean));
            }
            buf.clear();
            if dyno.read_buf(&mut buf).await.ok()? == 0 {
                return (framing == Framing::UntilClose).then(|| (keeping.into_stored(), false));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_values_are_found_in_a_written_head() {
        let head = b"GET / HTTP/1.1\r\nhost: a\r\nAccept-Encoding:  gzip \r\n\r\n";
        assert_eq!(request_value(head, "accept-encoding"), Some(&b"gzip"[..]));
        assert_eq!(request_value(head, "cookie"), None);
    }
}

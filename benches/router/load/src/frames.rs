//! Syslog frames as the router receives them: RFC 6587 octet counting around an RFC 5424
//! message in Logplex's form, `<PRI>1 TIMESTAMP host TOKEN PROCID - MSG`, the ingest token in
//! the APP-NAME field. The messages are Heroku router lines, about 200 bytes a frame.

use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, now.
pub fn unix_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Appends `micros` (since the Unix epoch, UTC) as RFC 3339 with microseconds:
/// `2026-11-21T12:00:00.123456+00:00`.
pub fn write_rfc3339(out: &mut Vec<u8>, micros: i64) {
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}+00:00",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    );
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01); Howard Hinnant's
/// `civil_from_days`.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Appends one octet-counted frame: the syslog header, then `msg`.
pub fn push_frame(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    token: &str,
    proc_id: &str,
    micros: i64,
    msg: &[u8],
) {
    scratch.clear();
    // local3.info, as Heroku's router.
    scratch.extend_from_slice(b"<158>1 ");
    write_rfc3339(scratch, micros);
    scratch.extend_from_slice(b" host ");
    scratch.extend_from_slice(token.as_bytes());
    scratch.push(b' ');
    scratch.extend_from_slice(proc_id.as_bytes());
    scratch.extend_from_slice(b" - ");
    scratch.extend_from_slice(msg);
    let _ = write!(out, "{} ", scratch.len());
    out.extend_from_slice(scratch);
}

/// A small seeded generator (xorshift64*): the same seed gives the same lines.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len() as u64) as usize]
    }
}

const METHODS: &[&str] = &["GET", "GET", "GET", "GET", "POST", "POST", "PUT", "DELETE"];
const PATHS: &[&str] = &[
    "/",
    "/products/",
    "/api/v1/items/",
    "/cart",
    "/login",
    "/search",
    "/assets/app.js",
    "/users/",
];
const STATUSES: &[&str] = &[
    "200", "200", "200", "200", "201", "204", "301", "304", "404", "500",
];

/// Appends a Heroku router line's message (about 110 bytes; path, status, service time and
/// sizes vary).
pub fn router_message(out: &mut Vec<u8>, rng: &mut Rng) {
    let method = rng.pick(METHODS);
    let path = rng.pick(PATHS);
    let id = rng.below(100_000);
    let rid = rng.next_u64() as u32;
    let dyno = rng.below(4) + 1;
    let connect = rng.below(3);
    // Mostly fast, a long tail of slow ones.
    let slowest = rng.below(400) + 1;
    let service = 1 + rng.below(slowest);
    let status = rng.pick(STATUSES);
    let bytes = 100 + rng.below(20_000);
    let _ = write!(
        out,
        "at=info method={method} path=\"{path}{id}\" request_id={rid:08x} dyno=web.{dyno} connect={connect}ms service={service}ms status={status} bytes={bytes}"
    );
}

/// Frames built once and sent round and round: frame `i` carries token `i % tokens.len()`, so
/// `n` consecutive frames from index 0 give each token `n / tokens.len()` lines when that
/// divides.
#[derive(Debug)]
pub struct Pool {
    buf: Vec<u8>,
    /// `ends[i]`: where frame `i` ends in `buf`.
    ends: Vec<usize>,
}

impl Pool {
    /// About `size` frames (rounded up to a multiple of the number of tokens), their timestamps
    /// a millisecond apart from `start_micros`. With `l2met`, each message also carries l2met
    /// metrics (`source=web.N measure#db.latency=…ms count#requests=1`), so that metric
    /// extraction has work on every line.
    pub fn new(tokens: &[String], size: usize, start_micros: i64, l2met: bool) -> Self {
        let n = size.div_ceil(tokens.len()) * tokens.len();
        let mut rng = Rng::new(42);
        let (mut buf, mut ends) = (Vec::with_capacity(n * 220), Vec::with_capacity(n));
        let (mut msg, mut scratch) = (Vec::with_capacity(256), Vec::with_capacity(256));
        for i in 0..n {
            msg.clear();
            router_message(&mut msg, &mut rng);
            if l2met {
                let _ = write!(
                    msg,
                    " source=web.{} measure#db.latency={}ms count#requests=1",
                    rng.below(4) + 1,
                    rng.below(50) + 1
                );
            }
            let micros = start_micros + i as i64 * 1000;
            push_frame(
                &mut buf,
                &mut scratch,
                &tokens[i % tokens.len()],
                "router",
                micros,
                &msg,
            );
            ends.push(buf.len());
        }
        Pool { buf, ends }
    }

    /// Frames in the pool.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Bytes of all its frames.
    pub fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// The bytes of frames `from..to` (`to <= len()`), contiguous.
    pub fn slice(&self, from: usize, to: usize) -> &[u8] {
        let start = if from == 0 { 0 } else { self.ends[from - 1] };
        let end = if to == 0 { 0 } else { self.ends[to - 1] };
        &self.buf[start..end]
    }

    /// The bytes of `count` frames from `from`, going round: one or more slices.
    pub fn frames(&self, from: usize, count: usize) -> impl Iterator<Item = &[u8]> + '_ {
        let mut at = from % self.len();
        let mut left = count;
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            let k = left.min(self.len() - at);
            let s = self.slice(at, at + k);
            at = (at + k) % self.len();
            left -= k;
            Some(s)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_instants() {
        let mut out = Vec::new();
        write_rfc3339(&mut out, 0);
        out.push(b' ');
        // 2026-11-21T12:00:00.123456Z
        write_rfc3339(&mut out, 1_795_262_400_123_456);
        out.push(b' ');
        write_rfc3339(&mut out, 951_782_400_000_001); // 2000-02-29
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1970-01-01T00:00:00.000000+00:00 2026-11-21T12:00:00.123456+00:00 2000-02-29T00:00:00.000001+00:00"
        );
    }

    #[test]
    fn frames_are_octet_counted_and_go_round() {
        let tokens = vec!["t.a".to_owned(), "t.b".to_owned()];
        let pool = Pool::new(&tokens, 5, 1_795_262_400_000_000, false);
        assert_eq!(pool.len(), 6);
        let all = pool.slice(0, pool.len());
        let mut rest = all;
        let mut apps = Vec::new();
        while !rest.is_empty() {
            let sp = rest.iter().position(|&b| b == b' ').unwrap();
            let n: usize = std::str::from_utf8(&rest[..sp]).unwrap().parse().unwrap();
            let frame = std::str::from_utf8(&rest[sp + 1..sp + 1 + n]).unwrap();
            assert!(frame.starts_with("<158>1 2026-11-21T12:00:00"), "{frame}");
            assert!(frame.contains(" router - at=info method="), "{frame}");
            apps.push(frame.split(' ').nth(3).unwrap().to_owned());
            rest = &rest[sp + 1 + n..];
        }
        assert_eq!(apps, ["t.a", "t.b", "t.a", "t.b", "t.a", "t.b"]);
        let round: Vec<u8> = pool.frames(4, 4).flatten().copied().collect();
        let want: Vec<u8> = [pool.slice(4, 6), pool.slice(0, 2)].concat();
        assert_eq!(round, want);
    }
}

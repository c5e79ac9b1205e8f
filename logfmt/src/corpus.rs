//! A deterministic generator of real-shaped log lines (Heroku router lines, router errors,
//! app lines with quoted messages and escapes, l2met metrics, runtime metrics, dyno state
//! lines), shared by the benches, the differential tests and `benches/peers/logfmt.sh`.

/// What the generator writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mix {
    /// Only router lines (`at=info method=GET path=… status=200 …`), 1 in 10 an error line.
    Router,
    /// What an app's stream looks like: router lines, app lines, metrics, state changes.
    Platform,
}

/// A small, fast, seeded generator (xorshift64*): the same seed gives the same corpus.
#[derive(Clone, Debug)]
pub struct Corpus {
    state: u64,
    mix: Mix,
}

const METHODS: &[&str] = &[
    "GET", "GET", "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD",
];
const PATHS: &[&str] = &[
    "/",
    "/api/v1/items",
    "/api/v1/items/",
    "/login",
    "/assets/app-3f9a.js",
    "/search",
    "/users/",
    "/healthz",
];
const HOSTS: &[&str] = &[
    "shop.example.com",
    "api.example.com",
    "myapp.paas.local",
    "www.example.org",
];
const ERRORS: &[(&str, &str, u16)] = &[
    ("H12", "Request timeout", 503),
    ("H10", "App crashed", 503),
    ("H13", "Connection closed without response", 503),
    ("H14", "No web dynos running", 503),
    ("H27", "Client Request Interrupted", 499),
    ("H18", "Server Request Interrupted", 503),
];
const WORDS: &[&str] = &[
    "user",
    "signed",
    "in",
    "cart",
    "updated",
    "payment",
    "failed",
    "retrying",
    "cache",
    "miss",
    "order",
    "shipped",
    "token",
    "refreshed",
    "queue",
    "drained",
];

impl Corpus {
    /// A generator of `mix` lines from `seed`.
    pub fn new(mix: Mix, seed: u64) -> Self {
        Corpus {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            mix,
        }
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn pick<'s>(&mut self, from: &[&'s str]) -> &'s str {
        from[self.below(from.len() as u64) as usize]
    }

    /// Appends one line (no newline) to `out`.
    pub fn line(&mut self, out: &mut String) {
        use std::fmt::Write as _;
        let roll = self.below(100);
        let kind = match self.mix {
            Mix::Router => {
                if roll < 90 {
                    0
                } else {
                    1
                }
            }
            Mix::Platform => match roll {
                0..=49 => 0,
                50..=54 => 1,
                55..=79 => 2,
                80..=89 => 3,
                90..=94 => 4,
                _ => 5,
            },
        };
        let _ = match kind {
            0 => {
                let method = self.pick(METHODS);
                let path = self.pick(PATHS);
                let (id, q) = (self.below(100_000), self.below(10));
                let host = self.pick(HOSTS);
                let rid = self.next_u64();
                let rid2 = self.next_u64() as u32;
                let ip = self.next_u64();
                let dyno = self.below(8) + 1;
                let connect = self.below(3);
                let service = self.below(400) + 1;
                let status = [200, 200, 200, 201, 204, 301, 304, 404][self.below(8) as usize];
                let bytes = self.below(20_000) + 100;
                write!(
                    out,
                    "at=info method={method} path=\"{path}{id}?x={q}\" host={host} request_id={rid:016x}-{rid2:08x} fwd=\"{}.{}.{}.{}\" dyno=web.{dyno} connect={connect}ms service={service}ms status={status} bytes={bytes} protocol=https",
                    ip & 255,
                    (ip >> 8) & 255,
                    (ip >> 16) & 255,
                    (ip >> 24) & 255
                )
            }
            1 => {
                let (code, desc, status) = ERRORS[self.below(ERRORS.len() as u64) as usize];
                let method = self.pick(METHODS);
                let path = self.pick(PATHS);
                let host = self.pick(HOSTS);
                let rid = self.next_u64();
                let dyno = self.below(8) + 1;
                let service = 30_000 + self.below(2_000);
                write!(
                    out,
                    "at=error code={code} desc=\"{desc}\" method={method} path=\"{path}\" host={host} request_id={rid:016x} fwd=\"10.1.{}.{}\" dyno=web.{dyno} connect=0ms service={service}ms status={status} bytes=0 protocol=https",
                    self.below(256),
                    self.below(256)
                )
            }
            2 => {
                let n = 2 + self.below(6) as usize;
                let mut msg = String::new();
                for i in 0..n {
                    if i > 0 {
                        msg.push(' ');
                    }
                    msg.push_str(self.pick(WORDS));
                }
                let level = ["info", "info", "debug", "warn", "error"][self.below(5) as usize];
                let escaped = match self.below(4) {
                    0 => " detail=\"said \\\"hi\\\"\\n\\tthen left\"",
                    1 => " path=\"C:\\\\temp\\\\x\"",
                    2 => " note=\"caf\\u00e9 \\ud83d\\ude00\"",
                    _ => "",
                };
                write!(
                    out,
                    "level={level} msg=\"{msg}\" user_id={} elapsed={}.{:03}s{escaped} measure#db.latency={}ms count#app.events=1",
                    self.below(1_000_000),
                    self.below(3),
                    self.below(1000),
                    self.below(200)
                )
            }
            3 => write!(
                out,
                "source=web.{} dyno=heroku.{}.{:08x} sample#load_avg_1m={}.{:02} sample#load_avg_5m=0.{:02} sample#memory_total={}.{:02}MB sample#memory_rss={}.{:02}MB sample#memory_cache=0.00MB sample#memory_swap=0.00MB sample#memory_pgpgin={}pages sample#memory_pgpgout={}pages sample#memory_quota=512.00MB",
                self.below(4) + 1,
                self.below(1_000_000),
                self.next_u64() as u32,
                self.below(4),
                self.below(100),
                self.below(100),
                self.below(512),
                self.below(100),
                self.below(512),
                self.below(100),
                self.below(100_000),
                self.below(100_000)
            ),
            4 => write!(out, "State changed from starting to up"),
            _ => write!(
                out,
                "sql=\"SELECT * FROM items WHERE id = {}\" at=info duration={}.{}ms rows={} db=primary",
                self.below(10_000),
                self.below(50),
                self.below(10),
                self.below(100)
            ),
        };
    }

    /// `n` lines, each ended by a newline.
    pub fn lines(&mut self, n: usize) -> String {
        let mut out = String::with_capacity(n * 260);
        for _ in 0..n {
            self.line(&mut out);
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_corpus() {
        assert_eq!(
            Corpus::new(Mix::Platform, 7).lines(200),
            Corpus::new(Mix::Platform, 7).lines(200)
        );
        assert_ne!(
            Corpus::new(Mix::Platform, 7).lines(20),
            Corpus::new(Mix::Platform, 8).lines(20)
        );
    }

    #[test]
    fn every_generated_line_is_strict_logfmt() {
        let text = Corpus::new(Mix::Platform, 1).lines(5_000);
        for line in text.lines() {
            assert_eq!(crate::validate(line.as_bytes()), Ok(()), "{line}");
        }
    }

    #[test]
    fn router_lines_look_like_heroku_router_lines() {
        let text = Corpus::new(Mix::Router, 3).lines(50);
        let first = text.lines().next().unwrap();
        for key in [
            "at",
            "method",
            "path",
            "host",
            "request_id",
            "fwd",
            "dyno",
            "connect",
            "service",
            "status",
            "bytes",
            "protocol",
        ] {
            assert!(
                crate::get(first.as_bytes(), key.as_bytes()).is_some(),
                "{key} in {first}"
            );
        }
    }
}

//! Which lines a reader wants: `--source`, `--dyno` and a logfmt filter, the same for history,
//! tails and (later) queries.

use bytes::Bytes;

use crate::line::{LogLine, PLATFORM_SOURCE};

/// The platform's own processes: `--source router` means `source=paas` and process `router`,
/// so that `paas logs --source router` shows the router's lines. The database adapter's
/// (`postgres`, `heroku-postgres`) write under `app`, as Heroku Postgres does: `--source
/// postgres` means `source=app` and process `postgres`.
pub const PLATFORM_PROCESSES: &[&str] = &["router", "cache", "logplex", "proxy", "api"];

/// A reader's choice of lines. The default keeps every line.
#[derive(Clone, Debug, Default)]
pub struct LineFilter {
    source: Option<Bytes>,
    process: Option<Bytes>,
    dyno_prefix: Option<Bytes>,
    predicate: Option<logfmt::Predicate>,
}

impl LineFilter {
    /// Keeps lines whose source is `source` exactly; a platform process name (`router`,
    /// `cache`, `logplex`, `proxy`, `api`) means the platform's lines from that process, and
    /// the database adapter's (`postgres`, `heroku-postgres`) its `app[…]` lines.
    pub fn source(mut self, source: &str) -> Self {
        if crate::registry::RESERVED_APP_PROCESSES.contains(&source) {
            self.source = Some(Bytes::from_static(b"app"));
            self.process = Some(Bytes::copy_from_slice(source.as_bytes()));
        } else if PLATFORM_PROCESSES.contains(&source) {
            self.source = Some(Bytes::from_static(PLATFORM_SOURCE));
            self.process = Some(Bytes::copy_from_slice(source.as_bytes()));
        } else {
            self.source = Some(Bytes::copy_from_slice(source.as_bytes()));
        }
        self
    }

    /// Keeps lines of the process `dyno`, or of its type: `web` keeps `web.1` and `web.2`
    /// (but not `webhook.1`), `web.1` keeps only `web.1`.
    pub fn dyno(mut self, dyno: &str) -> Self {
        self.dyno_prefix = Some(Bytes::copy_from_slice(dyno.as_bytes()));
        self
    }

    /// Keeps lines whose message satisfies a logfmt predicate (`status>=500`).
    pub fn predicate(mut self, predicate: logfmt::Predicate) -> Self {
        self.predicate = Some(predicate);
        self
    }

    /// Whether it keeps every line (so a batch can be shared as it is).
    pub fn keeps_everything(&self) -> bool {
        self.source.is_none()
            && self.process.is_none()
            && self.dyno_prefix.is_none()
            && self.predicate.is_none()
    }

    /// Whether `line` is kept.
    pub fn matches(&self, line: &LogLine) -> bool {
        if self.source.as_ref().is_some_and(|s| *s != line.source) {
            return false;
        }
        if self.process.as_ref().is_some_and(|p| *p != line.process) {
            return false;
        }
        if let Some(d) = &self.dyno_prefix {
            let of_type = line
                .process
                .strip_prefix(&d[..])
                .is_some_and(|rest| rest.is_empty() || rest[0] == b'.');
            if !of_type {
                return false;
            }
        }
        self.predicate
            .as_ref()
            .is_none_or(|p| p.matches(&line.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::tests::line;

    #[test]
    fn source_is_exact_and_platform_processes_are_a_convenience() {
        let router = line("a", "paas", "router", "at=info", 0);
        let dyno_state = line("a", "paas", "web.1", "State changed from starting to up", 0);
        let app = line("a", "app", "web.1", "hello", 0);
        let f = LineFilter::default().source("router");
        assert!(f.matches(&router) && !f.matches(&dyno_state) && !f.matches(&app));
        let f = LineFilter::default().source("paas");
        assert!(f.matches(&router) && f.matches(&dyno_state) && !f.matches(&app));
        let f = LineFilter::default().source("app");
        assert!(!f.matches(&router) && f.matches(&app));
        assert!(!LineFilter::default().source("ap").matches(&app));
        // The database adapter's lines are app[postgres] and app[heroku-postgres], as Heroku's.
        let slow = line(
            "a",
            "app",
            "postgres",
            "[DATABASE] duration: 2201.002 ms",
            0,
        );
        let sample = line("a", "app", "heroku-postgres", "source=DATABASE", 0);
        let f = LineFilter::default().source("postgres");
        assert!(f.matches(&slow) && !f.matches(&sample) && !f.matches(&app));
        let f = LineFilter::default().source("heroku-postgres");
        assert!(f.matches(&sample) && !f.matches(&slow));
    }

    #[test]
    fn dyno_matches_a_type_or_one_process() {
        let web1 = line("a", "app", "web.1", "", 0);
        let web12 = line("a", "app", "web.12", "", 0);
        let webhook = line("a", "app", "webhook.1", "", 0);
        let web = LineFilter::default().dyno("web");
        assert!(web.matches(&web1) && web.matches(&web12) && !web.matches(&webhook));
        let one = LineFilter::default().dyno("web.1");
        assert!(one.matches(&web1) && !one.matches(&web12));
    }

    #[test]
    fn predicate_on_the_message() {
        let f = LineFilter::default()
            .source("router")
            .predicate("status>=500".parse().unwrap());
        assert!(f.matches(&line(
            "a",
            "paas",
            "router",
            "at=error code=H12 status=503",
            0
        )));
        assert!(!f.matches(&line("a", "paas", "router", "at=info status=200", 0)));
        assert!(LineFilter::default().matches(&line("a", "x", "", "anything", 0)));
    }
}

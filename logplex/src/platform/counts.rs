//! `PlatformEvents`: one app's platform events so far, by code, and the lines they told lost.
//! Its [`PlatformEvents::emit`] is the only way to make an L-line, so every line in a stream is
//! one count here; `/metrics` reads these as `logplex_platform_events_total{app,code}` and
//! `logplex_platform_dropped_messages_total{app,code}`.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::line::{AppName, LogLine};
use crate::time::Timestamp;

use super::PlatformEvent;

/// How many of each code an app's channel has told, and the lines those told lost.
#[derive(Debug, Default)]
pub struct PlatformEvents {
    events: [AtomicU64; PlatformEvent::CODES.len()],
    dropped: [AtomicU64; PlatformEvent::CODES.len()],
}

impl PlatformEvents {
    /// Counts `event` and makes its line in `app`'s stream at `now`. The caller puts the line
    /// where it belongs (the stream, one tail session, a drain): this is the one place that
    /// makes L-lines, so none goes uncounted.
    pub(crate) fn emit(&self, app: &AppName, event: &PlatformEvent, now: Timestamp) -> LogLine {
        let i = event.index();
        if let Some(c) = self.events.get(i) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(d) = self.dropped.get(i) {
            d.fetch_add(event.dropped(), Ordering::Relaxed);
        }
        event.line(app, now)
    }

    /// How many events of `code` (`L12`) so far.
    pub fn count(&self, code: &str) -> u64 {
        Self::load(&self.events, code)
    }

    /// How many lines the events of `code` told lost so far.
    pub fn dropped(&self, code: &str) -> u64 {
        Self::load(&self.dropped, code)
    }

    fn load(counts: &[AtomicU64], code: &str) -> u64 {
        PlatformEvent::CODES
            .iter()
            .position(|c| *c == code)
            .and_then(|i| counts.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_emit_makes_the_line_and_counts_it() {
        let events = PlatformEvents::default();
        let app = AppName::from("shop");
        let since = Timestamp::default();
        let now = Timestamp::now();
        let mut lines = Vec::new();
        for e in [
            PlatformEvent::RateLimited { dropped: 5, since },
            PlatformEvent::RateLimited { dropped: 2, since },
            PlatformEvent::TailOverflow { dropped: 9, since },
            PlatformEvent::CertificateInvalid {
                error: "bad".into(),
                uri: "syslog+tls://x:6514".into(),
            },
        ] {
            lines.push(events.emit(&app, &e, now));
        }
        let l12 = lines
            .iter()
            .filter(|l| l.message.starts_with(b"Error L12 "))
            .count() as u64;
        assert_eq!(events.count("L12"), l12);
        assert_eq!(events.count("L12"), 2);
        assert_eq!(events.dropped("L12"), 7);
        assert_eq!((events.count("L11"), events.dropped("L11")), (1, 9));
        assert_eq!((events.count("L14"), events.dropped("L14")), (1, 0));
        assert_eq!((events.count("L10"), events.count("refused")), (0, 0));
        assert_eq!(events.count("R14"), 0);
        assert!(lines.iter().all(|l| l.app == app && l.received == now));
    }
}

//! The dyno manager's R-codes as types: each is one [`DynoError`] whose [`DynoError::emit`]
//! both writes its `paas[web.1]` line (Heroku's exact text) and counts it in [`DynoErrors`],
//! which `/metrics` shows as `paas_dyno_errors_total{app,code}`. One place does both, so the
//! stream and the metric always agree (STYLE.md: typed telemetry, as Vector's
//! `internal_events`).

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;

/// A dyno error the platform tells in the app's stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DynoError {
    /// R10: a web dyno did not bind its port within the boot timeout.
    BootTimeout {
        /// The timeout, in whole seconds.
        secs: u64,
    },
    /// R12: a dyno did not exit within the exit timeout after SIGTERM.
    ExitTimeout {
        /// The timeout, in whole seconds.
        secs: u64,
    },
    /// R14: memory (resident + swap) over the quota.
    MemoryQuotaExceeded,
    /// R15: memory over twice the quota; the dyno is killed.
    MemoryQuotaVastlyExceeded,
    /// R99: the platform failed the dyno (no free port, …).
    Platform {
        /// What failed.
        detail: String,
    },
}

impl DynoError {
    /// Every code, in the order they are exported.
    pub const CODES: [&'static str; 5] = ["R10", "R12", "R14", "R15", "R99"];

    /// Its R-code.
    pub fn code(&self) -> &'static str {
        Self::CODES[self.index()]
    }

    fn index(&self) -> usize {
        match self {
            DynoError::BootTimeout { .. } => 0,
            DynoError::ExitTimeout { .. } => 1,
            DynoError::MemoryQuotaExceeded => 2,
            DynoError::MemoryQuotaVastlyExceeded => 3,
            DynoError::Platform { .. } => 4,
        }
    }

    /// Its line, as Heroku writes it.
    pub fn line(&self) -> String {
        match self {
            DynoError::BootTimeout { secs } => format!(
                "Error R10 (Boot timeout) -> Web process failed to bind to $PORT within {secs} seconds of launch"
            ),
            DynoError::ExitTimeout { secs } => format!(
                "Error R12 (Exit timeout) -> At least one process failed to exit within {secs} seconds of SIGTERM"
            ),
            DynoError::MemoryQuotaExceeded => "Error R14 (Memory quota exceeded)".to_owned(),
            DynoError::MemoryQuotaVastlyExceeded => {
                "Error R15 (Memory quota vastly exceeded)".to_owned()
            }
            DynoError::Platform { detail } => format!("Error R99 (Platform error) -> {detail}"),
        }
    }

    /// Counts it in `errors` and writes its line with `say` (the dyno's platform emitter).
    pub fn emit(&self, errors: &DynoErrors, say: impl FnOnce(String)) {
        if let Some(c) = errors.counts.get(self.index()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        say(self.line());
    }
}

/// An app's R-codes so far, by code: a `Collector` for `/metrics`.
#[derive(Debug, Default)]
pub struct DynoErrors {
    app: String,
    counts: [AtomicU64; 5],
}

impl DynoErrors {
    /// No errors yet, of the app `app`.
    pub fn new(app: &str) -> DynoErrors {
        DynoErrors {
            app: app.to_owned(),
            counts: Default::default(),
        }
    }

    /// How many of `code` (`R14`) so far.
    pub fn count(&self, code: &str) -> u64 {
        DynoError::CODES
            .iter()
            .position(|c| *c == code)
            .and_then(|i| self.counts.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

impl Collector for DynoErrors {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "paas_dyno_errors",
            "Dyno errors the platform told in the app's stream, by R-code (R10 boot timeout, R12 \
             exit timeout, R14/R15 memory quota, R99 platform).",
            None,
            MetricType::Counter,
        )?;
        for (code, count) in DynoError::CODES.iter().zip(&self.counts) {
            let labels = [("app", self.app.as_str()), ("code", *code)];
            ConstCounter::new(count.load(Ordering::Relaxed))
                .encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_emit_writes_the_line_and_counts_it() {
        let errors = DynoErrors::new("shop");
        let mut said = Vec::new();
        for e in [
            DynoError::BootTimeout { secs: 60 },
            DynoError::MemoryQuotaExceeded,
            DynoError::MemoryQuotaExceeded,
            DynoError::ExitTimeout { secs: 30 },
            DynoError::MemoryQuotaVastlyExceeded,
            DynoError::Platform {
                detail: "no free port for the dyno".into(),
            },
        ] {
            e.emit(&errors, |line| said.push(line));
        }
        assert_eq!(
            said,
            [
                "Error R10 (Boot timeout) -> Web process failed to bind to $PORT within 60 seconds of launch",
                "Error R14 (Memory quota exceeded)",
                "Error R14 (Memory quota exceeded)",
                "Error R12 (Exit timeout) -> At least one process failed to exit within 30 seconds of SIGTERM",
                "Error R15 (Memory quota vastly exceeded)",
                "Error R99 (Platform error) -> no free port for the dyno",
            ]
        );
        let counts: Vec<u64> = DynoError::CODES.iter().map(|c| errors.count(c)).collect();
        assert_eq!(counts, [1, 1, 2, 1, 1]);
        assert_eq!(errors.count("H12"), 0);
    }

    #[test]
    fn the_counts_are_a_counter_family_by_app_and_code() {
        let errors = std::sync::Arc::new(DynoErrors::new("shop"));
        DynoError::MemoryQuotaExceeded.emit(&errors, |_| {});
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(ArcCollector(errors)));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(text.contains("# TYPE paas_dyno_errors counter"), "{text}");
        assert!(
            text.contains("paas_dyno_errors_total{app=\"shop\",code=\"R14\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("paas_dyno_errors_total{app=\"shop\",code=\"R10\"} 0"),
            "{text}"
        );
    }

    #[derive(Debug)]
    struct ArcCollector(std::sync::Arc<DynoErrors>);

    impl Collector for ArcCollector {
        fn encode(&self, encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
            self.0.encode(encoder)
        }
    }
}

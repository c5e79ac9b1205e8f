//! The drains' own events on `/metrics`: destinations the address policy refused, by where
//! (`create`: the API's 422; `start`: a stored drain the policy now refuses; `connect`: what a
//! name resolved to) and by kind of address. Each event is counted and logged in one place.

use std::collections::BTreeMap;
use std::sync::Mutex;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;

use crate::policy::{Refusal, Special};

/// Where a destination was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Adding a drain (the API answers 422).
    Create,
    /// Starting a stored drain.
    Start,
    /// Connecting, on the addresses its host resolved to.
    Connect,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::Create => "create",
            Stage::Start => "start",
            Stage::Connect => "connect",
        }
    }
}

/// The drains' counters.
#[derive(Debug, Default)]
pub struct DrainMetrics {
    refused: Mutex<BTreeMap<(Stage, Special), u64>>,
}

impl DrainMetrics {
    /// A destination refused by the address policy: logged and counted.
    pub fn destination_refused(&self, at: Stage, url: &str, refusal: &Refusal) {
        tracing::warn!(at = at.as_str(), %url, %refusal, "drain destination refused");
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        *refused.entry((at, refusal.special)).or_default() += 1;
    }

    /// Refusals so far, at `at`, of every kind.
    pub fn refused_at(&self, at: Stage) -> u64 {
        let refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        refused
            .iter()
            .filter(|((stage, _), _)| *stage == at)
            .map(|(_, n)| n)
            .sum()
    }
}

impl Collector for DrainMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let refused = self
            .refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let mut family = encoder.encode_descriptor(
            "logplex_drain_destinations_refused",
            "Drain destinations the address policy refused (--drain-allow-net opens ranges), by \
             stage (create, start, connect) and kind of address.",
            None,
            MetricType::Counter,
        )?;
        for ((at, special), n) in refused {
            let labels = [("at", at.as_str()), ("kind", special.as_str())];
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

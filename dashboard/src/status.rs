//! The public status page: each component of the platform (router ingest, the API, drains as
//! a whole, the proxy and dynos, the database adapter, the cache) up or degraded, at
//! `/status` (HTML) and `/status.json`, without a key. A component's check looks at the same
//! signals the health panels show, and answers only a state: no app's name, count or error
//! text ever reaches the page.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use logplex::{Body, Caller, PathResource, api_error, api_full, api_json};
use serde_json::{Value, json};

use crate::headers::secure;

/// A component's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Working.
    Up,
    /// Working in part, or not at all.
    Degraded,
}

impl Health {
    fn as_str(self) -> &'static str {
        match self {
            Health::Up => "up",
            Health::Degraded => "degraded",
        }
    }
}

type Check = Arc<dyn Fn() -> Health + Send + Sync>;

/// The components and their checks.
pub struct StatusPage {
    components: RwLock<Vec<(String, Check)>>,
}

impl std::fmt::Debug for StatusPage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.checks().into_iter().map(|(n, _)| n).collect();
        f.debug_struct("StatusPage")
            .field("components", &names)
            .finish()
    }
}

/// The components' states at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusReport {
    /// Each component, in the order added.
    pub components: Vec<(String, Health)>,
}

impl StatusReport {
    /// Degraded when any component is.
    pub fn overall(&self) -> Health {
        if self.components.iter().any(|(_, h)| *h == Health::Degraded) {
            Health::Degraded
        } else {
            Health::Up
        }
    }

    /// `{"status": "up", "components": [{"name", "status"}…]}`.
    pub fn to_json(&self) -> Value {
        json!({
            "status": self.overall().as_str(),
            "components": self.components.iter().map(|(name, h)| json!({
                "name": name,
                "status": h.as_str(),
            })).collect::<Vec<_>>(),
        })
    }

    /// The page: a table of components, refreshed by the browser every 10 s (a `<meta>`
    /// refresh: no script at all).
    pub fn to_html(&self) -> String {
        let mut rows = String::new();
        for (name, h) in &self.components {
            rows.push_str(&format!(
                "<tr><th scope=\"row\">{}</th><td class=\"{s}\" data-component=\"{}\">{s}</td></tr>\n",
                escape(name),
                escape(name),
                s = h.as_str()
            ));
        }
        let overall = self.overall().as_str();
        let headline = match self.overall() {
            Health::Up => "All systems operational",
            Health::Degraded => "Some systems are degraded",
        };
        format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <meta http-equiv=\"refresh\" content=\"10\">\
             <title>paas status</title><link rel=\"stylesheet\" href=\"/dashboard/style.css\"></head>\n\
             <body class=\"status-page\"><main><h1>paas status</h1>\
             <p id=\"overall\" class=\"{overall}\">{headline}</p>\n\
             <table class=\"status\"><caption>Components</caption><tbody>\n{rows}</tbody></table>\
             <p class=\"muted\">Refreshed every 10 s. <a href=\"/status.json\">JSON</a></p></main></body></html>\n"
        )
    }
}

/// Text for HTML, `<`, `>`, `&` and quotes escaped.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl StatusPage {
    /// A page with no components yet.
    pub fn new() -> Arc<StatusPage> {
        Arc::new(StatusPage {
            components: RwLock::new(Vec::new()),
        })
    }

    /// Adds a component named `name` (a platform part's name, never an app's) with its check.
    pub fn add(&self, name: &str, check: impl Fn() -> Health + Send + Sync + 'static) {
        self.components
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push((name.to_owned(), Arc::new(check)));
    }

    fn checks(&self) -> Vec<(String, Check)> {
        self.components
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Every component's state now.
    pub fn report(&self) -> StatusReport {
        StatusReport {
            components: self
                .checks()
                .into_iter()
                .map(|(name, check)| (name, check()))
                .collect(),
        }
    }
}

impl PathResource for StatusPage {
    fn handle(
        &self,
        req: Request<Incoming>,
        _caller: Option<Caller>,
        rest: Vec<String>,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
        let get = matches!(*req.method(), Method::GET | Method::HEAD);
        let response = match (get, req.uri().path(), rest.is_empty()) {
            (true, "/status.json", true) => api_json(StatusCode::OK, &self.report().to_json()),
            (true, "/status" | "/status/", true) => api_full(
                StatusCode::OK,
                "text/html; charset=utf-8",
                self.report().to_html(),
            ),
            _ => api_error(StatusCode::NOT_FOUND, "not_found", "No such resource."),
        };
        Box::pin(std::future::ready(secure(response)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_shows_each_component_and_the_worst_state() {
        let page = StatusPage::new();
        page.add("router", || Health::Up);
        page.add("dynos <x>", || Health::Degraded);
        let report = page.report();
        assert_eq!(report.overall(), Health::Degraded);
        let html = report.to_html();
        assert!(html.contains("<th scope=\"row\">dynos &lt;x&gt;</th><td class=\"degraded\""));
        assert!(html.contains("Some systems are degraded"));
        assert!(!html.contains("<script"));
        let up = StatusPage::new();
        up.add("router", || Health::Up);
        assert_eq!(up.report().to_json()["status"], "up");
    }
}

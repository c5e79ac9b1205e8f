//! The page's files, embedded in the binary with `include_str!`: plain ES modules and CSS,
//! no build step and no CDN, so that what runs is what is in the tree and a router without
//! internet access serves it whole. `GET /dashboard` is the page; `GET /dashboard/FILE` a file.
//! The files are public (they hold nothing of any app); every call they make for data carries
//! the key the user typed.

use std::future::Future;
use std::pin::Pin;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use logplex::{Body, Caller, PathResource, api_error, api_full};

use crate::headers::secure;

/// An embedded file.
#[derive(Clone, Copy, Debug)]
pub struct Asset {
    /// Its name under `/dashboard/`.
    pub name: &'static str,
    /// Its `Content-Type`.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static str,
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the page.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../assets/index.html"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../assets/style.css"),
    },
    Asset {
        name: "app.js",
        content_type: JS,
        body: include_str!("../assets/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: JS,
        body: include_str!("../assets/api.js"),
    },
    Asset {
        name: "dom.js",
        content_type: JS,
        body: include_str!("../assets/dom.js"),
    },
    Asset {
        name: "tail.js",
        content_type: JS,
        body: include_str!("../assets/tail.js"),
    },
    Asset {
        name: "query.js",
        content_type: JS,
        body: include_str!("../assets/query.js"),
    },
    Asset {
        name: "chart.js",
        content_type: JS,
        body: include_str!("../assets/chart.js"),
    },
    Asset {
        name: "metrics.js",
        content_type: JS,
        body: include_str!("../assets/metrics.js"),
    },
    Asset {
        name: "health.js",
        content_type: JS,
        body: include_str!("../assets/health.js"),
    },
];

/// The page at `/dashboard`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Dashboard;

impl Dashboard {
    /// The file `name` (`""` is the page).
    pub fn asset(name: &str) -> Option<&'static Asset> {
        let name = if name.is_empty() { "index.html" } else { name };
        ASSETS.iter().find(|a| a.name == name)
    }
}

impl PathResource for Dashboard {
    fn handle(
        &self,
        req: Request<Incoming>,
        _caller: Option<Caller>,
        rest: Vec<String>,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>> {
        let answer = match (req.method(), rest.as_slice()) {
            (&Method::GET | &Method::HEAD, []) => Dashboard::asset(""),
            (&Method::GET | &Method::HEAD, [name]) => Dashboard::asset(name),
            _ => None,
        };
        let response = match answer {
            Some(a) => api_full(StatusCode::OK, a.content_type, a.body),
            None => api_error(StatusCode::NOT_FOUND, "not_found", "No such file."),
        };
        Box::pin(std::future::ready(secure(response)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_no_inline_script_or_style_and_no_other_origin() {
        for a in ASSETS {
            // SVG's namespace is a name, not an address anything is fetched from.
            let body = a.body.replace("'http://www.w3.org/2000/svg'", "");
            let body = body.as_str();
            assert!(!body.contains("innerHTML"), "{}: text only", a.name);
            assert!(!body.contains("outerHTML"), "{}", a.name);
            assert!(!body.contains("insertAdjacentHTML"), "{}", a.name);
            assert!(!body.contains("document.write"), "{}", a.name);
            assert!(!body.contains("eval("), "{}", a.name);
            assert!(!body.contains("new Function"), "{}", a.name);
            assert!(!body.contains("http://"), "{}: no other origin", a.name);
            assert!(!body.contains("https://"), "{}: no other origin", a.name);
        }
        let page = Dashboard::asset("").map(|a| a.body).unwrap_or("");
        assert!(page.contains("<script type=\"module\" src=\"/dashboard/app.js\"></script>"));
        // No inline script: every <script> has a src and no body; no style="" or <style>.
        assert_eq!(page.matches("<script").count(), 1);
        assert!(!page.contains("<style"));
        assert!(!page.contains("style=\""));
        for handler in ["onclick", "onload", "onerror", "onsubmit", "javascript:"] {
            assert!(!page.contains(handler), "no inline handler {handler}");
        }
    }

    #[test]
    fn every_module_imported_is_served() {
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            for line in a.body.lines().filter(|l| l.starts_with("import ")) {
                let Some(from) = line.split('\'').nth(1) else {
                    panic!("{}: {line}", a.name);
                };
                let name = from.trim_start_matches("./");
                assert!(Dashboard::asset(name).is_some(), "{}: {from}", a.name);
            }
        }
    }
}

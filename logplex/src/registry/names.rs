//! Which names the registry takes: app names as Heroku takes them, and source names (what an
//! ingest token's lines carry in the APP-NAME field of a drain's frames and as `source` in
//! every view).
//!
//! A source name is a short word (`app`, `deploys`, `ci-runner`): it can never look like a
//! secret (`t.…`, `d.…`, `k.…`: no dots at all), so a drain's output can never carry a token
//! a router would accept. The platform's own names are reserved for the platform's writers:
//! a tenant's token named `paas` would pass its lines off as `paas[router]`.

/// Source names only the platform writes as.
pub const RESERVED_SOURCES: [&str; 3] = ["paas", "heroku", "logplex"];

/// Processes that, under the source `app`, only the platform's add-ons write as: the database
/// adapter's `app[postgres]` (statements, errors) and `app[heroku-postgres]` (metrics), and the
/// memcached add-on's `app[memcached]`. An app's own token (named `app`) cannot send lines as
/// them.
pub const RESERVED_APP_PROCESSES: [&str; 3] = ["postgres", "heroku-postgres", "memcached"];

/// Whether a line from a token with `source` may not carry `process` (an add-on's).
pub fn is_reserved_process(source: &[u8], process: &[u8]) -> bool {
    source.eq_ignore_ascii_case(b"app")
        && RESERVED_APP_PROCESSES.iter().any(|p| {
            process.eq_ignore_ascii_case(p.as_bytes())
                || (process.len() > p.len()
                    && process[..p.len()].eq_ignore_ascii_case(p.as_bytes())
                    && process[p.len()] == b'.')
        })
}

/// The longest source name.
pub const MAX_SOURCE_LEN: usize = 32;

/// Whether Heroku would take `name` as an app name.
pub fn is_valid_app_name(name: &str) -> bool {
    let b = name.as_bytes();
    (3..=30).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// Why a source name is refused, if it is.
pub(crate) fn source_name_problem(name: &str) -> Option<&'static str> {
    let b = name.as_bytes();
    if b.is_empty() || b.len() > MAX_SOURCE_LEN {
        return Some("use 1 to 32 characters");
    }
    if !b[0].is_ascii_alphanumeric()
        || !b
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_'))
    {
        return Some("use letters, digits, '-' and '_', starting with a letter or digit");
    }
    if RESERVED_SOURCES
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name))
    {
        return Some("that name is reserved for the platform's own lines");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_as_heroku_takes_them() {
        for ok in ["shop", "my-app-2", "abc", "a23456789012345678901234567890"] {
            assert!(is_valid_app_name(ok), "{ok}");
        }
        for bad in [
            "",
            "ab",
            "Shop",
            "2fast",
            "my_app",
            "a234567890123456789012345678901",
            "app!",
            "-app",
            "ünï",
        ] {
            assert!(!is_valid_app_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_database_adapters_processes_are_reserved_under_app() {
        for p in [&b"postgres"[..], b"Heroku-Postgres", b"postgres.1234"] {
            assert!(is_reserved_process(b"app", p), "{p:?}");
        }
        assert!(!is_reserved_process(b"app", b"web.1"));
        assert!(!is_reserved_process(b"app", b"postgresql"));
        assert!(!is_reserved_process(b"deploys", b"postgres"));
    }

    #[test]
    fn source_names_are_words_never_secrets_or_the_platform() {
        for ok in ["app", "deploys", "ci-runner", "Worker_2", "x"] {
            assert_eq!(source_name_problem(ok), None, "{ok}");
        }
        for bad in [
            "",
            "t.0b7d2a4e-9c51-4f3e-8a2d-5e6f7a8b9c0d",
            "d.0b7d2a4e-9c51-4f3e-8a2d-5e6f7a8b9c0d",
            "has space",
            "-dash",
            "paas",
            "PAAS",
            "heroku",
            "logplex",
            "a/b",
            &"a".repeat(33),
        ] {
            assert!(source_name_problem(bad).is_some(), "{bad:?}");
        }
    }
}

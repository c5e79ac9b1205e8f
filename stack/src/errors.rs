//! Every way a proxied request can fail, and the one mapping of each to the HTTP status the
//! client gets, Heroku's H-code and its description (the words users search for), and which
//! side it came from. Shared by the routing mesh (H10, H11, H14, H20) and the proxy (the rest),
//! so that neither imports the other for it.

/// Where a failure came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The dyno (the backend).
    Upstream,
    /// The client.
    Downstream,
    /// The platform itself.
    Inside,
}

/// A failure of a proxied request, by Heroku's H-code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyError {
    /// H10: the app's web dynos crashed.
    AppCrashed,
    /// H11: more requests wait than the backlog holds (50 × dynos).
    BacklogTooDeep,
    /// H12: no response started within 30 s.
    RequestTimeout,
    /// H13: the dyno closed the connection without responding.
    ConnectionClosedWithoutResponse,
    /// H14: no web dynos are running.
    NoWebDynos,
    /// H15: the dyno sent nothing for 55 s in the middle of a response.
    IdleConnection,
    /// H17: the dyno's response is not valid HTTP.
    BadResponse,
    /// H18: the dyno closed the connection while the request was being sent.
    ServerRequestInterrupted,
    /// H19: connecting to the dyno took over 5 s.
    BackendConnectTimeout,
    /// H20: web dynos are booting and none came up within 75 s.
    BootTimeout,
    /// H21: the dyno refused the connection.
    BackendConnectionRefused,
    /// H22: the app has too many connections open.
    ConnectionLimit,
    /// H25: the request breaks an HTTP limit (header size, status line, cookie).
    HttpRestriction,
    /// H26: a malformed request (bad header, unsupported `Expect`, two `Host`s or an invalid
    /// one).
    RequestError,
    /// H26 too, answered 405: a method the router does not forward (`CONNECT`: the router is
    /// no forward proxy).
    MethodNotAllowed,
    /// H27: the client went away before the response.
    ClientInterrupted,
    /// H28: the client sent nothing for 55 s.
    ClientIdle,
    /// H99: the platform failed.
    PlatformError,
}

impl ProxyError {
    /// Heroku's code.
    pub fn code(self) -> &'static str {
        use ProxyError::*;
        match self {
            AppCrashed => "H10",
            BacklogTooDeep => "H11",
            RequestTimeout => "H12",
            ConnectionClosedWithoutResponse => "H13",
            NoWebDynos => "H14",
            IdleConnection => "H15",
            BadResponse => "H17",
            ServerRequestInterrupted => "H18",
            BackendConnectTimeout => "H19",
            BootTimeout => "H20",
            BackendConnectionRefused => "H21",
            ConnectionLimit => "H22",
            HttpRestriction => "H25",
            RequestError | MethodNotAllowed => "H26",
            ClientInterrupted => "H27",
            ClientIdle => "H28",
            PlatformError => "H99",
        }
    }

    /// Heroku's description, word for word.
    pub fn desc(self) -> &'static str {
        use ProxyError::*;
        match self {
            AppCrashed => "App crashed",
            BacklogTooDeep => "Backlog too deep",
            RequestTimeout => "Request timeout",
            ConnectionClosedWithoutResponse => "Connection closed without response",
            NoWebDynos => "No web processes running",
            IdleConnection => "Idle connection",
            BadResponse => "Bad HTTP response",
            ServerRequestInterrupted => "Server Request Interrupted",
            BackendConnectTimeout => "Backend connection timeout",
            BootTimeout => "App boot timeout",
            BackendConnectionRefused => "Backend connection refused",
            ConnectionLimit => "Connection limit reached",
            HttpRestriction => "HTTP restriction",
            RequestError | MethodNotAllowed => "Request Error",
            ClientInterrupted => "Client Request Interrupted",
            ClientIdle => "Client Connection Idle",
            PlatformError => "Platform error",
        }
    }

    /// The status the client gets (499: the client is gone, as Heroku logs it).
    pub fn status(self) -> u16 {
        use ProxyError::*;
        match self {
            HttpRestriction | RequestError => 400,
            MethodNotAllowed => 405,
            ClientInterrupted | ClientIdle => 499,
            _ => 503,
        }
    }

    /// Which side failed.
    pub fn side(self) -> Side {
        use ProxyError::*;
        match self {
            AppCrashed
            | RequestTimeout
            | ConnectionClosedWithoutResponse
            | IdleConnection
            | BadResponse
            | ServerRequestInterrupted
            | BackendConnectTimeout
            | BootTimeout
            | BackendConnectionRefused => Side::Upstream,
            HttpRestriction | RequestError | MethodNotAllowed | ClientInterrupted | ClientIdle => {
                Side::Downstream
            }
            BacklogTooDeep | NoWebDynos | ConnectionLimit | PlatformError => Side::Inside,
        }
    }

    /// What comes before `code=` in the router line: `at=error`, or Heroku's `sock=backend`
    /// (H18) and `sock=client at=warning` (H27).
    pub fn prefix(self) -> &'static str {
        match self {
            ProxyError::ServerRequestInterrupted => "sock=backend at=error",
            ProxyError::ClientInterrupted => "sock=client at=warning",
            _ => "at=error",
        }
    }

    /// Every failure.
    pub const ALL: [ProxyError; 18] = [
        ProxyError::AppCrashed,
        ProxyError::BacklogTooDeep,
        ProxyError::RequestTimeout,
        ProxyError::ConnectionClosedWithoutResponse,
        ProxyError::NoWebDynos,
        ProxyError::IdleConnection,
        ProxyError::BadResponse,
        ProxyError::ServerRequestInterrupted,
        ProxyError::BackendConnectTimeout,
        ProxyError::BootTimeout,
        ProxyError::BackendConnectionRefused,
        ProxyError::ConnectionLimit,
        ProxyError::HttpRestriction,
        ProxyError::RequestError,
        ProxyError::MethodNotAllowed,
        ProxyError::ClientInterrupted,
        ProxyError::ClientIdle,
        ProxyError::PlatformError,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_heroku_s_and_unique() {
        // One code a failure, but for H26: a malformed request and a refused method, told
        // apart by the status.
        let codes: std::collections::HashSet<(&str, u16)> = ProxyError::ALL
            .iter()
            .map(|e| (e.code(), e.status()))
            .collect();
        assert_eq!(codes.len(), ProxyError::ALL.len());
        assert_eq!(ProxyError::MethodNotAllowed.code(), "H26");
        assert_eq!(ProxyError::MethodNotAllowed.status(), 405);
        assert_eq!(ProxyError::NoWebDynos.desc(), "No web processes running");
        assert_eq!(ProxyError::ClientInterrupted.status(), 499);
        assert_eq!(ProxyError::RequestTimeout.status(), 503);
        assert_eq!(ProxyError::BackendConnectionRefused.side(), Side::Upstream);
        assert_eq!(ProxyError::ClientIdle.side(), Side::Downstream);
    }
}

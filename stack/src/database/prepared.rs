//! Named prepared statements in transaction mode, as PgBouncer 1.21 and PgDog keep them:
//! each client's names map to a server name derived from the statement's text and parameter
//! types (`paas_…`), so clients that prepare the same statement share it on a connection;
//! a `Bind` or `Describe` on a connection that lacks the statement gets its `Parse` first,
//! and a `Parse` of a statement the connection already holds becomes a harmless `Close` whose
//! `CloseComplete` the relay turns into the `ParseComplete` the client expects.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use bytes::{BufMut, Bytes, BytesMut};

use super::wire::{self, Frame, WireError};

/// A portal name no client uses: closing it always succeeds with `CloseComplete`.
const NO_PORTAL: &[u8] = b"paas_none";

/// One client's statement.
#[derive(Debug, Clone)]
struct Statement {
    server_name: String,
    /// The `Parse` with the server name.
    parse: Bytes,
    sql: Bytes,
}

/// A client's named statements.
#[derive(Debug)]
pub struct ClientStatements {
    by_name: HashMap<Bytes, Statement>,
    max: usize,
}

/// What to send for a client message.
#[derive(Debug)]
pub enum Rewrite {
    /// This message (maybe renamed); `prepared` is the server name it prepares, if any.
    Forward {
        frame: Frame,
        sql: Option<Bytes>,
        prepared: Option<String>,
    },
    /// A `Parse` of a statement the connection holds: send `close` instead.
    AlreadyPrepared { close: Bytes, sql: Bytes },
    /// A `Bind` or `Describe` of a statement the connection lacks: `parse` first, then `frame`.
    PrepareFirst {
        parse: Bytes,
        name: String,
        frame: Frame,
        sql: Bytes,
    },
    /// The client is over its statement limit: this error, and the session ends.
    Refuse(Bytes),
}

fn malformed() -> WireError {
    WireError::Malformed("a string without its terminating NUL")
}

fn cstr(b: &mut Bytes) -> Result<Bytes, WireError> {
    wire::cstr_bytes(b).ok_or_else(malformed)
}

fn put_cstr(out: &mut BytesMut, s: &[u8]) {
    out.put_slice(s);
    out.put_u8(0);
}

impl ClientStatements {
    /// At most `max` names.
    pub fn new(max: usize) -> Self {
        ClientStatements {
            by_name: HashMap::new(),
            max,
        }
    }

    /// What to send for `frame` (`Parse`, `Bind`, `Describe` or `Close`) to a connection
    /// holding the statements `prepared` (updated as if what is sent succeeds).
    pub fn rewrite(
        &mut self,
        frame: &Frame,
        prepared: &mut HashSet<String>,
    ) -> Result<Rewrite, WireError> {
        let mut body = frame.body();
        let unchanged = |sql| Rewrite::Forward {
            frame: frame.clone(),
            sql,
            prepared: None,
        };
        match frame.tag {
            b'P' => {
                let name = cstr(&mut body)?;
                let mut rest = body.clone();
                let sql = cstr(&mut rest)?;
                if name.is_empty() {
                    return Ok(unchanged(Some(sql)));
                }
                if self.by_name.len() >= self.max && !self.by_name.contains_key(&name) {
                    return Ok(Rewrite::Refuse(wire::error_response(
                        "FATAL",
                        "53400",
                        &format!(
                            "too many prepared statements: a client may hold {} \
                             (--database-max-prepared)",
                            self.max
                        ),
                    )));
                }
                let server_name = server_name(&body);
                let mut parse = BytesMut::new();
                put_cstr(&mut parse, server_name.as_bytes());
                parse.put_slice(&body);
                let parse = Frame::new(b'P', &parse);
                self.by_name.insert(
                    name,
                    Statement {
                        server_name: server_name.clone(),
                        parse: parse.raw.clone(),
                        sql: sql.clone(),
                    },
                );
                if prepared.contains(&server_name) {
                    let mut close = BytesMut::new();
                    close.put_u8(b'P');
                    put_cstr(&mut close, NO_PORTAL);
                    return Ok(Rewrite::AlreadyPrepared {
                        close: Frame::new(b'C', &close).raw,
                        sql,
                    });
                }
                prepared.insert(server_name.clone());
                Ok(Rewrite::Forward {
                    frame: parse,
                    sql: Some(sql),
                    prepared: Some(server_name),
                })
            }
            b'B' => {
                let portal = cstr(&mut body)?;
                let name = cstr(&mut body)?;
                let Some(st) = self.lookup(&name) else {
                    return Ok(unchanged(None));
                };
                let mut bind = BytesMut::new();
                put_cstr(&mut bind, &portal);
                put_cstr(&mut bind, st.server_name.as_bytes());
                bind.put_slice(&body);
                Ok(with_statement(st, Frame::new(b'B', &bind), prepared))
            }
            b'D' | b'C' => {
                let kind = body.first().copied().ok_or_else(malformed)?;
                let mut rest = body.slice(1..);
                let name = cstr(&mut rest)?;
                if kind != b'S' || name.is_empty() {
                    return Ok(unchanged(None));
                }
                if frame.tag == b'C' {
                    // The server keeps it for other clients; the client's name is gone.
                    self.by_name.remove(&name);
                    let mut close = BytesMut::new();
                    close.put_u8(b'P');
                    put_cstr(&mut close, NO_PORTAL);
                    return Ok(Rewrite::Forward {
                        frame: Frame::new(b'C', &close),
                        sql: None,
                        prepared: None,
                    });
                }
                let Some(st) = self.lookup(&name) else {
                    return Ok(unchanged(None));
                };
                let mut describe = BytesMut::new();
                describe.put_u8(b'S');
                put_cstr(&mut describe, st.server_name.as_bytes());
                Ok(with_statement(st, Frame::new(b'D', &describe), prepared))
            }
            _ => Ok(unchanged(None)),
        }
    }

    fn lookup(&self, name: &Bytes) -> Option<Statement> {
        if name.is_empty() {
            return None;
        }
        self.by_name.get(name).cloned()
    }
}

fn with_statement(st: Statement, frame: Frame, prepared: &mut HashSet<String>) -> Rewrite {
    if prepared.contains(&st.server_name) {
        return Rewrite::Forward {
            frame,
            sql: Some(st.sql),
            prepared: None,
        };
    }
    prepared.insert(st.server_name.clone());
    Rewrite::PrepareFirst {
        parse: st.parse,
        name: st.server_name,
        frame,
        sql: st.sql,
    }
}

/// The server's name for a statement: its text and parameter types, hashed.
fn server_name(text_and_types: &[u8]) -> String {
    let mut h = std::hash::DefaultHasher::new();
    text_and_types.hash(&mut h);
    format!("paas_{:016x}_{}", h.finish(), text_and_types.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str, sql: &str) -> Frame {
        let mut b = BytesMut::new();
        put_cstr(&mut b, name.as_bytes());
        put_cstr(&mut b, sql.as_bytes());
        b.put_u16(0);
        Frame::new(b'P', &b)
    }

    fn bind(name: &str) -> Frame {
        let mut b = BytesMut::new();
        put_cstr(&mut b, b"");
        put_cstr(&mut b, name.as_bytes());
        b.put_slice(&[0, 0, 0, 0, 0, 0]);
        Frame::new(b'B', &b)
    }

    #[test]
    fn statements_follow_the_client_across_connections() {
        let mut c = ClientStatements::new(10);
        let (mut one, mut two) = (HashSet::new(), HashSet::new());
        let Rewrite::Forward {
            prepared: Some(name),
            ..
        } = c.rewrite(&parse("s1", "SELECT 1"), &mut one).unwrap()
        else {
            panic!("a first Parse is forwarded renamed")
        };
        assert!(one.contains(&name));
        assert!(matches!(
            c.rewrite(&bind("s1"), &mut one).unwrap(),
            Rewrite::Forward { prepared: None, .. }
        ));
        // On another connection the statement is prepared first.
        assert!(matches!(
            c.rewrite(&bind("s1"), &mut two).unwrap(),
            Rewrite::PrepareFirst { name: n, .. } if n == name
        ));
        // A second client preparing the same text on the first connection shares it.
        let mut d = ClientStatements::new(10);
        assert!(matches!(
            d.rewrite(&parse("other", "SELECT 1"), &mut one).unwrap(),
            Rewrite::AlreadyPrepared { .. }
        ));
        // Unknown names and the unnamed statement pass unchanged.
        assert!(matches!(
            c.rewrite(&bind("nope"), &mut one).unwrap(),
            Rewrite::Forward { prepared: None, .. }
        ));
        assert!(matches!(
            c.rewrite(&parse("", "SELECT 2"), &mut one).unwrap(),
            Rewrite::Forward { prepared: None, .. }
        ));
    }

    proptest::proptest! {
        /// Any body under any of the four tags: a rewrite or an error, never a panic.
        #[test]
        fn any_body_rewrites_or_fails(tag in proptest::sample::select(vec![b'P', b'B', b'D', b'C']),
                                      body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            let mut c = ClientStatements::new(4);
            let mut set = HashSet::new();
            let _ = c.rewrite(&Frame::new(tag, &body), &mut set);
        }
    }

    #[test]
    fn the_limit_and_malformed_bodies() {
        let mut c = ClientStatements::new(1);
        let mut set = HashSet::new();
        c.rewrite(&parse("a", "SELECT 1"), &mut set).unwrap();
        assert!(matches!(
            c.rewrite(&parse("b", "SELECT 2"), &mut set).unwrap(),
            Rewrite::Refuse(_)
        ));
        assert!(c.rewrite(&Frame::new(b'P', b"no nul"), &mut set).is_err());
        assert!(c.rewrite(&Frame::new(b'D', b""), &mut set).is_err());
        assert!(c.rewrite(&Frame::new(b'B', b"\0x"), &mut set).is_err());
    }
}

//! The adapter's side of client authentication: SCRAM-SHA-256 (RFC 5802 and 7677, as
//! PostgreSQL does it, without channel binding) and MD5 for old clients, against each app's
//! generated user and password.
//!
//! A user's SCRAM verifier (salt, stored key, server key) is made once, as PostgreSQL stores
//! it, so a login costs two HMACs rather than 4,096 rounds of PBKDF2.

use std::num::NonZeroU32;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::{digest, hmac, pbkdf2, rand::SecureRandom as _};

/// PostgreSQL's default SCRAM iteration count.
const ITERATIONS: u32 = 4096;

/// Which method the adapter asks clients for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AuthMethod {
    /// SCRAM-SHA-256 (every client since PostgreSQL 10's libpq).
    #[default]
    ScramSha256,
    /// MD5, for clients too old for SCRAM.
    Md5,
}

impl std::str::FromStr for AuthMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "scram-sha-256" => Ok(AuthMethod::ScramSha256),
            "md5" => Ok(AuthMethod::Md5),
            _ => Err(format!("{s:?}: use scram-sha-256 or md5")),
        }
    }
}

/// One app's database login: the user and password in its `DATABASE_URL`.
#[derive(Clone, Debug)]
pub struct Login {
    /// The user name.
    pub user: String,
    password: String,
    verifier: Verifier,
}

#[derive(Clone, Debug)]
struct Verifier {
    salt: [u8; 16],
    stored_key: [u8; 32],
    server_key: [u8; 32],
}

/// Random bytes from the system's generator.
pub fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // The system generator fails only if the kernel has none; a zeroed value then is still
    // unique enough per process that nothing is shared between users.
    let _ = ring::rand::SystemRandom::new().fill(&mut out);
    out
}

impl Login {
    /// A login for `user` with `password`.
    pub fn new(user: &str, password: &str) -> Login {
        let salt = random::<16>();
        let mut salted = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            NonZeroU32::new(ITERATIONS).unwrap_or(NonZeroU32::MIN),
            &salt,
            password.as_bytes(),
            &mut salted,
        );
        let key = hmac::Key::new(hmac::HMAC_SHA256, &salted);
        let client_key = hmac::sign(&key, b"Client Key");
        let mut stored_key = [0u8; 32];
        stored_key.copy_from_slice(digest::digest(&digest::SHA256, client_key.as_ref()).as_ref());
        let mut server_key = [0u8; 32];
        server_key.copy_from_slice(hmac::sign(&key, b"Server Key").as_ref());
        Login {
            user: user.to_owned(),
            password: password.to_owned(),
            verifier: Verifier {
                salt,
                stored_key,
                server_key,
            },
        }
    }

    /// A new user and password: `u` and 12 hex digits, 32 hex digits.
    pub fn generate() -> Login {
        let user = format!("u{}", hex(&random::<6>()));
        Login::new(&user, &hex(&random::<16>()))
    }

    /// The password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Whether an MD5 password message (`md5…`) is this login's for `salt`.
    pub fn check_md5(&self, salt: [u8; 4], sent: &[u8]) -> bool {
        let want = postgres_protocol::authentication::md5_hash(
            self.user.as_bytes(),
            self.password.as_bytes(),
            salt,
        );
        constant_eq(want.as_bytes(), sent)
    }

    /// Starts a SCRAM exchange.
    pub fn scram(&self) -> ScramServer<'_> {
        ScramServer {
            login: self,
            state: None,
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Why a SCRAM exchange failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    /// The client's message is not what RFC 5802 says.
    #[error("malformed SCRAM message")]
    Malformed,
    /// The client asked for channel binding, which the adapter does not offer.
    #[error("channel binding is not supported")]
    ChannelBinding,
    /// The proof does not match: the wrong password.
    #[error("password authentication failed")]
    BadProof,
}

/// The server side of one SCRAM-SHA-256 exchange.
#[derive(Debug)]
pub struct ScramServer<'a> {
    login: &'a Login,
    /// The client-first-bare and server-first messages, and the whole nonce.
    state: Option<(String, String, String)>,
}

impl ScramServer<'_> {
    /// Answers the client-first message with the server-first message.
    pub fn first(&mut self, client_first: &[u8]) -> Result<String, ScramError> {
        let text = std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed)?;
        let (gs2, bare) = match text.split_once(',') {
            Some((flag, rest)) => {
                let (_authzid, bare) = rest.split_once(',').ok_or(ScramError::Malformed)?;
                (flag, bare)
            }
            None => return Err(ScramError::Malformed),
        };
        match gs2 {
            "n" | "y" => {}
            f if f.starts_with("p=") => return Err(ScramError::ChannelBinding),
            _ => return Err(ScramError::Malformed),
        }
        let client_nonce = bare
            .split(',')
            .find_map(|a| a.strip_prefix("r="))
            .filter(|n| !n.is_empty() && n.bytes().all(|c| (0x21..0x7f).contains(&c) && c != b','))
            .ok_or(ScramError::Malformed)?;
        let nonce = format!("{client_nonce}{}", B64.encode(random::<18>()));
        let server_first = format!(
            "r={nonce},s={},i={ITERATIONS}",
            B64.encode(self.login.verifier.salt)
        );
        self.state = Some((bare.to_owned(), server_first.clone(), nonce));
        Ok(server_first)
    }

    /// Checks the client-final message's proof; the server-final message if it holds.
    pub fn finish(&mut self, client_final: &[u8]) -> Result<String, ScramError> {
        let (bare, server_first, nonce) = self.state.take().ok_or(ScramError::Malformed)?;
        let text = std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed)?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or(ScramError::Malformed)?;
        let mut attrs = without_proof.split(',');
        let binding = attrs
            .next()
            .and_then(|c| c.strip_prefix("c="))
            .ok_or(ScramError::Malformed)?;
        if binding != "biws" && binding != "eSws" {
            return Err(ScramError::ChannelBinding);
        }
        let sent_nonce = attrs
            .next()
            .and_then(|r| r.strip_prefix("r="))
            .ok_or(ScramError::Malformed)?;
        if sent_nonce != nonce {
            return Err(ScramError::Malformed);
        }
        let proof = B64.decode(proof).map_err(|_| ScramError::Malformed)?;
        if proof.len() != 32 {
            return Err(ScramError::Malformed);
        }
        let auth_message = format!("{bare},{server_first},{without_proof}");
        let v = &self.login.verifier;
        let signature = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &v.stored_key),
            auth_message.as_bytes(),
        );
        let client_key: Vec<u8> = proof
            .iter()
            .zip(signature.as_ref())
            .map(|(p, s)| p ^ s)
            .collect();
        let stored = digest::digest(&digest::SHA256, &client_key);
        if !constant_eq(stored.as_ref(), &v.stored_key) {
            return Err(ScramError::BadProof);
        }
        let server_signature = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &v.server_key),
            auth_message.as_bytes(),
        );
        Ok(format!("v={}", B64.encode(server_signature.as_ref())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};

    fn exchange(login: &Login, password: &str) -> Result<(), ScramError> {
        let mut client = ScramSha256::new(password.as_bytes(), ChannelBinding::unrequested());
        let mut server = login.scram();
        let first = server.first(client.message())?;
        client.update(first.as_bytes()).unwrap();
        let last = server.finish(client.message())?;
        client.finish(last.as_bytes()).unwrap();
        Ok(())
    }

    #[test]
    fn scram_with_a_real_client() {
        let login = Login::generate();
        assert_eq!(exchange(&login, login.password()), Ok(()));
        assert_eq!(exchange(&login, "wrong"), Err(ScramError::BadProof));
    }

    #[test]
    fn scram_refuses_garbage() {
        let login = Login::new("u", "p");
        for bad in [
            &b""[..],
            b"n",
            b"x,,n=,r=abc",
            b"n,,n=",
            b"\xff\xfe",
            b"n,,r=",
        ] {
            assert!(login.scram().first(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            login.scram().first(b"p=tls-server-end-point,,n=,r=abc"),
            Err(ScramError::ChannelBinding)
        );
        let mut s = login.scram();
        s.first(b"n,,n=,r=abc").unwrap();
        for bad in [
            &b""[..],
            b"c=biws,r=abc,p=AAAA",
            b"c=biws,r=other,p=",
            b"junk",
        ] {
            let mut s = login.scram();
            s.first(b"n,,n=,r=abc").unwrap();
            assert!(s.finish(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn md5_as_libpq_sends_it() {
        let login = Login::new("alice", "secret");
        let salt = [1, 2, 3, 4];
        let sent = postgres_protocol::authentication::md5_hash(b"alice", b"secret", salt);
        assert!(login.check_md5(salt, sent.as_bytes()));
        let wrong = postgres_protocol::authentication::md5_hash(b"alice", b"nope", salt);
        assert!(!login.check_md5(salt, wrong.as_bytes()));
    }
}

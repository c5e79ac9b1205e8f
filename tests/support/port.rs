//! A loopback port for a receiver that starts later: held bound but not listening, so that
//! connecting to it is refused (the receiver is "down") and no other process is handed it
//! meanwhile, which a port bound, released and bound again later cannot promise.

use std::net::SocketAddr;

use socket2::{Domain, Socket, Type};

/// A loopback TCP port held for later. Receivers that set `SO_REUSEADDR` (Rust's
/// `TcpListener::bind`, rsyslog's imtcp) listen on it while it is held; a sender's connect is
/// refused until one does.
#[derive(Debug)]
pub struct PortHold {
    _socket: Socket,
    port: u16,
}

impl PortHold {
    pub fn new() -> PortHold {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
        socket.set_reuse_address(true).expect("SO_REUSEADDR");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("an address");
        socket.bind(&any.into()).expect("bind a loopback port");
        let port = socket
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .map(|a| a.port())
            .expect("the bound port");
        PortHold {
            _socket: socket,
            port,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

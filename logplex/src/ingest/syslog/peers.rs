//! Connections per peer address, so that one address cannot take every connection a listener
//! has. An IPv4 address is one peer; an IPv6 peer is its /64 (one host's usual allocation), and
//! an IPv4-mapped IPv6 address counts as the IPv4 address it is.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};

/// The connections each peer has open on one listener.
#[derive(Debug)]
pub(super) struct PeerLimit {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection of a peer, counted until dropped.
#[derive(Debug)]
pub(super) struct PeerSlot {
    limit: Arc<PeerLimit>,
    peer: IpAddr,
}

impl PeerLimit {
    /// At most `max` connections a peer.
    pub(super) fn new(max: usize) -> Arc<Self> {
        Arc::new(PeerLimit {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a connection from `addr`, or `None` when its peer has `max` open.
    pub(super) fn try_enter(self: &Arc<Self>, addr: IpAddr) -> Option<PeerSlot> {
        let peer = peer_of(addr);
        let mut open = self.lock();
        let n = open.entry(peer).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(PeerSlot {
            limit: self.clone(),
            peer,
        })
    }

    #[cfg(test)]
    fn peers(&self) -> usize {
        self.lock().len()
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut open = self.limit.lock();
        if let Some(n) = open.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

/// The peer an address belongs to.
fn peer_of(addr: IpAddr) -> IpAddr {
    match addr.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_gets_max_slots_and_gets_them_back() {
        let limit = PeerLimit::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = limit.try_enter(a).unwrap();
        let _second = limit.try_enter(a).unwrap();
        assert!(limit.try_enter(a).is_none());
        assert!(
            limit.try_enter(b).is_some(),
            "another address is not affected"
        );
        drop(first);
        assert!(limit.try_enter(a).is_some());
    }

    #[test]
    fn a_v6_peer_is_its_64_and_a_mapped_v4_is_the_v4() {
        let limit = PeerLimit::new(1);
        let _one = limit.try_enter("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert!(
            limit
                .try_enter("2001:db8:1:2::ffff".parse().unwrap())
                .is_none()
        );
        assert!(
            limit
                .try_enter("2001:db8:1:3::1".parse().unwrap())
                .is_some()
        );
        let _v4 = limit.try_enter("192.0.2.7".parse().unwrap()).unwrap();
        assert!(
            limit
                .try_enter("::ffff:192.0.2.7".parse().unwrap())
                .is_none()
        );
    }

    #[test]
    fn peers_with_nothing_open_are_forgotten() {
        let limit = PeerLimit::new(3);
        let slots: Vec<_> = (0..50u8)
            .filter_map(|i| limit.try_enter(IpAddr::from([10, 0, 0, i])))
            .collect();
        assert_eq!(limit.peers(), 50);
        drop(slots);
        assert_eq!(limit.peers(), 0);
    }
}

//! The connect-time check, with a resolver that answers what each test says (as a rebinding
//! name server would), against listeners on loopback only.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::policy::Cidr;

/// Answers every name with the same addresses, and counts the questions.
#[derive(Debug, Default)]
struct Answers {
    addrs: Vec<SocketAddr>,
    asked: AtomicUsize,
}

impl Resolver for Answers {
    fn lookup<'a>(&'a self, _name: &'a str, _port: u16) -> Lookup<'a> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        let addrs = self.addrs.clone();
        Box::pin(async move { Ok(addrs) })
    }
}

fn dialer(allowed: &[&str], answers: &Arc<Answers>) -> (Dialer, Arc<DrainMetrics>) {
    let policy = AddressPolicy::allowing(allowed.iter().map(|c| c.parse::<Cidr>().unwrap()));
    let metrics = Arc::new(DrainMetrics::default());
    let d = Dialer::new(Arc::new(policy), answers.clone(), metrics.clone());
    (d, metrics)
}

fn url(s: &str) -> DrainUrl {
    DrainUrl::parse(s, false).unwrap()
}

/// A loopback listener that can tell whether anyone connected.
fn listener(ip: &str) -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind((ip, 0)).unwrap();
    l.set_nonblocking(true).unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

fn nobody_connected(l: &std::net::TcpListener) -> bool {
    matches!(l.accept(), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

const SECOND: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_name_rebound_to_loopback_is_refused_at_connect_without_connecting() {
    let (receiver, port) = listener("127.0.0.1");
    let drain = url(&format!("syslog://rebind.example:{port}"));
    assert_eq!(
        AddressPolicy::default().check_host(drain.target()),
        Ok(()),
        "a name passes when the drain is added"
    );
    let answers = Arc::new(Answers {
        addrs: vec![SocketAddr::from(([127, 0, 0, 1], port))],
        ..Answers::default()
    });
    let (dialer, metrics) = dialer(&[], &answers);
    let e = dialer.tcp(&drain, SECOND).await.unwrap_err();
    assert!(
        matches!(&e, DialError::Refused { host, refusal } if host == "rebind.example"
            && refusal.special == crate::policy::Special::Loopback),
        "{e}"
    );
    assert!(
        e.to_string().contains("127.0.0.1 is a loopback address"),
        "{e}"
    );
    assert!(nobody_connected(&receiver));
    assert_eq!(metrics.refused_at(Stage::Connect), 1);
    let e = dialer.udp(&drain, SECOND).await.unwrap_err();
    assert!(matches!(e, DialError::Refused { .. }), "{e}");
    assert_eq!(metrics.refused_at(Stage::Connect), 2);
}

#[tokio::test]
async fn only_vetted_addresses_are_tried() {
    let (refused, refused_port) = listener("127.0.0.2");
    let (allowed, port) = listener("127.0.0.1");
    let answers = Arc::new(Answers {
        addrs: vec![
            SocketAddr::from(([127, 0, 0, 2], refused_port)),
            SocketAddr::from(([127, 0, 0, 1], port)),
        ],
        ..Answers::default()
    });
    let (dialer, _) = dialer(&["127.0.0.1/32"], &answers);
    let stream = dialer
        .tcp(&url(&format!("syslog://mixed.example:{port}")), SECOND)
        .await
        .unwrap();
    assert_eq!(
        stream.peer_addr().unwrap(),
        SocketAddr::from(([127, 0, 0, 1], port))
    );
    assert!(
        nobody_connected(&refused),
        "the refused address was never tried"
    );
    assert!(!nobody_connected(&allowed));
}

#[tokio::test]
async fn internal_answers_are_dropped_and_public_ones_kept() {
    let answers = Arc::new(Answers {
        addrs: [
            "10.0.0.1:601",
            "[::ffff:169.254.169.254]:601",
            "203.0.114.7:601",
            "[2606:4700::1]:601",
            "203.0.114.7:601",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect(),
        ..Answers::default()
    });
    let (dialer, metrics) = dialer(&[], &answers);
    let vetted = dialer
        .addresses(&url("syslog://logs.example.com"))
        .await
        .unwrap();
    let expected: Vec<SocketAddr> = vec![
        "203.0.114.7:601".parse().unwrap(),
        "[2606:4700::1]:601".parse().unwrap(),
    ];
    assert_eq!(vetted, expected);
    assert_eq!(
        metrics.refused_at(Stage::Connect),
        0,
        "the drain still connects"
    );
}

#[tokio::test]
async fn each_connect_resolves_once_and_addresses_are_not_resolved() {
    let (receiver, port) = listener("127.0.0.1");
    let answers = Arc::new(Answers {
        addrs: vec![SocketAddr::from(([127, 0, 0, 1], port))],
        ..Answers::default()
    });
    let (dialer, _) = dialer(&["127.0.0.0/8"], &answers);
    let drain = url(&format!("syslog://receiver.example:{port}"));
    dialer.tcp(&drain, SECOND).await.unwrap();
    assert_eq!(answers.asked.load(Ordering::Relaxed), 1);
    dialer.tcp(&drain, SECOND).await.unwrap();
    assert_eq!(
        answers.asked.load(Ordering::Relaxed),
        2,
        "again at every connect"
    );
    dialer
        .tcp(&url(&format!("syslog://127.0.0.1:{port}")), SECOND)
        .await
        .unwrap();
    assert_eq!(
        answers.asked.load(Ordering::Relaxed),
        2,
        "an address is not resolved"
    );
    drop(receiver);
}

#[tokio::test]
async fn literal_addresses_are_judged_too() {
    let (receiver, port) = listener("127.0.0.1");
    let answers = Arc::new(Answers::default());
    let (dialer, metrics) = dialer(&[], &answers);
    for raw in [
        format!("syslog://127.0.0.1:{port}"),
        format!("syslog://[::ffff:127.0.0.1]:{port}"),
    ] {
        let e = dialer.tcp(&url(&raw), SECOND).await.unwrap_err();
        assert!(matches!(e, DialError::Refused { .. }), "{raw}: {e}");
    }
    assert!(nobody_connected(&receiver));
    assert_eq!(metrics.refused_at(Stage::Connect), 2);
    let e = ConnectError::from(
        dialer
            .tcp(&url(&format!("syslog://127.0.0.1:{port}")), SECOND)
            .await
            .unwrap_err(),
    );
    assert!(e.refusal().is_some() && !e.is_certificate());
}

#[tokio::test]
async fn a_name_resolving_to_nothing_says_so() {
    let answers = Arc::new(Answers::default());
    let (dialer, _) = dialer(&[], &answers);
    let e = dialer
        .tcp(&url("syslog://empty.example"), SECOND)
        .await
        .unwrap_err();
    assert!(matches!(e, DialError::NoAddress { .. }), "{e}");
}

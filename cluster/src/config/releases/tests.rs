//! `PgReleases` against the machine's PostgreSQL (127.0.0.1:5432, a fresh database each test,
//! dropped at its end), two stores on one database standing for two nodes.

use std::time::Duration;

use stack::{ConfigVars, MAX_RELEASES, Release, ReleaseLog, make_release};

use super::*;

/// A fresh database with one app, `hello` (id `app-1`); dropped on drop.
struct Db {
    name: String,
}

const ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

impl Db {
    async fn new() -> Db {
        let name = format!("paas_unit_{}", uuid::Uuid::new_v4().simple());
        let admin = crate::config::connect(ADMIN, "test").await.unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        Db { name }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    /// A node's store, with the app made (once).
    async fn node(&self, node: &str) -> Arc<PgStore> {
        let (store, _) = PgStore::open(&self.url(), node).await.unwrap();
        let client = store.reader().await.unwrap();
        client
            .execute(
                "INSERT INTO apps (id, name, created_at, updated_at) VALUES ('app-1', 'hello', 0, 0)
                 ON CONFLICT DO NOTHING",
                &[],
            )
            .await
            .unwrap();
        drop(client);
        store
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-tAc",
            ])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

fn vars(pairs: &[(&str, &str)]) -> ConfigVars {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn open(store: &Arc<PgStore>, local: &[Release]) -> (Arc<PgReleases>, bool) {
    PgReleases::open(store.clone(), "app-1", local, vars(&[("A", "1")]), "op")
        .await
        .unwrap()
}

/// Sets `key` to `value` on `log`, as a PATCH does.
async fn set(log: &PgReleases, key: &str, value: &str) -> Release {
    make_release(log, "op", |current| {
        let mut next = current.clone();
        next.insert(key.to_owned(), value.to_owned());
        Ok(Some((format!("Set {key} config vars"), next)))
    })
    .await
    .unwrap()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_at_once_on_two_nodes_take_consecutive_versions_and_none_is_lost() {
    let db = Db::new().await;
    let (a, _) = open(&db.node("a").await, &[]).await;
    let (b, _) = open(&db.node("b").await, &[]).await;
    assert_eq!(a.current().unwrap().version, 1);
    assert_eq!(b.current(), a.current(), "v1 made once");
    let mut tasks = Vec::new();
    for i in 0..6 {
        let log = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            set(&log, &format!("K{i}"), &i.to_string()).await.version
        }));
    }
    let mut versions = Vec::new();
    for t in tasks {
        versions.push(t.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=7).collect::<Vec<u64>>());
    b.reload().await.unwrap();
    let newest = b.current().unwrap();
    assert_eq!(newest.version, 7);
    for i in 0..6 {
        assert_eq!(newest.config_vars[&format!("K{i}")], i.to_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_on_one_node_is_told_to_the_other() {
    let db = Db::new().await;
    let (a, _) = open(&db.node("a").await, &[]).await;
    let (b, _) = open(&db.node("b").await, &[]).await;
    let mut changes = b.changes().unwrap();
    let listener = spawn_release_listener(b.clone());
    let made = set(&a, "GREETING", "hola").await;
    tokio::time::timeout(Duration::from_secs(10), changes.changed())
        .await
        .expect("told within 10 s")
        .unwrap();
    assert_eq!(b.current(), Some(made.clone()));
    // B's next release is made on top of A's.
    let mine = set(&b, "COLOR", "blue").await;
    assert_eq!(mine.version, made.version + 1);
    assert_eq!(
        mine.config_vars,
        vars(&[("A", "1"), ("COLOR", "blue"), ("GREETING", "hola")])
    );
    listener.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_process_file_is_imported_once_and_history_is_bounded() {
    let db = Db::new().await;
    let local: Vec<Release> = (1..=3)
        .map(|v| Release {
            id: format!("r{v}"),
            version: v,
            description: format!("release {v}"),
            user: "op".to_owned(),
            created_at: logplex::Timestamp::from_micros(v as i64),
            config_vars: vars(&[("V", &v.to_string())]),
        })
        .collect();
    let (a, imported) = open(&db.node("a").await, &local).await;
    assert!(imported);
    assert_eq!(a.all(), local);
    let other = vec![Release {
        id: "elsewhere".to_owned(),
        ..local[0].clone()
    }];
    let (b, imported) = open(&db.node("b").await, &other).await;
    assert!(!imported, "imported twice");
    assert_eq!(b.all(), local);

    for i in 0..MAX_RELEASES + 2 {
        set(&b, "N", &i.to_string()).await;
    }
    let all = b.all();
    assert_eq!(all.len(), MAX_RELEASES);
    assert_eq!(all.last().unwrap().version, 3 + MAX_RELEASES as u64 + 2);
    let client = b.store().reader().await.unwrap();
    let kept: i64 = client
        .query_one("SELECT count(*) FROM releases", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(kept, MAX_RELEASES as i64);
}

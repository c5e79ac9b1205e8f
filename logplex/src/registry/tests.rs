//! The registry's behaviour, and its file across versions.

use super::*;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("logplex-registry-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn apps_tokens_and_keys() {
    let mut r = Registry::in_memory();
    let (app, token) = r.create_app("shop").unwrap();
    assert_eq!(app.name, "shop");
    assert!(token.token.starts_with("t.") && token.token.len() == 38);
    let found = r.token(&token.token).unwrap();
    assert_eq!(
        (found.app_id.as_str(), found.name.as_str()),
        (app.id.as_str(), "app")
    );
    assert!(matches!(
        r.create_app("shop"),
        Err(RegistryError::AppExists(_))
    ));
    assert!(matches!(
        r.create_app("Shop"),
        Err(RegistryError::InvalidAppName(_))
    ));

    let deploys = r.create_token("shop", "deploys").unwrap();
    assert_eq!(r.tokens("shop").len(), 2);
    assert!(matches!(
        r.create_token("shop", "has space"),
        Err(RegistryError::InvalidSourceName { .. })
    ));
    assert!(matches!(
        r.create_token("nope", "app"),
        Err(RegistryError::NoSuchApp(_))
    ));

    let rotated = r.rotate_token("shop", &deploys.token).unwrap();
    assert!(
        r.token(&deploys.token).is_none(),
        "the old token stops working"
    );
    assert_eq!(
        r.token(&rotated.token).map(|t| t.name.as_str()),
        Some("deploys")
    );
    r.revoke_token("shop", &rotated.token).unwrap();
    assert!(matches!(
        r.revoke_token("shop", &rotated.token),
        Err(RegistryError::NoSuchToken)
    ));

    let key = r.create_key(&KeyScope::App("shop".into())).unwrap();
    let caller = r.authenticate(&key.secret).unwrap();
    assert_eq!(caller.scope, KeyScope::App("shop".into()));
    assert_eq!(caller.key_id, key.key.id);
    assert!(r.authenticate("k.not-a-key").is_none());
    r.delete_app("shop").unwrap();
    assert!(
        r.token(&token.token).is_none() && r.authenticate(&key.secret).is_none(),
        "an app's credentials go with it"
    );
}

#[test]
fn an_app_may_act_on_its_own_tokens_and_keys_only() {
    let mut r = Registry::in_memory();
    let (_, shop) = r.create_app("shop").unwrap();
    let (_, blog) = r.create_app("blog").unwrap();
    for result in [
        r.rotate_token("shop", &blog.token),
        r.revoke_token("shop", &blog.token),
        r.revoke_token("nope", &blog.token),
    ] {
        assert!(matches!(result, Err(RegistryError::NoSuchToken)));
    }
    assert!(r.token(&blog.token).is_some(), "blog's token still works");
    let shop_key = r.create_key(&KeyScope::App("shop".into())).unwrap();
    let blog_key = r.create_key(&KeyScope::App("blog".into())).unwrap();
    let shop_scope = KeyScope::App("shop".into());
    assert!(matches!(
        r.revoke_key(&blog_key.key.id, &shop_scope),
        Err(RegistryError::NoSuchKey)
    ));
    assert!(matches!(
        r.rotate_key(&blog_key.key.id, &shop_scope),
        Err(RegistryError::NoSuchKey)
    ));
    assert_eq!(
        r.keys(&shop_scope).len(),
        1,
        "an app key sees its app's keys only"
    );
    assert!(r.authenticate(&blog_key.secret).is_some());
    r.revoke_key(&shop_key.key.id, &shop_scope).unwrap();
    assert!(r.authenticate(&shop_key.secret).is_none());
    assert!(r.token(&shop.token).is_some());
}

#[test]
fn a_recreated_app_inherits_nothing() {
    let mut r = Registry::in_memory();
    let (old, token) = r.create_app("tenant-x").unwrap();
    let key = r.create_key(&KeyScope::App("tenant-x".into())).unwrap();
    r.delete_app("tenant-x").unwrap();
    let (new, _) = r.create_app("tenant-x").unwrap();
    assert_ne!(old.id, new.id, "ids are never reused");
    assert!(r.token(&token.token).is_none());
    assert!(r.authenticate(&key.secret).is_none());
    assert_eq!(r.tokens("tenant-x").len(), 1);
    assert!(r.app_by_id(&old.id).is_none());
    assert_eq!(
        r.app_by_id(&new.id).map(|a| a.name.as_str()),
        Some("tenant-x")
    );
}

#[test]
fn limits_on_tokens_and_keys_per_app() {
    let mut r = Registry::in_memory();
    r.set_limits(RegistryLimits {
        tokens_per_app: 3,
        keys_per_app: 2,
    });
    r.create_app("shop").unwrap();
    r.create_token("shop", "a").unwrap();
    r.create_token("shop", "b").unwrap();
    let e = r.create_token("shop", "c").unwrap_err();
    assert_eq!(e.to_string(), "an app may have at most 3 tokens");
    for _ in 0..2 {
        r.create_key(&KeyScope::App("shop".into())).unwrap();
    }
    assert!(matches!(
        r.create_key(&KeyScope::App("shop".into())),
        Err(RegistryError::TooMany {
            what: "keys",
            limit: 2
        })
    ));
    r.create_app("blog").unwrap();
    r.create_token("blog", "a").unwrap();
}

#[test]
fn a_new_configured_operator_key_retires_the_old_one() {
    let mut r = Registry::in_memory();
    let boot = r.bootstrap_operator_key();
    let made = r.create_key(&KeyScope::Operator).unwrap();
    assert!(r.configure_operator_key("first-secret"));
    assert!(
        r.authenticate(&boot.secret).is_none(),
        "the bootstrap key retires"
    );
    assert!(
        !r.configure_operator_key("first-secret"),
        "the same key again: no change"
    );
    assert!(r.configure_operator_key("second-secret"));
    assert!(
        r.authenticate("first-secret").is_none(),
        "the old configured key retires"
    );
    assert_eq!(
        r.authenticate("second-secret").unwrap().scope,
        KeyScope::Operator
    );
    assert!(
        r.authenticate(&made.secret).is_some(),
        "keys made through the API stay"
    );
    let configured = r.authenticate("second-secret").unwrap().key_id;
    assert!(matches!(
        r.revoke_key(&configured, &KeyScope::Operator),
        Err(RegistryError::ConfiguredKey)
    ));
    let rotated = r.rotate_key(&made.key.id, &KeyScope::Operator).unwrap();
    assert!(r.authenticate(&made.secret).is_none());
    assert!(r.authenticate(&rotated.secret).is_some());
}

#[test]
fn survives_a_restart_with_keys_hashed() {
    let dir = temp_dir("restart");
    let (app, token, key) = {
        let mut r = Registry::open(&dir).unwrap();
        let (app, token) = r.create_app("shop").unwrap();
        r.configure_operator_key("operator-secret");
        let key = r.create_key(&KeyScope::App("shop".into())).unwrap();
        r.save().unwrap();
        (app, token, key)
    };
    let text = std::fs::read_to_string(dir.join(FILE_NAME)).unwrap();
    assert!(
        !text.contains(&key.secret) && !text.contains("operator-secret"),
        "no key is kept in the clear: {text}"
    );
    let r = Registry::open(&dir).unwrap();
    assert_eq!(r.app("shop"), Some(&app));
    assert_eq!(r.token(&token.token), Some(&token));
    assert_eq!(
        r.authenticate(&key.secret).unwrap().scope,
        KeyScope::App("shop".into())
    );
    assert_eq!(
        r.authenticate("operator-secret").unwrap().scope,
        KeyScope::Operator
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(
            mode & 0o077,
            0,
            "credentials are readable by their owner only"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn older_snapshots_never_overwrite_newer_ones() {
    let dir = temp_dir("order");
    let mut r = Registry::open(&dir).unwrap();
    r.create_app("shop").unwrap();
    let (first, file) = r.snapshot().unwrap().unwrap();
    let first_json = first.json.clone();
    let _ = file;
    r.create_app("blog").unwrap();
    let (second, file) = r.snapshot().unwrap().unwrap();
    file.write(&second).unwrap();
    file.write(&Snapshot {
        seq: first.seq,
        json: first_json,
    })
    .unwrap();
    let reread = Registry::open(&dir).unwrap();
    assert!(
        reread.app("blog").is_some(),
        "the late, older write was skipped"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// What both frozen fixtures hold: the app `shop` and its token.
fn reads_the_fixtures_app_and_token(r: &Registry) {
    let shop = r.app("shop").unwrap();
    assert_eq!(shop.id, "6f1c1a86-3c5e-4a43-9c1e-2b7e1f0a5d11");
    let t = r.token("t.0b7d2a4e-9c51-4f3e-8a2d-5e6f7a8b9c0d").unwrap();
    assert_eq!(
        (t.app_id.as_str(), t.name.as_str()),
        (shop.id.as_str(), "app")
    );
}

/// Version 1's file, frozen: it is still read (and migrated) by this version.
#[test]
fn reads_the_frozen_version_1_fixture() {
    let dir = temp_dir("fixture-v1");
    std::fs::write(
        dir.join(FILE_NAME),
        include_str!("../../tests/fixtures/registry-v1.json"),
    )
    .unwrap();
    let r = Registry::open(&dir).unwrap();
    reads_the_fixtures_app_and_token(&r);
    assert_eq!(
        r.authenticate("k.operator").unwrap().scope,
        KeyScope::Operator
    );
    assert_eq!(
        r.authenticate("k.scoped").unwrap().scope,
        KeyScope::App("shop".into())
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Version 2's file, frozen: a later change that cannot read it fails here.
#[test]
fn reads_the_frozen_version_2_fixture() {
    let dir = temp_dir("fixture-v2");
    std::fs::write(
        dir.join(FILE_NAME),
        include_str!("../../tests/fixtures/registry-v2.json"),
    )
    .unwrap();
    let r = Registry::open(&dir).unwrap();
    reads_the_fixtures_app_and_token(&r);
    let operator = r.authenticate("k.operator").unwrap();
    assert_eq!(
        (operator.key_id.as_str(), operator.scope),
        ("0d9a7c1e-1111-4a43-9c1e-2b7e1f0a5d11", KeyScope::Operator)
    );
    assert_eq!(
        r.authenticate("k.scoped").unwrap().scope,
        KeyScope::App("shop".into())
    );
    let keys = r.keys(&KeyScope::Operator);
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0].origin, KeyOrigin::Configured);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn damaged_or_future_files_are_refused_with_a_reason() {
    let dir = temp_dir("damaged");
    for (content, reason) in [
        ("{not json", "key must be a string"),
        (r#"{"apps": {}}"#, "no format version"),
        (
            r#"{"version": 3}"#,
            "format version 3, this program reads 1 and 2",
        ),
    ] {
        std::fs::write(dir.join(FILE_NAME), content).unwrap();
        let err = Registry::open(&dir).unwrap_err().to_string();
        assert!(err.contains(reason), "{err}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

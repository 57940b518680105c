//! The store's Redis backend against a real `redis-server`: documents round trip and expire,
//! an outage is an error (never a hang), the next operation after Redis returns succeeds, and
//! a gateway starts while Redis is down. (The embedded backend's own tests are unit tests.)

use std::time::{Duration, Instant};

use llmcallgateway::store::Store;

use crate::support::client::get;
use crate::support::gateway::{temp_dir, Gateway};
use crate::support::redis::RedisServer;

#[test]
fn redis_documents_round_trip_list_and_expire() {
    let redis = RedisServer::start();
    let store = Store::open(&temp_dir("unused"), Some(&redis.url())).unwrap();
    assert_eq!(store.backend(), "redis");
    store.put("notes", "a", b"one", None).unwrap();
    store.put("notes", "b*[x]", b"two", None).unwrap();
    store.put("other", "a", b"elsewhere", None).unwrap();
    store
        .put(
            "notes",
            "short",
            b"gone soon",
            Some(Duration::from_millis(50)),
        )
        .unwrap();
    assert_eq!(
        store.get("notes", "a").unwrap().as_deref(),
        Some(&b"one"[..])
    );
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(store.get("notes", "short").unwrap(), None);
    let mut listed = store.list("notes").unwrap();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            ("a".to_string(), b"one".to_vec()),
            ("b*[x]".to_string(), b"two".to_vec())
        ]
    );
    assert!(store.delete("notes", "a").unwrap());
    assert!(!store.delete("notes", "a").unwrap());
}

#[test]
fn two_stores_on_one_redis_see_each_others_documents() {
    let redis = RedisServer::start();
    let one = Store::open(&temp_dir("unused"), Some(&redis.url())).unwrap();
    let two = Store::open(&temp_dir("unused"), Some(&redis.url())).unwrap();
    one.put("responses", "resp_1", b"{}", None).unwrap();
    assert_eq!(
        two.get("responses", "resp_1").unwrap().as_deref(),
        Some(&b"{}"[..])
    );
}

#[test]
fn a_redis_outage_is_a_prompt_error_and_the_store_recovers_when_redis_returns() {
    let mut redis = RedisServer::start();
    let store = Store::open(&temp_dir("unused"), Some(&redis.url())).unwrap();
    store.put("notes", "kept", b"1", None).unwrap();

    redis.pause();
    let started = Instant::now();
    let err = store.get("notes", "kept").unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "no hang: {:?}",
        started.elapsed()
    );
    assert!(
        err.to_string().contains("Redis at redis://127.0.0.1:"),
        "{err}"
    );
    // The pooled connection broke; the next try connects afresh and fails the same way.
    assert!(store.put("notes", "new", b"2", None).is_err());

    redis.resume();
    store.put("notes", "new", b"2", None).unwrap();
    assert_eq!(
        store.get("notes", "new").unwrap().as_deref(),
        Some(&b"2"[..])
    );
}

#[test]
fn a_gateway_starts_and_serves_while_its_redis_is_down() {
    let mut redis = RedisServer::start();
    let url = redis.url();
    redis.pause();
    let gw = Gateway::start(&[("REDIS_URL", url.as_str())]);
    assert_eq!(get(gw.addr, "/health").status, 200);
}

#[test]
fn the_embedded_store_is_a_file_under_data_dir_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let gw = Gateway::start(&[]);
    let file = gw.data_dir.join("llmcallgateway.db");
    let mode = std::fs::metadata(&file)
        .expect("the store file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "{file:?}");
}

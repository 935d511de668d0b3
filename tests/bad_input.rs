//! Bad input gets a clear `Err`, never a panic: NUL bytes, empty and
//! wildcard topics, malformed filters, oversized payloads, invalid QoS,
//! out-of-range options, unusable persistence directories. After each
//! refusal the client is still connected and working. (Issue list: 11.)

mod common;

use std::time::Duration;

use common::{Broker, TempDir, WAIT};
use paho_mqtt_sync::{
    Client, ConnectOptions, Error, Message, Persistence, QoS, WillOptions, MAX_PAYLOAD,
    MAX_TOPIC_LEN,
};

/// The client still works: a QoS 1 round trip on a fresh topic.
fn still_works(c: &Client) -> anyhow::Result<()> {
    assert!(c.is_connected());
    let t = common::topic("ok");
    c.subscribe(&t, QoS::AtLeastOnce)?;
    let tok = c.publish(&t, b"ok", QoS::AtLeastOnce, false)?;
    c.wait_for_completion(tok, WAIT)?;
    assert_eq!(common::recv(c, WAIT)?.1.payload(), b"ok");
    Ok(())
}

#[test]
fn bad_topics_are_refused() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let c = common::connect(&broker.uri(), "badtopic")?;
    let long = "a".repeat(MAX_TOPIC_LEN + 1);
    for topic in ["", "a\0b", "a/+", "a/#", "#", "+", "a+b", long.as_str()] {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
            let e = c.publish(topic, b"x", qos, false).unwrap_err();
            assert!(matches!(e, Error::InvalidTopic { .. }), "{topic:?}: {e:?}");
            assert_eq!(e.code(), -1);
            let e = c
                .publish_message(topic, &Message::new("x", qos, true))
                .unwrap_err();
            assert!(matches!(e, Error::InvalidTopic { .. }), "{topic:?}: {e:?}");
        }
    }
    // The longest legal topic is accepted.
    let longest = "b".repeat(MAX_TOPIC_LEN);
    let tok = c.publish(&longest, b"x", QoS::AtLeastOnce, false)?;
    c.wait_for_completion(tok, WAIT)?;
    assert!(
        c.pending_delivery_tokens()?.is_empty(),
        "a refused publish left a token behind"
    );
    still_works(&c)
}

#[test]
fn bad_filters_are_refused() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let c = common::connect(&broker.uri(), "badfilt")?;
    let long = "a".repeat(MAX_TOPIC_LEN + 1);
    for filter in [
        "",
        "a\0b",
        "a/#/b",
        "a+/b",
        "a/b#",
        "#/",
        "a/++",
        long.as_str(),
    ] {
        let e = c.subscribe(filter, QoS::AtLeastOnce).unwrap_err();
        assert!(
            matches!(e, Error::InvalidFilter { .. }),
            "{filter:?}: {e:?}"
        );
        let e = c
            .subscribe_many(&[("good/one", QoS::AtMostOnce), (filter, QoS::AtMostOnce)])
            .unwrap_err();
        assert!(
            matches!(e, Error::InvalidFilter { .. }),
            "{filter:?}: {e:?}"
        );
        let e = c.unsubscribe(filter).unwrap_err();
        assert!(
            matches!(e, Error::InvalidFilter { .. }),
            "{filter:?}: {e:?}"
        );
        let e = c.unsubscribe_many(&["good/one", filter]).unwrap_err();
        assert!(
            matches!(e, Error::InvalidFilter { .. }),
            "{filter:?}: {e:?}"
        );
    }
    assert!(matches!(
        c.subscribe_many(&[]),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        c.unsubscribe_many(&[]),
        Err(Error::InvalidArgument(_))
    ));
    // Nothing of a refused subscribe_many was subscribed.
    let publisher = common::connect(&broker.uri(), "badfpub")?;
    publisher.publish("good/one", b"x", QoS::AtLeastOnce, false)?;
    let got = common::until_marker(&c, &publisher)?;
    assert!(got.is_empty(), "{got:?}");
    still_works(&c)
}

#[test]
fn oversized_payloads_are_refused() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let c = common::connect(&broker.uri(), "bigpay")?;
    let topic = common::topic("big");
    {
        // 256 MiB + 1 of zeroed memory: calloc'ed pages, never touched.
        let too_big = vec![0u8; MAX_PAYLOAD + 1];
        let e = c
            .publish(&topic, &too_big, QoS::AtLeastOnce, false)
            .unwrap_err();
        assert_eq!(e, Error::PayloadTooLarge(MAX_PAYLOAD + 1));
        let msg = Message::new(too_big, QoS::AtMostOnce, false);
        let e = c.publish_message(&topic, &msg).unwrap_err();
        assert_eq!(e, Error::PayloadTooLarge(MAX_PAYLOAD + 1));
        // Will payloads are limited to 65,535 bytes by the C API.
        let big_will = ConnectOptions::new().will(WillOptions::new(&topic, vec![1u8; 65_536]));
        let other = common::create(&broker.uri(), "bigwill")?;
        assert!(matches!(
            other.connect(&big_will),
            Err(Error::InvalidArgument(_))
        ));
        assert!(!other.is_connected());
    }
    assert!(c.pending_delivery_tokens()?.is_empty());
    still_works(&c)
}

#[test]
fn invalid_qos_values() {
    for bad in [3, 4, -1, i32::MAX, i32::MIN] {
        let e = QoS::try_from(bad).unwrap_err();
        assert_eq!(e, Error::InvalidQos(bad));
        assert_eq!(e.code(), -9);
    }
    for (n, q) in [
        (0, QoS::AtMostOnce),
        (1, QoS::AtLeastOnce),
        (2, QoS::ExactlyOnce),
    ] {
        assert_eq!(QoS::try_from(n), Ok(q));
        assert_eq!(i32::from(q), n);
    }
}

#[test]
fn bad_connect_options_are_refused_before_connecting() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let c = common::create(&broker.uri(), "badopt")?;
    let bad: Vec<(ConnectOptions, &str)> = vec![
        (common::options().username("a\0b"), "nul in user name"),
        (
            common::options().will(WillOptions::new("a/#", "x")),
            "wildcard will topic",
        ),
        (
            common::options().will(WillOptions::new("", "x")),
            "empty will topic",
        ),
        (
            common::options().will(WillOptions::new("a\0b", "x")),
            "nul in will topic",
        ),
        (
            common::options().keep_alive_interval(Duration::from_secs(65_536)),
            "keepalive",
        ),
        (common::options().max_inflight_messages(0), "inflight 0"),
        (
            common::options().server_uris(&["tcp://127.0.0.1:1\0"]),
            "nul in server URI",
        ),
        (
            common::options().password(vec![7u8; 65_536]),
            "password too long",
        ),
        (
            common::options().connect_timeout(Duration::from_secs(u64::MAX)),
            "huge timeout",
        ),
    ];
    for (o, what) in bad {
        let e = c.connect(&o).unwrap_err();
        assert!(e.code() < 0, "{what}: {e:?}");
        assert!(!c.is_connected(), "{what}");
    }
    // None of them reached the broker.
    assert!(!broker.log().contains(c.client_id()), "{}", broker.log());
    c.connect(&common::options())?;
    still_works(&c)
}

#[test]
fn command_timeout_below_five_seconds_is_refused() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let c = common::connect(&broker.uri(), "cmdto")?;
    for bad in [
        Duration::ZERO,
        Duration::from_millis(4_999),
        Duration::from_secs(1),
    ] {
        assert!(
            matches!(c.set_command_timeout(bad), Err(Error::InvalidArgument(_))),
            "{bad:?}"
        );
    }
    assert!(c
        .set_command_timeout(Duration::from_secs(u64::MAX))
        .is_err());
    c.set_command_timeout(Duration::from_secs(5))?;
    c.set_command_timeout(Duration::from_secs(30))?;
    still_works(&c)
}

#[test]
fn unusable_persistence_directories() -> anyhow::Result<()> {
    let tmp = TempDir::new("badpers")?;
    let missing = tmp.path().join("does/not/exist");
    let e = Client::create(
        "tcp://127.0.0.1:1",
        "p1",
        Persistence::File(missing.clone()),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Persistence(_)), "{e:?}");
    assert_eq!(e.code(), -2);
    assert!(!missing.exists(), "the missing directory was created");

    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x")?;
    let e = Client::create("tcp://127.0.0.1:1", "p2", Persistence::File(file)).unwrap_err();
    assert!(matches!(e, Error::Persistence(_)), "{e:?}");

    // File persistence needs a client id to name its files.
    let e = Client::create(
        "tcp://127.0.0.1:1",
        "",
        Persistence::File(tmp.path().to_path_buf()),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Persistence(_)), "{e:?}");
    Ok(())
}

#[test]
fn operations_on_a_client_that_never_connected() -> anyhow::Result<()> {
    let c = Client::create(
        "tcp://127.0.0.1:1",
        &common::client_id("never"),
        Persistence::None,
    )?;
    assert!(!c.is_connected());
    assert_eq!(
        c.publish("a", b"x", QoS::AtLeastOnce, false),
        Err(Error::Disconnected)
    );
    assert_eq!(
        c.publish("a", b"x", QoS::AtMostOnce, false),
        Err(Error::Disconnected)
    );
    assert!(c.subscribe("a", QoS::AtMostOnce).is_err());
    assert!(c.unsubscribe("a").is_err());
    assert_eq!(
        c.receive(Duration::from_millis(10)),
        Err(Error::Disconnected)
    );
    assert!(c.pending_delivery_tokens()?.is_empty());
    // An unknown token is not in flight.
    c.wait_for_completion(paho_mqtt_sync::DeliveryToken::from_id(42), Duration::ZERO)?;
    Ok(())
}

#[test]
fn utf8_errors_are_reported() -> anyhow::Result<()> {
    let broker = Broker::new()?;
    let c = common::connect(&broker.uri(), "utf8")?;
    let t = common::topic("utf8");
    c.subscribe(&t, QoS::AtMostOnce)?;
    c.publish(&t, &[0xff, 0xfe, 0x00], QoS::AtMostOnce, false)?;
    let (_, m) = common::recv(&c, WAIT)?;
    let e = m.payload_str().unwrap_err();
    assert!(matches!(e, Error::Utf8(_)));
    assert_eq!(e.code(), -5);
    // Non-ASCII UTF-8 topics are fine.
    let t2 = format!("{t}/grüße/温度");
    c.subscribe(&t2, QoS::AtMostOnce)?;
    c.publish(&t2, "ß".as_bytes(), QoS::AtMostOnce, false)?;
    let (topic, m) = common::recv(&c, WAIT)?;
    assert_eq!((topic.as_str(), m.payload_str()?), (t2.as_str(), "ß"));
    Ok(())
}

//! Hostile or broken servers: a scripted fake broker
//! (tests/common/fake_broker.rs) sends what no sane broker sends (stray,
//! duplicate and out-of-order acknowledgements, malformed and oversized
//! packets, a packet trickled byte by byte, QoS 3) and every call must come
//! back, with `Ok` or `Err`, in bounded time, without crashing the process.
//!
//! Each case runs in a child process ([`common::in_child`]), so a crash or a
//! hang fails that case only. Cases marked with a [`Bug`] fail with Paho C
//! 1.3.16 as released and pass with the fixes in `paho-mqtt-c/fixes/` (the
//! `bundled` build). Built without `bundled` (the system library), such a case
//! passes when the bug shows, printing "expected failure", and fails when a
//! bug that always shows does not: then the system library was fixed and the
//! marker should go.

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use common::fake_broker::{
    pkt, Conn, FakeBroker, PUBCOMP, PUBLISH, PUBREC, PUBREL, SCRIPT_WAIT, SUBSCRIBE,
};
use common::WAIT;
use paho_mqtt_sync::{Client, ConnectOptions, Error, MqttVersion, QoS};

/// How long one case may take in its child process.
const CHILD_LIMIT: Duration = Duration::from_secs(90);

/// The command timeout the cases set: the smallest the library allows.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);

/// A bug of Paho C 1.3.16 that the patched (bundled) library fixes.
#[derive(Clone, Copy)]
struct Bug {
    /// The patch in paho-mqtt-c/fixes/ that fixes it.
    fix: &'static str,
    /// Whether 1.3.16 always fails the case (otherwise it depends on timing or
    /// on what the heap holds).
    always: bool,
}

const ACK_SLOT: Bug = Bug {
    fix: "020-ack-slot.patch",
    always: true,
};

/// Runs `body` in a child process and judges the outcome (see the module docs).
fn case(name: &str, bug: Option<Bug>, body: fn() -> anyhow::Result<()>) -> anyhow::Result<()> {
    if std::env::var_os("PAHO_SYNC_TEST_CHILD").is_some() {
        return body();
    }
    let outcome = common::in_child(name, CHILD_LIMIT, body);
    match bug {
        Some(bug) if !cfg!(feature = "bundled") => known_c_bug(bug, outcome),
        _ => outcome,
    }
}

/// The outcome of a case that only the patched library passes, with the
/// system library.
fn known_c_bug(bug: Bug, outcome: anyhow::Result<()>) -> anyhow::Result<()> {
    match outcome {
        Err(e) => {
            eprintln!(
                "expected failure with the system library (fixed by paho-mqtt-c/fixes/{}): {e:#}",
                bug.fix
            );
            Ok(())
        }
        Ok(()) if bug.always => bail!(
            "passed with the system library, which should have the bug fixed by \
             paho-mqtt-c/fixes/{}: if the system library is fixed, drop the marker",
            bug.fix
        ),
        Ok(()) => {
            eprintln!(
                "passed with the system library (the bug fixed by {} does not always show)",
                bug.fix
            );
            Ok(())
        }
    }
}

/// A client of `broker`, connected, with the shortest command timeout.
fn connected(broker: &FakeBroker, tag: &str) -> anyhow::Result<Client> {
    connected_with(broker, tag, &common::options())
}

fn connected_with(broker: &FakeBroker, tag: &str, opts: &ConnectOptions) -> anyhow::Result<Client> {
    let c = common::connect_with(&broker.uri(), tag, opts)?;
    c.set_command_timeout(COMMAND_TIMEOUT)?;
    Ok(c)
}

/// Whether the client sees its connection lost within `within`.
fn lost_within(c: &Client, within: Duration) -> bool {
    common::wait_until(within, || !c.is_connected())
}

/// (VmSize, VmRSS) of this process, in bytes.
fn vm() -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name} in /proc/self/status"))?;
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .context("malformed line")?
            .parse()?;
        Ok(kib * 1024)
    };
    Ok((field("VmSize:")?, field("VmRSS:")?))
}

const MIB: u64 = 1024 * 1024;

/// The script's end: waits for the client to close (it disconnects at the
/// end of each case) and drops the connection.
fn until_closed(mut c: Conn) -> anyhow::Result<()> {
    c.wait_closed(SCRIPT_WAIT);
    Ok(())
}

// ---------------------------------------------------------------------------
// The acknowledgement slot (020-ack-slot.patch)

/// The broker answers SUBSCRIBE with an UNSUBACK nobody asked for, a SUBACK
/// for another packet id and another UNSUBACK, in one write. 1.3.16 parks each
/// in its one slot and the subscribe takes whatever is there last: an UNSUBACK
/// read as a SUBACK (SIGSEGV in MQTTClient_subscribeMany5) or the wrong SUBACK
/// (success). Fixed: none of them answers the SUBSCRIBE, so it times out (and
/// the library drops the connection, as for any missing SUBACK); after a
/// reconnect, a proper SUBACK works.
#[test]
fn stray_unsuback_then_suback_for_another_id() -> anyhow::Result<()> {
    case(
        "stray_unsuback_then_suback_for_another_id",
        Some(ACK_SLOT),
        || {
            let broker = FakeBroker::start(|l| {
                let (mut c, _) = l.accept_client()?;
                let id = c.expect(SUBSCRIBE, SCRIPT_WAIT)?.packet_id()?;
                let mut bytes = pkt::unsuback(id);
                bytes.extend(pkt::suback(id.wrapping_add(1000), &[1]));
                bytes.extend(pkt::unsuback(id.wrapping_add(1001)));
                c.write(&bytes)?;
                c.wait_closed(SCRIPT_WAIT);
                let (mut c, _) = l.accept_client()?;
                let id = c.expect(SUBSCRIBE, SCRIPT_WAIT)?.packet_id()?;
                c.write(&pkt::suback(id, &[1]))?;
                until_closed(c)
            })?;
            let c = connected(&broker, "strayuns")?;
            let r = c.subscribe("hostile/a", QoS::AtLeastOnce);
            ensure!(
                r.is_err(),
                "SUBSCRIBE answered by a SUBACK for another id or an UNSUBACK: {r:?}"
            );
            ensure!(lost_within(&c, WAIT), "still connected after the timeout");
            c.connect(&common::options())?;
            ensure!(c.subscribe("hostile/b", QoS::AtLeastOnce)? == QoS::AtLeastOnce);
            c.disconnect(Duration::from_secs(1))?;
            broker.finish(WAIT)
        },
    )
}

/// The broker answers SUBSCRIBE with SUBACK, UNSUBACK and CONNACK in one
/// write. 1.3.16: the subscribe may read the CONNACK as its SUBACK (SIGSEGV),
/// and the stray CONNACK stays parked. Fixed: the SUBACK answers (or, if the
/// connection is closed first, the subscribe fails), the UNSUBACK is dropped
/// and a CONNACK on an established connection is a protocol error: the
/// connection is closed.
#[test]
fn suback_unsuback_and_connack_in_one_write() -> anyhow::Result<()> {
    case(
        "suback_unsuback_and_connack_in_one_write",
        Some(ACK_SLOT),
        || {
            let broker = FakeBroker::start(|l| {
                let (mut c, _) = l.accept_client()?;
                let id = c.expect(SUBSCRIBE, SCRIPT_WAIT)?.packet_id()?;
                let mut bytes = pkt::suback(id, &[1]);
                bytes.extend(pkt::unsuback(id));
                bytes.extend(pkt::connack(0, 0));
                c.write(&bytes)?;
                until_closed(c)
            })?;
            let c = connected(&broker, "threeack")?;
            let t0 = Instant::now();
            match c.subscribe("hostile/a", QoS::AtLeastOnce) {
                Ok(QoS::AtLeastOnce) | Err(_) => {}
                Ok(q) => bail!("granted {q:?}, the SUBACK said 1"),
            }
            ensure!(
                t0.elapsed() < Duration::from_secs(4),
                "subscribe took {:?}",
                t0.elapsed()
            );
            ensure!(
                lost_within(&c, WAIT),
                "a CONNACK on an established connection did not close it"
            );
            broker.finish(WAIT)
        },
    )
}

/// A duplicate SUBACK refusing an earlier subscription arrives between two
/// subscribes. 1.3.16 parks it and the next subscribe returns it at once: a
/// subscription the broker grants 500 ms later is reported refused. Fixed:
/// the duplicate is dropped.
#[test]
fn duplicate_suback_does_not_answer_the_next_subscribe() -> anyhow::Result<()> {
    case(
        "duplicate_suback_does_not_answer_the_next_subscribe",
        Some(ACK_SLOT),
        || {
            let broker = FakeBroker::start(|l| {
                let (mut c, _) = l.accept_client()?;
                let id = c.expect(SUBSCRIBE, SCRIPT_WAIT)?.packet_id()?;
                c.write(&pkt::suback(id, &[0x80]))?;
                std::thread::sleep(Duration::from_millis(200));
                c.write(&pkt::suback(id, &[0x80]))?;
                let id = c.expect(SUBSCRIBE, SCRIPT_WAIT)?.packet_id()?;
                std::thread::sleep(Duration::from_millis(500));
                c.write(&pkt::suback(id, &[1]))?;
                until_closed(c)
            })?;
            let c = connected(&broker, "dupsub")?;
            let r = c.subscribe("hostile/refused", QoS::AtLeastOnce);
            ensure!(
                matches!(r, Err(Error::SubscriptionRefused(_))),
                "first: {r:?}"
            );
            std::thread::sleep(Duration::from_millis(600));
            let r = c.subscribe("hostile/granted", QoS::AtLeastOnce);
            ensure!(
                matches!(r, Ok(QoS::AtLeastOnce)),
                "second subscribe answered by the duplicate SUBACK: {r:?}"
            );
            c.disconnect(Duration::from_secs(1))?;
            broker.finish(WAIT)
        },
    )
}

/// A stray CONNACK with return code 1 on an established connection. 1.3.16
/// parks it, and the next connect of the client takes it as its answer: the
/// connect is "refused" (unacceptable protocol version) and falls back to
/// MQTT 3.1. Fixed: the stray CONNACK closes the connection (protocol error)
/// and the next connect gets the broker's real answer, on MQTT 3.1.1.
#[test]
fn stray_connack_does_not_answer_the_next_connect() -> anyhow::Result<()> {
    case(
        "stray_connack_does_not_answer_the_next_connect",
        Some(ACK_SLOT),
        || {
            let (levels_tx, levels_rx) = mpsc::channel();
            let broker = FakeBroker::start(move |l| {
                let (mut c, _) = l.accept_client()?;
                std::thread::sleep(Duration::from_millis(100));
                c.write(&pkt::connack(0, 1))?;
                c.wait_closed(SCRIPT_WAIT);
                let mut levels = Vec::new();
                let mut last = None;
                // The real reconnect, then perhaps a fallback to 3.1.
                let mut wait = SCRIPT_WAIT;
                while let Some(mut c) = l.try_accept(wait) {
                    let connect = c.expect(common::fake_broker::CONNECT, SCRIPT_WAIT)?;
                    levels.push(connect.protocol_level()?);
                    std::thread::sleep(Duration::from_millis(300));
                    let _ = c.write(&pkt::connack(0, 0));
                    last = Some(c);
                    wait = Duration::from_secs(2);
                }
                levels_tx.send(levels)?;
                match last {
                    Some(c) => until_closed(c),
                    None => Ok(()),
                }
            })?;
            let c = connected(&broker, "strayca")?;
            std::thread::sleep(Duration::from_millis(500));
            let _ = c.disconnect(Duration::from_secs(1));
            let resp = c.connect(&common::options())?;
            let version = resp.mqtt_version();
            c.disconnect(Duration::from_secs(1))?;
            let levels = levels_rx.recv_timeout(WAIT)?;
            broker.finish(WAIT)?;
            ensure!(
                version == MqttVersion::V3_1_1 && levels == [4],
                "reconnected with {version:?}; CONNECT protocol levels {levels:?}"
            );
            Ok(())
        },
    )
}

/// 50,000 SUBACKs and UNSUBACKs nobody asked for. 1.3.16 parks each in the
/// slot, leaking the one it overwrites (megabytes). Fixed: each is freed.
#[test]
fn stray_acks_do_not_leak() -> anyhow::Result<()> {
    case("stray_acks_do_not_leak", Some(ACK_SLOT), || {
        let broker = FakeBroker::start(|l| {
            let (mut c, _) = l.accept_client()?;
            // Each SUBSCRIBE is answered by `n` strays, then its SUBACK: when
            // the subscribe returns, the strays before it have been read.
            for n in [5_000, 50_000] {
                let id = c.expect(SUBSCRIBE, SCRIPT_WAIT)?.packet_id()?;
                let mut bytes = Vec::new();
                for i in 0..n {
                    let stray = (i % 60_000 + 1) as u16;
                    let stray = if stray == id { 60_001 } else { stray };
                    if i % 2 == 0 {
                        bytes.extend(pkt::suback(stray, &[1]));
                    } else {
                        bytes.extend(pkt::unsuback(stray));
                    }
                }
                bytes.extend(pkt::suback(id, &[0]));
                c.write(&bytes)?;
            }
            until_closed(c)
        })?;
        let c = connected(&broker, "leak")?;
        c.subscribe("hostile/warm-up", QoS::AtMostOnce)?; // 5,000 strays
        let (_, before) = vm()?;
        c.subscribe("hostile/measured", QoS::AtMostOnce)?; // 50,000 strays
        let (_, after) = vm()?;
        c.disconnect(Duration::from_secs(1))?;
        broker.finish(WAIT)?;
        let grew = after.saturating_sub(before);
        ensure!(
            grew < 3 * MIB,
            "resident memory grew by {} KiB over 50,000 stray acknowledgements",
            grew / 1024
        );
        Ok(())
    })
}

/// The broker writes a CONNACK and a malformed packet (a five-byte remaining
/// length) in one go. 1.3.16's thread parks the CONNACK, then fails on the
/// next packet, but the connect takes the CONNACK anyway and reports success
/// on a connection whose stream is broken, and that stays "connected". Fixed:
/// the connect fails (or the connection is reported lost).
#[test]
fn bad_packet_right_behind_the_connack() -> anyhow::Result<()> {
    case(
        "bad_packet_right_behind_the_connack",
        Some(Bug {
            fix: "020-ack-slot.patch",
            always: false,
        }),
        || {
            let broker = FakeBroker::start(|l| {
                let mut c = l.accept(SCRIPT_WAIT)?;
                c.expect(common::fake_broker::CONNECT, SCRIPT_WAIT)?;
                let mut bytes = pkt::connack(0, 0);
                bytes.extend([PUBLISH << 4, 0xff, 0xff, 0xff, 0xff, 0x01]);
                c.write(&bytes)?;
                c.wait_closed(SCRIPT_WAIT);
                Ok(())
            })?;
            let c = common::create(&broker.uri(), "behind")?;
            let r = c.connect(&common::options());
            let lost = r.is_err() || lost_within(&c, Duration::from_secs(3));
            let _ = c.disconnect(Duration::from_secs(1));
            broker.finish(WAIT)?;
            ensure!(lost, "connected ({r:?}) over a broken stream");
            Ok(())
        },
    )
}

/// CONNACKs no broker sends: a reserved return code, and a body cut to one
/// byte or to none. Each connect fails with an error, in time. (1.3.16
/// already copes.)
#[test]
fn malformed_connacks_fail_the_connect() -> anyhow::Result<()> {
    case("malformed_connacks_fail_the_connect", None, || {
        use common::fake_broker::{CONNACK, CONNECT};
        // Kept to the end: with the system library, destroying the process's
        // last client while the library's thread stops can crash (fixed in
        // the bundled build by 011/012), which is not this case's subject.
        let mut clients = Vec::new();
        for (i, answer) in [
            pkt::connack(0, 0x99),
            pkt::packet(CONNACK << 4, &[0]),
            pkt::packet(CONNACK << 4, &[]),
        ]
        .into_iter()
        .enumerate()
        {
            let broker = FakeBroker::start(move |l| {
                // Every CONNECT (the binding may retry) gets the same answer;
                // a connection without one (the binding's probe after a
                // failure) gets none.
                while let Some(mut c) = l.try_accept(Duration::from_secs(2)) {
                    if c.expect(CONNECT, Duration::from_secs(2)).is_ok() {
                        c.write(&answer)?;
                        c.wait_closed(Duration::from_secs(3));
                    }
                }
                Ok(())
            })?;
            let c = common::create(&broker.uri(), "badcack")?;
            let t0 = Instant::now();
            let r = c.connect(&common::options().mqtt_version(MqttVersion::V3_1_1));
            let took = t0.elapsed();
            clients.push(c);
            broker.finish(WAIT)?;
            match r {
                Err(Error::ConnectionRefused(code)) if i == 0 => ensure!(code.code() == 0x99),
                Err(_) if i > 0 => {}
                r => bail!("answer {i}: {r:?}"),
            }
            ensure!(took < Duration::from_secs(6), "answer {i}: {took:?}");
        }
        Ok(())
    })
}

/// A SUBACK with fewer return codes than the SUBSCRIBE had filters. 1.3.16
/// reports the missing ones granted at the QoS asked for. Fixed: an error.
#[test]
fn suback_with_fewer_codes_than_filters_is_an_error() -> anyhow::Result<()> {
    case(
        "suback_with_fewer_codes_than_filters_is_an_error",
        Some(ACK_SLOT),
        || {
            let broker = FakeBroker::start(|l| {
                let (mut c, _) = l.accept_client()?;
                let id = c.expect(SUBSCRIBE, SCRIPT_WAIT)?.packet_id()?;
                c.write(&pkt::suback(id, &[1]))?;
                until_closed(c)
            })?;
            let c = connected(&broker, "fewcodes")?;
            let r = c.subscribe_many(&[
                ("hostile/a", QoS::AtLeastOnce),
                ("hostile/b", QoS::AtLeastOnce),
            ]);
            ensure!(r.is_err(), "two filters, one return code: {r:?}");
            let _ = c.disconnect(Duration::from_secs(1));
            broker.finish(WAIT)
        },
    )
}

/// A SUBACK with a packet id and no return code at all (MQTT 3.1.1). 1.3.16
/// frees an uninitialized pointer in MQTTPacket_suback (a crash or heap
/// corruption, depending on what the heap held), and when it survives, the
/// subscribe waits for the whole command timeout although the connection is
/// gone. Fixed: the packet is rejected, the connection closed, and the
/// subscribe fails at once.
#[test]
fn suback_without_return_codes_closes_the_connection() -> anyhow::Result<()> {
    case(
        "suback_without_return_codes_closes_the_connection",
        Some(Bug {
            fix: "025-suback-no-codes.patch and 020-ack-slot.patch",
            always: true,
        }),
        || {
            let broker = FakeBroker::start(|l| {
                let (mut c, _) = l.accept_client()?;
                let id = c.expect(SUBSCRIBE, SCRIPT_WAIT)?.packet_id()?;
                c.write(&pkt::suback(id, &[]))?;
                ensure!(c.wait_closed(SCRIPT_WAIT), "the client kept the connection");
                Ok(())
            })?;
            let c = connected(&broker, "nocodes")?;
            let t0 = Instant::now();
            let r = c.subscribe("hostile/a", QoS::AtLeastOnce);
            let took = t0.elapsed();
            ensure!(r.is_err(), "{r:?}");
            ensure!(lost_within(&c, WAIT), "still connected");
            broker.finish(WAIT)?;
            ensure!(
                took < Duration::from_secs(4),
                "subscribe returned after {took:?}, the connection was lost at once"
            );
            Ok(())
        },
    )
}

// ---------------------------------------------------------------------------
// Memory (021-max-incoming-packet-size.patch)

/// A PUBLISH whose fixed header declares 200 MiB, followed by 64 MiB of it.
/// 1.3.16 allocates the 200 MiB at once and keeps filling it. Fixed: the
/// packet is over the 16 MiB default limit, so the connection is closed
/// before anything is allocated.
#[test]
fn huge_declared_packet_is_refused_before_allocation() -> anyhow::Result<()> {
    case(
        "huge_declared_packet_is_refused_before_allocation",
        Some(Bug {
            fix: "021-max-incoming-packet-size.patch",
            always: true,
        }),
        || {
            let (go_tx, go_rx) = mpsc::channel::<()>();
            let (sent_tx, sent_rx) = mpsc::channel::<usize>();
            let broker = FakeBroker::start(move |l| {
                let (mut c, _) = l.accept_client()?;
                go_rx.recv_timeout(SCRIPT_WAIT)?;
                let declared = 200 * 1024 * 1024;
                let mut header = vec![PUBLISH << 4];
                header.extend(pkt::remaining_length(declared));
                header.extend([0, 1, b't']);
                let mut sent = 0;
                if c.write(&header).is_ok() {
                    let chunk = vec![0u8; 1024 * 1024];
                    for _ in 0..64 {
                        if c.write(&chunk).is_err() {
                            break;
                        }
                        sent += chunk.len();
                    }
                }
                sent_tx.send(sent)?;
                // Keeps the connection open (the client's buffer with it)
                // until the test has measured.
                go_rx.recv_timeout(SCRIPT_WAIT)?;
                Ok(())
            })?;
            let c = connected(&broker, "huge")?;
            let (size0, rss0) = vm()?;
            go_tx.send(())?;
            let sent = sent_rx.recv_timeout(Duration::from_secs(60))?;
            let lost = lost_within(&c, Duration::from_secs(3));
            let (size1, rss1) = vm()?;
            let _ = go_tx.send(());
            broker.finish(WAIT)?;
            let (dsize, drss) = (size1.saturating_sub(size0), rss1.saturating_sub(rss0));
            ensure!(
                lost && dsize < 100 * MIB && drss < 32 * MIB,
                "connection lost: {lost}; after {} MiB of a declared 200 MiB packet, \
                 VmSize +{} MiB, VmRSS +{} MiB",
                sent as u64 / MIB,
                dsize / MIB,
                drss / MIB
            );
            Ok(())
        },
    )
}

/// The limit counts the whole packet, fixed header included: a packet of
/// exactly the limit is delivered, one byte more closes the connection; 0
/// restores the default. Only the patched library has the setting.
#[cfg(feature = "bundled")]
#[test]
fn max_incoming_packet_size_is_settable() -> anyhow::Result<()> {
    case("max_incoming_packet_size_is_settable", None, || {
        let packet = pkt::publish("hostile/big", &[7u8; 2000], 0, 0);
        let size = packet.len();
        let p = packet.clone();
        let broker = FakeBroker::start(move |l| {
            for _ in 0..2 {
                let (mut c, _) = l.accept_client()?;
                c.write(&p)?;
                c.wait_closed(SCRIPT_WAIT);
            }
            Ok(())
        })?;
        let default = paho_mqtt_sync::set_max_incoming_packet_size(Some(size - 1))?;
        ensure!(default == 16 * 1024 * 1024, "default {default}");
        let c = connected(&broker, "maxpkt")?;
        ensure!(
            lost_within(&c, WAIT),
            "a {size}-byte packet passed a {}-byte limit",
            size - 1
        );
        ensure!(common::recv(&c, Duration::from_millis(100)).is_err());
        let previous = paho_mqtt_sync::set_max_incoming_packet_size(Some(size))?;
        ensure!(previous == size - 1);
        c.connect(&common::options())?;
        let (_, m) = common::recv(&c, WAIT)?;
        ensure!(m.payload().len() == 2000 && c.is_connected());
        c.disconnect(Duration::from_secs(1))?;
        ensure!(paho_mqtt_sync::set_max_incoming_packet_size(None)? == size);
        ensure!(paho_mqtt_sync::set_max_incoming_packet_size(None)? == 16 * 1024 * 1024);
        ensure!(paho_mqtt_sync::set_max_incoming_packet_size(Some(0)).is_err());
        broker.finish(WAIT)
    })
}

// ---------------------------------------------------------------------------
// Keepalive (022-keepalive-whole-packets.patch)

/// With a 2 s keepalive, the broker starts a 1000-byte PUBLISH and sends one
/// byte of it every 500 ms. 1.3.16 counts each byte as a sign of life and
/// never notices that its PINGREQ is not answered. Fixed: the connection is
/// lost within about 5 s.
#[test]
fn trickled_packet_does_not_keep_the_connection_alive() -> anyhow::Result<()> {
    case(
        "trickled_packet_does_not_keep_the_connection_alive",
        Some(Bug {
            fix: "022-keepalive-whole-packets.patch",
            always: true,
        }),
        || {
            let broker = FakeBroker::start(|l| {
                let (mut c, _) = l.accept_client()?;
                let mut bytes = vec![PUBLISH << 4];
                bytes.extend(pkt::remaining_length(1000));
                c.write(&bytes)?;
                // At most 20 s of trickling; stops when the client closes.
                let body = [b'x'; 40];
                c.trickle(&body, 1, Duration::from_millis(500));
                Ok(())
            })?;
            let opts = common::options().keep_alive_interval(Duration::from_secs(2));
            let c = connected_with(&broker, "trickle", &opts)?;
            let t0 = Instant::now();
            let lost = lost_within(&c, Duration::from_secs(15));
            ensure!(
                lost,
                "still connected after {:?} with a 2 s keepalive and no PINGRESP",
                t0.elapsed()
            );
            Ok(())
        },
    )
}

// ---------------------------------------------------------------------------
// Malformed packets

/// A PUBLISH with QoS 3. 1.3.16 drops it silently and stays connected; MQTT
/// says to close the connection. Fixed: closed.
#[test]
fn publish_with_qos_3_closes_the_connection() -> anyhow::Result<()> {
    case(
        "publish_with_qos_3_closes_the_connection",
        Some(Bug {
            fix: "023-publish-qos3.patch",
            always: true,
        }),
        || {
            let broker = FakeBroker::start(|l| {
                let (mut c, _) = l.accept_client()?;
                c.write(&pkt::publish("hostile/q3", b"x", 3, 1))?;
                until_closed(c)
            })?;
            let c = connected(&broker, "qos3")?;
            let lost = lost_within(&c, WAIT);
            ensure!(
                common::recv(&c, Duration::from_millis(100)).is_err(),
                "a QoS 3 message was delivered"
            );
            let _ = c.disconnect(Duration::from_secs(1));
            broker.finish(WAIT)?;
            ensure!(lost, "a QoS 3 PUBLISH did not close the connection");
            Ok(())
        },
    )
}

/// A remaining length of five bytes (MQTT allows four): the connection is
/// closed. (1.3.16 already does this.)
#[test]
fn malformed_remaining_length_closes_the_connection() -> anyhow::Result<()> {
    case(
        "malformed_remaining_length_closes_the_connection",
        None,
        || {
            let broker = FakeBroker::start(|l| {
                let (mut c, _) = l.accept_client()?;
                c.write(&[PUBLISH << 4, 0xff, 0xff, 0xff, 0xff, 0x01])?;
                ensure!(c.wait_closed(SCRIPT_WAIT), "the client kept the connection");
                Ok(())
            })?;
            let c = connected(&broker, "remlen")?;
            ensure!(lost_within(&c, WAIT), "still connected");
            broker.finish(WAIT)
        },
    )
}

/// The broker closes the connection in the middle of a packet. (1.3.16
/// already copes; run under valgrind, this shows the partial buffer is freed.)
#[test]
fn packet_cut_short_closes_the_connection() -> anyhow::Result<()> {
    case("packet_cut_short_closes_the_connection", None, || {
        let broker = FakeBroker::start(|l| {
            let (mut c, _) = l.accept_client()?;
            let mut bytes = vec![PUBLISH << 4];
            bytes.extend(pkt::remaining_length(5000));
            bytes.extend([0, 1, b't']);
            bytes.extend([b'x'; 1000]);
            c.write(&bytes)?;
            std::thread::sleep(Duration::from_millis(200));
            Ok(()) // dropping the connection closes it
        })?;
        let c = connected(&broker, "cut")?;
        ensure!(lost_within(&c, WAIT), "still connected");
        ensure!(common::recv(&c, Duration::from_millis(100)).is_err());
        broker.finish(WAIT)
    })
}

/// A PUBLISH whose topic length runs past the end of the packet: the
/// connection is closed. (1.3.16 already does this.)
#[test]
fn topic_length_beyond_the_packet_closes_the_connection() -> anyhow::Result<()> {
    case(
        "topic_length_beyond_the_packet_closes_the_connection",
        None,
        || {
            let broker = FakeBroker::start(|l| {
                let (mut c, _) = l.accept_client()?;
                c.write(&pkt::packet(PUBLISH << 4, &[0x01, 0xf4, b'a', b'b', b'c']))?;
                ensure!(c.wait_closed(SCRIPT_WAIT), "the client kept the connection");
                Ok(())
            })?;
            let c = connected(&broker, "topiclen")?;
            ensure!(lost_within(&c, WAIT), "still connected");
            broker.finish(WAIT)
        },
    )
}

// ---------------------------------------------------------------------------
// Publish acknowledgements (024-stray-publish-acks.patch)

/// The broker answers a QoS 2 PUBLISH with PUBCOMP before PUBREC. 1.3.16
/// reports the delivery complete (the message is still in flight). Fixed:
/// nothing completes until the real PUBREC, PUBREL, PUBCOMP exchange.
#[test]
fn early_pubcomp_does_not_complete_a_qos2_publish() -> anyhow::Result<()> {
    case(
        "early_pubcomp_does_not_complete_a_qos2_publish",
        Some(Bug {
            fix: "024-stray-publish-acks.patch",
            always: true,
        }),
        || {
            let (go_tx, go_rx) = mpsc::channel::<()>();
            let broker = FakeBroker::start(move |l| {
                let (mut c, _) = l.accept_client()?;
                let id = c.expect(PUBLISH, SCRIPT_WAIT)?.packet_id()?;
                c.write(&pkt::ack(PUBCOMP, id))?;
                go_rx.recv_timeout(SCRIPT_WAIT)?;
                c.write(&pkt::ack(PUBREC, id))?;
                let rel = c.expect(PUBREL, SCRIPT_WAIT)?;
                ensure!(rel.packet_id()? == id);
                c.write(&pkt::ack(PUBCOMP, id))?;
                until_closed(c)
            })?;
            let c = connected(&broker, "early")?;
            let tok = c.publish("hostile/q2", b"x", QoS::ExactlyOnce, false)?;
            let r = c.wait_for_completion(tok, Duration::from_secs(2));
            ensure!(
                r.is_err(),
                "a PUBCOMP before PUBREC completed the QoS 2 delivery"
            );
            go_tx.send(())?;
            c.wait_for_completion(tok, WAIT)?;
            c.disconnect(Duration::from_secs(1))?;
            broker.finish(WAIT)
        },
    )
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP for packet ids never used, and a
/// duplicate PUBACK: the client answers PUBREC and PUBREL as MQTT says,
/// stays connected and its own QoS 1 publish completes normally.
#[test]
fn stray_publish_acks_are_harmless() -> anyhow::Result<()> {
    case("stray_publish_acks_are_harmless", None, || {
        let broker = FakeBroker::start(|l| {
            use common::fake_broker::PUBACK;
            let (mut c, _) = l.accept_client()?;
            let mut bytes = pkt::ack(PUBACK, 100);
            bytes.extend(pkt::ack(PUBREC, 101));
            bytes.extend(pkt::ack(PUBREL, 102));
            bytes.extend(pkt::ack(PUBCOMP, 103));
            bytes.extend(pkt::ack(PUBACK, 100));
            c.write(&bytes)?;
            // The answers to PUBREC and PUBREL, and the test's own PUBLISH,
            // in whatever order they come.
            let (mut pubrel, mut pubcomp, mut publish) = (false, false, false);
            while !(pubrel && pubcomp && publish) {
                let p = c.read_packet(SCRIPT_WAIT)?;
                match p.kind {
                    PUBREL => pubrel = p.packet_id()? == 101,
                    PUBCOMP => pubcomp = p.packet_id()? == 102,
                    PUBLISH => {
                        publish = true;
                        let id = p.packet_id()?;
                        c.write(&pkt::ack(PUBACK, id))?;
                        c.write(&pkt::ack(PUBACK, id))?;
                    }
                    k => bail!("unexpected packet type {k}"),
                }
            }
            until_closed(c)
        })?;
        let c = connected(&broker, "strayp")?;
        let tok = c.publish("hostile/q1", b"x", QoS::AtLeastOnce, false)?;
        c.wait_for_completion(tok, WAIT)?;
        std::thread::sleep(Duration::from_millis(200));
        ensure!(c.is_connected());
        c.disconnect(Duration::from_secs(1))?;
        broker.finish(WAIT)
    })
}

// ---------------------------------------------------------------------------
// MQTT 5 (026-disconnect-auth-leak.patch, 027-mqtt5-property-bounds.patch),
// through the raw C API: the safe API speaks MQTT 3 only.

mod v5 {
    use std::ffi::{c_char, c_int, c_void, CString};
    use std::ptr;

    use anyhow::bail;
    use paho_mqtt_sync::ffi;

    /// A raw MQTT 5 client in callback mode (so the library's thread reads
    /// its packets); destroyed when dropped.
    pub struct Client(ffi::MQTTClient);

    /// Frees every message (nobody reads them).
    unsafe extern "C" fn arrived(
        _context: *mut c_void,
        topic: *mut c_char,
        _len: c_int,
        mut message: *mut ffi::MQTTClient_message,
    ) -> c_int {
        // SAFETY: the library hands over both and expects them freed here.
        unsafe {
            ffi::MQTTClient_freeMessage(&mut message);
            ffi::MQTTClient_free(topic.cast());
        }
        1
    }

    impl Client {
        /// Creates a client for `uri` and connects with MQTT 5; returns the
        /// client and `MQTTClient_connect5`'s reason code.
        pub fn connect(uri: &str, id: &str) -> anyhow::Result<(Client, c_int)> {
            let uri = CString::new(uri)?;
            let id = CString::new(id)?;
            let mut create = ffi::MQTTClient_createOptions {
                struct_id: [
                    b'M' as c_char,
                    b'Q' as c_char,
                    b'C' as c_char,
                    b'O' as c_char,
                ],
                struct_version: 0,
                MQTTVersion: ffi::MQTTVERSION_5,
            };
            let mut handle: ffi::MQTTClient = ptr::null_mut();
            // SAFETY: valid out pointer, strings and options for the call.
            let rc = unsafe {
                ffi::MQTTClient_createWithOptions(
                    &mut handle,
                    uri.as_ptr(),
                    id.as_ptr(),
                    ffi::MQTTCLIENT_PERSISTENCE_NONE,
                    ptr::null_mut(),
                    &mut create,
                )
            };
            if rc != 0 {
                bail!("MQTTClient_createWithOptions: {rc}");
            }
            let client = Client(handle);
            // SAFETY: valid handle; `arrived` frees what it is given; no context.
            let rc = unsafe {
                ffi::MQTTClient_setCallbacks(handle, ptr::null_mut(), None, Some(arrived), None)
            };
            if rc != 0 {
                bail!("MQTTClient_setCallbacks: {rc}");
            }
            // SAFETY: all-zero is a valid value for this plain C struct
            // (integers and null pointers); the fields that matter are set below,
            // as MQTTClient_connectOptions_initializer5 sets them.
            let mut opts: ffi::MQTTClient_connectOptions = unsafe { std::mem::zeroed() };
            opts.struct_id = [
                b'M' as c_char,
                b'Q' as c_char,
                b'T' as c_char,
                b'C' as c_char,
            ];
            opts.struct_version = 8;
            opts.keepAliveInterval = 10;
            opts.reliable = 1;
            opts.connectTimeout = 5;
            opts.MQTTVersion = ffi::MQTTVERSION_5;
            opts.maxInflightMessages = -1;
            opts.cleanstart = 1;
            // SAFETY: valid handle and options; no properties.
            let resp = unsafe {
                ffi::MQTTClient_connect5(handle, &mut opts, ptr::null_mut(), ptr::null_mut())
            };
            let code = resp.reasonCode as c_int;
            // SAFETY: the response came from MQTTClient_connect5 and is freed once.
            unsafe { ffi::MQTTResponse_free(resp) };
            Ok((client, code))
        }

        pub fn is_connected(&self) -> bool {
            // SAFETY: valid handle.
            unsafe { ffi::MQTTClient_isConnected(self.0) != 0 }
        }
    }

    impl Drop for Client {
        fn drop(&mut self) {
            // SAFETY: valid handle, destroyed once; disconnecting a client
            // that is not connected only returns an error.
            unsafe {
                ffi::MQTTClient_disconnect(self.0, 0);
                ffi::MQTTClient_destroy(&mut self.0);
            }
        }
    }
}

/// An MQTT 5 CONNACK: success, no properties.
fn connack5() -> Vec<u8> {
    pkt::packet(common::fake_broker::CONNACK << 4, &[0, 0, 0])
}

/// An MQTT 5 server sends DISCONNECT (reason 0x8B, server shutting down) and
/// keeps the TCP connection open; another sends AUTH. 1.3.16 hands both to its
/// callback thread, which without a disconnected callback (and for AUTH,
/// always) neither frees nor acts on them: the packet leaks and the client
/// stays "connected". Fixed: freed, and the connection is closed (lost).
#[test]
fn mqtt5_server_disconnect_and_auth_are_freed() -> anyhow::Result<()> {
    case(
        "mqtt5_server_disconnect_and_auth_are_freed",
        Some(Bug {
            fix: "026-disconnect-auth-leak.patch",
            always: true,
        }),
        || {
            use common::fake_broker::{CONNECT, DISCONNECT};
            let auth = 15u8;
            for (name, packet) in [
                ("DISCONNECT", pkt::packet(DISCONNECT << 4, &[0x8b, 0])),
                ("AUTH", pkt::packet(auth << 4, &[0x18, 0])),
            ] {
                let broker = FakeBroker::start(move |l| {
                    let mut c = l.accept(SCRIPT_WAIT)?;
                    let connect = c.expect(CONNECT, SCRIPT_WAIT)?;
                    ensure!(connect.protocol_level()? == 5);
                    c.write(&connack5())?;
                    std::thread::sleep(Duration::from_millis(300));
                    c.write(&packet)?;
                    c.wait_closed(Duration::from_secs(5));
                    Ok(())
                })?;
                let (client, rc) = v5::Client::connect(&broker.uri(), &common::client_id("v5"))?;
                ensure!(rc == 0, "connect5: {rc}");
                let lost = common::wait_until(Duration::from_secs(3), || !client.is_connected());
                drop(client);
                broker.finish(WAIT)?;
                ensure!(lost, "still connected after the server's {name}");
            }
            Ok(())
        },
    )
}

/// MQTT 5 CONNACKs whose properties do not fit: a properties length cut
/// short, a property running past the declared length, a length longer than
/// the packet. Every connect fails, without a crash. 1.3.16 reads past the
/// packet buffer (valgrind shows it) and, depending on what lies there,
/// fails or accepts the CONNACK.
#[test]
fn mqtt5_malformed_properties_close_the_connection() -> anyhow::Result<()> {
    case(
        "mqtt5_malformed_properties_close_the_connection",
        Some(Bug {
            fix: "027-mqtt5-property-bounds.patch",
            always: false,
        }),
        || {
            use common::fake_broker::{CONNACK, CONNECT};
            for body in [
                vec![0u8, 0, 0x80],          // length VBI continues past the end
                vec![0, 0, 2, 0x27, 0],      // 4-byte property in a 2-byte block
                vec![0, 0, 1, 0x21, 0, 0],   // 2-byte property in a 1-byte block
                vec![0, 0, 9, 0x24, 1],      // length longer than the packet
                vec![0, 0, 3, 0x1f, 0, 200], // string longer than the packet
            ] {
                let packet = pkt::packet(CONNACK << 4, &body);
                let broker = FakeBroker::start(move |l| {
                    let mut c = l.accept(SCRIPT_WAIT)?;
                    c.expect(CONNECT, SCRIPT_WAIT)?;
                    c.write(&packet)?;
                    c.wait_closed(Duration::from_secs(5));
                    Ok(())
                })?;
                let (client, rc) = v5::Client::connect(&broker.uri(), &common::client_id("v5p"))?;
                ensure!(rc != 0, "CONNACK {body:?} accepted");
                drop(client);
                broker.finish(WAIT)?;
            }
            Ok(())
        },
    )
}

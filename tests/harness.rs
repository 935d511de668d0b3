//! Checks of the test harness itself (tests/common): the broker comes up,
//! stops, restarts on the same port, keeps persistent state, and the proxy
//! forwards, cuts and stalls.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Broker, Proxy, TempDir, WAIT};
use paho_mqtt_sync::QoS;

fn pid_alive(pid: u32) -> bool {
    // A reaped process has no /proc entry; a zombie would still have one, so
    // also look at its state.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.contains(") Z "),
        Err(_) => false,
    }
}

fn no_process(pid: u32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn broker_lifecycle_same_port_and_no_zombies() -> anyhow::Result<()> {
    let _w = common::watchdog("broker_lifecycle", Duration::from_secs(60));
    let mut broker = Broker::new()?;
    let port = broker.port();
    assert!(port != 1883);
    assert_eq!(broker.uri(), format!("tcp://127.0.0.1:{port}"));
    let pid = broker.pid().expect("running");
    assert!(pid_alive(pid));
    TcpStream::connect(broker.addr())?;
    let conf = std::fs::read_to_string(broker.config_path())?;
    assert!(
        conf.contains(&format!("listener {port} 127.0.0.1")),
        "{conf}"
    );

    broker.stop()?;
    assert!(no_process(pid), "stopped broker {pid} was not reaped");
    assert!(
        TcpStream::connect(broker.addr()).is_err(),
        "port still accepts after stop"
    );
    assert!(broker.log().contains("terminating"), "{}", broker.log());

    broker.start()?;
    assert_eq!(broker.port(), port);
    let pid2 = broker.pid().expect("running");
    TcpStream::connect(broker.addr())?;

    broker.kill()?;
    assert!(no_process(pid2), "killed broker {pid2} was not reaped");
    assert!(TcpStream::connect(broker.addr()).is_err());

    broker.restart()?;
    let pid3 = broker.pid().expect("running");
    let dir = broker.dir().to_path_buf();
    drop(broker);
    assert!(no_process(pid3), "dropped broker {pid3} was not reaped");
    assert!(!dir.exists(), "temp dir {} left behind", dir.display());
    Ok(())
}

#[test]
fn broker_persistence_keeps_retained_across_restart() -> anyhow::Result<()> {
    let _w = common::watchdog("broker_persistence", Duration::from_secs(60));
    let mut broker = Broker::builder().persistence(true).start()?;
    let topic = common::topic("persist");
    {
        let c = common::connect(&broker.uri(), "pers")?;
        let tok = c.publish(&topic, b"kept", QoS::AtLeastOnce, true)?;
        c.wait_for_completion(tok, WAIT)?;
        c.disconnect(Duration::from_secs(1))?;
    }
    broker.restart()?;
    assert!(broker.dir().join("mosquitto.db").exists());
    let c = common::connect(&broker.uri(), "pers")?;
    c.subscribe(&topic, QoS::AtLeastOnce)?;
    let (t, m) = common::recv(&c, WAIT)?;
    assert_eq!(
        (t.as_str(), m.payload(), m.retained()),
        (topic.as_str(), &b"kept"[..], true)
    );
    Ok(())
}

#[test]
fn broker_without_persistence_forgets_retained() -> anyhow::Result<()> {
    let _w = common::watchdog("broker_no_persistence", Duration::from_secs(60));
    let mut broker = Broker::new()?;
    let topic = common::topic("forget");
    {
        let c = common::connect(&broker.uri(), "pers")?;
        let tok = c.publish(&topic, b"lost", QoS::AtLeastOnce, true)?;
        c.wait_for_completion(tok, WAIT)?;
    }
    broker.restart()?;
    let c = common::connect(&broker.uri(), "pers")?;
    c.subscribe(&topic, QoS::AtLeastOnce)?;
    let before = common::until_marker(&c, &c)?;
    assert!(before.is_empty(), "{before:?}");
    Ok(())
}

#[test]
fn broker_with_users_refuses_anonymous_and_reports_failures() -> anyhow::Result<()> {
    let broker = Broker::builder()
        .user("alice", "secret")
        .user("bob", "pw2")
        .start()?;
    let conf = std::fs::read_to_string(broker.config_path())?;
    assert!(conf.contains("allow_anonymous false"), "{conf}");
    let passwd = std::fs::read_to_string(broker.dir().join("passwd"))?;
    assert!(
        passwd.starts_with("alice:") && passwd.contains("\nbob:"),
        "{passwd}"
    );

    // A broken config fails with a clear message that quotes the log.
    let err = Broker::builder()
        .config_line("no_such_option 1")
        .start()
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(text.contains("no_such_option"), "{text}");
    Ok(())
}

fn echo_server() -> anyhow::Result<(u16, std::thread::JoinHandle<()>)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    let t = std::thread::spawn(move || {
        // Serves two connections, echoing until EOF.
        for _ in 0..2 {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok((port, t))
}

#[test]
fn proxy_forwards_stalls_resumes_and_cuts() -> anyhow::Result<()> {
    let _w = common::watchdog("proxy", Duration::from_secs(60));
    let (port, server) = echo_server()?;
    let proxy = Proxy::new(port)?;
    let mut s = TcpStream::connect(("127.0.0.1", proxy.port()))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut buf = [0u8; 5];
    s.write_all(b"hello")?;
    s.read_exact(&mut buf)?;
    assert_eq!(&buf, b"hello");
    assert!(common::wait_until(WAIT, || proxy.connections() == 1));

    proxy.stall();
    s.write_all(b"later")?;
    s.set_read_timeout(Some(Duration::from_millis(300)))?;
    let e = s.read(&mut buf).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
        "{e}"
    );
    proxy.resume();
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.read_exact(&mut buf)?;
    assert_eq!(&buf, b"later", "stalled bytes are delivered on resume");

    let t0 = Instant::now();
    proxy.cut();
    assert_eq!(s.read(&mut buf)?, 0, "EOF after cut");
    assert!(t0.elapsed() < Duration::from_secs(1));
    assert_eq!(proxy.connections(), 0);

    // New connections still work after a cut.
    let mut s2 = TcpStream::connect(("127.0.0.1", proxy.port()))?;
    s2.set_read_timeout(Some(Duration::from_secs(5)))?;
    s2.write_all(b"again")?;
    s2.read_exact(&mut buf)?;
    assert_eq!(&buf, b"again");
    assert_eq!(proxy.accepted(), 2);
    drop(proxy);
    let mut rest = Vec::new();
    assert_eq!(
        s2.read_to_end(&mut rest)?,
        0,
        "dropping the proxy closes its connections"
    );
    server.join().expect("echo server");
    Ok(())
}

#[test]
fn temp_dir_is_removed() -> anyhow::Result<()> {
    let d = TempDir::new("x")?;
    std::fs::write(d.path().join("f"), b"1")?;
    let p = d.path().to_path_buf();
    drop(d);
    assert!(!p.exists());
    Ok(())
}

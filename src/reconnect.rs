//! Automatic reconnect ([`ConnectOptions::automatic_reconnect`]).
//!
//! After a successful connect with the option, the client's [`Reconnect`]
//! keeps those options. When the connection is lost, the connection-lost
//! trampoline starts one reconnect thread, which waits, connects, and on
//! failure waits twice as long (up to the maximum, with jitter) and tries
//! again, until a connect succeeds, the broker refuses (reported through
//! [`Callbacks::on_reconnect_stopped`](crate::Callbacks::on_reconnect_stopped)),
//! or `disconnect()` or a drop stops it. The backoff starts again at the
//! minimum after every lost connection: it grows with failed attempts, not
//! with connections that drop and come back at once.
//!
//! The thread holds only a weak reference to the client between attempts,
//! so a drop is never held up by a wait; a drop during an attempt completes
//! when the attempt returns (within the connect timeout).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::client::Inner;
use crate::context::{lock, Context};
use crate::error::Error;
use crate::options::ConnectOptions;
use crate::properties::Properties;
use crate::signal::Signal;

/// The connect and will properties of an MQTT 5 connect, for reconnecting.
type Properties5 = Arc<(Properties, Properties)>;

#[derive(Default)]
struct State {
    /// The options of the last successful connect, when they ask for
    /// automatic reconnect, with the connect and will properties of an
    /// MQTT 5 connect (`connect5`).
    plan: Option<(ConnectOptions, Option<Properties5>)>,
    /// `disconnect()` or a drop: no more attempts until the next connect.
    stopped: bool,
    /// A reconnect thread is alive.
    running: bool,
}

/// A client's automatic reconnect state.
#[derive(Default)]
pub(crate) struct Reconnect {
    state: Mutex<State>,
    wake: Signal,
}

impl Reconnect {
    /// A connect succeeded with `options`: keep them if they ask for
    /// automatic reconnect.
    pub(crate) fn connected(&self, options: &ConnectOptions) {
        let mut s = lock(&self.state);
        s.plan = options
            .reconnect_backoff()
            .is_some()
            .then(|| (options.clone(), None));
        s.stopped = false;
    }

    /// An MQTT 5 connect succeeded (see [`Reconnect::connected`]).
    pub(crate) fn connected5(
        &self,
        options: &ConnectOptions,
        props: &Properties,
        will: &Properties,
    ) {
        let mut s = lock(&self.state);
        s.plan = options.reconnect_backoff().is_some().then(|| {
            (
                options.clone(),
                Some(Arc::new((props.clone(), will.clone()))),
            )
        });
        s.stopped = false;
    }

    /// `disconnect()` or a drop: stops a reconnect thread at its next step
    /// (at once if it is waiting).
    pub(crate) fn stop(&self) {
        lock(&self.state).stopped = true;
        self.wake.notify_all();
    }

    /// Whether reconnecting was stopped.
    fn is_stopped(&self) -> bool {
        lock(&self.state).stopped
    }

    /// Starts the reconnect thread after a lost connection, if the last
    /// connect asked for it and none runs.
    pub(crate) fn connection_lost(&self, ctx: &Arc<Context>, owner: Weak<Inner>) {
        let options = {
            let mut s = lock(&self.state);
            let Some(plan) = s.plan.clone().filter(|_| !s.stopped && !s.running) else {
                return;
            };
            s.running = true;
            plan
        };
        let ctx2 = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("paho-reconnect".into())
            .spawn(move || {
                run(&ctx2, &owner, &options.0, options.1.as_deref());
                lock(&ctx2.reconnect().state).running = false;
            });
        if let Err(e) = spawned {
            lock(&self.state).running = false;
            log::error!("paho-mqtt-sync: cannot start the reconnect thread: {e}");
        }
    }

    /// Waits `pause`, or less when stopped; returns whether to go on.
    fn pause(&self, pause: Duration) -> bool {
        let until = Instant::now() + pause;
        let mut s = lock(&self.state);
        loop {
            if s.stopped {
                return false;
            }
            let now = Instant::now();
            if now >= until {
                return true;
            }
            s = self.wake.wait(s, Some(until - now));
        }
    }
}

/// The reconnect loop (see the module docs).
fn run(
    ctx: &Context,
    owner: &Weak<Inner>,
    options: &ConnectOptions,
    v5: Option<&(Properties, Properties)>,
) {
    let Some((min, max)) = options.reconnect_backoff() else {
        return;
    };
    let mut delay = min;
    let mut attempt = 0u32;
    loop {
        if ctx.is_closing() || !ctx.reconnect().pause(jitter(delay)) {
            return;
        }
        let Some(inner) = owner.upgrade() else { return };
        attempt += 1;
        let result = match v5 {
            Some((props, will)) => inner.connect5(options, props, will).map(|_| ()),
            None => inner.connect(options).map(|_| ()),
        };
        match result {
            Ok(()) => {
                if ctx.reconnect().is_stopped() {
                    // disconnect() was called during the attempt.
                    let _ = inner.disconnect(Duration::ZERO);
                }
                log::info!(
                    "paho-mqtt-sync: client {:?} reconnected (attempt {attempt})",
                    ctx.client_id()
                );
                return;
            }
            Err(Error::AlreadyConnected) => return,
            Err(
                e @ (Error::ConnectionRefused(_)
                | Error::ConnectionRefusedV5 { .. }
                | Error::InvalidArgument(_)
                | Error::InvalidProperty { .. }),
            ) => {
                log::error!(
                    "paho-mqtt-sync: client {:?} stops reconnecting: {e}",
                    ctx.client_id()
                );
                ctx.reconnect().stop();
                ctx.slots().run_reconnect_stopped(&e);
                return;
            }
            Err(e) => {
                delay = (delay * 2).min(max);
                log::warn!(
                    "paho-mqtt-sync: client {:?}: reconnect attempt {attempt} failed: {e}; \
                     next in about {delay:?}",
                    ctx.client_id()
                );
            }
        }
    }
}

/// `d` less up to a quarter, at random, so clients that lost the same
/// broker do not all come back at the same instant.
fn jitter(d: Duration) -> Duration {
    let random = RandomState::new().build_hasher().finish();
    let quarter = d / 4;
    let nanos = u64::try_from(quarter.as_nanos()).unwrap_or(u64::MAX);
    d - Duration::from_nanos(if nanos == 0 { 0 } else { random % nanos })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_quarter_below() {
        let d = Duration::from_millis(400);
        for _ in 0..100 {
            let j = jitter(d);
            assert!(j <= d && j >= Duration::from_millis(300), "{j:?}");
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }
}

//! Delivery tokens (`MQTTClient_deliveryToken`) and the bookkeeping that lets
//! `wait_for_completion` return as soon as the acknowledgement arrives.
//!
//! The C library's `MQTTClient_waitForCompletion` polls with
//! `MQTTClient_yield`, which sleeps 100 ms per turn while the callback thread
//! runs, and `MQTTClient_publish` does the same when its in-flight window is
//! full. This crate keeps its own record of the tokens in flight, completed from
//! the `deliveryComplete` callback, so waiters wake on a condition variable
//! instead, and a publish only reaches C when the window has room.

/// The token of a QoS 1 or 2 publish (`MQTTClient_deliveryToken`): the MQTT
/// packet identifier the library assigned. QoS 0 publishes return token 0,
/// which is always complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct DeliveryToken(i32);

impl DeliveryToken {
    /// The token as the C library numbers it.
    pub fn id(self) -> i32 {
        self.0
    }

    /// A token from its C value (for tokens obtained through [`crate::ffi`]).
    pub fn from_id(id: i32) -> Self {
        DeliveryToken(id)
    }
}

/// See [`Deliveries::room_for_a_batch`].
const ROOM_BATCH: usize = 16;

/// Tokens in flight for one client. Lives inside the client's state mutex.
#[derive(Debug)]
pub(crate) struct Deliveries {
    /// Published and not yet acknowledged.
    pending: Vec<i32>,
    /// QoS 1/2 publishes inside `MQTTClient_publish` right now.
    publishing: usize,
    /// Acknowledged before the publishing thread could record the token.
    early: Vec<i32>,
    /// Dropped unacknowledged when a clean session ended; kept until the
    /// library hands out the same packet id again.
    dropped: Vec<i32>,
    /// The library's in-flight limit (`maxInflightMessages`).
    limit: usize,
}

impl Deliveries {
    pub(crate) fn new() -> Self {
        Deliveries {
            pending: Vec::new(),
            publishing: 0,
            early: Vec::new(),
            dropped: Vec::new(),
            limit: 1,
        }
    }

    /// Sets the in-flight limit of the current connection.
    pub(crate) fn set_limit(&mut self, limit: usize) {
        self.limit = limit.max(1);
    }

    /// Whether a publish now would find room in the library's window, so that
    /// `MQTTClient_publish` does not go into its sleeping wait.
    pub(crate) fn has_room(&self) -> bool {
        self.pending.len() + self.publishing < self.limit
    }

    /// Whether enough of the window is free to wake a publisher waiting for
    /// room at once rather than when the library's thread goes idle: half of
    /// it, at most [`ROOM_BATCH`] places (one with a window of one).
    pub(crate) fn room_for_a_batch(&self) -> bool {
        let used = self.pending.len() + self.publishing;
        self.limit.saturating_sub(used) >= (self.limit / 2).clamp(1, ROOM_BATCH)
    }

    /// A QoS 1/2 publish is about to call into C.
    pub(crate) fn begin(&mut self) {
        self.publishing += 1;
    }

    /// The publish returned; `token` is its token when it succeeded.
    pub(crate) fn end(&mut self, token: Option<i32>) {
        self.publishing -= 1;
        if let Some(t) = token {
            self.dropped.retain(|&d| d != t);
            if let Some(i) = self.early.iter().position(|&e| e == t) {
                self.early.swap_remove(i);
            } else {
                self.pending.push(t);
            }
        }
        if self.publishing == 0 {
            // Completions of messages this client never recorded (restored
            // from persistence) end up here; nobody waits for them.
            self.early.clear();
        }
    }

    /// `deliveryComplete` for `token`.
    pub(crate) fn complete(&mut self, token: i32) {
        if let Some(i) = self.pending.iter().position(|&p| p == token) {
            self.pending.swap_remove(i);
        } else if self.publishing > 0 {
            self.early.push(token);
        }
    }

    pub(crate) fn is_pending(&self, token: i32) -> bool {
        self.pending.contains(&token)
    }

    /// Records messages the library restored from persistence when the
    /// client was created: they are in flight like any other.
    pub(crate) fn restored(&mut self, tokens: impl IntoIterator<Item = i32>) {
        for t in tokens {
            if !self.pending.contains(&t) {
                self.pending.push(t);
            }
        }
    }

    /// Whether `token` was dropped unacknowledged by the end of a clean session.
    pub(crate) fn is_dropped(&self, token: i32) -> bool {
        self.dropped.contains(&token)
    }

    /// Published and not yet acknowledged.
    pub(crate) fn pending(&self) -> &[i32] {
        &self.pending
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The library dropped all messages in flight (clean session ended).
    pub(crate) fn clear(&mut self) {
        for t in self.pending.drain(..) {
            if !self.dropped.contains(&t) {
                self.dropped.push(t);
            }
        }
        self.early.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_and_completion() {
        let mut d = Deliveries::new();
        assert!(d.has_room());
        d.begin();
        assert!(!d.has_room());
        d.end(Some(1));
        assert!(d.is_pending(1) && !d.has_room());
        d.complete(1);
        assert!(!d.is_pending(1) && d.has_room() && d.is_empty());
    }

    #[test]
    fn publishers_wake_for_a_batch_of_free_places() {
        // (window, places that must be free)
        for (limit, batch) in [(1, 1), (2, 1), (10, 5), (100, ROOM_BATCH)] {
            let mut d = Deliveries::new();
            d.set_limit(limit);
            for t in 1..=limit as i32 {
                d.begin();
                d.end(Some(t));
            }
            for t in 1..=limit as i32 {
                let free = t as usize - 1;
                assert_eq!(
                    d.room_for_a_batch(),
                    free >= batch,
                    "window {limit}, {free} free"
                );
                d.complete(t);
            }
            assert!(d.room_for_a_batch());
        }
    }

    #[test]
    fn ack_before_the_publisher_records_it() {
        let mut d = Deliveries::new();
        d.set_limit(10);
        d.begin();
        d.complete(5);
        d.end(Some(5));
        assert!(!d.is_pending(5) && d.is_empty());
    }

    #[test]
    fn dropped_tokens_until_reused() {
        let mut d = Deliveries::new();
        d.begin();
        d.end(Some(3));
        d.clear();
        assert!(!d.is_pending(3) && d.is_dropped(3) && d.has_room());
        d.clear();
        assert_eq!(d.dropped, vec![3]);
        d.begin();
        d.end(Some(3));
        assert!(d.is_pending(3) && !d.is_dropped(3));
    }

    #[test]
    fn unknown_completions_do_not_accumulate() {
        let mut d = Deliveries::new();
        d.complete(9);
        assert!(d.early.is_empty());
        d.set_limit(2);
        d.begin();
        d.complete(9);
        d.end(None);
        assert!(d.early.is_empty() && d.is_empty());
    }
}

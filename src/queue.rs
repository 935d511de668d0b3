//! The queue between the library's callback thread and the threads that call
//! `receive` or hold a [`Receiver`].
//!
//! It replaces `MQTTClient_receive`, which fails for every client of the
//! process once any client uses callbacks: here every client runs in callback
//! mode and messages without a message-arrived callback land in this queue.
//!
//! The capacity is a soft bound. The queue grows on demand (no up-front
//! allocation) up to it; a message that finds the queue full waits up to
//! [`OVERFLOW_WAIT`] for room, which pushes back on the broker through TCP when
//! the reader is only a little slow. After that it is queued anyway (no message
//! is ever dropped), a warning is logged, and the queue stops waiting until it
//! has drained to half its capacity. Waiting longer is not an option: the
//! callback thread is shared by every client of the process, so a queue nobody
//! reads would freeze all of them.
//!
//! Hand-over in batches: waking a sleeping reader costs a system call and two
//! context switches, more than the library spends on a small message. With the
//! bundled Paho C (fix 040, `MQTTClient_setIdleCallback`) a push that finds
//! the reader asleep does not wake it at once: the reader is woken when the
//! library's thread has nothing left to read and is about to wait for the
//! network (the idle callback), when [`BATCH`] messages are waiting, when the
//! queue is full, and before the library's thread runs any user code (which may
//! take long). A message that comes alone ([`SPARSE`] or more after the
//! previous one) wakes the reader at once, and a burst costs one wake-up per
//! batch. With a system library every push wakes a sleeping reader.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::mpsc::{RecvError, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::idle::Deferred;
use crate::message::Message;
use crate::signal::Signal;

pub(crate) type Item = (String, Message);

struct State {
    items: VecDeque<Item>,
    capacity: usize,
    /// The client is gone: nothing more will be pushed.
    closed: bool,
    /// Full and nobody made room in time: queue without waiting until the
    /// queue is down to half its capacity.
    overflowing: bool,
    /// A reader sleeps and items came for it: the queue waits in
    /// [`crate::idle`] for the library's thread to go idle.
    wake_deferred: bool,
    /// When the last item was pushed (see [`SPARSE`]).
    last_push: Option<Instant>,
}

/// How long a message waits for room in a full queue (see the module docs).
pub(crate) const OVERFLOW_WAIT: Duration = Duration::from_millis(100);

/// A sleeping reader is woken when this many messages wait for it (or half the
/// capacity, if less), even if the library's thread is still reading.
pub(crate) const BATCH: usize = 64;

/// A message that comes this long after the previous one wakes a sleeping
/// reader at once: messages that far apart are not a burst worth batching,
/// and waking the reader while the library's thread goes on (acknowledging
/// the message, reading what came with it) keeps the latency down.
pub(crate) const SPARSE: Duration = Duration::from_micros(20);

pub(crate) struct MessageQueue {
    state: Mutex<State>,
    /// Bumped (under the state lock) on every connection loss, to wake
    /// `receive` callers; read without the lock.
    lost: AtomicU64,
    not_empty: Signal,
    not_full: Signal,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// What a pop ended with.
pub(crate) enum Popped {
    Item(Item),
    /// Nothing came within the time given ([`MessageQueue::pop`]).
    TimedOut,
    /// Nothing is queued ([`MessageQueue::try_pop`]).
    Empty,
    Closed,
    /// The connection was lost while waiting (`receive` reports it).
    Lost,
}

impl MessageQueue {
    pub(crate) fn new(capacity: usize) -> Self {
        MessageQueue {
            state: Mutex::new(State {
                items: VecDeque::new(),
                capacity: capacity.max(1),
                closed: false,
                overflowing: false,
                wake_deferred: false,
                last_push: None,
            }),
            lost: AtomicU64::new(0),
            not_empty: Signal::new(),
            not_full: Signal::new(),
        }
    }

    /// Appends an item; when the queue is full, waits up to [`OVERFLOW_WAIT`]
    /// for room, then appends it anyway (see the module docs). Gives the item
    /// back when `give_up()` turns true while waiting (checked under the queue
    /// lock, so a waker must call [`MessageQueue::wake_producers`] after
    /// changing its answer) or when the queue is closed. `name` names the
    /// client in the overflow warning.
    pub(crate) fn push(
        self: &Arc<Self>,
        item: Item,
        name: &str,
        give_up: impl Fn() -> bool,
    ) -> Result<(), Item> {
        let mut s = lock(&self.state);
        let mut deadline = None;
        loop {
            if s.closed || give_up() {
                return Err(item);
            }
            if s.items.len() < s.capacity || s.overflowing {
                s.items.push_back(item);
                let now = Instant::now();
                let sparse = s.last_push.is_none_or(|t| now.duration_since(t) >= SPARSE);
                s.last_push = Some(now);
                if !self.not_empty.has_waiters() {
                    return Ok(());
                }
                if !sparse && s.items.len() < (s.capacity / 2).clamp(1, BATCH) {
                    if s.wake_deferred {
                        return Ok(());
                    }
                    if crate::idle::defer(Deferred::Reader(self.clone())) {
                        s.wake_deferred = true;
                        return Ok(());
                    }
                }
                s.wake_deferred = false;
                drop(s);
                self.not_empty.notify_all();
                return Ok(());
            }
            // Full: the reader must run to make room.
            if s.wake_deferred {
                s.wake_deferred = false;
                self.not_empty.notify_all();
            }
            let now = Instant::now();
            let until = *deadline.get_or_insert(now + OVERFLOW_WAIT);
            if now >= until {
                s.overflowing = true;
                log::warn!(
                    "paho-mqtt-sync: the receive queue of client {name:?} is full ({} messages) \
                     and nobody made room for {OVERFLOW_WAIT:?}: queueing beyond its capacity; \
                     read it with receive() or the Receiver",
                    s.capacity
                );
                continue;
            }
            s = self.not_full.wait(s, Some(until - now));
        }
    }

    /// Wakes the readers whose wake-up was deferred.
    pub(crate) fn wake_readers(&self) {
        let mut s = lock(&self.state);
        if s.wake_deferred {
            s.wake_deferred = false;
            self.not_empty.notify_all();
        }
    }

    /// Wakes producers waiting for room so they re-check their `give_up`.
    pub(crate) fn wake_producers(&self) {
        drop(lock(&self.state));
        self.not_full.notify_all();
    }

    /// Records a connection loss and wakes `receive` callers.
    pub(crate) fn connection_lost(&self) {
        let _s = lock(&self.state);
        self.lost.fetch_add(1, SeqCst);
        self.not_empty.notify_all();
    }

    /// The current connection-loss count (see [`MessageQueue::pop`]).
    pub(crate) fn lost_count(&self) -> u64 {
        self.lost.load(SeqCst)
    }

    /// No more items will come: wakes everyone.
    pub(crate) fn close(&self) {
        let mut s = lock(&self.state);
        s.closed = true;
        self.not_empty.notify_all();
        self.not_full.notify_all();
    }

    /// Takes the oldest item, waiting up to `timeout` (`None`: forever). With
    /// `lost_since = Some(n)`, returns [`Popped::Lost`] once the connection-loss
    /// count differs from `n` and the queue is empty.
    pub(crate) fn pop(&self, timeout: Option<Duration>, lost_since: Option<u64>) -> Popped {
        let deadline = timeout.map(|t| Instant::now().checked_add(t));
        let mut s = lock(&self.state);
        loop {
            if let Some(item) = s.items.pop_front() {
                return Popped::Item(self.taken(s, item));
            }
            if s.closed {
                return Popped::Closed;
            }
            if lost_since.is_some_and(|n| n != self.lost.load(SeqCst)) {
                return Popped::Lost;
            }
            let wait = match deadline {
                None | Some(None) => None,
                Some(Some(deadline)) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Popped::TimedOut;
                    }
                    Some(deadline - now)
                }
            };
            s = self.not_empty.wait(s, wait);
        }
    }

    /// Bookkeeping after taking `item`: leaves overflow mode once the queue
    /// has drained to half its capacity, and wakes a producer waiting for room.
    fn taken(&self, mut s: MutexGuard<'_, State>, item: Item) -> Item {
        if s.overflowing && s.items.len() <= s.capacity / 2 {
            s.overflowing = false;
            log::info!("paho-mqtt-sync: a receive queue is back under its capacity");
        }
        drop(s);
        self.not_full.notify_one();
        item
    }

    /// Takes the oldest item without waiting.
    pub(crate) fn try_pop(&self) -> Popped {
        let mut s = lock(&self.state);
        match s.items.pop_front() {
            Some(item) => Popped::Item(self.taken(s, item)),
            None if s.closed => Popped::Closed,
            None => Popped::Empty,
        }
    }
}

/// The receiving end of [`Client::start_consuming`](crate::Client::start_consuming):
/// the messages that arrive for the client, in order, as `(topic, message)`.
///
/// It is `Send`, so it can move to the thread that handles messages; calling
/// client methods (publish, subscribe...) there is safe, unlike inside a
/// callback. Several receivers of one client share the messages (each goes to
/// one of them). Receiving ends with a disconnection error once the client is
/// dropped and the queue is empty; a lost connection does not end it, so a
/// consumer thread keeps working across reconnects.
pub struct Receiver {
    queue: Arc<MessageQueue>,
}

impl Receiver {
    pub(crate) fn new(queue: Arc<MessageQueue>) -> Self {
        Receiver { queue }
    }

    /// Waits for the next message; `Err` once the client is gone.
    pub fn recv(&self) -> Result<(String, Message), RecvError> {
        match self.queue.pop(None, None) {
            Popped::Item(item) => Ok(item),
            _ => Err(RecvError),
        }
    }

    /// Waits up to `timeout` for the next message.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<(String, Message), RecvTimeoutError> {
        match self.queue.pop(Some(timeout), None) {
            Popped::Item(item) => Ok(item),
            Popped::TimedOut | Popped::Empty | Popped::Lost => Err(RecvTimeoutError::Timeout),
            Popped::Closed => Err(RecvTimeoutError::Disconnected),
        }
    }

    /// The next message if one is waiting.
    pub fn try_recv(&self) -> Result<(String, Message), TryRecvError> {
        match self.queue.try_pop() {
            Popped::Item(item) => Ok(item),
            Popped::Closed => Err(TryRecvError::Disconnected),
            _ => Err(TryRecvError::Empty),
        }
    }

    /// An iterator over the messages already queued, without waiting (as
    /// `std::sync::mpsc::Receiver::try_iter`): drains a batch.
    pub fn try_iter(&self) -> impl Iterator<Item = (String, Message)> + '_ {
        std::iter::from_fn(move || self.try_recv().ok())
    }

    /// An iterator that waits for each message and ends when the client is gone.
    pub fn iter(&self) -> impl Iterator<Item = (String, Message)> + '_ {
        std::iter::from_fn(move || self.recv().ok())
    }
}

impl IntoIterator for Receiver {
    type Item = (String, Message);
    type IntoIter = ReceiverIntoIter;

    fn into_iter(self) -> ReceiverIntoIter {
        ReceiverIntoIter(self)
    }
}

/// The owning iterator of a [`Receiver`] (`for (topic, msg) in receiver`):
/// waits for each message and ends when the client is gone.
#[derive(Debug)]
pub struct ReceiverIntoIter(Receiver);

impl Iterator for ReceiverIntoIter {
    type Item = (String, Message);

    fn next(&mut self) -> Option<Self::Item> {
        self.0.recv().ok()
    }
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = lock(&self.queue.state);
        f.debug_struct("Receiver")
            .field("queued", &s.items.len())
            .field("capacity", &s.capacity)
            .field("closed", &s.closed)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::QoS;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::thread;

    fn item(n: u8) -> Item {
        (
            format!("t/{n}"),
            Message::new(vec![n], QoS::AtMostOnce, false),
        )
    }

    #[test]
    fn fifo_timeout_and_close() {
        let q = Arc::new(MessageQueue::new(4));
        q.push(item(1), "t", || false).unwrap();
        q.push(item(2), "t", || false).unwrap();
        assert!(matches!(q.pop(Some(Duration::ZERO), None), Popped::Item((t, _)) if t == "t/1"));
        assert!(matches!(q.try_pop(), Popped::Item((t, _)) if t == "t/2"));
        assert!(matches!(q.try_pop(), Popped::Empty));
        assert!(matches!(
            q.pop(Some(Duration::from_millis(10)), None),
            Popped::TimedOut
        ));
        q.close();
        assert!(matches!(q.pop(None, None), Popped::Closed));
        assert!(q.push(item(3), "t", || false).is_err());
    }

    #[test]
    fn full_queue_waits_and_gives_up_on_request() {
        let q = Arc::new(MessageQueue::new(1));
        q.push(item(1), "t", || false).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (q2, stop2) = (q.clone(), stop.clone());
        let producer = thread::spawn(move || {
            q2.push(item(2), "t", || stop2.load(Ordering::SeqCst))
                .is_err()
        });
        thread::sleep(Duration::from_millis(30));
        stop.store(true, Ordering::SeqCst);
        q.wake_producers();
        assert!(producer.join().unwrap(), "the producer gave the item back");

        let q2 = q.clone();
        let producer = thread::spawn(move || q2.push(item(3), "t", || false).is_ok());
        thread::sleep(Duration::from_millis(30));
        let rx = Receiver::new(q.clone());
        assert_eq!(rx.recv().unwrap().0, "t/1");
        assert!(producer.join().unwrap());
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap().0, "t/3");
    }

    #[test]
    fn a_queue_nobody_reads_overflows_after_a_short_wait() {
        let q = Arc::new(MessageQueue::new(2));
        for n in 0..2 {
            q.push(item(n), "t", || false).unwrap();
        }
        let t0 = Instant::now();
        q.push(item(2), "t", || false).unwrap();
        let waited = t0.elapsed();
        assert!(waited >= OVERFLOW_WAIT, "{waited:?}");
        // Overflowing: no more waiting, nothing dropped.
        let t0 = Instant::now();
        for n in 3..10 {
            q.push(item(n), "t", || false).unwrap();
        }
        assert!(t0.elapsed() < OVERFLOW_WAIT);
        let got: Vec<u8> = (0..10)
            .map(|_| match q.try_pop() {
                Popped::Item((_, m)) => m.payload()[0],
                _ => panic!("missing item"),
            })
            .collect();
        assert_eq!(got, (0..10).collect::<Vec<u8>>());
        // Drained: back to waiting when full.
        q.push(item(20), "t", || false).unwrap();
        let t0 = Instant::now();
        q.push(item(21), "t", || false).unwrap();
        assert!(t0.elapsed() < OVERFLOW_WAIT, "one slot was free");
        let t0 = Instant::now();
        q.push(item(22), "t", || false).unwrap();
        assert!(t0.elapsed() >= OVERFLOW_WAIT);
    }

    /// Waits until a reader sleeps on `q`.
    fn reader_sleeps(q: &MessageQueue) {
        let t0 = Instant::now();
        while !q.not_empty.has_waiters() {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "the reader never waited"
            );
            thread::sleep(Duration::from_millis(1));
        }
    }

    fn spawn_reader(q: &Arc<MessageQueue>, n: usize) -> thread::JoinHandle<Vec<u8>> {
        let q = q.clone();
        thread::spawn(move || {
            (0..n)
                .map(|_| {
                    // Items stay visible to a reader that wakes up by itself:
                    // a missed wake-up shows as a wait to the end of the timeout.
                    let t0 = Instant::now();
                    let popped = q.pop(Some(Duration::from_secs(40)), None);
                    assert!(
                        t0.elapsed() < Duration::from_secs(30),
                        "the reader was not woken"
                    );
                    match popped {
                        Popped::Item((_, m)) => m.payload()[0],
                        _ => panic!("no item"),
                    }
                })
                .collect()
        })
    }

    /// Pushes `item` as part of a burst: as if the previous message had come
    /// just now (see SPARSE), however slowly this machine (or qemu) runs.
    fn push_in_a_burst(q: &Arc<MessageQueue>, item: Item) {
        lock(&q.state).last_push = Some(Instant::now() + Duration::from_secs(60));
        q.push(item, "t", || false).unwrap();
    }

    #[test]
    fn a_sleeping_reader_is_woken_when_the_library_goes_idle() {
        let q = Arc::new(MessageQueue::new(100));
        let reader = spawn_reader(&q, 3);
        reader_sleeps(&q);
        for n in 0..3 {
            push_in_a_burst(&q, item(n));
        }
        if cfg!(feature = "bundled") {
            // Deferred: registered for the idle callback, not woken yet (only
            // this module's tests wake deferred readers in this process).
            assert!(lock(&q.state).wake_deferred);
            assert!(crate::idle::is_deferred(
                |d| matches!(d, Deferred::Reader(r) if Arc::ptr_eq(r, &q))
            ));
        }
        // What the library's idle callback does.
        crate::idle::wake_deferred();
        assert_eq!(reader.join().unwrap(), vec![0, 1, 2]);
        assert!(!lock(&q.state).wake_deferred);
    }

    #[test]
    fn a_sparse_message_wakes_the_reader_at_once() {
        let q = Arc::new(MessageQueue::new(100));
        let reader = spawn_reader(&q, 1);
        reader_sleeps(&q);
        lock(&q.state).last_push = Some(Instant::now() - SPARSE * 2);
        q.push(item(9), "t", || false).unwrap();
        assert!(!lock(&q.state).wake_deferred);
        assert_eq!(reader.join().unwrap(), vec![9]);
    }

    #[test]
    fn a_full_batch_wakes_the_reader_without_the_idle_callback() {
        // Nothing calls the idle callback here (no library thread runs in a
        // unit test): only the batch can wake the reader.
        for capacity in [1000, 8, 1] {
            let q = Arc::new(MessageQueue::new(capacity));
            let n = (capacity / 2).clamp(1, BATCH);
            let reader = spawn_reader(&q, n);
            reader_sleeps(&q);
            for i in 0..n {
                push_in_a_burst(&q, item(i as u8));
            }
            assert_eq!(reader.join().unwrap(), (0..n as u8).collect::<Vec<_>>());
        }
    }

    #[test]
    fn connection_loss_wakes_receive_only() {
        let q = Arc::new(MessageQueue::new(8));
        let n = q.lost_count();
        let q2 = q.clone();
        let waiter = thread::spawn(move || matches!(q2.pop(None, Some(n)), Popped::Lost));
        thread::sleep(Duration::from_millis(20));
        q.connection_lost();
        assert!(waiter.join().unwrap());
        let rx = Receiver::new(q.clone());
        assert_eq!(rx.try_recv().unwrap_err(), TryRecvError::Empty);
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(5)).unwrap_err(),
            RecvTimeoutError::Timeout
        );
        q.push(item(7), "t", || false).unwrap();
        q.push(item(8), "t", || false).unwrap();
        let drained: Vec<String> = rx.try_iter().map(|(t, _)| t).collect();
        assert_eq!(drained, ["t/7", "t/8"]);
        q.close();
        assert_eq!(rx.recv().unwrap_err(), RecvError);
        assert_eq!(rx.into_iter().count(), 0);
    }
}

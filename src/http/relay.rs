//! The relay loop: a few threads that carry streamed responses whose body comes from another
//! descriptor (a provider's stream), many streams per thread through epoll (`mio`), so that an
//! open stream holds no worker thread and no worker stack (issue 18).
//!
//! A handler starts its stream on a worker (the head, and what the source has already, are
//! written there) and hands the rest over with [`super::Stream::detach`]: a [`Pump`] that turns
//! what its source has into body bytes without blocking. A lane (one relay thread) pumps a stream when its source is readable and
//! writes what came as one chunk, without blocking either. It pumps no more while the client
//! has not taken the last bytes (back-pressure: a stream holds at most what one pump made),
//! ends a stream whose source stays silent past the pump's idle timeout (the pump writes the
//! error that ends it), and drops a client that takes nothing for `send_timeout`. At the end
//! the pump records the stream ([`Pump::finish`]) and the connection goes back to the server:
//! kept alive when the whole body was delivered, else closed.
//!
//! Events that arrive together leave together, as on a worker: a stream is pumped until its
//! source would block, then written once.
//!
//! Lanes fill in order, not in turn: a new stream goes to the first lane that was less than
//! half busy over its last [`TICK`], so that a light load stays on one thread, which then finds
//! several events per wake-up instead of each lane sleeping and waking for every event (1,000
//! streams × 10 events a second on 2 lanes: 1.05 context switches per event, on one 0.76, and
//! 12% less CPU per event). A lane more than [`SHED_ABOVE`] busy moves streams to the least
//! busy one, so a burst of heavy streams that all landed on one lane is spread within a tick.
//!
//! A pump that panics ends its own stream only (the client sees it cut, the panic is logged),
//! as a panic on a worker closes only its connection: a lane carries thousands of streams.

use std::io::{self, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use super::chunked::frame_chunk;

/// What a pump made of its source this time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pumped {
    /// The source has nothing more now: pump again once it is readable.
    Blocked,
    /// The source may have more, but this is enough for one write: pump again once written.
    More,
    /// The body is complete: what `out` holds is its last piece.
    End,
}

/// The rest of a streamed response body, made from a readable source without blocking.
pub trait Pump: Send + 'static {
    /// The descriptor whose readability means there may be more to pump.
    fn source(&self) -> RawFd;
    /// How long the source may stay silent before the stream is cut.
    fn idle_timeout(&self) -> Duration;
    /// Reads what the source has without blocking and appends the body bytes it makes to `out`.
    /// Called first on the worker that detaches the stream, then once as soon as the stream is
    /// handed over (the source may have buffered bytes).
    fn pump(&mut self, out: &mut Vec<u8>) -> Pumped;
    /// The source was silent for the idle timeout: append the bytes that end the body (an error
    /// event). The stream ends after them.
    fn idle(&mut self, out: &mut Vec<u8>);
    /// Called once at the end, whatever happened: when the first body bytes reached the client,
    /// and whether the client got the whole body.
    fn finish(self: Box<Self>, first_sent: Option<Instant>, delivered: bool);
}

/// A connection the relay loop writes a stream to.
pub(crate) trait Carried: Send + 'static {
    fn socket(&self) -> &TcpStream;
}

/// A stream on its way to a lane: the connection, the pump, the framing, and whether the
/// connection may serve another request after it.
pub(crate) struct Handoff<C> {
    pub conn: C,
    pub pump: Box<dyn Pump>,
    pub chunked: bool,
    pub keep_alive: bool,
    /// When the first body bytes went out, if the worker wrote some before handing over.
    pub first_sent: Option<Instant>,
}

/// Where a connection goes after its stream: `true` when the whole body was delivered and the
/// connection may serve another request.
pub(crate) type Done<C> = Arc<dyn Fn(C, bool) + Send + Sync>;

enum Message<C> {
    Stream(Handoff<C>),
    /// A stream another lane moved here, as it was there.
    Moved(Box<Entry<C>>),
    /// Shutdown: the lane ends the streams it still has (recorded as not delivered) and exits.
    Stop,
}

struct Lane<C> {
    tx: Sender<Message<C>>,
    waker: Waker,
    /// How busy the lane was over its last tick, in thousandths of the tick.
    busy: AtomicU32,
    /// Set once the lane takes no more streams (it is stopping): what was sent before is in
    /// its queue, which it empties after setting this.
    closed: Mutex<bool>,
}

impl<C> Lane<C> {
    /// Queues a message for the lane and wakes it; gives the message back when the lane is
    /// closed.
    fn send(&self, message: Message<C>) -> Result<(), Message<C>> {
        let closed = self.closed.lock().unwrap_or_else(PoisonError::into_inner);
        if *closed {
            return Err(message);
        }
        self.tx.send(message).map_err(|e| e.0)?;
        drop(closed);
        if let Err(e) = self.waker.wake() {
            log::error!("could not wake a relay thread: {e}");
        }
        Ok(())
    }
}

/// The relay threads and their count of streams.
pub(crate) struct Relays<C> {
    lanes: Arc<[Lane<C>]>,
    /// Whose turn it is when every lane is at least half busy.
    next: AtomicUsize,
    /// Streams handed over and not yet finished.
    open: Arc<AtomicUsize>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

/// The waker's token; a stream's source is `2 × slot`, its client `2 × slot + 1`.
const WAKE: Token = Token(usize::MAX);
/// How often idle sources and stalled clients are looked for: a scan of every stream, so 10,000
/// streams with as many deadlines cost one pass per tick. Idle timeouts are seconds to minutes.
const TICK: Duration = Duration::from_millis(100);
/// Pumps in a row for one stream before the others get their turn.
const BUDGET: usize = 16;
/// A stream's unsent bytes are kept in a buffer of at most this capacity once written.
const KEPT_CAPACITY: usize = 16 * 1024;
/// A lane busy less than this (thousandths of a tick) takes new streams before later lanes.
const ROOMY_BELOW: u32 = 500;
/// A lane busy more than this moves streams to the least busy lane, if that one is roomy.
const SHED_ABOVE: u32 = 800;

/// The lane a new stream goes to, given each lane's busy share: the first roomy one; when none
/// is, the lanes take turns (`turn`).
fn pick(busy: impl ExactSizeIterator<Item = u32>, turn: impl FnOnce() -> usize) -> usize {
    let lanes = busy.len().max(1);
    busy.into_iter()
        .position(|b| b < ROOMY_BELOW)
        .unwrap_or_else(|| turn() % lanes)
}

/// How many of a lane's `streams` go to a lane that is `target` busy, when the lane is `busy`:
/// enough to even the two out, supposing every stream costs the same.
fn to_shed(busy: u32, target: u32, streams: usize) -> usize {
    if busy <= SHED_ABOVE || target >= ROOMY_BELOW {
        return 0;
    }
    let share = (busy - target) / 2;
    streams * share as usize / busy as usize
}

impl<C: Carried> Relays<C> {
    /// Starts `lanes` relay threads. `send_timeout`: how long a client may take nothing.
    pub fn start(lanes: usize, send_timeout: Duration, done: Done<C>) -> io::Result<Relays<C>> {
        let open = Arc::new(AtomicUsize::new(0));
        let mut built = Vec::new();
        let mut loops = Vec::new();
        for _ in 0..lanes.max(1) {
            let poll = Poll::new()?;
            let waker = Waker::new(poll.registry(), WAKE)?;
            let (tx, rx) = crossbeam_channel::unbounded();
            built.push(Lane {
                tx,
                waker,
                busy: AtomicU32::new(0),
                closed: Mutex::new(false),
            });
            loops.push((poll, rx));
        }
        let lanes: Arc<[Lane<C>]> = built.into();
        let mut threads = Vec::new();
        for (n, (poll, rx)) in loops.into_iter().enumerate() {
            let lane = LaneLoop {
                poll,
                rx,
                index: n,
                lanes: lanes.clone(),
                send_timeout,
                done: done.clone(),
                open: open.clone(),
                slots: Vec::new(),
                free: Vec::new(),
                runnable: Vec::new(),
                body: Vec::new(),
                busy: Duration::ZERO,
                since: Instant::now(),
            };
            threads.push(
                thread::Builder::new()
                    .name(format!("relay-{}", n + 1))
                    .spawn(move || lane.run())?,
            );
        }
        Ok(Relays {
            lanes,
            next: AtomicUsize::new(0),
            open,
            threads: Mutex::new(threads),
        })
    }

    /// Hands a stream to a lane: the first roomy one (see [`pick`]).
    pub fn hand(&self, handoff: Handoff<C>) {
        let n = pick(
            self.lanes.iter().map(|l| l.busy.load(Ordering::Relaxed)),
            || self.next.fetch_add(1, Ordering::Relaxed),
        );
        self.open.fetch_add(1, Ordering::SeqCst);
        if let Err(Message::Stream(h)) = self.lanes[n].send(Message::Stream(handoff)) {
            // The lane is gone (shutdown): the stream ends here, not delivered.
            self.open.fetch_sub(1, Ordering::SeqCst);
            h.pump.finish(None, false);
        }
    }

    /// Streams being relayed now.
    pub fn len(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Stops every lane (streams still open end as not delivered) and waits for them.
    pub fn stop(&self) {
        for lane in self.lanes.iter() {
            let _ = lane.send(Message::Stop);
        }
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// One stream on a lane.
struct Entry<C> {
    conn: C,
    pump: Box<dyn Pump>,
    chunked: bool,
    keep_alive: bool,
    idle_timeout: Duration,
    /// Framed bytes not yet written, from `written` on.
    pending: Vec<u8>,
    written: usize,
    /// The source may have more to read (it was readable and not pumped dry since).
    source_ready: bool,
    /// The body is complete (its last bytes may still be pending).
    ended: bool,
    /// The client is gone: a write failed, or the socket reported an error or a hang-up.
    gone: bool,
    /// In the lane's runnable list already.
    queued: bool,
    /// When the source last had something.
    last_read: Instant,
    /// Since when the client has not taken pending bytes.
    stalled_since: Option<Instant>,
    first_sent: Option<Instant>,
}

/// What servicing a stream came to.
enum Serviced {
    /// Waiting for the source or the client.
    Waiting,
    /// Its pump budget is spent: service it again after the others.
    Again,
    /// Over: whether the whole body was delivered.
    Over(bool),
}

struct LaneLoop<C> {
    poll: Poll,
    rx: Receiver<Message<C>>,
    /// This lane's place in `lanes`, which are all the lanes (to report how busy this one is,
    /// and to move streams to another).
    index: usize,
    lanes: Arc<[Lane<C>]>,
    send_timeout: Duration,
    done: Done<C>,
    open: Arc<AtomicUsize>,
    slots: Vec<Option<Entry<C>>>,
    free: Vec<usize>,
    runnable: Vec<usize>,
    /// What one pump made, before framing: one buffer for the lane.
    body: Vec<u8>,
    /// Time spent other than waiting for events, since `since`.
    busy: Duration,
    since: Instant,
}

impl<C: Carried> LaneLoop<C> {
    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
        // The runnable list being serviced (servicing may queue streams for the next round).
        let mut serving = Vec::new();
        let mut next_scan = Instant::now() + TICK;
        loop {
            let timeout = if self.runnable.is_empty() {
                next_scan.saturating_duration_since(Instant::now())
            } else {
                Duration::ZERO
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("relay poll failed: {e}");
                    thread::sleep(Duration::from_millis(10));
                }
                continue;
            }
            let now = Instant::now();
            for event in events.iter() {
                if event.token() == WAKE {
                    continue;
                }
                let slot = event.token().0 / 2;
                let Some(Some(entry)) = self.slots.get_mut(slot) else {
                    continue;
                };
                if event.token().0 % 2 == 0 {
                    entry.source_ready = true;
                    entry.last_read = now;
                } else if event.is_error() || event.is_write_closed() {
                    entry.gone = true;
                }
                if !entry.queued {
                    entry.queued = true;
                    self.runnable.push(slot);
                }
            }
            let stopping = self.take_new(now);
            if now >= next_scan {
                self.scan(now);
                self.measure(now);
                next_scan = now + TICK;
            }
            std::mem::swap(&mut self.runnable, &mut serving);
            for slot in serving.drain(..) {
                self.service(slot);
            }
            if stopping {
                // Streams handed or moved here before the lane closed end here too.
                *self.lanes[self.index]
                    .closed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = true;
                self.take_new(Instant::now());
                self.stop_all();
                return;
            }
            self.busy += now.elapsed();
        }
    }

    /// Publishes how busy the lane was since the last measure, and when it was too busy, moves
    /// some of its streams to the least busy lane.
    fn measure(&mut self, now: Instant) {
        let window = now.duration_since(self.since).as_nanos().max(1);
        let busy = (self.busy.as_nanos() * 1000 / window).min(1000) as u32;
        self.busy = Duration::ZERO;
        self.since = now;
        self.lanes[self.index].busy.store(busy, Ordering::Relaxed);
        let Some((target, target_busy)) = self
            .lanes
            .iter()
            .map(|l| l.busy.load(Ordering::Relaxed))
            .enumerate()
            .filter(|&(n, _)| n != self.index)
            .min_by_key(|&(_, b)| b)
        else {
            return;
        };
        let streams = self.slots.iter().flatten().filter(|e| !e.ended).count();
        let mut moving = to_shed(busy, target_busy, streams);
        for slot in 0..self.slots.len() {
            if moving == 0 {
                break;
            }
            if self.slots[slot].as_ref().is_none_or(|e| e.ended || e.gone) {
                continue;
            }
            let Some(entry) = self.release(slot) else {
                continue;
            };
            if let Err(Message::Moved(entry)) =
                self.lanes[target].send(Message::Moved(entry.into()))
            {
                // The other lane is stopping: the stream ends here, not delivered.
                self.finish(*entry, false);
            }
            moving -= 1;
        }
    }

    /// Takes the streams handed over since the last look; whether a stop came.
    fn take_new(&mut self, now: Instant) -> bool {
        let mut stopping = false;
        while let Ok(message) = self.rx.try_recv() {
            match message {
                Message::Stream(handoff) => self.add(handoff, now),
                Message::Moved(entry) => self.place(*entry),
                Message::Stop => stopping = true,
            }
        }
        stopping
    }

    fn add(&mut self, handoff: Handoff<C>, now: Instant) {
        let idle_timeout = handoff.pump.idle_timeout();
        let entry = Entry {
            conn: handoff.conn,
            pump: handoff.pump,
            chunked: handoff.chunked,
            keep_alive: handoff.keep_alive,
            idle_timeout,
            pending: Vec::new(),
            written: 0,
            source_ready: true,
            ended: false,
            gone: false,
            queued: true,
            last_read: now,
            stalled_since: None,
            first_sent: handoff.first_sent,
        };
        if let Err(e) = entry.conn.socket().set_nonblocking(true) {
            log::error!("could not relay a stream ({e}); it is cut");
            self.finish(entry, false);
            return;
        }
        self.place(entry);
    }

    /// Takes a stream into a slot, watches its two descriptors and services it at once: new,
    /// or moved from another lane (its source may have become readable on the way).
    fn place(&mut self, mut entry: Entry<C>) {
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            self.slots.len() - 1
        });
        let client = entry.conn.socket().as_raw_fd();
        let source = entry.pump.source();
        let registry = self.poll.registry();
        let registered = registry
            .register(&mut SourceFd(&source), Token(2 * slot), Interest::READABLE)
            .and_then(|()| {
                registry.register(
                    &mut SourceFd(&client),
                    Token(2 * slot + 1),
                    Interest::WRITABLE,
                )
            });
        entry.source_ready = !entry.ended;
        entry.queued = true;
        self.slots[slot] = Some(entry);
        if let Err(e) = registered {
            log::error!("could not relay a stream ({e}); it is cut");
            self.end(slot, false);
            return;
        }
        self.runnable.push(slot);
    }

    /// Cuts streams whose source was silent too long, and drops clients that took nothing.
    fn scan(&mut self, now: Instant) {
        for slot in 0..self.slots.len() {
            let Some(entry) = self.slots[slot].as_mut() else {
                continue;
            };
            let mut wake = false;
            let waits_on_source = !entry.ended && !entry.source_ready;
            if waits_on_source && now.duration_since(entry.last_read) >= entry.idle_timeout {
                self.body.clear();
                match guarded("idle", || entry.pump.idle(&mut self.body)) {
                    Some(()) => frame(entry, &self.body, true),
                    None => entry.gone = true,
                }
                wake = true;
            }
            if entry
                .stalled_since
                .is_some_and(|since| now.duration_since(since) >= self.send_timeout)
            {
                entry.gone = true;
                wake = true;
            }
            if wake && !entry.queued {
                entry.queued = true;
                self.runnable.push(slot);
            }
        }
    }

    fn service(&mut self, slot: usize) {
        let Some(entry) = self.slots[slot].as_mut() else {
            return;
        };
        entry.queued = false;
        match service(entry, &mut self.body) {
            Serviced::Waiting => {}
            Serviced::Again => {
                entry.queued = true;
                self.runnable.push(slot);
            }
            Serviced::Over(delivered) => self.end(slot, delivered),
        }
    }

    /// Ends a stream: its descriptors leave this epoll before the pump may give its source back
    /// (a pooled provider connection) and before the connection goes back to the server.
    fn end(&mut self, slot: usize, delivered: bool) {
        if let Some(entry) = self.release(slot) {
            self.finish(entry, delivered);
        }
    }

    /// Takes the stream out of its slot and out of this epoll, if the slot holds one.
    fn release(&mut self, slot: usize) -> Option<Entry<C>> {
        let entry = self.slots[slot].take()?;
        self.free.push(slot);
        let registry = self.poll.registry();
        let _ = registry.deregister(&mut SourceFd(&entry.pump.source()));
        let _ = registry.deregister(&mut SourceFd(&entry.conn.socket().as_raw_fd()));
        Some(entry)
    }

    /// A stream is over: recorded, and its connection given back to the server.
    fn finish(&mut self, entry: Entry<C>, delivered: bool) {
        let Entry {
            conn,
            pump,
            keep_alive,
            first_sent,
            ..
        } = entry;
        guarded("finish", || pump.finish(first_sent, delivered));
        self.open.fetch_sub(1, Ordering::SeqCst);
        (self.done)(conn, delivered && keep_alive);
    }

    /// Shutdown: every stream still open ends here, recorded as not delivered.
    fn stop_all(&mut self) {
        for slot in 0..self.slots.len() {
            self.end(slot, false);
        }
    }
}

/// Writes what is pending and pumps while the client keeps up and the source has more.
fn service<C: Carried>(entry: &mut Entry<C>, body: &mut Vec<u8>) -> Serviced {
    let mut pumps = 0;
    loop {
        if entry.gone {
            return Serviced::Over(false);
        }
        if entry.written < entry.pending.len() {
            match write_some(entry.conn.socket(), &entry.pending[entry.written..]) {
                Ok(n) => entry.written += n,
                Err(()) => return Serviced::Over(false),
            }
            if entry.written < entry.pending.len() {
                entry.stalled_since.get_or_insert_with(Instant::now);
                return Serviced::Waiting;
            }
            entry.first_sent.get_or_insert_with(Instant::now);
            entry.stalled_since = None;
            entry.pending.clear();
            entry.written = 0;
            if entry.pending.capacity() > KEPT_CAPACITY {
                entry.pending.shrink_to(KEPT_CAPACITY);
            }
        }
        if entry.ended {
            return Serviced::Over(true);
        }
        if !entry.source_ready {
            return Serviced::Waiting;
        }
        if pumps == BUDGET {
            return Serviced::Again;
        }
        pumps += 1;
        body.clear();
        let Some(pumped) = guarded("pump", || entry.pump.pump(body)) else {
            return Serviced::Over(false);
        };
        if pumped == Pumped::Blocked {
            // The source's silence counts from here (a worker's read timeout counts from the
            // start of its read the same way), not while the client was being waited for.
            entry.source_ready = false;
            entry.last_read = Instant::now();
        }
        frame(entry, body, pumped == Pumped::End);
    }
}

/// Appends one piece of the body to the pending bytes, as a chunk when the response is
/// chunked; `last` ends the body (the terminating chunk).
fn frame<C>(entry: &mut Entry<C>, body: &[u8], last: bool) {
    if entry.chunked {
        frame_chunk(&mut entry.pending, body, last);
    } else {
        entry.pending.extend_from_slice(body);
    }
    if last {
        entry.ended = true;
    }
}

/// Runs one of a pump's methods; a panic there is logged and answers `None`.
pub(super) fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => Some(value),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(no message)");
            log::error!("a relayed stream panicked in {what}: {message}; the stream is cut");
            None
        }
    }
}

/// Writes what the socket takes now; `Err` when the client is gone.
fn write_some(mut socket: &TcpStream, bytes: &[u8]) -> Result<usize, ()> {
    let mut written = 0;
    while written < bytes.len() {
        match socket.write(&bytes[written..]) {
            Ok(0) => return Err(()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(()),
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_stream_goes_to_the_first_roomy_lane_and_to_each_in_turn_when_none_is() {
        let never = || unreachable!("no turn taken while a lane is roomy");
        assert_eq!(pick([0, 0].into_iter(), never), 0);
        assert_eq!(pick([499, 0].into_iter(), never), 0);
        assert_eq!(pick([500, 120].into_iter(), never), 1);
        assert_eq!(pick([900, 700, 10].into_iter(), never), 2);
        assert_eq!(pick([900, 700].into_iter(), || 7), 1);
        assert_eq!(pick([900].into_iter(), || 7), 0);
    }

    #[test]
    fn a_busy_lane_sheds_enough_streams_to_even_out_with_a_roomy_one() {
        // Not busy enough, or nowhere roomy to go: nothing moves.
        assert_eq!(to_shed(800, 0, 100), 0);
        assert_eq!(to_shed(1000, 500, 100), 0);
        // All busy, the other idle: half go.
        assert_eq!(to_shed(1000, 0, 100), 50);
        // 900 and 300: 300 of the 900 move, a third of the streams.
        assert_eq!(to_shed(900, 300, 90), 30);
        assert_eq!(to_shed(1000, 0, 1), 0);
    }
}

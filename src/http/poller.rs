//! The poller: one thread that holds connections between requests (keep-alive connections
//! after an answer, and new ones while every worker is busy) in epoll through `mio`, and hands
//! each one on when it becomes readable. It knows nothing of HTTP or of workers: what to do
//! with a readable connection is the caller's closure.
//!
//! A parked connection costs its descriptor and one map entry (its owner frees its read
//! buffers before parking). One the client closes while parked, or one that waits past its
//! deadline, is dropped here, which closes it (reaping). [`Parking::close`] wakes the thread,
//! which drops every parked connection at once and returns: graceful shutdown.
//!
//! A readable connection the caller cannot take now waits here a short grace, in order, and
//! is offered again as soon as the caller says something changed ([`Parking::nudge`]); past
//! the grace it goes to the caller's refusal. (A worker that has just written its answer is
//! counted busy until the scheduler runs it again, which on a loaded machine can be
//! milliseconds after the client, woken by that answer, has sent its next request.)
//!
//! Why `mio`: registering a descriptor is safe there (`SourceFd`), where `polling` 3 makes
//! `Poller::add` an `unsafe fn` and this crate forbids unsafe code; it is tokio's own
//! event layer, maintained and small with only `os-poll` and `os-ext`.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token, Waker};

/// What a parked connection must offer.
pub(crate) trait Parkable: Send {
    fn raw_fd(&self) -> RawFd;
    /// Whether the peer closed or reset the connection with nothing left to read. Asked only
    /// after epoll reported a hang-up or an error, so it does not block.
    fn hung_up(&self) -> bool;
}

/// The token of the waker; connections use their descriptor as token.
const WAKE: Token = Token(usize::MAX);
/// The poller looks for expired connections at most this often, so that 10,000 parked
/// connections with as many different deadlines cost a scan per tick, not one per deadline.
const REAP_TICK: Duration = Duration::from_millis(50);

/// The parked set, shared by the workers that park and the poller thread.
pub(crate) struct Parking<T> {
    registry: Registry,
    waker: Waker,
    set: Mutex<Set<T>>,
    /// Readable connections waiting for the caller to take them (see [`Parking::nudge`]).
    waiting: AtomicUsize,
}

struct Set<T> {
    closed: bool,
    /// By descriptor: unique among open descriptors, and the connection owns its own.
    conns: HashMap<RawFd, (T, Instant)>,
}

/// The poller thread's half: the epoll instance itself.
pub(crate) struct Poller {
    poll: Poll,
}

impl<T: Parkable> Parking<T> {
    pub fn new() -> io::Result<(Parking<T>, Poller)> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = Waker::new(poll.registry(), WAKE)?;
        let parking = Parking {
            registry,
            waker,
            set: Mutex::new(Set {
                closed: false,
                conns: HashMap::new(),
            }),
            waiting: AtomicUsize::new(0),
        };
        Ok((parking, Poller { poll }))
    }

    /// Parks `conn` until it is readable, hung up, or `deadline` passes. Gives it back when
    /// the poller is closed (shutting down) or epoll refuses it; the caller then drops it.
    pub fn park(&self, conn: T, deadline: Instant) -> Result<(), T> {
        let fd = conn.raw_fd();
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        if set.closed {
            return Err(conn);
        }
        // In the map before epoll knows it, so that an event cannot find it missing. epoll
        // reports a descriptor that is readable already when it is added: no lost wake-up.
        set.conns.insert(fd, (conn, deadline));
        let token = Token(fd as usize);
        if let Err(e) = self
            .registry
            .register(&mut SourceFd(&fd), token, Interest::READABLE)
        {
            log::warn!("could not park a connection in epoll: {e}");
            return Err(set
                .conns
                .remove(&fd)
                .map(|(c, _)| c)
                .expect("inserted above"));
        }
        Ok(())
    }

    /// Connections parked now.
    pub fn len(&self) -> usize {
        self.set
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .conns
            .len()
    }

    /// Stops the poller: it drops every parked connection and returns; later parks fail.
    pub fn close(&self) {
        self.set.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        if let Err(e) = self.waker.wake() {
            log::error!("could not wake the poller: {e}");
        }
    }

    /// Wakes the poller to offer its waiting connections again, if it holds any: the caller
    /// may take one now. Cheap when none waits (one atomic load), so it can follow every
    /// change that might free the caller. The caller must make the change visible first
    /// (`SeqCst`): the poller counts a connection waiting before it asks again, so one of the
    /// two always sees the other.
    pub fn nudge(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0 {
            if let Err(e) = self.waker.wake() {
                log::error!("could not wake the poller: {e}");
            }
        }
    }

    fn take(&self, fd: RawFd) -> Option<T> {
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        let (conn, _) = set.conns.remove(&fd)?;
        // Off epoll before anyone else reads it; a worker may park it again later.
        let _ = self.registry.deregister(&mut SourceFd(&fd));
        Some(conn)
    }

    /// Removes the connections whose deadline passed and returns them (to be dropped outside
    /// the lock) with the earliest deadline left.
    fn expired(&self, now: Instant) -> (Vec<T>, Option<Instant>) {
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        let due: Vec<RawFd> = set
            .conns
            .iter()
            .filter(|(_, (_, deadline))| *deadline <= now)
            .map(|(fd, _)| *fd)
            .collect();
        let gone = due
            .iter()
            .filter_map(|fd| set.conns.remove(fd).map(|(c, _)| c))
            .collect();
        let next = set.conns.values().map(|(_, d)| *d).min();
        (gone, next)
    }
}

/// Readable connections the caller could not take yet, oldest first, each with when it was
/// seen readable; counted in [`Parking::waiting`].
struct Waiting<'p, T> {
    queue: VecDeque<(T, Instant)>,
    count: &'p AtomicUsize,
}

impl<T> Waiting<'_, T> {
    /// Offers `conn` to `take`; one it cannot take now waits, behind those before it.
    fn offer(
        &mut self,
        conn: T,
        seen: Instant,
        take: &mut impl FnMut(T, Instant) -> Result<(), T>,
    ) {
        if !self.queue.is_empty() {
            self.push(conn, seen);
            return;
        }
        let Err(conn) = take(conn, seen) else { return };
        // Counted first, then asked again: a caller that freed up in between either saw the
        // count (and nudges) or is seen free here.
        self.push(conn, seen);
        self.retry(take);
    }

    fn push(&mut self, conn: T, seen: Instant) {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.queue.push_back((conn, seen));
    }

    /// Offers the waiting connections again, in order, while `take` takes them. Each stays
    /// counted until taken, so a caller freeing up meanwhile nudges again.
    fn retry(&mut self, take: &mut impl FnMut(T, Instant) -> Result<(), T>) {
        while let Some((conn, seen)) = self.queue.pop_front() {
            match take(conn, seen) {
                Ok(()) => {
                    self.count.fetch_sub(1, Ordering::SeqCst);
                }
                Err(conn) => {
                    self.queue.push_front((conn, seen));
                    return;
                }
            }
        }
    }

    /// Hands the connections that waited `grace` to `refuse`; when the next one is due.
    fn expire(
        &mut self,
        now: Instant,
        grace: Duration,
        refuse: &mut impl FnMut(T),
    ) -> Option<Instant> {
        while let Some((_, seen)) = self.queue.front() {
            if *seen + grace > now {
                return Some(*seen + grace);
            }
            let (conn, _) = self.queue.pop_front().expect("a front");
            self.count.fetch_sub(1, Ordering::SeqCst);
            refuse(conn);
        }
        None
    }
}

impl Poller {
    /// The poller thread's loop. `take` gets each connection that became readable, with the
    /// instant it was seen so, and gives it back when it cannot take it now; it waits, is
    /// offered again after a [`Parking::nudge`], and goes to `refuse` once it has waited
    /// `grace`. `max_sleep` is the shortest parking deadline any connection gets: a
    /// connection parked after a scan never expires sooner than that after it.
    pub fn run<T: Parkable>(
        mut self,
        parking: &Parking<T>,
        max_sleep: Duration,
        grace: Duration,
        mut take: impl FnMut(T, Instant) -> Result<(), T>,
        mut refuse: impl FnMut(T),
    ) {
        let mut events = Events::with_capacity(1024);
        let mut next_scan = Instant::now() + max_sleep;
        let mut waiting = Waiting {
            queue: VecDeque::new(),
            count: &parking.waiting,
        };
        let mut next_refusal = None;
        loop {
            let wake_at = next_refusal.map_or(next_scan, |r: Instant| r.min(next_scan));
            let timeout = wake_at.saturating_duration_since(Instant::now());
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("epoll wait failed: {e}");
                    std::thread::sleep(REAP_TICK);
                }
                continue;
            }
            if parking.set.lock().unwrap_or_else(|e| e.into_inner()).closed {
                let all: Vec<_> = {
                    let mut set = parking.set.lock().unwrap_or_else(|e| e.into_inner());
                    set.conns.drain().map(|(_, (c, _))| c).collect()
                };
                drop(all);
                return;
            }
            // Those that waited first go first (a nudge may have woken this round).
            waiting.retry(&mut take);
            let seen = Instant::now();
            for event in events.iter() {
                if event.token() == WAKE {
                    continue;
                }
                let Some(conn) = parking.take(event.token().0 as RawFd) else {
                    continue;
                };
                if (event.is_read_closed() || event.is_error()) && conn.hung_up() {
                    drop(conn);
                    continue;
                }
                waiting.offer(conn, seen, &mut take);
            }
            let now = Instant::now();
            next_refusal = waiting.expire(now, grace, &mut refuse);
            if now >= next_scan {
                let (gone, earliest) = parking.expired(now);
                drop(gone);
                let latest = now + max_sleep;
                next_scan = earliest
                    .map_or(latest, |d| d.min(latest))
                    .max(now + REAP_TICK);
            }
        }
    }
}

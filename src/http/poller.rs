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
//! Why `mio`: registering a descriptor is safe there (`SourceFd`), where `polling` 3 makes
//! `Poller::add` an `unsafe fn` and this crate forbids unsafe code; it is tokio's own
//! event layer, maintained and small with only `os-poll` and `os-ext`.

use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
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

impl Poller {
    /// The poller thread's loop. `ready` gets each connection that became readable, with the
    /// instant it was seen so. `max_sleep` is the shortest parking deadline any connection
    /// gets: a connection parked after a scan never expires sooner than that after it.
    pub fn run<T: Parkable>(
        mut self,
        parking: &Parking<T>,
        max_sleep: Duration,
        mut ready: impl FnMut(T, Instant),
    ) {
        let mut events = Events::with_capacity(1024);
        let mut next_scan = Instant::now() + max_sleep;
        loop {
            let timeout = next_scan.saturating_duration_since(Instant::now());
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
                ready(conn, seen);
            }
            let now = Instant::now();
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

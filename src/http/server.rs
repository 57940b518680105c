//! The listener, the acceptor thread, the worker pool, the hand-off to the poller and
//! graceful shutdown.
//!
//! Workers serve *requests*, not connections (Apache's event MPM inside the synchronous
//! design): a connection is queued for a worker when it has a request to read (accepted, or
//! seen readable by the poller), and its worker serves it request after request while the
//! next one comes at once (pipelined bytes already buffered, or sent within
//! [`NEXT_REQUEST_WAIT`] of the answer). Otherwise the worker parks the connection in the
//! poller (`poller.rs`) and goes back to the pool, so idle keep-alive connections hold a
//! descriptor each, not a thread. `max_connections` bounds connections, `workers` requests in
//! flight.
//!
//! No silent queueing: a connection is queued only for an idle worker, one about to end its
//! short wait, or one the pool may still start (workers start on demand up to `workers`).
//! With none, a new connection waits in the poller for its first bytes, and a readable one
//! waits there at most [`BUSY_GRACE`] (100 ms) for a worker to free up, then is answered 503
//! with `retry-after` by the poller. [`super::Request::queue_wait`] says how long each request
//! waited for its worker.
//!
//! Past `max_connections` the acceptor answers 503 itself and closes, without taking a worker.
//! The acceptor never dies: `accept()` errors are logged and retried after a short pause.
//! Connections closed with unread input (413 answers, overload 503s) are handed to a closer
//! thread that drains them briefly, so the client reads the answer instead of a reset.
//!
//! Every answer the layer makes on its own (the refusals while reading a request, the 500s
//! after the handler, the 503s at the cap or with every worker busy) is shaped by
//! [`Handler::refuse`]. A panic anywhere in a worker, in `refuse` or in reading a request
//! included, closes that one connection and is logged; the worker goes on and the
//! open-connection count is given back by a drop guard that travels with the connection. A
//! panic in `refuse` on the acceptor or the poller is caught there too, and the default 503
//! goes out.

use std::any::Any;
use std::cell::Cell;
use std::io::{self, Read};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

use super::poller::{Parkable, Parking, Poller};
use super::relay::{Carried, Handoff, Relays};
use super::request::{Connection, NextRequest, ReadError, ReadLimits, Request, Version};
use super::response::{Responder, Response, State};
use super::{Handler, Refusal};

/// The layer's limits, deadlines and sizes. Every figure is configurable by the application.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Most worker threads: requests in flight (each worker serves one request at a time).
    pub workers: usize,
    /// Most open connections, idle ones included; past it new ones get a quick 503.
    pub max_connections: usize,
    pub keepalive_idle: Duration,
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    /// A write to a client that stalls this long fails (the client counts as gone).
    pub send_timeout: Duration,
    pub max_body_bytes: u64,
    pub shutdown_grace: Duration,
    /// The listen backlog: connections the kernel completes before they are accepted. The
    /// acceptor takes them at once, but a burst of thousands arrives faster than one thread
    /// accepts; past the backlog the kernel drops SYNs and the clients retry a second later.
    pub backlog: i32,
    /// Relay threads: the most threads that carry streams handed to the relay loop (one per
    /// core, at most 4, by default; they fill in order, see `relay.rs`).
    pub relay_lanes: usize,
    /// Turns the calling thread's allocator cache on or off; `None` leaves it alone. The binary
    /// passes jemalloc's (`src/main.rs`); when it is called: `keep_cache_while` below.
    pub thread_cache: Option<fn(bool)>,
    /// Requests in flight up to which a worker keeps its allocator cache (16 per core, at
    /// least 64, by default).
    pub cached_requests: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            workers: 1024,
            max_connections: 10_000,
            keepalive_idle: Duration::from_secs(5),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            max_body_bytes: 32 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(30),
            backlog: 4096,
            relay_lanes: thread::available_parallelism()
                .map_or(1, |n| n.get().min(MAX_RELAY_LANES)),
            thread_cache: None,
            cached_requests: thread::available_parallelism().map_or(64, |n| (n.get() * 16).max(64)),
        }
    }
}

/// Binds a listening socket with address reuse, `TCP_NODELAY` (inherited by accepted sockets)
/// and the given backlog.
pub fn bind(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// State shared by the acceptor, the poller, the workers and the shutdown handle.
struct Shared {
    config: ServerConfig,
    limits: ReadLimits,
    handler: Arc<dyn Handler>,
    stopping: AtomicBool,
    open_connections: Arc<AtomicUsize>,
    /// Workers waiting on the ready queue.
    idle_workers: AtomicUsize,
    /// Workers in their short wait for a connection's next request: free within
    /// [`NEXT_REQUEST_WAIT`].
    lingering_workers: AtomicUsize,
    /// Workers reading, handling or answering a request. The others are free or about to be
    /// (waiting briefly, parking, on their way back to the queue).
    in_request: AtomicUsize,
    /// Workers running now (idle ones beyond the first few retire after a while).
    started_workers: AtomicUsize,
    /// Workers spawned that have not yet reached the ready queue: soon idle.
    starting_workers: AtomicUsize,
    /// Wakes the grower thread, which starts workers (see [`run_grower`]).
    grow_tx: Sender<()>,
    /// Workers ever started, for their names.
    spawned_total: AtomicUsize,
    workers: Mutex<Vec<JoinHandle<()>>>,
    closer: Sender<(TcpStream, Instant)>,
    /// Connections with a request to read, for the workers. Unbounded in type, bounded by
    /// `max_connections` (a connection is in one place at a time).
    ready_tx: Sender<Work>,
    ready_rx: Receiver<Work>,
    parking: Parking<Client>,
    /// The relay loop's threads, which carry detached streams (set once the server starts).
    relays: OnceLock<Relays<Client>>,
}

/// An open connection on its way between the acceptor, the ready queue, a worker and the
/// poller: counted open until dropped, wherever that happens.
struct Client {
    conn: Connection,
    _open: OpenConnection,
}

impl Carried for Client {
    fn socket(&self) -> &TcpStream {
        &self.conn.stream
    }
}

impl Parkable for Client {
    fn raw_fd(&self) -> RawFd {
        self.conn.as_raw_fd()
    }

    fn hung_up(&self) -> bool {
        self.conn.hung_up()
    }
}

/// What the ready queue carries.
enum Work {
    /// A connection with a request to read, and since when it has been waiting for a worker.
    Serve(Client, Instant),
    /// Shutdown: the worker that takes it exits (everything queued before is served first).
    Stop,
}

/// A running server. Dropping it does not stop it; call [`Server::shutdown`].
pub struct Server {
    addr: SocketAddr,
    listener: TcpListener,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
    poller: Option<JoinHandle<()>>,
    grower: Option<JoinHandle<()>>,
}

/// How long a worker waits for a connection's next request after an answer before parking
/// it: a client in a loop (a benchmark, a batch job) sends it within this, and catching it
/// here spares the round trip through the poller. Taken only while other workers are free.
const NEXT_REQUEST_WAIT: Duration = Duration::from_millis(5);

/// Workers kept running however idle the server is.
const MIN_WORKERS: usize = 4;
/// A worker beyond those that waits this long for a connection retires.
const WORKER_IDLE_LIFETIME: Duration = Duration::from_secs(60);

/// Relay threads at most by default (one per core up to this): a lane pumps thousands of
/// streams, and what one stream's events cost is the same on any lane.
const MAX_RELAY_LANES: usize = 4;

/// How long the closer keeps draining a socket it was handed, at most.
const LINGER: Duration = Duration::from_secs(1);

impl Server {
    /// Starts serving `listener` with `handler`. Raises the open-file limit to its hard limit
    /// first, since every connection and every upstream call takes a descriptor.
    pub fn start(
        listener: TcpListener,
        config: ServerConfig,
        handler: Arc<dyn Handler>,
    ) -> io::Result<Server> {
        if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
            log::warn!("could not raise the open-file limit: {e}");
        }
        let addr = listener.local_addr()?;
        let (ready_tx, ready_rx) = crossbeam_channel::unbounded();
        let (parking, poller) = Parking::new()?;
        let (closer_tx, closer_rx) = crossbeam_channel::bounded(1024);
        let (grow_tx, grow_rx) = crossbeam_channel::bounded(1);
        thread::Builder::new()
            .name("closer".into())
            .spawn(move || run_closer(closer_rx))?;
        let shared = Arc::new(Shared {
            limits: ReadLimits {
                header_timeout: config.header_timeout,
                body_timeout: config.body_timeout,
                max_body_bytes: config.max_body_bytes,
            },
            config,
            handler,
            stopping: AtomicBool::new(false),
            open_connections: Arc::new(AtomicUsize::new(0)),
            idle_workers: AtomicUsize::new(0),
            lingering_workers: AtomicUsize::new(0),
            in_request: AtomicUsize::new(0),
            started_workers: AtomicUsize::new(0),
            starting_workers: AtomicUsize::new(0),
            grow_tx,
            spawned_total: AtomicUsize::new(0),
            workers: Mutex::new(Vec::new()),
            closer: closer_tx,
            ready_tx,
            ready_rx,
            parking,
            relays: OnceLock::new(),
        });
        let relayed_shared = shared.clone();
        let relays = Relays::start(
            shared.config.relay_lanes,
            shared.config.send_timeout,
            Arc::new(move |client, reusable| after_relay(&relayed_shared, client, reusable)),
        )?;
        let _ = shared.relays.set(relays);
        let initial = shared.config.workers.clamp(1, MIN_WORKERS);
        for _ in 0..initial {
            spawn_worker(&shared)?;
        }
        let grower_shared = shared.clone();
        let grower = thread::Builder::new()
            .name("grower".into())
            .spawn(move || run_grower(grow_rx, grower_shared))?;
        let poller_shared = shared.clone();
        let poller = thread::Builder::new()
            .name("poller".into())
            .spawn(move || run_poller(poller, poller_shared))?;
        let accept_listener = listener.try_clone()?;
        let acceptor_shared = shared.clone();
        let acceptor = thread::Builder::new()
            .name("acceptor".into())
            .spawn(move || run_acceptor(accept_listener, acceptor_shared))?;
        Ok(Server {
            addr,
            listener,
            shared,
            acceptor: Some(acceptor),
            poller: Some(poller),
            grower: Some(grower),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections currently open (being served, waiting for a worker, or parked idle).
    pub fn open_connections(&self) -> usize {
        self.shared.open_connections.load(Ordering::Relaxed)
    }

    /// Connections parked in the poller now (idle between requests, or new ones waiting for
    /// their first bytes while every worker was busy).
    pub fn parked_connections(&self) -> usize {
        self.shared.parking.len()
    }

    /// A view of the connections and workers for the application's metrics.
    pub fn load(&self) -> Load {
        Load(Arc::downgrade(&self.shared))
    }

    /// Graceful shutdown: stop accepting (new connections are refused at once), close idle
    /// keep-alive connections, let requests and streams in flight finish within the grace
    /// period, then join the workers. Returns false when the grace period ran out first.
    pub fn shutdown(mut self) -> bool {
        let deadline = Instant::now() + self.shared.config.shutdown_grace;
        self.shared.stopping.store(true, Ordering::SeqCst);
        // shutdown(SHUT_RD) on a listening socket wakes the blocked accept() with an error
        // and makes the kernel refuse new connections.
        let _ = SockRef::from(&self.listener).shutdown(Shutdown::Read);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        // The poller closes every parked (idle) connection at once and exits.
        self.shared.parking.close();
        if let Some(poller) = self.poller.take() {
            let _ = poller.join();
        }
        // The grower starts no worker after this (a worker may still have; see below).
        let _ = self.shared.grow_tx.try_send(());
        if let Some(grower) = self.grower.take() {
            let _ = grower.join();
        }
        // Workers finish what they hold, serve what is queued, then each takes a stop. A worker
        // that started another just before `stopping` was set is counted on a later round.
        let mut stops = 0;
        loop {
            while stops < self.shared.started_workers.load(Ordering::SeqCst) {
                let _ = self.shared.ready_tx.send(Work::Stop);
                stops += 1;
            }
            {
                let mut workers = self
                    .shared
                    .workers
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                let relayed = self.shared.relays.get().map_or(0, Relays::len);
                if relayed == 0 && workers.iter().all(|h| h.is_finished()) {
                    for handle in workers.drain(..) {
                        let _ = handle.join();
                    }
                    if let Some(relays) = self.shared.relays.get() {
                        relays.stop();
                    }
                    return true;
                }
            }
            if Instant::now() >= deadline {
                log::warn!("shutdown grace period over with requests still in flight");
                if let Some(relays) = self.shared.relays.get() {
                    relays.stop();
                }
                return false;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A running server's connections and workers as its metrics show them. It holds the server
/// weakly: the handler that shows it is owned by the server (no cycle), and once the server is
/// gone there is nothing to show.
#[derive(Clone)]
pub struct Load(Weak<Shared>);

/// What [`Load::now`] reads: how close the server is to its two refusals, the 503 at
/// `max_connections` and the 503 with every one of `workers` busy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadNow {
    /// Open connections: being served, queued for a worker, or parked.
    pub connections_open: usize,
    /// Parked in the poller: idle between requests, or new and waiting for their first bytes.
    pub connections_parked: usize,
    /// Queued for a worker now.
    pub connections_queued: usize,
    /// Carrying a stream in the relay loop (no worker held).
    pub connections_relayed: usize,
    pub connections_max: usize,
    /// Workers reading, handling or answering a request (a stream not handed to the relay loop
    /// included).
    pub workers_busy: usize,
    /// Worker threads running (they start on demand and idle ones retire).
    pub workers_started: usize,
    pub workers_max: usize,
}

impl Load {
    pub fn now(&self) -> Option<LoadNow> {
        let shared = self.0.upgrade()?;
        Some(LoadNow {
            connections_open: shared.open_connections.load(Ordering::Relaxed),
            connections_parked: shared.parking.len(),
            connections_queued: shared.ready_rx.len(),
            connections_relayed: shared.relays.get().map_or(0, Relays::len),
            connections_max: shared.config.max_connections,
            workers_busy: shared.in_request.load(Ordering::Relaxed),
            workers_started: shared.started_workers.load(Ordering::Relaxed),
            workers_max: shared.config.workers,
        })
    }
}

/// A worker's stack reservation. Only the pages a worker touches are resident: measured at
/// 1,000 and 3,000 open streams (issue 18, `bench/memory.sh`, smaps of the stack mappings),
/// about 36 KB per worker (76 before the frames on its path were cut), the deepest point being
/// inside the HTTP client's call path, and resident for the thread's life, whatever the
/// reservation. A smaller reservation would save address space, not memory, and take away the
/// margin for the deepest paths (serde on deep JSON, glibc's resolver for a provider's host
/// name, whose buffers live on the stack), so it stays 512 KiB. Spawning costs about 55 µs a
/// thread whatever the size (3,000 spawns).
const WORKER_STACK_BYTES: usize = 512 * 1024;

fn spawn_worker(shared: &Arc<Shared>) -> io::Result<()> {
    shared.started_workers.fetch_add(1, Ordering::SeqCst);
    shared.starting_workers.fetch_add(1, Ordering::SeqCst);
    let n = shared.spawned_total.fetch_add(1, Ordering::Relaxed) + 1;
    let worker_shared = shared.clone();
    let spawned = thread::Builder::new()
        .name(format!("worker-{n}"))
        .stack_size(WORKER_STACK_BYTES)
        .spawn(move || run_worker(worker_shared));
    match spawned {
        Ok(handle) => {
            let mut workers = shared.workers.lock().unwrap_or_else(|e| e.into_inner());
            // Retired workers' handles go, so the list stays as long as the pool.
            workers.retain(|h| !h.is_finished());
            workers.push(handle);
            Ok(())
        }
        Err(e) => {
            shared.starting_workers.fetch_sub(1, Ordering::SeqCst);
            shared.started_workers.fetch_sub(1, Ordering::SeqCst);
            Err(e)
        }
    }
}

/// Queues a connection for a worker and wakes the grower when the queue outgrows the workers
/// idle or about to be, and the pool may still grow.
fn hand_over(shared: &Arc<Shared>, client: Client, since: Instant) {
    if shared.ready_tx.send(Work::Serve(client, since)).is_err() {
        return;
    }
    if needs_worker(shared) {
        // A full channel means a wake-up is pending already.
        let _ = shared.grow_tx.try_send(());
    }
}

/// Whether queued connections outnumber the workers idle or starting, and the pool may grow.
fn needs_worker(shared: &Shared) -> bool {
    let coming =
        shared.idle_workers.load(Ordering::SeqCst) + shared.starting_workers.load(Ordering::SeqCst);
    shared.ready_rx.len() > coming && can_grow(shared)
}

/// Starts one more worker when connections wait for one and the server is not stopping:
/// whether one was started, `Err` when spawning failed (logged here).
fn grow(shared: &Arc<Shared>) -> Result<bool, ()> {
    if shared.stopping.load(Ordering::SeqCst) || !needs_worker(shared) {
        return Ok(false);
    }
    spawn_worker(shared)
        .map(|()| true)
        .map_err(|e| log::error!("could not start a worker thread: {e}"))
}

/// Starts workers while connections wait for them. Spawning a thread costs about 55 µs
/// (measured, 3,000 in a row); done on the acceptor, as before, a burst of thousands of
/// connections stalled `accept()` for that long per connection, the listen backlog overflowed
/// and clients waited for SYN retries (seconds). Here the acceptor goes on accepting into the
/// ready queue, which holds each connection until a worker starts for it. Each new worker
/// starts the next one too while connections still wait: one spawning thread among thousands
/// of busy ones gets a thin share of the CPU (measured: 9,000 streams opened at once started
/// only about 60 workers a second), while a growing number of spawners keeps up.
fn run_grower(wake: Receiver<()>, shared: Arc<Shared>) {
    while wake.recv().is_ok() {
        loop {
            match grow(&shared) {
                Ok(true) => {}
                Ok(false) => break,
                Err(()) => {
                    thread::sleep(Duration::from_millis(10));
                    break;
                }
            }
        }
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
    }
}

/// Whether a queued connection will get a worker soon: one not inside a request is left for
/// it, or the pool may still start one.
fn worker_available(shared: &Shared) -> bool {
    let started = shared.started_workers.load(Ordering::SeqCst);
    let busy = shared.in_request.load(Ordering::SeqCst);
    started.saturating_sub(busy) > shared.ready_rx.len() || can_grow(shared)
}

/// Whether the pool may still start a worker.
fn can_grow(shared: &Shared) -> bool {
    shared.started_workers.load(Ordering::SeqCst) < shared.config.workers
}

/// Whether queued connections outnumber the idle workers (they wait for a busy one).
fn others_waiting(shared: &Shared) -> bool {
    shared.ready_rx.len() > shared.idle_workers.load(Ordering::SeqCst)
}

fn run_acceptor(listener: TcpListener, shared: Arc<Shared>) {
    let mut failures = 0u32;
    loop {
        let accepted = listener.accept();
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let (stream, peer) = match accepted {
            Ok(pair) => {
                failures = 0;
                pair
            }
            Err(e) => {
                failures += 1;
                let pause = accept_backoff(&e, failures);
                if failures == 1 || failures % 100 == 0 {
                    log::error!("accept failed ({e}); retrying in {pause:?}");
                }
                thread::sleep(pause);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let open = shared.open_connections.load(Ordering::SeqCst);
        if open >= shared.config.max_connections {
            reject_overload(
                &shared,
                stream,
                peer,
                "the gateway is at its connection limit; retry shortly",
            );
            continue;
        }
        shared.open_connections.fetch_add(1, Ordering::SeqCst);
        let client = Client {
            conn: Connection::new(stream, peer),
            _open: OpenConnection(shared.open_connections.clone()),
        };
        if let Err(e) = client
            .conn
            .stream
            .set_write_timeout(Some(shared.config.send_timeout))
        {
            log::debug!("set_write_timeout failed: {e}");
        }
        if worker_available(&shared) {
            hand_over(&shared, client, Instant::now());
        } else {
            // Every worker is busy: the connection is no request yet, so it waits for its
            // first bytes in the poller, which answers 503 then if still no worker is free.
            let deadline = Instant::now() + shared.config.header_timeout;
            drop(shared.parking.park(client, deadline));
        }
    }
}

fn run_poller(poller: Poller, shared: Arc<Shared>) {
    let max_sleep = shared
        .config
        .keepalive_idle
        .min(shared.config.header_timeout);
    let take = |client, seen| {
        if !worker_available(&shared) {
            return Err(client);
        }
        hand_over(&shared, client, seen);
        Ok(())
    };
    let refuse = |client: Client| {
        // The answer (and its record) says what the pool looked like when it was refused.
        let message = format!(
            "every worker is busy ({} of {} in a request, {} connections queued); retry shortly",
            shared.in_request.load(Ordering::SeqCst),
            shared.started_workers.load(Ordering::SeqCst),
            shared.ready_rx.len(),
        );
        let Client { conn, _open } = client;
        reject_overload(&shared, conn.stream, conn.peer, &message);
    };
    poller.run(&shared.parking, max_sleep, BUSY_GRACE, take, refuse);
}

/// How long a readable connection waits in the poller for a worker when every worker is busy,
/// before its 503. A worker that has written its answer is counted busy until the scheduler
/// runs it again, and the client that answer woke often runs first: measured, one worker
/// serving clients that connect back to back refused about half of them with no grace, even
/// on an idle machine. A worker that frees up nudges the poller, so a waiting request is
/// handed over at once; only one whose workers stay busy (streams) waits the whole grace.
const BUSY_GRACE: Duration = Duration::from_millis(100);

/// How long to pause after a failed accept: out of descriptors or memory needs time for
/// connections to close; an aborted handshake needs none.
fn accept_backoff(e: &io::Error, failures: u32) -> Duration {
    match e.kind() {
        io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted => Duration::ZERO,
        _ => Duration::from_millis((10 * failures as u64).min(200)),
    }
}

/// Answers 503 on the acceptor (at the connection cap) or the poller (every worker busy) and
/// hands the socket to the closer. The handler's `refuse` shapes the answer; should it panic,
/// the thread survives and sends the default.
fn reject_overload(shared: &Shared, mut stream: TcpStream, peer: SocketAddr, message: &str) {
    let refusal = Refusal {
        status: 503,
        message,
        peer,
        received_at: Instant::now(),
        head: None,
        after_handler: false,
    };
    let mut response = match catch_unwind(AssertUnwindSafe(|| shared.handler.refuse(&refusal))) {
        Ok(response) => response,
        Err(panic) => {
            log::error!(
                "Handler::refuse panicked for the 503 to {peer}: {}",
                panic_message(&*panic)
            );
            Response::text(refusal.status, refusal.message)
        }
    };
    response.status = refusal.status;
    if !response
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("retry-after"))
    {
        response = response.with_header("retry-after", "1");
    }
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    if Responder::new(&mut stream, Version::Http11, false, false)
        .send(response)
        .is_ok()
    {
        linger_close(shared, stream);
    }
}

/// Sends our FIN and lets the closer drain what the client still sends, so that closing with
/// unread input does not reset the connection before the client has read our answer.
fn linger_close(shared: &Shared, stream: TcpStream) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = shared.closer.try_send((stream, Instant::now() + LINGER));
}

fn run_closer(queue: Receiver<(TcpStream, Instant)>) {
    let mut lingering: Vec<(TcpStream, Instant)> = Vec::new();
    let mut sink = [0u8; 16 * 1024];
    loop {
        if lingering.is_empty() {
            match queue.recv() {
                Ok(item) => lingering.push(item),
                Err(_) => return,
            }
        }
        while let Ok(item) = queue.try_recv() {
            lingering.push(item);
        }
        let now = Instant::now();
        lingering.retain_mut(|(stream, deadline)| {
            if now >= *deadline || stream.set_nonblocking(true).is_err() {
                return false;
            }
            loop {
                match stream.read(&mut sink) {
                    Ok(0) => return false,
                    Ok(_) => continue,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                    Err(_) => return false,
                }
            }
        });
        thread::sleep(Duration::from_millis(5));
    }
}

fn run_worker(shared: Arc<Shared>) {
    let mut starting = true;
    loop {
        shared.idle_workers.fetch_add(1, Ordering::SeqCst);
        if std::mem::take(&mut starting) {
            shared.starting_workers.fetch_sub(1, Ordering::SeqCst);
            // Still short of workers: start the next one before serving (see run_grower).
            let _ = grow(&shared);
        }
        let next = shared.ready_rx.recv_timeout(WORKER_IDLE_LIFETIME);
        shared.idle_workers.fetch_sub(1, Ordering::SeqCst);
        match next {
            Ok(Work::Serve(client, since)) => {
                let peer = client.conn.peer;
                let waited = since.elapsed();
                let served = catch_unwind(AssertUnwindSafe(|| {
                    serve_connection(&shared, client, waited)
                }));
                if let Err(panic) = served {
                    log::error!(
                        "panic while serving {peer}: {}; connection closed",
                        panic_message(&*panic)
                    );
                }
            }
            Ok(Work::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) if !shared.ready_rx.is_empty() => {}
            Err(RecvTimeoutError::Timeout) => {
                // Idle for long: give the thread (and its stack) back, keeping a few.
                let retire =
                    shared
                        .started_workers
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                            (n > MIN_WORKERS).then(|| n - 1)
                        });
                if retire.is_ok() {
                    return;
                }
            }
        }
    }
}

thread_local! {
    /// Whether this worker's allocator cache is on (a thread starts with it on).
    static CACHE_ON: Cell<bool> = const { Cell::new(true) };
}

/// Keeps the worker's allocator cache for this request only while at most `cached_requests`
/// are in flight. The cache (jemalloc's: up to 44 KB of freed objects per thread, `main.rs`)
/// makes allocation cheap for the few workers a steady load keeps busy; with hundreds of
/// requests in flight, most wait on their providers (a burst of streams waiting for their
/// heads, each holding a worker until then), each would hold a cache of its own, and what they
/// allocate is not what limits the throughput. Switched only when the answer changes: turning
/// it off gives its objects back, on starts an empty one.
fn keep_cache_while(shared: &Shared) {
    let Some(set) = shared.config.thread_cache else {
        return;
    };
    let want = shared.in_request.load(Ordering::Relaxed) <= shared.config.cached_requests;
    CACHE_ON.with(|on| {
        if on.get() != want {
            set(want);
            on.set(want);
        }
    });
}

/// Counts one open connection until dropped, however and wherever it is closed (a panic on a
/// worker, a reap in the poller). The acceptor counted it in.
struct OpenConnection(Arc<AtomicUsize>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts a worker inside a request until dropped, a panic included; then nudges the poller,
/// whose waiting connections may take the worker now.
struct InRequest<'a>(&'a Shared);

impl<'a> InRequest<'a> {
    fn enter(shared: &'a Shared) -> Self {
        shared.in_request.fetch_add(1, Ordering::SeqCst);
        InRequest(shared)
    }
}

impl Drop for InRequest<'_> {
    fn drop(&mut self) {
        self.0.in_request.fetch_sub(1, Ordering::SeqCst);
        self.0.parking.nudge();
    }
}

/// The text of a panic's payload, for the log.
fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// The handler's response to a refusal, with the layer's status.
fn refusal_response(shared: &Shared, refusal: &Refusal<'_>) -> Response {
    let mut response = shared.handler.refuse(refusal);
    response.status = refusal.status;
    response
}

/// Serves requests on one connection while they come at once; then parks it in the poller
/// (idle), hands it back to the ready queue (others were waiting first), or closes it.
/// Never inlined, nor is reading a request: merged into `run_worker`, their locals made an 8 KB
/// frame under every handler, and the stack pages a handler reaches stay resident for the
/// worker's life (issue 18).
#[inline(never)]
fn serve_connection(shared: &Arc<Shared>, mut client: Client, mut queue_wait: Duration) {
    loop {
        let busy = InRequest::enter(shared);
        keep_cache_while(shared);
        let conn = &mut client.conn;
        let mut request = match conn.read_request(&shared.limits) {
            Ok(request) => request,
            Err(ReadError::Closed) => return,
            Err(ReadError::Reject(status, message, head)) => {
                let refusal = Refusal {
                    status,
                    message,
                    peer: conn.peer,
                    received_at: head
                        .as_ref()
                        .map_or(conn.head_wait_began, |h| h.received_at),
                    head: head.as_ref(),
                    after_handler: false,
                };
                let response = refusal_response(shared, &refusal);
                // Errors found before a request was understood are answered as HTTP/1.1.
                let mut responder = Responder::new(&mut conn.stream, Version::Http11, false, false);
                if responder.send(response).is_ok() {
                    linger_close(shared, client.conn.stream);
                }
                return;
            }
        };
        request.queue_wait = std::mem::take(&mut queue_wait);
        conn.served += 1;
        let keep_alive = request.wants_keep_alive() && !shared.stopping.load(Ordering::SeqCst);
        let head_only = request.method == "HEAD";
        let version = request.version;
        // A stream may hold its worker for minutes: the connection's read buffers are freed
        // while the request is handled, so an open stream does not keep them (issue 18); the
        // next read allocates them again.
        if !conn.has_buffered() {
            conn.release_buffers();
        }
        let request = Arc::new(request);
        let (state, reusable, panicked, detached) = {
            let mut responder =
                Responder::new(&mut conn.stream, request.version, head_only, keep_alive);
            if shared.relays.get().is_some() {
                responder.allow_relay();
            }
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                shared.handler.clone().handle(&request, &mut responder);
            }));
            let detached = responder.take_detached();
            (
                responder.state,
                responder.keep_alive(),
                outcome.is_err(),
                detached,
            )
        };
        if let (Some(detached), Some(relays)) = (detached, shared.relays.get()) {
            // The stream goes on on a relay thread, with the connection; this worker is free.
            relays.hand(Handoff {
                conn: client,
                pump: detached.pump,
                chunked: detached.chunked,
                keep_alive: detached.keep_alive && !panicked,
                first_sent: detached.first_sent,
            });
            return;
        }
        if panicked {
            log::error!(
                "handler panicked on {} {} from {}",
                request.method,
                request.path(),
                request.peer
            );
        }
        if state == State::Pending {
            let message = if panicked {
                "internal error while handling the request"
            } else {
                "the handler produced no response"
            };
            let response = refuse_after_handler(shared, request, message);
            let _ = Responder::new(&mut conn.stream, version, head_only, false).send(response);
            return;
        }
        if !reusable || panicked {
            return;
        }
        drop(busy);
        let stopping = shared.stopping.load(Ordering::SeqCst);
        if !conn.has_buffered() {
            if stopping {
                return;
            }
            // Wait briefly for the next request only while that keeps nobody waiting: other
            // workers are idle (more of them than are waiting like this one) or may start.
            let idle = shared.idle_workers.load(Ordering::SeqCst);
            let lingering = shared.lingering_workers.load(Ordering::SeqCst);
            let may_wait = !others_waiting(shared) && (idle > lingering || can_grow(shared));
            let next = if may_wait {
                shared.lingering_workers.fetch_add(1, Ordering::SeqCst);
                let next = conn.wait_briefly(NEXT_REQUEST_WAIT);
                shared.lingering_workers.fetch_sub(1, Ordering::SeqCst);
                next
            } else {
                NextRequest::Idle
            };
            match next {
                NextRequest::Arrived => {}
                NextRequest::Closed => return,
                NextRequest::Idle => {
                    conn.release_buffers();
                    let deadline = Instant::now() + shared.config.keepalive_idle;
                    drop(shared.parking.park(client, deadline));
                    return;
                }
            }
        }
        // The next request's bytes are here. Connections queued before it, waiting for a busy
        // worker, go first: this one queues behind them, ready (no wait for readability).
        if !stopping && others_waiting(shared) {
            hand_over(shared, client, Instant::now());
            return;
        }
    }
}

/// Where a connection goes after the relay loop carried its stream: back to serving requests
/// when the whole body was delivered and it is kept alive (its next request, if already sent,
/// queues for a worker; else it parks), closed otherwise.
fn after_relay(shared: &Arc<Shared>, client: Client, reusable: bool) {
    if !reusable || shared.stopping.load(Ordering::SeqCst) {
        return;
    }
    if client.conn.stream.set_nonblocking(false).is_err() {
        return;
    }
    if client.conn.has_buffered() {
        hand_over(shared, client, Instant::now());
    } else {
        // Its read buffers were freed before the handler ran (nothing was buffered then).
        let deadline = Instant::now() + shared.config.keepalive_idle;
        drop(shared.parking.park(client, deadline));
    }
}

/// The 500 for a request the handler panicked on or left unanswered: the refusal carries the
/// request's head (its body is dropped first).
fn refuse_after_handler(shared: &Shared, request: Arc<Request>, message: &str) -> Response {
    let mut request = Arc::unwrap_or_clone(request);
    request.body = Vec::new();
    let refusal = Refusal {
        status: 500,
        message,
        peer: request.peer,
        received_at: request.received_at,
        head: Some(&request),
        after_handler: true,
    };
    refusal_response(shared, &refusal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_waits_only_when_resources_ran_out() {
        let aborted = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(accept_backoff(&aborted, 3), Duration::ZERO);
        let emfile = io::Error::from_raw_os_error(24);
        assert_eq!(accept_backoff(&emfile, 1), Duration::from_millis(10));
        assert_eq!(accept_backoff(&emfile, 1000), Duration::from_millis(200));
    }
}

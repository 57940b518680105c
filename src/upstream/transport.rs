//! The TCP step of a provider connection: ureq's `TcpConnector` and `TcpTransport` rebuilt
//! (same connect order and timeouts, same read and write timeouts and the same `is_open`
//! probe, made only when a connection is taken from the pool), with three additions a relay
//! loop pumping many streams on a few threads needs (issue 18):
//!
//! - reads that never wait, on demand: on a thread inside [`NonBlockingReads::enter`], a read
//!   of a provider's body takes what the socket holds and otherwise fails with
//!   [`io::ErrorKind::WouldBlock`], which ureq's body reader (chunked decoding, gzip, rustls)
//!   passes up unchanged with the call's state intact. ureq's own transport turns a
//!   `WouldBlock` into a timeout, so it cannot serve;
//! - the connection's descriptor: ureq exposes no connection, so every read and write
//!   publishes its socket's descriptor on the calling thread ([`last_connection`]), for a
//!   caller to watch it for readiness;
//! - buffers that hold less while a stream is open (`buffers.rs`); a response head that does
//!   not fit the input buffer fails the call with an error that says so (ureq read 0 bytes and
//!   reported the provider as gone);
//! - a request's head and body leave in one write: ureq transmits each as it writes it, and
//!   here a transmit only keeps the bytes while at least half the output buffer is free; they
//!   are sent when it is not, and before any read (the answer, a `100 Continue`, a TLS
//!   handshake's reply). Two writes cost the gateway a second `send` and the provider a second
//!   packet and wake-up per call.
//!
//! Everything else behaves exactly like ureq's transport. A CONNECT proxy's tunnel is made by
//! ureq running the agent's connector for the proxy, so it goes through this transport too.

use std::cell::Cell;
use std::fmt;
use std::io::{self, Read, Write};
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Weak};
use std::time;

use socket2::SockRef;
use ureq::config::Config;
use ureq::unversioned::transport::time::{Duration, Instant};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, NextTimeout, ShutdownHandle, Transport,
};
use ureq::{Error, Timeout};

use super::buffers::CallBuffers;

thread_local! {
    /// Whether this thread's reads of provider connections must not wait.
    static NON_BLOCKING: Cell<bool> = const { Cell::new(false) };
    /// The descriptor of the provider connection this thread last read or wrote.
    static LAST_FD: Cell<Option<RawFd>> = const { Cell::new(None) };
    /// A connection a non-blocking read found drained, since the last [`NonBlockingReads::enter`].
    static DRAINED: Cell<Option<RawFd>> = const { Cell::new(None) };
}

/// While alive, reads of provider connections on this thread never wait: a read finding
/// nothing fails with [`io::ErrorKind::WouldBlock`] (an [`super::EventReader`] then answers
/// `Poll::Pending`). Hold it around body reads only, the making of the body's reader included
/// (`Answer::into_events`: ureq's gzip decoder reads the gzip header as it is made); a call's
/// request and response head are sent and read by blocking calls, which would fail inside it.
/// Writes always block (rustls may write while it reads). Restores the previous mode when
/// dropped; it stays on its thread, the flag being the thread's.
#[must_use = "reads are non-blocking only while the guard lives"]
pub struct NonBlockingReads {
    previous: bool,
    _this_thread: PhantomData<*const ()>,
}

impl NonBlockingReads {
    /// Makes this thread's reads of provider connections non-blocking until the guard drops.
    /// Entered again for each readiness of the connection (see [`TcpTransport::read_now`]).
    pub fn enter() -> NonBlockingReads {
        DRAINED.set(None);
        NonBlockingReads {
            previous: NON_BLOCKING.replace(true),
            _this_thread: PhantomData,
        }
    }
}

impl Drop for NonBlockingReads {
    fn drop(&mut self) {
        NON_BLOCKING.set(self.previous);
    }
}

/// Forgets which connection this thread used last (before a call, see [`last_connection`]).
pub(super) fn forget_connection() {
    LAST_FD.set(None);
}

/// The descriptor of the provider connection this thread last read or wrote, if any since
/// [`forget_connection`]. Read right after a call's response head arrived, it is that call's
/// connection: ureq sends a call and reads its head on the calling thread, through this
/// transport (under TLS or a proxy's tunnel, the socket is still this one's).
pub(super) fn last_connection() -> Option<RawFd> {
    LAST_FD.get()
}

/// Opens the TCP connection of a call, as ureq's `TcpConnector` does; passes on a transport
/// an earlier step (a CONNECT proxy's tunnel) made.
#[derive(Debug, Default)]
pub(super) struct TcpConnector;

impl Connector<Box<dyn Transport>> for TcpConnector {
    type Out = Either<Box<dyn Transport>, TcpTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<Box<dyn Transport>>,
    ) -> Result<Option<Self::Out>, Error> {
        if let Some(chained) = chained {
            return Ok(Some(Either::A(chained)));
        }
        let config = details.config;
        let stream = try_connect(details)?;
        let buffers = CallBuffers::new(config.input_buffer_size(), config.output_buffer_size());
        let transport = TcpTransport::new(stream, buffers);
        (details.register_shutdown)(Arc::downgrade(&transport.stream) as Weak<dyn ShutdownHandle>)?;
        Ok(Some(Either::B(transport)))
    }
}

/// Connects to the resolved addresses in order, as ureq does: each gets a share of the connect
/// timeout from a geometric series (1/2, 1/4, … of it, rescaled to sum to all of it; at least
/// 10 ms); an address refused or unroutable is skipped, a timed-out one too while time is left.
fn try_connect(details: &ConnectionDetails) -> Result<TcpStream, Error> {
    const MIN_PER_ADDRESS_TIMEOUT: Duration = Duration::from_millis(10);
    let timeout = details.timeout;
    let total_weight = 2.0 * (1.0 - 0.5_f64.powi(details.addrs.len() as i32));
    let mut weight = 1.0_f64;
    let mut last_err: Option<Error> = None;
    for addr in &details.addrs {
        let per_addr = timeout.not_zero().map(|t| {
            let secs = t.as_secs_f64() * weight / total_weight;
            Duration::from_millis((secs * 1000.0) as u64).max(MIN_PER_ADDRESS_TIMEOUT)
        });
        match connect_one(*addr, per_addr, details.config) {
            Ok(stream) => return Ok(stream),
            // ureq moves on to the next address without halving the weight here.
            Err(Error::Io(e)) if is_addr_specific_error(&e) => {
                last_err = Some(Error::Io(e));
                continue;
            }
            Err(e @ Error::Timeout(_)) => {
                if elapsed((details.current_time)(), details.now) > timeout.after {
                    return Err(Error::Timeout(timeout.reason));
                }
                last_err = Some(e);
            }
            Err(e) => return Err(e),
        }
        weight /= 2.0;
    }
    Err(last_err.unwrap_or_else(|| {
        Error::Io(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "Connection refused",
        ))
    }))
}

/// ureq's `Instant::duration_since` (not public): the time from `start` to `now`.
fn elapsed(now: Instant, start: Instant) -> Duration {
    match (now, start) {
        (Instant::Exact(now), Instant::Exact(start)) => {
            Duration::Exact(now.saturating_duration_since(start))
        }
        (Instant::AlreadyHappened, _) | (Instant::Exact(_), Instant::NotHappening) => {
            Duration::Exact(time::Duration::ZERO)
        }
        _ => Duration::NotHappening,
    }
}

/// A failed connect that concerns only the address tried (refused, or not routable), so the
/// next address may still work.
fn is_addr_specific_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::NetworkDown
            | io::ErrorKind::AddrNotAvailable
    )
}

fn connect_one(
    addr: SocketAddr,
    per_addr: Option<Duration>,
    config: &Config,
) -> Result<TcpStream, Error> {
    let connected = match per_addr {
        Some(limit) => TcpStream::connect_timeout(&addr, *limit),
        None => TcpStream::connect(addr),
    };
    let stream = match connected {
        Ok(stream) => stream,
        Err(e) if is_timeout(&e) => return Err(Error::Timeout(Timeout::Connect)),
        Err(e) => return Err(e.into()),
    };
    if config.no_delay() {
        stream.set_nodelay(true)?;
    }
    Ok(stream)
}

/// A blocking socket operation that ran out of time (Unix reports `WouldBlock`).
fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// A provider connection: ureq's `TcpTransport` plus non-blocking reads on demand (see
/// [`NonBlockingReads`]) and the publication of its descriptor (see [`last_connection`]).
pub(super) struct TcpTransport {
    /// In an `Arc` so that ureq's shutdown handle can share it (weakly).
    stream: Arc<TcpStream>,
    buffers: CallBuffers,
    /// The socket's read and write timeouts as last set, so unchanged ones cost no syscall.
    timeout_read: Option<Duration>,
    timeout_write: Option<Duration>,
    /// The timeout of the last transmit, for sending what it kept.
    send_timeout: NextTimeout,
    /// Whether the socket is in `O_NONBLOCK` mode now: switched only when an operation needs
    /// the other mode, so a stream read without blocking costs no extra syscall per read, and
    /// a connection back in the pool after one is switched back on its next blocking use.
    non_blocking: bool,
    /// Whether the connection was read since ureq last probed it (see `is_open`).
    read_since_probe: bool,
}

impl TcpTransport {
    fn new(stream: TcpStream, buffers: CallBuffers) -> TcpTransport {
        TcpTransport {
            stream: Arc::new(stream),
            buffers,
            timeout_read: None,
            timeout_write: None,
            send_timeout: NextTimeout::default(),
            non_blocking: false,
            read_since_probe: false,
        }
    }

    fn set_non_blocking(&mut self, non_blocking: bool) -> io::Result<()> {
        if self.non_blocking != non_blocking {
            self.stream.set_nonblocking(non_blocking)?;
            self.non_blocking = non_blocking;
        }
        Ok(())
    }

    fn publish(&self) {
        LAST_FD.set(Some(self.stream.as_raw_fd()));
    }

    /// Sends what transmits kept (see the module doc), under the last transmit's timeout.
    fn send_pending(&mut self) -> Result<(), Error> {
        if self.buffers.pending_output().is_empty() {
            return Ok(());
        }
        let timeout = self.send_timeout;
        self.set_non_blocking(false)?;
        maybe_update_timeout(
            timeout,
            &mut self.timeout_write,
            &self.stream,
            TcpStream::set_write_timeout,
        )?;
        let sent = (&*self.stream).write_all(self.buffers.pending_output());
        self.buffers.output_sent();
        match sent {
            Ok(()) => Ok(()),
            Err(e) if is_timeout(&e) => Err(Error::Timeout(timeout.reason)),
            Err(e) => Err(e.into()),
        }
    }

    /// One read that takes what the socket holds; `WouldBlock` when it holds nothing.
    ///
    /// A read that got less than it had room for emptied the socket: until the thread enters
    /// [`NonBlockingReads`] again (the caller's next readiness event; with edge-triggered epoll,
    /// bytes arriving after that read make a new one), the next read answers `WouldBlock`
    /// without asking the kernel. That saves a `recv` per relayed event (nginx reads the same
    /// way). The end of the body (a read of 0) is not taken for drained: it is answered again.
    fn read_now(&mut self) -> Result<usize, Error> {
        let fd = self.stream.as_raw_fd();
        if DRAINED.get() == Some(fd) {
            return Err(io::Error::from(io::ErrorKind::WouldBlock).into());
        }
        self.set_non_blocking(true)?;
        // Only a stream's body is read this way: its request went out long ago.
        self.buffers.release_output();
        let input = self.buffers.input_append_buf();
        let room = input.len();
        loop {
            match (&*self.stream).read(input) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(n) => {
                    if n > 0 && n < room {
                        DRAINED.set(Some(fd));
                    }
                    return Ok(n);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// One read that waits up to the timeout, as ureq's transport reads.
    fn read_waiting(&mut self, timeout: NextTimeout) -> Result<usize, Error> {
        self.set_non_blocking(false)?;
        maybe_update_timeout(
            timeout,
            &mut self.timeout_read,
            &self.stream,
            TcpStream::set_read_timeout,
        )?;
        let input = self.buffers.input_append_buf();
        let limit = timeout.not_zero().map(|t| *t);
        let started = time::Instant::now();
        let stream = &*self.stream;
        let timeout_read = &mut self.timeout_read;
        // Linux does not restart a socket read with a timeout after a signal: retry it with
        // what is left of the timeout; without a timeout, an interruption was asked for.
        let result = loop {
            match (&*stream).read(input) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    let Some(limit) = limit else { break Err(e) };
                    let left = limit.saturating_sub(started.elapsed());
                    if left.is_zero() {
                        break Err(io::ErrorKind::TimedOut.into());
                    }
                    if let Err(e) = update_timeout(timeout_read, Some(left.into()), || {
                        stream.set_read_timeout(Some(left))
                    }) {
                        break Err(e);
                    }
                }
                result => break result,
            }
        };
        match result {
            Ok(n) => Ok(n),
            Err(e) if is_timeout(&e) => Err(Error::Timeout(timeout.reason)),
            Err(e) => Err(e.into()),
        }
    }
}

/// Sets a socket timeout only when it differs from the one last set.
fn maybe_update_timeout(
    timeout: NextTimeout,
    previous: &mut Option<Duration>,
    stream: &TcpStream,
    set: impl Fn(&TcpStream, Option<time::Duration>) -> io::Result<()>,
) -> io::Result<()> {
    let wanted = timeout.not_zero();
    if !close_enough(*previous, wanted) {
        update_timeout(previous, wanted, || set(stream, wanted.map(|t| *t)))?;
    }
    Ok(())
}

/// Whether the socket's timeout as set can stand for the one wanted: both unset, or at most a
/// hundredth of the wanted one (and 10 ms) apart. A call's timeouts count down to its
/// deadline, so no two calls on a pooled connection want the same one to the microsecond, and
/// an exact match cost two `setsockopt` per proxied call (strace at c=32).
fn close_enough(set: Option<Duration>, wanted: Option<Duration>) -> bool {
    match (set, wanted) {
        (None, None) => true,
        (Some(set), Some(wanted)) => {
            let slack = (*wanted / 100).min(time::Duration::from_millis(10));
            set.abs_diff(*wanted) <= slack
        }
        _ => false,
    }
}

/// Sets a socket timeout and remembers it; as ureq, tolerates macOS refusing the change after
/// the peer closed (the read then reports what happened) without remembering it.
fn update_timeout(
    previous: &mut Option<Duration>,
    timeout: Option<Duration>,
    set: impl FnOnce() -> io::Result<()>,
) -> io::Result<()> {
    match set() {
        Ok(()) => *previous = timeout,
        Err(e) if cfg!(target_os = "macos") && e.kind() == io::ErrorKind::InvalidInput => {}
        Err(e) => return Err(e),
    }
    Ok(())
}

/// ureq's check that a timeout has not already run out (not public).
fn check(timeout: NextTimeout) -> Result<NextTimeout, Error> {
    if timeout.after.is_zero() {
        Err(Error::Timeout(timeout.reason))
    } else {
        Ok(timeout)
    }
}

impl Transport for TcpTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), Error> {
        self.publish();
        self.send_timeout = check(timeout.for_write())?;
        let room = self.buffers.defer_output(amount);
        if room < self.buffers.output_size() / 2 {
            self.send_pending()?;
        }
        Ok(())
    }

    /// Sends what transmits kept first: every wait for the provider's bytes comes here (ureq's
    /// `Box` and `Either` wrappers do not pass `maybe_await_input` on, so its default, which
    /// ends here when it waits, is what runs).
    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, Error> {
        self.publish();
        self.send_pending()?;
        self.read_since_probe = true;
        let timeout = check(timeout.for_read())?;
        // ureq asks for more while what it holds is one piece it cannot take in part (the head,
        // a chunk's size line): with no room left, a read would get 0 bytes, which ureq takes for
        // the provider hanging up.
        if self.buffers.input_append_buf().is_empty() {
            return Err(io::Error::other(format!(
                "the provider's response head is longer than the {} bytes the gateway reads it into",
                self.buffers.input().len()
            ))
            .into());
        }
        let amount = if NON_BLOCKING.get() {
            self.read_now()?
        } else {
            self.read_waiting(timeout)?
        };
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    /// ureq's probe of a pooled connection: a read that must find nothing waiting (no bytes
    /// past the last answer, no hang-up). ureq probes when it gives a connection back to the
    /// pool and again when it takes it out for a call; only the second one is made. What the
    /// first would find (bytes after the body, the provider's FIN or reset) stays in the
    /// socket until the second, made just before the connection is used, so a broken one is
    /// still never reused, and each call costs one syscall less (one of its four receives,
    /// strace at c=32). A connection given back is told by having been read
    /// since the last probe; a pooled one is not read until it is taken out.
    /// `MSG_DONTWAIT` leaves the socket's mode alone: switching it to non-blocking for the
    /// probe and back for the call cost two `ioctl`s per proxied call.
    fn is_open(&mut self) -> bool {
        if std::mem::take(&mut self.read_since_probe) {
            return true;
        }
        let mut byte = [MaybeUninit::uninit()];
        matches!(
            SockRef::from(&*self.stream).recv_with_flags(&mut byte, libc::MSG_DONTWAIT),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock
        )
    }
}

impl fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpTransport")
            .field("addr", &self.stream.peer_addr().ok())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Option<Duration> {
        Some(time::Duration::from_millis(n).into())
    }

    fn five_seconds() -> NextTimeout {
        NextTimeout {
            after: time::Duration::from_secs(5).into(),
            ..NextTimeout::default()
        }
    }

    fn write_out(transport: &mut TcpTransport, bytes: &[u8]) -> Result<(), Error> {
        transport.buffers().output()[..bytes.len()].copy_from_slice(bytes);
        transport.transmit_output(bytes.len(), five_seconds())
    }

    /// What the provider's end of the connection holds now, without waiting.
    fn received(provider: &mut TcpStream) -> Vec<u8> {
        let mut got = vec![0u8; 16 * 1024];
        match provider.read(&mut got) {
            Ok(n) => got.truncate(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => got.clear(),
            Err(e) => panic!("{e}"),
        }
        got
    }

    /// A request's head and body leave together when the provider's answer is awaited; bytes
    /// that fill half the output buffer leave at once.
    #[test]
    fn a_request_head_and_body_are_sent_in_one_write_before_the_answer_is_read() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut provider, _) = listener.accept().unwrap();
        provider.set_nonblocking(true).unwrap();
        let mut transport = TcpTransport::new(stream, CallBuffers::new(8192, 8192));

        write_out(
            &mut transport,
            b"POST / HTTP/1.1\r\ncontent-length: 2\r\n\r\n",
        )
        .unwrap();
        write_out(&mut transport, b"{}").unwrap();
        std::thread::sleep(time::Duration::from_millis(50));
        assert!(received(&mut provider).is_empty(), "nothing is sent yet");

        provider
            .write_all(b"HTTP/1.1 204 No Content\r\n\r\n")
            .unwrap();
        assert!(transport.await_input(five_seconds()).unwrap());
        assert_eq!(
            received(&mut provider),
            b"POST / HTTP/1.1\r\ncontent-length: 2\r\n\r\n{}",
            "head and body, sent before the answer was read"
        );
        let answered = transport.buffers().input().len();
        transport.buffers().input_consume(answered);

        let large = vec![b'x'; 5000];
        write_out(&mut transport, &large).unwrap();
        std::thread::sleep(time::Duration::from_millis(50));
        assert_eq!(received(&mut provider), large, "sent at once");
    }

    /// Given back to the pool right after its answer was read, a connection is not probed;
    /// taken out for the next call, it is, and what the provider sent meanwhile is found.
    #[test]
    fn a_connection_is_probed_when_taken_from_the_pool_not_when_given_back() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let stream = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut provider, _) = listener.accept().unwrap();
        let mut transport = TcpTransport::new(stream, CallBuffers::new(8192, 8192));
        assert!(transport.is_open(), "a quiet connection is open");

        provider
            .write_all(b"HTTP/1.1 204 No Content\r\n\r\nunexpected")
            .unwrap();
        assert!(transport.await_input(five_seconds()).unwrap());
        let answered = transport.buffers().input().len();
        transport.buffers().input_consume(answered);
        provider.write_all(b" and more").unwrap();
        std::thread::sleep(time::Duration::from_millis(50));
        assert!(transport.is_open(), "given back: not probed");
        assert!(
            !transport.is_open(),
            "taken out: the bytes waiting are found"
        );
    }

    #[test]
    fn a_socket_timeout_is_set_again_only_when_it_is_off_by_more_than_a_hundredth() {
        assert!(close_enough(None, None));
        assert!(close_enough(ms(600_000), ms(599_995)));
        assert!(close_enough(ms(600_000), ms(600_010)));
        assert!(!close_enough(ms(600_000), ms(599_980)));
        assert!(close_enough(ms(100), ms(101)));
        assert!(!close_enough(ms(100), ms(102)));
        assert!(!close_enough(ms(100), None));
        assert!(!close_enough(None, ms(100)));
    }
}

//! TCP between peers, on threads (ADR 0003): one listener, one reader per accepted
//! connection, one writer per peer that dials, reconnects with backoff and drains a bounded
//! queue. Everything received arrives on one bounded channel as an [`Event`].
//!
//! Test-only network controls ([`NetControls`]) hold frames to chosen peers until a time (the
//! asynchrony the n = 3 counterexample needs; the link then delivers everything), add seeded
//! jitter, and cut every link for a window of time (a partition that heals). They are recorded
//! in the certificate.

use crate::wire::{Frame, read_frame, write_frame};
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufReader, BufWriter};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use synod_core::rng::SeededRng;

/// Frames queued per peer; beyond it new frames are dropped (and counted): gossip re-sends.
pub const QUEUE_MAX: usize = 4096;
/// Events queued for the node; a full queue makes readers wait (backpressure).
pub const EVENTS_MAX: usize = 8192;
/// Inbound connections served at once.
pub const CONNECTIONS_MAX: usize = 256;

/// What the network tells the node.
#[derive(Debug)]
pub enum Event {
    /// A frame, from the peer the connection's hello named (a hint only).
    Frame {
        /// The hello's id.
        from: u16,
        /// The frame.
        frame: Frame,
    },
    /// Work done on another thread (the node's own results), carried on the same channel.
    Work(Box<crate::node::WorkResult>),
}

/// Test-only controls over what this node sends and receives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetControls {
    /// Frames to these peers sent in the first this-many milliseconds are held until then
    /// (the link is kept apart for that window, then delivers everything).
    pub delays_ms: BTreeMap<u16, u64>,
    /// Each frame is held a further 0 … 20 ms, drawn from this seed.
    pub jitter_seed: Option<u64>,
    /// From … to (milliseconds since start): every frame sent or received is dropped.
    pub partition_ms: Option<(u64, u64)>,
}

impl NetControls {
    /// Whether any control is set.
    pub fn any(&self) -> bool {
        *self != NetControls::default()
    }
}

/// One peer's outgoing frames and the condition its writer waits on.
type Queue = Arc<(Mutex<VecDeque<Queued>>, std::sync::Condvar)>;

struct Queued {
    due: Instant,
    frame: Arc<Frame>,
}

/// The node's side of the network.
pub struct Net {
    queues: Vec<Option<Queue>>,
    controls: NetControls,
    jitter: Mutex<SeededRng>,
    start: Instant,
    stop: Arc<AtomicBool>,
    /// Frames dropped because a queue was full or a partition was on.
    pub dropped: Arc<AtomicU64>,
    /// Frames written.
    pub sent: Arc<AtomicU64>,
    /// Frames read.
    pub received: Arc<AtomicU64>,
}

impl Net {
    /// Listens on `listen`, dials every other peer of `addrs` (by id), and delivers frames
    /// to `events`. `hello` is the first frame on each dialled connection.
    pub fn start(
        id: u16,
        listen: SocketAddr,
        addrs: Vec<SocketAddr>,
        hello: Frame,
        controls: NetControls,
        events: SyncSender<Event>,
        start: Instant,
    ) -> Result<Net, String> {
        let listener =
            TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let dropped = Arc::new(AtomicU64::new(0));
        let sent = Arc::new(AtomicU64::new(0));
        let received = Arc::new(AtomicU64::new(0));
        let hello = Arc::new(hello);
        let mut queues = Vec::new();
        for (peer, addr) in addrs.iter().enumerate() {
            if peer == usize::from(id) {
                queues.push(None);
                continue;
            }
            let q = Arc::new((Mutex::new(VecDeque::new()), std::sync::Condvar::new()));
            queues.push(Some(q.clone()));
            let (addr, hello, stop, sent) = (*addr, hello.clone(), stop.clone(), sent.clone());
            thread::Builder::new()
                .name(format!("synod-node-send-{peer}"))
                .spawn(move || writer(addr, hello, q, stop, sent))
                .map_err(|e| format!("cannot start a network thread: {e}"))?;
        }
        {
            let (stop, received, dropped) = (stop.clone(), received.clone(), dropped.clone());
            let partition = controls.partition_ms;
            thread::Builder::new()
                .name("synod-node-listen".into())
                .spawn(move || {
                    accept_loop(listener, events, stop, received, dropped, partition, start)
                })
                .map_err(|e| format!("cannot start a network thread: {e}"))?;
        }
        let jitter = Mutex::new(SeededRng::derive(
            controls.jitter_seed.unwrap_or(0),
            "net-jitter",
        ));
        Ok(Net {
            queues,
            controls,
            jitter,
            start,
            stop,
            dropped,
            sent,
            received,
        })
    }

    fn partitioned(&self) -> bool {
        in_window(self.controls.partition_ms, self.start)
    }

    /// Queues `frame` for `peer` (never blocks).
    pub fn send(&self, peer: u16, frame: Arc<Frame>) {
        let Some(Some(q)) = self.queues.get(usize::from(peer)) else {
            return;
        };
        if self.partitioned() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Asynchrony that ends: a frame sent to a held peer before the window closes waits
        // until it closes, so the link is eventually timely (the protocol's assumption).
        let mut due = Instant::now();
        if let Some(until) = self.controls.delays_ms.get(&peer) {
            due = due.max(self.start + Duration::from_millis(*until));
        }
        if self.controls.jitter_seed.is_some() {
            let ms = self.jitter.lock().map(|mut r| r.below(21)).unwrap_or(0);
            due += Duration::from_millis(ms);
        }
        let (lock, cv) = &**q;
        let Ok(mut queue) = lock.lock() else {
            return;
        };
        if queue.len() >= QUEUE_MAX {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        queue.push_back(Queued { due, frame });
        cv.notify_one();
    }

    /// Queues `frame` for every other peer.
    pub fn broadcast(&self, frame: Frame) {
        let frame = Arc::new(frame);
        for peer in 0..self.queues.len() {
            self.send(peer as u16, frame.clone());
        }
    }

    /// Frames still queued, all peers.
    pub fn queued(&self) -> usize {
        self.queues
            .iter()
            .flatten()
            .map(|q| q.0.lock().map(|g| g.len()).unwrap_or(0))
            .sum()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for q in self.queues.iter().flatten() {
            q.1.notify_all();
        }
    }
}

fn in_window(window: Option<(u64, u64)>, start: Instant) -> bool {
    window.is_some_and(|(a, b)| {
        let t = start.elapsed().as_millis() as u64;
        (a..b).contains(&t)
    })
}

fn writer(
    addr: SocketAddr,
    hello: Arc<Frame>,
    q: Queue,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
) {
    let mut backoff = Duration::from_millis(20);
    let mut conn: Option<BufWriter<TcpStream>> = None;
    while !stop.load(Ordering::Relaxed) {
        if conn.is_none() {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
                    let mut w = BufWriter::new(s);
                    if write_frame(&mut w, &hello).is_ok() {
                        conn = Some(w);
                        backoff = Duration::from_millis(20);
                    }
                }
                Err(_) => {
                    thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_millis(500));
                    continue;
                }
            }
        }
        // Next frame that is due.
        let next = {
            let (lock, cv) = &*q;
            let Ok(mut queue) = lock.lock() else { return };
            loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                // Sleep until the first frame is due, a new one comes, or 200 ms pass.
                let wait = match queue.front() {
                    Some(f) if f.due <= Instant::now() => break queue.pop_front(),
                    Some(f) => f.due.saturating_duration_since(Instant::now()),
                    None => Duration::from_millis(200),
                };
                queue = match cv.wait_timeout(queue, wait.min(Duration::from_millis(200))) {
                    Ok((g, _)) => g,
                    Err(_) => return,
                };
            }
        };
        let Some(item) = next else { continue };
        if let Some(w) = conn.as_mut() {
            if write_frame(w, &item.frame).is_ok() {
                sent.fetch_add(1, Ordering::Relaxed);
            } else {
                conn = None; // reconnect; this frame is lost (gossip sends again)
            }
        }
    }
}

fn accept_loop(
    listener: TcpListener,
    events: SyncSender<Event>,
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    partition: Option<(u64, u64)>,
    start: Instant,
) {
    let open = Arc::new(AtomicU64::new(0));
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((s, _)) => {
                if open.load(Ordering::Relaxed) >= CONNECTIONS_MAX as u64 {
                    continue; // dropped: too many connections
                }
                // Blocking reads without a timeout (a timeout inside a frame would lose its
                // framing); a reader ends when its peer's writer closes the connection.
                let _ = s.set_nonblocking(false);
                open.fetch_add(1, Ordering::Relaxed);
                let (events, stop, received, dropped, open) = (
                    events.clone(),
                    stop.clone(),
                    received.clone(),
                    dropped.clone(),
                    open.clone(),
                );
                let _ = thread::Builder::new()
                    .name("synod-node-recv".into())
                    .spawn(move || {
                        reader(s, events, stop, received, dropped, partition, start);
                        open.fetch_sub(1, Ordering::Relaxed);
                    });
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(10));
            }
            Err(_) => thread::sleep(Duration::from_millis(50)),
        }
    }
}

fn reader(
    s: TcpStream,
    events: SyncSender<Event>,
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    partition: Option<(u64, u64)>,
    start: Instant,
) {
    let mut r = BufReader::new(s);
    let from = loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        match read_frame(&mut r) {
            Ok(Frame::Hello { from, .. }) => break from,
            Ok(_) => return, // a connection must open with a hello
            Err(e) if is_timeout(&e) => continue,
            Err(_) => return,
        }
    };
    while !stop.load(Ordering::Relaxed) {
        match read_frame(&mut r) {
            Ok(frame) => {
                if in_window(partition, start) {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                received.fetch_add(1, Ordering::Relaxed);
                let mut ev = Event::Frame { from, frame };
                loop {
                    match events.try_send(ev) {
                        Ok(()) => break,
                        Err(TrySendError::Full(back)) => {
                            if stop.load(Ordering::Relaxed) {
                                return;
                            }
                            ev = back;
                            thread::sleep(Duration::from_millis(2));
                        }
                        Err(TrySendError::Disconnected(_)) => return,
                    }
                }
            }
            Err(e) if is_timeout(&e) => continue,
            Err(_) => return, // closed, oversized or garbled: the peer redials
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// The channel the node reads its events from.
pub fn channel() -> (SyncSender<Event>, Receiver<Event>) {
    sync_channel(EVENTS_MAX)
}

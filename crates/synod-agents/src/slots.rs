//! An endpoint's parallel slots, shared by every agent that calls it.
//!
//! A local server such as llama.cpp's answers `--parallel N` requests at once and queues the
//! rest. A queued request streams nothing, so the runtime's deadline, which starts when the
//! ask is sent, would suspect an agent that is only waiting its turn. Agents that name an
//! endpoint's `slots` therefore send at most that many requests to it at once: a call waits
//! for a free slot, and its deadline starts (a heartbeat) when it gets one. While it waits,
//! it is kept alive only by the endpoint's own progress: when a call holding a slot streamed
//! a token in the last [`PROGRESS_WINDOW`], the waiting call heartbeats too. A server that
//! stops streaming lets every call on it expire, waiting or not.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How recent the endpoint's last streamed token must be for a waiting call to heartbeat.
pub const PROGRESS_WINDOW: Duration = Duration::from_secs(10);
/// How often a waiting call looks again.
const POLL: Duration = Duration::from_millis(500);

/// One endpoint's slots.
#[derive(Debug)]
pub struct Endpoint {
    cap: usize,
    state: Mutex<State>,
    freed: Condvar,
}

#[derive(Debug, Default)]
struct State {
    busy: usize,
    most_busy: usize,
    last_progress: Option<Instant>,
}

/// A held slot, given back when dropped.
#[derive(Debug)]
pub struct Slot<'a> {
    endpoint: &'a Endpoint,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut s = self.endpoint.lock();
        s.busy = s.busy.saturating_sub(1);
        drop(s);
        self.endpoint.freed.notify_one();
    }
}

impl Endpoint {
    /// The process-wide slots of `url` (created with `cap` slots the first time; the agents
    /// file checks that agents of one endpoint agree on it).
    pub fn shared(url: &str, cap: usize) -> Arc<Endpoint> {
        static ALL: OnceLock<Mutex<BTreeMap<String, Arc<Endpoint>>>> = OnceLock::new();
        let mut all = ALL
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        Arc::clone(
            all.entry(url.trim_end_matches('/').to_string())
                .or_insert_with(|| {
                    Arc::new(Endpoint {
                        cap: cap.max(1),
                        state: Mutex::default(),
                        freed: Condvar::new(),
                    })
                }),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits for a free slot; `heartbeat` when one is taken, and while waiting whenever the
    /// endpoint streamed a token within [`PROGRESS_WINDOW`].
    pub fn acquire(&self, heartbeat: &dyn Fn()) -> Slot<'_> {
        let mut s = self.lock();
        while s.busy >= self.cap {
            let (g, _) = self
                .freed
                .wait_timeout(s, POLL)
                .unwrap_or_else(|p| p.into_inner());
            s = g;
            if s.busy >= self.cap
                && s.last_progress
                    .is_some_and(|t| t.elapsed() <= PROGRESS_WINDOW)
            {
                drop(s);
                heartbeat();
                s = self.lock();
            }
        }
        s.busy += 1;
        s.most_busy = s.most_busy.max(s.busy);
        drop(s);
        heartbeat();
        Slot { endpoint: self }
    }

    /// A call holding a slot streamed something.
    pub fn progress(&self) {
        self.lock().last_progress = Some(Instant::now());
    }

    /// The most slots ever held at once (for tests and reports).
    pub fn most_busy(&self) -> usize {
        self.lock().most_busy
    }

    /// Its slots.
    pub fn cap(&self) -> usize {
        self.cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// B waits for A's slot for about 1.6 s; A streams (or not) meanwhile. Returns B's
    /// heartbeats.
    fn waiting_beats(url: &str, a_streams: bool) -> usize {
        let e = Endpoint::shared(url, 1);
        let held = e.acquire(&|| {});
        let beats = AtomicUsize::new(0);
        std::thread::scope(|sc| {
            sc.spawn(|| {
                for _ in 0..16 {
                    std::thread::sleep(Duration::from_millis(100));
                    if a_streams {
                        e.progress();
                    }
                }
                drop(held);
            });
            let _b = e.acquire(&|| {
                beats.fetch_add(1, Ordering::Relaxed);
            });
        });
        assert_eq!(e.most_busy(), 1);
        beats.load(Ordering::Relaxed)
    }

    #[test]
    fn a_waiting_call_heartbeats_only_while_the_endpoint_streams() {
        // One beat when the slot is taken; more while waiting only if the holder streams.
        assert!(waiting_beats("http://streams/v1", true) >= 3);
        assert_eq!(waiting_beats("http://silent/v1", false), 1);
    }

    #[test]
    fn one_endpoint_is_shared_by_url() {
        let a = Endpoint::shared("http://same/v1/", 2);
        let b = Endpoint::shared("http://same/v1", 5);
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(b.cap(), 2);
    }
}

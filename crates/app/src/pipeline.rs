//! Many commands decided in order, ahead of their commits.
//!
//! A field app catching up sends its queue as one batch. Deciding each
//! command and then waiting for its own commit costs one commit per
//! command; here command `k + 1` is decided as soon as command `k`'s
//! events are queued for the writer, on the state they leave (kept in the
//! pipeline's overlay), and the writer group-commits the queue. The
//! appends are links of one [`AppendChain`]: a link is written only if
//! every earlier link was, so no decision is ever stored without the state
//! it was made on.
//!
//! The overlay only serves the common case. A command whose decision on it
//! is anything but new events (a refusal, nothing to change, a retry of a
//! stored write), or whose link was not written, breaks the chain and is
//! decided again, the ordinary way, once every command before it has its
//! answer; the commands after it follow on a new chain. Each command is
//! therefore answered exactly as it would be had the batch's commands been
//! sent one by one.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use fangkong_store::AppendChain;
use fangkong_vault::SealingKey;
use tokio::sync::Notify;

use crate::execute::Cached;

tokio::task_local! {
    static ITEM: Arc<Item>;
}

/// One batch's commands, decided in their order. Cheap to clone.
#[derive(Clone)]
pub struct Pipeline {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("items", &self.shared.turns.len())
            .finish_non_exhaustive()
    }
}

struct Shared {
    segment: Mutex<Segment>,
    /// The command whose turn it is to decide.
    turn: AtomicUsize,
    turns: Vec<Notify>,
    /// Commands answered for good; `answered` is the first one that is not.
    done: Mutex<Vec<bool>>,
    answered: AtomicUsize,
    answers: Vec<Notify>,
    decided_again: AtomicUsize,
}

/// The chain the next commands are linked on, and what its links leave.
#[derive(Default)]
struct Segment {
    chain: AppendChain,
    /// Streams as the chain's queued links leave them, and streams read
    /// fresh during this segment.
    overlay: HashMap<String, Cached>,
    /// Subjects given a new key by a queued link: later links seal under
    /// that key, stored by the first.
    keys: HashMap<String, SealingKey>,
    /// The first event id of every queued link: a later command looking
    /// for its first try by key waits for the log only when it is here.
    queued: std::collections::HashSet<uuid::Uuid>,
}

/// What one command of a pipeline did so far.
pub(crate) struct Item {
    pipeline: Pipeline,
    index: usize,
    /// Decided on the overlay (false: the ordinary way).
    ahead: bool,
    /// Read any state to come to its answer.
    read_state: AtomicBool,
    /// Its events were written on the chain.
    linked: AtomicBool,
    /// Its answer stands as it would for the command sent alone (the
    /// store failed under it, say).
    settled: AtomicBool,
    passed: AtomicBool,
}

impl Pipeline {
    /// A pipeline for `items` commands, numbered from 0.
    pub fn new(items: usize) -> Self {
        Pipeline {
            shared: Arc::new(Shared {
                segment: Mutex::new(Segment::default()),
                turn: AtomicUsize::new(0),
                turns: (0..items).map(|_| Notify::new()).collect(),
                done: Mutex::new(vec![false; items]),
                answered: AtomicUsize::new(0),
                answers: (0..items).map(|_| Notify::new()).collect(),
                decided_again: AtomicUsize::new(0),
            }),
        }
    }

    /// Runs command `index` (made by `make`, once or, decided again, twice)
    /// in its turn, and answers it as if the commands before it had each
    /// been sent alone and answered first.
    pub async fn run<T, E, F, Fut>(&self, index: usize, make: F) -> Result<T, E>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        assert!(index < self.shared.turns.len(), "no such command");
        self.wait_turn(index).await;
        if self.segment().chain.is_broken() {
            // Links after the break are refused: once every command before
            // this one is answered, the state is what the log holds again.
            self.wait_answered(index).await;
            *self.segment() = Segment::default();
        }
        let item = Arc::new(Item::new(self.clone(), index, true));
        let first = ITEM.scope(item.clone(), make()).await;
        let settled = item.linked.load(Ordering::Acquire)
            || item.settled.load(Ordering::Acquire)
            || first.is_ok()
            || !item.read_state.load(Ordering::Acquire);
        if !settled {
            // Decided again below, after the commands before it: no later
            // command may be stored on what this one's first decision saw
            // (those queued before it stand or fall on their own).
            self.segment().chain.break_off();
            self.shared.decided_again.fetch_add(1, Ordering::Relaxed);
        }
        item.pass();
        self.wait_answered(index).await;
        let answer = if settled {
            first
        } else {
            ITEM.scope(Arc::new(Item::new(self.clone(), index, false)), make())
                .await
        };
        self.answered(index);
        answer
    }

    /// Commands decided again the ordinary way so far (the rest were
    /// answered as decided ahead).
    pub fn decided_again(&self) -> usize {
        self.shared.decided_again.load(Ordering::Relaxed)
    }

    fn segment(&self) -> MutexGuard<'_, Segment> {
        self.shared
            .segment
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    async fn wait_turn(&self, index: usize) {
        while self.shared.turn.load(Ordering::Acquire) < index {
            self.shared.turns[index].notified().await;
        }
    }

    fn pass(&self, index: usize) {
        self.shared.turn.fetch_max(index + 1, Ordering::AcqRel);
        if let Some(next) = self.shared.turns.get(index + 1) {
            next.notify_one();
        }
    }

    /// Until every command before `index` has its final answer.
    async fn wait_answered(&self, index: usize) {
        while self.shared.answered.load(Ordering::Acquire) < index {
            self.shared.answers[index].notified().await;
        }
    }

    fn answered(&self, index: usize) {
        let mut done = self
            .shared
            .done
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        done[index] = true;
        let before = self.shared.answered.load(Ordering::Acquire);
        let mut first_open = before;
        while first_open < done.len() && done[first_open] {
            first_open += 1;
        }
        self.shared.answered.store(first_open, Ordering::Release);
        drop(done);
        // Whoever waits for "all before me": every index up to the first
        // open one is now satisfied.
        for waiting in (before + 1)..=first_open.min(self.shared.answers.len() - 1) {
            self.shared.answers[waiting].notify_one();
        }
    }
}

impl Item {
    fn new(pipeline: Pipeline, index: usize, ahead: bool) -> Self {
        Item {
            pipeline,
            index,
            ahead,
            read_state: AtomicBool::new(false),
            linked: AtomicBool::new(false),
            settled: AtomicBool::new(false),
            passed: AtomicBool::new(false),
        }
    }

    /// The command decided ahead of its commit this runs in, if any.
    pub(crate) fn current() -> Option<Arc<Item>> {
        ITEM.try_with(Arc::clone).ok().filter(|item| item.ahead)
    }

    /// The next command may decide: this one's events are queued, or it
    /// has its answer.
    pub(crate) fn pass(&self) {
        if !self.passed.swap(true, Ordering::AcqRel) {
            self.pipeline.pass(self.index);
        }
    }

    pub(crate) fn has_passed(&self) -> bool {
        self.passed.load(Ordering::Acquire)
    }

    pub(crate) fn read_state(&self) {
        self.read_state.store(true, Ordering::Release);
    }

    pub(crate) fn linked(&self) {
        self.linked.store(true, Ordering::Release);
    }

    /// The answer about to be given stands: the command sent alone would
    /// have had it too.
    pub(crate) fn settled(&self) {
        self.settled.store(true, Ordering::Release);
    }

    /// The chain this command's events are linked on.
    pub(crate) fn chain(&self) -> AppendChain {
        self.pipeline.segment().chain.clone()
    }

    /// The stream as the queued links leave it, or as read this segment.
    pub(crate) fn overlay(&self, stream_id: &str) -> Option<Cached> {
        self.pipeline.segment().overlay.get(stream_id).cloned()
    }

    pub(crate) fn set_overlay(&self, stream_id: &str, cached: Cached) {
        self.pipeline
            .segment()
            .overlay
            .insert(stream_id.to_owned(), cached);
    }

    /// The key a queued link made for `subject`, if any.
    pub(crate) fn sealing_key(&self, subject: &str) -> Option<SealingKey> {
        self.pipeline
            .segment()
            .keys
            .get(subject)
            .map(SealingKey::follower)
    }

    pub(crate) fn queued(&self, first_event_id: uuid::Uuid) {
        self.pipeline.segment().queued.insert(first_event_id);
    }

    /// Whether a link of this segment starts with `first_event_id`.
    pub(crate) fn is_queued(&self, first_event_id: uuid::Uuid) -> bool {
        self.pipeline.segment().queued.contains(&first_event_id)
    }

    pub(crate) fn keep_sealing_key(&self, key: &SealingKey) {
        if key.pending.is_some() {
            let follower = key.follower();
            self.pipeline
                .segment()
                .keys
                .insert(follower.subject().to_owned(), follower);
        }
    }

    /// Until every command before this one has its final answer: for a
    /// command that reads what they wrote beyond the streams it loads.
    pub(crate) async fn settle(&self) {
        self.read_state();
        self.pipeline.wait_answered(self.index).await;
        if self.has_passed() {
            // Its events are queued and a later command may hold the turn:
            // the chain is no longer this one's to start afresh.
            return;
        }
        // Every command before this one is answered and none after it has
        // started: a chain broken meanwhile can be started afresh here.
        let mut segment = self.pipeline.segment();
        if segment.chain.is_broken() {
            *segment = Segment::default();
        }
    }
}

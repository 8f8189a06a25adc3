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
            .field("items", &self.shared.turn.wakers.len())
            .finish_non_exhaustive()
    }
}

struct Shared {
    segment: Mutex<Segment>,
    /// The command whose turn it is to decide.
    turn: Progress,
    /// The first command without its final answer: answers are final in
    /// order, each command waiting for the ones before it.
    answered: Progress,
    decided_again: AtomicUsize,
}

/// A count that only rises through the commands, in order, and wakes the
/// one command waiting for it to reach that command's number.
struct Progress {
    reached: AtomicUsize,
    wakers: Vec<Notify>,
}

impl Progress {
    fn new(items: usize) -> Self {
        Progress {
            reached: AtomicUsize::new(0),
            wakers: (0..items).map(|_| Notify::new()).collect(),
        }
    }

    /// Until the count reaches `index`.
    async fn wait(&self, index: usize) {
        while self.reached.load(Ordering::Acquire) < index {
            self.wakers[index].notified().await;
        }
    }

    /// Command `index` is done: the count moves past it.
    fn past(&self, index: usize) {
        self.reached.fetch_max(index + 1, Ordering::AcqRel);
        if let Some(next) = self.wakers.get(index + 1) {
            next.notify_one();
        }
    }
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
    /// Its answer stands as it would for the command sent alone: its
    /// events were written on the chain, or the store failed under it.
    stands: AtomicBool,
    passed: AtomicBool,
}

impl Pipeline {
    /// A pipeline for `items` commands, numbered from 0.
    pub fn new(items: usize) -> Self {
        Pipeline {
            shared: Arc::new(Shared {
                segment: Mutex::new(Segment::default()),
                turn: Progress::new(items),
                answered: Progress::new(items),
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
        assert!(index < self.shared.turn.wakers.len(), "no such command");
        self.shared.turn.wait(index).await;
        if self.segment().chain.is_broken() {
            // Links after the break are refused: once every command before
            // this one is answered, the state is what the log holds again.
            self.shared.answered.wait(index).await;
            self.restart_if_broken();
        }
        let item = Arc::new(Item::new(self.clone(), index, true));
        let first = ITEM.scope(item.clone(), make()).await;
        let settled = item.stands.load(Ordering::Acquire)
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
        self.shared.answered.wait(index).await;
        let answer = if settled {
            first
        } else {
            ITEM.scope(Arc::new(Item::new(self.clone(), index, false)), make())
                .await
        };
        self.shared.answered.past(index);
        answer
    }

    /// A new chain, with nothing queued on it, in place of a broken one.
    /// Only while every command before the caller is answered and none
    /// after it has started.
    fn restart_if_broken(&self) {
        let mut segment = self.segment();
        if segment.chain.is_broken() {
            *segment = Segment::default();
        }
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
}

impl Item {
    fn new(pipeline: Pipeline, index: usize, ahead: bool) -> Self {
        Item {
            pipeline,
            index,
            ahead,
            read_state: AtomicBool::new(false),
            stands: AtomicBool::new(false),
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
            self.pipeline.shared.turn.past(self.index);
        }
    }

    pub(crate) fn has_passed(&self) -> bool {
        self.passed.load(Ordering::Acquire)
    }

    pub(crate) fn read_state(&self) {
        self.read_state.store(true, Ordering::Release);
    }

    /// The answer about to be given stands: its events were written, or
    /// the command sent alone would have had it too.
    pub(crate) fn stands(&self) {
        self.stands.store(true, Ordering::Release);
    }

    /// The chain this command's events are linked on.
    pub(crate) fn chain(&self) -> AppendChain {
        self.pipeline.segment().chain.clone()
    }

    /// The stream as the queued links leave it, or as read this segment.
    pub(crate) fn overlay(&self, stream_id: &str) -> Option<Cached> {
        self.pipeline.segment().overlay.get(stream_id).cloned()
    }

    /// A stream read fresh: later commands of this segment read it so.
    pub(crate) fn set_overlay(&self, stream_id: &str, cached: Cached) {
        self.pipeline
            .segment()
            .overlay
            .insert(stream_id.to_owned(), cached);
    }

    /// This command's events are queued on the chain: later commands read
    /// `stream_id` as they leave it, seal under the key they store (if
    /// new), and find their first event id here.
    pub(crate) fn queued(
        &self,
        stream_id: &str,
        left: Cached,
        new_key: Option<&SealingKey>,
        first_event_id: uuid::Uuid,
    ) {
        let mut segment = self.pipeline.segment();
        segment.overlay.insert(stream_id.to_owned(), left);
        if let Some(key) = new_key.filter(|key| key.pending.is_some()) {
            segment.keys.insert(stream_id.to_owned(), key.follower());
        }
        segment.queued.insert(first_event_id);
    }

    /// The key a queued link made for `subject`, if any.
    pub(crate) fn sealing_key(&self, subject: &str) -> Option<SealingKey> {
        self.pipeline
            .segment()
            .keys
            .get(subject)
            .map(SealingKey::follower)
    }

    /// Whether a link of this segment starts with `first_event_id`.
    pub(crate) fn is_queued(&self, first_event_id: uuid::Uuid) -> bool {
        self.pipeline.segment().queued.contains(&first_event_id)
    }

    /// Until every command before this one has its final answer: for a
    /// command that reads what they wrote beyond the streams it loads.
    pub(crate) async fn settle(&self) {
        self.read_state();
        self.pipeline.shared.answered.wait(self.index).await;
        // Its events queued, a later command may hold the turn: the chain
        // is then no longer this one's to start afresh.
        if !self.has_passed() {
            self.pipeline.restart_if_broken();
        }
    }
}

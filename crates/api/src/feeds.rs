//! Live feeds open at once, per token and in all. A feed holds a
//! connection (and a file descriptor) for as long as the client keeps it;
//! without a bound, one token of any role could open feeds until the
//! server runs out of either.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use uuid::Uuid;

use crate::problem::ApiError;
use crate::tickets::TicketGuard;
use crate::AppState;

#[derive(Debug, Clone, Default)]
pub struct OpenFeeds {
    open: Arc<Mutex<Counts>>,
}

#[derive(Debug, Default)]
struct Counts {
    by_token: HashMap<Uuid, usize>,
    total: usize,
}

impl OpenFeeds {
    /// Feeds one token may hold open: a duty room's screens and tabs,
    /// with room for the ones a reload left behind (a feed learns its
    /// client has gone only at its next heartbeat).
    pub const PER_TOKEN: usize = 16;
    /// Feeds open at most, all tokens together.
    pub const MOST: usize = 2_000;
    /// How soon a refused client should try again.
    const RETRY_AFTER: u64 = 30;

    /// A place for one more feed of `token_id`, held until the slot drops.
    pub fn open(&self, token_id: Uuid) -> Result<FeedSlot, ApiError> {
        let mut counts = self.open.lock().map_err(|_| ApiError::Internal)?;
        let mine = counts.by_token.get(&token_id).copied().unwrap_or(0);
        if mine >= Self::PER_TOKEN || counts.total >= Self::MOST {
            return Err(ApiError::TooManyFeeds {
                retry_after: Self::RETRY_AFTER,
            });
        }
        counts.by_token.insert(token_id, mine + 1);
        counts.total += 1;
        Ok(FeedSlot {
            feeds: self.clone(),
            token_id,
        })
    }

    /// Feeds open now, all tokens together.
    #[cfg(test)]
    fn total(&self) -> usize {
        self.open.lock().map_or(0, |c| c.total)
    }
}

/// One open feed's place; freed when the feed ends (the stream dropped).
#[derive(Debug)]
pub struct FeedSlot {
    feeds: OpenFeeds,
    token_id: Uuid,
}

impl Drop for FeedSlot {
    fn drop(&mut self) {
        let Ok(mut counts) = self.feeds.open.lock() else {
            return;
        };
        counts.total = counts.total.saturating_sub(1);
        if let Some(mine) = counts.by_token.get_mut(&self.token_id) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                counts.by_token.remove(&self.token_id);
            }
        }
    }
}

/// How soon a browser reconnects to an ended feed (`retry:`), in
/// milliseconds.
pub const RECONNECT_MS: u64 = 2_000;

/// The seconds between heartbeat comments a client asked for (1-60), or
/// the feed's default.
pub fn heartbeat(asked: Option<u64>, default: u64) -> Result<std::time::Duration, ApiError> {
    match asked {
        None => Ok(std::time::Duration::from_secs(default)),
        Some(s) if (1..=60).contains(&s) => Ok(std::time::Duration::from_secs(s)),
        Some(_) => Err(ApiError::field("heartbeat_seconds", "must be 1 to 60")),
    }
}

/// What keeps one live feed open: its place among the token's feeds, the
/// ticket that opened it (held while connected), and the conditions it
/// lives under. Both feeds hold one.
#[derive(Debug)]
pub struct FeedLease {
    _slot: FeedSlot,
    _ticket: Option<TicketGuard>,
    projector: fangkong_projections::Projector,
    /// The token that opened the feed: its revocation ends it.
    token_id: Uuid,
    /// The feed's lifetime ends here; the client resumes.
    ends_at: tokio::time::Instant,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl FeedLease {
    /// How often an open feed looks at its token: a revocation ends it
    /// within this.
    pub const REVOCATION_CHECK: std::time::Duration = std::time::Duration::from_millis(500);

    /// Takes a place for a feed of `token_id` about to stream; from here on
    /// its ticket, if any, counts as used.
    pub fn take(
        state: &AppState,
        token_id: Uuid,
        ticket: Option<TicketGuard>,
    ) -> Result<FeedLease, ApiError> {
        let slot = state.feeds.open(token_id)?;
        let mut ticket = ticket;
        if let Some(ticket) = ticket.as_mut() {
            ticket.streaming();
        }
        Ok(FeedLease {
            _slot: slot,
            _ticket: ticket,
            projector: state.projector.clone(),
            token_id,
            ends_at: tokio::time::Instant::now() + state.settings.live_max_lifetime,
            shutdown: state.shutdown.subscribe(),
        })
    }

    /// Whether what authorised the feed still holds: the token live (as
    /// the log says), the server running, the lifetime not over.
    pub fn holds(&self) -> bool {
        let live = self.projector.read(|m| {
            m.tokens
                .get(self.token_id)
                .is_some_and(|t| t.revoked_at.is_none())
        });
        live && !*self.shutdown.borrow() && tokio::time::Instant::now() < self.ends_at
    }

    /// Resolves when the server begins to shut down.
    pub async fn stopping(&mut self) {
        let _ = self.shutdown.changed().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_holds_at_most_its_share_and_a_closed_feed_frees_its_place() {
        let feeds = OpenFeeds::default();
        let greedy = Uuid::now_v7();
        let mut held: Vec<FeedSlot> = (0..OpenFeeds::PER_TOKEN)
            .map(|_| feeds.open(greedy).expect("a place"))
            .collect();
        assert!(matches!(
            feeds.open(greedy),
            Err(ApiError::TooManyFeeds { .. })
        ));
        // Another token is not held back by it.
        let other = feeds.open(Uuid::now_v7()).expect("a place");
        held.pop();
        let _again = feeds.open(greedy).expect("a freed place");
        drop(other);
        assert_eq!(feeds.total(), OpenFeeds::PER_TOKEN);
    }
}

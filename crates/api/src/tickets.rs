//! Tickets that open a live feed from a browser. `EventSource` cannot
//! send `Authorization`, and a bearer token in a URL outlives the request
//! in histories and proxy logs. A ticket stands for the token that asked
//! for it: it must open its feed within a minute, holds one connection at
//! a time, and reopens that feed only as a browser resumes it (with
//! `Last-Event-ID`, which `EventSource` sends on its own) within twelve
//! hours of issue; after that the page asks for a new one. Only its
//! SHA-256 is kept, in this process: a client opens the feed on the
//! instance that issued the ticket. A ticket opens the one feed it was
//! issued for: one for the figures' feed, which every role may have, never
//! opens the event log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::problem::ApiError;

/// Where a ticket stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Issued, its feed not opened yet.
    Pending,
    /// Its feed was opened; `connected` while a connection holds it.
    Opened { connected: bool },
}

/// The feeds a ticket can open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// `/v1/events/live`: the log itself.
    Events,
    /// `/v1/dashboard/live`: the position the figures reflect.
    Figures,
}

impl Feed {
    /// Where a page asks for another ticket for this feed.
    pub fn tickets_route(self) -> &'static str {
        match self {
            Feed::Events => "/v1/events/live/tickets",
            Feed::Figures => "/v1/dashboard/live/tickets",
        }
    }

    fn route(self) -> &'static str {
        match self {
            Feed::Events => "/v1/events/live",
            Feed::Figures => "/v1/dashboard/live",
        }
    }
}

/// A ticket that opens one live feed.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct LiveTicket {
    /// Pass as `?ticket=`.
    pub ticket: String,
    /// The feed it opens, ticket included: `new EventSource(url)`.
    pub url: String,
    /// It must open its feed before then.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// Issues `token_id` a ticket for `feed`: the `201` both ticket routes answer.
pub fn issued(
    tickets: &LiveTickets,
    token_id: Uuid,
    feed: Feed,
) -> Result<actix_web::HttpResponse, ApiError> {
    use actix_web::http::header;
    let ticket = tickets.issue(token_id, feed)?;
    let url = format!("{}?ticket={ticket}", feed.route());
    let lifetime = chrono::Duration::from_std(LiveTickets::LIFETIME).unwrap_or_default();
    Ok(actix_web::HttpResponse::Created()
        .insert_header((header::LOCATION, url.clone()))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(LiveTicket {
            ticket,
            url,
            expires_at: chrono::Utc::now() + lifetime,
        }))
}

#[derive(Debug)]
struct Ticket {
    token_id: Uuid,
    feed: Feed,
    issued: Instant,
    stage: Stage,
}

type Issued = HashMap<[u8; 32], Ticket>;

#[derive(Debug, Clone, Default)]
pub struct LiveTickets {
    issued: Arc<Mutex<Issued>>,
}

/// What a presented ticket gets.
#[derive(Debug)]
pub enum Claim {
    /// The connection may open; the guard holds the ticket for it.
    Granted { token_id: Uuid, guard: TicketGuard },
    /// A ticket this server issued, refused now (and why): not a guess.
    Refused(&'static str),
    /// No ticket of this server's: counts as a failed authentication.
    Unknown,
}

impl LiveTickets {
    /// How long a new ticket may wait to open its feed.
    pub const LIFETIME: Duration = Duration::from_secs(60);
    /// How long after issue a ticket's feed may be resumed.
    pub const RESUMABLE: Duration = Duration::from_secs(12 * 3600);
    /// Tickets kept at most, and per token (pending and resumable alike).
    /// A token at its share pushes out only its own oldest ticket not
    /// connected; with the whole table full the caller is refused, never
    /// another caller's ticket evicted.
    const MOST: usize = 10_000;
    const PER_TOKEN: usize = 16;

    /// A new ticket for `token_id` that opens `feed`.
    pub fn issue(&self, token_id: Uuid, feed: Feed) -> Result<String, ApiError> {
        let mut secret = [0u8; 32];
        getrandom::getrandom(&mut secret).map_err(|_| ApiError::Internal)?;
        let ticket = format!("fkt_{}", hex::encode(secret));
        let mut issued = self.issued.lock().map_err(|_| ApiError::Internal)?;
        let now = Instant::now();
        issued.retain(|_, t| match t.stage {
            Stage::Pending => now.duration_since(t.issued) < Self::LIFETIME,
            Stage::Opened { connected } => {
                connected || now.duration_since(t.issued) < Self::RESUMABLE
            }
        });
        let connected = Stage::Opened { connected: true };
        if issued.values().filter(|t| t.token_id == token_id).count() >= Self::PER_TOKEN
            && !evict_oldest(&mut issued, |t| {
                t.token_id == token_id && t.stage != connected
            })
        {
            return Err(ApiError::TooManyFeeds {
                retry_after: Self::LIFETIME.as_secs(),
            });
        }
        if issued.len() >= Self::MOST {
            return Err(ApiError::TooManyFeeds {
                retry_after: Self::LIFETIME.as_secs(),
            });
        }
        issued.insert(
            Sha256::digest(ticket.as_bytes()).into(),
            Ticket {
                token_id,
                feed,
                issued: now,
                stage: Stage::Pending,
            },
        );
        Ok(ticket)
    }

    /// Claims `ticket` for one connection to `feed`; `resuming` when the
    /// request carries `Last-Event-ID` (a browser reconnecting on its own).
    pub fn claim(&self, ticket: &str, feed: Feed, resuming: bool) -> Claim {
        let key: [u8; 32] = Sha256::digest(ticket.as_bytes()).into();
        let Ok(mut issued) = self.issued.lock() else {
            return Claim::Refused("tickets are unavailable: use the bearer token");
        };
        let Some(entry) = issued.get_mut(&key) else {
            return Claim::Unknown;
        };
        let prior = entry.stage;
        let age = entry.issued.elapsed();
        let refusal = match prior {
            _ if entry.feed != feed => Some("the ticket opens another feed"),
            Stage::Pending if age >= Self::LIFETIME => {
                Some("the ticket expired unused: ask for another")
            }
            Stage::Pending => None,
            Stage::Opened { connected: true } => {
                Some("the feed this ticket opened is still connected")
            }
            Stage::Opened { .. } if !resuming || age >= Self::RESUMABLE => Some(
                "the ticket was used: it reopens its feed only as a browser resumes it \
                 (Last-Event-ID) within 12 hours; ask for another and open url&after=<last id>",
            ),
            Stage::Opened { .. } => None,
        };
        if let Some(refusal) = refusal {
            return Claim::Refused(refusal);
        }
        entry.stage = Stage::Opened { connected: true };
        Claim::Granted {
            token_id: entry.token_id,
            guard: TicketGuard {
                tickets: self.clone(),
                key,
                prior,
                streamed: false,
            },
        }
    }
}

/// Removes the oldest eligible ticket; false when none is.
fn evict_oldest(issued: &mut Issued, eligible: impl Fn(&Ticket) -> bool) -> bool {
    let oldest = issued
        .iter()
        .filter(|(_, t)| eligible(t))
        .min_by_key(|(_, t)| t.issued)
        .map(|(k, _)| *k);
    oldest.is_some_and(|oldest| issued.remove(&oldest).is_some())
}

/// Holds a ticket for one connection. Dropped once the feed streamed, the
/// ticket may resume it; dropped before (the request refused for another
/// reason), the ticket is as it was.
#[derive(Debug)]
pub struct TicketGuard {
    tickets: LiveTickets,
    key: [u8; 32],
    prior: Stage,
    streamed: bool,
}

impl TicketGuard {
    /// The feed is answered: from now on the ticket was used.
    pub fn streaming(&mut self) {
        self.streamed = true;
    }
}

impl Drop for TicketGuard {
    fn drop(&mut self) {
        let Ok(mut issued) = self.tickets.issued.lock() else {
            return;
        };
        if let Some(entry) = issued.get_mut(&self.key) {
            entry.stage = if self.streamed {
                Stage::Opened { connected: false }
            } else {
                self.prior
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(claim: Claim) -> TicketGuard {
        match claim {
            Claim::Granted { guard, .. } => guard,
            other => panic!("refused: {other:?}"),
        }
    }

    #[test]
    fn a_ticket_opens_one_connection_and_resumes_only_with_last_event_id() {
        let tickets = LiveTickets::default();
        let token = Uuid::now_v7();
        let ticket = tickets.issue(token, Feed::Events).expect("issued");
        let mut first = granted(tickets.claim(&ticket, Feed::Events, false));
        first.streaming();
        // While connected, no second connection.
        assert!(matches!(
            tickets.claim(&ticket, Feed::Events, true),
            Claim::Refused(_)
        ));
        drop(first);
        // Reopened as a browser resumes: with Last-Event-ID only.
        assert!(matches!(
            tickets.claim(&ticket, Feed::Events, false),
            Claim::Refused(_)
        ));
        let resumed = tickets.claim(&ticket, Feed::Events, true);
        assert!(matches!(resumed, Claim::Granted { token_id, .. } if token_id == token));
        assert!(matches!(
            tickets.claim("fkt_not-issued", Feed::Events, true),
            Claim::Unknown
        ));
    }

    #[test]
    fn a_ticket_opens_only_the_feed_it_was_issued_for() {
        let tickets = LiveTickets::default();
        let ticket = tickets
            .issue(Uuid::now_v7(), Feed::Figures)
            .expect("issued");
        assert!(matches!(
            tickets.claim(&ticket, Feed::Events, false),
            Claim::Refused(_)
        ));
        granted(tickets.claim(&ticket, Feed::Figures, false));
    }

    #[test]
    fn a_connection_refused_before_streaming_leaves_the_ticket_unused() {
        let tickets = LiveTickets::default();
        let ticket = tickets.issue(Uuid::now_v7(), Feed::Events).expect("issued");
        drop(granted(tickets.claim(&ticket, Feed::Events, false)));
        // Still unused: the first opening needs no Last-Event-ID.
        granted(tickets.claim(&ticket, Feed::Events, false));
    }

    #[test]
    fn one_token_asking_for_many_tickets_pushes_out_only_its_own() {
        let tickets = LiveTickets::default();
        let other = tickets.issue(Uuid::now_v7(), Feed::Events).expect("issued");
        let greedy = Uuid::now_v7();
        let first = tickets.issue(greedy, Feed::Events).expect("issued");
        for _ in 0..LiveTickets::PER_TOKEN {
            tickets.issue(greedy, Feed::Events).expect("issued");
        }
        assert!(matches!(
            tickets.claim(&first, Feed::Events, false),
            Claim::Unknown
        ));
        granted(tickets.claim(&other, Feed::Events, false));
    }

    #[test]
    fn used_tickets_count_against_their_token_and_connected_ones_are_never_pushed_out() {
        let tickets = LiveTickets::default();
        let other = tickets
            .issue(Uuid::now_v7(), Feed::Figures)
            .expect("issued");
        let greedy = Uuid::now_v7();
        // Opened and closed: resumable for hours, so still its token's.
        let mut used = vec![];
        for _ in 0..LiveTickets::PER_TOKEN {
            let ticket = tickets.issue(greedy, Feed::Figures).expect("issued");
            let mut guard = granted(tickets.claim(&ticket, Feed::Figures, false));
            guard.streaming();
            used.push(ticket);
        }
        // One more pushes out its own oldest, not the other token's.
        tickets.issue(greedy, Feed::Figures).expect("issued");
        assert!(matches!(
            tickets.claim(&used[0], Feed::Figures, true),
            Claim::Unknown
        ));
        granted(tickets.claim(&other, Feed::Figures, false));
        // Every one of its tickets holding a connection: refused, not evicted.
        let busy = Uuid::now_v7();
        let mut open = vec![];
        for _ in 0..LiveTickets::PER_TOKEN {
            let ticket = tickets.issue(busy, Feed::Figures).expect("issued");
            open.push(granted(tickets.claim(&ticket, Feed::Figures, false)));
        }
        assert!(matches!(
            tickets.issue(busy, Feed::Figures),
            Err(ApiError::TooManyFeeds { .. })
        ));
    }
}

//! Personal data on its way into the log, and out of it for good: every
//! event's personal fields are sealed under the key of its data subject
//! (the entity's stream) before the event is hashed, and erasing a person
//! records why, then destroys that key.

use fangkong_domain::personal::{sealed_paths, sealing_context, visit_sealed};
use fangkong_domain::returnee::{ErasureBasis, ReturneeCommand};
use fangkong_domain::Text;
use fangkong_store::RecordedEvent;
use fangkong_vault::{SealingKey, Vault, VaultError};
use serde_json::Value;

use crate::{AppError, Application, Envelope, Outcome, Target};

/// How often, at most, [`follow_erasures`] reads the log for new erasures.
const ERASURES_EVERY: std::time::Duration = std::time::Duration::from_millis(100);
/// How long a failed read of the log waits before it is tried again.
const RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);
/// Erasure events read at a time.
const ERASURES_PAGE: usize = 500;

/// Follows the log for erasures recorded by other instances on the same
/// store, and forgets each erased person's key here as soon as its
/// `PersonalDataErased` is in the log, instead of when the store's key
/// rows are next read ([`Vault::refresh`], every few seconds): the window in
/// which another instance still opens an erased person's data shrinks to
/// this follower's lag (about 100 ms on PostgreSQL, whose appends are
/// announced; up to about 300 ms on SQLite, whose head is polled). Ends
/// when `stopping` turns or the store closes.
pub async fn follow_erasures(
    store: fangkong_store::EventStore,
    vault: Vault,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    // Only returnees are erased; their stream is the data subject.
    let filter = fangkong_store::LogFilter {
        category: Some("returnee".to_owned()),
        event_types: vec!["PersonalDataErased".to_owned()],
        ..Default::default()
    };
    let mut heads = store.subscribe();
    // Erasures before now are the key refresh's to find (and a key that
    // survived one, the retention job's).
    let mut after = *heads.borrow_and_update();
    let mut retry = false;
    loop {
        // A failed read is tried again on the next turn, not only once
        // something else is appended.
        if !std::mem::take(&mut retry) {
            tokio::select! {
                changed = heads.changed() => if changed.is_err() { return },
                _ = stopping.changed() => return,
            }
        }
        // Every event up to the head announced is committed: reading up to
        // it, then starting the next read past it, skips none.
        let head = *heads.borrow_and_update();
        loop {
            match store.read_all(after, ERASURES_PAGE, &filter).await {
                Ok(page) => {
                    for event in &page {
                        vault.erased_elsewhere(&event.stream_id);
                    }
                    match page.last() {
                        Some(last) if page.len() == ERASURES_PAGE => after = last.position,
                        last => {
                            after = head.max(last.map_or(0, |e| e.position)).max(after);
                            break;
                        }
                    }
                }
                Err(error) if error.is_closed() => return,
                Err(error) => {
                    tracing::warn!(%error, "erasures of other instances not followed; retrying");
                    retry = true;
                    break;
                }
            }
        }
        let pause = if retry { RETRY_AFTER } else { ERASURES_EVERY };
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stopping.changed() => return,
        }
    }
}

/// Whether a stored value at a sealed path is sealed (or was erased).
fn is_sealed(value: &Value) -> bool {
    value.get("sealed").is_some_and(Value::is_string)
        || value.get("erased") == Some(&Value::Bool(true))
}

/// Seals every personal field of `payload` in place for the subject
/// `stream_id`, under `key` (taken from the vault on the first field that
/// needs one: the subject's key, or a fresh one to be stored with the
/// append, see [`fangkong_vault::SealingKey`]).
pub fn seal_payload(
    vault: &Vault,
    key: &mut Option<SealingKey>,
    stream_id: &str,
    event_type: &str,
    payload: &mut Value,
) -> Result<(), AppError> {
    if sealed_paths(event_type).is_empty() {
        return Ok(());
    }
    let mut failed = None;
    visit_sealed(event_type, payload, |path, value| {
        if failed.is_some() || is_sealed(value) || value.is_null() {
            return;
        }
        let sealing = match key {
            Some(sealing) => sealing,
            None => match vault.sealing_key(stream_id) {
                Ok(sealing) => key.insert(sealing),
                Err(e) => {
                    failed = Some(e);
                    return;
                }
            },
        };
        let context = sealing_context(stream_id, event_type, path);
        match vault.seal_with(sealing, &context, value) {
            Ok(text) => *value = serde_json::json!({ "sealed": text }),
            Err(e) => failed = Some(e),
        }
    });
    match failed {
        Some(e) => Err(vault_error(e, stream_id)),
        None => Ok(()),
    }
}

pub(crate) fn vault_error(error: VaultError, subject: &str) -> AppError {
    match error {
        VaultError::Erased { .. } => AppError::PersonalDataErased {
            subject: subject.to_owned(),
        },
        VaultError::Store(e) => AppError::Store(e),
        other => AppError::Vault(other.to_string()),
    }
}

/// The first stored event of `events` holding personal data in the clear
/// (written before this store sealed personal data), if any.
pub fn first_clear(events: &[RecordedEvent]) -> Option<u64> {
    events.iter().find_map(|e| {
        let mut payload = e.payload.clone();
        let mut clear = false;
        visit_sealed(&e.event_type, &mut payload, |_, value| {
            clear |= !is_sealed(value) && !value.is_null();
        });
        clear.then_some(e.position)
    })
}

/// What a retention run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionRun {
    /// Returnees whose personal data was due and is now erased.
    pub erased: u64,
    /// Due, but recorded in the clear before sealing: left as they are.
    pub in_clear: u64,
    /// Returnees looked at.
    pub considered: u64,
}

impl Application {
    /// Erases every returnee whose personal data is due: `retention_days`
    /// after their quarantine's end was recorded, or after their
    /// registration was recorded when no quarantine was ever started;
    /// never during a quarantine. The days run from when the service
    /// recorded these (its own clock), not from dates a client sends, so a
    /// backdated end cannot make anyone due early. Each due person gets
    /// `PersonalDataErased` (reason `retention`), and keys are destroyed
    /// after each group of events; a person already recorded as erased
    /// whose key survived (a crash between the two) has it destroyed too.
    pub async fn erase_due(&self, retention_days: u32) -> Result<RetentionRun, AppError> {
        use fangkong_domain::returnee::{Returnee, ReturneeEvent};
        use fangkong_domain::Aggregate;
        struct Tracked {
            state: Returnee,
            registered_at: chrono::DateTime<chrono::Utc>,
            ended_at: Option<chrono::DateTime<chrono::Utc>>,
        }
        let now = chrono::Utc::now();
        let retention = chrono::Duration::days(i64::from(retention_days));
        let mut run = RetentionRun::default();
        let filter = fangkong_store::LogFilter {
            category: Some("returnee".into()),
            ..Default::default()
        };
        let mut people: std::collections::HashMap<String, Tracked> = Default::default();
        let mut after = 0;
        loop {
            let page = self.store().read_all(after, 5_000, &filter).await?;
            let Some(last) = page.last() else { break };
            after = last.position;
            for recorded in page {
                let event = crate::decode::<Returnee>(&recorded)?;
                let tracked = people.entry(recorded.stream_id).or_insert_with(|| Tracked {
                    state: Returnee::default(),
                    registered_at: recorded.recorded_at,
                    ended_at: None,
                });
                match &event {
                    ReturneeEvent::ReturneeRegistered(_) => {
                        tracked.registered_at = recorded.recorded_at
                    }
                    ReturneeEvent::QuarantineEnded(_) => {
                        tracked.ended_at = Some(recorded.recorded_at)
                    }
                    _ => {}
                }
                tracked.state = std::mem::take(&mut tracked.state).apply(&event);
            }
        }
        run.considered = people.len() as u64;
        let reason =
            Text::parse("retention").map_err(|e| AppError::invalid("reason", e.message))?;
        let mut due = Vec::new();
        let mut leftover = Vec::new();
        for (stream_id, person) in people {
            let Some(registration) = person.state.registration.as_ref() else {
                continue;
            };
            if person.state.personal_data_erased() {
                // Whether the key survived (a failure between recording the
                // erasure and destroying the key) is the store's to say:
                // this instance may already have forgotten the key on
                // seeing the erasure in the log. Tombstones are left as
                // they are.
                leftover.push(stream_id);
                continue;
            }
            let since = person.ended_at.unwrap_or(person.registered_at);
            if person.state.quarantine.is_none() && since + retention <= now {
                due.push((stream_id, registration.returnee_id.as_uuid()));
            }
        }
        if !leftover.is_empty() {
            self.vault()
                .erase(&leftover, "retention")
                .await
                .map_err(|e| vault_error(e, "a person erased before"))?;
        }
        for group in due.chunks(500) {
            let mut erased = Vec::with_capacity(group.len());
            for (stream_id, returnee_id) in group {
                let events = self.store().read_stream(stream_id, 1, 10_000).await?;
                if first_clear(&events).is_some() {
                    run.in_clear += 1;
                    continue;
                }
                self.execute(
                    &Envelope::system(),
                    &Target::new(stream_id.clone(), *returnee_id, "returnee.erase"),
                    ReturneeCommand::ErasePersonalData {
                        basis: ErasureBasis::Retention,
                        reason: reason.clone(),
                    },
                )
                .await?;
                erased.push(stream_id.clone());
            }
            run.erased += erased.len() as u64;
            self.vault()
                .erase(&erased, "retention")
                .await
                .map_err(|e| vault_error(e, "the due people"))?;
        }
        Ok(run)
    }

    /// Erases a returnee's personal data: refused if any of it was recorded
    /// in the clear (erasing it would mean rewriting the chain); otherwise
    /// records `PersonalDataErased` and then destroys the key. Sent again
    /// (or after a crash between the two) it destroys a key still there.
    pub async fn erase_personal_data(
        &self,
        envelope: &Envelope,
        target: &Target,
        basis: ErasureBasis,
        reason: Text,
    ) -> Result<Outcome, AppError> {
        let mut events = Vec::new();
        let mut from = 1;
        loop {
            let page = self
                .store()
                .read_stream(&target.stream_id, from, 1_000)
                .await?;
            let full = page.len() == 1_000;
            from += page.len() as u64;
            events.extend(page);
            if !full {
                break;
            }
        }
        if let Some(position) = first_clear(&events) {
            return Err(AppError::PersonalDataInClear { position });
        }
        let outcome = self
            .execute(
                envelope,
                target,
                ReturneeCommand::ErasePersonalData {
                    basis,
                    reason: reason.clone(),
                },
            )
            .await?;
        let basis = match basis {
            ErasureBasis::Request => "request",
            ErasureBasis::Retention => "retention",
        };
        self.vault()
            .erase(std::slice::from_ref(&target.stream_id), basis)
            .await
            .map_err(|e| vault_error(e, &target.stream_id))?;
        Ok(outcome)
    }
}

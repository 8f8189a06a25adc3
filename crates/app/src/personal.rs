//! Personal data on its way into the log, and out of it for good: every
//! event's personal fields are sealed under the key of its data subject
//! (the entity's stream) before the event is hashed, and erasing a person
//! records why, then destroys that key.

use fangkong_domain::activity::StaffCommand;
use fangkong_domain::banquet::BanquetCommand;
use fangkong_domain::personal::{sealed_paths, sealing_context, visit_sealed};
use fangkong_domain::returnee::{ErasureBasis, ReturneeCommand};
use fangkong_domain::{Aggregate, Text};
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
/// store, and forgets each erased subject's key here as soon as its
/// erasure ([`ERASURE_EVENTS`]) is in the log, instead of when the store's key
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
    // Each erasure event is in its data subject's own stream.
    let filter = fangkong_store::LogFilter {
        event_types: ERASURE_EVENTS
            .iter()
            .map(|(t, _)| (*t).to_owned())
            .collect(),
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
                    // Only in the stream of a subject its type erases: an
                    // event of the same name elsewhere forgets no key.
                    for event in &page {
                        let category = fangkong_store::category_of(&event.stream_id);
                        if ERASURE_EVENTS.contains(&(event.event_type.as_str(), category)) {
                            vault.erased_elsewhere(&event.stream_id);
                        }
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

/// The events recording an erasure, each with the category of the data
/// subjects' streams it is recorded in.
pub const ERASURE_EVENTS: &[(&str, &str)] = &[
    ("PersonalDataErased", "returnee"),
    ("BanquetHostDataErased", "banquet"),
    ("StaffNamesErased", "staff"),
];

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
    /// Data subjects (returnees, banquet hosts, days of staff checks) whose personal data was
    /// due and is now erased.
    pub erased: u64,
    /// Due, but recorded in the clear before sealing: left as they are.
    pub in_clear: u64,
    /// Data subjects looked at.
    pub considered: u64,
    /// Left out: a stream holding an event the job cannot read (each is
    /// logged with the event's position). Never erased until it can be.
    pub unreadable: u64,
}

/// Whose personal data an erasure is of: each kind records it with an
/// event of its own stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataSubject {
    /// A returnee (`PersonalDataErased`).
    Returnee,
    /// A banquet's host family (`BanquetHostDataErased`).
    BanquetHost,
    /// The names in one day's staff checks (`StaffNamesErased`).
    StaffDay,
}

/// One subject found due by a retention run.
struct Due {
    stream_id: String,
    entity: uuid::Uuid,
    subject: DataSubject,
}

/// Every stream of `A`'s category, oldest event first, folded to its state
/// beside what `note` keeps of each event and its recording. A stream
/// holding an event this version cannot decode (one a newer version wrote,
/// say) is left out, with a warning, rather than stopping the erasure of
/// everyone else, and counted in `run`; the others are counted as
/// considered.
async fn streams_of<A: Aggregate, T: Default>(
    store: &fangkong_store::EventStore,
    run: &mut RetentionRun,
    mut note: impl FnMut(&mut T, &A::Event, &RecordedEvent),
) -> Result<std::collections::HashMap<String, (A, T)>, AppError> {
    let mut streams: std::collections::HashMap<String, (A, T)> = Default::default();
    let mut left_out = std::collections::HashSet::new();
    let filter = fangkong_store::LogFilter {
        category: Some(A::CATEGORY.to_owned()),
        ..Default::default()
    };
    let mut after = 0;
    loop {
        let page = store.read_all(after, 5_000, &filter).await?;
        let Some(last) = page.last() else { break };
        after = last.position;
        for recorded in page {
            if left_out.contains(&recorded.stream_id) {
                continue;
            }
            match crate::decode::<A>(&recorded) {
                Ok(event) => {
                    let (state, noted) = streams.entry(recorded.stream_id.clone()).or_default();
                    note(noted, &event, &recorded);
                    *state = std::mem::take(state).apply(&event);
                }
                Err(error) => {
                    let position = recorded.position;
                    tracing::warn!(%error, position, stream_id = recorded.stream_id, "left out of the retention run: an event it cannot read");
                    streams.remove(&recorded.stream_id);
                    left_out.insert(recorded.stream_id);
                }
            }
        }
    }
    run.unreadable += left_out.len() as u64;
    run.considered += streams.len() as u64;
    Ok(streams)
}

impl Application {
    /// Erases every data subject whose personal data is due, recording
    /// each erasure with reason `retention`:
    /// - a returnee `retention_days` after their quarantine's end was
    ///   recorded, or after their registration was recorded when no
    ///   quarantine was ever started; never during a quarantine;
    /// - a banquet's host family `retention_days` after the banquet's last
    ///   record (its report or its latest outcome), once it is cancelled or
    ///   its planned date has passed; never while it is still ahead;
    /// - the names in a day's staff checks `retention_days` after the
    ///   day's first check was recorded, once the day is over (from the
    ///   first, so checks backdated to the day later cannot put it off).
    ///
    /// The days run from when the service recorded these (its own clock),
    /// not from dates a client sends, so a backdated end cannot make anyone
    /// due early. Keys are destroyed after each group of events; a subject
    /// already recorded as erased whose key survived (a crash between the
    /// two) has it destroyed too.
    pub async fn erase_due(&self, retention_days: u32) -> Result<RetentionRun, AppError> {
        let now = chrono::Utc::now();
        let retention = chrono::Duration::days(i64::from(retention_days));
        let mut run = RetentionRun::default();
        let mut due = Vec::new();
        let mut leftover = Vec::new();
        self.returnees_due(now - retention, &mut run, &mut due, &mut leftover)
            .await?;
        self.banquet_hosts_due(now - retention, &mut run, &mut due, &mut leftover)
            .await?;
        self.staff_days_due(now - retention, &mut run, &mut due, &mut leftover)
            .await?;
        if !leftover.is_empty() {
            // Whether each key survived is the store's to say: this
            // instance may already have forgotten it on seeing the erasure
            // in the log. Tombstones are left as they are.
            self.vault()
                .erase(&leftover, "retention")
                .await
                .map_err(|e| vault_error(e, "a subject erased before"))?;
        }
        let reason =
            Text::parse("retention").map_err(|e| AppError::invalid("reason", e.message))?;
        for group in due.chunks(500) {
            let mut erased = Vec::with_capacity(group.len());
            for item in group {
                let events = self.store().read_stream(&item.stream_id, 1, 10_000).await?;
                if first_clear(&events).is_some() {
                    run.in_clear += 1;
                    continue;
                }
                let target = Target::new(
                    item.stream_id.clone(),
                    item.entity,
                    erase_operation(item.subject),
                );
                self.record_erasure(
                    &Envelope::system(),
                    &target,
                    item.subject,
                    ErasureBasis::Retention,
                    reason.clone(),
                )
                .await?;
                erased.push(item.stream_id.clone());
            }
            run.erased += erased.len() as u64;
            self.vault()
                .erase(&erased, "retention")
                .await
                .map_err(|e| vault_error(e, "the due subjects"))?;
        }
        Ok(run)
    }

    /// Returnees not in quarantine whose quarantine ended, or who were
    /// registered without one, no later than `before`.
    async fn returnees_due(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        run: &mut RetentionRun,
        due: &mut Vec<Due>,
        leftover: &mut Vec<String>,
    ) -> Result<(), AppError> {
        use fangkong_domain::returnee::{Returnee, ReturneeEvent};
        type At = Option<chrono::DateTime<chrono::Utc>>;
        // When the registration, and the end of the last quarantine, were
        // recorded.
        let people =
            streams_of::<Returnee, (At, At)>(
                self.store(),
                run,
                |at, event, recorded| match event {
                    ReturneeEvent::ReturneeRegistered(_) => at.0 = Some(recorded.recorded_at),
                    ReturneeEvent::QuarantineEnded(_) => at.1 = Some(recorded.recorded_at),
                    _ => {}
                },
            )
            .await?;
        for (stream_id, (person, (registered_at, ended_at))) in people {
            let (Some(registration), Some(registered_at)) =
                (person.registration.as_ref(), registered_at)
            else {
                continue;
            };
            if person.personal_data_erased() {
                leftover.push(stream_id);
                continue;
            }
            let since = ended_at.unwrap_or(registered_at);
            if person.quarantine.is_none() && since <= before {
                due.push(Due {
                    stream_id,
                    entity: registration.returnee_id.as_uuid(),
                    subject: DataSubject::Returnee,
                });
            }
        }
        Ok(())
    }

    /// Banquets cancelled or past their planned date whose last record was
    /// recorded no later than `before`.
    async fn banquet_hosts_due(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        run: &mut RetentionRun,
        due: &mut Vec<Due>,
        leftover: &mut Vec<String>,
    ) -> Result<(), AppError> {
        use fangkong_domain::banquet::{Banquet, BanquetStatus};
        // When the banquet's last record was recorded.
        let banquets = streams_of::<Banquet, Option<chrono::DateTime<chrono::Utc>>>(
            self.store(),
            run,
            |last_at, _, recorded| *last_at = Some(recorded.recorded_at),
        )
        .await?;
        let today = self.township().local_date(chrono::Utc::now());
        for (stream_id, (banquet, last_at)) in banquets {
            let (Some(report), Some(date), Some(last_at)) =
                (banquet.report.as_ref(), banquet.planned_date, last_at)
            else {
                continue;
            };
            if banquet.host_data_erased() {
                leftover.push(stream_id);
                continue;
            }
            let over = date < today || banquet.status == BanquetStatus::Cancelled;
            if over && last_at <= before {
                due.push(Due {
                    stream_id,
                    entity: report.banquet_id.as_uuid(),
                    subject: DataSubject::BanquetHost,
                });
            }
        }
        Ok(())
    }

    /// Days of staff checks that are over and whose first check was
    /// recorded no later than `before`.
    async fn staff_days_due(
        &self,
        before: chrono::DateTime<chrono::Utc>,
        run: &mut RetentionRun,
        due: &mut Vec<Due>,
        leftover: &mut Vec<String>,
    ) -> Result<(), AppError> {
        use fangkong_domain::activity::{StaffChecks, StaffEvent};
        type Noted = (
            Option<fangkong_domain::LocalDate>,
            Option<chrono::DateTime<chrono::Utc>>,
        );
        // The day's date, and when its first check was recorded.
        let days = streams_of::<StaffChecks, Noted>(self.store(), run, |noted, event, recorded| {
            if let StaffEvent::StaffHealthCheckRecorded(e) = event {
                noted.0 = Some(e.date);
            }
            noted.1.get_or_insert(recorded.recorded_at);
        })
        .await?;
        let today = self.township().local_date(chrono::Utc::now());
        for (stream_id, (day, (date, first_at))) in days {
            let (Some(date), Some(first_at)) = (date, first_at) else {
                continue;
            };
            if day.names_erased {
                leftover.push(stream_id);
                continue;
            }
            if date < today && first_at <= before {
                due.push(Due {
                    stream_id,
                    entity: uuid::Uuid::nil(),
                    subject: DataSubject::StaffDay,
                });
            }
        }
        Ok(())
    }

    /// Erases a returnee's personal data: see [`Application::erase_subject`].
    pub async fn erase_personal_data(
        &self,
        envelope: &Envelope,
        target: &Target,
        basis: ErasureBasis,
        reason: Text,
    ) -> Result<Outcome, AppError> {
        self.erase_subject(envelope, target, DataSubject::Returnee, basis, reason)
            .await
    }

    /// Erases a data subject's personal data: refused if any of it was
    /// recorded in the clear (erasing it would mean rewriting the chain);
    /// otherwise records the erasure in the subject's stream and then
    /// destroys the key. Sent again (or after a crash between the two) it
    /// destroys a key still there.
    pub async fn erase_subject(
        &self,
        envelope: &Envelope,
        target: &Target,
        subject: DataSubject,
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
            .record_erasure(envelope, target, subject, basis, reason)
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

    async fn record_erasure(
        &self,
        envelope: &Envelope,
        target: &Target,
        subject: DataSubject,
        basis: ErasureBasis,
        reason: Text,
    ) -> Result<Outcome, AppError> {
        match subject {
            DataSubject::Returnee => {
                self.execute(
                    envelope,
                    target,
                    ReturneeCommand::ErasePersonalData { basis, reason },
                )
                .await
            }
            DataSubject::BanquetHost => {
                self.execute(
                    envelope,
                    target,
                    BanquetCommand::EraseHostData { basis, reason },
                )
                .await
            }
            DataSubject::StaffDay => {
                self.execute(envelope, target, StaffCommand::EraseNames { basis, reason })
                    .await
            }
        }
    }
}

/// The operation an erasure of `subject` is recorded (and authorised) as.
pub fn erase_operation(subject: DataSubject) -> &'static str {
    match subject {
        DataSubject::Returnee => "returnee.erase",
        DataSubject::BanquetHost => "banquet.erase",
        DataSubject::StaffDay => "staff.erase",
    }
}

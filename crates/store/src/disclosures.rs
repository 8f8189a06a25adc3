//! The record of who was shown personal data, beside the log: rows
//! chained by hash like the events, written in groups by one writer at a
//! time (a lock on the table), read in pages, and verified end to end.

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use sqlx::Row;
use uuid::Uuid;

use crate::{Backend, EventStore, StoreError};

/// One answer that showed personal data unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDisclosure {
    pub at: DateTime<Utc>,
    pub token_id: Uuid,
    pub role: String,
    /// The route as the router matched it (`GET /v1/returnees/{returnee_id}`).
    pub route: String,
    /// The data subjects shown (entity stream ids), sorted.
    pub subjects: Vec<String>,
}

/// A recorded disclosure with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disclosure {
    pub seq: u64,
    pub note: NewDisclosure,
    pub hash: [u8; 32],
}

/// What verification of the record found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisclosureReport {
    /// Rows checked.
    pub checked: u64,
    /// The first row whose hash or place does not match, if any.
    pub broken_at: Option<u64>,
}

/// The hash of row `seq` of the record: SHA-256 over the previous row's
/// hash (zeros before the first) and this row's fields. Public so an
/// auditor can recompute the chain from the rows the service answers.
pub fn disclosure_link(previous: &[u8; 32], seq: u64, note: &NewDisclosure) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"fangkong personal data access v1\0");
    h.update(previous);
    h.update(seq.to_be_bytes());
    h.update(note.at.timestamp_micros().to_be_bytes());
    h.update(note.token_id.as_bytes());
    for part in [&note.role, &note.route] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.update((note.subjects.len() as u64).to_be_bytes());
    for subject in &note.subjects {
        h.update((subject.len() as u64).to_be_bytes());
        h.update(subject.as_bytes());
    }
    h.finalize().into()
}

struct Row_ {
    seq: i64,
    at_us: i64,
    token_id: String,
    role: String,
    route: String,
    subjects: String,
    hash: Vec<u8>,
}

impl Row_ {
    fn from_row<R: Row>(row: &R) -> Result<Row_, sqlx::Error>
    where
        for<'a> &'a str: sqlx::ColumnIndex<R>,
        for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
        for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
        for<'a> Vec<u8>: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    {
        Ok(Row_ {
            seq: row.try_get("seq")?,
            at_us: row.try_get("at_us")?,
            token_id: row.try_get("token_id")?,
            role: row.try_get("role")?,
            route: row.try_get("route")?,
            subjects: row.try_get("subjects")?,
            hash: row.try_get("hash")?,
        })
    }

    /// The row as recorded; `None` when a field no longer parses (which
    /// verification reports as a break).
    fn into_disclosure(self) -> Option<Disclosure> {
        Some(Disclosure {
            seq: u64::try_from(self.seq).ok()?,
            note: NewDisclosure {
                at: DateTime::<Utc>::from_timestamp_micros(self.at_us)?,
                token_id: Uuid::parse_str(&self.token_id).ok()?,
                role: self.role,
                route: self.route,
                subjects: serde_json::from_str(&self.subjects).ok()?,
            },
            hash: self.hash.as_slice().try_into().ok()?,
        })
    }
}

const SELECT: &str =
    "SELECT seq, at_us, token_id, role, route, subjects, hash FROM personal_data_access";

impl EventStore {
    /// Appends `notes` to the record, chained after its last row, in one
    /// transaction that holds the table's write lock (so two instances
    /// never fork the chain).
    pub async fn record_disclosures(&self, notes: &[NewDisclosure]) -> Result<(), StoreError> {
        if notes.is_empty() {
            return Ok(());
        }
        macro_rules! write {
            ($pool:expr, $lock:expr, $last:expr, $insert:expr) => {{
                let mut tx = $pool.begin().await?;
                if let Some(lock) = $lock {
                    sqlx::query(lock).execute(&mut *tx).await?;
                }
                let last = sqlx::query($last).fetch_optional(&mut *tx).await?;
                let (mut seq, mut previous) =
                    match last {
                        Some(row) => {
                            let seq: i64 = row.try_get("seq")?;
                            let hash: Vec<u8> = row.try_get("hash")?;
                            // A damaged last row is never chained over: the
                            // record stops until an administrator looks.
                            match (u64::try_from(seq), <[u8; 32]>::try_from(hash.as_slice())) {
                                (Ok(seq), Ok(hash)) if seq > 0 => (seq, hash),
                                _ => return Err(StoreError::Corrupt {
                                    position: u64::try_from(seq).unwrap_or(0),
                                    reason:
                                        "the last row of the personal data access record is damaged"
                                            .into(),
                                }),
                            }
                        }
                        None => (0, [0u8; 32]),
                    };
                for note in notes {
                    seq += 1;
                    let hash = disclosure_link(&previous, seq, note);
                    sqlx::query($insert)
                        .bind(seq as i64)
                        .bind(note.at.timestamp_micros())
                        .bind(note.token_id.to_string())
                        .bind(&note.role)
                        .bind(&note.route)
                        .bind(serde_json::to_string(&note.subjects).unwrap_or_default())
                        .bind(&hash[..])
                        .execute(&mut *tx)
                        .await?;
                    previous = hash;
                }
                tx.commit().await?;
            }};
        }
        const LAST: &str = "SELECT seq, hash FROM personal_data_access ORDER BY seq DESC LIMIT 1";
        match &self.inner.backend {
            // SQLite's one write connection already makes this the only writer.
            Backend::Sqlite(b) => write!(
                b.write,
                None::<&str>,
                LAST,
                "INSERT INTO personal_data_access (seq, at_us, token_id, role, route, subjects, hash) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)"
            ),
            Backend::Postgres(b) => write!(
                b.pool,
                Some("LOCK TABLE personal_data_access IN EXCLUSIVE MODE"),
                LAST,
                "INSERT INTO personal_data_access (seq, at_us, token_id, role, route, subjects, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)"
            ),
        }
        Ok(())
    }

    /// The record's last row, `seq` and hash: `(0, zeros)` when empty. What
    /// a signed head signs, so a kept head shows a record cut short.
    pub async fn disclosure_head(&self) -> Result<(u64, [u8; 32]), StoreError> {
        const LAST: &str = "SELECT seq, hash FROM personal_data_access ORDER BY seq DESC LIMIT 1";
        let row: Option<(i64, Vec<u8>)> = match &self.inner.backend {
            Backend::Sqlite(b) => sqlx::query_as(LAST).fetch_optional(&b.read).await?,
            Backend::Postgres(b) => sqlx::query_as(LAST).fetch_optional(&b.pool).await?,
        };
        let Some((seq, hash)) = row else {
            return Ok((0, [0; 32]));
        };
        let corrupt = || StoreError::Corrupt {
            position: u64::try_from(seq).unwrap_or(0),
            reason: "the last row of the personal data access record does not parse".into(),
        };
        Ok((
            u64::try_from(seq).map_err(|_| corrupt())?,
            hash.try_into().map_err(|_| corrupt())?,
        ))
    }

    /// Up to `limit` rows after `after` (a `seq`), oldest first.
    pub async fn disclosures(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Disclosure>, StoreError> {
        let after = after.min(i64::MAX as u64) as i64;
        let limit = limit.min(crate::MAX_READ_LIMIT) as i64;
        let rows: Vec<Row_> = match &self.inner.backend {
            Backend::Sqlite(b) => {
                sqlx::query(&format!("{SELECT} WHERE seq > ? ORDER BY seq LIMIT ?"))
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&b.read)
                    .await?
                    .iter()
                    .map(Row_::from_row)
                    .collect::<Result<_, _>>()?
            }
            Backend::Postgres(b) => {
                sqlx::query(&format!("{SELECT} WHERE seq > $1 ORDER BY seq LIMIT $2"))
                    .bind(after)
                    .bind(limit)
                    .fetch_all(&b.pool)
                    .await?
                    .iter()
                    .map(Row_::from_row)
                    .collect::<Result<_, _>>()?
            }
        };
        rows.into_iter()
            .map(|row| {
                let seq = row.seq;
                row.into_disclosure().ok_or_else(|| StoreError::Corrupt {
                    position: u64::try_from(seq).unwrap_or(0),
                    reason: "a row of the personal data access record does not parse".into(),
                })
            })
            .collect()
    }

    /// Recomputes the record's chain from its first row: each row must sit
    /// at the next `seq` and carry the hash of its fields after the
    /// previous row's hash.
    pub async fn verify_disclosures(&self) -> Result<DisclosureReport, StoreError> {
        let mut previous = [0u8; 32];
        let mut expected = 1u64;
        let mut checked = 0u64;
        loop {
            let rows: Vec<Row_> = match &self.inner.backend {
                Backend::Sqlite(b) => {
                    sqlx::query(&format!("{SELECT} WHERE seq >= ? ORDER BY seq LIMIT 2000"))
                        .bind(expected as i64)
                        .fetch_all(&b.read)
                        .await?
                        .iter()
                        .map(Row_::from_row)
                        .collect::<Result<_, _>>()?
                }
                Backend::Postgres(b) => {
                    sqlx::query(&format!("{SELECT} WHERE seq >= $1 ORDER BY seq LIMIT 2000"))
                        .bind(expected as i64)
                        .fetch_all(&b.pool)
                        .await?
                        .iter()
                        .map(Row_::from_row)
                        .collect::<Result<_, _>>()?
                }
            };
            if rows.is_empty() {
                return Ok(DisclosureReport {
                    checked,
                    broken_at: None,
                });
            }
            for row in rows {
                let at = u64::try_from(row.seq).unwrap_or(0);
                let Some(d) = row.into_disclosure() else {
                    return Ok(DisclosureReport {
                        checked,
                        broken_at: Some(at),
                    });
                };
                if d.seq != expected || d.hash != disclosure_link(&previous, d.seq, &d.note) {
                    return Ok(DisclosureReport {
                        checked,
                        broken_at: Some(expected),
                    });
                }
                previous = d.hash;
                expected += 1;
                checked += 1;
            }
        }
    }
}

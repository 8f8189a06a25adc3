//! PostgreSQL backend. Appends of all processes serialise on one
//! transaction-scoped advisory lock, taken before the head is read (or, by a
//! writer appending on the head it wrote itself, by its one INSERT statement
//! before its first row): positions are head + 1, gap-free, and commit in
//! order (no BIGSERIAL, whose values become visible out of order under
//! concurrent transactions). New positions are announced with NOTIFY,
//! delivered at commit.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, PgConnection, Postgres, QueryBuilder, Row};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::batch::{
    carried_ids, ids_to_confirm, new_subjects, plan, AppendRequest, Plan, StoredId, WriterCache,
};
use crate::types::{SubjectKeyRow, SELECT_SUBJECT_KEY};
use crate::{
    now_micros, AppendOutcome, Checkpoint, Head, LogFilter, RawEvent, StoreError, StoreOptions,
    SubjectKey,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The advisory lock every appender of this log takes ("fangkong" in ASCII).
const APPEND_LOCK: i64 = 0x6661_6e67_6b6f_6e67;
const CHANNEL: &str = "fangkong_events";

/// The database server's clock in microseconds: key rows are stamped by
/// it, so instances whose own clocks differ agree on what changed when.
const NOW_US: &str = "(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::bigint";

/// Rows per statement when writing many key rows: each statement stays well
/// inside the statement timeout.
const KEY_CHUNK: usize = 5_000;

const SELECT_EVENT: &str = "SELECT position, stream_id, stream_version, event_id, event_type, \
     schema_version, payload, metadata, recorded_at, hash FROM events";

/// What became of a group offered to [`PgBackend::unchallenged`].
enum Unchallenged {
    Written((Vec<Result<AppendOutcome, StoreError>>, Head)),
    /// Its memory could not be proven by a write: not tried.
    NotTried,
    /// Another instance appended since this writer's head.
    AnotherAppended,
    /// An event id or a subject's key is stored already.
    IdOrKeyStored,
}

#[derive(Debug, Clone)]
pub(crate) struct PgBackend {
    pub(crate) pool: PgPool,
    /// The writer's own connection: never tested before use (a failure
    /// surfaces on the next statement anyway) to save a round trip per batch.
    writer: PgPool,
}

impl PgBackend {
    pub(crate) async fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let connect: PgConnectOptions = url
            .parse::<PgConnectOptions>()?
            // Durability is not negotiable per deployment: an acknowledged
            // append must survive a crash of the database server.
            .options([("synchronous_commit", "on")])
            .log_statements(tracing::log::LevelFilter::Trace);
        // Migrations may take their time; requests may not.
        {
            let migrating = PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(connect.clone())
                .await?;
            MIGRATOR.run(&migrating).await?;
            migrating.close().await;
        }
        let limit = options.statement_timeout.as_millis().max(1).to_string();
        let connect = connect.options([
            ("lock_timeout", limit.as_str()),
            ("statement_timeout", limit.as_str()),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(options.read_connections.max(1))
            .acquire_timeout(options.statement_timeout)
            .connect_with(connect.clone())
            .await?;
        let writer = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.statement_timeout.max(Duration::from_secs(1)))
            .test_before_acquire(false)
            .connect_with(connect)
            .await?;
        Ok(PgBackend { pool, writer })
    }

    pub(crate) async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }

    /// Ready when the log's head can be read (a `SELECT 1` would pass
    /// while the events table is locked).
    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        self.head().await?;
        Ok(())
    }

    pub(crate) async fn commit_batch(
        &self,
        requests: &[AppendRequest],
        cache: &mut WriterCache,
    ) -> Result<(Vec<Result<AppendOutcome, StoreError>>, Head), sqlx::Error> {
        match self.unchallenged(requests, cache).await? {
            Unchallenged::Written(done) => return Ok(done),
            // Straight to the attempt that looks them up.
            Unchallenged::IdOrKeyStored => return self.attempt(requests, cache, true).await,
            Unchallenged::NotTried | Unchallenged::AnotherAppended => {}
        }
        match self.attempt(requests, cache, false).await {
            // An event id or a subject's key is already stored: PostgreSQL
            // has aborted the transaction, so start again, this time looking
            // every id and subject up.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                cache.forget();
                self.attempt(requests, cache, true).await
            }
            other => other,
        }
    }

    /// The batch in one round trip, when this writer wrote the head it
    /// remembers and the batch depends on nothing it must look up: planned
    /// on the remembered head and stream versions, and written by one
    /// INSERT statement in a transaction of its own, without a read of the
    /// head. The statement proves the memory was right: if any
    /// other process appended since, the first position planned is taken,
    /// the statement fails on the key whole (as it does for a stored event
    /// id or a subject's key made elsewhere) and the batch is written the
    /// ordinary way; if it succeeds, the refusals planned beside its rows
    /// were decided on the stream versions as they stand. A batch with
    /// nothing to write, or whose refusals might be retries to look up, is
    /// always decided the ordinary way: only a write proves the memory.
    ///
    /// The statement takes the append lock before its first row, as the
    /// ordinary way does before reading the head: a writer holding it is
    /// never beaten to a position.
    async fn unchallenged(
        &self,
        requests: &[AppendRequest],
        cache: &mut WriterCache,
    ) -> Result<Unchallenged, sqlx::Error> {
        let Some(head) = cache.head() else {
            return Ok(Unchallenged::NotTried);
        };
        if !cache.unknown_streams(requests).is_empty() {
            return Ok(Unchallenged::NotTried);
        }
        let plan = plan(
            head,
            cache.versions(),
            &HashMap::new(),
            &HashSet::new(),
            requests,
            now_micros(),
        );
        if plan.rows.is_empty() || !ids_to_confirm(&plan, requests, &HashSet::new()).is_empty() {
            return Ok(Unchallenged::NotTried);
        }
        let mut conn = self.writer.acquire().await?;
        match insert_rows(&mut conn, &plan).await {
            Ok(()) => {
                cache.committed(&plan);
                Ok(Unchallenged::Written((plan.outcomes, plan.head)))
            }
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                cache.forget();
                // Which key it met says what to do next: a position another
                // instance took needs only the ordinary way; a stored event
                // id or subject key needs the lookups.
                Ok(if e.constraint() == Some("events_pkey") {
                    Unchallenged::AnotherAppended
                } else {
                    Unchallenged::IdOrKeyStored
                })
            }
            Err(e) => {
                cache.forget();
                Err(e)
            }
        }
    }

    async fn attempt(
        &self,
        requests: &[AppendRequest],
        cache: &mut WriterCache,
        look_up_every_id: bool,
    ) -> Result<(Vec<Result<AppendOutcome, StoreError>>, Head), sqlx::Error> {
        // BEGIN and the lock travel together as one simple query.
        let mut tx = self
            .writer
            .begin_with(format!(
                "BEGIN; SELECT pg_advisory_xact_lock({APPEND_LOCK})"
            ))
            .await?;
        // Read after the lock is held: this statement's snapshot then
        // includes every earlier append.
        // Which new subjects already have a key is looked up only on the
        // second attempt: a key made elsewhere at the same moment breaks
        // the first attempt's INSERT like a stored event id does.
        let (head, versions) =
            head_and_versions_on(&mut tx, &cache.unknown_streams(requests)).await?;
        cache.sync(head);
        cache.learn(versions);
        let unknown = cache.unknown_streams(requests);
        if !unknown.is_empty() {
            let (_, versions) = head_and_versions_on(&mut tx, &unknown).await?;
            cache.learn(versions);
        }
        let keyed = if look_up_every_id {
            keyed_on(&mut tx, &new_subjects(requests)).await?
        } else {
            HashSet::new()
        };

        let mut known = HashMap::new();
        let mut looked_up = HashSet::new();
        if look_up_every_id {
            let all = carried_ids(requests);
            known.extend(known_ids_on(&mut tx, &all).await?);
            looked_up.extend(all);
        }
        let now = now_micros();
        let plan = loop {
            let plan = plan(head, cache.versions(), &known, &keyed, requests, now);
            let confirm = ids_to_confirm(&plan, requests, &looked_up);
            if confirm.is_empty() {
                break plan;
            }
            known.extend(known_ids_on(&mut tx, &confirm).await?);
            looked_up.extend(confirm);
        };
        if !plan.rows.is_empty() {
            insert_rows(&mut tx, &plan).await?;
        }
        tx.commit().await?;
        cache.committed(&plan);
        Ok((plan.outcomes, plan.head))
    }

    pub(crate) async fn head(&self) -> Result<Head, StoreError> {
        let mut conn = self.pool.acquire().await?;
        Ok(head_on(&mut conn).await?)
    }

    pub(crate) async fn stream_version(&self, stream_id: &str) -> Result<u64, StoreError> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(stream_version) FROM events WHERE stream_id = $1")
                .bind(stream_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(version.unwrap_or(0) as u64)
    }

    pub(crate) async fn read_stream(
        &self,
        stream_id: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RawEvent>, StoreError> {
        let rows = sqlx::query(&format!(
            "{SELECT_EVENT} WHERE stream_id = $1 AND stream_version >= $2 \
             ORDER BY stream_version LIMIT $3"
        ))
        .bind(stream_id)
        .bind(from_version.min(i64::MAX as u64) as i64)
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode).collect()
    }

    pub(crate) async fn read_event(&self, event_id: Uuid) -> Result<Option<RawEvent>, StoreError> {
        let row = sqlx::query(&format!("{SELECT_EVENT} WHERE event_id = $1"))
            .bind(event_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(decode).transpose()
    }

    pub(crate) async fn read_all(
        &self,
        after: u64,
        limit: usize,
        filter: &LogFilter,
    ) -> Result<Vec<RawEvent>, StoreError> {
        let mut query = QueryBuilder::<Postgres>::new(SELECT_EVENT);
        query
            .push(" WHERE position > ")
            .push_bind(after.min(i64::MAX as u64) as i64);
        if let Some(category) = &filter.category {
            // The expression the category index is built on.
            query
                .push(" AND split_part(stream_id, '-', 1) = ")
                .push_bind(category.as_str());
        }
        if !filter.event_types.is_empty() {
            query
                .push(" AND event_type = ANY(")
                .push_bind(&filter.event_types)
                .push(")");
        }
        if let Some(since) = filter.recorded_since {
            query.push(" AND recorded_at >= ").push_bind(since);
        }
        if let Some(until) = filter.recorded_until {
            query.push(" AND recorded_at < ").push_bind(until);
        }
        query
            .push(" ORDER BY position LIMIT ")
            .push_bind(limit as i64);
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(decode).collect()
    }

    pub(crate) async fn save_checkpoint(
        &self,
        name: &str,
        checkpoint: &Checkpoint,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO projection_checkpoints (name, position, hash, format, state, saved_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position, hash = excluded.hash, \
             format = excluded.format, state = excluded.state, saved_at = excluded.saved_at \
             WHERE excluded.position >= projection_checkpoints.position \
             OR excluded.format <> projection_checkpoints.format",
        )
        .bind(name)
        .bind(checkpoint.position.min(i64::MAX as u64) as i64)
        .bind(&checkpoint.hash[..])
        .bind(checkpoint.format as i32)
        .bind(&checkpoint.state)
        .bind(checkpoint.saved_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// The insert commits on its own (synchronous_commit is on) before the
    /// row that won is read back; a concurrent insert of the same subject
    /// makes this one wait for it and then do nothing.
    pub(crate) async fn put_subject_key(
        &self,
        subject: &str,
        kek_id: &str,
        wrapped: &[u8],
    ) -> Result<SubjectKey, StoreError> {
        sqlx::query(&format!(
            "INSERT INTO subject_keys (subject, kek_id, wrapped, created_at_us) \
             VALUES ($1, $2, $3, {NOW_US}) ON CONFLICT (subject) DO NOTHING"
        ))
        .bind(subject)
        .bind(kek_id)
        .bind(wrapped)
        .execute(&self.pool)
        .await?;
        let row: SubjectKeyRow =
            sqlx::query_as(&format!("{SELECT_SUBJECT_KEY} WHERE subject = $1"))
                .bind(subject)
                .fetch_one(&self.pool)
                .await?;
        Ok(row.into())
    }

    pub(crate) async fn subject_key(
        &self,
        subject: &str,
    ) -> Result<Option<SubjectKey>, StoreError> {
        let row: Option<SubjectKeyRow> =
            sqlx::query_as(&format!("{SELECT_SUBJECT_KEY} WHERE subject = $1"))
                .bind(subject)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(SubjectKey::from))
    }

    /// Every row, or those created or erased at or after `since_us`.
    pub(crate) async fn subject_keys(
        &self,
        since_us: Option<i64>,
    ) -> Result<Vec<SubjectKey>, StoreError> {
        let rows: Vec<SubjectKeyRow> = match since_us {
            None => {
                sqlx::query_as(&format!("{SELECT_SUBJECT_KEY} ORDER BY subject"))
                    .fetch_all(&self.pool)
                    .await?
            }
            Some(since) => {
                sqlx::query_as(&format!(
                    "{SELECT_SUBJECT_KEY} WHERE created_at_us >= $1 OR erased_at_us >= $1 \
                     ORDER BY subject"
                ))
                .bind(since)
                .fetch_all(&self.pool)
                .await?
            }
        };
        Ok(rows.into_iter().map(SubjectKey::from).collect())
    }

    pub(crate) async fn erase_subject_keys(
        &self,
        subjects: &[String],
        reason: &str,
    ) -> Result<u64, StoreError> {
        let mut erased = 0;
        let mut tx = self.pool.begin().await?;
        for chunk in subjects.chunks(KEY_CHUNK) {
            erased += sqlx::query(&format!(
                "UPDATE subject_keys SET wrapped = NULL, erased_at_us = {NOW_US}, \
                 erased_reason = $1 WHERE wrapped IS NOT NULL AND subject = ANY($2)"
            ))
            .bind(reason)
            .bind(chunk)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(erased)
    }

    pub(crate) async fn rewrap_subject_keys(
        &self,
        rows: &[(String, String, Vec<u8>)],
    ) -> Result<u64, StoreError> {
        let mut updated = 0;
        let mut tx = self.pool.begin().await?;
        for chunk in rows.chunks(KEY_CHUNK) {
            let subjects: Vec<&str> = chunk.iter().map(|(s, _, _)| s.as_str()).collect();
            let kek_ids: Vec<&str> = chunk.iter().map(|(_, k, _)| k.as_str()).collect();
            let wrapped: Vec<&[u8]> = chunk.iter().map(|(_, _, w)| w.as_slice()).collect();
            updated += sqlx::query(
                "UPDATE subject_keys AS k SET kek_id = r.kek_id, wrapped = r.wrapped \
                 FROM UNNEST($1::text[], $2::text[], $3::bytea[]) AS r(subject, kek_id, wrapped) \
                 WHERE k.subject = r.subject AND k.wrapped IS NOT NULL",
            )
            .bind(&subjects)
            .bind(&kek_ids)
            .bind(&wrapped)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(updated)
    }

    /// An UPDATE leaves the old row version, key bytes and all, in the
    /// table until vacuum reclaims it: ask for that now. Best effort (the
    /// freed space is not zeroed, and the server's WAL and backups still
    /// hold what they hold); VACUUM cannot run in a transaction, hence the
    /// simple protocol.
    pub(crate) async fn scrub_subject_keys(&self) {
        if let Err(error) = sqlx::raw_sql("VACUUM subject_keys")
            .execute(&self.pool)
            .await
        {
            tracing::warn!(%error, "vacuuming subject_keys after replacing data keys failed: old row versions stay until autovacuum");
        }
    }

    /// The stored Merkle frontier and the chain hash at its size.
    #[allow(clippy::type_complexity)]
    pub(crate) async fn load_merkle(
        &self,
    ) -> Result<Option<(Vec<u8>, Vec<u8>, Option<Vec<u8>>)>, StoreError> {
        let row =
            sqlx::query("SELECT frontier, chain_hash, seal FROM merkle_frontier WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?;
        Ok(match row {
            Some(row) => Some((
                row.try_get("frontier")?,
                row.try_get("chain_hash")?,
                row.try_get("seal")?,
            )),
            None => None,
        })
    }

    /// Stores completed subtrees and the frontier after them, together.
    pub(crate) async fn save_merkle(
        &self,
        nodes: &[(u32, u64, [u8; 32])],
        size: u64,
        frontier: &[u8],
        chain_hash: &[u8; 32],
        seal: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for chunk in nodes.chunks(300) {
            let mut insert =
                QueryBuilder::<Postgres>::new("INSERT INTO merkle_nodes (level, idx, hash) ");
            insert.push_values(chunk, |mut row, (level, idx, hash)| {
                row.push_bind(*level as i32)
                    .push_bind((*idx).min(i64::MAX as u64) as i64)
                    .push_bind(&hash[..]);
            });
            // What the index computed wins over whatever a row held.
            insert.push(" ON CONFLICT (level, idx) DO UPDATE SET hash = excluded.hash");
            insert.build().execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO merkle_frontier (id, size, frontier, chain_hash, seal) VALUES (1, $1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET size = excluded.size, frontier = excluded.frontier, \
             chain_hash = excluded.chain_hash, seal = excluded.seal \
             WHERE excluded.size > merkle_frontier.size",
        )
        .bind(size.min(i64::MAX as u64) as i64)
        .bind(frontier)
        .bind(&chain_hash[..])
        .bind(seal)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets the stored frontier: the tree is rebuilt from the log.
    pub(crate) async fn clear_merkle(&self) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM merkle_frontier")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The stored subtree roots among `wanted` (level, index).
    pub(crate) async fn merkle_nodes(
        &self,
        wanted: &[(u32, u64)],
    ) -> Result<Vec<(u32, u64, Vec<u8>)>, StoreError> {
        let mut found = Vec::new();
        for chunk in wanted.chunks(300) {
            let mut query = QueryBuilder::<Postgres>::new(
                "SELECT level, idx, hash FROM merkle_nodes WHERE (level, idx) IN (VALUES ",
            );
            let mut values = query.separated(", ");
            for (level, idx) in chunk {
                values
                    .push("(")
                    .push_bind_unseparated(*level as i32)
                    .push_unseparated(", ")
                    .push_bind_unseparated((*idx).min(i64::MAX as u64) as i64)
                    .push_unseparated(")");
            }
            query.push(")");
            for row in query.build().fetch_all(&self.pool).await? {
                let level: i32 = row.try_get("level")?;
                let idx: i64 = row.try_get("idx")?;
                found.push((level.max(0) as u32, idx.max(0) as u64, row.try_get("hash")?));
            }
        }
        Ok(found)
    }

    /// The stored chain hashes of positions `from ..= to`.
    pub(crate) async fn chain_hashes(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT position, hash FROM events WHERE position BETWEEN $1 AND $2 ORDER BY position",
        )
        .bind(from.min(i64::MAX as u64) as i64)
        .bind(to.min(i64::MAX as u64) as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                let position: i64 = row.try_get("position")?;
                Ok((position.max(0) as u64, row.try_get("hash")?))
            })
            .collect()
    }

    pub(crate) async fn load_checkpoint(
        &self,
        name: &str,
    ) -> Result<Option<Checkpoint>, StoreError> {
        let row = sqlx::query(
            "SELECT position, hash, format, state, saved_at FROM projection_checkpoints WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let hash: Vec<u8> = row.try_get("hash")?;
        Ok(Some(Checkpoint {
            position: row.try_get::<i64, _>("position")?.max(0) as u64,
            hash: hash.try_into().map_err(|_| StoreError::Corrupt {
                position: 0,
                reason: "checkpoint hash is not 32 bytes".into(),
            })?,
            format: row.try_get::<i32, _>("format")?.max(0) as u32,
            state: row.try_get("state")?,
            saved_at: row.try_get("saved_at")?,
        }))
    }

    pub(crate) async fn position_at(&self, at: DateTime<Utc>) -> Result<u64, StoreError> {
        let position: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MIN(position), (SELECT COALESCE(MAX(position), 0) FROM events) + 1) - 1 \
             FROM events WHERE recorded_at > $1",
        )
        .bind(at)
        .fetch_one(&self.pool)
        .await?;
        Ok(position.max(0) as u64)
    }

    /// Hears of appends by any process through LISTEN/NOTIFY.
    pub(crate) fn spawn_watcher(&self, head: Arc<watch::Sender<u64>>) -> JoinHandle<()> {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            loop {
                let mut listener = match PgListener::connect_with(&pool).await {
                    Ok(listener) => listener,
                    Err(error) => {
                        tracing::debug!(%error, "cannot listen for appends yet");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                if let Err(error) = listener.listen(CHANNEL).await {
                    tracing::debug!(%error, "LISTEN failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                loop {
                    match listener.recv().await {
                        Ok(notification) => {
                            if let Ok(position) = notification.payload().parse::<u64>() {
                                head.send_if_modified(|h| {
                                    let moved = position > *h;
                                    if moved {
                                        *h = position;
                                    }
                                    moved
                                });
                            }
                        }
                        Err(error) => {
                            tracing::debug!(%error, "listening for appends failed; reconnecting");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                            break;
                        }
                    }
                }
            }
        })
    }
}

async fn head_on(conn: &mut PgConnection) -> Result<Head, sqlx::Error> {
    let row: Option<(i64, Vec<u8>)> =
        sqlx::query_as("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await?;
    Ok(match row {
        Some((position, hash)) => Head {
            position: position as u64,
            hash: hash.as_slice().try_into().map_err(|_| {
                sqlx::Error::Decode(format!("hash at position {position} is not 32 bytes").into())
            })?,
        },
        None => Head::GENESIS,
    })
}

/// The head, and the current version of each of `streams` (0 for a new
/// one), in one round trip. Each version is the top of the
/// (stream_id, stream_version) index: one seek, however long the stream.
async fn head_and_versions_on(
    conn: &mut PgConnection,
    streams: &[String],
) -> Result<(Head, Vec<(String, u64)>), sqlx::Error> {
    let rows: Vec<(Option<String>, i64, Option<Vec<u8>>)> = sqlx::query_as(
        "SELECT NULL::text, position, hash FROM \
           (SELECT position, hash FROM events ORDER BY position DESC LIMIT 1) AS head \
         UNION ALL \
         SELECT wanted, COALESCE((SELECT MAX(e.stream_version) FROM events e \
           WHERE e.stream_id = wanted), 0), NULL \
         FROM UNNEST($1::text[]) AS wanted",
    )
    .bind(streams)
    .fetch_all(&mut *conn)
    .await?;
    let mut head = Head::GENESIS;
    let mut versions = Vec::with_capacity(streams.len());
    for (stream, number, hash) in rows {
        match (stream, hash) {
            (Some(stream), _) => versions.push((stream, number as u64)),
            (None, Some(hash)) => {
                head = Head {
                    position: number as u64,
                    hash: hash.as_slice().try_into().map_err(|_| {
                        sqlx::Error::Decode(
                            format!("hash at position {number} is not 32 bytes").into(),
                        )
                    })?,
                }
            }
            (None, None) => {}
        }
    }
    Ok((head, versions))
}

/// Which of `subjects` have a stored key. A statement of its own, made
/// only when an INSERT met a stored key: joined to the head's statement,
/// its plan (generic once cached, made while the table was nearly empty)
/// scanned the whole table on every append.
async fn keyed_on(
    conn: &mut PgConnection,
    subjects: &[String],
) -> Result<HashSet<String>, sqlx::Error> {
    let keyed: Vec<String> =
        sqlx::query_scalar("SELECT subject FROM subject_keys WHERE subject = ANY($1::text[])")
            .bind(subjects)
            .fetch_all(&mut *conn)
            .await?;
    Ok(keyed.into_iter().collect())
}

async fn known_ids_on(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, StoredId>, sqlx::Error> {
    let rows: Vec<(Uuid, String, i64, i64)> = sqlx::query_as(
        "SELECT event_id, stream_id, stream_version, position FROM events \
         WHERE event_id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, stream_id, version, position)| {
            (
                id,
                StoredId {
                    stream_id,
                    stream_version: version as u64,
                    position: position as u64,
                },
            )
        })
        .collect())
}

/// All rows in one statement (arrays, whatever their number), and the NOTIFY
/// that PostgreSQL delivers only if the transaction commits.
async fn insert_rows(conn: &mut PgConnection, plan: &Plan<'_>) -> Result<(), sqlx::Error> {
    let n = plan.rows.len();
    let mut positions = Vec::with_capacity(n);
    let mut streams = Vec::with_capacity(n);
    let mut stream_versions = Vec::with_capacity(n);
    let mut ids = Vec::with_capacity(n);
    let mut types = Vec::with_capacity(n);
    let mut schemas = Vec::with_capacity(n);
    let mut payloads = Vec::with_capacity(n);
    let mut metadata = Vec::with_capacity(n);
    let mut recorded = Vec::with_capacity(n);
    let mut hashes = Vec::with_capacity(n);
    for row in &plan.rows {
        positions.push(row.position as i64);
        streams.push(row.stream_id);
        stream_versions.push(row.stream_version as i64);
        ids.push(row.event.event_id);
        types.push(row.event.event_type.as_str());
        schemas.push(row.event.schema_version as i32);
        payloads.push(row.event.payload.as_str());
        metadata.push(row.event.metadata.as_str());
        recorded
            .push(DateTime::<Utc>::from_timestamp_micros(row.recorded_at_us).unwrap_or_default());
        hashes.push(&row.hash[..]);
    }
    // Each INSERT takes the append lock before its first row (an InitPlan,
    // run once, before the scan; PostgreSQL runs data-modifying CTEs in an
    // order of its own, so both take it). Taken already by an ordinary
    // write, it is taken here by one in a single statement: a writer
    // holding it is never beaten to a position by one that does not.
    sqlx::query(&format!(
        "WITH inserted AS ( \
           INSERT INTO events (position, stream_id, stream_version, event_id, \
             event_type, schema_version, payload, metadata, recorded_at, hash) \
           SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::bigint[], \
             $4::uuid[], $5::text[], $6::int[], $7::text[], $8::text[], \
             $9::timestamptz[], $10::bytea[]) \
           WHERE (SELECT pg_advisory_xact_lock({APPEND_LOCK})::text) = '' \
         ), keys AS ( \
           INSERT INTO subject_keys (subject, kek_id, wrapped, created_at_us) \
           SELECT s, k, w, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::bigint \
           FROM UNNEST($13::text[], $14::text[], $15::bytea[]) AS t(s, k, w) \
           WHERE (SELECT pg_advisory_xact_lock({APPEND_LOCK})::text) = '' \
         ) SELECT pg_notify($11, $12)",
    ))
    .bind(&positions)
    .bind(&streams)
    .bind(&stream_versions)
    .bind(&ids)
    .bind(&types)
    .bind(&schemas)
    .bind(&payloads)
    .bind(&metadata)
    .bind(&recorded)
    .bind(&hashes)
    .bind(CHANNEL)
    .bind(plan.head.position.to_string())
    // The first keys of subjects, in the same statement: no round trip
    // of their own.
    .bind(
        plan.keys
            .iter()
            .map(|k| k.subject.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        plan.keys
            .iter()
            .map(|k| k.kek_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(
        plan.keys
            .iter()
            .map(|k| k.wrapped.as_slice())
            .collect::<Vec<_>>(),
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn decode(row: &PgRow) -> Result<RawEvent, StoreError> {
    let recorded_at: DateTime<Utc> = row.try_get("recorded_at")?;
    Ok(RawEvent {
        position: row.try_get::<i64, _>("position")? as u64,
        stream_id: row.try_get("stream_id")?,
        stream_version: row.try_get::<i64, _>("stream_version")? as u64,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        schema_version: row.try_get::<i32, _>("schema_version")? as u32,
        payload: row.try_get("payload")?,
        metadata: row.try_get("metadata")?,
        recorded_at_us: recorded_at.timestamp_micros(),
        hash: row.try_get("hash")?,
    })
}

//! SQLite backend: one file, WAL, `synchronous=FULL`. One write connection
//! (SQLite has one writer anyway); `BEGIN IMMEDIATE` takes the write lock
//! before the head is read, so other processes on the same file serialise too.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
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
use chrono::{DateTime, Utc};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// SQLite allows 32,766 bound parameters per statement; stay well below.
const MAX_PARAMS: usize = 30_000;
const EVENT_COLUMNS: usize = 10;
/// Event rows one INSERT holds.
const ROWS_PER_STATEMENT: usize = MAX_PARAMS / EVENT_COLUMNS;
/// Subject keys one INSERT holds (four parameters each).
const KEYS_PER_STATEMENT: usize = MAX_PARAMS / 4;

const SELECT_EVENT: &str = "SELECT position, stream_id, stream_version, event_id, event_type, \
     schema_version, payload, metadata, recorded_at_us, hash FROM events";

#[derive(Debug, Clone)]
pub(crate) struct SqliteBackend {
    pub(crate) write: SqlitePool,
    pub(crate) read: SqlitePool,
    /// The database file as opened: appends refuse to commit, and
    /// readiness fails, once the file at the path is another or none.
    file: Arc<OpenedFile>,
}

/// Which file the store opened: its path and identity (device, inode).
#[derive(Debug)]
struct OpenedFile {
    path: std::path::PathBuf,
    identity: Option<(u64, u64)>,
}

impl OpenedFile {
    fn identity_of(path: &std::path::Path) -> Option<(u64, u64)> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
        }
        #[cfg(not(unix))]
        {
            std::fs::metadata(path).ok().map(|_| (0, 0))
        }
    }

    /// Fails when the file at the path is no longer the one opened (deleted
    /// or replaced under the running server): a commit into an unlinked
    /// file would be acknowledged and lost.
    fn check(&self) -> Result<(), sqlx::Error> {
        if self.identity.is_some() && Self::identity_of(&self.path) == self.identity {
            return Ok(());
        }
        Err(sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "the database file {} was removed or replaced while open",
                self.path.display()
            ),
        )))
    }
}

/// The data directory 0700 and the database file 0600 (personal data and
/// token hashes live there); SQLite gives its -wal and -shm files the
/// database file's mode.
fn private_files(path: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !parent.exists() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(parent)?;
            }
        }
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            let file = std::path::PathBuf::from(file);
            if file.exists() {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
            }
        }
    }
    #[cfg(not(unix))]
    {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
    }
    Ok(())
}

impl SqliteBackend {
    pub(crate) async fn open(url: &str, options: &StoreOptions) -> Result<Self, StoreError> {
        let connect = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            // Freed space is overwritten with zeros, so an erased data key's
            // bytes do not linger in the file's free pages and cells.
            .pragma("secure_delete", "on")
            .busy_timeout(options.statement_timeout);
        let path = connect.get_filename().to_path_buf();
        let in_memory = path.as_os_str().is_empty() || path.as_os_str() == ":memory:";
        if !in_memory {
            private_files(&path).map_err(|e| {
                StoreError::Database(sqlx::Error::Configuration(
                    format!("cannot create {}: {e}", path.display()).into(),
                ))
            })?;
        }
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .connect_with(connect.clone())
            .await?;
        MIGRATOR.run(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(options.read_connections.max(1))
            .acquire_timeout(options.statement_timeout)
            .connect_with(connect)
            .await?;
        let file = OpenedFile {
            identity: OpenedFile::identity_of(&path),
            path,
        };
        Ok(SqliteBackend {
            write,
            read,
            file: Arc::new(file),
        })
    }

    pub(crate) async fn close(&self) {
        self.write.close().await;
        self.read.close().await;
    }

    /// Ready when the file opened is still the file at the path and the
    /// log's head can be read.
    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        self.file.check()?;
        self.head().await?;
        Ok(())
    }

    pub(crate) async fn commit_batch(
        &self,
        requests: &[AppendRequest],
        cache: &mut WriterCache,
    ) -> Result<(Vec<Result<AppendOutcome, StoreError>>, Head), sqlx::Error> {
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let head = head_on(&mut tx).await?;
        cache.sync(head);
        let unknown = cache.unknown_streams(requests);
        if !unknown.is_empty() {
            cache.learn(versions_on(&mut tx, &unknown).await?);
        }

        // Event ids are looked up only where they can change an answer: for
        // appends refused on their version, and for all of them if the insert
        // meets an id that is already stored. A failed INSERT statement is
        // undone by SQLite on its own, leaving the transaction usable; but
        // not the statements before it, so rows that take more than one
        // statement have every id looked up first.
        let mut known = HashMap::new();
        let mut looked_up = HashSet::new();
        let all_ids = carried_ids(requests);
        let mut every_id_looked_up = all_ids.len() > ROWS_PER_STATEMENT;
        if every_id_looked_up {
            known.extend(known_ids_on(&mut tx, &all_ids).await?);
            looked_up.extend(all_ids.iter().copied());
        }
        // Which new subjects already have a key is looked up only when the
        // keys' INSERT meets one (a key made elsewhere at the same moment):
        // one statement less for every append. More keys than one statement
        // holds are looked up first, as a failed later statement could not
        // undo an earlier one.
        let subjects = new_subjects(requests);
        let mut keyed = HashSet::new();
        let mut keys_looked_up = subjects.len() > KEYS_PER_STATEMENT;
        if keys_looked_up {
            keyed = keyed_on(&mut tx, &subjects).await?;
        }
        let now = now_micros();
        let plan = loop {
            let plan = plan(head, cache.versions(), &known, &keyed, requests, now);
            let confirm = ids_to_confirm(&plan, requests, &looked_up);
            if !confirm.is_empty() {
                known.extend(known_ids_on(&mut tx, &confirm).await?);
                looked_up.extend(confirm);
                continue;
            }
            match insert_keys(&mut tx, &plan, now).await {
                Ok(()) => {}
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() && !keys_looked_up => {
                    keyed = keyed_on(&mut tx, &subjects).await?;
                    keys_looked_up = true;
                    continue;
                }
                Err(e) => return Err(e),
            }
            match insert_rows(&mut tx, &plan).await {
                Ok(()) => break plan,
                // One statement, undone whole: only the keys just stored
                // remain, and they are this plan's (the next stores its own).
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() && !every_id_looked_up => {
                    remove_keys(&mut tx, &plan).await?;
                    known.extend(known_ids_on(&mut tx, &all_ids).await?);
                    looked_up.extend(all_ids.iter().copied());
                    every_id_looked_up = true;
                }
                Err(e) => return Err(e),
            }
        };
        self.file.check()?;
        tx.commit().await?;
        cache.committed(&plan);
        Ok((plan.outcomes, plan.head))
    }

    pub(crate) async fn head(&self) -> Result<Head, StoreError> {
        let mut conn = self.read.acquire().await?;
        Ok(head_on(&mut conn).await?)
    }

    pub(crate) async fn stream_version(&self, stream_id: &str) -> Result<u64, StoreError> {
        let version: Option<i64> =
            sqlx::query_scalar("SELECT MAX(stream_version) FROM events WHERE stream_id = ?")
                .bind(stream_id)
                .fetch_one(&self.read)
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
            "{SELECT_EVENT} WHERE stream_id = ? AND stream_version >= ? \
             ORDER BY stream_version LIMIT ?"
        ))
        .bind(stream_id)
        .bind(from_version.min(i64::MAX as u64) as i64)
        .bind(limit as i64)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(decode).collect()
    }

    pub(crate) async fn read_event(&self, event_id: Uuid) -> Result<Option<RawEvent>, StoreError> {
        let row = sqlx::query(&format!("{SELECT_EVENT} WHERE event_id = ?"))
            .bind(event_id)
            .fetch_optional(&self.read)
            .await?;
        row.as_ref().map(decode).transpose()
    }

    pub(crate) async fn read_all(
        &self,
        after: u64,
        limit: usize,
        filter: &LogFilter,
    ) -> Result<Vec<RawEvent>, StoreError> {
        let mut query = QueryBuilder::<Sqlite>::new(SELECT_EVENT);
        query
            .push(" WHERE position > ")
            .push_bind(after.min(i64::MAX as u64) as i64);
        if let Some(category) = &filter.category {
            // The expression the category index is built on.
            query
                .push(
                    " AND (CASE WHEN instr(stream_id, '-') > 0 \
                     THEN substr(stream_id, 1, instr(stream_id, '-') - 1) \
                     ELSE stream_id END) = ",
                )
                .push_bind(category.as_str());
        }
        if !filter.event_types.is_empty() {
            query.push(" AND event_type IN (");
            let mut types = query.separated(", ");
            for t in &filter.event_types {
                types.push_bind(t.as_str());
            }
            query.push(")");
        }
        if let Some(since) = filter.recorded_since {
            query
                .push(" AND recorded_at_us >= ")
                .push_bind(since.timestamp_micros());
        }
        if let Some(until) = filter.recorded_until {
            query
                .push(" AND recorded_at_us < ")
                .push_bind(until.timestamp_micros());
        }
        query
            .push(" ORDER BY position LIMIT ")
            .push_bind(limit as i64);
        let rows = query.build().fetch_all(&self.read).await?;
        rows.iter().map(decode).collect()
    }

    pub(crate) async fn save_checkpoint(
        &self,
        name: &str,
        checkpoint: &Checkpoint,
    ) -> Result<bool, StoreError> {
        // Through the write connection: SQLite has one writer, and the
        // appender's batches and this save simply take turns.
        let done = sqlx::query(
            "INSERT INTO projection_checkpoints (name, position, hash, format, state, saved_at_us) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (name) DO UPDATE SET position = excluded.position, hash = excluded.hash, \
             format = excluded.format, state = excluded.state, saved_at_us = excluded.saved_at_us \
             WHERE excluded.position >= projection_checkpoints.position \
             OR excluded.format <> projection_checkpoints.format",
        )
        .bind(name)
        .bind(checkpoint.position.min(i64::MAX as u64) as i64)
        .bind(&checkpoint.hash[..])
        .bind(i64::from(checkpoint.format))
        .bind(&checkpoint.state)
        .bind(checkpoint.saved_at.timestamp_micros())
        .execute(&self.write)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Through the write connection like every write, so the appender and
    /// this take turns; the insert and the read-back of whichever row won
    /// share one transaction, committed with a full sync before answering.
    pub(crate) async fn put_subject_key(
        &self,
        subject: &str,
        kek_id: &str,
        wrapped: &[u8],
    ) -> Result<SubjectKey, StoreError> {
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO subject_keys (subject, kek_id, wrapped, created_at_us) \
             VALUES (?, ?, ?, ?) ON CONFLICT (subject) DO NOTHING",
        )
        .bind(subject)
        .bind(kek_id)
        .bind(wrapped)
        .bind(now_micros())
        .execute(&mut *tx)
        .await?;
        let row: SubjectKeyRow = sqlx::query_as(&format!("{SELECT_SUBJECT_KEY} WHERE subject = ?"))
            .bind(subject)
            .fetch_one(&mut *tx)
            .await?;
        // A key acknowledged into a file that is no longer the store's
        // would be lost with whatever was sealed under it.
        self.file.check()?;
        tx.commit().await?;
        Ok(row.into())
    }

    pub(crate) async fn subject_key(
        &self,
        subject: &str,
    ) -> Result<Option<SubjectKey>, StoreError> {
        let row: Option<SubjectKeyRow> =
            sqlx::query_as(&format!("{SELECT_SUBJECT_KEY} WHERE subject = ?"))
                .bind(subject)
                .fetch_optional(&self.read)
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
                    .fetch_all(&self.read)
                    .await?
            }
            Some(since) => {
                sqlx::query_as(&format!(
                    "{SELECT_SUBJECT_KEY} WHERE created_at_us >= ? OR erased_at_us >= ? \
                     ORDER BY subject"
                ))
                .bind(since)
                .bind(since)
                .fetch_all(&self.read)
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
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        // Stamped once the write lock is held, close to the commit: other
        // instances look for changes by this time.
        let now = now_micros();
        for chunk in subjects.chunks(MAX_PARAMS / 2) {
            let mut update = QueryBuilder::<Sqlite>::new(
                "UPDATE subject_keys SET wrapped = NULL, erased_at_us = ",
            );
            update
                .push_bind(now)
                .push(", erased_reason = ")
                .push_bind(reason)
                .push(" WHERE wrapped IS NOT NULL AND subject IN (");
            let mut list = update.separated(", ");
            for subject in chunk {
                list.push_bind(subject.as_str());
            }
            update.push(")");
            erased += update.build().execute(&mut *tx).await?.rows_affected();
        }
        self.file.check()?;
        tx.commit().await?;
        Ok(erased)
    }

    pub(crate) async fn rewrap_subject_keys(
        &self,
        rows: &[(String, String, Vec<u8>)],
    ) -> Result<u64, StoreError> {
        let mut updated = 0;
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        for (subject, kek_id, wrapped) in rows {
            updated += sqlx::query(
                "UPDATE subject_keys SET kek_id = ?, wrapped = ? \
                 WHERE subject = ? AND wrapped IS NOT NULL",
            )
            .bind(kek_id)
            .bind(wrapped)
            .bind(subject)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        self.file.check()?;
        tx.commit().await?;
        Ok(updated)
    }

    /// With `secure_delete` the database file no longer holds replaced key
    /// bytes, but committed WAL frames still hold the pages as they were:
    /// copy the WAL into the file and truncate it. Best effort: it waits
    /// (up to the busy timeout) for readers, and gives up rather than fail
    /// the erasure that already committed.
    pub(crate) async fn scrub_subject_keys(&self) {
        match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&self.write)
            .await
        {
            Ok((0, _, _)) => {}
            Ok((_, frames, copied)) => tracing::warn!(
                wal.frames = frames,
                wal.copied = copied,
                "the WAL could not be truncated after replacing data keys: old key bytes stay in it until the next checkpoint"
            ),
            Err(error) => tracing::warn!(
                %error,
                "checkpointing the WAL after replacing data keys failed: old key bytes stay in it until the next checkpoint"
            ),
        }
    }

    /// The stored Merkle frontier and the chain hash at its size.
    #[allow(clippy::type_complexity)]
    pub(crate) async fn load_merkle(
        &self,
    ) -> Result<Option<(Vec<u8>, Vec<u8>, Option<Vec<u8>>)>, StoreError> {
        let row =
            sqlx::query("SELECT frontier, chain_hash, seal FROM merkle_frontier WHERE id = 1")
                .fetch_optional(&self.read)
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
        let mut tx = self.write.begin().await?;
        for chunk in nodes.chunks(300) {
            let mut insert =
                QueryBuilder::<Sqlite>::new("INSERT INTO merkle_nodes (level, idx, hash) ");
            insert.push_values(chunk, |mut row, (level, idx, hash)| {
                row.push_bind(i64::from(*level))
                    .push_bind((*idx).min(i64::MAX as u64) as i64)
                    .push_bind(&hash[..]);
            });
            // What the index computed wins over whatever a row held.
            insert.push(" ON CONFLICT (level, idx) DO UPDATE SET hash = excluded.hash");
            insert.build().execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO merkle_frontier (id, size, frontier, chain_hash, seal) VALUES (1, ?, ?, ?, ?) \
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
            .execute(&self.write)
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
            let mut query = QueryBuilder::<Sqlite>::new(
                "SELECT level, idx, hash FROM merkle_nodes WHERE (level, idx) IN (VALUES ",
            );
            let mut values = query.separated(", ");
            for (level, idx) in chunk {
                values
                    .push("(")
                    .push_bind_unseparated(i64::from(*level))
                    .push_unseparated(", ")
                    .push_bind_unseparated((*idx).min(i64::MAX as u64) as i64)
                    .push_unseparated(")");
            }
            query.push(")");
            for row in query.build().fetch_all(&self.read).await? {
                let level: i64 = row.try_get("level")?;
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
            "SELECT position, hash FROM events WHERE position BETWEEN ? AND ? ORDER BY position",
        )
        .bind(from.min(i64::MAX as u64) as i64)
        .bind(to.min(i64::MAX as u64) as i64)
        .fetch_all(&self.read)
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
            "SELECT position, hash, format, state, saved_at_us FROM projection_checkpoints WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let hash: Vec<u8> = row.try_get("hash")?;
        let saved_at_us: i64 = row.try_get("saved_at_us")?;
        Ok(Some(Checkpoint {
            position: row.try_get::<i64, _>("position")?.max(0) as u64,
            hash: hash.try_into().map_err(|_| StoreError::Corrupt {
                position: 0,
                reason: "checkpoint hash is not 32 bytes".into(),
            })?,
            format: row.try_get::<i64, _>("format")?.max(0) as u32,
            state: row.try_get("state")?,
            saved_at: DateTime::<Utc>::from_timestamp_micros(saved_at_us).unwrap_or_default(),
        }))
    }

    pub(crate) async fn position_at(&self, at: DateTime<Utc>) -> Result<u64, StoreError> {
        let position: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MIN(position), (SELECT COALESCE(MAX(position), 0) FROM events) + 1) - 1 \
             FROM events WHERE recorded_at_us > ?",
        )
        .bind(at.timestamp_micros())
        .fetch_one(&self.read)
        .await?;
        Ok(position.max(0) as u64)
    }

    /// Other processes may append to the same file: look for a new head now
    /// and then, so in-process readers hear of them too.
    pub(crate) fn spawn_watcher(
        &self,
        head: Arc<watch::Sender<u64>>,
        every: Duration,
    ) -> JoinHandle<()> {
        let backend = self.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                ticker.tick().await;
                match backend.head().await {
                    Ok(now) => {
                        head.send_if_modified(|h| {
                            let moved = now.position > *h;
                            if moved {
                                *h = now.position;
                            }
                            moved
                        });
                    }
                    Err(error) => tracing::debug!(%error, "polling the head failed"),
                }
            }
        })
    }
}

async fn head_on(conn: &mut SqliteConnection) -> Result<Head, sqlx::Error> {
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

/// Which of `subjects` have a stored key (live or erased).
async fn keyed_on(
    conn: &mut SqliteConnection,
    subjects: &[String],
) -> Result<HashSet<String>, sqlx::Error> {
    let mut keyed = HashSet::new();
    for chunk in subjects.chunks(500) {
        let mut query =
            QueryBuilder::<Sqlite>::new("SELECT subject FROM subject_keys WHERE subject IN (");
        let mut list = query.separated(", ");
        for subject in chunk {
            list.push_bind(subject.as_str());
        }
        query.push(")");
        for row in query.build().fetch_all(&mut *conn).await? {
            keyed.insert(row.try_get::<String, _>("subject")?);
        }
    }
    Ok(keyed)
}

/// The first keys of subjects the plan's appends bring, in their transaction.
async fn insert_keys(
    conn: &mut SqliteConnection,
    plan: &Plan<'_>,
    now_us: i64,
) -> Result<(), sqlx::Error> {
    for chunk in plan.keys.chunks(KEYS_PER_STATEMENT) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO subject_keys (subject, kek_id, wrapped, created_at_us) ",
        );
        query.push_values(chunk, |mut row, key| {
            row.push_bind(key.subject.as_str())
                .push_bind(key.kek_id.as_str())
                .push_bind(key.wrapped.as_slice())
                .push_bind(now_us);
        });
        query.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Undoes [`insert_keys`] within the transaction.
async fn remove_keys(conn: &mut SqliteConnection, plan: &Plan<'_>) -> Result<(), sqlx::Error> {
    for chunk in plan.keys.chunks(MAX_PARAMS) {
        let mut query = QueryBuilder::<Sqlite>::new("DELETE FROM subject_keys WHERE subject IN (");
        let mut list = query.separated(", ");
        for key in chunk {
            list.push_bind(key.subject.as_str());
        }
        query.push(")");
        query.build().execute(&mut *conn).await?;
    }
    Ok(())
}

async fn insert_rows(conn: &mut SqliteConnection, plan: &Plan<'_>) -> Result<(), sqlx::Error> {
    for rows in plan.rows.chunks(ROWS_PER_STATEMENT) {
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO events (position, stream_id, stream_version, event_id, \
             event_type, schema_version, payload, metadata, recorded_at_us, hash) ",
        );
        insert.push_values(rows, |mut values, row| {
            values
                .push_bind(row.position as i64)
                .push_bind(row.stream_id)
                .push_bind(row.stream_version as i64)
                .push_bind(row.event.event_id)
                .push_bind(row.event.event_type.as_str())
                .push_bind(row.event.schema_version as i64)
                .push_bind(row.event.payload.as_str())
                .push_bind(row.event.metadata.as_str())
                .push_bind(row.recorded_at_us)
                .push_bind(&row.hash[..]);
        });
        insert.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// The current version of each stream (0 for a new one). Each is the top of
/// the (stream_id, stream_version) index: one seek, however long the stream.
async fn versions_on(
    conn: &mut SqliteConnection,
    streams: &[String],
) -> Result<Vec<(String, u64)>, sqlx::Error> {
    let mut versions = Vec::with_capacity(streams.len());
    for chunk in streams.chunks(MAX_PARAMS) {
        let mut query = QueryBuilder::<Sqlite>::new("WITH wanted(stream_id) AS (VALUES ");
        let mut ids = query.separated(", ");
        for s in chunk {
            ids.push("(");
            ids.push_bind_unseparated(s.as_str());
            ids.push_unseparated(")");
        }
        query.push(
            ") SELECT stream_id, COALESCE((SELECT MAX(e.stream_version) FROM events e \
             WHERE e.stream_id = wanted.stream_id), 0) FROM wanted",
        );
        let rows: Vec<(String, i64)> = query.build_query_as().fetch_all(&mut *conn).await?;
        versions.extend(rows.into_iter().map(|(s, v)| (s, v as u64)));
    }
    Ok(versions)
}

async fn known_ids_on(
    conn: &mut SqliteConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, StoredId>, sqlx::Error> {
    let mut known = HashMap::new();
    for chunk in ids.chunks(MAX_PARAMS) {
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT event_id, stream_id, stream_version, position FROM events WHERE event_id IN (",
        );
        let mut list = query.separated(", ");
        for id in chunk {
            list.push_bind(*id);
        }
        query.push(")");
        let rows: Vec<(Uuid, String, i64, i64)> =
            query.build_query_as().fetch_all(&mut *conn).await?;
        known.extend(rows.into_iter().map(|(id, stream_id, version, position)| {
            (
                id,
                StoredId {
                    stream_id,
                    stream_version: version as u64,
                    position: position as u64,
                },
            )
        }));
    }
    Ok(known)
}

fn decode(row: &SqliteRow) -> Result<RawEvent, StoreError> {
    Ok(RawEvent {
        position: row.try_get::<i64, _>("position")? as u64,
        stream_id: row.try_get("stream_id")?,
        stream_version: row.try_get::<i64, _>("stream_version")? as u64,
        event_id: row.try_get("event_id")?,
        event_type: row.try_get("event_type")?,
        schema_version: row.try_get::<i64, _>("schema_version")? as u32,
        payload: row.try_get("payload")?,
        metadata: row.try_get("metadata")?,
        recorded_at_us: row.try_get("recorded_at_us")?,
        hash: row.try_get("hash")?,
    })
}

//! Per-person data keys, for crypto-shredding.
//!
//! Every data subject (the stream id of a person's entity, such as
//! `returnee-0190...`) gets a random 32-byte data key. The store holds it
//! only wrapped under a key-encryption key (KEK) that never enters the
//! database; personal fields of events are sealed under the subject's data
//! key. Erasing a subject destroys its wrapped key, so what was sealed under
//! it can no longer be read from the log as it stands, while the hash chain
//! over the sealed text stays intact. (A backup taken before the erasure
//! still holds the wrapped key: with the KEK it opens; keep backups no
//! longer than the retention period.)
//!
//! The store also has a key of its own (subject [`STORE_KEY`]), made with
//! the store's first vault: it marks the KEK the store was made with, so a
//! second KEK is refused even before any person's key exists, and it keys
//! the hashes of requests kept for idempotency (which must not let anyone
//! without it confirm a guess of what a request held).
//!
//! Both wrapping and sealing are XChaCha20-Poly1305 with a 24-byte nonce
//! (unique: a random prefix per process, then a count) in front of the
//! ciphertext. A wrapped key is bound to its subject
//! (associated data), so it cannot be moved to another subject's row; a
//! sealed value is bound to the caller's context, so it cannot be moved to
//! another field or event.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use fangkong_store::{EventStore, NewSubjectKey, StoreError, SubjectKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// Domain of the hash that names a KEK: the id says nothing else about it.
const KEK_ID_DOMAIN: &[u8] = b"fangkong kek id v1";
/// Start of the associated data of a wrapped key; the subject follows.
const WRAP_DOMAIN: &[u8] = b"fangkong data key v1\0";
/// The subject of the store's own key; no stream id starts with `~`.
pub const STORE_KEY: &str = "~store";
/// How far back each refresh looks again: a row is stamped before its
/// transaction commits, so one stamped just before the newest row seen may
/// become visible only after it.
const REFRESH_OVERLAP_US: i64 = 10_000_000;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("the key-encryption key {given} does not open this store's data keys (they were wrapped under {stored}): start with the key this store was created with")]
    WrongKek { given: String, stored: String },
    #[error("a key-encryption key is 64 hexadecimal digits (32 bytes)")]
    MalformedKek,
    #[error("no randomness: {0}")]
    Random(String),
    #[error("the data key of {subject} is damaged: it does not unwrap")]
    Damaged { subject: String },
    #[error("the personal data of {subject} was erased: nothing new is recorded under its key")]
    Erased { subject: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The key-encryption key: wraps every data key of a store. Kept outside
/// the database; zeroed when dropped.
pub struct Kek {
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl Kek {
    /// A KEK from its 64 hexadecimal digits (surrounding whitespace, such as
    /// a key file's final newline, is ignored).
    pub fn from_hex(text: &str) -> Result<Kek, VaultError> {
        let text = text.trim();
        if text.len() != 2 * KEY_LEN {
            return Err(VaultError::MalformedKek);
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        hex::decode_to_slice(text, &mut key[..]).map_err(|_| VaultError::MalformedKek)?;
        Ok(Kek { key })
    }

    /// A new KEK from the operating system's randomness.
    pub fn random() -> Result<Kek, VaultError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(&mut key[..])?;
        Ok(Kek { key })
    }

    /// The key's 64 hexadecimal digits, for writing it to its file once.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.key[..])
    }

    /// Names the KEK without revealing it: the first 16 hexadecimal digits
    /// of SHA-256("fangkong kek id v1" || key). Stored beside every key it
    /// wraps, so a wrong KEK is named as such instead of "damaged".
    pub fn id(&self) -> String {
        let digest = Sha256::new()
            .chain_update(KEK_ID_DOMAIN)
            .chain_update(&self.key[..])
            .finalize();
        hex::encode(&digest[..8])
    }

    fn wrap(&self, subject: &str, key: &DataKey) -> Result<Vec<u8>, VaultError> {
        seal_bytes(&self.key, &wrap_aad(subject), &key.0[..])
    }

    fn unwrap_key(&self, subject: &str, wrapped: &[u8]) -> Result<DataKey, VaultError> {
        let damaged = || VaultError::Damaged {
            subject: subject.to_owned(),
        };
        let clear = open_bytes(&self.key, &wrap_aad(subject), wrapped).ok_or_else(damaged)?;
        if clear.len() != KEY_LEN {
            return Err(damaged());
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&clear);
        Ok(DataKey(key))
    }
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kek({})", self.id())
    }
}

/// One subject's data key; zeroed when dropped.
#[derive(Clone)]
struct DataKey(Zeroizing<[u8; KEY_LEN]>);

impl DataKey {
    fn random() -> Result<DataKey, VaultError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        fill_random(&mut key[..])?;
        Ok(DataKey(key))
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

/// What this instance knows of one subject's key.
#[derive(Debug)]
enum Slot {
    Live(DataKey),
    /// Erased: final, never replaced by a key.
    Erased,
}

/// The key a subject's new events are sealed with: the key the store holds,
/// or, for a subject without one, a fresh key whose wrapped form goes into
/// the store in the transaction that appends the events it sealed
/// (`pending`), so the two are committed together, with one commit.
#[derive(Debug)]
pub struct SealingKey {
    subject: String,
    key: DataKey,
    /// The key to store with the append, when the subject has none yet.
    pub pending: Option<NewSubjectKey>,
    /// Where a fresh key is known as pending until it is committed, or
    /// forgotten when this is dropped without.
    vault: Option<Vault>,
}

impl SealingKey {
    /// The same key for a later append that follows the one storing it,
    /// in order, on the same chain: it stores nothing, and committing or
    /// dropping it changes nothing.
    pub fn follower(&self) -> SealingKey {
        SealingKey {
            subject: self.subject.clone(),
            key: self.key.clone(),
            pending: None,
            vault: None,
        }
    }
}

impl Drop for SealingKey {
    fn drop(&mut self) {
        if let Some(vault) = self.vault.take() {
            vault.forget_pending(&self.subject, &self.key);
        }
    }
}

/// What one sealed value opened to.
#[derive(Debug, Clone, PartialEq)]
pub enum Opened<T> {
    Clear(T),
    /// The subject's key was erased: the value is gone for good.
    Erased,
    /// No key for the subject is known here (another instance's new key
    /// not yet loaded): try again after the next refresh.
    Unavailable,
}

/// The data keys of one store, in memory, unwrapped. Cheap to clone.
#[derive(Clone)]
pub struct Vault {
    inner: Arc<Inner>,
}

struct Inner {
    store: EventStore,
    kek: Kek,
    kek_id: String,
    keys: RwLock<HashMap<String, Slot>>,
    /// Fresh keys whose append is on its way: a reader that sees the
    /// append committed before the writer has noted it opens with these.
    /// Never used to seal (a key not yet stored may never be).
    pending: std::sync::Mutex<HashMap<String, Vec<DataKey>>>,
    /// The newest creation or erasure stamp seen in the store's rows: the
    /// next refresh asks for rows changed since shortly before it. Stamps
    /// come from one clock (the database server's, or the one machine's
    /// for SQLite), so instances' own clocks do not matter.
    seen_us: AtomicI64,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault")
            .field("kek", &self.inner.kek)
            .field("subjects", &self.read_keys().len())
            .finish()
    }
}

impl Vault {
    /// Loads every key of the store into memory, unwrapping each under
    /// `kek`. Refuses with [`VaultError::WrongKek`] when a live key was
    /// wrapped under another KEK, and [`VaultError::Damaged`] when one that
    /// names this KEK does not unwrap. A store without live keys accepts
    /// any KEK.
    pub async fn open(store: EventStore, kek: Kek) -> Result<Vault, VaultError> {
        let kek_id = kek.id();
        let rows = store.subject_keys().await?;
        let mut keys = HashMap::with_capacity(rows.len());
        let mut seen = 0;
        for row in rows {
            seen = seen.max(changed_at(&row));
            let slot = slot_of(&kek, &kek_id, &row)?;
            keys.insert(row.subject, slot);
        }
        let vault = Vault {
            inner: Arc::new(Inner {
                store,
                kek,
                kek_id,
                keys: RwLock::new(keys),
                pending: Default::default(),
                seen_us: AtomicI64::new(seen),
            }),
        };
        // The first vault of a store claims it for its KEK; any other KEK
        // is refused from then on (the row it finds is not under it).
        vault.key_for_writing(STORE_KEY).await?;
        Ok(vault)
    }

    /// HMAC-SHA256 of `parts` (each length-prefixed) under the store's own
    /// key: for hashes kept beside the log that must not confirm a guess
    /// of what they cover to anyone without the key.
    pub fn keyed_hash(&self, parts: &[&[u8]]) -> Result<[u8; 32], VaultError> {
        use hmac::Mac as _;
        let keys = self.read_keys();
        let Some(Slot::Live(key)) = keys.get(STORE_KEY) else {
            return Err(VaultError::Damaged {
                subject: STORE_KEY.to_owned(),
            });
        };
        let mut mac =
            <hmac::Hmac<Sha256> as hmac::Mac>::new_from_slice(&key.0[..]).map_err(|_| {
                VaultError::Damaged {
                    subject: STORE_KEY.to_owned(),
                }
            })?;
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        Ok(mac.finalize().into_bytes().into())
    }

    /// The id of the KEK this vault runs under.
    pub fn kek_id(&self) -> String {
        self.inner.kek_id.clone()
    }

    /// Seals `plaintext` for `subject`, binding `context` (say, the event
    /// type and field) as associated data: base64url without padding of
    /// nonce (24 bytes) || ciphertext. Creates the subject's key first if
    /// it has none; refuses with [`VaultError::Erased`] once it was erased.
    pub async fn seal(
        &self,
        subject: &str,
        context: &[u8],
        plaintext: &serde_json::Value,
    ) -> Result<String, VaultError> {
        let key = self.key_for_writing(subject).await?;
        Ok(URL_SAFE_NO_PAD.encode(seal_json(&key.0, context, plaintext)?))
    }

    /// The key to seal `subject`'s new events with (memory only): its key,
    /// or a fresh one to be stored with the append. Refused once the
    /// subject was erased.
    pub fn sealing_key(&self, subject: &str) -> Result<SealingKey, VaultError> {
        match self.read_keys().get(subject) {
            Some(Slot::Live(key)) => {
                return Ok(SealingKey {
                    subject: subject.to_owned(),
                    key: key.clone(),
                    pending: None,
                    vault: None,
                })
            }
            Some(Slot::Erased) => return Err(erased(subject)),
            None => {}
        }
        let key = DataKey::random()?;
        let wrapped = self.inner.kek.wrap(subject, &key)?;
        self.pending()
            .entry(subject.to_owned())
            .or_default()
            .push(key.clone());
        Ok(SealingKey {
            subject: subject.to_owned(),
            key,
            vault: Some(self.clone()),
            pending: Some(NewSubjectKey {
                subject: subject.to_owned(),
                kek_id: self.inner.kek_id.clone(),
                wrapped,
            }),
        })
    }

    /// Seals `plaintext` under `key`, binding `context`: as [`Vault::seal`].
    pub fn seal_with(
        &self,
        key: &SealingKey,
        context: &[u8],
        plaintext: &serde_json::Value,
    ) -> Result<String, VaultError> {
        Ok(URL_SAFE_NO_PAD.encode(seal_json(&key.key.0, context, plaintext)?))
    }

    /// The append that stored `key` (if it was new) committed: it is the
    /// subject's key from now on, unless an erasure came first.
    pub fn committed(&self, key: SealingKey) {
        if key.pending.is_some() {
            remember(
                &mut self.write_keys(),
                key.subject.clone(),
                Slot::Live(key.key.clone()),
            );
        }
        // Noted, then no longer pending: dropping it forgets it there.
        drop(key);
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<DataKey>>> {
        self.inner
            .pending
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn forget_pending(&self, subject: &str, key: &DataKey) {
        let mut pending = self.pending();
        if let Some(keys) = pending.get_mut(subject) {
            keys.retain(|k| k.0[..] != key.0[..]);
            if keys.is_empty() {
                pending.remove(subject);
            }
        }
    }

    /// Loads `subject`'s stored key (after an append found another writer
    /// had made it first).
    pub async fn learn(&self, subject: &str) -> Result<(), VaultError> {
        if let Some(row) = self.inner.store.subject_key(subject).await? {
            self.note_seen(&row);
            let slot = slot_of(&self.inner.kek, &self.inner.kek_id, &row)?;
            remember(&mut self.write_keys(), row.subject, slot);
        }
        Ok(())
    }

    /// Opens a sealed value from memory alone. [`Opened::Erased`] when the
    /// subject's key was erased, [`Opened::Unavailable`] when no key of the
    /// subject is known here; [`VaultError::Damaged`] when the value does
    /// not authenticate under the key and `context`.
    pub fn open_sealed(
        &self,
        subject: &str,
        context: &[u8],
        sealed: &str,
    ) -> Result<Opened<serde_json::Value>, VaultError> {
        let damaged = || VaultError::Damaged {
            subject: subject.to_owned(),
        };
        let keys = self.read_keys();
        let key = match keys.get(subject) {
            None => {
                drop(keys);
                // Perhaps sealed under a key whose append committed a
                // moment ago and is not noted here yet.
                let bytes = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| damaged())?;
                let pending = self.pending();
                let opened = pending
                    .get(subject)
                    .into_iter()
                    .flatten()
                    .find_map(|key| open_bytes(&key.0, context, &bytes));
                drop(pending);
                return match opened {
                    Some(clear) => serde_json::from_slice(&clear)
                        .map(Opened::Clear)
                        .map_err(|_| damaged()),
                    None => Ok(Opened::Unavailable),
                };
            }
            Some(Slot::Erased) => return Ok(Opened::Erased),
            Some(Slot::Live(key)) => key,
        };
        let bytes = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| damaged())?;
        let clear = open_bytes(&key.0, context, &bytes).ok_or_else(damaged)?;
        drop(keys);
        let value = serde_json::from_slice(&clear).map_err(|_| damaged())?;
        Ok(Opened::Clear(value))
    }

    /// True when this instance knows the subject's key was erased.
    pub fn is_erased(&self, subject: &str) -> bool {
        matches!(self.read_keys().get(subject), Some(Slot::Erased))
    }

    /// True when this instance holds a live key of the subject.
    pub fn has_key(&self, subject: &str) -> bool {
        matches!(self.read_keys().get(subject), Some(Slot::Live(_)))
    }

    /// Another instance recorded the subject's erasure (its event is in
    /// the log): the key held here is zeroed and forgotten now, before the
    /// store's tombstone is next read, and nothing new is sealed under it.
    /// Never undone.
    pub fn erased_elsewhere(&self, subject: &str) {
        if subject != STORE_KEY {
            remember(&mut self.write_keys(), subject.to_owned(), Slot::Erased);
        }
    }

    /// Destroys the keys of `subjects`: in the store (the row stays as a
    /// tombstone, with `reason`) and in memory. Answers how many keys were
    /// destroyed now; subjects already erased or without a key count 0.
    pub async fn erase(&self, subjects: &[String], reason: &str) -> Result<u64, VaultError> {
        // The store's own key is no person's: never erased.
        let people: Vec<String>;
        let subjects = if subjects.iter().any(|s| s == STORE_KEY) {
            people = subjects
                .iter()
                .filter(|s| *s != STORE_KEY)
                .cloned()
                .collect();
            &people[..]
        } else {
            subjects
        };
        let erased = self
            .inner
            .store
            .erase_subject_keys(subjects, reason)
            .await?;
        let mut live_here = 0;
        let mut unknown = Vec::new();
        {
            let mut keys = self.write_keys();
            for subject in subjects {
                match keys.get_mut(subject) {
                    Some(slot @ Slot::Live(_)) => {
                        // Dropping the key zeroes it.
                        *slot = Slot::Erased;
                        live_here += 1;
                    }
                    Some(Slot::Erased) => {}
                    None => unknown.push(subject),
                }
            }
        }
        // The store destroyed keys this instance had not loaded yet
        // (another instance's, or one being created here right now): mark
        // them too, so a seal in flight cannot keep using one.
        if erased > live_here {
            for subject in unknown {
                if let Some(row) = self.inner.store.subject_key(subject).await? {
                    self.note_seen(&row);
                    if row.is_erased() {
                        self.write_keys().insert(row.subject, Slot::Erased);
                    }
                }
            }
        }
        tracing::info!(erased, "data keys erased");
        Ok(erased)
    }

    /// Loads keys created, and forgets keys erased, by other instances
    /// since the last refresh (with an overlap). Every row is applied that
    /// can be; the first that cannot (wrapped under another KEK, or
    /// damaged) is answered as the error.
    pub async fn refresh(&self) -> Result<(), VaultError> {
        let since = self
            .inner
            .seen_us
            .load(Ordering::Acquire)
            .saturating_sub(REFRESH_OVERLAP_US);
        let rows = self.inner.store.subject_keys_changed_since(since).await?;
        let mut changes = Vec::new();
        let mut first_error = None;
        {
            let keys = self.read_keys();
            for row in &rows {
                self.note_seen(row);
                let known = keys.get(&row.subject);
                if matches!(known, Some(Slot::Erased)) || (known.is_some() && !row.is_erased()) {
                    continue;
                }
                match slot_of(&self.inner.kek, &self.inner.kek_id, row) {
                    Ok(slot) => changes.push((row.subject.clone(), slot)),
                    Err(error) => {
                        first_error.get_or_insert(error);
                    }
                }
            }
        }
        if !changes.is_empty() {
            let mut keys = self.write_keys();
            for (subject, slot) in changes {
                remember(&mut keys, subject, slot);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// The subject's data key, creating, wrapping and storing one first if
    /// it has none. Concurrent creators (here or in other instances) all
    /// end with the one key the store kept.
    async fn key_for_writing(&self, subject: &str) -> Result<DataKey, VaultError> {
        match self.read_keys().get(subject) {
            Some(Slot::Live(key)) => return Ok(key.clone()),
            Some(Slot::Erased) => return Err(erased(subject)),
            None => {}
        }
        let fresh = DataKey::random()?;
        let wrapped = self.inner.kek.wrap(subject, &fresh)?;
        let row = self
            .inner
            .store
            .put_subject_key(subject, &self.inner.kek_id, &wrapped)
            .await?;
        self.note_seen(&row);
        let slot = if row.wrapped.as_deref() == Some(&wrapped[..]) {
            Slot::Live(fresh)
        } else {
            slot_of(&self.inner.kek, &self.inner.kek_id, &row)?
        };
        match remember(&mut self.write_keys(), subject.to_owned(), slot) {
            Slot::Live(key) => Ok(key.clone()),
            Slot::Erased => Err(erased(subject)),
        }
    }

    fn note_seen(&self, row: &SubjectKey) {
        self.inner
            .seen_us
            .fetch_max(changed_at(row), Ordering::AcqRel);
    }

    // A panic elsewhere while holding the lock leaves the map consistent
    // (every change is one insert), so a poisoned lock is used as is.
    fn read_keys(&self) -> RwLockReadGuard<'_, HashMap<String, Slot>> {
        self.inner
            .keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write_keys(&self) -> RwLockWriteGuard<'_, HashMap<String, Slot>> {
        self.inner
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// Rewraps every live data key of the store from `old` to `new`, in one
/// transaction; answers how many. Refuses with [`VaultError::WrongKek`]
/// when a live key is not under `old`. Run it with the servers stopped: a
/// key created meanwhile under `old` would stay under it.
pub async fn rotate_kek(store: &EventStore, old: &Kek, new: &Kek) -> Result<u64, VaultError> {
    let (old_id, new_id) = (old.id(), new.id());
    let mut rewrapped = Vec::new();
    for row in store.subject_keys().await? {
        let Some(wrapped) = &row.wrapped else {
            continue;
        };
        if row.kek_id != old_id {
            return Err(VaultError::WrongKek {
                given: old_id,
                stored: row.kek_id,
            });
        }
        let key = old.unwrap_key(&row.subject, wrapped)?;
        let again = new.wrap(&row.subject, &key)?;
        rewrapped.push((row.subject, new_id.clone(), again));
    }
    Ok(store.rewrap_subject_keys(&rewrapped).await?)
}

/// Records what was learnt of a subject's key and answers what is now held:
/// an erasure replaces a key (and zeroes it); a key never replaces an
/// erasure, nor the key already held (both came from the one stored row).
fn remember(keys: &mut HashMap<String, Slot>, subject: String, slot: Slot) -> &Slot {
    match slot {
        Slot::Erased => {
            let held = keys.entry(subject).or_insert(Slot::Erased);
            *held = Slot::Erased;
            held
        }
        live => keys.entry(subject).or_insert(live),
    }
}

/// The in-memory slot for a stored row, unwrapping its key under `kek`.
fn slot_of(kek: &Kek, kek_id: &str, row: &SubjectKey) -> Result<Slot, VaultError> {
    match &row.wrapped {
        None => Ok(Slot::Erased),
        Some(_) if row.kek_id != kek_id => Err(VaultError::WrongKek {
            given: kek_id.to_owned(),
            stored: row.kek_id.clone(),
        }),
        Some(wrapped) => kek.unwrap_key(&row.subject, wrapped).map(Slot::Live),
    }
}

fn changed_at(row: &SubjectKey) -> i64 {
    row.created_at_us.max(row.erased_at_us.unwrap_or(i64::MIN))
}

fn erased(subject: &str) -> VaultError {
    VaultError::Erased {
        subject: subject.to_owned(),
    }
}

fn wrap_aad(subject: &str) -> Vec<u8> {
    [WRAP_DOMAIN, subject.as_bytes()].concat()
}

fn fill_random(buf: &mut [u8]) -> Result<(), VaultError> {
    getrandom::getrandom(buf).map_err(|e| VaultError::Random(e.to_string()))
}

/// nonce || ciphertext || tag of `msg`.
fn seal_bytes(key: &[u8; KEY_LEN], aad: &[u8], msg: &[u8]) -> Result<Vec<u8>, VaultError> {
    seal_written(key, aad, msg.len(), |buffer| buffer.extend_from_slice(msg))
}

/// The JSON text of `value`, sealed as [`seal_bytes`].
fn seal_json(
    key: &[u8; KEY_LEN],
    aad: &[u8],
    value: &serde_json::Value,
) -> Result<Vec<u8>, VaultError> {
    let mut length = Length(0);
    // Serialising a JSON value cannot fail: its map keys are strings, and
    // neither writer refuses bytes.
    serde_json::to_writer(&mut length, value).expect("a JSON value always serialises");
    seal_written(key, aad, length.0, |buffer| {
        serde_json::to_writer(buffer, value).expect("a JSON value always serialises")
    })
}

/// Counts what a serialiser writes, to size the buffer it writes to next.
struct Length(usize);

impl std::io::Write for Length {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 += bytes.len();
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// nonce || ciphertext || tag of the `length` plaintext bytes `write`
/// puts into the buffer: written straight into a buffer of exactly its
/// final size and encrypted there, so the plaintext is never copied, never
/// left in a buffer outgrown, and is overwritten by its ciphertext (or
/// zeroed, should anything stop it first).
fn seal_written(
    key: &[u8; KEY_LEN],
    aad: &[u8],
    length: usize,
    write: impl FnOnce(&mut Vec<u8>),
) -> Result<Vec<u8>, VaultError> {
    let nonce = next_nonce()?;
    let mut sealed = Zeroizing::new(Vec::with_capacity(NONCE_LEN + length + TAG_LEN));
    sealed.extend_from_slice(&nonce);
    write(&mut sealed);
    let tag = XChaCha20Poly1305::new(Key::from_slice(key))
        .encrypt_in_place_detached(XNonce::from_slice(&nonce), aad, &mut sealed[NONCE_LEN..])
        // The only refusal is for a message of 256 GiB or more.
        .expect("a message this size always encrypts");
    sealed.extend_from_slice(&tag);
    // Ciphertext from here on: nothing left to zero.
    Ok(std::mem::take(&mut *sealed))
}

/// The process's nonces: a random 16-byte prefix drawn once, then a 64-bit
/// count. Unique under every key without a system call per seal (a
/// getrandom call per nonce was a third of what sealing a short field
/// cost); another process, or this one after a restart, draws another
/// prefix, and two prefixes meet with probability 2^-128. A running process
/// must not be cloned (a fork, or a VM snapshot resumed twice): the clones
/// would count on from the same prefix.
static NONCES: OnceLock<([u8; NONCE_LEN - 8], AtomicU64)> = OnceLock::new();

fn next_nonce() -> Result<[u8; NONCE_LEN], VaultError> {
    let (prefix, count) = match NONCES.get() {
        Some(nonces) => nonces,
        None => {
            let mut prefix = [0u8; NONCE_LEN - 8];
            fill_random(&mut prefix)?;
            NONCES.get_or_init(|| (prefix, AtomicU64::new(0)))
        }
    };
    let mut nonce = [0u8; NONCE_LEN];
    nonce[..NONCE_LEN - 8].copy_from_slice(prefix);
    nonce[NONCE_LEN - 8..].copy_from_slice(&count.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    Ok(nonce)
}

/// The plaintext of nonce || ciphertext, or `None` when it does not
/// authenticate.
fn open_bytes(key: &[u8; KEY_LEN], aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    XChaCha20Poly1305::new(Key::from_slice(key))
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad,
            },
        )
        .ok()
        .map(Zeroizing::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZERO_HEX: &str = "0000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn a_kek_reads_back_from_its_hex_with_surrounding_whitespace_ignored() {
        let kek = Kek::random().expect("randomness");
        let again = Kek::from_hex(&format!("  {}\n", kek.to_hex())).expect("parses");
        assert_eq!(again.to_hex(), kek.to_hex());
        assert_eq!(again.id(), kek.id());
        assert_ne!(Kek::random().expect("randomness").id(), kek.id());
    }

    #[test]
    fn a_kek_that_is_not_64_hex_digits_is_malformed() {
        for text in [
            "",
            &ZERO_HEX[1..],
            &format!("{ZERO_HEX}00"),
            &ZERO_HEX.replacen('0', "g", 1),
            &ZERO_HEX.replacen("00", "é", 1),
            &format!("{} {}", &ZERO_HEX[..32], &ZERO_HEX[33..]),
        ] {
            assert!(
                matches!(Kek::from_hex(text), Err(VaultError::MalformedKek)),
                "{text:?} must be refused"
            );
        }
    }

    #[test]
    fn a_kek_id_is_a_domain_separated_hash_that_debug_shows_instead_of_the_key() {
        // Pinned: the id is stored beside every wrapped key, so it must
        // never change for the same KEK.
        let zero = Kek::from_hex(ZERO_HEX).expect("parses");
        assert_eq!(zero.id(), "08e69e853c4c682f");
        let counting: String = (0u8..32).map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            Kek::from_hex(&counting).expect("parses").id(),
            "6d9812cc22cd8878"
        );
        assert_eq!(format!("{zero:?}"), "Kek(08e69e853c4c682f)");
    }

    #[test]
    fn a_wrapped_key_unwraps_only_for_its_own_subject_and_kek() {
        let kek = Kek::random().expect("randomness");
        let key = DataKey::random().expect("randomness");
        let wrapped = kek.wrap("returnee-1", &key).expect("wraps");
        assert_eq!(wrapped.len(), NONCE_LEN + KEY_LEN + TAG_LEN);
        let unwrapped = kek.unwrap_key("returnee-1", &wrapped).expect("unwraps");
        assert_eq!(unwrapped.0[..], key.0[..]);
        assert!(matches!(
            kek.unwrap_key("returnee-2", &wrapped),
            Err(VaultError::Damaged { subject }) if subject == "returnee-2"
        ));
        let other = Kek::random().expect("randomness");
        assert!(other.unwrap_key("returnee-1", &wrapped).is_err());
        assert!(kek.unwrap_key("returnee-1", &wrapped[..30]).is_err());
    }

    #[test]
    fn sealing_the_same_value_twice_gives_different_text() {
        let key = DataKey::random().expect("randomness");
        let a = seal_bytes(&key.0, b"ctx", b"same").expect("seals");
        let b = seal_bytes(&key.0, b"ctx", b"same").expect("seals");
        assert_ne!(a, b, "every seal has a nonce of its own");
        assert_eq!(
            open_bytes(&key.0, b"ctx", &a).as_deref().map(Vec::as_slice),
            Some(&b"same"[..])
        );
    }

    #[test]
    fn nonces_are_never_repeated_within_a_process() {
        let drawn: std::collections::HashSet<[u8; NONCE_LEN]> = (0..10_000)
            .map(|_| next_nonce().expect("a nonce"))
            .collect();
        assert_eq!(drawn.len(), 10_000);
    }

    #[test]
    fn values_sealed_in_the_earlier_layout_still_open() {
        // Sealed as stores written before the in-place sealing did: a
        // random nonce, then the AEAD's ciphertext-and-tag, from `encrypt`.
        let key = DataKey::random().expect("randomness");
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce).expect("randomness");
        let ciphertext = XChaCha20Poly1305::new(Key::from_slice(&key.0[..]))
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: br#"{"name":"x"}"#,
                    aad: b"ctx",
                },
            )
            .expect("encrypts");
        let earlier = [&nonce[..], &ciphertext].concat();
        assert_eq!(
            open_bytes(&key.0, b"ctx", &earlier)
                .as_deref()
                .map(Vec::as_slice),
            Some(&br#"{"name":"x"}"#[..])
        );
        // And the current layout is byte for byte the same form.
        let now = seal_json(&key.0, b"ctx", &serde_json::json!({"name": "x"})).expect("seals");
        assert_eq!(now.len(), earlier.len());
        assert_eq!(
            open_bytes(&key.0, b"ctx", &now)
                .as_deref()
                .map(Vec::as_slice),
            Some(&br#"{"name":"x"}"#[..])
        );
    }
}

//! Keys kept in files outside the database (the one that seals saved read
//! models, the one that signs tree heads): created once, readable by the
//! service's user alone.

use std::io::Write;
use std::path::Path;

/// Reads the key at `path` with `parse`, or creates it (mode 0600, its
/// directory 0700) from `create`, which answers the key and its text.
pub fn load_or_create<T>(
    path: &Path,
    what: &str,
    parse: impl Fn(&str) -> Result<T, String>,
    create: impl FnOnce() -> anyhow::Result<(T, String)>,
) -> anyhow::Result<T> {
    let read = |text: &str| {
        parse(text).map_err(|e| anyhow::anyhow!("{what} file {}: {e}", path.display()))
    };
    match std::fs::read_to_string(path) {
        Ok(text) => return read(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("cannot read the {what} file {}: {e}", path.display()),
    }
    let (key, text) = create()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        options.mode(0o600);
        if let Some(dir) = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty() && !d.exists())
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
    }
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            tracing::info!(path = %path.display(), "created the {what} file");
            Ok(key)
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read(&std::fs::read_to_string(path)?)
        }
        Err(e) => anyhow::bail!("cannot create the {what} file {}: {e}", path.display()),
    }
}

/// The key that seals saved read models.
pub fn state_key(path: &Path) -> anyhow::Result<fangkong_projections::StateKey> {
    load_or_create(
        path,
        "state key",
        |text| fangkong_projections::StateKey::from_hex(text).map_err(|e| e.to_string()),
        || {
            let key = fangkong_projections::StateKey::random()?;
            let text = key.to_hex();
            Ok((key, text))
        },
    )
}

/// The key that signs tree heads. A key file others may read is refused:
/// whoever reads it can sign heads.
pub fn signing_key(path: &Path) -> anyhow::Result<fangkong_heads::SigningKey> {
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            anyhow::bail!(
                "the signing key file {} may be read by others (mode {:o}): chmod 600 it",
                path.display(),
                mode & 0o777
            );
        }
    }
    load_or_create(
        path,
        "signing key",
        |text| fangkong_heads::SigningKey::from_hex(text).map_err(|e| e.to_string()),
        || {
            let key = fangkong_heads::SigningKey::random()?;
            let text = key.to_hex();
            Ok((key, text))
        },
    )
}

/// The key-encryption key personal data keys are wrapped under. A key
/// file others may read is refused (whoever reads it and the database
/// reads every person's data); a missing one is created only for a store
/// that holds no data keys yet, never over keys wrapped under another.
pub async fn key_encryption_key(
    hex: Option<&str>,
    path: &Path,
    store: &fangkong_store::EventStore,
) -> anyhow::Result<fangkong_vault::Kek> {
    if let Some(hex) = hex {
        return fangkong_vault::Kek::from_hex(hex)
            .map_err(|e| anyhow::anyhow!("FANGKONG_KEK: {e}"));
    }
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            anyhow::bail!(
                "the key-encryption key file {} may be read by others (mode {:o}): chmod 600 it",
                path.display(),
                mode & 0o777
            );
        }
    }
    if !path.exists() {
        let held = store.subject_keys().await?;
        if let Some(row) = held.iter().find(|row| row.wrapped.is_some()) {
            anyhow::bail!(
                "no key-encryption key at {} (nor FANGKONG_KEK), but this store's personal data \
                 keys are wrapped under KEK {}: give the key they were made with \
                 (--kek-file or FANGKONG_KEK); without it no one's personal data can be read",
                path.display(),
                row.kek_id
            );
        }
    }
    load_or_create(
        path,
        "key-encryption key",
        |text| fangkong_vault::Kek::from_hex(text).map_err(|e| e.to_string()),
        || {
            let key = fangkong_vault::Kek::random()?;
            let text = key.to_hex();
            Ok((key, text))
        },
    )
}

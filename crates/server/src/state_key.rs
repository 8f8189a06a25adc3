//! The key that seals saved read models, kept in a file outside the
//! database: created once, readable by the service's user alone.

use std::io::Write;
use std::path::Path;

use fangkong_projections::StateKey;

/// Reads the key at `path`, or creates it (mode 0600, its directory 0700)
/// with a fresh random key.
pub fn load_or_create(path: &Path) -> anyhow::Result<StateKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            return StateKey::from_hex(&text)
                .map_err(|e| anyhow::anyhow!("state key file {}: {e}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("cannot read the state key file {}: {e}", path.display()),
    }
    let key = StateKey::random()?;
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
            file.write_all(key.to_hex().as_bytes())?;
            file.sync_all()?;
            tracing::info!(path = %path.display(), "created the state key file");
            Ok(key)
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path)?;
            StateKey::from_hex(&text)
                .map_err(|e| anyhow::anyhow!("state key file {}: {e}", path.display()))
        }
        Err(e) => anyhow::bail!("cannot create the state key file {}: {e}", path.display()),
    }
}

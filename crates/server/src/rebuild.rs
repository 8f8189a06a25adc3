//! `fangkong rebuild`: the read models replayed from position 0, compared
//! with the state the running service saved, then saved in their place.

use std::process::ExitCode;

use fangkong_domain::Township;
use fangkong_projections::runtime::{CHECKPOINT_NAME, STATE_FORMAT};
use fangkong_projections::{ReadModels, StateKey};
use fangkong_store::EventStore;

pub async fn run(
    store: &EventStore,
    township: Township,
    key: &StateKey,
) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let saved = store.load_checkpoint(CHECKPOINT_NAME).await?;
    // Compare at the saved position first: the log may have grown since.
    let mut differed = false;
    let mut models = ReadModels::default();
    if let Some(saved) = saved.as_ref().filter(|s| s.format == STATE_FORMAT) {
        models
            .replay_until(store, &township, saved.position)
            .await?;
        let same_log = store.hash_at(saved.position).await? == Some(saved.hash);
        match key.unseal(saved) {
            Some(kept)
                if same_log && kept.board == models.board && kept.roster == models.roster =>
            {
                eprintln!(
                    "saved state at position {} equals the rebuild",
                    saved.position
                );
            }
            _ => {
                differed = true;
                eprintln!(
                    "saved state at position {} DIFFERS from the rebuild; replacing it",
                    saved.position
                );
            }
        }
    } else if let Some(saved) = saved {
        eprintln!(
            "saved state is in format {} (current {STATE_FORMAT}); replacing it",
            saved.format
        );
    }
    let head = store.head().await?;
    models.replay_until(store, &township, head.position).await?;
    store
        .save_checkpoint(
            CHECKPOINT_NAME,
            &key.sealed(
                models.position(),
                store.hash_at(models.position()).await?.unwrap_or(head.hash),
                models.to_state()?,
            ),
        )
        .await?;
    println!(
        "rebuilt read models to position {} in {:.1}s",
        models.position(),
        started.elapsed().as_secs_f64()
    );
    Ok(if differed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

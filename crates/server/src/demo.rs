//! The demo township (to come).

use fangkong_domain::Township;
use fangkong_store::EventStore;

pub async fn fill(_store: &EventStore, _township: Township) -> anyhow::Result<u64> {
    Ok(0)
}

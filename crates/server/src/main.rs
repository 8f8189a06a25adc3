//! `fangkong`: the service binary.
//!
//! For now it carries the store's offline tools; `serve` arrives with the
//! HTTP API.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use fangkong_store::{redact_url, EventStore};

#[derive(Debug, Parser)]
#[command(
    name = "fangkong",
    version,
    about = "The township epidemic control record"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct Store {
    /// The event store: sqlite://PATH (created if missing) or postgres://...
    #[arg(
        long,
        env = "FANGKONG_DATABASE_URL",
        default_value = "sqlite://fangkong-data/fangkong.db"
    )]
    database_url: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Walk the hash chain and report the first position that no longer
    /// matches. Exits 1 on a break.
    Verify {
        #[command(flatten)]
        store: Store,
        /// First position to check (the stored hash before it is trusted).
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Last position to check; the head when absent.
        #[arg(long)]
        to: Option<u64>,
    },
    /// Print the chain head (position and hash): what an auditor keeps.
    Head {
        #[command(flatten)]
        store: Store,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("fangkong: {error:#}");
            ExitCode::from(2)
        }
    }
}

async fn open(store: &Store) -> anyhow::Result<EventStore> {
    EventStore::open(&store.database_url).await.map_err(|e| {
        anyhow::Error::new(e).context(format!(
            "cannot open the event store at {}",
            redact_url(&store.database_url)
        ))
    })
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Verify { store, from, to } => {
            let store = open(&store).await?;
            let head = store.head().await?;
            let last = to.unwrap_or(head.position).min(head.position);
            let mut shown = 0u64;
            let report = store
                .verify_with_progress(from, to, |position| {
                    // A line per tenth of the way is progress enough for a terminal or a log.
                    let step = (last / 10).max(1);
                    if position >= shown + step || position == last {
                        shown = position;
                        eprintln!("verified {position} of {last}");
                    }
                })
                .await?;
            store.close().await;
            match report.first_break {
                None => {
                    println!(
                        "intact: {} events checked, head {} {}",
                        report.checked,
                        report.verified_head.position,
                        hex::encode(report.verified_head.hash)
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Some(broken) => {
                    println!(
                        "BROKEN at position {}: {broken} ({} events verified before it)",
                        broken.position(),
                        report.checked
                    );
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Head { store } => {
            let store = open(&store).await?;
            let head = store.head().await?;
            store.close().await;
            println!("{} {}", head.position, hex::encode(head.hash));
            Ok(ExitCode::SUCCESS)
        }
    }
}

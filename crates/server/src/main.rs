//! `fangkong`: the service binary.
//!
//! `serve` runs the HTTP API; `verify` and `head` are the auditor's offline
//! tools; `rebuild` replays the read models; `openapi` prints the contract.

use std::process::ExitCode;

mod audit;
mod rebuild;
mod serve;
mod state_key;
mod tokens;
mod witness;

use fangkong_domain::access::Role;

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
    /// Milliseconds a statement may wait for a lock or run before the
    /// request is answered 503 (PostgreSQL lock_timeout and
    /// statement_timeout; SQLite's busy timeout).
    #[arg(long, env = "FANGKONG_STORE_TIMEOUT_MS", default_value_t = 3_000)]
    store_timeout_ms: u64,
}

#[derive(Debug, clap::Args)]
struct StateKeyArgs {
    /// The key that seals the saved read models, 64 hex digits. Keep it out
    /// of the database; every instance serving one store needs the same.
    #[arg(long, env = "FANGKONG_STATE_KEY", hide_env_values = true)]
    state_key: Option<String>,
    /// Where the key is kept when FANGKONG_STATE_KEY is not set; created
    /// (mode 0600) with a random key when missing. Default: `state.key`
    /// beside a SQLite database, `fangkong-data/state.key` for PostgreSQL.
    #[arg(long, env = "FANGKONG_STATE_KEY_FILE")]
    state_key_file: Option<std::path::PathBuf>,
}

impl StateKeyArgs {
    fn key(&self, store: &Store) -> anyhow::Result<fangkong_projections::StateKey> {
        if let Some(hex) = &self.state_key {
            return fangkong_projections::StateKey::from_hex(hex)
                .map_err(|e| anyhow::anyhow!("FANGKONG_STATE_KEY: {e}"));
        }
        let path = match &self.state_key_file {
            Some(path) => path.clone(),
            None => default_key_file(&store.database_url),
        };
        state_key::state_key(&path)
    }
}

/// The key-encryption key every person's data key is wrapped under, 64
/// hex digits, from the environment only (a command-line argument would
/// show in the process list). Keep it out of the database and its
/// backups; every instance serving one store needs the same.
const KEK_ENV: &str = "FANGKONG_KEK";

#[derive(Debug, clap::Args)]
struct KekArgs {
    /// Where the key-encryption key is kept when FANGKONG_KEK (64 hex
    /// digits, from the environment only) is not set; created (mode
    /// 0600) with a random key when missing and the store holds no data
    /// keys. Default: `kek.key` beside a SQLite database,
    /// `fangkong-data/kek.key` for PostgreSQL.
    #[arg(long, env = "FANGKONG_KEK_FILE")]
    kek_file: Option<std::path::PathBuf>,
}

impl KekArgs {
    fn path(&self, store: &Store) -> std::path::PathBuf {
        match &self.kek_file {
            Some(path) => path.clone(),
            None => default_key_file(&store.database_url).with_file_name("kek.key"),
        }
    }

    /// The KEK given in the environment, if any.
    fn given_in_env(&self) -> Option<String> {
        std::env::var(KEK_ENV).ok().filter(|k| !k.trim().is_empty())
    }

    async fn kek(&self, args: &Store, store: &EventStore) -> anyhow::Result<fangkong_vault::Kek> {
        state_key::key_encryption_key(self.given_in_env().as_deref(), &self.path(args), store).await
    }

    /// The store's data keys, opened under the KEK (refusing a wrong one).
    async fn vault(
        &self,
        args: &Store,
        store: &EventStore,
    ) -> anyhow::Result<fangkong_vault::Vault> {
        let kek = self.kek(args, store).await?;
        fangkong_vault::Vault::open(store.clone(), kek)
            .await
            .map_err(|e| {
                // A rotation stopped between its commit and the file's
                // rename leaves the key it committed to beside the old one.
                let staged = self.path(args).with_extension("new");
                match staged.exists() {
                    true => anyhow::anyhow!(
                        "personal data keys: {e} (a key rotation left its new key at {}: \
                         if the rotation committed, that is the key to use)",
                        staged.display()
                    ),
                    false => anyhow::anyhow!("personal data keys: {e}"),
                }
            })
    }
}

#[derive(Debug, clap::Subcommand)]
enum KeysAction {
    /// Wrap every person's data key under a new key-encryption key, in one
    /// transaction (stop the servers first). The new key replaces the key
    /// file (the old one is kept beside it as `.old` until you remove it),
    /// or, when the KEK came from FANGKONG_KEK, is written to
    /// --new-kek-file for you to put in its place.
    RotateKek {
        #[command(flatten)]
        store: Store,
        #[command(flatten)]
        kek: KekArgs,
        /// Where to write the new key (required with FANGKONG_KEK).
        #[arg(long)]
        new_kek_file: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, clap::Subcommand)]
enum AuditAction {
    /// Check a kept signed head: against the service (--url: its current
    /// signed head must be signed by the key and extend the kept one, and
    /// each --event must be in it), or against the database (the whole
    /// chain recomputed, and the Merkle root of the kept size with it).
    /// Needs nothing but the public key. Exits 1 on any failure, saying
    /// which.
    Check {
        /// The kept head: JSON as `fangkong head --signed` prints it or
        /// `GET /v1/audit/head` answers it.
        #[arg(long)]
        head: std::path::PathBuf,
        /// The service's public key, 64 hex digits (`GET /v1/audit/keys`);
        /// repeat it (or separate with commas) for keys a rotation retired,
        /// so heads they signed check too.
        #[arg(
            long,
            env = "FANGKONG_PUBLIC_KEY",
            value_delimiter = ',',
            required = true
        )]
        public_key: Vec<String>,
        /// The service to check against.
        #[arg(long, conflicts_with = "database_url")]
        url: Option<String>,
        /// An admin's or auditor's token for --url.
        #[arg(long, env = "FANGKONG_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The database to check against instead.
        #[arg(long)]
        database_url: Option<String>,
        /// Also prove that the event at this position is in the service's
        /// head (repeatable; with --url).
        #[arg(long = "event")]
        events: Vec<u64>,
    },
}

#[derive(Debug, clap::Args)]
struct SigningKeyArgs {
    /// The key that signs tree heads: its Ed25519 seed, 64 hex digits.
    /// Keep it out of the database; its public key is at /v1/audit/keys.
    #[arg(long, env = "FANGKONG_SIGNING_KEY", hide_env_values = true)]
    signing_key: Option<String>,
    /// Where the key is kept when FANGKONG_SIGNING_KEY is not set; created
    /// (mode 0600) with a random key when missing. Default: `signing.key`
    /// beside a SQLite database, `fangkong-data/signing.key` for PostgreSQL.
    #[arg(long, env = "FANGKONG_SIGNING_KEY_FILE")]
    signing_key_file: Option<std::path::PathBuf>,
    /// The public key (64 hex digits) of a key this one replaced, listed at
    /// /v1/audit/keys so heads it signed still check (repeatable;
    /// FANGKONG_RETIRED_SIGNING_KEYS, comma-separated).
    #[arg(
        long = "retired-signing-key",
        env = "FANGKONG_RETIRED_SIGNING_KEYS",
        value_delimiter = ','
    )]
    retired_signing_keys: Vec<String>,
}

impl SigningKeyArgs {
    fn path(&self, store: &Store) -> std::path::PathBuf {
        match &self.signing_key_file {
            Some(path) => path.clone(),
            None => default_key_file(&store.database_url).with_file_name("signing.key"),
        }
    }

    /// The key, created when missing (what `serve` does).
    fn key(&self, store: &Store) -> anyhow::Result<fangkong_heads::SigningKey> {
        if let Some(hex) = &self.signing_key {
            return fangkong_heads::SigningKey::from_hex(hex)
                .map_err(|e| anyhow::anyhow!("FANGKONG_SIGNING_KEY: {e}"));
        }
        state_key::signing_key(&self.path(store))
    }

    /// The key the server signs with, never a new one: a head signed by a
    /// key no one knows would check against nothing.
    fn existing_key(&self, store: &Store) -> anyhow::Result<fangkong_heads::SigningKey> {
        if self.signing_key.is_some() {
            return self.key(store);
        }
        let path = self.path(store);
        if !path.exists() {
            anyhow::bail!(
                "no signing key at {}: the server creates it on its first start; \
                 give --signing-key-file or FANGKONG_SIGNING_KEY",
                path.display()
            );
        }
        state_key::signing_key(&path)
    }
}

/// `state.key` beside a SQLite database file; `fangkong-data/state.key`
/// otherwise.
fn default_key_file(url: &str) -> std::path::PathBuf {
    let file = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .map(|rest| rest.split('?').next().unwrap_or(rest))
        .filter(|path| !path.is_empty() && *path != ":memory:");
    match file {
        Some(path) => std::path::Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| "state.key".into(), |dir| dir.join("state.key")),
        None => std::path::Path::new("fangkong-data").join("state.key"),
    }
}

#[derive(Debug, clap::Args)]
struct ReadingArgs {
    /// When a day's report is due, township time: `HH:MM` the next day, or
    /// `+N HH:MM` N days after it.
    #[arg(long, env = "FANGKONG_REPORT_DEADLINE", default_value = "10:00")]
    report_deadline: String,
    /// JSON file mapping figure codes to DHIS2 data elements and zones to
    /// org units, for `GET /v1/reports/daily?format=dhis2`. With `--demo`
    /// and no file, the demo township's mapping is used.
    #[arg(long, env = "FANGKONG_DHIS2_MAPPING")]
    dhis2_mapping: Option<std::path::PathBuf>,
    /// Seconds between saves of the read models (a restart resumes from
    /// the last save instead of replaying the log).
    #[arg(long, env = "FANGKONG_PROJECTION_SAVE_SECONDS", default_value_t = 30)]
    projection_save_seconds: u64,
    /// A browser origin allowed to call the API (CORS), e.g.
    /// https://field.example.org; repeat or comma-separate for more.
    #[arg(
        long = "cors-origin",
        env = "FANGKONG_CORS_ORIGINS",
        value_delimiter = ','
    )]
    cors_origins: Vec<String>,
    /// Requests per second each token may send (0: no limit).
    #[arg(long, env = "FANGKONG_RATE_LIMIT", default_value_t = 100)]
    rate_limit: u32,
    /// Requests a token may send at once before the rate applies.
    #[arg(long, env = "FANGKONG_RATE_BURST", default_value_t = 200)]
    rate_burst: u32,
    /// Milliseconds a request may take before it is answered 503.
    #[arg(long, env = "FANGKONG_REQUEST_TIMEOUT_MS", default_value_t = 30_000)]
    request_timeout_ms: u64,
    /// Refused tokens a minute from one address before its further refused
    /// tokens are answered 429 (0: no limit); valid tokens always pass.
    #[arg(long, env = "FANGKONG_FAILED_AUTH_LIMIT", default_value_t = 20)]
    failed_auth_limit: u32,
    /// A proxy (CIDR, e.g. 10.0.0.0/8) whose X-Forwarded-For names the
    /// client for the limits and the logs; repeat or comma-separate. The
    /// header from any other peer is ignored.
    #[arg(
        long = "trusted-proxy",
        env = "FANGKONG_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<String>,
    /// Serve /metrics without a token even when listening beyond loopback
    /// (on a loopback address it is always open).
    #[arg(long, env = "FANGKONG_METRICS_PUBLIC")]
    metrics_public: bool,
    /// Seconds a live feed stays open before the client must resume with
    /// Last-Event-ID.
    #[arg(long, env = "FANGKONG_LIVE_MAX_SECONDS", default_value_t = 3_600)]
    live_max_seconds: u64,
}

impl ReadingArgs {
    fn settings(
        &self,
        demo: bool,
        state_key: fangkong_projections::StateKey,
        bind: &str,
    ) -> anyhow::Result<fangkong_api::Settings> {
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<fangkong_api::access::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(Into::into))
                    .map_err(|_| {
                        anyhow::anyhow!("--trusted-proxy: {p:?} is not an address or CIDR")
                    })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let rules = fangkong_projections::ReportingRules::parse(&self.report_deadline)
            .map_err(|e| anyhow::anyhow!("--report-deadline: {e}"))?;
        let dhis2 = match &self.dhis2_mapping {
            Some(path) => Some(fangkong_api::export::Dhis2Mapping::load(path)?),
            None if demo => Some(fangkong_demo::dhis2_mapping()),
            None => None,
        };
        Ok(fangkong_api::Settings {
            rules,
            dhis2: dhis2.map(std::sync::Arc::new),
            projector: fangkong_projections::ProjectorOptions {
                save_every: std::time::Duration::from_secs(self.projection_save_seconds.max(1)),
                state_key,
            },
            cors_origins: self
                .cors_origins
                .iter()
                .map(|o| o.trim().to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
            rate_per_second: self.rate_limit,
            rate_burst: self.rate_burst,
            request_timeout: std::time::Duration::from_millis(self.request_timeout_ms.max(1)),
            failed_auth_limit: self.failed_auth_limit,
            trusted_proxies,
            metrics_public: self.metrics_public || loopback_only(bind),
            live_max_lifetime: std::time::Duration::from_secs(self.live_max_seconds.max(1)),
            signing_key: None,
            retired_keys: Vec::new(),
        })
    }
}

// Parsed once at start: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API.
    Serve {
        #[command(flatten)]
        store: Store,
        /// Address to listen on; port 0 picks a free port (printed on start).
        #[arg(long, env = "FANGKONG_BIND", default_value = "127.0.0.1:8080")]
        bind: String,
        /// Fill an empty store with the demo township first.
        #[arg(long, env = "FANGKONG_DEMO")]
        demo: bool,
        /// The township's time zone: what "a day" is for daily figures.
        #[arg(long, env = "FANGKONG_TIME_ZONE", default_value = "Asia/Shanghai")]
        time_zone: String,
        /// Largest request body in bytes.
        #[arg(long, env = "FANGKONG_BODY_LIMIT", default_value_t = fangkong_api::DEFAULT_BODY_LIMIT)]
        body_limit: usize,
        /// HTTP worker threads (default: one per core).
        #[arg(long, env = "FANGKONG_WORKERS")]
        workers: Option<usize>,
        /// Publish a signed head every this many seconds (and at shutdown)
        /// to a NATS JetStream subject, for witnesses to keep.
        #[arg(long, env = "FANGKONG_PUBLISH_HEADS")]
        publish_heads: Option<u64>,
        /// The NATS server heads are published to.
        #[arg(
            long,
            env = "FANGKONG_NATS_URL",
            default_value = "nats://127.0.0.1:4222"
        )]
        nats_url: String,
        /// The subject heads are published on (kept in the JetStream stream
        /// `HEADS_<SUBJECT>`, created when missing).
        #[arg(long, env = "FANGKONG_HEADS_SUBJECT", default_value = "fangkong.heads")]
        heads_subject: String,
        #[command(flatten)]
        reading: ReadingArgs,
        #[command(flatten)]
        state_key: StateKeyArgs,
        #[command(flatten)]
        signing_key: SigningKeyArgs,
        #[command(flatten)]
        kek: KekArgs,
        /// Days after a quarantine ends (or after arrival, for a returnee
        /// never quarantined) before the person's personal data is erased,
        /// and after a banquet's last record (once its date has passed)
        /// before its host's is; the job runs at start and hourly. At least 1: a server never
        /// erases what was recorded today.
        #[arg(
            long,
            env = "FANGKONG_PERSONAL_DATA_RETENTION_DAYS",
            default_value_t = 30,
            value_parser = clap::value_parser!(u32).range(1..)
        )]
        personal_data_retention_days: u32,
    },
    /// Erase personal data: `--due` erases everyone past the retention
    /// period now (what the server's hourly job does).
    Erase {
        #[command(flatten)]
        store: Store,
        #[command(flatten)]
        kek: KekArgs,
        /// Erase every returnee and banquet host whose retention has passed.
        #[arg(long, required = true)]
        due: bool,
        #[arg(
            long,
            env = "FANGKONG_PERSONAL_DATA_RETENTION_DAYS",
            default_value_t = 30
        )]
        personal_data_retention_days: u32,
        #[arg(long, env = "FANGKONG_TIME_ZONE", default_value = "Asia/Shanghai")]
        time_zone: String,
    },
    /// Personal data keys.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Replay the whole log into fresh read models, compare them with the
    /// saved state, and save them. Exits 1 when the saved state differed.
    Rebuild {
        #[command(flatten)]
        store: Store,
        #[command(flatten)]
        state_key: StateKeyArgs,
        #[arg(long, env = "FANGKONG_TIME_ZONE", default_value = "Asia/Shanghai")]
        time_zone: String,
    },
    /// Fill an empty store with the demo township (a store holding events is
    /// left alone).
    Demo {
        #[command(flatten)]
        store: Store,
        #[command(flatten)]
        kek: KekArgs,
        #[arg(long, env = "FANGKONG_TIME_ZONE", default_value = "Asia/Shanghai")]
        time_zone: String,
    },
    /// Print the OpenAPI contract (what openapi/openapi.json holds).
    Openapi,
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
    /// With --signed, the signed tree head as JSON, to keep and check later
    /// with `fangkong audit check`.
    Head {
        #[command(flatten)]
        store: Store,
        /// Print a signed tree head (JSON) instead.
        #[arg(long)]
        signed: bool,
        #[command(flatten)]
        signing_key: SigningKeyArgs,
    },
    /// The auditor's checks.
    Audit {
        #[command(subcommand)]
        action: AuditAction,
    },
    /// Prove that the log extends a head kept earlier: the chain is
    /// recomputed from position 1 to the kept position (it must reach the
    /// kept hash there) and on to today's head. Exits 1 when it does not.
    Proof {
        #[command(flatten)]
        store: Store,
        /// The kept head's position.
        #[arg(long)]
        position: u64,
        /// The kept head's hash, 64 hex characters.
        #[arg(long)]
        hash: String,
    },
    /// API tokens: create (printed once), list, revoke. Works while a
    /// server runs on the same store.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
}

#[derive(Debug, Subcommand)]
enum TokenAction {
    /// Issue a token and print it, alone, on stdout.
    Create {
        #[command(flatten)]
        store: Store,
        #[command(flatten)]
        kek: KekArgs,
        /// admin, zone_worker, county or auditor.
        #[arg(long)]
        role: String,
        /// A zone worker's zone (repeat for more).
        #[arg(long = "zone")]
        zones: Vec<uuid::Uuid>,
        /// Who holds it.
        #[arg(long)]
        name: String,
    },
    /// List every token issued (never the secrets).
    List {
        #[command(flatten)]
        store: Store,
    },
    /// Revoke a token by id.
    Revoke {
        #[command(flatten)]
        store: Store,
        #[command(flatten)]
        kek: KekArgs,
        token_id: uuid::Uuid,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, Command::Serve { .. }) {
        "info"
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    // JSON lines for log collectors when asked; readable text otherwise.
    if std::env::var("FANGKONG_LOG_FORMAT").is_ok_and(|f| f == "json") {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    // actix-web runs its own system; everything else shares it.
    let result = actix_web::rt::System::new().block_on(run(cli));
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("fangkong: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Progress of a long verification on stderr: a bar redrawn in place on a
/// terminal, a line per tenth of the way in a log.
struct Progress {
    last: u64,
    shown: u64,
    terminal: bool,
}

impl Progress {
    fn new(last: u64) -> Progress {
        use std::io::IsTerminal;
        Progress {
            last,
            shown: 0,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn at(&mut self, position: u64) {
        let step = if self.terminal {
            (self.last / 200).max(1)
        } else {
            (self.last / 10).max(1)
        };
        if position < self.shown + step && position != self.last {
            return;
        }
        self.shown = position;
        if self.terminal {
            let width = 40;
            let filled = (position * width / self.last.max(1)) as usize;
            eprint!(
                "\rverifying [{}{}] {:>3}% {position}/{}",
                "#".repeat(filled),
                " ".repeat(width as usize - filled.min(width as usize)),
                position * 100 / self.last.max(1),
                self.last
            );
        } else {
            eprintln!("verified {position} of {}", self.last);
        }
    }

    fn done(&self) {
        if self.terminal && self.shown > 0 {
            eprintln!();
        }
    }
}

/// Whether `bind` listens on a loopback address only.
fn loopback_only(bind: &str) -> bool {
    use std::net::ToSocketAddrs;
    match bind.to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<_> = addrs.collect();
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
        }
        Err(_) => false,
    }
}

/// One token per role for the demo township; the zone worker's for its
/// first zone.
fn demo_tokens() -> Vec<(Role, String, Vec<uuid::Uuid>)> {
    let first_zone = fangkong_demo::zone_ids().first().copied();
    vec![
        (Role::Admin, "demo admin".into(), vec![]),
        (
            Role::ZoneWorker,
            "demo zone worker (一片区)".into(),
            first_zone.into_iter().collect(),
        ),
        (Role::County, "demo county".into(), vec![]),
        (Role::Auditor, "demo auditor".into(), vec![]),
    ]
}

/// Fills an empty store with the demo township. `signing_key`: the key the
/// server that follows will sign heads with, so the Merkle index built
/// while filling is sealed by it and resumed, not rebuilt.
async fn fill_demo(
    store: &EventStore,
    township: fangkong_domain::Township,
    vault: fangkong_vault::Vault,
    signing_key: Option<std::sync::Arc<fangkong_heads::SigningKey>>,
) -> anyhow::Result<()> {
    let settings = fangkong_api::Settings {
        signing_key,
        ..Default::default()
    };
    let state = fangkong_api::AppState::new(store.clone(), township, vault, settings);
    let started = std::time::Instant::now();
    let events = fangkong_demo::fill(&state)
        .await
        .map_err(|e| anyhow::anyhow!("building the demo township: {e}"))?;
    if events == 0 {
        eprintln!("the store already holds events: no demo data added");
    } else {
        eprintln!(
            "demo township: {events} events in {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// The township of `--time-zone`.
fn township_of(time_zone: &str) -> anyhow::Result<fangkong_domain::Township> {
    fangkong_domain::Township::parse_time_zone(time_zone)
        .map_err(|e| anyhow::anyhow!("--time-zone: {e}"))
}

async fn open(store: &Store) -> anyhow::Result<EventStore> {
    let options = fangkong_store::StoreOptions {
        statement_timeout: std::time::Duration::from_millis(store.store_timeout_ms.max(1)),
        ..Default::default()
    };
    EventStore::open_with(&store.database_url, options)
        .await
        .map_err(|e| {
            anyhow::Error::new(e).context(format!(
                "cannot open the event store at {}",
                redact_url(&store.database_url)
            ))
        })
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Serve {
            store,
            bind,
            demo,
            time_zone,
            body_limit,
            workers,
            reading,
            state_key,
            signing_key,
            kek,
            personal_data_retention_days,
            publish_heads,
            nats_url,
            heads_subject,
        } => {
            let witnessing = publish_heads.map(|seconds| witness::Witnessing {
                nats_url,
                subject: heads_subject,
                every: std::time::Duration::from_secs(seconds.max(1)),
            });
            let township = township_of(&time_zone)?;
            let mut settings = reading.settings(demo, state_key.key(&store)?, &bind)?;
            settings.signing_key = Some(std::sync::Arc::new(signing_key.key(&store)?));
            settings.retired_keys = signing_key
                .retired_signing_keys
                .iter()
                .map(|k| {
                    fangkong_heads::PublicKey::from_hex(k)
                        .map_err(|e| anyhow::anyhow!("--retired-signing-key {k}: {e}"))
                })
                .collect::<anyhow::Result<_>>()?;
            let store_args = store;
            let store = open(&store_args).await?;
            let vault = kek.vault(&store_args, &store).await?;
            let fresh = store.head().await?.position == 0;
            if demo {
                fill_demo(
                    &store,
                    township,
                    vault.clone(),
                    settings.signing_key.clone(),
                )
                .await?;
            }
            // A new store gets its first token(s), printed this once.
            let first_tokens = match (fresh, demo) {
                (false, _) => vec![],
                (true, false) => vec![(Role::Admin, "first admin".to_owned(), vec![])],
                (true, true) => demo_tokens(),
            };
            serve::run(
                store,
                township,
                vault,
                settings,
                serve::Options {
                    bind: &bind,
                    body_limit,
                    workers,
                    first_tokens,
                    witnessing,
                    retention_days: personal_data_retention_days,
                },
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rebuild {
            store,
            state_key,
            time_zone,
        } => {
            let township = township_of(&time_zone)?;
            let key = state_key.key(&store)?;
            let store = open(&store).await?;
            let outcome = rebuild::run(&store, township, &key).await;
            store.close().await;
            outcome
        }
        Command::Demo {
            store,
            kek,
            time_zone,
        } => {
            let township = township_of(&time_zone)?;
            let store_args = store;
            let store = open(&store_args).await?;
            let vault = kek.vault(&store_args, &store).await?;
            fill_demo(&store, township, vault, None).await?;
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Erase {
            store,
            kek,
            due: _,
            personal_data_retention_days,
            time_zone,
        } => {
            let township = township_of(&time_zone)?;
            let store_args = store;
            let store = open(&store_args).await?;
            let vault = kek.vault(&store_args, &store).await?;
            let commands = fangkong_app::Application::new(store.clone(), township, vault);
            let started = std::time::Instant::now();
            let run = commands
                .erase_due(personal_data_retention_days)
                .await
                .map_err(|e| anyhow::anyhow!("erasing: {e}"))?;
            store.close().await;
            println!(
                "erased the personal data of {} of {} data subjects (returnees, banquet hosts, days of staff checks) in {:.2}s ({} due but recorded in the clear before sealing: left)",
                run.erased,
                run.considered,
                started.elapsed().as_secs_f64(),
                run.in_clear
            );
            if run.unreadable > 0 {
                // Someone due may be among them: not a run to call done.
                eprintln!(
                    "{} data subjects left out: their streams hold an event this version cannot read (logged with its position)",
                    run.unreadable
                );
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys {
            action:
                KeysAction::RotateKek {
                    store,
                    kek,
                    new_kek_file,
                },
        } => {
            let store_args = store;
            let store = open(&store_args).await?;
            let path = kek.path(&store_args);
            let from_env = kek.given_in_env();
            if from_env.is_none() && !path.exists() {
                anyhow::bail!(
                    "no key-encryption key at {}: nothing to rotate",
                    path.display()
                );
            }
            let old = kek.kek(&store_args, &store).await?;
            let new = fangkong_vault::Kek::random()?;
            let target = match (&from_env, new_kek_file) {
                (_, Some(file)) => file,
                (None, None) => path.clone(),
                (Some(_), None) => anyhow::bail!(
                    "the KEK came from FANGKONG_KEK: give --new-kek-file for the new one"
                ),
            };
            // The new key is on disk before any data key is wrapped under
            // it, and takes the file's place only once they all are.
            let staged = target.with_extension("new");
            let _ = std::fs::remove_file(&staged);
            state_key::load_or_create(
                &staged,
                "new key-encryption key",
                |text| fangkong_vault::Kek::from_hex(text).map_err(|e| e.to_string()),
                || Ok((fangkong_vault::Kek::from_hex(&new.to_hex())?, new.to_hex())),
            )?;
            let rewrapped = fangkong_vault::rotate_kek(&store, &old, &new)
                .await
                .map_err(|e| anyhow::anyhow!("rotating: {e}"))?;
            store.close().await;
            if target == path && target.exists() {
                std::fs::rename(&target, target.with_extension("old"))?;
            }
            std::fs::rename(&staged, &target)?;
            println!(
                "rewrapped {rewrapped} keys (every person's and the store's own) from KEK {} to KEK {}; the new key is in {}",
                old.id(),
                new.id(),
                target.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Openapi => {
            println!("{}", fangkong_api::openapi_json());
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { store, from, to } => {
            let store = open(&store).await?;
            let head = store.head().await?;
            let last = to.unwrap_or(head.position).min(head.position);
            let mut progress = Progress::new(last);
            let report = store
                .verify_with_progress(from, to, |position| progress.at(position))
                .await?;
            progress.done();
            let access = store.verify_disclosures().await?;
            store.close().await;
            if let Some(seq) = access.broken_at {
                println!(
                    "BROKEN personal data access record at row {seq} ({} rows verified before it)",
                    access.checked
                );
                return Ok(ExitCode::from(1));
            }
            match report.first_break {
                None => {
                    println!(
                        "intact: {} events checked, head {} {}",
                        report.checked,
                        report.verified_head.position,
                        hex::encode(report.verified_head.hash)
                    );
                    println!(
                        "personal data access record intact: {} rows",
                        access.checked
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
        Command::Token { action } => tokens::run(action).await,
        Command::Proof {
            store,
            position,
            hash,
        } => {
            let mut kept = [0u8; 32];
            if hex::decode_to_slice(hash.trim(), &mut kept).is_err() {
                eprintln!("--hash must be 64 hex characters");
                return Ok(ExitCode::from(2));
            }
            let store = open(&store).await?;
            let proof = store
                .prove_extends(fangkong_store::Head {
                    position,
                    hash: kept,
                })
                .await?;
            store.close().await;
            if proof.extends {
                println!(
                    "extends: the log reaches {position} with the kept hash and verifies on to {} {}",
                    proof.head.position,
                    hex::encode(proof.head.hash)
                );
                return Ok(ExitCode::SUCCESS);
            }
            match (&proof.first_break, proof.recomputed_hash) {
                (Some(broken), _) => println!(
                    "DOES NOT EXTEND: the chain breaks at position {}: {broken}",
                    broken.position()
                ),
                (None, Some(found)) => println!(
                    "DOES NOT EXTEND: at position {position} the log holds {}, not the kept hash",
                    hex::encode(found)
                ),
                (None, None) => println!("DOES NOT EXTEND: the log does not reach {position}"),
            }
            Ok(ExitCode::from(1))
        }
        Command::Head {
            store: args,
            signed,
            signing_key,
        } => {
            let key = if signed {
                Some(signing_key.existing_key(&args)?)
            } else {
                None
            };
            let store = open(&args).await?;
            let head = store.head().await?;
            let Some(key) = key else {
                store.close().await;
                println!("{} {}", head.position, hex::encode(head.hash));
                return Ok(ExitCode::SUCCESS);
            };
            // The tree over the log as it is now, from the stored frontier.
            let mut indexer = fangkong_store::merkle::Indexer::resume(
                &store,
                Some(fangkong_api::frontier_seal(&key)),
            )
            .await?;
            let state = indexer.catch_up(&store).await?;
            let access = store.disclosure_head().await;
            store.close().await;
            if let Some(stalled) = state.stalled {
                eprintln!("no head signed: {stalled}");
                return Ok(ExitCode::from(1));
            }
            let (seq, hash) = access?;
            let signed = key.sign(
                state.head.size,
                &state.head.root,
                &state.head.chain_hash,
                Some((seq, &hash)),
                chrono::Utc::now(),
            );
            println!("{}", serde_json::to_string_pretty(&signed)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit {
            action:
                AuditAction::Check {
                    head,
                    public_key,
                    url,
                    token,
                    database_url,
                    events,
                },
        } => {
            let kept = audit::read_kept(&head)?;
            let keys = public_key
                .iter()
                .map(|k| {
                    fangkong_heads::PublicKey::from_hex(k)
                        .map_err(|e| anyhow::anyhow!("--public-key {k}: {e}"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let outcome = match (url, database_url) {
                (Some(url), _) => {
                    let token = token.ok_or_else(|| {
                        anyhow::anyhow!("--url needs --token (or FANGKONG_TOKEN)")
                    })?;
                    audit::against_service(&kept, &keys, &url, &token, &events).await
                }
                (None, Some(database_url)) => {
                    let store = EventStore::open(&database_url).await?;
                    let outcome = audit::against_store(&kept, &keys, &store).await?;
                    store.close().await;
                    outcome
                }
                (None, None) => anyhow::bail!("give --url (and --token) or --database-url"),
            };
            match outcome {
                Ok(said) => {
                    println!(
                        "kept head: {} events, signed by {}",
                        kept.tree_size, kept.key_id
                    );
                    for line in said {
                        println!("{line}");
                    }
                    println!("OK");
                    Ok(ExitCode::SUCCESS)
                }
                Err(failure) => {
                    println!("FAILED: {failure}");
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

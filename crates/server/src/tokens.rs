//! `fangkong token`: issue, list and revoke API tokens from the command
//! line, through the application, as the admin routes are (so every change is
//! an event, and a running server on the same store sees it).

use std::process::ExitCode;

use fangkong_app::tokens::parse_role;
use fangkong_app::{AppError, Application, Envelope};
use fangkong_projections::TokenRegistry;
use fangkong_store::LogFilter;

use crate::{open, TokenAction};

async fn commands(
    args: &crate::Store,
    kek: &crate::KekArgs,
    store: &fangkong_store::EventStore,
) -> anyhow::Result<Application> {
    // Token events hold no personal data, but the application seals what
    // any event holds: it runs with the store's own keys.
    Ok(Application::new(
        store.clone(),
        Default::default(),
        kek.vault(args, store).await?,
    ))
}

fn refused(e: AppError) -> anyhow::Error {
    anyhow::anyhow!("{e}")
}

pub async fn run(action: TokenAction) -> anyhow::Result<ExitCode> {
    match action {
        TokenAction::Create {
            store,
            kek,
            role,
            zones,
            name,
        } => {
            let args = store;
            let store = open(&args).await?;
            let role = parse_role(&role).map_err(refused);
            let outcome = match role {
                Ok(role) => commands(&args, &kek, &store)
                    .await?
                    .issue_token(&Envelope::system(), &name, role, &zones)
                    .await
                    .map_err(refused),
                Err(e) => Err(e),
            };
            store.close().await;
            let (token, _) = outcome?;
            println!("{}", token.token);
            Ok(ExitCode::SUCCESS)
        }
        TokenAction::List { store } => {
            let store = open(&store).await?;
            let mut registry = TokenRegistry::default();
            let filter = LogFilter {
                category: Some("token".into()),
                ..Default::default()
            };
            let mut after = 0;
            loop {
                let page = store.read_all(after, 1_000, &filter).await?;
                let Some(last) = page.last() else { break };
                after = last.position;
                page.iter().for_each(|e| registry.apply(e));
            }
            store.close().await;
            for t in registry.all() {
                let zones: Vec<String> = t.zones.iter().map(|z| z.to_string()).collect();
                println!(
                    "{}\t{}\t{}\t{}\tissued {}\t{}",
                    t.token_id,
                    t.role.code(),
                    if zones.is_empty() {
                        "-".into()
                    } else {
                        zones.join(",")
                    },
                    t.name,
                    t.issued_at.to_rfc3339(),
                    t.revoked_at
                        .map_or("live".into(), |at| format!("revoked {}", at.to_rfc3339())),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        TokenAction::Revoke {
            store,
            kek,
            token_id,
        } => {
            let args = store;
            let store = open(&args).await?;
            let outcome = commands(&args, &kek, &store)
                .await?
                .revoke_token(&Envelope::system(), token_id)
                .await
                .map_err(refused);
            store.close().await;
            outcome?;
            eprintln!("revoked {token_id}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

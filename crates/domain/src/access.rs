//! Who may use the service: API tokens, each with a role (and a zone
//! worker's zones), issued and revoked as events like any other fact.
//! The secret itself never enters the log: only its SHA-256.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codec::event_enum;
use crate::{Aggregate, Context, DomainError, Name, ZoneId};

/// What a token may do (API.md, "Auth").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, personal data in full.
    Admin,
    /// Field work and reads in its own zones, personal data there in full.
    ZoneWorker,
    /// Dashboards and daily aggregates; never personal data.
    County,
    /// The event log, verification, as-of reads; personal data masked.
    Auditor,
}

impl Role {
    pub const ALL: &'static [Role] = &[Role::Admin, Role::ZoneWorker, Role::County, Role::Auditor];

    pub fn code(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::ZoneWorker => "zone_worker",
            Role::County => "county",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(code: &str) -> Option<Role> {
        Role::ALL.iter().copied().find(|r| r.code() == code)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenIssued {
    pub token_id: Uuid,
    pub name: Name,
    pub role: Role,
    #[serde(default)]
    pub zones: BTreeSet<ZoneId>,
    /// SHA-256 of the secret, hex.
    pub secret_sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenRevoked {
    pub token_id: Uuid,
}

event_enum! {
    /// An API token's life.
    pub enum TokenEvent {
        TokenIssued: 1,
        TokenRevoked: 1,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum TokenCommand {
    Issue {
        token_id: Uuid,
        name: Name,
        role: Role,
        zones: BTreeSet<ZoneId>,
        secret_sha256: String,
    },
    Revoke,
}

/// One token (`token-{id}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiToken {
    pub issued: Option<TokenIssued>,
    pub revoked: bool,
}

impl ApiToken {
    pub fn stream_id(token_id: Uuid) -> String {
        format!("token-{token_id}")
    }

    /// Issued and not revoked.
    pub fn is_live(&self) -> bool {
        self.issued.is_some() && !self.revoked
    }
}

impl Aggregate for ApiToken {
    type Command = TokenCommand;
    type Event = TokenEvent;
    const CATEGORY: &'static str = "token";

    fn handle(&self, command: &TokenCommand, _: &Context) -> Result<Vec<TokenEvent>, DomainError> {
        match command {
            TokenCommand::Issue {
                token_id,
                name,
                role,
                zones,
                secret_sha256,
            } => {
                if self.issued.is_some() {
                    return Err(DomainError::TokenAlreadyIssued);
                }
                if (*role == Role::ZoneWorker) == zones.is_empty() {
                    return Err(DomainError::TokenZonesMismatch);
                }
                Ok(vec![TokenIssued {
                    token_id: *token_id,
                    name: name.clone(),
                    role: *role,
                    zones: zones.clone(),
                    secret_sha256: secret_sha256.clone(),
                }
                .into()])
            }
            TokenCommand::Revoke => {
                let Some(issued) = &self.issued else {
                    return Err(DomainError::TokenNotIssued);
                };
                if self.revoked {
                    return Err(DomainError::TokenAlreadyRevoked);
                }
                Ok(vec![TokenRevoked {
                    token_id: issued.token_id,
                }
                .into()])
            }
        }
    }

    fn apply(mut self, event: &TokenEvent) -> Self {
        match event {
            TokenEvent::TokenIssued(e) => self.issued = Some(e.clone()),
            TokenEvent::TokenRevoked(_) => self.revoked = true,
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{day, given};

    fn ctx() -> Context {
        Context {
            today: day("2020-02-01"),
            occurred_on: day("2020-02-01"),
        }
    }

    fn issue(role: Role, zones: &[ZoneId]) -> TokenCommand {
        TokenCommand::Issue {
            token_id: Uuid::nil(),
            name: Name::parse("村医").expect("name"),
            role,
            zones: zones.iter().copied().collect(),
            secret_sha256: "00".repeat(32),
        }
    }

    #[test]
    fn a_zone_worker_needs_zones_and_others_take_none() {
        given::<ApiToken>(&[], ctx())
            .when(issue(Role::ZoneWorker, &[]))
            .then_rejects("token_zones_mismatch");
        given::<ApiToken>(&[], ctx())
            .when(issue(Role::County, &[ZoneId::new()]))
            .then_rejects("token_zones_mismatch");
        given::<ApiToken>(&[], ctx())
            .when(issue(Role::ZoneWorker, &[ZoneId::new()]))
            .then_types(&["TokenIssued"]);
    }

    #[test]
    fn a_token_is_revoked_once_and_only_after_it_was_issued() {
        given::<ApiToken>(&[], ctx())
            .when(TokenCommand::Revoke)
            .then_rejects("token_not_issued");
        let issued = match issue(Role::Auditor, &[]) {
            TokenCommand::Issue {
                token_id,
                name,
                role,
                zones,
                secret_sha256,
            } => TokenIssued {
                token_id,
                name,
                role,
                zones,
                secret_sha256,
            },
            TokenCommand::Revoke => unreachable!(),
        };
        given::<ApiToken>(&[issued.clone().into()], ctx())
            .when(TokenCommand::Revoke)
            .then_types(&["TokenRevoked"]);
        given::<ApiToken>(
            &[
                issued.into(),
                TokenRevoked {
                    token_id: Uuid::nil(),
                }
                .into(),
            ],
            ctx(),
        )
        .when(TokenCommand::Revoke)
        .then_rejects("token_already_revoked");
    }
}

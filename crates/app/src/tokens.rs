//! Minting and revoking API tokens: the one way a token comes to be, for
//! the API, `fangkong token create` and `serve`'s first start.

use std::collections::BTreeSet;

use fangkong_domain::access::{ApiToken, Role, TokenCommand};
use fangkong_domain::zone::Zone;
use fangkong_domain::{Name, ZoneId};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{AppError, Application, Envelope, Outcome, Target};

/// Prefix of every token this service issues.
pub const TOKEN_PREFIX: &str = "fk_";

/// A token just made: shown once, then only its hash is kept.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub token_id: Uuid,
    /// `fk_<id>_<256 random bits, hex>`.
    pub token: String,
    pub sha256: String,
}

/// 256 bits from the operating system's generator, with the token's id in
/// front so it can be found without scanning.
pub fn new_token() -> Result<NewToken, AppError> {
    let mut secret = [0u8; 32];
    getrandom::getrandom(&mut secret).map_err(|error| {
        tracing::error!(%error, "no randomness for a token");
        AppError::NoRandomness
    })?;
    let token_id = Uuid::now_v7();
    let token = format!(
        "{TOKEN_PREFIX}{}_{}",
        token_id.simple(),
        hex::encode(secret)
    );
    let sha256 = hex::encode(Sha256::digest(token.as_bytes()));
    Ok(NewToken {
        token_id,
        token,
        sha256,
    })
}

/// The id inside a token, if it has this service's shape.
pub fn token_id_of(token: &str) -> Option<Uuid> {
    let rest = token.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    if secret.len() != 64 || !secret.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Uuid::try_parse(id).ok()
}

/// A role from its code.
pub fn parse_role(raw: &str) -> Result<Role, AppError> {
    Role::parse(raw)
        .ok_or_else(|| AppError::invalid("role", "must be admin, zone_worker, county or auditor"))
}

impl Application {
    /// Issues a token as an event of its own stream. Never idempotent by
    /// key: a replay would have to show the secret again.
    pub async fn issue_token(
        &self,
        envelope: &Envelope,
        name: &str,
        role: Role,
        zones: &[Uuid],
    ) -> Result<(NewToken, Outcome), AppError> {
        for zone in zones {
            let loaded = self
                .load::<Zone>(&ZoneId::from_uuid(*zone).stream_id())
                .await?;
            if !loaded.state.is_established() {
                return Err(AppError::invalid(
                    "zones",
                    format!("no zone with id {zone}"),
                ));
            }
        }
        let secret = new_token()?;
        let command = TokenCommand::Issue {
            token_id: secret.token_id,
            name: Name::parse(name).map_err(|e| AppError::invalid("name", e.message))?,
            role,
            zones: zones
                .iter()
                .map(|z| ZoneId::from_uuid(*z))
                .collect::<BTreeSet<_>>(),
            secret_sha256: secret.sha256.clone(),
        };
        let target = Target::new(
            ApiToken::stream_id(secret.token_id),
            secret.token_id,
            "token.issue",
        );
        let envelope = Envelope {
            idempotency_key: None,
            if_match: None,
            ..envelope.clone()
        };
        let outcome = self.execute(&envelope, &target, command).await?;
        Ok((secret, outcome))
    }

    /// Revokes a token.
    pub async fn revoke_token(
        &self,
        envelope: &Envelope,
        token_id: Uuid,
    ) -> Result<Outcome, AppError> {
        let target = Target::new(ApiToken::stream_id(token_id), token_id, "token.revoke");
        self.execute(envelope, &target, TokenCommand::Revoke).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_token_carries_its_id_and_256_bits() {
        let a = new_token().expect("randomness");
        let b = new_token().expect("randomness");
        assert_ne!(a.token, b.token);
        assert_eq!(a.token.len(), TOKEN_PREFIX.len() + 32 + 1 + 64);
        assert_eq!(token_id_of(&a.token), Some(a.token_id));
        assert_eq!(token_id_of("fk_nothex_00"), None);
    }
}

//! AWS credentials in the OS keyring (Secret Service, Keychain, Credential Manager), never in a
//! file: either an access key pair or the name of an AWS profile. With nothing stored, the AWS
//! SDK's default chain applies (environment, `~/.aws`, SSO, instance role).

use keyring::Entry;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::error::{AppError, AppResult};

const SERVICE: &str = "labpipe";
/// The keyring account; `LABPIPE_APP_KEYRING_ACCOUNT` overrides it (tests use their own).
const ACCOUNT: &str = "aws-credentials";

/// What is stored, as kept in the keyring (JSON). `Debug` masks the key id and never shows the
/// secret, so a log line or a panic message cannot leak it.
#[derive(Clone, Serialize, Deserialize, TS, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub enum Credentials {
    Keys {
        access_key_id: String,
        secret_access_key: String,
    },
    Profile {
        name: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Keys { access_key_id, .. } => f
                .debug_struct("Keys")
                .field("access_key_id", &mask(access_key_id))
                .field("secret_access_key", &"<redacted>")
                .finish(),
            Credentials::Profile { name } => f.debug_struct("Profile").field("name", name).finish(),
        }
    }
}

/// What the UI may see: never the secret.
#[derive(Debug, Clone, Serialize, TS, PartialEq)]
#[ts(export, export_to = "../../ui/src/lib/bindings/")]
pub struct CredentialsView {
    /// `none`, `keys` or `profile`.
    pub kind: String,
    /// The access key id with its middle masked, e.g. `AKIA…WXYZ`.
    pub access_key_hint: Option<String>,
    pub profile: Option<String>,
    /// Set when the keyring itself could not be read.
    pub error: Option<String>,
}

fn entry() -> AppResult<Entry> {
    let account = std::env::var("LABPIPE_APP_KEYRING_ACCOUNT").unwrap_or_else(|_| ACCOUNT.into());
    Ok(Entry::new(SERVICE, &account)?)
}

pub fn load() -> AppResult<Option<Credentials>> {
    match entry()?.get_password() {
        Ok(json) => serde_json::from_str(&json).map(Some).map_err(|e| {
            AppError::new(
                "keyring",
                format!("stored credentials are unreadable ({e}); enter them again in Settings"),
            )
        }),
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub fn store(c: &Credentials) -> AppResult<()> {
    match c {
        Credentials::Keys {
            access_key_id,
            secret_access_key,
        } => {
            if access_key_id.trim().is_empty() || secret_access_key.trim().is_empty() {
                return Err(AppError::new(
                    "credentials",
                    "enter both the access key id and the secret access key",
                ));
            }
        }
        Credentials::Profile { name } => {
            if name.trim().is_empty() {
                return Err(AppError::new(
                    "credentials",
                    "enter the name of an AWS profile from ~/.aws/config",
                ));
            }
        }
    }
    let json = serde_json::to_string(c).map_err(|e| AppError::new("credentials", e.to_string()))?;
    entry()?.set_password(&json)?;
    Ok(())
}

pub fn clear() -> AppResult<()> {
    match entry()?.delete_credential() {
        Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "…".to_string();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

pub fn view() -> CredentialsView {
    match load() {
        Ok(None) => CredentialsView {
            kind: "none".into(),
            access_key_hint: None,
            profile: None,
            error: None,
        },
        Ok(Some(Credentials::Keys { access_key_id, .. })) => CredentialsView {
            kind: "keys".into(),
            access_key_hint: Some(mask(&access_key_id)),
            profile: None,
            error: None,
        },
        Ok(Some(Credentials::Profile { name })) => CredentialsView {
            kind: "profile".into(),
            access_key_hint: None,
            profile: Some(name),
            error: None,
        },
        Err(e) => CredentialsView {
            kind: "none".into(),
            access_key_hint: None,
            profile: None,
            error: Some(e.message),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_secret_or_the_whole_key_id() {
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let key_id = "AKIAIOSFODNN7EXAMPLE";
        let c = Credentials::Keys {
            access_key_id: key_id.into(),
            secret_access_key: secret.into(),
        };
        for text in [
            format!("{c:?}"),
            format!("{c:#?}"),
            format!("{:?}", Some(&c)),
        ] {
            assert!(!text.contains(secret), "secret in {text}");
            assert!(!text.contains(key_id), "whole key id in {text}");
            assert!(text.contains("<redacted>"), "{text}");
        }
        let p = Credentials::Profile { name: "lab".into() };
        assert_eq!(format!("{p:?}"), r#"Profile { name: "lab" }"#);
    }

    #[test]
    fn masks_the_middle_of_a_key() {
        assert_eq!(mask("AKIAIOSFODNN7EXAMPLE"), "AKIA…MPLE");
        assert_eq!(mask("short"), "…");
    }

    #[test]
    fn serialises_with_a_kind_tag() {
        let c = Credentials::Profile { name: "lab".into() };
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"kind":"profile","name":"lab"}"#
        );
    }
}

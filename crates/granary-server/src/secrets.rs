//! Random tokens, digests and private files: the admin token, session ids, API keys.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

use crate::{Error, Result};

/// The name of the admin token file in the data directory.
pub const ADMIN_TOKEN_FILE: &str = "admin-token";

/// `bytes` random bytes from the operating system's generator, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    URL_SAFE_NO_PAD.encode(buffer)
}

/// The SHA-256 digest of `text`, in lower-case hex.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// Compares two strings in constant time (for equal lengths).
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Creates `dir` (and its parents) if needed; a directory granary creates is private (0700).
pub fn ensure_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(|e| {
        Error::io(
            format!("cannot create the data directory {}", dir.display()),
            e,
        )
    })?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io(format!("cannot make {} private", dir.display()), e))
}

/// Writes `contents` to `path` through a temporary file and a rename, with mode 0600.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let temporary = path.with_extension("tmp");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)
        .map_err(|e| Error::io(format!("cannot write {}", temporary.display()), e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(format!("cannot write {}", temporary.display()), e))?;
    fs::rename(&temporary, path)
        .map_err(|e| Error::io(format!("cannot replace {}", path.display()), e))
}

/// Where the admin token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminTokenSource {
    /// The environment or a flag (`GRANARY_ADMIN_TOKEN`).
    Given,
    /// The token file of the data directory, written before.
    File(PathBuf),
    /// Generated now and written to the token file: print it once.
    Generated(PathBuf),
}

/// The admin token: the given one, or the one in `<data_dir>/admin-token`, or a new one
/// written there with mode 0600.
pub fn admin_token(
    data_dir: &Path,
    given: Option<SecretString>,
) -> Result<(SecretString, AdminTokenSource)> {
    if let Some(token) = given {
        if token.expose_secret().trim().len() < 16 {
            return Err(Error::Config(
                "the admin token (GRANARY_ADMIN_TOKEN) is shorter than 16 characters: use a long random value".into(),
            ));
        }
        return Ok((token, AdminTokenSource::Given));
    }
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    match fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => {
            return Ok((
                SecretString::from(text.trim().to_string()),
                AdminTokenSource::File(path),
            ));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::io(
                format!("cannot read the admin token file {}", path.display()),
                e,
            ));
        }
    }
    ensure_dir(data_dir)?;
    let token = random_token(32);
    write_private(&path, format!("{token}\n").as_bytes())?;
    Ok((SecretString::from(token), AdminTokenSource::Generated(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_long() {
        let a = random_token(32);
        let b = random_token(32);
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
    }

    #[test]
    fn admin_token_is_generated_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let (first, source) = admin_token(dir.path(), None).unwrap();
        assert!(matches!(source, AdminTokenSource::Generated(_)));
        let mode = fs::metadata(dir.path().join(ADMIN_TOKEN_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (second, source) = admin_token(dir.path(), None).unwrap();
        assert!(matches!(source, AdminTokenSource::File(_)));
        assert_eq!(first.expose_secret(), second.expose_secret());
    }

    #[test]
    fn a_short_given_token_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(admin_token(dir.path(), Some(SecretString::from("short".to_string()))).is_err());
        let (token, source) = admin_token(
            dir.path(),
            Some(SecretString::from("a-long-enough-admin-token".to_string())),
        )
        .unwrap();
        assert_eq!(source, AdminTokenSource::Given);
        assert_eq!(token.expose_secret(), "a-long-enough-admin-token");
        assert!(!dir.path().join(ADMIN_TOKEN_FILE).exists());
    }

    /// Every struct of this crate with a `Debug` that holds a secret (settings, CLI
    /// arguments, API bodies, forms, sessions) prints none of it.
    #[test]
    fn debug_output_of_secret_bearing_structs_shows_no_secret() {
        use clap::Parser as _;

        #[derive(Debug, clap::Parser)]
        struct Cli {
            #[command(flatten)]
            remote: crate::cli::RemoteArgs,
            #[command(flatten)]
            fields: crate::cli::InstanceFields,
            #[command(flatten)]
            serve: crate::settings::ServeArgs,
        }

        const SECRETS: [&str; 6] = [
            "granary_apikeyS3CRET",
            "clientS3CRET",
            "paramS3CRET",
            "headerS3CRET",
            "adminS3CRET-long-enough",
            "csrfS3CRET",
        ];
        let shows_none = |what: &str, debug: String| {
            for secret in SECRETS {
                assert!(!debug.contains(secret), "{what} shows {secret}: {debug}");
            }
        };

        let cli = Cli::try_parse_from([
            "granary",
            "--api-key",
            SECRETS[0],
            "--client-secret",
            SECRETS[1],
            "--token-param",
            &format!("audience={}", SECRETS[2]),
            "--token-header",
            &format!("X-Api-Key: {}", SECRETS[3]),
            "--admin-token",
            SECRETS[4],
        ])
        .unwrap();
        assert_eq!(
            cli.remote.api_key.as_ref().unwrap().expose_secret(),
            SECRETS[0]
        );
        shows_none("the CLI arguments", format!("{cli:?}"));

        let settings =
            crate::settings::Settings::resolve(&crate::settings::CommonArgs::default(), &cli.serve)
                .unwrap();
        assert!(settings.admin_token.is_some());
        shows_none("the settings", format!("{settings:?}"));

        let body: crate::api::InstanceBody = serde_json::from_value(serde_json::json!({
            "client_secret": SECRETS[1],
            "extra_token_params": [["audience", SECRETS[2]]],
            "extra_token_headers": [["X-Api-Key", SECRETS[3]]],
        }))
        .unwrap();
        shows_none("the API body", format!("{body:?}"));

        let form = crate::web::FormData::parse(
            format!(
                "csrf={}&client_secret={}&extra_token_params=a%3D{}&extra_token_headers=X%3A+{}&token={}",
                SECRETS[5], SECRETS[1], SECRETS[2], SECRETS[3], SECRETS[4]
            )
            .as_bytes(),
        );
        assert_eq!(form.get("csrf"), SECRETS[5]);
        shows_none("a form", format!("{form:?}"));
        shows_none(
            "an admin form",
            format!("{:?}", crate::web::AdminForm(form)),
        );

        let sessions =
            crate::sessions::Sessions::new(std::sync::Arc::new(granary_store::MemoryStore::new()));
        let (_, mut session) = futures::executor::block_on(sessions.create()).unwrap();
        session.csrf = SECRETS[5].to_string();
        shows_none("a session", format!("{session:?}"));
        let layout = crate::web::Layout {
            signed_in: true,
            csrf: SECRETS[5].to_string(),
            banner: None,
        };
        shows_none("a page layout", format!("{layout:?}"));
        let values = crate::web::InstanceFormValues {
            extra_token_params: SecretString::from(format!("a={}", SECRETS[2])),
            extra_token_headers: SecretString::from(format!("X: {}", SECRETS[3])),
            ..Default::default()
        };
        shows_none("the instance form's values", format!("{values:?}"));
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "abcd"));
    }
}

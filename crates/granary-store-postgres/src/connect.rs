//! The URL, the TLS settings it names (`sslmode`, `sslrootcert`), and the connection pool.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use granary_store::{Error, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::PostgresOptions;

/// What `sslmode` asks for, as libpq reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tls {
    /// `disable`: plain TCP.
    Disable,
    /// `allow` and `prefer` (the default): TLS when the server offers it, certificate not
    /// verified.
    Prefer,
    /// `require`: TLS or no connection; certificate not verified.
    Require,
    /// `verify-full`: TLS, the certificate chain verified against `sslrootcert` (a PEM file)
    /// or, without it or with `sslrootcert=system`, the Mozilla roots, and the host name
    /// checked.
    VerifyFull { roots: Option<PathBuf> },
}

/// A parsed URL: tokio-postgres's configuration without the TLS parameters, and those.
#[derive(Debug)]
pub(crate) struct Target {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) tls: Tls,
}

/// Parses a libpq-style URL (`postgres://user:password@host:port/database?sslmode=...`).
pub(crate) fn parse(url: &str) -> Result<Target> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut kept = Vec::new();
    let mut sslmode = None;
    let mut rootcert = None;
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        match pair.split_once('=') {
            Some(("sslmode", value)) => sslmode = Some(value.to_string()),
            Some(("sslrootcert", value)) => rootcert = Some(percent_decode(value)),
            _ if !pair.is_empty() => kept.push(pair),
            _ => {}
        }
    }
    let rebuilt = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    if !(rebuilt.starts_with("postgres://") || rebuilt.starts_with("postgresql://")) {
        return Err(Error::unsupported(
            "a PostgreSQL store URL starts with postgres:// or postgresql:// \
             (e.g. postgres://granary:PASSWORD@db.example:5432/granary?sslmode=verify-full)",
        ));
    }
    let config = tokio_postgres::Config::from_str(&rebuilt).map_err(|e| {
        Error::backend(
            "the PostgreSQL URL cannot be read: check its form \
             (postgres://user:password@host:port/database?sslmode=...; percent-encode special \
             characters of the password)",
            e,
        )
    })?;
    let tls = match sslmode.as_deref() {
        Some("disable") => Tls::Disable,
        None | Some("allow" | "prefer") => Tls::Prefer,
        Some("require") => Tls::Require,
        Some("verify-full") => Tls::VerifyFull {
            roots: rootcert.filter(|r| r != "system").map(PathBuf::from),
        },
        Some("verify-ca") => {
            return Err(Error::unsupported(
                "sslmode=verify-ca is not supported: use sslmode=verify-full (the certificate \
                 must also name the host of the URL)",
            ));
        }
        Some(other) => {
            return Err(Error::unsupported(format!(
                "sslmode `{other}` is unknown: use disable, prefer, require or verify-full"
            )));
        }
    };
    Ok(Target { config, tls })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(value) =
                u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or(""), 16)
            {
                out.push(value);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where the target is, for messages: hosts, port and database, never the password.
pub(crate) fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let host = if hosts.is_empty() {
        "localhost".to_string()
    } else {
        hosts.join(",")
    };
    format!(
        "{host}:{port}/{}",
        config.get_dbname().unwrap_or("(the user's database)")
    )
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls configuration for `tls`.
pub(crate) fn tls_config(tls: &Tls) -> Result<ClientConfig> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::backend("cannot set up TLS", e))?;
    Ok(match tls {
        Tls::VerifyFull { roots } => {
            let mut store = RootCertStore::empty();
            match roots {
                Some(path) => {
                    let certs = CertificateDer::pem_file_iter(path).map_err(|e| {
                        Error::backend(
                            format!(
                                "cannot read sslrootcert {}: check the path in the URL",
                                path.display()
                            ),
                            e.to_string(),
                        )
                    })?;
                    for cert in certs {
                        let cert = cert.map_err(|e| {
                            Error::backend(
                                format!(
                                    "sslrootcert {} is not a PEM certificate file",
                                    path.display()
                                ),
                                e.to_string(),
                            )
                        })?;
                        store.add(cert).map_err(|e| {
                            Error::backend(
                                format!(
                                    "sslrootcert {} holds an unusable certificate",
                                    path.display()
                                ),
                                e,
                            )
                        })?;
                    }
                }
                None => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            builder.with_root_certificates(store).with_no_client_auth()
        }
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(
                provider.signature_verification_algorithms,
            )))
            .with_no_client_auth(),
    })
}

/// `sslmode` prefer and require: encrypted, the certificate not checked (as libpq does
/// without a root certificate); the handshake signatures are still verified.
#[derive(Debug)]
struct Unverified(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// The pool of connections to `target`, with the search path of `options.schema`.
pub(crate) fn pool(mut target: Target, options: &PostgresOptions) -> Result<Pool> {
    let config = &mut target.config;
    config.ssl_mode(match target.tls {
        Tls::Disable => SslMode::Disable,
        Tls::Prefer => SslMode::Prefer,
        Tls::Require | Tls::VerifyFull { .. } => SslMode::Require,
    });
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(options.connect_timeout);
    }
    if config.get_application_name().is_none() {
        config.application_name("granary");
    }
    if let Some(schema) = &options.schema {
        let existing = config.get_options().unwrap_or("").to_string();
        config.options(format!("{existing} -c search_path={schema}").trim());
    }
    let tls = MakeRustlsConnect::new(tls_config(&target.tls)?);
    let manager = Manager::from_config(
        target.config,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(options.max_connections.max(1))
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(options.connect_timeout))
        .wait_timeout(Some(options.wait_timeout))
        .build()
        .map_err(|e| {
            Error::backend(
                "cannot set up the PostgreSQL connection pool",
                e.to_string(),
            )
        })
}

/// Whether `name` may name granary's schema: a plain lower-case identifier.
pub(crate) fn check_schema(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_');
    if first_ok
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        Ok(())
    } else {
        Err(Error::unsupported(format!(
            "the schema name `{name}` is not a plain identifier: use lower-case letters, digits \
             and `_` (at most 63, not starting with a digit)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_read_and_removed_from_the_url() {
        let target =
            parse("postgres://u:p@db.example:6543/granary?sslmode=verify-full&application_name=x")
                .expect("parses");
        assert_eq!(target.tls, Tls::VerifyFull { roots: None });
        assert_eq!(target.config.get_application_name(), Some("x"));
        assert_eq!(describe(&target.config), "db.example:6543/granary");

        let target = parse("postgresql://u@h/d?sslmode=verify-full&sslrootcert=%2Fetc%2Froot.pem")
            .expect("parses");
        assert_eq!(
            target.tls,
            Tls::VerifyFull {
                roots: Some(PathBuf::from("/etc/root.pem"))
            }
        );
        assert_eq!(parse("postgres://h/d").expect("parses").tls, Tls::Prefer);
        assert_eq!(
            parse("postgres://h/d?sslmode=require").expect("parses").tls,
            Tls::Require
        );
        assert_eq!(
            parse("postgres://h/d?sslmode=disable").expect("parses").tls,
            Tls::Disable
        );
        assert!(parse("postgres://h/d?sslmode=bogus").is_err());
        assert!(parse("postgres://h/d?sslmode=verify-ca").is_err());
        assert!(parse("mysql://h/d").is_err());
    }

    #[test]
    fn every_tls_mode_builds_a_configuration() {
        for tls in [Tls::Prefer, Tls::Require, Tls::VerifyFull { roots: None }] {
            assert!(tls_config(&tls).is_ok());
        }
        let missing = Tls::VerifyFull {
            roots: Some(PathBuf::from("/nonexistent/root.pem")),
        };
        let error = tls_config(&missing).expect_err("a missing root file is refused");
        assert!(error.to_string().contains("sslrootcert"), "{error}");
    }

    #[test]
    fn schema_names_are_plain_identifiers() {
        assert!(check_schema("granary_1").is_ok());
        assert!(check_schema("Granary").is_err());
        assert!(check_schema("1x").is_err());
        assert!(check_schema("a;drop").is_err());
        assert!(check_schema("").is_err());
    }
}

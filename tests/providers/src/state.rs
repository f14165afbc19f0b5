//! What the emulator remembers: codes, grants, tokens, the request log and the refusals.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::Rng as _;

/// How long a code can be redeemed (Google and most others: 10 minutes).
pub const CODE_LIFETIME: Duration = Duration::from_secs(600);

/// One request as the emulator saw it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RequestRecord {
    pub method: String,
    /// `/HOST/PATH`.
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Header names (values are left out: they may carry credentials).
    pub headers: Vec<String>,
    /// Body parameters (form fields or top-level JSON members).
    pub body: Vec<(String, String)>,
}

/// One refused request and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Refusal {
    /// `authorize`, `token`, `refresh`, `revoke`, or `unknown` (no endpoint at that URL).
    pub endpoint: &'static str,
    pub status: u16,
    /// The OAuth error code sent (`invalid_request`, `invalid_grant`, ...).
    pub error: String,
    /// Why, in words.
    pub reason: String,
}

/// One authorization's worth of tokens; revoking any of its tokens revokes it.
#[derive(Debug)]
pub struct Grant {
    pub revoked: bool,
}

/// An issued code, single use.
#[derive(Debug)]
pub struct Code {
    pub grant: u64,
    pub issued: Instant,
    pub used: bool,
    pub redirect_uri: String,
    /// `(method, challenge)`.
    pub challenge: Option<(String, String)>,
    /// Connection field values matched on the authorization URL.
    pub fields: Vec<(String, String)>,
    /// Scopes asked for the top-level token, and for the nested one.
    pub scopes: Vec<String>,
    pub nested_scopes: Vec<String>,
    /// Whether a refresh token may be issued (offline parameters and scopes were given).
    pub offline: bool,
}

#[derive(Debug)]
pub struct Access {
    pub grant: u64,
    /// `None`: never expires.
    pub expires: Option<Instant>,
    pub revoked: bool,
}

#[derive(Debug)]
pub struct RefreshToken {
    pub grant: u64,
    pub used: bool,
    pub revoked: bool,
    /// The scopes of the token it renews.
    pub scopes: Vec<String>,
    /// When it was issued or last used (for providers whose unused refresh tokens lapse).
    pub last_used: Instant,
}

/// Everything mutable, behind one mutex.
#[derive(Debug, Default)]
pub struct Inner {
    pub next_grant: u64,
    pub grants: HashMap<u64, Grant>,
    pub codes: HashMap<String, Code>,
    pub access: HashMap<String, Access>,
    pub refresh: HashMap<String, RefreshToken>,
    pub revoked: Vec<String>,
    pub log: Vec<RequestRecord>,
    pub refusals: Vec<Refusal>,
    /// Added to the clock, so that a suite can let time pass without waiting.
    pub skew: Duration,
}

impl Inner {
    pub fn now(&self) -> Instant {
        Instant::now() + self.skew
    }

    pub fn new_grant(&mut self) -> u64 {
        self.next_grant += 1;
        self.grants
            .insert(self.next_grant, Grant { revoked: false });
        self.next_grant
    }

    pub fn grant_live(&self, grant: u64) -> bool {
        self.grants.get(&grant).is_some_and(|g| !g.revoked)
    }

    pub fn revoke_grant(&mut self, grant: u64) {
        if let Some(g) = self.grants.get_mut(&grant) {
            g.revoked = true;
        }
    }

    /// Issues an access token of this lifetime (`None`: never expires).
    pub fn issue_access(&mut self, grant: u64, lifetime: Option<u64>) -> String {
        let token = random_token("at");
        let expires = lifetime.map(|s| self.now() + Duration::from_secs(s));
        self.access.insert(
            token.clone(),
            Access {
                grant,
                expires,
                revoked: false,
            },
        );
        token
    }

    pub fn issue_refresh(&mut self, grant: u64, scopes: Vec<String>) -> String {
        let token = random_token("rt");
        let now = self.now();
        self.refresh.insert(
            token.clone(),
            RefreshToken {
                grant,
                used: false,
                revoked: false,
                scopes,
                last_used: now,
            },
        );
        token
    }

    /// Issued, not revoked, its grant not revoked, not expired.
    pub fn access_valid(&self, token: &str) -> bool {
        let now = self.now();
        self.access.get(token).is_some_and(|a| {
            !a.revoked && self.grant_live(a.grant) && a.expires.is_none_or(|e| now < e)
        })
    }
}

/// A random token with a prefix that tells what it is.
pub fn random_token(prefix: &str) -> String {
    let bytes: [u8; 24] = rand::rng().random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}-{hex}")
}

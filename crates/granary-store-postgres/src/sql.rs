//! Every statement [`PostgresStore`](crate::PostgresStore) runs, one per store method (plus
//! the reads that explain a lost compare-and-swap). Public so that the bench runs the very
//! same statements on raw tokio-postgres, and so that a DBA can read what granary sends.
//!
//! Each write that changes an instance or its token record is one statement: the write in a
//! CTE `w`, then, only when `w` returned a row, the change counter row (`change_counter`,
//! one row) incremented, the change inserted under that number, and every 64th change the
//! rows older than the newest [`CHANGES_KEPT`](granary_store::CHANGES_KEPT) deleted. The
//! counter row stays locked until the statement commits, so writers that append changes
//! take numbers one after the other and commit in number order: a reader that sees change
//! `n` sees every change below it.

/// Wraps a write (a statement with `RETURNING`, the CTE `w`) so that it appends its change,
/// naming the instance in parameter `$1`, in the same statement; selects `$result` from `w`.
macro_rules! with_change {
    ($write:expr, $result:expr) => {
        concat!(
            "WITH w AS (",
            $write,
            "), c AS (UPDATE change_counter SET last = last + 1 WHERE EXISTS (SELECT 1 FROM w) RETURNING last), ",
            "a AS (INSERT INTO changes (seq, instance) SELECT last, $1 FROM c), ",
            "p AS (DELETE FROM changes WHERE seq <= (SELECT last FROM c) - 1024 AND (SELECT last FROM c) % 64 = 0) ",
            "SELECT ",
            $result,
            " FROM w"
        )
    };
}

/// The columns of an instance, in the order of every statement below.
pub const INSTANCE_COLUMNS: &str = "id, integration, scheme, client_id, client_secret, scopes, \
    redirect_uri, authorization_url, token_url, extra_authorization_params, extra_token_params, \
    extra_token_headers, client_auth, status, created, updated, version, token_lifetime, connection, \
    profile";

/// Inserts or replaces an integration.
pub const PUT_INTEGRATION: &str = "INSERT INTO integrations (name, source_digest, flows, created) \
    VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO UPDATE SET source_digest = EXCLUDED.source_digest, \
    flows = EXCLUDED.flows, created = EXCLUDED.created";
/// One integration.
pub const GET_INTEGRATION: &str =
    "SELECT name, source_digest, flows, created FROM integrations WHERE name = $1";
/// Every integration, by name.
pub const LIST_INTEGRATIONS: &str =
    "SELECT name, source_digest, flows, created FROM integrations ORDER BY name";
/// Removes an integration (the foreign key of `instances` refuses while one belongs to it).
pub const DELETE_INTEGRATION: &str = "DELETE FROM integrations WHERE name = $1 RETURNING 1";

/// Creates an instance with version 1, and its change.
pub const CREATE_INSTANCE: &str = with_change!(
    "INSERT INTO instances (id, integration, scheme, client_id, client_secret, scopes, \
     redirect_uri, authorization_url, token_url, extra_authorization_params, extra_token_params, \
     extra_token_headers, client_auth, status, created, updated, version, token_lifetime, \
     connection, profile) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 1, $17, $18, \
     $19) \
     RETURNING version",
    "version"
);
/// One instance.
pub const GET_INSTANCE: &str = "SELECT id, integration, scheme, client_id, client_secret, scopes, \
    redirect_uri, authorization_url, token_url, extra_authorization_params, extra_token_params, \
    extra_token_headers, client_auth, status, created, updated, version, token_lifetime, connection, \
    profile FROM instances WHERE id = $1";
/// Every instance, by id.
pub const LIST_INSTANCES: &str = "SELECT id, integration, scheme, client_id, client_secret, scopes, \
    redirect_uri, authorization_url, token_url, extra_authorization_params, extra_token_params, \
    extra_token_headers, client_auth, status, created, updated, version, token_lifetime, connection, \
    profile FROM instances ORDER BY id";
/// Replaces an instance while it has version `$17`, and appends its change.
pub const UPDATE_INSTANCE: &str = with_change!(
    "UPDATE instances SET integration = $2, scheme = $3, client_id = $4, client_secret = $5, \
     scopes = $6, redirect_uri = $7, authorization_url = $8, token_url = $9, \
     extra_authorization_params = $10, extra_token_params = $11, extra_token_headers = $12, \
     client_auth = $13, status = $14, created = $15, updated = $16, version = version + 1, \
     token_lifetime = $18, connection = $19, profile = $20 \
     WHERE id = $1 AND version = $17 RETURNING version",
    "version"
);
/// The version of an instance (explains a lost `UPDATE_INSTANCE`).
pub const INSTANCE_VERSION: &str = "SELECT version FROM instances WHERE id = $1";
/// Removes an instance; the foreign keys cascade to its token, pendings and lease.
pub const DELETE_INSTANCE: &str =
    with_change!("DELETE FROM instances WHERE id = $1 RETURNING id", "id");

/// Stores a pending authorization.
pub const PUT_PENDING: &str = "INSERT INTO pendings (state, instance, pkce_verifier, redirect_uri, \
    expected_issuer, created, expires) VALUES ($1, $2, $3, $4, $5, $6, $7)";
/// Removes a pending authorization and returns it: at most one taker gets the row.
pub const TAKE_PENDING: &str = "DELETE FROM pendings WHERE state = $1 RETURNING state, instance, \
    pkce_verifier, redirect_uri, expected_issuer, created, expires";
/// Removes the expired pending authorizations.
pub const PURGE_PENDINGS: &str =
    "WITH d AS (DELETE FROM pendings WHERE expires <= $1 RETURNING 1) SELECT count(*) FROM d";

/// The token of an instance.
pub const GET_TOKEN: &str = "SELECT access_token, refresh_token, token_type, scope, expires_at, \
    obtained_at, last_refresh, version, kept FROM tokens WHERE instance = $1";
/// The tokens expiring before `$1` after the cursor (`$2`, `$3`; the smallest time and ''
/// for none), by (expiry, instance), at most `$4`: a range of the index `tokens_by_expiry`.
pub const TOKENS_EXPIRING_BEFORE: &str = "SELECT access_token, refresh_token, token_type, scope, \
    expires_at, obtained_at, last_refresh, version, instance, kept FROM tokens \
    WHERE expires_at < $1 AND (expires_at, instance) > ($2, $3) \
    ORDER BY expires_at, instance LIMIT $4";
/// The tokens obtained before `$1` after the cursor (`$2`, `$3`), by (time obtained,
/// instance), at most `$4`: a range of the index `tokens_by_obtained`.
pub const TOKENS_OBTAINED_BEFORE: &str = "SELECT access_token, refresh_token, token_type, scope, \
    expires_at, obtained_at, last_refresh, version, instance, kept FROM tokens \
    WHERE obtained_at < $1 AND (obtained_at, instance) > ($2, $3) \
    ORDER BY obtained_at, instance LIMIT $4";
/// A page of instances with an id above `$1` ('' for the first page), with status `$2` and
/// integration `$3` when given, by id, at most `$4`, each with its token joined.
pub const LIST_INSTANCES_PAGE: &str = "SELECT i.id, i.integration, i.scheme, i.client_id, \
    i.client_secret, i.scopes, i.redirect_uri, i.authorization_url, i.token_url, \
    i.extra_authorization_params, i.extra_token_params, i.extra_token_headers, i.client_auth, \
    i.status, i.created, i.updated, i.version, t.access_token, t.refresh_token, t.token_type, \
    t.scope, t.expires_at, t.obtained_at, t.last_refresh, t.version, t.instance, \
    i.token_lifetime, i.connection, i.profile, t.kept \
    FROM instances i LEFT JOIN tokens t ON t.instance = i.id \
    WHERE i.id > $1 AND ($2::text IS NULL OR i.status = $2) \
    AND ($3::text IS NULL OR i.integration = $3) ORDER BY i.id LIMIT $4";
/// The number of instances per status.
pub const COUNT_INSTANCES_BY_STATUS: &str =
    "SELECT status, count(*) FROM instances GROUP BY status";
/// Writes the first token of an instance (none may exist), and its change.
pub const PUT_TOKEN_NEW: &str = with_change!(
    "INSERT INTO tokens (instance, access_token, refresh_token, token_type, scope, expires_at, \
     obtained_at, last_refresh, version, kept) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1, $9) \
     ON CONFLICT (instance) DO NOTHING RETURNING version",
    "version"
);
/// Replaces the token of an instance (`$10`: its kept values) while it has version `$9`, and
/// appends its change.
pub const PUT_TOKEN_CAS: &str = with_change!(
    "UPDATE tokens SET access_token = $2, refresh_token = $3, token_type = $4, scope = $5, \
     expires_at = $6, obtained_at = $7, last_refresh = $8, version = version + 1, kept = $10 \
     WHERE instance = $1 AND version = $9 RETURNING version",
    "version"
);
/// `PUT_TOKEN_CAS` (`$12`: the kept values) only while `$10` holds the lease unexpired at `$11`
/// (`expires > now`). The lease row is locked `FOR SHARE` until the write commits, so no
/// takeover slips between the check and the write.
pub const PUT_TOKEN_FENCED: &str = with_change!(
    "UPDATE tokens SET access_token = $2, refresh_token = $3, token_type = $4, scope = $5, \
     expires_at = $6, obtained_at = $7, last_refresh = $8, version = version + 1, kept = $12 \
     WHERE instance = $1 AND version = $9 AND EXISTS (SELECT 1 FROM leases \
     WHERE instance = $1 AND holder = $10 AND expires > $11 FOR SHARE) RETURNING version",
    "version"
);
/// The token version and whether the instance exists (explains a token write that wrote
/// nothing).
pub const TOKEN_VERSION: &str = "SELECT (SELECT version FROM tokens WHERE instance = $1), \
    EXISTS (SELECT 1 FROM instances WHERE id = $1)";
/// Removes whatever token is stored, and appends its change.
pub const DELETE_TOKEN_ANY: &str = with_change!(
    "DELETE FROM tokens WHERE instance = $1 RETURNING instance",
    "instance"
);
/// Removes the token while it has version `$2`, and appends its change.
pub const DELETE_TOKEN_VERSION: &str = with_change!(
    "DELETE FROM tokens WHERE instance = $1 AND version = $2 RETURNING instance",
    "instance"
);

/// Takes the lease for `$2` until `$3`: inserted when none exists, replaced when it expired
/// at `$4` or `$2` holds it already; one row back when taken. `ON CONFLICT DO UPDATE` locks
/// the existing row and judges the condition on its newest version.
pub const TRY_ACQUIRE_LEASE: &str = "INSERT INTO leases (instance, holder, expires) VALUES ($1, $2, $3) \
    ON CONFLICT (instance) DO UPDATE SET holder = EXCLUDED.holder, expires = EXCLUDED.expires \
    WHERE leases.holder = EXCLUDED.holder OR leases.expires <= $4 RETURNING 1";
/// Releases the lease of `$2`.
pub const RELEASE_LEASE: &str =
    "DELETE FROM leases WHERE instance = $1 AND holder = $2 RETURNING 1";
/// The lease as stored.
pub const GET_LEASE: &str = "SELECT instance, holder, expires FROM leases WHERE instance = $1";

/// The newest change number.
pub const LATEST_CHANGE: &str = "SELECT last FROM change_counter";
/// The counter, the oldest kept change, and the changes above `$1` (at most `$2`), from one
/// snapshot (one statement).
pub const CHANGES_SINCE: &str = "SELECT c.last, (SELECT min(seq) FROM changes), \
    ARRAY(SELECT seq FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2), \
    ARRAY(SELECT instance FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2) \
    FROM change_counter c";

/// The key check: stored when none is (or when `$2`), and the stored value returned, in one
/// statement (the row lock of the conflict makes concurrent first writers agree).
pub const PUT_KEY_CHECK: &str = "INSERT INTO key_check (only_row, value) VALUES (true, $1) \
    ON CONFLICT (only_row) DO UPDATE SET \
    value = CASE WHEN $2 THEN EXCLUDED.value ELSE key_check.value END RETURNING value";

/// Creates an admin session; no row back when the digest is taken.
pub const CREATE_SESSION: &str = "INSERT INTO admin_sessions (digest, csrf, created, expires) \
    VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1";
/// The session of a digest, unexpired at `$2`.
pub const GET_SESSION: &str = "SELECT digest, csrf, created, expires FROM admin_sessions \
    WHERE digest = $1 AND expires > $2";
/// Removes a session; the foreign key cascades to its banner.
pub const DELETE_SESSION: &str = "DELETE FROM admin_sessions WHERE digest = $1 RETURNING 1";
/// Keeps the banner `$2` of the session `$1` while it is unexpired at `$3` (replacing the one
/// kept); one row back when kept.
pub const SET_SESSION_BANNER: &str = "INSERT INTO admin_banners (digest, banner) \
    SELECT digest, $2 FROM admin_sessions WHERE digest = $1 AND expires > $3 \
    ON CONFLICT (digest) DO UPDATE SET banner = EXCLUDED.banner RETURNING 1";
/// Removes the banner of the session `$1`, unexpired at `$2`, and returns it: at most one
/// taker gets the row.
pub const TAKE_SESSION_BANNER: &str = "DELETE FROM admin_banners b USING admin_sessions s \
    WHERE b.digest = $1 AND s.digest = b.digest AND s.expires > $2 RETURNING b.banner";
/// Removes the sessions expired at `$1` (and their banners).
pub const PURGE_SESSIONS: &str =
    "WITH d AS (DELETE FROM admin_sessions WHERE expires <= $1 RETURNING 1) SELECT count(*) FROM d";

/// Stores an API key; no row back when its id or digest is taken.
pub const CREATE_API_KEY: &str = "INSERT INTO api_keys (id, name, role, digest, created) \
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING 1";
/// Every API key, by id.
pub const LIST_API_KEYS: &str = "SELECT id, name, role, digest, created FROM api_keys ORDER BY id";
/// The API key of a digest.
pub const FIND_API_KEY: &str =
    "SELECT id, name, role, digest, created FROM api_keys WHERE digest = $1";
/// Revokes (removes) an API key.
pub const REVOKE_API_KEY: &str = "DELETE FROM api_keys WHERE id = $1 RETURNING 1";

/// Stores a webhook endpoint, replacing the one with its id.
pub const PUT_WEBHOOK_ENDPOINT: &str = "INSERT INTO webhook_endpoints \
    (id, url, secret, events, enabled, created) VALUES ($1, $2, $3, $4, $5, $6) \
    ON CONFLICT (id) DO UPDATE SET url = EXCLUDED.url, secret = EXCLUDED.secret, \
    events = EXCLUDED.events, enabled = EXCLUDED.enabled, created = EXCLUDED.created";
/// Every webhook endpoint, by id.
pub const LIST_WEBHOOK_ENDPOINTS: &str =
    "SELECT id, url, secret, events, enabled, created FROM webhook_endpoints ORDER BY id";
/// Removes a webhook endpoint; the foreign key cascades to its deliveries.
pub const DELETE_WEBHOOK_ENDPOINT: &str = "DELETE FROM webhook_endpoints WHERE id = $1 RETURNING 1";

/// Stores deliveries given as one array per column, all in one statement: a taken id (or
/// one twice) fails it with a unique violation, an unknown endpoint with a foreign key
/// violation, and then none is stored.
pub const ENQUEUE_DELIVERIES: &str = "INSERT INTO webhook_deliveries (id, endpoint, event_type, \
    payload, created, state, attempts, next_attempt, claimed_by, claimed_until) \
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], \
    $6::text[], $7::text[], $8::bigint[], $9::text[], $10::bigint[])";
/// Claims for `$2` until `$3` at most `$4` deliveries pending, due at `$1` and without a live
/// claim, oldest due first: rows another claimer holds locked are skipped, and a row claimed
/// and committed meanwhile is checked again against the condition, so no two claimers get
/// one delivery. The rows come back in no order.
pub const CLAIM_DELIVERIES: &str = "UPDATE webhook_deliveries SET claimed_by = $2, \
    claimed_until = $3 WHERE id IN (SELECT id FROM webhook_deliveries \
    WHERE state = 'pending' AND next_attempt <= $1 \
    AND (claimed_until IS NULL OR claimed_until <= $1) \
    ORDER BY next_attempt, id LIMIT $4 FOR UPDATE SKIP LOCKED) \
    RETURNING id, endpoint, event_type, payload, created, state, attempts, next_attempt, \
    claimed_by, claimed_until";
/// One delivery.
pub const GET_DELIVERY: &str = "SELECT id, endpoint, event_type, payload, created, state, \
    attempts, next_attempt, claimed_by, claimed_until FROM webhook_deliveries WHERE id = $1";
/// Records an attempt on delivery `$1` (state `$4`, attempts `$5`, due `$6`, claim cleared)
/// only while `$2` holds a live claim at `$3` and the attempts are still `$7` (as read).
pub const FINISH_DELIVERY_ATTEMPT: &str = "UPDATE webhook_deliveries SET state = $4, \
    attempts = $5, next_attempt = $6, claimed_by = NULL, claimed_until = NULL \
    WHERE id = $1 AND state = 'pending' AND claimed_by = $2 AND claimed_until > $3 \
    AND attempts = $7 RETURNING 1";
/// The deliveries of endpoint `$1`, newest first, at most `$2`.
pub const LIST_DELIVERIES: &str = "SELECT id, endpoint, event_type, payload, created, state, \
    attempts, next_attempt, claimed_by, claimed_until FROM webhook_deliveries \
    WHERE endpoint = $1 ORDER BY created DESC, id DESC LIMIT $2";
/// Removes the delivered and failed deliveries created before `$1`.
pub const PURGE_FINISHED_DELIVERIES: &str = "WITH d AS (DELETE FROM webhook_deliveries \
    WHERE state IN ('delivered', 'failed') AND created < $1 RETURNING 1) SELECT count(*) FROM d";

/// Stores a reconnect link; no row back when the digest is taken.
pub const CREATE_RECONNECT_LINK: &str = "INSERT INTO reconnect_links \
    (digest, instance, created, expires) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1";
/// The reconnect link of a digest, unexpired at `$2`.
pub const FIND_RECONNECT_LINK: &str = "SELECT digest, instance, created, expires \
    FROM reconnect_links WHERE digest = $1 AND expires > $2";
/// Removes the reconnect link of a digest, unexpired at `$2`, and returns it: at most one
/// taker gets the row.
pub const TAKE_RECONNECT_LINK: &str = "DELETE FROM reconnect_links \
    WHERE digest = $1 AND expires > $2 RETURNING digest, instance, created, expires";
/// Removes the reconnect links expired at `$1`.
pub const PURGE_RECONNECT_LINKS: &str = "WITH d AS (DELETE FROM reconnect_links \
    WHERE expires <= $1 RETURNING 1) SELECT count(*) FROM d";

#[cfg(test)]
mod tests {
    #[test]
    fn the_pruning_keeps_changes_kept() {
        let kept = format!("- {} AND", granary_store::CHANGES_KEPT);
        assert!(super::PUT_TOKEN_CAS.contains(&kept));
    }
}

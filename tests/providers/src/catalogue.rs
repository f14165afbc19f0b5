//! The behaviours of the ~50 most used providers, from their published documentation.

use crate::behaviour::{
    ApiAuth, Behaviour, BodyFormat, CallbackValue, ClientAuth, ExpiringParam, ExpiringValue,
    Expiry, Field, FieldKind, FieldValue, Pkce, Refresh, ResponseType, Revocation, Separator,
};

const DAY: u64 = 24 * 3600;
const OFFLINE_ACCESS: &[&str] = &["offline_access"];
const QUERY_ONLY: &[(&str, &[&str])] = &[("response_mode", &["query"])];
const ROTATING: Refresh = Refresh::RefreshToken {
    rotating: true,
    repeated: false,
};
const NOT_REPEATED: Refresh = Refresh::RefreshToken {
    rotating: false,
    repeated: false,
};
const fn label(name: &'static str, example: &'static str) -> Field {
    Field {
        name,
        kind: FieldKind::Label,
        example,
    }
}
const fn labels(name: &'static str, example: &'static str) -> Field {
    Field {
        name,
        kind: FieldKind::Labels,
        example,
    }
}
const fn segment(name: &'static str, example: &'static str) -> Field {
    Field {
        name,
        kind: FieldKind::Segment,
        example,
    }
}
const AUTHENTICATED: Revocation = Revocation::Token {
    authenticated: true,
};
const UNAUTHENTICATED: Revocation = Revocation::Token {
    authenticated: false,
};

/// Every behaviour, in the order of PROVIDERS.md's table.
pub fn all() -> Vec<Behaviour> {
    ALL.to_vec()
}

use Behaviour as B;

const ALL: &[Behaviour] = &[
    // Without access_type=offline and prompt=consent no refresh token (re-consent case).
    B {
        revocation_urls: &["https://oauth2.googleapis.com/revoke"],
        revocation: UNAUTHENTICATED,
        offline_params: &[("access_type", "offline"), ("prompt", "consent")],
        constrained_params: &[("access_type", &["online", "offline"])],
        lifetime: 3599,
        refresh: NOT_REPEATED,
        api_urls: &["https://www.googleapis.com/oauth2/v3/userinfo"],
        refresh_token_lapse: Some(180 * DAY),
        ..B::standard(
            "google",
            "Google",
            &["https://accounts.google.com/o/oauth2/v2/auth"],
            &["https://oauth2.googleapis.com/token"],
            &["openid", "https://www.googleapis.com/auth/drive.readonly"],
        )
    },
    B {
        fields: &[segment("tenant", "common")],
        offline_scopes: OFFLINE_ACCESS,
        constrained_params: QUERY_ONLY,
        pkce: Pkce::Refused,
        lifetime: 3599,
        api_urls: &["https://graph.microsoft.com/v1.0/me"],
        ..B::standard(
            "microsoft",
            "Microsoft",
            &["https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize"],
            &["https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token"],
            &["User.Read", "Mail.Read"],
        )
    },
    B {
        fields: &[labels("hostname", "acme.my.salesforce.com")],
        revocation_urls: &[
            "https://login.salesforce.com/services/oauth2/revoke",
            "https://{hostname}/services/oauth2/revoke",
        ],
        revocation: UNAUTHENTICATED,
        offline_scopes: &["refresh_token", "offline_access"],
        extra_fields: &[
            (
                "instance_url",
                FieldValue::Url("https://acme.my.salesforce.com"),
            ),
            (
                "id",
                FieldValue::Url(
                    "https://login.salesforce.com/id/00D000000000001EAA/005000000000001AAA",
                ),
            ),
            ("issued_at", FieldValue::NowMillis),
            ("signature", FieldValue::Text("ZW11bGF0b3Itc2lnbmF0dXJl")),
        ],
        expiry: Expiry::NotSent,
        lifetime: 7200,
        refresh: NOT_REPEATED,
        api_urls: &["https://acme.my.salesforce.com/services/data/v60.0/"],
        ..B::standard(
            "salesforce",
            "Salesforce",
            &[
                "https://login.salesforce.com/services/oauth2/authorize",
                "https://test.salesforce.com/services/oauth2/authorize",
                "https://{hostname}/services/oauth2/authorize",
            ],
            &[
                "https://login.salesforce.com/services/oauth2/token",
                "https://test.salesforce.com/services/oauth2/token",
                "https://{hostname}/services/oauth2/token",
            ],
            &["api", "id"],
        )
    },
    B {
        client_auth: ClientAuth::Post,
        lifetime: 1800,
        api_urls: &["https://api.hubapi.com/crm/v3/objects/contacts"],
        ..B::standard(
            "hubspot",
            "HubSpot",
            &["https://app.hubspot.com/oauth/authorize"],
            &[
                "https://api.hubapi.com/oauth/v1/token",
                "https://api.hubapi.com/oauth/v3/token",
            ],
            &["oauth", "crm.objects.contacts.read"],
        )
    },
    B {
        extra_fields: &[
            ("stripe_user_id", FieldValue::Text("acct_EMULATOR")),
            (
                "stripe_publishable_key",
                FieldValue::Text("pk_test_EMULATOR"),
            ),
            ("livemode", FieldValue::Text("false")),
        ],
        expiry: Expiry::NotSent,
        lifetime: 10 * 365 * 24 * 3600,
        api_urls: &["https://api.stripe.com/v1/account"],
        token_type: "bearer",
        ..B::standard(
            "stripe-connect",
            "Stripe Connect",
            &["https://connect.stripe.com/oauth/authorize"],
            &["https://connect.stripe.com/oauth/token"],
            &["read_write"],
        )
    },
    B {
        lifetime: 7200,
        refresh: ROTATING,
        api_urls: &["https://api.gusto.com/v1/me"],
        ..B::standard(
            "gusto",
            "Gusto",
            &["https://api.gusto.com/oauth/authorize"],
            &["https://api.gusto.com/oauth/token"],
            &["employees:read", "companies:read"],
        )
    },
    B {
        revocation_urls: &["https://gitlab.com/oauth/revoke"],
        revocation: AUTHENTICATED,
        lifetime: 7200,
        refresh: ROTATING,
        api_urls: &["https://gitlab.com/api/v4/user"],
        ..B::standard(
            "gitlab",
            "GitLab",
            &["https://gitlab.com/oauth/authorize"],
            &["https://gitlab.com/oauth/token"],
            &["read_user", "api"],
        )
    },
    B {
        lifetime: 7200,
        api_urls: &["https://api.bitbucket.org/2.0/user"],
        ..B::standard(
            "bitbucket",
            "Bitbucket",
            &["https://bitbucket.org/site/oauth2/authorize"],
            &["https://bitbucket.org/site/oauth2/access_token"],
            &["repository", "account"],
        )
    },
    // ClickUp: "access tokens do not expire at this time"; no refresh token.
    B {
        refresh: Refresh::NonExpiring,
        api_urls: &["https://api.clickup.com/api/v2/user"],
        ..B::standard(
            "clickup",
            "ClickUp",
            &["https://app.clickup.com/api"],
            &["https://api.clickup.com/api/v2/oauth/token"],
            &[],
        )
    },
    B {
        api_urls: &["https://api2.frontapp.com/me"],
        ..B::standard(
            "front",
            "Front",
            &["https://app.frontapp.com/oauth/authorize"],
            &["https://app.frontapp.com/oauth/token"],
            &[],
        )
    },
    B {
        lifetime: 7200,
        api_urls: &["https://api.salesloft.com/v2/me"],
        ..B::standard(
            "salesloft",
            "Salesloft",
            &["https://accounts.salesloft.com/oauth/authorize"],
            &["https://accounts.salesloft.com/oauth/token"],
            &[],
        )
    },
    B {
        lifetime: 3599,
        refresh: ROTATING,
        api_urls: &["https://api.miro.com/v1/oauth-token"],
        ..B::standard(
            "miro",
            "Miro",
            &["https://miro.com/oauth/authorize"],
            &["https://api.miro.com/v1/oauth/token"],
            &["boards:read", "boards:write"],
        )
    },
    B {
        refresh: NOT_REPEATED,
        api_urls: &["https://api.spotify.com/v1/me"],
        ..B::standard(
            "spotify",
            "Spotify",
            &["https://accounts.spotify.com/authorize"],
            &["https://accounts.spotify.com/api/token"],
            &["user-read-email", "playlist-read-private"],
        )
    },
    B {
        revocation_urls: &["https://discord.com/api/oauth2/token/revoke"],
        revocation: AUTHENTICATED,
        lifetime: 604_800,
        refresh: ROTATING,
        // The versioned API (v10, what clients should use) and the unversioned one.
        api_urls: &[
            "https://discord.com/api/v10/users/@me",
            "https://discord.com/api/users/@me",
        ],
        ..B::standard(
            "discord",
            "Discord",
            &[
                "https://discord.com/oauth2/authorize",
                "https://discord.com/api/oauth2/authorize",
            ],
            &["https://discord.com/api/oauth2/token"],
            &["identify", "guilds"],
        )
    },
    B {
        lifetime: 7200,
        api_urls: &["https://api.outreach.io/api/v2/users"],
        ..B::standard(
            "outreach",
            "Outreach",
            &["https://api.outreach.io/oauth/authorize"],
            &["https://api.outreach.io/oauth/token"],
            &["prospects.read", "accounts.read"],
        )
    },
    // Bot scopes in `scope` give the top-level (bot) token; user scopes in `user_scope`
    // give the user token under `authed_user`. Token rotation on (expiring tokens).
    B {
        revocation_urls: &["https://slack.com/api/auth.revoke"],
        revocation: UNAUTHENTICATED,
        scope_params: &["scope", "user_scope"],
        scope_separator: Separator::Comma,
        pkce: Pkce::Refused,
        nested_token: Some(("user_scope", "authed_user")),
        errors_in_200: true,
        extra_fields: &[
            ("team.id", FieldValue::Text("T0EMULATOR")),
            ("team.name", FieldValue::Text("Acme")),
            ("app_id", FieldValue::Text("A0EMULATOR")),
            ("authed_user.id", FieldValue::Text("U0EMULATOR")),
        ],
        lifetime: 43_200,
        api_urls: &["https://slack.com/api/auth.test"],
        token_type: "bot",
        ..B::standard(
            "slack",
            "Slack",
            &["https://slack.com/oauth/v2/authorize"],
            &["https://slack.com/api/oauth.v2.access"],
            &["channels:read", "chat:write"],
        )
    },
    // OAuth App: tokens never expire, no refresh token; form-encoded answer unless
    // Accept: application/json.
    B {
        refresh: Refresh::NonExpiring,
        form_response_unless_json_accepted: true,
        api_urls: &["https://api.github.com/user"],
        token_type: "bearer",
        ..B::standard(
            "github",
            "GitHub",
            &["https://github.com/login/oauth/authorize"],
            &["https://github.com/login/oauth/access_token"],
            &["repo", "read:user"],
        )
    },
    B {
        required_params: &[("audience", "api.atlassian.com"), ("prompt", "consent")],
        offline_scopes: OFFLINE_ACCESS,
        body_format: BodyFormat::Either,
        refresh: ROTATING,
        api_urls: &["https://api.atlassian.com/oauth/token/accessible-resources"],
        refresh_token_lapse: Some(90 * DAY),
        ..B::standard(
            "atlassian",
            "Atlassian",
            &["https://auth.atlassian.com/authorize"],
            &["https://auth.atlassian.com/oauth/token"],
            &["read:jira-work", "read:jira-user"],
        )
    },
    B {
        revocation_urls: &["https://zoom.us/oauth/revoke"],
        revocation: AUTHENTICATED,
        scope_separator: Separator::Comma,
        lifetime: 3599,
        refresh: ROTATING,
        api_urls: &["https://api.zoom.us/v2/users/me"],
        refresh_token_lapse: Some(90 * DAY),
        ..B::standard(
            "zoom",
            "Zoom",
            &["https://zoom.us/oauth/authorize"],
            &["https://zoom.us/oauth/token"],
            &["meeting:read", "user:read"],
        )
    },
    B {
        revocation_urls: &["https://api.dropboxapi.com/2/auth/token/revoke"],
        revocation: Revocation::Bearer,
        offline_params: &[("token_access_type", "offline")],
        constrained_params: &[("token_access_type", &["online", "offline", "legacy"])],
        lifetime: 14_400,
        refresh: NOT_REPEATED,
        api_urls: &["https://api.dropboxapi.com/2/users/get_current_account"],
        ..B::standard(
            "dropbox",
            "Dropbox",
            &["https://www.dropbox.com/oauth2/authorize"],
            &["https://api.dropboxapi.com/oauth2/token"],
            &["files.metadata.read", "account_info.read"],
        )
    },
    B {
        revocation_urls: &["https://api.box.com/oauth2/revoke"],
        revocation: AUTHENTICATED,
        client_auth: ClientAuth::Post,
        refresh: ROTATING,
        api_urls: &["https://api.box.com/2.0/users/me"],
        refresh_token_lapse: Some(60 * DAY),
        ..B::standard(
            "box",
            "Box",
            &["https://account.box.com/api/oauth2/authorize"],
            &["https://api.box.com/oauth2/token"],
            &["root_readwrite", "manage_webhook"],
        )
    },
    B {
        required_params: &[("owner", "user")],
        client_auth: ClientAuth::Basic,
        body_format: BodyFormat::Json,
        extra_fields: &[
            ("workspace_id", FieldValue::Text("ws-emulator-0001")),
            ("workspace_name", FieldValue::Text("Acme")),
            ("bot_id", FieldValue::Text("bot-emulator-0001")),
            ("owner.type", FieldValue::Text("user")),
        ],
        expiry: Expiry::NotSent,
        lifetime: 10 * 365 * 24 * 3600,
        api_urls: &["https://api.notion.com/v1/users/me"],
        ..B::standard(
            "notion",
            "Notion",
            &["https://api.notion.com/v1/oauth/authorize"],
            &["https://api.notion.com/v1/oauth/token"],
            &[],
        )
    },
    // Scopes are comma-separated; without expiring=1 the offline token never expires
    // and comes without a refresh token.
    B {
        fields: &[label("shop", "acme")],
        scope_separator: Separator::Comma,
        client_auth: ClientAuth::Post,
        body_format: BodyFormat::Either,
        expiring_param: Some(ExpiringParam {
            name: "expiring",
            value: ExpiringValue::Exactly("1"),
            on_refresh: false,
        }),
        refresh: ROTATING,
        api_urls: &["https://{shop}.myshopify.com/admin/api/2024-10/shop.json"],
        api_auth: ApiAuth::Header("X-Shopify-Access-Token"),
        ..B::standard(
            "shopify",
            "Shopify",
            &["https://{shop}.myshopify.com/admin/oauth/authorize"],
            &["https://{shop}.myshopify.com/admin/oauth/access_token"],
            &["read_products", "write_orders"],
        )
    },
    B {
        revocation_urls: &["https://identity.xero.com/connect/revocation"],
        revocation: AUTHENTICATED,
        offline_scopes: OFFLINE_ACCESS,
        lifetime: 1800,
        refresh: ROTATING,
        api_urls: &["https://api.xero.com/connections"],
        refresh_token_lapse: Some(60 * DAY),
        ..B::standard(
            "xero",
            "Xero",
            &["https://login.xero.com/identity/connect/authorize"],
            &["https://identity.xero.com/connect/token"],
            &["openid", "accounting.transactions"],
        )
    },
    B {
        revocation_urls: &["https://developer.api.intuit.com/v2/oauth2/tokens/revoke"],
        revocation: AUTHENTICATED,
        callback_values: &[("realmId", CallbackValue::Text("9130355555555555"))],
        body_format: BodyFormat::Either,
        refresh: ROTATING,
        api_urls: &["https://quickbooks.api.intuit.com/v3/company/{realmId}/companyinfo/{realmId}"],
        refresh_token_lapse: Some(100 * DAY),
        ..B::standard(
            "quickbooks",
            "QuickBooks (Intuit)",
            &["https://appcenter.intuit.com/connect/oauth2"],
            &["https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer"],
            &["com.intuit.quickbooks.accounting", "openid"],
        )
    },
    // Without expires_in (300..172800) the token never expires and has no refresh token.
    B {
        fields: &[label("subdomain", "acme")],
        client_auth: ClientAuth::Post,
        body_format: BodyFormat::Either,
        expiring_param: Some(ExpiringParam {
            name: "expires_in",
            value: ExpiringValue::Seconds {
                min: 300,
                max: 172_800,
            },
            on_refresh: true,
        }),
        refresh: ROTATING,
        api_urls: &["https://{subdomain}.zendesk.com/api/v2/users/me.json"],
        ..B::standard(
            "zendesk",
            "Zendesk",
            &["https://{subdomain}.zendesk.com/oauth/authorizations/new"],
            &["https://{subdomain}.zendesk.com/oauth/tokens"],
            &["read", "write"],
        )
    },
    B {
        revocation_urls: &["https://api.linear.app/oauth/revoke"],
        revocation: Revocation::Bearer,
        scope_separator: Separator::Comma,
        constrained_params: &[("prompt", &["consent"])],
        pkce: Pkce::Refused,
        lifetime: 86_399,
        refresh: ROTATING,
        api_urls: &["https://api.linear.app/graphql"],
        ..B::standard(
            "linear",
            "Linear",
            &["https://linear.app/oauth/authorize"],
            &["https://api.linear.app/oauth/token"],
            &["read", "write"],
        )
    },
    // An app with full permissions must ask for `default`.
    B {
        revocation_urls: &["https://app.asana.com/-/oauth_revoke"],
        revocation: AUTHENTICATED,
        required_scopes: &["default"],
        refresh: NOT_REPEATED,
        api_urls: &["https://app.asana.com/api/1.0/users/me"],
        ..B::standard(
            "asana",
            "Asana",
            &["https://app.asana.com/-/oauth_authorize"],
            &["https://app.asana.com/-/oauth_token"],
            &["tasks:read", "projects:read"],
        )
    },
    B {
        client_auth: ClientAuth::Basic,
        pkce: Pkce::Required,
        refresh: ROTATING,
        api_urls: &["https://api.airtable.com/v0/meta/whoami"],
        ..B::standard(
            "airtable",
            "Airtable",
            &["https://airtable.com/oauth2/v1/authorize"],
            &["https://airtable.com/oauth2/v1/token"],
            &["data.records:read", "schema.bases:read"],
        )
    },
    B {
        revocation_urls: &["https://www.linkedin.com/oauth/v2/revoke"],
        revocation: AUTHENTICATED,
        pkce: Pkce::Refused,
        client_auth: ClientAuth::Post,
        lifetime: 5_184_000,
        api_urls: &["https://api.linkedin.com/v2/userinfo"],
        ..B::standard(
            "linkedin",
            "LinkedIn",
            &["https://www.linkedin.com/oauth/v2/authorization"],
            &["https://www.linkedin.com/oauth/v2/accessToken"],
            &["openid", "profile"],
        )
    },
    B {
        revocation_urls: &[
            "https://api.x.com/2/oauth2/revoke",
            "https://api.twitter.com/2/oauth2/revoke",
        ],
        revocation: AUTHENTICATED,
        constrained_params: QUERY_ONLY,
        offline_scopes: &["offline.access"],
        pkce: Pkce::Required,
        client_auth: ClientAuth::Basic,
        lifetime: 7200,
        refresh: ROTATING,
        api_urls: &[
            "https://api.x.com/2/users/me",
            "https://api.twitter.com/2/users/me",
        ],
        ..B::standard(
            "x",
            "X (Twitter)",
            &[
                "https://x.com/i/oauth2/authorize",
                "https://twitter.com/i/oauth2/authorize",
            ],
            &[
                "https://api.x.com/2/oauth2/token",
                "https://api.twitter.com/2/oauth2/token",
            ],
            &["tweet.read", "users.read"],
        )
    },
    // No refresh token: a valid token is exchanged for a long-lived one (60 days).
    B {
        scope_separator: Separator::Any,
        client_auth: ClientAuth::Post,
        token_get: true,
        refresh: Refresh::ExchangeAccessToken {
            grant_type: "fb_exchange_token",
            param: "fb_exchange_token",
        },
        api_urls: &["https://graph.facebook.com/v21.0/me"],
        token_type: "bearer",
        ..B::standard(
            "facebook",
            "Facebook / Meta",
            &["https://www.facebook.com/v21.0/dialog/oauth"],
            &["https://graph.facebook.com/v21.0/oauth/access_token"],
            &["email", "public_profile"],
        )
    },
    // No refresh token: a valid long-lived token is refreshed with itself at another host.
    B {
        refresh_urls: &["https://graph.instagram.com/refresh_access_token"],
        scope_separator: Separator::Comma,
        client_auth: ClientAuth::Post,
        extra_fields: &[("user_id", FieldValue::Text("17841400000000000"))],
        refresh: Refresh::AccessTokenRefresh {
            grant_type: "ig_refresh_token",
            param: "access_token",
        },
        api_urls: &[
            "https://graph.instagram.com/v21.0/me",
            "https://graph.instagram.com/me",
        ],
        ..B::standard(
            "instagram",
            "Instagram / Threads",
            &[
                "https://www.instagram.com/oauth/authorize",
                "https://api.instagram.com/oauth/authorize",
            ],
            &["https://api.instagram.com/oauth/access_token"],
            &[
                "instagram_business_basic",
                "instagram_business_manage_messages",
            ],
        )
    },
    B {
        client_auth: ClientAuth::Basic,
        lifetime: 28_800,
        api_urls: &[
            "https://account.docusign.com/oauth/userinfo",
            "https://account-d.docusign.com/oauth/userinfo",
        ],
        ..B::standard(
            "docusign",
            "DocuSign",
            &[
                "https://account.docusign.com/oauth/auth",
                "https://account-d.docusign.com/oauth/auth",
            ],
            &[
                "https://account.docusign.com/oauth/token",
                "https://account-d.docusign.com/oauth/token",
            ],
            &["signature", "extended"],
        )
    },
    B {
        revocation_urls: &["https://auth.calendly.com/oauth/revoke"],
        revocation: AUTHENTICATED,
        extra_fields: &[
            (
                "owner",
                FieldValue::Text("https://api.calendly.com/users/EMULATOR"),
            ),
            (
                "organization",
                FieldValue::Text("https://api.calendly.com/organizations/EMULATOR"),
            ),
        ],
        lifetime: 7200,
        refresh: ROTATING,
        api_urls: &["https://api.calendly.com/users/me"],
        ..B::standard(
            "calendly",
            "Calendly",
            &["https://auth.calendly.com/oauth/authorize"],
            &["https://auth.calendly.com/oauth/token"],
            &[],
        )
    },
    // Revocation: POST /oauth/revoke with HTTP Basic (Pipedrive's "Revoking a token").
    B {
        pkce: Pkce::Refused,
        client_auth: ClientAuth::Basic,
        revocation_urls: &["https://oauth.pipedrive.com/oauth/revoke"],
        revocation: AUTHENTICATED,
        extra_fields: &[("api_domain", FieldValue::Url("https://acme.pipedrive.com"))],
        lifetime: 3599,
        api_urls: &["https://acme.pipedrive.com/api/v1/users/me"],
        ..B::standard(
            "pipedrive",
            "Pipedrive",
            &["https://oauth.pipedrive.com/oauth/authorize"],
            &["https://oauth.pipedrive.com/oauth/token"],
            &[],
        )
    },
    // Tokens never expire; a regional host, or the default (US) one.
    B {
        fields: &[label("region", "eu")],
        client_auth: ClientAuth::Post,
        refresh: Refresh::NonExpiring,
        api_urls: &[
            "https://api.intercom.io/me",
            "https://api.{region}.intercom.io/me",
        ],
        ..B::standard(
            "intercom",
            "Intercom",
            &[
                "https://app.intercom.com/oauth",
                "https://app.{region}.intercom.com/oauth",
            ],
            &[
                "https://api.intercom.io/auth/eagle/token",
                "https://api.{region}.intercom.io/auth/eagle/token",
            ],
            &[],
        )
    },
    // Tokens never expire; response_type is not accepted.
    B {
        response_type: ResponseType::Refused,
        pkce: Pkce::Refused,
        refresh: Refresh::NonExpiring,
        api_urls: &["https://api.monday.com/v2"],
        ..B::standard(
            "monday",
            "monday.com",
            &["https://auth.monday.com/oauth2/authorize"],
            &["https://auth.monday.com/oauth2/token"],
            &["boards:read", "users:read"],
        )
    },
    B {
        offline_scopes: &["offline"],
        pkce: Pkce::Refused,
        lifetime: 604_800,
        refresh: ROTATING,
        api_urls: &["https://api.typeform.com/me"],
        ..B::standard(
            "typeform",
            "Typeform",
            &["https://api.typeform.com/oauth/authorize"],
            &["https://api.typeform.com/oauth/token"],
            &["forms:read", "responses:read"],
        )
    },
    // Refresh at /v1/oauth/refresh; its answer has no refresh token (keep the old one).
    B {
        refresh_urls: &["https://api.figma.com/v1/oauth/refresh"],
        scope_separator: Separator::Comma,
        pkce: Pkce::Refused,
        client_auth: ClientAuth::Basic,
        extra_fields: &[("user_id_string", FieldValue::Text("1234567890"))],
        lifetime: 7_776_000,
        refresh: NOT_REPEATED,
        api_urls: &["https://api.figma.com/v1/me"],
        ..B::standard(
            "figma",
            "Figma",
            &["https://www.figma.com/oauth"],
            &["https://api.figma.com/v1/oauth/token"],
            &["file_content:read", "file_metadata:read"],
        )
    },
    // The user's account lives in the EU data centre: the callback names it in
    // accounts-server, and the code can be redeemed only there (not at .com).
    B {
        fields: &[labels("extension", "com")],
        revocation_urls: &["https://accounts.zoho.{extension}/oauth/v2/token/revoke"],
        revocation: UNAUTHENTICATED,
        offline_params: &[("access_type", "offline"), ("prompt", "consent")],
        scope_separator: Separator::Comma,
        callback_values: &[
            ("location", CallbackValue::Text("eu")),
            (
                "accounts-server",
                CallbackValue::Url("https://accounts.zoho.eu"),
            ),
        ],
        code_host: Some("accounts.zoho.eu"),
        client_auth: ClientAuth::Post,
        extra_fields: &[("api_domain", FieldValue::Url("https://www.zohoapis.eu"))],
        refresh: NOT_REPEATED,
        api_urls: &["https://www.zohoapis.eu/crm/v2/users"],
        api_auth: ApiAuth::Scheme("Zoho-oauthtoken"),
        ..B::standard(
            "zoho",
            "Zoho",
            &["https://accounts.zoho.{extension}/oauth/v2/auth"],
            &["https://accounts.zoho.{extension}/oauth/v2/token"],
            &["ZohoCRM.modules.ALL", "ZohoCRM.settings.READ"],
        )
    },
    B {
        fields: &[label("accountId", "1234567-sb1")],
        revocation_urls: &[
            "https://{accountId}.suitetalk.api.netsuite.com/services/rest/auth/oauth2/v1/revoke",
        ],
        revocation: AUTHENTICATED,
        constrained_params: &[("prompt", &["login", "consent", "none", "login consent"])],
        refresh: NOT_REPEATED,
        api_urls: &[
            "https://{accountId}.suitetalk.api.netsuite.com/services/rest/record/v1/metadata-catalog",
        ],
        ..B::standard(
            "netsuite",
            "NetSuite",
            &["https://{accountId}.app.netsuite.com/app/login/oauth2/authorize.nl"],
            &["https://{accountId}.suitetalk.api.netsuite.com/services/rest/auth/oauth2/v1/token"],
            &["restlets", "rest_webservices"],
        )
    },
    B {
        fields: &[label("instance", "acme")],
        revocation_urls: &["https://{instance}.service-now.com/oauth_revoke_token.do"],
        revocation: AUTHENTICATED,
        lifetime: 1800,
        api_urls: &["https://{instance}.service-now.com/api/now/table/sys_user"],
        ..B::standard(
            "servicenow",
            "ServiceNow",
            &["https://{instance}.service-now.com/oauth_auth.do"],
            &["https://{instance}.service-now.com/oauth_token.do"],
            &["useraccount"],
        )
    },
    // A refresh token only with the offline_access scope.
    B {
        fields: &[label("subdomain", "acme")],
        revocation_urls: &[
            "https://{subdomain}.okta.com/oauth2/v1/revoke",
            "https://{subdomain}.okta.com/oauth2/default/v1/revoke",
        ],
        revocation: AUTHENTICATED,
        offline_scopes: OFFLINE_ACCESS,
        constrained_params: &[("response_mode", &["query", "form_post"])],
        // The management API takes the org authorization server's tokens
        // (okta.users.read.self); userinfo takes any.
        api_urls: &[
            "https://{subdomain}.okta.com/api/v1/users/me",
            "https://{subdomain}.okta.com/oauth2/v1/userinfo",
            "https://{subdomain}.okta.com/oauth2/default/v1/userinfo",
        ],
        ..B::standard(
            "okta",
            "Okta",
            &[
                "https://{subdomain}.okta.com/oauth2/v1/authorize",
                "https://{subdomain}.okta.com/oauth2/default/v1/authorize",
            ],
            &[
                "https://{subdomain}.okta.com/oauth2/v1/token",
                "https://{subdomain}.okta.com/oauth2/default/v1/token",
            ],
            &["openid", "profile"],
        )
    },
    // A refresh token only with the offline_access scope; tenant.region.auth0.com.
    B {
        fields: &[labels("subdomain", "acme.us")],
        revocation_urls: &["https://{subdomain}.auth0.com/oauth/revoke"],
        revocation: AUTHENTICATED,
        offline_scopes: OFFLINE_ACCESS,
        body_format: BodyFormat::Either,
        lifetime: 86_400,
        refresh: NOT_REPEATED,
        api_urls: &["https://{subdomain}.auth0.com/userinfo"],
        ..B::standard(
            "auth0",
            "Auth0",
            &["https://{subdomain}.auth0.com/authorize"],
            &["https://{subdomain}.auth0.com/oauth/token"],
            &["openid", "profile"],
        )
    },
    B {
        fields: &[label("subdomain", "acme")],
        body_format: BodyFormat::Either,
        api_urls: &["https://api.bamboohr.com/api/gateway.php/{subdomain}/v1/employees/directory"],
        ..B::standard(
            "bamboohr",
            "BambooHR",
            &["https://{subdomain}.bamboohr.com/authorize.php?request=authorize"],
            &["https://{subdomain}.bamboohr.com/token.php?request=token"],
            &["openid", "email"],
        )
    },
    B {
        fields: &[
            labels("hostname", "wd2-impl-services1.workday.com"),
            segment("tenant", "acme"),
        ],
        client_auth: ClientAuth::Basic,
        refresh: NOT_REPEATED,
        api_urls: &["https://{hostname}/ccx/api/common/v1/{tenant}/workers/me"],
        ..B::standard(
            "workday",
            "Workday",
            &["https://{hostname}/{tenant}/authorize"],
            &["https://{hostname}/ccx/oauth2/{tenant}/token"],
            &[],
        )
    },
    B {
        revocation_urls: &["https://www.reddit.com/api/v1/revoke_token"],
        revocation: AUTHENTICATED,
        offline_params: &[("duration", "permanent")],
        constrained_params: &[("duration", &["temporary", "permanent"])],
        scope_separator: Separator::Any,
        client_auth: ClientAuth::Basic,
        lifetime: 86_400,
        api_urls: &["https://oauth.reddit.com/api/v1/me"],
        ..B::standard(
            "reddit",
            "Reddit",
            &[
                "https://www.reddit.com/api/v1/authorize",
                "https://www.reddit.com/api/v1/authorize.compact",
            ],
            &["https://www.reddit.com/api/v1/access_token"],
            &["identity", "read"],
        )
    },
    B {
        client_auth: ClientAuth::Basic,
        lifetime: 28_800,
        refresh: NOT_REPEATED,
        api_urls: &[
            "https://api-m.paypal.com/v1/identity/oauth2/userinfo",
            "https://api.paypal.com/v1/identity/oauth2/userinfo",
        ],
        ..B::standard(
            "paypal",
            "PayPal",
            &[
                "https://www.paypal.com/signin/authorize",
                "https://www.paypal.com/connect",
            ],
            &[
                "https://api-m.paypal.com/v1/oauth2/token",
                "https://api.paypal.com/v1/oauth2/token",
            ],
            &["openid", "email"],
        )
    },
    B {
        revocation_urls: &["https://api.canva.com/rest/v1/oauth/revoke"],
        revocation: AUTHENTICATED,
        pkce: Pkce::Required,
        client_auth: ClientAuth::Basic,
        lifetime: 14_400,
        refresh: ROTATING,
        api_urls: &["https://api.canva.com/rest/v1/users/me"],
        ..B::standard(
            "canva",
            "Canva",
            &["https://www.canva.com/api/oauth/authorize"],
            &["https://api.canva.com/rest/v1/oauth/token"],
            &["design:meta:read", "profile:read"],
        )
    },
    B {
        client_auth: ClientAuth::Basic,
        api_urls: &["https://api.letsdeel.com/rest/v2/people"],
        ..B::standard(
            "deel",
            "Deel",
            &["https://app.deel.com/oauth2/authorize"],
            &["https://app.deel.com/oauth2/tokens"],
            &["contracts:read", "people:read"],
        )
    },
    B {
        offline_params: &[("access_type", "offline")],
        client_auth: ClientAuth::Basic,
        extra_fields: &[(
            "api_base_url_for_customer",
            FieldValue::Url("https://acme.api.gong.io"),
        )],
        lifetime: 86_400,
        api_urls: &["https://acme.api.gong.io/v2/users"],
        ..B::standard(
            "gong",
            "Gong",
            &["https://app.gong.io/oauth2/authorize"],
            &["https://app.gong.io/oauth2/generate-customer-token"],
            &["api:calls:read:basic", "api:users:read"],
        )
    },
    // JSON API; expires_at instead of expires_in; merchant_id.
    B {
        pkce: Pkce::Refused,
        constrained_params: &[("session", &["false", "true"])],
        client_auth: ClientAuth::Post,
        body_format: BodyFormat::Json,
        extra_fields: &[("merchant_id", FieldValue::Text("MEMULATOR0001"))],
        expiry: Expiry::ExpiresAt,
        lifetime: 30 * 24 * 3600,
        api_urls: &["https://connect.squareup.com/v2/merchants/me"],
        token_type: "bearer",
        ..B::standard(
            "square",
            "Square",
            &["https://connect.squareup.com/oauth2/authorize"],
            &["https://connect.squareup.com/oauth2/token"],
            &["MERCHANT_PROFILE_READ", "PAYMENTS_READ"],
        )
    },
    B {
        scope_separator: Separator::Comma,
        client_auth: ClientAuth::Post,
        extra_fields: &[("host", FieldValue::Text("www.wrike.com"))],
        api_urls: &["https://www.wrike.com/api/v4/account"],
        ..B::standard(
            "wrike",
            "Wrike",
            &["https://login.wrike.com/oauth2/authorize/v4"],
            &["https://login.wrike.com/oauth2/token"],
            &["wsReadOnly", "amReadOnlyUser"],
        )
    },
    // client_key everywhere (authorization and token requests).
    B {
        revocation_urls: &["https://open.tiktokapis.com/v2/oauth/revoke/"],
        revocation: AUTHENTICATED,
        client_id_param: "client_key",
        token_client_id_param: "client_key",
        scope_separator: Separator::Comma,
        client_auth: ClientAuth::Post,
        extra_fields: &[("open_id", FieldValue::Text("emulator-open-id"))],
        lifetime: 86_400,
        api_urls: &["https://open.tiktokapis.com/v2/user/info/"],
        ..B::standard(
            "tiktok",
            "TikTok",
            &["https://www.tiktok.com/v2/auth/authorize/"],
            &["https://open.tiktokapis.com/v2/oauth/token/"],
            &["user.info.basic", "video.list"],
        )
    },
    B {
        revocation_urls: &["https://ims-na1.adobelogin.com/ims/revoke"],
        revocation: AUTHENTICATED,
        offline_scopes: OFFLINE_ACCESS,
        scope_separator: Separator::Any,
        lifetime: 86_399,
        api_urls: &["https://ims-na1.adobelogin.com/ims/userinfo/v2"],
        ..B::standard(
            "adobe",
            "Adobe",
            &["https://ims-na1.adobelogin.com/ims/authorize/v2"],
            &["https://ims-na1.adobelogin.com/ims/token/v3"],
            &["openid", "AdobeID"],
        )
    },
    B {
        revocation_urls: &["https://api.close.com/oauth2/revoke/"],
        revocation: AUTHENTICATED,
        offline_scopes: OFFLINE_ACCESS,
        refresh: ROTATING,
        api_urls: &["https://api.close.com/api/v1/me/"],
        ..B::standard(
            "close",
            "Close",
            &["https://app.close.com/oauth2/authorize/"],
            &["https://api.close.com/oauth2/token/"],
            &["all.full_access"],
        )
    },
    // Selling Partner API: consent at Seller Central with application_id, the code as
    // spapi_oauth_code, selling_partner_id in the callback; Login with Amazon tokens.
    B {
        fields: &[labels("extension", "com")],
        client_id_param: "application_id",
        response_type: ResponseType::Ignored,
        scope_params: &[],
        code_param: "spapi_oauth_code",
        callback_values: &[("selling_partner_id", CallbackValue::Text("A3EMULATOR0001"))],
        client_auth: ClientAuth::Post,
        api_urls: &["https://sellingpartnerapi-na.amazon.com/sellers/v1/marketplaceParticipations"],
        api_auth: ApiAuth::Header("x-amz-access-token"),
        ..B::standard(
            "amazon",
            "Amazon (Selling Partner API)",
            &["https://sellercentral.amazon.{extension}/apps/authorize/consent"],
            &["https://api.amazon.{extension}/auth/o2/token"],
            &[],
        )
    },
];

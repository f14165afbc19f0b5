//! The page templates (askama, HTML auto-escaped) and the values they show.

use askama::Template;
use secrecy::SecretString;

use super::profile::{ConnectionInput, FormProfile, ProfileShown};
use crate::sessions::Banner;

/// What the layout of every page needs.
#[derive(Clone, Default)]
pub struct Layout {
    /// Whether the navigation and sign-out are shown.
    pub signed_in: bool,
    /// The CSRF token of the page's forms.
    pub csrf: String,
    /// A banner at the top.
    pub banner: Option<Banner>,
}

impl std::fmt::Debug for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Layout")
            .field("signed_in", &self.signed_in)
            .field("csrf", &"[redacted]")
            .field("banner", &self.banner)
            .finish()
    }
}

/// The sign-in page.
#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    /// The layout.
    pub layout: Layout,
    /// Where to go after signing in.
    pub next: String,
}

/// One instance in the list.
pub struct InstanceRow {
    /// Its id.
    pub id: String,
    /// Its integration.
    pub integration: String,
    /// The status name (CSS class).
    pub status: &'static str,
    /// The status in words.
    pub status_text: &'static str,
    /// When its token expires.
    pub expires: String,
}

/// One integration in the list.
pub struct IntegrationRow {
    /// Its name.
    pub name: String,
    /// The document's title.
    pub title: String,
    /// When it was imported.
    pub created: String,
}

/// The start page: instances and integrations.
#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    /// The layout.
    pub layout: Layout,
    /// The instances of this page.
    pub instances: Vec<InstanceRow>,
    /// The integrations.
    pub integrations: Vec<IntegrationRow>,
    /// How many instances have each status (every status, in order).
    pub counts: Vec<StatusCount>,
    /// Every instance.
    pub total: u64,
    /// Whether a filter is set.
    pub filtered: bool,
    /// The status filtered by (its name), or empty.
    pub filter_status: String,
    /// The integration filtered by, or empty.
    pub filter_integration: String,
    /// The link of the next page, when there is one.
    pub next_link: Option<String>,
    /// The link of the first page, when this is a later one.
    pub first_link: Option<String>,
}

/// A status and how many instances have it, for the home page.
pub struct StatusCount {
    /// Its name (`authorized`), the filter's value.
    pub status: String,
    /// Its words.
    pub text: String,
    /// How many instances have it.
    pub count: u64,
}

/// The import form.
#[derive(Template)]
#[template(path = "integration_new.html")]
pub struct IntegrationNewPage {
    /// The layout.
    pub layout: Layout,
    /// The name typed so far.
    pub name: String,
    /// The document pasted so far.
    pub document: String,
}

/// A flow of a scheme, for display.
pub struct FlowView {
    /// `authorizationCode`, ...
    pub kind: String,
    /// The authorization URL or empty.
    pub authorization_url: String,
    /// The token URL or empty.
    pub token_url: String,
    /// The refresh URL or empty.
    pub refresh_url: String,
    /// Scope and description.
    pub scopes: Vec<(String, String)>,
}

/// A scheme, for display.
pub struct SchemeView {
    /// Its name.
    pub name: String,
    /// Its description or empty.
    pub description: String,
    /// Its flows.
    pub flows: Vec<FlowView>,
    /// The provider profile its instances get (schemes with an authorization-code flow).
    pub profile: Option<ProfileShown>,
}

/// An integration's page.
#[derive(Template)]
#[template(path = "integration.html")]
pub struct IntegrationPage {
    /// The layout.
    pub layout: Layout,
    /// Its name.
    pub name: String,
    /// The document's title.
    pub title: String,
    /// When it was imported.
    pub created: String,
    /// The document's digest.
    pub digest: String,
    /// Its OAuth2 schemes.
    pub schemes: Vec<SchemeView>,
    /// The ids of its instances (the first page).
    pub instances: Vec<String>,
    /// Whether it has more instances than that page (the home page, filtered, lists them).
    pub more_instances: bool,
    /// The provider's issuer, or a dash.
    pub issuer: String,
    /// The provider's revocation endpoint, or a dash.
    pub revocation_url: String,
}

/// A scope checkbox.
pub struct ScopeChoice {
    /// The scope.
    pub name: String,
    /// What it grants.
    pub description: String,
    /// Whether it is ticked.
    pub checked: bool,
}

/// The values of the instance form.
#[derive(Debug, Clone, Default)]
pub struct InstanceFormValues {
    /// The instance id.
    pub id: String,
    /// Its integration.
    pub integration: String,
    /// The scheme.
    pub scheme: String,
    /// The client id.
    pub client_id: String,
    /// `client_secret_basic`, `client_secret_post` or `none`.
    pub client_auth: String,
    /// Scopes typed as text (not among the checkboxes).
    pub extra_scopes: String,
    /// Whether undeclared scopes are accepted.
    pub force_scopes: bool,
    /// The authorization URL override.
    pub authorization_url: String,
    /// The token URL override.
    pub token_url: String,
    /// `name=value` lines.
    pub extra_authorization_params: String,
    /// `name=value` lines (write-only: never shown again).
    pub extra_token_params: SecretString,
    /// `Name: value` lines (write-only: never shown again).
    pub extra_token_headers: SecretString,
    /// The lifetime, in seconds, of a token of unknown expiry (empty: the default).
    pub token_lifetime: String,
    /// Connection fields by name, as typed or stored.
    pub connection: std::collections::BTreeMap<String, String>,
    /// The instance's own provider-profile settings as typed (JSON, or a catalogue id).
    pub profile: String,
}

/// The instance form (new or edit).
#[derive(Template)]
#[template(path = "instance_form.html")]
pub struct InstanceFormPage {
    /// The layout.
    pub layout: Layout,
    /// Whether an existing instance is edited.
    pub editing: bool,
    /// Where the form posts.
    pub action: String,
    /// The values.
    pub form: InstanceFormValues,
    /// The schemes with an authorization-code flow.
    pub schemes: Vec<String>,
    /// The scope checkboxes of the chosen scheme.
    pub scopes: Vec<ScopeChoice>,
    /// Whether a client secret is stored.
    pub secret_set: bool,
    /// The names of the stored extra token parameters (values are write-only).
    pub token_param_names: String,
    /// The names of the stored extra token headers (values are write-only).
    pub token_header_names: String,
    /// The redirect URI to register.
    pub redirect_uri: String,
    /// The flow's authorization URL (placeholder).
    pub default_authorization_url: String,
    /// The flow's token URL (placeholder).
    pub default_token_url: String,
    /// The provider profile the instance gets and its connection inputs.
    pub provider: FormProfile,
}

impl InstanceFormPage {
    /// The connection inputs (for the template).
    pub fn connection_inputs(&self) -> &[ConnectionInput] {
        &self.provider.inputs
    }
}

/// An instance's page.
#[derive(Template)]
#[template(path = "instance.html")]
pub struct InstancePage {
    /// The layout.
    pub layout: Layout,
    /// Whether it is disabled (the page offers Enable rather than Disable).
    pub disabled: bool,
    /// Its id.
    pub id: String,
    /// Its integration.
    pub integration: String,
    /// Its scheme.
    pub scheme: String,
    /// The status name.
    pub status: &'static str,
    /// The status in words.
    pub status_text: &'static str,
    /// The client id.
    pub client_id: String,
    /// Whether a client secret is stored.
    pub secret_set: bool,
    /// The client authentication method.
    pub client_auth: &'static str,
    /// The requested scopes.
    pub scopes: String,
    /// The granted scopes.
    pub granted: String,
    /// When the access token expires, in words.
    pub expires: String,
    /// The same in unix milliseconds, for the countdown.
    pub expires_ms: Option<i64>,
    /// When the token was obtained.
    pub obtained: String,
    /// Whether a refresh token is held, in words.
    pub refresh_token: String,
    /// The last refresh and its outcome.
    pub last_refresh: String,
    /// The authorization URL in force.
    pub authorization_url: String,
    /// The token URL in force.
    pub token_url: String,
    /// The redirect URI.
    pub redirect_uri: String,
    /// The provider profile that applies.
    pub profile: ProfileShown,
    /// Its connection fields: label and value.
    pub connection: Vec<(String, String)>,
    /// The values kept with the token, by name.
    pub kept: Vec<(String, String)>,
    /// The instance's own profile settings as text, or empty.
    pub own_profile: String,
}

/// A key in the list.
pub struct ApiKeyRow {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its role: `tokens` or `admin`.
    pub role: &'static str,
    /// When it was created.
    pub created: String,
}

/// The API keys page.
#[derive(Template)]
#[template(path = "api_keys.html")]
pub struct ApiKeysPage {
    /// The layout.
    pub layout: Layout,
    /// The keys.
    pub keys: Vec<ApiKeyRow>,
    /// A key just created, shown once.
    pub new_key: Option<String>,
}

/// The "connect" page that a CLI or API authorization link opens.
#[derive(Template)]
#[template(path = "connect.html")]
pub struct ConnectPage {
    /// The layout.
    pub layout: Layout,
    /// The instance.
    pub id: String,
}

/// A page with a heading and the banner only.
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage {
    /// The layout.
    pub layout: Layout,
    /// The heading.
    pub heading: String,
}

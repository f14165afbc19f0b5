//! A granary server on 127.0.0.1 over a memory store, and an HTTP client that signs in.

#![allow(dead_code)]

use std::sync::Arc;

use granary_flow::engine::{Engine, Keyring, MasterKey};
use granary_server::api_keys::ApiKeys;
use granary_server::app::AppState;
use granary_server::settings::{CommonArgs, ServeArgs, Settings};
use granary_store::{MemoryStore, Store};
use reqwest::redirect::Policy;
use secrecy::SecretString;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use url::Url;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub struct Server {
    pub base: String,
    pub state: AppState,
    pub data: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    pub async fn start() -> Self {
        Self::start_with_public_url(None).await
    }

    /// `public_url`: `None` for `http://127.0.0.1:<port>`.
    pub async fn start_with_public_url(public_url: Option<&str>) -> Self {
        Self::start_with(public_url, None).await
    }

    /// `import_limit`: the setting's text (`"100KiB"`), `None` for the default.
    pub async fn start_with(public_url: Option<&str>, import_limit: Option<&str>) -> Self {
        Self::start_full(public_url, import_limit, Arc::new(MemoryStore::new())).await
    }

    /// A server (a node) on `store`, which other nodes may share.
    pub async fn start_on(store: Arc<dyn Store>) -> Self {
        Self::start_full(None, None, store).await
    }

    async fn start_full(
        public_url: Option<&str>,
        import_limit: Option<&str>,
        store: Arc<dyn Store>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let base = format!("http://{address}");
        let data = tempfile::tempdir().unwrap();
        let public = Url::parse(public_url.unwrap_or(&base)).unwrap();
        let common = CommonArgs {
            data_dir: Some(data.path().to_path_buf()),
            listen: Some(address),
            public_url: Some(public.clone()),
            import_limit: import_limit.map(str::to_string),
            ..CommonArgs::default()
        };
        let settings = Settings::resolve(&common, &ServeArgs::default()).unwrap();
        let keyring = Keyring::new(MasterKey::generate().0, Vec::new());
        let engine = Engine::builder(Arc::clone(&store), keyring, public)
            .import_limits(granary_openapi::Limits::new(
                settings.import_limit,
                granary_openapi::Limits::DEFAULT_MAX_DEPTH,
            ))
            .build()
            .unwrap();
        let api_keys = ApiKeys::open(store).await.unwrap();
        let state = AppState::new(
            engine,
            settings,
            SecretString::from(ADMIN_TOKEN.to_string()),
            api_keys,
        );
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = state.clone();
        let task = tokio::spawn(async move {
            granary_server::serve::serve(listener, serving, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        Self {
            base,
            state,
            data,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Imports the Box document (its URLs at `provider`) as the integration `box` through
    /// the admin page.
    #[allow(dead_code)]
    pub async fn import_box(&self, admin: &reqwest::Client, csrf: &str, provider: &str) {
        let form = reqwest::multipart::Form::new()
            .text("csrf", csrf.to_string())
            .text("name", "box")
            .text("document", box_document(provider));
        let response = admin
            .post(self.url("/admin/integrations"))
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303);
        assert_eq!(response.headers()["location"], "/admin/integrations/box");
    }

    /// Creates the instance `id` of `box` through the admin form, with `more` fields.
    #[allow(dead_code)]
    pub async fn create_box_instance(
        &self,
        admin: &reqwest::Client,
        csrf: &str,
        id: &str,
        more: &[(&str, &str)],
    ) {
        let mut fields = vec![
            ("csrf", csrf),
            ("id", id),
            ("integration", "box"),
            ("scheme", "OAuth2Security"),
            ("client_id", "granary-client"),
            ("client_secret", "s3cret-value-never-shown"),
            ("client_auth", "client_secret_basic"),
            ("scope", "root_readonly"),
            ("scope", "manage_groups"),
        ];
        fields.extend_from_slice(more);
        let response = admin
            .post(self.url("/admin/instances"))
            .form(&fields)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "{}", response.text().await.unwrap());
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A client that keeps cookies and never follows redirects.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(Policy::none())
            .build()
            .unwrap()
    }

    /// A client signed in as admin, and the session's CSRF token.
    pub async fn admin(&self) -> (reqwest::Client, String) {
        let client = self.client();
        let page = client.get(self.url("/admin/login")).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        let csrf = hidden(&html, "csrf");
        let response = client
            .post(self.url("/admin/login"))
            .form(&[
                ("csrf", csrf.as_str()),
                ("token", ADMIN_TOKEN),
                ("next", "/admin/"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 303, "sign-in failed");
        let home = client.get(self.url("/admin/")).send().await.unwrap();
        assert_eq!(home.status(), 200);
        let csrf = hidden(&home.text().await.unwrap(), "csrf");
        (client, csrf)
    }

    /// An API key with the role `admin`, created through the admin page.
    pub async fn api_key(&self, admin: &reqwest::Client, csrf: &str) -> String {
        self.api_key_with_role(admin, csrf, "admin").await
    }

    /// An API key with `role` (`tokens` or `admin`), created through the admin page.
    pub async fn api_key_with_role(
        &self,
        admin: &reqwest::Client,
        csrf: &str,
        role: &str,
    ) -> String {
        let page = admin
            .post(self.url("/admin/api-keys"))
            .form(&[("csrf", csrf), ("name", "tests"), ("role", role)])
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        let start =
            html.find("id=\"new-key\">").expect("the new key is shown") + "id=\"new-key\">".len();
        let end = html[start..].find('<').unwrap() + start;
        html[start..end].to_string()
    }

    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

/// The value of the first hidden input `name` of a page.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no hidden {name} in:\n{html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_string()
}

/// The Box document of the OpenAPI fixtures with its URLs pointed at `base`.
pub fn box_document(base: &str) -> String {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../granary-openapi/tests/fixtures/box.json"
    ))
    .unwrap();
    text.replace(
        "https://account.box.com/api/oauth2/authorize",
        &format!("{base}/authorize"),
    )
    .replace("https://api.box.com/oauth2/token", &format!("{base}/token"))
}

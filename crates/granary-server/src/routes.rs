//! The route table: every route with its access level, and the router built from it.
//!
//! Routes are only added through [`RouteTable::add`], which records each one; the admin and
//! API groups get their guard as a route layer, so a new route is guarded by the group it is
//! added to, and the tests walk [`route_table`] to prove it. An API route needs an `admin`
//! key unless the table marks it [`RouteTable::tokens`] (fail closed: a new API route is an
//! admin route until someone decides otherwise).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::handler::Handler;
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, on};

use crate::api_keys::Role;
use crate::app::AppState;
use crate::{api, web};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: `/healthz`, `/metrics`, the sign-in form.
    Public,
    /// A signed-in admin (session cookie); forms also need the CSRF token.
    Admin,
    /// A caller with an API key (`Authorization: Bearer ...`).
    Api,
}

/// One route: method, path template, access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// The HTTP method.
    pub method: Method,
    /// The path template, e.g. `/api/v1/instances/{id}`.
    pub path: &'static str,
    /// Who may call it.
    pub access: Access,
    /// The API key role it needs (API routes only; `admin` unless marked `tokens`).
    pub role: Role,
}

/// The role each API route needs, by method and path template.
pub type Roles = HashMap<(Method, &'static str), Role>;

/// Routes being collected, by group.
pub struct RouteTable {
    public: Router<AppState>,
    admin: Router<AppState>,
    api: Router<AppState>,
    infos: Vec<RouteInfo>,
}

impl RouteTable {
    fn new() -> Self {
        Self {
            public: Router::new(),
            admin: Router::new(),
            api: Router::new(),
            infos: Vec::new(),
        }
    }

    /// Adds a route to the group of `access`.
    pub fn add<H, T>(
        mut self,
        access: Access,
        method: Method,
        path: &'static str,
        handler: H,
    ) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        // Every method the table uses has its own filter: an unknown one is a mistake in the
        // table, not a GET.
        let filter = MethodFilter::try_from(method.clone())
            .unwrap_or_else(|_| panic!("the route table names an unknown method {method}"));
        let route = on(filter, handler);
        match access {
            Access::Public => self.public = self.public.route(path, route),
            Access::Admin => self.admin = self.admin.route(path, route),
            Access::Api => self.api = self.api.route(path, route),
        }
        self.infos.push(RouteInfo {
            method,
            path,
            access,
            role: Role::Admin,
        });
        self
    }

    /// Marks the API route added last as open to `tokens` keys.
    pub fn tokens(mut self) -> Self {
        let last = self.infos.last_mut().expect("tokens() follows add()");
        assert_eq!(last.access, Access::Api, "tokens() marks API routes only");
        last.role = Role::Tokens;
        self
    }
}

/// Every route of the server.
fn table() -> RouteTable {
    use Access::{Admin, Api, Public};
    let get = || Method::GET;
    let post = || Method::POST;
    RouteTable::new()
        .add(Public, get(), "/", web::root)
        .add(Public, get(), "/healthz", api::healthz)
        .add(Public, get(), "/metrics", api::metrics)
        .add(Public, get(), "/admin/login", web::login_form)
        .add(Public, post(), "/admin/login", web::login)
        .add(Public, get(), web::SCRIPT_PATH, web::script)
        .add(Public, get(), "/reconnect/{secret}", web::reconnect::page)
        .add(Public, post(), "/reconnect/{secret}", web::reconnect::start)
        .add(Admin, post(), "/admin/logout", web::logout)
        .add(Admin, get(), "/admin/", web::home)
        .add(Admin, get(), "/admin", web::admin_slash)
        .add(
            Admin,
            get(),
            "/admin/integrations/new",
            web::integration_new,
        )
        .add(
            Admin,
            post(),
            "/admin/integrations",
            web::integration_import,
        )
        .add(
            Admin,
            get(),
            "/admin/integrations/{name}",
            web::integration_show,
        )
        .add(
            Admin,
            post(),
            "/admin/integrations/{name}/delete",
            web::integration_delete,
        )
        .add(
            Admin,
            post(),
            "/admin/integrations/{name}/discover",
            web::integration_discover,
        )
        .add(Admin, get(), "/admin/instances/new", web::instance_new)
        .add(Admin, post(), "/admin/instances", web::instance_create)
        .add(Admin, get(), "/admin/instances/{id}", web::instance_show)
        .add(
            Admin,
            get(),
            "/admin/instances/{id}/edit",
            web::instance_edit,
        )
        .add(Admin, post(), "/admin/instances/{id}", web::instance_update)
        .add(
            Admin,
            get(),
            "/admin/instances/{id}/authorize",
            web::instance_connect,
        )
        .add(
            Admin,
            post(),
            "/admin/instances/{id}/authorize",
            web::instance_authorize,
        )
        .add(
            Admin,
            post(),
            "/admin/instances/{id}/refresh",
            web::instance_refresh,
        )
        .add(
            Admin,
            post(),
            "/admin/instances/{id}/disconnect",
            web::instance_disconnect,
        )
        .add(
            Admin,
            post(),
            "/admin/instances/{id}/enable",
            web::instance_enable,
        )
        .add(
            Admin,
            post(),
            "/admin/instances/{id}/disable",
            web::instance_disable,
        )
        .add(
            Admin,
            post(),
            "/admin/instances/{id}/delete",
            web::instance_delete,
        )
        .add(
            Admin,
            post(),
            "/admin/instances/{id}/reconnect-link",
            web::reconnect::create,
        )
        .add(Admin, get(), "/admin/oauth/", web::callback)
        .add(Admin, get(), "/admin/oauth", web::callback_slash)
        .add(Admin, get(), "/admin/api-keys", web::api_keys)
        .add(Admin, post(), "/admin/api-keys", web::api_key_create)
        .add(
            Admin,
            post(),
            "/admin/api-keys/{id}/delete",
            web::api_key_delete,
        )
        .add(Api, get(), "/api/v1/integrations", api::integrations_list)
        .add(Api, post(), "/api/v1/integrations", api::integration_create)
        .add(
            Api,
            get(),
            "/api/v1/integrations/{name}",
            api::integration_get,
        )
        .add(
            Api,
            Method::PUT,
            "/api/v1/integrations/{name}",
            api::integration_put,
        )
        .add(
            Api,
            Method::DELETE,
            "/api/v1/integrations/{name}",
            api::integration_delete,
        )
        .add(
            Api,
            post(),
            "/api/v1/integrations/{name}/discover",
            api::integration_discover,
        )
        .add(
            Api,
            get(),
            "/api/v1/providers",
            crate::profiles::providers_list,
        )
        .tokens()
        .add(Api, get(), "/api/v1/instances", api::instances_list)
        .tokens()
        .add(Api, post(), "/api/v1/instances", api::instance_create)
        .add(Api, get(), "/api/v1/instances/{id}", api::instance_get)
        .tokens()
        .add(
            Api,
            Method::PATCH,
            "/api/v1/instances/{id}",
            api::instance_patch,
        )
        .add(
            Api,
            Method::DELETE,
            "/api/v1/instances/{id}",
            api::instance_delete,
        )
        .add(
            Api,
            post(),
            "/api/v1/instances/{id}/authorize",
            api::instance_authorize,
        )
        .add(
            Api,
            post(),
            "/api/v1/instances/{id}/disconnect",
            api::instance_disconnect,
        )
        .add(
            Api,
            post(),
            "/api/v1/instances/{id}/reconnect-link",
            crate::reconnect::create,
        )
        .add(
            Api,
            get(),
            "/api/v1/instances/{id}/token",
            api::instance_token,
        )
        .tokens()
        .add(
            Api,
            post(),
            "/api/v1/instances/{id}/token/rejected",
            api::instance_token_rejected,
        )
        .tokens()
        .add(
            Api,
            post(),
            "/api/v1/instances/{id}/refresh",
            api::instance_refresh,
        )
        .tokens()
        .add(Api, get(), "/api/v1/events", api::events)
        .tokens()
        .proxy()
        .webhooks()
}

impl RouteTable {
    /// Adds the webhook pages and API ([`crate::webhooks`]); the API needs `admin` keys.
    fn webhooks(self) -> Self {
        use crate::webhooks::api as hooks;
        use Access::{Admin, Api};
        self.add(Admin, Method::GET, "/admin/webhooks", web::webhooks::list)
            .add(
                Admin,
                Method::POST,
                "/admin/webhooks",
                web::webhooks::create,
            )
            .add(
                Admin,
                Method::GET,
                "/admin/webhooks/{id}",
                web::webhooks::show,
            )
            .add(
                Admin,
                Method::POST,
                "/admin/webhooks/{id}/enable",
                web::webhooks::enable,
            )
            .add(
                Admin,
                Method::POST,
                "/admin/webhooks/{id}/disable",
                web::webhooks::disable,
            )
            .add(
                Admin,
                Method::POST,
                "/admin/webhooks/{id}/delete",
                web::webhooks::delete,
            )
            .add(Api, Method::GET, "/api/v1/webhooks", hooks::list)
            .add(Api, Method::POST, "/api/v1/webhooks", hooks::create)
            .add(Api, Method::PATCH, "/api/v1/webhooks/{id}", hooks::patch)
            .add(Api, Method::DELETE, "/api/v1/webhooks/{id}", hooks::delete)
            .add(
                Api,
                Method::GET,
                "/api/v1/webhooks/{id}/deliveries",
                hooks::deliveries,
            )
    }
}

/// The path of the proxy (every method it forwards is a route of its own).
pub const PROXY_PATH: &str = "/api/v1/instances/{id}/proxy/{*path}";

impl RouteTable {
    /// Adds the proxy ([`crate::proxy`]) for each method it forwards (HEAD through GET), open
    /// to `tokens` keys. Not OPTIONS: like every route, the proxy answers it 405.
    fn proxy(self) -> Self {
        [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ]
        .into_iter()
        .fold(self, |table, method| {
            table
                .add(Access::Api, method, PROXY_PATH, crate::proxy::proxy)
                .tokens()
        })
    }
}

/// Every route of the server with its access level (for tests and docs).
pub fn route_table() -> Vec<RouteInfo> {
    table().infos
}

/// The server's router: the route table with the admin and API guards, request metrics, a
/// 404 fallback, and the layers of [`crate::layers`].
pub fn router(state: AppState) -> Router {
    let table = table();
    let roles: Arc<Roles> = Arc::new(
        table
            .infos
            .iter()
            .filter(|info| info.access == Access::Api)
            .map(|info| ((info.method.clone(), info.path), info.role))
            .collect(),
    );
    // The callback of an authorization a reconnect link started is answered before the
    // guard (see `web::reconnect`); every other admin request meets the guard.
    let admin = table
        .admin
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            web::require_admin,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            web::reconnect::intercept_callback,
        ));
    let api = table.api.route_layer(middleware::from_fn_with_state(
        (state.clone(), roles),
        api::require_api_key,
    ));
    let router = table
        .public
        .merge(admin)
        .merge(api)
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::limits::body_limits,
        ))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .layer(middleware::from_fn(refuse_malformed))
        .layer(middleware::from_fn_with_state(state.clone(), observe));
    let timeout = state.settings.request_timeout;
    crate::layers::apply(router.with_state(state), timeout)
}

/// A path whose percent-decoded form holds a control character (CR, LF, NUL, ...) names no
/// resource of granary: 400 before any handler sees it (such a character would otherwise
/// reach a `Location` header or a log line).
async fn refuse_malformed(request: Request, next: Next) -> Response {
    if !decodes_to_control(request.uri().path()) {
        return next.run(request).await;
    }
    let detail = "the path holds an encoded control character (such as %0D or %0A): no resource has such a name";
    if request.uri().path().starts_with("/api/") {
        crate::problem::Problem::bad_request(detail).into_response()
    } else {
        (
            axum::http::StatusCode::BAD_REQUEST,
            format!("400 Bad Request: {detail}\n"),
        )
            .into_response()
    }
}

/// Whether the percent-decoded `path` holds an ASCII control character.
fn decodes_to_control(path: &str) -> bool {
    let bytes = path.as_bytes();
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut i = 0;
    while i < bytes.len() {
        let mut byte = bytes[i];
        if byte == b'%' && i + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                byte = u8::try_from(high * 16 + low).unwrap_or(0);
                i += 2;
            }
        }
        if byte.is_ascii_control() {
            return true;
        }
        i += 1;
    }
    false
}

async fn not_found(request: Request) -> Response {
    if request.uri().path().starts_with("/api/") {
        crate::problem::Problem::not_found(format!(
            "no route {} {}",
            request.method(),
            request.uri().path()
        ))
        .into_response()
    } else {
        (
            axum::http::StatusCode::NOT_FOUND,
            "not found: see /admin/ or /api/v1\n",
        )
            .into_response()
    }
}

/// Records every request's latency by route template (never by raw path: ids stay out).
async fn observe(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
    let response = next.run(request).await;
    state.metrics.observe_request(
        method.as_str(),
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::decodes_to_control;

    #[test]
    fn encoded_control_characters_are_found() {
        assert!(decodes_to_control("/admin/instances/a%0D%0Ab"));
        assert!(decodes_to_control("/admin/instances/a%0a"));
        assert!(decodes_to_control("/x%00"));
        assert!(decodes_to_control("/x%7F"));
        assert!(!decodes_to_control("/admin/instances/a%20b"));
        assert!(!decodes_to_control("/admin/instances/%E2%82%AC"));
        assert!(!decodes_to_control("/a%0"));
        assert!(!decodes_to_control("/a%"));
        assert!(!decodes_to_control("/a%ZZ"));
    }
}

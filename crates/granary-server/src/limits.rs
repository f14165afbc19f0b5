//! Request body limits: an import (admin form, REST API) may carry a document up to the
//! `import_limit` setting (64 MiB by default); every other body is held to
//! [`SMALL_BODY_LIMIT`]. Over a limit, the extractors answer 413 and the import handlers say
//! which limit was passed ([`import_too_large`]).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::app::AppState;

/// The limit of every request body but an import's: 1 MiB (forms and JSON bodies are a
/// few kilobytes).
pub const SMALL_BODY_LIMIT: usize = 1024 * 1024;

/// The body limit of an import request for a document limit of `import_limit`: room for a
/// document that JSON escaping doubles, or that is both uploaded and pasted, plus the form.
/// The document itself is held to `import_limit` exactly (by the engine).
pub fn import_body_limit(import_limit: usize) -> usize {
    import_limit.saturating_mul(2).saturating_add(64 * 1024)
}

/// Whether the request imports a document: `POST /admin/integrations`,
/// `POST /api/v1/integrations`, `PUT /api/v1/integrations/{name}`.
pub fn is_import(method: &Method, path: &str) -> bool {
    let path = path.trim_end_matches('/');
    match *method {
        Method::POST => path == "/admin/integrations" || path == "/api/v1/integrations",
        Method::PUT => path
            .strip_prefix("/api/v1/integrations/")
            .is_some_and(|name| !name.is_empty() && !name.contains('/')),
        _ => false,
    }
}

/// The message of an import over the limit, naming it and the setting.
pub fn import_too_large(import_limit: usize) -> String {
    format!(
        "the document is larger than the import limit of {}: import a smaller document, or \
         raise the limit (import_limit in the configuration file, GRANARY_IMPORT_LIMIT, \
         --import-limit)",
        size_text(import_limit)
    )
}

/// A size for people: `64 MiB`, `500 KiB`, `1000 bytes`.
pub fn size_text(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if bytes >= MIB && bytes % MIB == 0 {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// Middleware: bounds the request body (see the module documentation). The router disables
/// axum's own default limit, so this is the one limit in force.
pub async fn body_limits(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = if is_import(request.method(), request.uri().path()) {
        import_body_limit(state.settings.import_limit)
    } else if crate::proxy::is_proxy(request.uri().path()) {
        state.settings.proxy_body_limit
    } else {
        SMALL_BODY_LIMIT
    };
    let request = request.map(|body| Body::new(http_body_util::Limited::new(body, limit)));
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_routes() {
        assert!(is_import(&Method::POST, "/admin/integrations"));
        assert!(is_import(&Method::POST, "/api/v1/integrations"));
        assert!(is_import(&Method::PUT, "/api/v1/integrations/box"));
        assert!(!is_import(
            &Method::PUT,
            "/api/v1/integrations/box/discover"
        ));
        assert!(!is_import(&Method::POST, "/admin/instances"));
        assert_eq!(size_text(64 * 1024 * 1024), "64 MiB");
    }
}

//! The files the admin page loads from granary itself: its one script (the pages' CSP has
//! `script-src 'self'` and no inline script).

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest as _, Sha256};

/// The admin page's script.
pub const SCRIPT: &str = include_str!("../../static/admin.js");

/// The path the script is served at (a public route: it holds nothing secret).
pub const SCRIPT_PATH: &str = "/admin/static/admin.js";

/// The script's URL with a digest of its content, so that it can be cached for a year and a
/// new version is fetched at once.
static SCRIPT_URL: LazyLock<String> = LazyLock::new(|| {
    let digest = hex::encode(Sha256::digest(SCRIPT.as_bytes()));
    format!("{SCRIPT_PATH}?v={}", &digest[..16])
});

/// The URL the pages load the script from (`{{ crate::web::script_url() }}` in base.html).
pub fn script_url() -> &'static str {
    &SCRIPT_URL
}

/// `GET /admin/static/admin.js`.
pub async fn script() -> Response {
    let mut response = SCRIPT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

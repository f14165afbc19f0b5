//! The HTTP layers every request passes, in one place: a request id (taken from
//! `x-request-id` or made, echoed in the response, and on every log line of the request),
//! a trace span per request with credentials kept out of it, a request timeout, and a panic
//! caught as a 500 instead of a dropped connection.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, Request, StatusCode, header};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::sensitive_headers::{
    SetSensitiveRequestHeadersLayer, SetSensitiveResponseHeadersLayer,
};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

/// The header that carries a request's id.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Headers whose values never reach a log line.
const SENSITIVE_REQUEST: [HeaderName; 3] = [
    header::AUTHORIZATION,
    header::COOKIE,
    header::PROXY_AUTHORIZATION,
];

/// Makes a random id for a request that came without one.
#[derive(Debug, Clone, Copy, Default)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        crate::secrets::random_token(12)
            .parse()
            .ok()
            .map(RequestId::new)
    }
}

/// Wraps `router` in the layers, outermost first: request id, sensitive headers, trace span,
/// panic catcher, timeout. A request still without an answer after `timeout` gets 408.
pub fn apply(router: Router, timeout: Duration) -> Router {
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &Request<_>| {
            let id = request
                .headers()
                .get(REQUEST_ID)
                .and_then(|value| value.to_str().ok())
                .unwrap_or("");
            // The path only: a query may hold an authorization code or a state; and a
            // reconnect link's secret is left out of its path.
            tracing::info_span!(
                "request",
                request_id = %id,
                method = %request.method(),
                path = %crate::reconnect::loggable_path(request.uri().path()),
            )
        })
        .on_response(DefaultOnResponse::new().level(Level::DEBUG));
    router
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(CatchPanicLayer::new())
        .layer(trace)
        .layer(SetSensitiveResponseHeadersLayer::new([header::SET_COOKIE]))
        .layer(SetSensitiveRequestHeadersLayer::new(SENSITIVE_REQUEST))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, RandomRequestId))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    /// Serves `router` with the layers on 127.0.0.1; returns its base URL.
    async fn serve(router: Router, timeout: Duration) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, apply(router, timeout)).await.unwrap();
        });
        format!("http://{address}")
    }

    fn routes() -> Router {
        Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route(
                "/panics",
                get(|| async {
                    panic!("a handler that panics");
                    #[allow(unreachable_code)]
                    ""
                }),
            )
            .route("/hangs", get(std::future::pending::<&'static str>))
    }

    #[tokio::test]
    async fn every_answer_carries_a_request_id_made_or_given() {
        let base = serve(routes(), Duration::from_secs(30)).await;
        let client = reqwest::Client::new();
        let made = client.get(format!("{base}/ok")).send().await.unwrap();
        let id = made.headers()[REQUEST_ID.as_str()]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(id.len(), 16, "{id}");
        let again = client.get(format!("{base}/ok")).send().await.unwrap();
        assert_ne!(again.headers()[REQUEST_ID.as_str()], id.as_str());
        let given = client
            .get(format!("{base}/ok"))
            .header(REQUEST_ID.as_str(), "from-the-balancer-1")
            .send()
            .await
            .unwrap();
        assert_eq!(given.headers()[REQUEST_ID.as_str()], "from-the-balancer-1");
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_and_the_server_goes_on() {
        let base = serve(routes(), Duration::from_secs(30)).await;
        let client = reqwest::Client::new();
        let panicked = client.get(format!("{base}/panics")).send().await.unwrap();
        assert_eq!(panicked.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let next = client.get(format!("{base}/ok")).send().await.unwrap();
        assert_eq!(next.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_request_without_an_answer_in_time_gets_408() {
        let base = serve(routes(), Duration::from_millis(100)).await;
        let answer = reqwest::get(format!("{base}/hangs")).await.unwrap();
        assert_eq!(answer.status(), StatusCode::REQUEST_TIMEOUT);
    }
}

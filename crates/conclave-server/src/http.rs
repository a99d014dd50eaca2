//! HTTP: the embedded web client, health check, and the security headers every response carries.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::AppState;

/// The web client, embedded at build time (read from disk in debug builds).
#[derive(RustEmbed)]
#[folder = "../../web/"]
#[exclude = "tsconfig.json"]
struct WebAssets;

/// Alive: the process answers HTTP.
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: takes new meetings. 503 while draining or closing, so load balancers move on.
pub async fn readyz(State(state): State<AppState>) -> Response {
    if state.lifecycle.accepting() {
        "ready\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    }
}

pub async fn index() -> Response {
    asset_response("index.html")
}

pub async fn room_page(Path(room): Path<String>) -> Response {
    if conclave_proto::validate_room_name(&room).is_err() {
        return (
            StatusCode::NOT_FOUND,
            "Not a room name: use 1 to 64 letters, digits, '-' or '_'.\n",
        )
            .into_response();
    }
    asset_response("index.html")
}

pub async fn asset(Path(path): Path<String>) -> Response {
    asset_response(&path)
}

fn asset_response(path: &str) -> Response {
    match WebAssets::get(path) {
        Some(file) => {
            let mime = mime_guess::from_path(path).first_or_octet_stream();
            Response::builder()
                .header(header::CONTENT_TYPE, mime.as_ref())
                .header(header::CACHE_CONTROL, "no-cache")
                .body(Body::from(file.data.into_owned()))
                .expect("static headers are valid")
        }
        None => (StatusCode::NOT_FOUND, "Not found\n").into_response(),
    }
}

/// Per-server HTTP settings, fixed at start.
pub struct HttpConfig {
    csp: HeaderValue,
    /// Sent only when this server itself serves TLS from a real certificate: HSTS on a
    /// self-signed trial would make browsers refuse to let users accept the certificate.
    pub hsts: bool,
    pub privacy: crate::privacy::Facts,
}

impl HttpConfig {
    /// `frame_ancestors`: origins allowed to embed the client (space-separated), or none.
    pub fn new(frame_ancestors: Option<&str>, privacy: crate::privacy::Facts, hsts: bool) -> Self {
        // Same-origin only: no script, style, font, image or connection from anywhere else.
        let ancestors = frame_ancestors
            .map(|a| {
                a.split_whitespace()
                    .filter(|o| is_origin(o))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| "'none'".to_owned());
        let csp = format!(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
             media-src 'self' blob:; connect-src 'self'; font-src 'self'; worker-src 'self'; object-src 'none'; \
             base-uri 'none'; form-action 'self'; frame-ancestors {ancestors}"
        );
        Self {
            csp: HeaderValue::from_str(&csp).expect("origins are checked above"),
            hsts,
            privacy,
        }
    }
}

/// A plain origin like `https://lms.example.org` (no path, quotes or separators that could
/// break out of the policy).
fn is_origin(s: &str) -> bool {
    (s.starts_with("https://") || s.starts_with("http://"))
        && s.split("//").nth(1).is_some_and(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'))
        })
}

pub async fn security_headers(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, state.http.csp.clone());
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(self), microphone=(self), display-capture=(self), geolocation=(), interest-cohort=()"),
    );
    if state.http.hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    res
}

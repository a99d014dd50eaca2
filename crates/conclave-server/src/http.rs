//! HTTP: the embedded web client, health check, and the security headers every response carries.

use axum::body::Body;
use axum::extract::{Path, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

/// The web client, embedded at build time (read from disk in debug builds).
#[derive(RustEmbed)]
#[folder = "../../web/"]
#[exclude = "tsconfig.json"]
struct WebAssets;

pub async fn healthz() -> &'static str {
    "ok\n"
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

/// Same-origin only: no script, style, font, image or connection from anywhere else.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
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
        HeaderValue::from_static(
            "camera=(self), microphone=(self), display-capture=(self), geolocation=()",
        ),
    );
    res
}

//! The operator's REST API under `/api/v1`: persistent rooms (as `conclave rooms` does) and live
//! meetings (counts only). Off unless an admin token is set; then every call but the OpenAPI
//! document needs `Authorization: Bearer <admin token>`.
//!
//! Routes and the OpenAPI document come from the same registrations (`utoipa_axum::routes!`), so
//! the document cannot list a route that does not exist or miss one that does.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use conclave_store::{StoreError, StoredRoom};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use thiserror::Error;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::access::unix_now;
use crate::auth;
use crate::ids::random_token;

/// Settings of the standard interfaces: the admin API and WHIP/WHEP, as the `[api]`
/// configuration group gives them.
#[derive(Debug, Clone)]
pub struct ApiArgs {
    /// Bearer token for the admin API; `None` turns the API off.
    pub admin_token: Option<String>,
    /// Most WHIP and WHEP sessions at once on this server; more are refused with 503.
    pub whip_max_sessions: usize,
}

/// Shortest admin token accepted: it is the only thing between the network and every meeting.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 32;

impl ApiArgs {
    pub fn check(&self) -> Result<(), String> {
        if self
            .admin_token
            .as_ref()
            .is_some_and(|t| t.chars().count() < MIN_ADMIN_TOKEN_CHARS)
        {
            return Err(format!(
                "--admin-token must be at least {MIN_ADMIN_TOKEN_CHARS} characters"
            ));
        }
        Ok(())
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Conclave admin API",
        description = "Persistent rooms and live meetings. Every operation except this document needs `Authorization: Bearer <admin token>`."
    ),
    components(schemas(Problem)),
    modifiers(&BearerAuth),
    security(("admin_token" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The `/api/v1` router, or `None` when no admin token is set (then nothing is mounted and the
/// paths answer 404).
pub fn router(state: &AppState) -> Option<axum::Router<AppState>> {
    state.admin_token.as_ref()?;
    let protected = OpenApiRouter::<AppState>::new()
        .routes(routes!(list_rooms, create_room))
        .routes(routes!(delete_room))
        .routes(routes!(list_meetings))
        .routes(routes!(end_meeting))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_admin,
        ));
    let v1 = OpenApiRouter::<AppState>::new()
        .routes(routes!(openapi_document))
        .merge(protected);
    let (router, mut doc) = OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
        .nest(PREFIX, v1)
        .split_for_parts();
    // The document itself is public: it holds no secret.
    if let Some(op) = doc
        .paths
        .paths
        .get_mut(&format!("{PREFIX}/openapi.json"))
        .and_then(|p| p.get.as_mut())
    {
        op.security = Some(Vec::new());
    }
    let doc = Arc::new(
        doc.to_pretty_json()
            .expect("the OpenAPI document serializes"),
    );
    Some(router.layer(axum::Extension(OpenApiJson(doc))))
}

const PREFIX: &str = "/api/v1";

#[derive(Clone)]
struct OpenApiJson(Arc<String>);

/// Constant-time check of the bearer token, so response timing tells nothing about how much of
/// a guess was right.
async fn require_admin(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(expected) = state.admin_token.as_deref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let ok = bearer(req.headers())
        .is_some_and(|given| bool::from(given.as_bytes().ct_eq(expected.as_bytes())));
    if !ok {
        return ApiError::Unauthorized.into_response();
    }
    next.run(req).await
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// An error as `application/problem+json` (RFC 9457), with a stable `code`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// Stable, machine-readable reason, e.g. `room_exists`, `e2ee_required`.
    pub code: String,
    /// HTTP status code.
    pub status: u16,
    /// Short summary.
    pub title: String,
    /// What happened, for a person.
    pub detail: String,
}

/// Build a problem response.
pub fn problem(status: StatusCode, code: &str, detail: impl Into<String>) -> Response {
    let body = Problem {
        code: code.to_owned(),
        status: status.as_u16(),
        title: status.canonical_reason().unwrap_or("Error").to_owned(),
        detail: detail.into(),
    };
    let mut res = (status, Json(body)).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    res
}

#[derive(Debug, Error)]
enum ApiError {
    #[error("a valid admin token is required")]
    Unauthorized,
    #[error("{0}")]
    BadRequest(String),
    #[error("no persistent room named '{0}'")]
    NoSuchRoom(String),
    #[error("no live meeting in room '{0}'")]
    NoSuchMeeting(String),
    #[error("a room named '{0}' already exists")]
    RoomExists(String),
    #[error("the server cannot do this right now")]
    Unavailable,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::NoSuchRoom(_) => (StatusCode::NOT_FOUND, "no_such_room"),
            ApiError::NoSuchMeeting(_) => (StatusCode::NOT_FOUND, "no_such_meeting"),
            ApiError::RoomExists(_) => (StatusCode::CONFLICT, "room_exists"),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        };
        let mut res = problem(status, code, self.to_string());
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

fn storage_error(e: StoreError) -> ApiError {
    match e {
        StoreError::RoomExists(name) => ApiError::RoomExists(name),
        e => {
            tracing::error!(error = %e, "storage failed");
            ApiError::Unavailable
        }
    }
}

/// A persistent room (never a password or its hash).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RoomInfo {
    pub name: String,
    /// Joiners knock and wait for a moderator.
    pub lobby: bool,
    /// Everyone needs the room password.
    pub password: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; the room is deleted then.
    pub expires_at: Option<i64>,
}

/// A persistent room to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRoom {
    /// 1 to 64 letters, digits, `-` or `_` (a few words such as `api` are reserved).
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub name: String,
    /// Joiners knock and wait for a moderator.
    #[serde(default)]
    pub lobby: bool,
    /// Also require a room password from everyone (generated, returned once).
    #[serde(default)]
    pub with_password: bool,
    /// Delete the room this many seconds from now.
    #[schema(minimum = 1)]
    #[serde(default, deserialize_with = "whole_seconds")]
    pub expires_in_seconds: Option<i64>,
}

/// A whole number of seconds. JSON (and JSON Schema) count `3600.0` as the integer 3600, so it is
/// taken as such; fractions are refused.
fn whole_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(i) = n.as_i64() {
        return Ok(Some(i));
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
        _ => Err(serde::de::Error::custom(
            "expires_in_seconds must be a whole number",
        )),
    }
}

/// The created room and its passwords, shown this once: only their hashes are stored.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedRoom {
    pub room: RoomInfo,
    pub moderator_password: String,
    pub room_password: Option<String>,
}

/// A live meeting: counts only, no names, ids or addresses of people.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MeetingInfo {
    pub room: String,
    /// In the meeting or waiting in its lobby.
    pub participants: usize,
    /// Published audio and video tracks.
    pub tracks: usize,
}

fn room_info(r: StoredRoom) -> RoomInfo {
    RoomInfo {
        name: r.name,
        lobby: r.lobby,
        password: r.password_hash.is_some(),
        created_at: r.created_at,
        expires_at: r.expires_at,
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI 3 document of this API", content_type = "application/json")))]
async fn openapi_document(axum::Extension(doc): axum::Extension<OpenApiJson>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.0.as_str().to_owned(),
    )
        .into_response()
}

/// List persistent rooms.
#[utoipa::path(get, path = "/rooms", tag = "rooms",
    responses(
        (status = 200, body = Vec<RoomInfo>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_rooms(State(state): State<AppState>) -> Result<Json<Vec<RoomInfo>>, ApiError> {
    let rooms = state.store.list_rooms().await.map_err(storage_error)?;
    Ok(Json(rooms.into_iter().map(room_info).collect()))
}

/// Create a persistent room. Its moderator password (and room password, if asked for) are
/// generated and returned once.
#[utoipa::path(post, path = "/rooms", tag = "rooms", request_body = NewRoom,
    responses(
        (status = 201, body = CreatedRoom),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_room(
    State(state): State<AppState>,
    body: Result<Json<NewRoom>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<CreatedRoom>), ApiError> {
    let Json(new) = body.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    conclave_proto::validate_room_name(&new.name)
        .map_err(|e| ApiError::BadRequest(e.to_string()))?;
    if new.expires_in_seconds.is_some_and(|s| s <= 0) {
        return Err(ApiError::BadRequest(
            "expires_in_seconds must be positive".into(),
        ));
    }
    let moderator_password = random_token(16);
    let room_password = new.with_password.then(|| random_token(16));
    let (mp, rp) = (moderator_password.clone(), room_password.clone());
    // argon2 is deliberately slow: off the async threads.
    let (moderator_hash, room_hash) = tokio::task::spawn_blocking(move || {
        let m = auth::hash_password(&mp)?;
        let r = rp.as_deref().map(auth::hash_password).transpose()?;
        Ok::<_, String>((m, r))
    })
    .await
    .map_err(|_| ApiError::Unavailable)?
    .map_err(|_| ApiError::Unavailable)?;
    let now = unix_now();
    let room = StoredRoom {
        name: new.name,
        moderator_password_hash: Some(moderator_hash),
        password_hash: room_hash,
        lobby: new.lobby,
        created_at: now,
        expires_at: new.expires_in_seconds.map(|s| now.saturating_add(s)),
    };
    state.store.add_room(&room).await.map_err(storage_error)?;
    tracing::info!("persistent room created through the admin API");
    Ok((
        StatusCode::CREATED,
        Json(CreatedRoom {
            room: room_info(room),
            moderator_password,
            room_password,
        }),
    ))
}

/// Delete a persistent room. A meeting going on in it is not interrupted.
#[utoipa::path(delete, path = "/rooms/{name}", tag = "rooms",
    params(("name" = String, Path, description = "Room name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn delete_room(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    match state
        .store
        .remove_room(&name)
        .await
        .map_err(storage_error)?
    {
        true => {
            tracing::info!("persistent room deleted through the admin API");
            Ok(StatusCode::NO_CONTENT)
        }
        false => Err(ApiError::NoSuchRoom(name)),
    }
}

/// List live meetings with their participant and track counts.
#[utoipa::path(get, path = "/meetings", tag = "meetings",
    responses(
        (status = 200, body = Vec<MeetingInfo>),
        (status = 401, body = Problem, content_type = "application/problem+json"),
    ))]
async fn list_meetings(State(state): State<AppState>) -> Result<Json<Vec<MeetingInfo>>, ApiError> {
    let meetings = state
        .media
        .meetings()
        .await
        .map_err(|_| ApiError::Unavailable)?;
    Ok(Json(
        meetings
            .into_iter()
            .map(|m| MeetingInfo {
                room: m.room,
                participants: m.participants,
                tracks: m.tracks,
            })
            .collect(),
    ))
}

/// End a live meeting: every participant is told `closed` (`meeting_ended`) and disconnected.
#[utoipa::path(delete, path = "/meetings/{room}", tag = "meetings",
    params(("room" = String, Path, description = "Room name")),
    responses(
        (status = 204, description = "Ended"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ))]
async fn end_meeting(
    State(state): State<AppState>,
    Path(room): Path<String>,
) -> Result<StatusCode, ApiError> {
    if conclave_proto::validate_room_name(&room).is_err() {
        return Err(ApiError::NoSuchMeeting(room));
    }
    let (reply, rx) = tokio::sync::oneshot::channel();
    state
        .media
        .send(
            &room,
            crate::media::Command::EndMeeting {
                room: room.clone(),
                reply,
            },
        )
        .map_err(|_| ApiError::Unavailable)?;
    match rx.await.map_err(|_| ApiError::Unavailable)? {
        true => {
            tracing::info!("meeting ended through the admin API");
            Ok(StatusCode::NO_CONTENT)
        }
        false => Err(ApiError::NoSuchMeeting(room)),
    }
}

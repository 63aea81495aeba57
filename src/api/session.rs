//! `/api/v1/setup`, `/api/v1/session` and `/api/v1/sessions`: first-run
//! setup, signing in and out with a cookie, the second factor (TOTP and
//! backup codes) and one's own sessions. The work is in [`berth::sessions`];
//! these handlers turn HTTP into its calls and its answers into cookies.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::guard::SESSION_COOKIE;
use super::json::ApiJson;
use super::users::UserView;
use super::ApiState;
use berth::access::Principal;
use berth::sessions::{Client, SessionError, SignedIn};
use berth::store::{SessionRecord, UserRecord};

/// A session as its holder sees it.
#[derive(Serialize, ToSchema)]
pub struct SessionView {
    /// The session's id (not its secret, which is only in the cookie).
    pub id: String,
    /// Who is signed in.
    pub user: UserView,
    /// Send it as `X-CSRF-Token` with every change made with the cookie.
    pub csrf_token: String,
    /// `true`: give the second factor (POST /api/v1/session/second-factor)
    /// before anything else.
    pub pending_second_factor: bool,
    /// When the session ends.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

impl SessionView {
    fn of(user: &UserRecord, session: &SessionRecord) -> Self {
        Self {
            id: session.id.clone(),
            user: UserView::from(user),
            csrf_token: session.csrf_token.clone(),
            pending_second_factor: session.pending_second_factor,
            expires_at: session.expires_at,
        }
    }
}

/// One of the caller's sessions, in their list.
#[derive(Serialize, ToSchema)]
pub struct SessionItem {
    /// Id, for revoking it.
    pub id: String,
    /// Where it signed in from.
    pub address: String,
    /// Its browser.
    pub user_agent: String,
    /// Sign-in time.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Last request (to the minute).
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_seen: OffsetDateTime,
    /// When it ends.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
    /// Whether the second factor is still due.
    pub pending_second_factor: bool,
    /// Whether this request came with it.
    pub current: bool,
}

/// Answer of `GET /api/v1/setup`.
#[derive(Serialize, ToSchema)]
pub struct SetupState {
    /// `true` until the owner is made.
    pub needed: bool,
}

/// First-run setup: the code berth logged and wrote to
/// `<data-dir>/setup-code`, and the owner's name and password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetupInput {
    /// The setup code (dashes and case do not matter).
    pub setup_code: String,
    /// The owner's username.
    #[schema(min_length = 1, max_length = 64)]
    pub username: String,
    /// The owner's password, at least 10 characters.
    #[schema(min_length = 10, max_length = 1024)]
    pub password: String,
}

/// Signing in.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignInInput {
    /// Username.
    pub username: String,
    /// Password.
    pub password: String,
}

/// A TOTP code (six digits) or a backup code.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeInput {
    /// The code.
    pub code: String,
}

/// Turning two-factor sign-in off.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpOffInput {
    /// The caller's password.
    pub password: String,
    /// A current TOTP code or a backup code.
    pub code: String,
}

/// What an authenticator app needs; shown once, at enrolment.
#[derive(Serialize, ToSchema)]
pub struct TotpEnrolment {
    /// The secret in base32, to type in.
    pub secret: String,
    /// The `otpauth://` URI.
    pub otpauth_uri: String,
    /// The URI as a QR code (an SVG document).
    pub qr_svg: String,
}

/// The backup codes; shown once.
#[derive(Serialize, ToSchema)]
pub struct BackupCodes {
    /// Ten single-use codes for when the authenticator is lost.
    pub backup_codes: Vec<String>,
}

/// An error of a sign-in step, with `Retry-After` when it is a limit.
pub enum Refusal {
    /// Refused by the sign-in logic.
    Session(SessionError),
    /// Refused before it.
    Api(ApiError),
}

impl From<SessionError> for Refusal {
    fn from(e: SessionError) -> Self {
        Self::Session(e)
    }
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let err = match self {
            Self::Api(e) => return e.into_response(),
            Self::Session(e) => e,
        };
        let status = err.status();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            return ApiError::internal(&err).into_response();
        }
        let mut api = ApiError::new(status, err.code(), err.to_string());
        if let Some(field) = err.field() {
            api = api.with_field(field);
        }
        let mut response = api.into_response();
        if let SessionError::TooMany(wait) = err {
            if let Ok(value) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

/// Who asks, from the request's head.
fn client(req_parts: &ClientParts) -> Client {
    Client {
        address: req_parts
            .peer
            .map(|p| p.ip().to_canonical().to_string())
            .unwrap_or_default(),
        user_agent: req_parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string(),
        action: format!("{} {}", req_parts.method, req_parts.template),
        target: req_parts.path.clone(),
    }
}

/// The parts of a request a sign-in step needs.
pub struct ClientParts {
    peer: Option<SocketAddr>,
    headers: HeaderMap,
    method: String,
    template: String,
    path: String,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientParts {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        // Inside `/api/v1` the URI has lost its prefix: the audit log names
        // the path the client asked for, as the gate does.
        let path = parts
            .extensions
            .get::<axum::extract::OriginalUri>()
            .map_or(parts.uri.path(), |u| u.0.path())
            .to_string();
        Ok(Self {
            peer: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
            headers: parts.headers.clone(),
            method: parts.method.to_string(),
            template: parts
                .extensions
                .get::<MatchedPath>()
                .map(|m| m.as_str().to_string())
                .unwrap_or_else(|| path.clone()),
            path,
        })
    }
}

/// Whether the client reached berth over HTTPS (a proxy in front says so
/// with `X-Forwarded-Proto`); the cookie is then `Secure`.
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value that carries `secret` for `max_age` seconds
/// (0 with an empty secret: the cookie is cleared).
pub fn set_cookie_value(secret: &str, max_age: i64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={secret}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    )
}

fn signed_in(signed: SignedIn, headers: &HeaderMap) -> Response {
    let cookie = set_cookie_value(&signed.secret, signed.max_age(), over_https(headers));
    let view = SessionView::of(&signed.user, &signed.session);
    let mut response = Json(view).into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The user and session of a cookie-authenticated request; 400 for the
/// admin token and API keys, which have no session.
fn own_session(principal: &Principal) -> Result<(&UserRecord, &SessionRecord), ApiError> {
    match principal {
        Principal::User(u) => Ok((&u.0, &u.1)),
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "not_a_session",
            "this request is authenticated with the admin token or an API key, which has no session; sign in with POST /api/v1/session and use its cookie",
        )),
    }
}

/// Runs a password check off the async threads (argon2 takes a while).
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, SessionError> + Send + 'static,
) -> Result<T, SessionError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| SessionError::Internal(e.to_string()))?
}

/// Whether first-run setup is still to be done.
#[utoipa::path(get, path = "/api/v1/setup", tag = "session",
    responses((status = 200, body = SetupState)), security(()))]
pub async fn setup_state(State(state): State<ApiState>) -> Result<Json<SetupState>, Refusal> {
    let needed = state.sessions.setup_needed()?;
    Ok(Json(SetupState { needed }))
}

/// Makes the owner with the setup code, and signs them in (sets the
/// `berth_session` cookie).
#[utoipa::path(post, path = "/api/v1/setup", tag = "session", request_body = SetupInput,
    responses((status = 200, body = SessionView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody, description = "wrong setup code"),
              (status = 409, body = ErrorBody, description = "setup is done"),
              (status = 429, body = ErrorBody)), security(()))]
pub async fn setup(
    State(state): State<ApiState>,
    parts: ClientParts,
    ApiJson(input): ApiJson<SetupInput>,
) -> Result<Response, Refusal> {
    let client = client(&parts);
    let sessions = state.sessions.clone();
    let signed = blocking(move || {
        sessions.setup(&input.setup_code, &input.username, &input.password, &client)
    })
    .await?;
    Ok(signed_in(signed, &parts.headers))
}

/// Signs in: sets the `berth_session` cookie. With two-factor sign-in on,
/// the session waits for the code (`pending_second_factor`).
#[utoipa::path(post, path = "/api/v1/session", tag = "session", request_body = SignInInput,
    responses((status = 200, body = SessionView),
              (status = 401, body = ErrorBody, description = "wrong username or password"),
              (status = 429, body = ErrorBody, description = "too many failures; see Retry-After")),
    security(()))]
pub async fn sign_in(
    State(state): State<ApiState>,
    parts: ClientParts,
    ApiJson(input): ApiJson<SignInInput>,
) -> Result<Response, Refusal> {
    let client = client(&parts);
    let sessions = state.sessions.clone();
    let signed =
        blocking(move || sessions.sign_in(&input.username, &input.password, &client)).await?;
    Ok(signed_in(signed, &parts.headers))
}

/// Who is signed in, with the CSRF token for changes.
#[utoipa::path(get, path = "/api/v1/session", tag = "session",
    responses((status = 200, body = SessionView), (status = 400, body = ErrorBody)))]
pub async fn current(
    Extension(principal): Extension<Principal>,
) -> Result<Json<SessionView>, ApiError> {
    let (user, session) = own_session(&principal)?;
    Ok(Json(SessionView::of(user, session)))
}

/// Signs out: the session ends and the cookie is cleared.
#[utoipa::path(delete, path = "/api/v1/session", tag = "session",
    responses((status = 204), (status = 400, body = ErrorBody)))]
pub async fn sign_out(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    headers: HeaderMap,
) -> Result<Response, Refusal> {
    let (_, session) = own_session(&principal)?;
    state.sessions.sign_out(session)?;
    let cookie = set_cookie_value("", 0, over_https(&headers));
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

/// Gives the second factor: a TOTP code or a backup code (used up). The
/// pending session is replaced by a new one (a new cookie).
#[utoipa::path(post, path = "/api/v1/session/second-factor", tag = "session",
    request_body = CodeInput,
    responses((status = 200, body = SessionView),
              (status = 401, body = ErrorBody, description = "wrong or reused code"),
              (status = 409, body = ErrorBody, description = "no second factor is due"),
              (status = 429, body = ErrorBody)))]
pub async fn second_factor(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    parts: ClientParts,
    ApiJson(input): ApiJson<CodeInput>,
) -> Result<Response, Refusal> {
    let (user, session) = own_session(&principal)?;
    let signed = state
        .sessions
        .second_factor(user, session, &input.code, &client(&parts))?;
    Ok(signed_in(signed, &parts.headers))
}

/// Starts TOTP enrolment: a new secret for an authenticator app (shown
/// this once). Sign-in asks for codes once it is confirmed.
#[utoipa::path(post, path = "/api/v1/session/totp", tag = "session",
    responses((status = 200, body = TotpEnrolment), (status = 400, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "two-factor sign-in is on")))]
pub async fn totp_start(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<TotpEnrolment>, Refusal> {
    let (user, _) = own_session(&principal)?;
    let e = state.sessions.enrol(user)?;
    Ok(Json(TotpEnrolment {
        secret: e.secret,
        otpauth_uri: e.uri,
        qr_svg: e.qr_svg,
    }))
}

/// Confirms enrolment with a current code: two-factor sign-in is on, and
/// ten backup codes are shown, this once.
#[utoipa::path(post, path = "/api/v1/session/totp/confirm", tag = "session",
    request_body = CodeInput,
    responses((status = 200, body = BackupCodes), (status = 401, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn totp_confirm(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    parts: ClientParts,
    ApiJson(input): ApiJson<CodeInput>,
) -> Result<Json<BackupCodes>, Refusal> {
    let (user, _) = own_session(&principal)?;
    let backup_codes = state.sessions.confirm(user, &input.code, &client(&parts))?;
    Ok(Json(BackupCodes { backup_codes }))
}

/// Turns two-factor sign-in off (password and a current or backup code).
#[utoipa::path(delete, path = "/api/v1/session/totp", tag = "session",
    request_body = TotpOffInput,
    responses((status = 204), (status = 401, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn totp_off(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    parts: ClientParts,
    ApiJson(input): ApiJson<TotpOffInput>,
) -> Result<StatusCode, Refusal> {
    let (user, _) = own_session(&principal)?;
    let user = user.clone();
    let sessions = state.sessions.clone();
    let client = client(&parts);
    blocking(move || sessions.disable(&user, &input.password, &input.code, &client)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's own sessions, newest first.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "session",
    responses((status = 200, body = [SessionItem]), (status = 400, body = ErrorBody)))]
pub async fn list(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<Vec<SessionItem>>, Refusal> {
    let (user, current) = own_session(&principal)?;
    let items = state
        .sessions
        .list(user)?
        .into_iter()
        .map(|s| SessionItem {
            current: s.id == current.id,
            id: s.id,
            address: s.address,
            user_agent: s.user_agent,
            created_at: s.created_at,
            last_seen: s.last_seen,
            expires_at: s.expires_at,
            pending_second_factor: s.pending_second_factor,
        })
        .collect();
    Ok(Json(items))
}

/// Ends one of the caller's sessions (404 for anyone else's).
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "session",
    params(("id" = String, Path, description = "Session id")),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<ApiState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<StatusCode, Refusal> {
    let Principal::User(u) = &principal else {
        return Err(SessionError::Store(berth::store::StoreError::NotFound {
            kind: "session",
            name: id,
        })
        .into());
    };
    state.sessions.revoke(&u.0, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

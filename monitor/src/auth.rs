//! Access for a non-loopback bind: the token file (the proxy's format: the
//! token on its first line, the file 0600), a login form that sets an
//! HttpOnly cookie, and the check every request goes through.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use serde::Deserialize;

use crate::App;

pub fn load_token(path: &Path) -> Result<String, String> {
    let md = std::fs::metadata(path).map_err(|e| format!("token file {}: {e}", path.display()))?;
    if md.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "token file {} is readable by group or others: chmod 600 it",
            path.display()
        ));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("token file {}: {e}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.len() < 16 {
        return Err(format!(
            "token file {}: the token must be at least 16 characters",
            path.display()
        ));
    }
    Ok(token)
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `elstream_token` cookie or `Authorization: Bearer TOKEN`.
pub fn authorized(h: &HeaderMap, token: &str) -> bool {
    let bearer = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let cookie = h
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix("elstream_token="));
    [bearer, cookie]
        .into_iter()
        .flatten()
        .any(|t| ct_eq(t.as_bytes(), token.as_bytes()))
}

pub const LOGIN: &str = r#"<!doctype html><meta charset="utf-8"><title>elstream ui: log in</title>
<form method="post" action="/login" style="font:16px sans-serif;margin:4em">
<p>This elstream ui needs its token (the file given to <code>--token-file</code>).</p>
<input name="token" type="password" autofocus size="48"> <button>Log in</button></form>"#;

pub async fn login_page() -> Html<&'static str> {
    Html(LOGIN)
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

pub async fn login(State(app): State<App>, Form(f): Form<LoginForm>) -> Response {
    match &app.token {
        Some(t) if ct_eq(f.token.trim().as_bytes(), t.as_bytes()) => (
            StatusCode::SEE_OTHER,
            [
                (header::LOCATION, "/".to_string()),
                (
                    header::SET_COOKIE,
                    format!("elstream_token={t}; HttpOnly; SameSite=Strict; Path=/"),
                ),
            ],
        )
            .into_response(),
        Some(_) => (StatusCode::UNAUTHORIZED, Html(LOGIN)).into_response(),
        None => (StatusCode::SEE_OTHER, [(header::LOCATION, "/".to_string())]).into_response(),
    }
}

//! Who is calling the JSON API: the `Caller` extractor (a person's bearer token, or an API
//! client's secret limited by its permissions on the route) and the role sets endpoints
//! require.

use axum::{
    extract::{FromRequestParts, MatchedPath},
    http::{header, request::Parts},
};
use serde_json::json;

use crate::{
    Error, Result,
    app::{AppState, db},
    users::store::{self as users, Role, User, clients as store_clients},
};

/// Who may call an endpoint, by role (the error names them in this order).
pub(crate) const ADMIN: &[Role] = &[Role::Admin];
pub(crate) const OFFICE: &[Role] = &[Role::Admin, Role::Supervisor];
pub(crate) const STAFF: &[Role] = &[Role::Supervisor, Role::Admin];

/// The authenticated caller, from `Authorization: Bearer <token>`.
pub struct Caller(pub User);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self> {
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Error::Unauthenticated)?
            .to_owned();
        if token.starts_with(store_clients::SECRET_PREFIX) {
            // A person's random token starts so about once in 16.7 million: if no client
            // has this secret, it may still be one.
            let found = db(state, move |s| {
                s.read(|c| match store_clients::grant_for_secret(c, &token) {
                    Err(Error::Unauthenticated) => users::user_for_token(c, &token).map(Err),
                    other => other.map(Ok),
                })
            })
            .await?;
            let grant = match found {
                Ok(grant) => grant,
                Err(person) => return Ok(Caller(person)),
            };
            // A client may do what its permissions name, on the route as registered.
            let route = parts
                .extensions
                .get::<MatchedPath>()
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default();
            return match super::permissions::client_permission(&parts.method, &route) {
                Some(p) if grant.permissions.contains(&p) => Ok(Caller(grant.principal)),
                Some(p) => Err(Error::Forbidden(format!(
                    "this client lacks the permission '{}'",
                    json!(p).as_str().unwrap_or_default()
                ))),
                None => Err(Error::Forbidden(
                    "API clients cannot use this endpoint: it is for people".into(),
                )),
            };
        }
        db(state, move |s| s.read(|c| users::user_for_token(c, &token)))
            .await
            .map(Caller)
    }
}

impl Caller {
    /// Refuses callers without one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<()> {
        if roles.contains(&self.0.role) {
            Ok(())
        } else {
            let names: Vec<String> = roles
                .iter()
                .map(|r| json!(r).as_str().unwrap_or_default().to_owned())
                .collect();
            Err(Error::Forbidden(format!(
                "this needs the role {}",
                names.join(" or ")
            )))
        }
    }
}

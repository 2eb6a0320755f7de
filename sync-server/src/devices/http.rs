//! The supervisors' device endpoints: enrolment codes, devices and revocation, beneficiary cards and card sheets, the quarantine of refused records.

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use uuid::Uuid;

use crate::api::{Json, Path, read_json, write_json};
use crate::app::{AppState, db};
use crate::users::caller::{Caller, STAFF};
use crate::{
    Error, Result,
    devices::{
        cards::{self, CardFace},
        store::{self as devices},
    },
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewEnrolment {
    agent: String,
    /// A location code inside the agent's area.
    assignment: String,
    ttl_minutes: Option<i64>,
}

pub async fn create_enrolment(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewEnrolment>,
) -> Result<Response> {
    caller.require(STAFF)?;
    write_json(&state, StatusCode::CREATED, move |tx| {
        devices::create_enrolment(
            tx,
            &caller.0.actor(),
            &caller.0.scope(),
            &body.agent,
            &body.assignment,
            body.ttl_minutes,
        )
    })
    .await
}

pub async fn list_devices(State(state): State<AppState>, caller: Caller) -> Result<Response> {
    caller.require(STAFF)?;
    let scope = caller.0.scope();
    read_json(&state, move |c| devices::list_devices(c, &scope)).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revoke {
    reason: String,
}

pub async fn revoke_device(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(body): Json<Revoke>,
) -> Result<Response> {
    caller.require(STAFF)?;
    write_json(&state, StatusCode::OK, move |tx| {
        devices::revoke_device(tx, &caller.0.actor(), &caller.0.scope(), id, &body.reason)?;
        Ok(serde_json::json!({"revoked": id}))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCard {
    beneficiary_id: Uuid,
    /// The person who holds it; by default the beneficiary, or the household's primary
    /// recipient, else its head.
    holder_id: Option<Uuid>,
}

pub async fn issue_card(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<NewCard>,
) -> Result<Response> {
    caller.require(STAFF)?;
    let key = state.programme.clone();
    write_json(&state, StatusCode::CREATED, move |tx| {
        devices::issue_card(
            tx,
            &key,
            &caller.0.actor(),
            &caller.0.scope(),
            body.beneficiary_id,
            body.holder_id,
        )
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardSheet {
    plan: String,
    /// A location code: cards for beneficiaries in this area.
    area: String,
    /// Issue a card to every ACTIVE beneficiary without one (default true).
    issue_missing: Option<bool>,
}

/// Cards for an area as a printable PDF sheet (8 per A4 page).
pub async fn card_sheet(
    State(state): State<AppState>,
    caller: Caller,
    Json(body): Json<CardSheet>,
) -> Result<Response> {
    caller.require(STAFF)?;
    let key = state.programme.clone();
    let pdf = db(&state, move |s| {
        let cards = s.write(|tx| {
            devices::cards_for_area(
                tx,
                &key,
                &caller.0.actor(),
                &caller.0.scope(),
                &body.plan,
                &body.area,
                body.issue_missing.unwrap_or(true),
            )
        })?;
        render_sheet(&format!("{} - {}", body.plan, body.area), &cards)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "application/pdf")], pdf).into_response())
}

/// Renders issued cards as a PDF (shared with the CLI).
pub fn render_sheet(title: &str, cards: &[devices::IssuedCard]) -> Result<Vec<u8>> {
    let faces: Vec<CardFace> = cards
        .iter()
        .map(|c| CardFace {
            serial: c.serial,
            name: c.holder_name.clone(),
            reference: c.reference.clone(),
            plan: c.plan.clone(),
            village: c.village.clone(),
            issued: c.issued_on,
            qr_payload: c.qr.clone(),
        })
        .collect();
    cards::render_pdf(title, &faces).map_err(|e| Error::Internal(e.to_string()))
}

//! Plans over the JSON API: plans, goods items, cycles, cash-for-work projects and timesheets.

use axum::{extract::State, http::StatusCode, response::Response};

use crate::api::{Json, Path, read_json, write_json};
use crate::app::AppState;
use crate::users::caller::{ADMIN, Caller};
use crate::{
    Result,
    plans::store::{self as plans, Cycle, GoodsItem, NewPlan},
};

pub async fn list_plans(State(state): State<AppState>, _caller: Caller) -> Result<Response> {
    read_json(&state, plans::list_plans).await
}

pub async fn get_plan(
    State(state): State<AppState>,
    _caller: Caller,
    Path(code): Path<String>,
) -> Result<Response> {
    read_json(&state, move |c| plans::plan_by_code(c, &code)).await
}

/// Defines a plan: who it serves, what it provides, its extra-field schema and its rule,
/// all checked together before anything is saved.
pub async fn create_plan(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewPlan>,
) -> Result<Response> {
    caller.require(ADMIN)?;
    let actor = caller.0.actor();
    write_json(&state, StatusCode::CREATED, move |tx| {
        plans::create_plan(tx, &actor, &new)
    })
    .await
}

pub async fn list_goods(State(state): State<AppState>, _caller: Caller) -> Result<Response> {
    read_json(&state, plans::list_goods_items).await
}

pub async fn create_goods(
    State(state): State<AppState>,
    caller: Caller,
    Json(item): Json<GoodsItem>,
) -> Result<Response> {
    caller.require(ADMIN)?;
    let actor = caller.0.actor();
    write_json(&state, StatusCode::CREATED, move |tx| {
        plans::add_goods_item(tx, &actor, &item)?;
        Ok(item)
    })
    .await
}

pub async fn list_cycles(State(state): State<AppState>, _caller: Caller) -> Result<Response> {
    read_json(&state, plans::list_cycles).await
}

pub async fn create_cycle(
    State(state): State<AppState>,
    caller: Caller,
    Json(cycle): Json<Cycle>,
) -> Result<Response> {
    caller.require(ADMIN)?;
    let actor = caller.0.actor();
    write_json(&state, StatusCode::CREATED, move |tx| {
        plans::create_cycle(tx, &actor, &cycle)?;
        Ok(cycle)
    })
    .await
}

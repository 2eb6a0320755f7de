//! The registry over the JSON API: locations, people, households, beneficiaries and their
//! statuses, individual uploads.

use axum::{
    body::Bytes,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::NaiveDate;
use outpost_proto::{BeneficiaryStatus, RecipientKind, Relationship};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::api::{Json, Path, Query, page_limit, read_json, write_json};
use crate::users::caller::{ADMIN, Caller, OFFICE};
use crate::{
    Error, Result,
    app::{AppState, db},
    plans::store as plans,
    registry::{
        import::{FileFormat, ImportRow, parse_individuals},
        store::{self as reg, BeneficiaryTarget, ImportOptions, NewLocation},
    },
    store::audit,
};

pub async fn list_locations(
    State(state): State<AppState>,
    Caller(user): Caller,
) -> Result<Response> {
    let scope = user.scope();
    read_json(&state, move |c| reg::list_locations(c, &scope)).await
}

pub async fn create_location(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewLocation>,
) -> Result<Response> {
    caller.require(ADMIN)?;
    let (scope, actor) = (caller.0.scope(), caller.0.actor());
    write_json(&state, StatusCode::CREATED, move |tx| {
        reg::add_location(tx, &actor, &scope, &new)
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    q: Option<String>,
    limit: Option<u32>,
    #[serde(default)]
    offset: u32,
}

pub async fn search_individuals(
    State(state): State<AppState>,
    Caller(user): Caller,
    Query(q): Query<SearchQuery>,
) -> Result<Response> {
    let scope = user.scope();
    read_json(&state, move |c| {
        reg::search_individuals(c, &scope, q.q.as_deref(), page_limit(q.limit), q.offset)
    })
    .await
}

pub async fn get_individual(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    let scope = user.scope();
    read_json(&state, move |c| reg::get_individual(c, &scope, id)).await
}

pub async fn get_household(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    let scope = user.scope();
    read_json(&state, move |c| reg::get_household(c, &scope, id)).await
}

/// One person, as the JSON API sends them: the same fields as a row of the individual upload,
/// checked and written by the same code.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewIndividual {
    external_id: String,
    first_name: String,
    last_name: String,
    dob: NaiveDate,
    sex: Option<String>,
    location: Option<String>,
    group_code: Option<String>,
    role: Option<Relationship>,
    #[serde(default)]
    recipient: Option<RecipientKind>,
    #[serde(default)]
    extra: Map<String, Value>,
    plan: Option<String>,
    status: Option<BeneficiaryStatus>,
}

pub async fn create_individual(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewIndividual>,
) -> Result<Response> {
    caller.require(ADMIN)?;
    let (scope, actor) = (caller.0.scope(), caller.0.actor());
    write_json(&state, StatusCode::CREATED, move |tx| {
        let schema = match &new.plan {
            Some(code) => Some(plans::plan_by_code(tx, code)?.extra_schema),
            None => None,
        };
        let row = ImportRow {
            row: 1,
            external_id: new.external_id,
            first_name: new.first_name,
            last_name: new.last_name,
            dob: new.dob,
            sex: new.sex,
            location_name: new.location,
            group_code: new.group_code,
            role: new.role,
            recipient: new.recipient.unwrap_or(RecipientKind::None),
            extra: new.extra,
        };
        let parsed = crate::registry::import::check_rows(vec![row], schema.as_ref());
        let opts = ImportOptions {
            plan: new.plan,
            status: new.status,
            partial: false,
        };
        let external_id = parsed.rows.first().map(|r| r.external_id.clone());
        reg::apply_import(tx, &actor, &scope, &parsed, &opts).map_err(single_row_error)?;
        let external_id = external_id
            .ok_or_else(|| Error::Internal("the imported row has no external id".into()))?;
        let id = reg::individual_id_by_external_id(tx, &external_id)?;
        reg::get_individual(tx, &scope, id)
    })
    .await
}

/// A one-row import's errors read better as field errors than as "row 1".
fn single_row_error(e: Error) -> Error {
    match e {
        Error::ImportRejected { errors } => Error::Fields {
            message: "the individual is not valid; nothing was saved".into(),
            fields: errors
                .into_iter()
                .map(|e| crate::FieldError {
                    field: e.column.unwrap_or_default(),
                    reason: e.reason,
                })
                .collect(),
        },
        other => other,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    plan: Option<String>,
    status: Option<BeneficiaryStatus>,
    #[serde(default)]
    partial: bool,
}

/// Imports an individual upload (CSV or XLSX, sent as the request body). Without `partial`,
/// one bad row rejects the file and the answer lists every bad row; with it, the valid rows
/// are written and the rejected ones come back as a CSV to fix and re-send.
pub async fn import_individuals(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ImportQuery>,
    body: Bytes,
) -> Result<Response> {
    caller.require(ADMIN)?;
    let (scope, actor) = (caller.0.scope(), caller.0.actor());
    let (report, rejected_csv) = db(&state, move |s| {
        s.write(|tx| {
            let schema = match &q.plan {
                Some(code) => Some(plans::plan_by_code(tx, code)?.extra_schema),
                None => None,
            };
            let parsed = parse_individuals(&body, FileFormat::sniff(&body), schema.as_ref())?;
            let opts = ImportOptions {
                plan: q.plan,
                status: q.status,
                partial: q.partial,
            };
            let report = reg::apply_import(tx, &actor, &scope, &parsed, &opts)?;
            let rejected = (!report.rejected.is_empty()).then(|| {
                String::from_utf8_lossy(&parsed.rejected_csv(&report.rejected)).into_owned()
            });
            Ok((report, rejected))
        })
    })
    .await?;
    let mut body = json!(report);
    body["rejected_csv"] = json!(rejected_csv);
    Ok(Json(body).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BeneficiaryQuery {
    plan: Option<String>,
    status: Option<BeneficiaryStatus>,
    limit: Option<u32>,
    #[serde(default)]
    offset: u32,
}

pub async fn list_beneficiaries(
    State(state): State<AppState>,
    Caller(user): Caller,
    Query(q): Query<BeneficiaryQuery>,
) -> Result<Response> {
    let scope = user.scope();
    read_json(&state, move |c| {
        reg::list_beneficiaries(
            c,
            &scope,
            q.plan.as_deref(),
            q.status,
            page_limit(q.limit),
            q.offset,
        )
    })
    .await
}

pub async fn get_beneficiary(
    State(state): State<AppState>,
    Caller(user): Caller,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    let scope = user.scope();
    let (b, history) = db(&state, move |s| {
        s.read(|c| {
            Ok((
                reg::get_beneficiary(c, &scope, id)?,
                reg::status_history(c, id)?,
            ))
        })
    })
    .await?;
    let mut body = json!(b);
    body["history"] = json!(history);
    Ok(Json(body).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enrolment {
    plan: String,
    individual_id: Option<Uuid>,
    household_id: Option<Uuid>,
    #[serde(default)]
    status: Option<BeneficiaryStatus>,
    reason: String,
}

/// Enrols one person or household in a plan (of the matching kind).
pub async fn enrol_beneficiary(
    State(state): State<AppState>,
    caller: Caller,
    Json(e): Json<Enrolment>,
) -> Result<Response> {
    caller.require(ADMIN)?;
    let (scope, actor) = (caller.0.scope(), caller.0.actor());
    let created = db(&state, move |s| {
        s.write(|tx| {
            let plan = plans::plan_by_code(tx, &e.plan)?;
            let target = match (plan.beneficiary_type, e.individual_id, e.household_id) {
                (plans::BeneficiaryType::Individual, Some(id), None) => {
                    reg::get_individual(tx, &scope, id)?;
                    BeneficiaryTarget::Individual(id)
                }
                (plans::BeneficiaryType::Group, None, Some(id)) => {
                    reg::get_household(tx, &scope, id)?;
                    BeneficiaryTarget::Group(id)
                }
                (plans::BeneficiaryType::Individual, ..) => {
                    return Err(Error::Invalid(format!("plan {} enrols individuals: give individual_id only", plan.code)));
                }
                (plans::BeneficiaryType::Group, ..) => {
                    return Err(Error::Invalid(format!("plan {} enrols households: give household_id only", plan.code)));
                }
            };
            let status = e.status.unwrap_or(BeneficiaryStatus::Potential);
            if !reg::enrol_if_new(tx, &actor, plan.id, target, status, &e.reason)? {
                return Err(Error::Conflict("already a beneficiary of this plan".into()));
            }
            audit::append(tx, &actor, "beneficiary.enrol", "plan", Some(&plan.id.to_string()), &json!({
                "individual_id": e.individual_id, "household_id": e.household_id, "status": status,
            }))?;
            Ok(())
        })
    })
    .await;
    created.map(|()| StatusCode::CREATED.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusChange {
    status: BeneficiaryStatus,
    reason: String,
}

/// Moves a beneficiary along its lifecycle under the `OFFICE_STATUS_CHANGE` policy: 202 with
/// the four-eyes task that will apply it (the default), or 200 with the beneficiary when the
/// policy asks for no approval. Refused transitions answer 409 and change nothing.
pub async fn change_status(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Json(change): Json<StatusChange>,
) -> Result<Response> {
    caller.require(OFFICE)?;
    let user = caller.0;
    let answer = db(&state, move |s| {
        s.write(|tx| reg::request_status_change(tx, &user, id, change.status, &change.reason))
    })
    .await?;
    let status = match answer {
        reg::StatusRequest::Applied(_) => StatusCode::OK,
        reg::StatusRequest::Pending(_) => StatusCode::ACCEPTED,
    };
    Ok((status, Json(answer)).into_response())
}

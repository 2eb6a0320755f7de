//! The pages after log-in. Each handler reads through the store's scoped functions and
//! renders one template; each form posts back, is checked for its CSRF token, writes in one
//! transaction, and redirects with a message (so a reload never sends it twice).

use std::collections::HashMap;

use axum::{
    extract::{Path, Query, Request, State},
    http::{HeaderMap, header},
    response::{IntoResponse, Response},
};
use minijinja::{Value, context, value::Serde};
use outpost_proto::{
    PayrollStatus,
    records::{self, Comment, GrievanceStatus},
};
use serde::Deserialize;
use uuid::Uuid;

use super::{Flash, PageForm, Posted, Staff, Upload, View, after, error_page, page_of, render};
use crate::{
    Error, Result,
    app::{AppState, db},
    devices::store as devices,
    payroll::store as payroll,
    plans::store as plans,
    reconciliation::{
        ExceptionKind, LineStatus, sheets,
        store::{self as rec},
    },
    registry::store as registry,
    sync::store::records as field,
    tasks::{
        policy::{Outcome, TaskKind, TaskStatus, Verdict},
        store as tasks,
    },
    users::store::{
        self as users, User,
        sessions::{self, Session},
    },
};

fn view<'a>(s: &'a Session, nav: &'a str, flash: Flash) -> View<'a> {
    View {
        lang: &s.language,
        session: Some(s),
        nav,
        flash,
    }
}

/// Runs a read and renders its page, or the error page.
async fn page<T: Send + 'static>(
    state: &AppState,
    s: &Session,
    read: impl FnOnce(&crate::store::ReadTx, &User) -> Result<T> + Send + 'static,
    show: impl FnOnce(T) -> Response,
) -> Response {
    let user = s.user.clone();
    match db(state, move |st| st.read(|c| read(c, &user))).await {
        Ok(v) => show(v),
        Err(e) => error_page(s, e),
    }
}

/// Runs one write for a form already taken ([`Posted`], [`Upload`]), and shows its outcome
/// on `back`, the page the form came from.
async fn write<T: Send + 'static>(
    state: &AppState,
    s: &Session,
    back: &str,
    ok: &'static str,
    f: impl FnOnce(&crate::store::WriteTx, &User) -> Result<T> + Send + 'static,
) -> Response {
    let user = s.user.clone();
    let outcome = db(state, move |st| st.write(|tx| f(tx, &user))).await;
    after(back, outcome.map(|_| ok))
}

// ---------------------------------------------------------------------------------------------
// Dashboard

pub async fn dashboard(
    State(state): State<AppState>,
    Staff(s): Staff,
    Query(flash): Query<Flash>,
) -> Response {
    let cache = state.reports.clone();
    page(&state, &s, move |c, u| {
        let scope = u.scope();
        let progress = crate::reconciliation::cache::progress(c, &scope, &cache)?;
        let mut rows = Vec::new();
        let mut open_exceptions = 0;
        for p in &progress {
            open_exceptions += p.open_exceptions;
            rows.push(context! {
                id => p.payroll.id.to_string(), name => p.payroll.name.clone(), status => p.payroll.status.as_str(),
                currency => p.payroll.currency.as_str(), due => p.payroll.total_minor, paid => p.paid_minor,
                lines => p.payroll.entitlements, paid_lines => p.paid_lines,
                percent => if p.payroll.total_minor > 0 { (p.paid_minor * 100 / i128::from(p.payroll.total_minor)).clamp(0, 100) } else { 0 },
                open_exceptions => p.open_exceptions,
            });
        }
        let chart = chart(c, &progress)?;
        let devices = devices::list_devices(c, &scope)?;
        let pending_tasks = tasks::count_pending(c, &scope)?;
        let waiting = payroll::list_payrolls(c, &scope, None, None, Some(PayrollStatus::PendingApproval))?.len();
        Ok(context! { payrolls => rows, chart => chart, devices => Serde(devices), pending_tasks => pending_tasks,
                      open_exceptions => open_exceptions, waiting_approval => waiting })
    }, |ctx| render(view(&s, "dashboard", flash), "dashboard.html", ctx))
    .await
}

/// Paid against due over the days of the latest cycle, as an inline SVG (no chart library,
/// nothing to download).
fn chart(
    c: &crate::store::ReadTx,
    progress: &[crate::reconciliation::cache::Progress],
) -> Result<Value> {
    let Some(cycle) = progress.iter().map(|p| p.payroll.cycle.clone()).max() else {
        return Ok(Value::from(()));
    };
    let mine: Vec<&crate::reconciliation::cache::Progress> = progress
        .iter()
        .filter(|p| p.payroll.cycle == cycle)
        .collect();
    let currency = mine[0].payroll.currency;
    let same: Vec<&&crate::reconciliation::cache::Progress> = mine
        .iter()
        .filter(|p| p.payroll.currency == currency)
        .collect();
    // Summed wide: totals of many payrolls need not fit an i64.
    let due: i128 = same.iter().map(|p| i128::from(p.payroll.total_minor)).sum();
    let ids: Vec<Uuid> = same.iter().map(|p| p.payroll.id).collect();
    let days = rec::paid_by_day(c, &ids)?;
    let (_, cycle_row) = plans::cycle_by_code(c, &cycle)?;
    let span = (cycle_row.end_date - cycle_row.start_date)
        .num_days()
        .max(1) as f64;
    let (w, h) = (600.0, 160.0);
    let scale = |v: i128| h - (v as f64 / due.max(1) as f64).min(1.2) * (h - 10.0) / 1.2;
    let mut total = 0i128;
    let mut points = vec![format!("0,{h}")];
    for (day, amount) in &days {
        let Ok(d) = chrono::NaiveDate::parse_from_str(day, "%Y-%m-%d") else {
            continue;
        };
        total += amount;
        let x = ((d - cycle_row.start_date).num_days() as f64 / span).clamp(0.0, 1.0) * w;
        points.push(format!("{x:.1},{:.1}", scale(total)));
    }
    let svg = format!(
        "<svg class=\"chart\" viewBox=\"0 -5 {w} {h2}\" role=\"img\" aria-label=\"paid against due\">\
         <line x1=\"0\" y1=\"{dy:.1}\" x2=\"{w}\" y2=\"{dy:.1}\" class=\"due\"/>\
         <polyline points=\"{pts}\" class=\"paid\"/></svg>",
        h2 = h + 10.0,
        dy = scale(due),
        pts = points.join(" ")
    );
    Ok(
        context! { cycle => cycle, svg => Value::from_safe_string(svg), due => due, paid => total,
        currency => currency.as_str() },
    )
}

// ---------------------------------------------------------------------------------------------
// Payrolls

pub async fn payrolls(
    State(state): State<AppState>,
    Staff(s): Staff,
    Query(flash): Query<Flash>,
) -> Response {
    page(&state, &s, |c, u| {
        let list = payroll::list_payrolls(c, &u.scope(), None, None, None)?;
        Ok(context! { payrolls => Serde(list), plans => Serde(plans::list_plans(c)?), cycles => Serde(plans::list_cycles(c)?) })
    }, |ctx| render(view(&s, "payrolls", flash), "payrolls.html", ctx))
    .await
}

#[derive(Deserialize)]
pub struct Generate {
    plan: String,
    cycle: String,
}

impl PageForm for Generate {}

pub async fn generate(
    State(state): State<AppState>,
    Posted {
        session: s,
        form: f,
        back,
    }: Posted<Generate>,
) -> Response {
    write(&state, &s, &back, "generated", move |tx, u| {
        let report = payroll::generate(tx, &u.actor(), &u.scope(), &f.plan, &f.cycle)?;
        if report.entitlements_created == 0 {
            return Err(Error::Conflict(format!(
                "nobody new is due in {} for {}: every ACTIVE beneficiary in your area already has an entitlement",
                f.cycle, f.plan
            )));
        }
        Ok(())
    })
    .await
}

pub async fn payroll(
    State(state): State<AppState>,
    Staff(s): Staff,
    Path(id): Path<Uuid>,
    Query(flash): Query<Flash>,
) -> Response {
    page(&state, &s, move |c, u| {
        let p = payroll::get_payroll(c, &u.scope(), id)?;
        let approval = tasks::open_for(c, TaskKind::PayrollApproval, id)?;
        let sign_off = tasks::open_for(c, TaskKind::PayrollSignOff, id)?;
        let entitlements = payroll::entitlements(c, &u.scope(), id, 100, 0)?;
        Ok(context! { payroll => Serde(p), approval => approval.map(|t| task_view(&t, u)),
                      sign_off => sign_off.map(|t| task_view(&t, u)), entitlements => Serde(entitlements) })
    }, |ctx| render(view(&s, "payrolls", flash), "payroll.html", ctx))
    .await
}

/// A task as pages show it, with what the viewer may do.
fn task_view(t: &tasks::Task, viewer: &User) -> Value {
    let (tier, approvals, needed) = match t.outcome {
        Outcome::Pending {
            tier,
            approvals,
            needed,
        } => (tier + 1, approvals, needed),
        _ => (0, 0, 0),
    };
    context! {
        id => t.id.to_string(), kind => t.kind.as_str(), summary => t.summary.clone(), maker => t.maker.clone(),
        status => t.status.as_str(), created_at => t.created_at.clone(), decisions => Serde(&t.decisions),
        tier => tier, tiers => t.policy.tiers.len(), approvals => approvals, needed => needed,
        second_factor => t.policy.second_factor, subject => t.subject_id.to_string(),
        is_maker => t.maker_id == Some(viewer.id),
        decided => t.decisions.iter().any(|d| d.user_id == viewer.id),
    }
}

// ---------------------------------------------------------------------------------------------
// Reconciliation

#[derive(Deserialize, Default)]
pub struct ReportFilter {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    exception: Option<String>,
    /// "open" (default), "resolved" or "all" exceptions.
    #[serde(default)]
    show: Option<String>,
    #[serde(default)]
    page: Option<usize>,
    #[serde(default)]
    ok: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    at: Option<i64>,
    #[serde(default)]
    sig: Option<String>,
}

const LINES_PER_PAGE: usize = 100;

pub async fn reconciliation(
    State(state): State<AppState>,
    Staff(s): Staff,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    Query(f): Query<ReportFilter>,
) -> Response {
    let cache = state.reports.clone();
    // htmx asks for the table alone when a filter changes.
    let fragment = headers.contains_key("hx-request") && !headers.contains_key("hx-boosted");
    let flash = Flash {
        ok: f.ok.clone(),
        error: f.error.clone(),
        at: f.at,
        sig: f.sig.clone(),
    };
    page(&state, &s, move |c, u| {
        let r = cache.get(c, &u.scope(), id)?;
        let status = f.status.as_deref().and_then(LineStatus::parse);
        let kind = f.exception.as_deref().and_then(ExceptionKind::parse);
        let show = f.show.clone().unwrap_or_else(|| "open".into());
        let exceptions: Vec<Value> = r.report.exceptions.iter()
            .filter(|e| kind.is_none_or(|k| e.kind == k))
            .filter(|e| match show.as_str() {
                "resolved" => r.resolutions.contains_key(&e.key),
                "all" => true,
                _ => !r.resolutions.contains_key(&e.key),
            })
            .take(500)
            .map(|e| context! { key => e.key.clone(), kind => e.kind.as_str(), detail => e.detail.clone(),
                entitlement => e.entitlement.map(|x| x.to_string()), beneficiary => e.beneficiary.map(|x| x.to_string()),
                resolution => Serde(r.resolutions.get(&e.key)) })
            .collect();
        let with_exception: std::collections::HashSet<Uuid> = r.report.exceptions.iter()
            .filter(|e| kind.is_none_or(|k| e.kind == k) && !r.resolutions.contains_key(&e.key))
            .filter_map(|e| e.entitlement).collect();
        let lines: Vec<&crate::reconciliation::Line> = r.report.lines.iter()
            .filter(|l| status.is_none_or(|st| l.status == st))
            .filter(|l| kind.is_none() || with_exception.contains(&l.entitlement))
            .collect();
        let pages = lines.len().div_ceil(LINES_PER_PAGE).max(1);
        let page_no = f.page.unwrap_or(1).clamp(1, pages);
        let shown: Vec<&&crate::reconciliation::Line> = lines.iter().skip((page_no - 1) * LINES_PER_PAGE).take(LINES_PER_PAGE).collect();
        let labels = rec::labels(c, &shown.iter().map(|l| l.beneficiary).collect::<Vec<_>>())?;
        let cur = r.payroll.currency.as_str();
        let rows: Vec<Value> = shown.iter().map(|l| {
            let (code, name) = labels.get(&l.beneficiary).cloned().unwrap_or_default();
            context! { entitlement => l.entitlement.to_string(), beneficiary => l.beneficiary.to_string(),
                code => code, name => name, due => l.due_minor, paid => l.paid_minor, payouts => l.payouts,
                status => l.status.as_str(), exceptions => l.exceptions }
        }).collect();
        let holdings: Vec<Value> = r.report.holdings.iter().map(|h| {
            let agent: Option<String> = users::username_by_id(c, h.agent).ok().flatten();
            let (what, is_cash) = match &h.what { crate::reconciliation::Holding::Cash(c) => (c.to_string(), true), crate::reconciliation::Holding::Item(i) => (i.clone(), false) };
            context! { agent => agent, what => what, is_cash => is_cash, issued => h.issued, used => h.used,
                       returned => h.returned, outstanding => h.outstanding() }
        }).collect();
        let sign_off = tasks::open_for(c, TaskKind::PayrollSignOff, id)?.map(|t| task_view(&t, u));
        Ok(context! {
            payroll => Serde(&r.payroll), totals => Serde(&r.report.totals), currency => cur, rows => rows, exceptions => exceptions,
            open_exceptions => r.open_exceptions(), holdings => holdings, sign_off => sign_off,
            statuses => LineStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
            kinds => ExceptionKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            filter => context! { status => f.status, exception => f.exception, show => show },
            page => page_no, pages => pages, matching => lines.len(),
            agents => rec::agents(c, &u.scope())?, goods => Serde(plans::list_goods_items(c)?),
            providers => rec::provider_mappings(c)?.into_iter()
                .map(|(name, mapping)| context! { name => name, mapping => Value::from(Serde(mapping)) })
                .collect::<Vec<_>>(),
            fragment => fragment,
        })
    }, |ctx| render(view(&s, "payrolls", flash), "reconciliation.html", ctx))
    .await
}

pub async fn reconciliation_csv(
    State(state): State<AppState>,
    Staff(s): Staff,
    Path(id): Path<Uuid>,
) -> Response {
    let cache = state.reports.clone();
    page(
        &state,
        &s,
        move |c, u| {
            let r = cache.get(c, &u.scope(), id)?;
            let labels = rec::labels(
                c,
                &r.report
                    .lines
                    .iter()
                    .map(|l| l.beneficiary)
                    .collect::<Vec<_>>(),
            )?;
            let mut open: HashMap<Uuid, Vec<&str>> = HashMap::new();
            for e in &r.report.exceptions {
                if let Some(ent) = e.entitlement
                    && !r.resolutions.contains_key(&e.key)
                {
                    open.entry(ent).or_default().push(e.kind.as_str());
                }
            }
            let rows: Vec<sheets::ReportRow> = r
                .report
                .lines
                .iter()
                .map(|l| {
                    let (code, name) = labels.get(&l.beneficiary).cloned().unwrap_or_default();
                    sheets::ReportRow {
                        entitlement: l.entitlement.to_string(),
                        beneficiary_code: code,
                        name,
                        currency: r.payroll.currency,
                        due_minor: l.due_minor,
                        paid_minor: l.paid_minor,
                        payouts: l.payouts,
                        status: l.status,
                        exceptions: open
                            .get(&l.entitlement)
                            .map(|k| k.join(";"))
                            .unwrap_or_default(),
                    }
                })
                .collect();
            Ok((r.payroll.name.clone(), sheets::report_csv(&rows)))
        },
        |(name, bytes)| csv_download(&format!("reconciliation {name}.csv"), bytes),
    )
    .await
}

fn csv_download(name: &str, bytes: Vec<u8>) -> Response {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || " .-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{safe}\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        bytes,
    )
        .into_response()
}

pub async fn openimis_csv(
    State(state): State<AppState>,
    Staff(s): Staff,
    Path(id): Path<Uuid>,
) -> Response {
    page(
        &state,
        &s,
        move |c, u| {
            let rows = rec::openimis_rows(c, &u.scope(), id)?;
            let name = payroll::get_payroll(c, &u.scope(), id)?.name;
            Ok((name, sheets::openimis_csv(&rows)))
        },
        |(name, bytes)| csv_download(&format!("openimis {name}.csv"), bytes),
    )
    .await
}

/// Reads a multipart form: its text fields and its one file.
fn import_message(o: &rec::ImportOutcome) -> Result<()> {
    if o.errors.is_empty() {
        return Ok(());
    }
    let rows: Vec<String> = o
        .errors
        .iter()
        .take(20)
        .map(|e| format!("row {} {}: {}", e.row, e.code, e.reason))
        .collect();
    Err(Error::Invalid(format!(
        "{} imported, {} already known; {} row(s) refused: {}",
        o.imported,
        o.already_known,
        o.errors.len(),
        rows.join("; ")
    )))
}

pub async fn openimis_import(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    req: Request,
) -> Response {
    let Upload {
        session: s,
        file,
        back,
        ..
    } = match Upload::take(&state, req, "reconciliation").await {
        Ok(u) => u,
        Err(refused) => return refused,
    };
    let user = s.user.clone();
    // Row errors are reported and the rest applies (openIMIS's PARTIAL_SUCCESS): the good
    // rows commit, and the refused ones travel back as a warning beside the success.
    match db(&state, move |st| {
        st.write(|tx| rec::import_openimis(tx, &user, id, &file))
    })
    .await
    {
        Ok(outcome) => match import_message(&outcome) {
            Ok(()) => after(&back, Ok("imported")),
            Err(warning) => {
                let query = serde_urlencoded::to_string([
                    ("ok", "imported"),
                    ("error", &warning.to_string()),
                ])
                .unwrap_or_default();
                axum::response::Redirect::to(&format!("{back}?{query}")).into_response()
            }
        },
        Err(e) => after(&back, Err(e)),
    }
}

pub async fn statement_import(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    req: Request,
) -> Response {
    let Upload {
        session: s,
        fields,
        file,
        back,
    } = match Upload::take(&state, req, "reconciliation").await {
        Ok(u) => u,
        Err(refused) => return refused,
    };
    let get = |k: &str| {
        fields
            .get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let mapping = sheets::ProviderMapping {
        reference: get("reference").unwrap_or_default(),
        amount: get("amount").unwrap_or_default(),
        our_reference: get("our_reference"),
        beneficiary: get("beneficiary"),
        currency: get("currency"),
    };
    let provider = get("provider").unwrap_or_default();
    write(&state, &s, &back, "imported", move |tx, u| {
        let outcome = rec::import_statement(tx, u, id, &provider, &mapping, &file)?;
        // A statement is all or nothing: any bad line refuses it whole.
        import_message(&outcome)
    })
    .await
}

#[derive(Deserialize)]
pub struct Resolve {
    key: String,
    reason: String,
}

/// Forms on a payroll's reconciliation page, posted to `/payrolls/{id}/<action>`.
impl PageForm for Resolve {
    fn back(&self, posted_to: &str) -> String {
        format!("{}/reconciliation", page_of(posted_to))
    }
}

pub async fn resolve(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Posted {
        session: s,
        form: f,
        back,
    }: Posted<Resolve>,
) -> Response {
    write(&state, &s, &back, "resolved", move |tx, u| {
        rec::resolve(tx, u, id, &f.key, &f.reason)
    })
    .await
}

#[derive(Deserialize)]
pub struct Float {
    agent: String,
    holding: String,
    /// "issue" or "return".
    direction: String,
    quantity: String,
    #[serde(default)]
    note: String,
}

impl PageForm for Float {
    fn back(&self, posted_to: &str) -> String {
        format!("{}/reconciliation", page_of(posted_to))
    }
}

pub async fn float(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Posted {
        session: s,
        form: f,
        back,
    }: Posted<Float>,
) -> Response {
    write(&state, &s, &back, "float", move |tx, u| {
        let p = payroll::get_payroll(tx, &u.scope(), id)?;
        let quantity = if f.holding == p.currency.as_str() {
            p.currency
                .parse_minor(&f.quantity)
                .map_err(|e| Error::Invalid(e.to_string()))?
        } else {
            f.quantity.trim().parse::<i64>().map_err(|_| {
                Error::Invalid(format!("'{}' is not a whole number of items", f.quantity))
            })?
        };
        if quantity <= 0 {
            return Err(Error::Invalid("the quantity must be above zero".into()));
        }
        let signed = if f.direction == "return" {
            -quantity
        } else {
            quantity
        };
        rec::record_float(tx, u, id, &f.agent, &f.holding, signed, &f.note)
    })
    .await
}

/// A form that is only its button (and its token).
#[derive(Deserialize)]
pub struct Button {}

impl PageForm for Button {}

pub async fn sign_off(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Posted {
        session: s, back, ..
    }: Posted<Button>,
) -> Response {
    write(&state, &s, &back, "sign_off_requested", move |tx, u| {
        rec::request_sign_off(tx, u, id)
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Tasks

#[derive(Deserialize, Default)]
pub struct TaskFilter {
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    ok: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    at: Option<i64>,
    #[serde(default)]
    sig: Option<String>,
}

pub async fn tasks(
    State(state): State<AppState>,
    Staff(s): Staff,
    Query(f): Query<TaskFilter>,
) -> Response {
    let flash = Flash {
        ok: f.ok.clone(),
        error: f.error.clone(),
        at: f.at,
        sig: f.sig.clone(),
    };
    page(&state, &s, move |c, u| {
        let kind = f.kind.as_deref().and_then(TaskKind::parse);
        let list = tasks::list(c, &u.scope(), TaskStatus::Pending, kind, 200)?;
        let views: Vec<Value> = list.iter().map(|t| task_view(t, u)).collect();
        Ok(context! { tasks => views, kinds => TaskKind::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(), kind => f.kind })
    }, |ctx| render(view(&s, "tasks", flash), "tasks.html", ctx))
    .await
}

#[derive(Deserialize)]
pub struct Decide {
    verdict: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    code: String,
    /// The page the decision was made on (the inbox, a payroll's page): it shows the outcome.
    #[serde(default)]
    back: String,
}

impl PageForm for Decide {
    fn back(&self, _posted_to: &str) -> String {
        if super::local_path(&self.back) {
            self.back.clone()
        } else {
            "/tasks".into()
        }
    }
}

pub async fn decide(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Posted {
        session: s,
        form: f,
        back,
    }: Posted<Decide>,
) -> Response {
    let verdict = match f.verdict.as_str() {
        "approve" => Verdict::Approve,
        "reject" => Verdict::Reject,
        other => {
            return after(
                &back,
                Err(Error::Invalid(format!("'{other}' is not a decision"))),
            );
        }
    };
    // The code is checked (and spent, or counted as wrong) in a transaction of its own, only
    // when one was typed; the task's policy decides whether it was needed.
    let second_factor = !f.code.trim().is_empty();
    if second_factor {
        let (user, code) = (s.user.clone(), f.code.clone());
        if let Err(e) = db(&state, move |st| sessions::require_code(st, &user, &code)).await {
            return after(&back, Err(e));
        }
    }
    let user = s.user.clone();
    let outcome = db(&state, move |st| {
        st.write(|tx| tasks::decide(tx, &user, id, verdict, &f.reason, second_factor))
    })
    .await;
    after(&back, outcome.map(|_| "decided"))
}

// ---------------------------------------------------------------------------------------------
// Grievances

#[derive(Deserialize, Default)]
pub struct GrievanceFilter {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    ok: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    at: Option<i64>,
    #[serde(default)]
    sig: Option<String>,
}

pub async fn grievances(
    State(state): State<AppState>,
    Staff(s): Staff,
    Query(f): Query<GrievanceFilter>,
) -> Response {
    let flash = Flash {
        ok: f.ok.clone(),
        error: f.error.clone(),
        at: f.at,
        sig: f.sig.clone(),
    };
    page(&state, &s, move |c, u| {
        let status = match f.status.as_deref().filter(|x| !x.is_empty()) {
            None => None,
            Some(s) => Some(GrievanceStatus::parse(s).ok_or_else(|| {
                Error::Invalid(format!("'{s}' is not a grievance status"))
            })?),
        };
        let list = field::list_grievances(c, &u.scope(), status, 300)?;
        Ok(context! { grievances => Serde(list), status => Serde(status), statuses => Serde(GrievanceStatus::ALL) })
    }, |ctx| render(view(&s, "grievances", flash), "grievances.html", ctx))
    .await
}

pub async fn grievance(
    State(state): State<AppState>,
    Staff(s): Staff,
    Path(id): Path<Uuid>,
    Query(flash): Query<Flash>,
) -> Response {
    page(
        &state,
        &s,
        move |c, u| {
            let g = field::get_grievance(c, &u.scope(), id)?;
            let next: Vec<GrievanceStatus> = GrievanceStatus::ALL
                .into_iter()
                .filter(|&n| n != g.status && g.status.can_become(n))
                .collect();
            Ok(context! { g => Serde(g), next => Serde(next) })
        },
        |ctx| render(view(&s, "grievances", flash), "grievance.html", ctx),
    )
    .await
}

#[derive(Deserialize)]
pub struct GrievanceComment {
    text: String,
}

impl PageForm for GrievanceComment {}

pub async fn grievance_comment(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Posted {
        session: s,
        form: f,
        back,
    }: Posted<GrievanceComment>,
) -> Response {
    write(&state, &s, &back, "commented", move |tx, u| {
        let text = f.text.trim().to_owned();
        if text.is_empty() {
            return Err(Error::Invalid("write a comment first".into()));
        }
        let comment = Comment {
            author: u.username.clone(),
            at: chrono::Utc::now().fixed_offset(),
            text,
        };
        field::office_edit(tx, u, id, |doc| records::add_comment(doc, &comment))
    })
    .await
}

#[derive(Deserialize)]
pub struct GrievanceMove {
    status: String,
    #[serde(default)]
    assignee: String,
}

impl PageForm for GrievanceMove {}

pub async fn grievance_status(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Posted {
        session: s,
        form: f,
        back,
    }: Posted<GrievanceMove>,
) -> Response {
    write(&state, &s, &back, "updated", move |tx, u| {
        let to = GrievanceStatus::parse(&f.status)
            .ok_or_else(|| Error::Invalid(format!("'{}' is not a grievance status", f.status)))?;
        let assignee = Some(f.assignee.trim()).filter(|a| !a.is_empty());
        field::office_edit(tx, u, id, |doc| {
            records::set_grievance_status(doc, to, assignee)
        })
    })
    .await
}

// ---------------------------------------------------------------------------------------------
// Beneficiaries

#[derive(Deserialize, Default)]
pub struct Search {
    #[serde(default)]
    q: String,
}

pub async fn beneficiaries(
    State(state): State<AppState>,
    Staff(s): Staff,
    Query(q): Query<Search>,
) -> Response {
    page(
        &state,
        &s,
        move |c, u| {
            let found = registry::search_beneficiaries(c, &u.scope(), &q.q, 100)?;
            Ok(context! { q => q.q, found => Serde(found) })
        },
        |ctx| {
            render(
                view(&s, "beneficiaries", Flash::default()),
                "beneficiaries.html",
                ctx,
            )
        },
    )
    .await
}

pub async fn beneficiary(
    State(state): State<AppState>,
    Staff(s): Staff,
    Path(id): Path<Uuid>,
) -> Response {
    page(
        &state,
        &s,
        move |c, u| {
            let b = registry::get_beneficiary(c, &u.scope(), id)?;
            let history = registry::status_history(c, id)?;
            let payouts = rec::payouts_of(c, id)?;
            Ok(context! { b => Serde(b), history => Serde(history), payouts => Serde(payouts) })
        },
        |ctx| {
            render(
                view(&s, "beneficiaries", Flash::default()),
                "beneficiary.html",
                ctx,
            )
        },
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// Devices

pub async fn devices(
    State(state): State<AppState>,
    Staff(s): Staff,
    Query(flash): Query<Flash>,
) -> Response {
    page(&state, &s, |c, u| {
        Ok(context! { devices => Serde(devices::list_devices(c, &u.scope())?), agents => rec::agents(c, &u.scope())?,
                      locations => Serde(registry::list_locations(c, &u.scope())?) })
    }, |ctx| render(view(&s, "devices", flash), "devices.html", ctx))
    .await
}

#[derive(Deserialize)]
pub struct Enrol {
    agent: String,
    assignment: String,
}

impl PageForm for Enrol {}

/// Creates a one-time code and shows it once, as text and as a QR code for the app to scan.
pub async fn enrol_device(
    State(state): State<AppState>,
    Posted {
        session: s,
        form: f,
        back,
    }: Posted<Enrol>,
) -> Response {
    let user = s.user.clone();
    let made = db(&state, move |st| {
        st.write(|tx| {
            devices::create_enrolment(
                tx,
                &user.actor(),
                &user.scope(),
                &f.agent,
                &f.assignment,
                None,
            )
        })
    })
    .await;
    let enrolment = match made {
        Ok(e) => e,
        Err(e) => return after(&back, Err(e)),
    };
    let qr = qrcode::QrCode::new(enrolment.qr_payload.as_bytes())
        .map(|q| {
            q.render::<qrcode::render::svg::Color>()
                .min_dimensions(220, 220)
                .build()
        })
        .unwrap_or_default();
    let user = s.user.clone();
    match db(&state, move |st| {
        st.read(|c| {
            Ok((
                devices::list_devices(c, &user.scope())?,
                rec::agents(c, &user.scope())?,
                registry::list_locations(c, &user.scope())?,
            ))
        })
    })
    .await
    {
        Ok((list, agents, locations)) => render(
            view(&s, "devices", Flash::default()),
            "devices.html",
            context! { devices => Serde(list), agents => agents, locations => Serde(locations), enrolment => Serde(enrolment),
            qr => Value::from_safe_string(qr) },
        ),
        Err(e) => error_page(&s, e),
    }
}

#[derive(Deserialize)]
pub struct Revoke {
    reason: String,
}

/// Posted from the devices list, to `/devices/{id}/revoke`.
impl PageForm for Revoke {
    fn back(&self, _posted_to: &str) -> String {
        "/devices".into()
    }
}

pub async fn revoke_device(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    Posted {
        session: s,
        form: f,
        back,
    }: Posted<Revoke>,
) -> Response {
    write(&state, &s, &back, "revoked", move |tx, u| {
        devices::revoke_device(tx, &u.actor(), &u.scope(), id, &f.reason)
    })
    .await
}

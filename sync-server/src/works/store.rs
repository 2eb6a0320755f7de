//! Cash for work: a plan's work projects and the timesheets of the days worked, which four
//! eyes approve before payroll pays them.

use chrono::NaiveDate;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::{Error, Result, tasks::policy::TaskKind};
use crate::{
    areas::store::{Scope, check_code, location_by_code, unique_to_conflict},
    plans::store::plan_by_code,
    store::audit,
    store::{ReadTx, WriteTx, now, text_column},
    tasks::store as tasks,
};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WorkProject {
    pub code: String,
    pub name: String,
    pub plan: String,
    pub location: String,
    pub daily_wage_minor: i64,
}

pub fn add_work_project(tx: &WriteTx, actor: &str, scope: &Scope, p: &WorkProject) -> Result<Uuid> {
    check_code("project code", &p.code)?;
    if p.name.trim().is_empty() {
        return Err(Error::Invalid(
            "a cash-for-work project needs a name".into(),
        ));
    }
    if p.daily_wage_minor <= 0 {
        return Err(Error::Invalid("the daily wage must be positive".into()));
    }
    let plan = plan_by_code(tx, &p.plan)?;
    let location = location_by_code(tx, &p.location)?;
    if !scope.contains(Some(&location.path)) {
        return Err(Error::Forbidden(format!(
            "location '{}' is outside your area",
            p.location
        )));
    }
    let id = Uuid::now_v7();
    tx.sqlite().execute(
        "INSERT INTO work_projects (id, code, name, plan_id, location_id, daily_wage_minor, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![id, p.code, p.name, plan.id, location.id, p.daily_wage_minor, now()],
    )
    .map_err(|e| unique_to_conflict(e, format!("project code '{}' is taken", p.code)))?;
    audit::append(
        tx,
        actor,
        "work_project.create",
        "work_project",
        Some(&id.to_string()),
        &json!(p),
    )?;
    Ok(id)
}

/// The project's id and daily wage.
pub fn work_project_by_code(conn: &ReadTx, code: &str) -> Result<(Uuid, i64)> {
    conn.sqlite()
        .query_row(
            "SELECT id, daily_wage_minor FROM work_projects WHERE code = ?1",
            [code],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .ok_or_else(|| Error::not_found("cash-for-work project", code))
}

outpost_proto::named_enum!(
    /// Where a day of cash for work stands: PENDING until someone other than its recorder
    /// decides it.
    TimesheetStatus, "timesheet status" {
        Pending = "PENDING",
        Approved = "APPROVED",
        Rejected = "REJECTED",
    }
);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimesheetEntry {
    pub project: String,
    pub beneficiary_id: Uuid,
    pub work_date: NaiveDate,
    /// 100 for a full day, 50 for half a day.
    pub day_hundredths: i64,
}

/// Records one day's work, PENDING until approved; one entry per worker per project per day.
pub fn record_timesheet(
    tx: &WriteTx,
    actor: &str,
    scope: &Scope,
    e: &TimesheetEntry,
) -> Result<Uuid> {
    if !(1..=100).contains(&e.day_hundredths) {
        return Err(Error::Invalid(
            "day_hundredths is between 1 and 100 (a full day)".into(),
        ));
    }
    let (project_id, _) = work_project_by_code(tx, &e.project)?;
    // The checks a device's timesheet passes (`records::validate`): the project is in the
    // caller's area, and the worker is a beneficiary of the project's plan.
    let (project_plan, project_path): (String, String) = tx.sqlite().query_row(
        "SELECT p.code, l.path FROM work_projects w JOIN benefit_plans p ON p.id = w.plan_id
         JOIN locations l ON l.id = w.location_id WHERE w.id = ?1",
        [project_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if !scope.contains(Some(&project_path)) {
        return Err(Error::Forbidden(format!(
            "project {} is outside your area",
            e.project
        )));
    }
    let beneficiary = crate::registry::store::get_beneficiary(tx, scope, e.beneficiary_id)?;
    if beneficiary.plan != project_plan {
        return Err(Error::Invalid(format!(
            "the worker is a beneficiary of {}, not of the project's plan {project_plan}",
            beneficiary.plan
        )));
    }
    if beneficiary.status != outpost_proto::BeneficiaryStatus::Active {
        return Err(Error::Invalid(format!(
            "only ACTIVE beneficiaries work on cash-for-work projects; this one is {}",
            beneficiary.status
        )));
    }
    let id = Uuid::now_v7();
    tx.sqlite().execute(
        "INSERT INTO timesheets (id, project_id, beneficiary_id, work_date, day_hundredths, status, recorded_by, recorded_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 'PENDING', ?6, ?7)",
        params![id, project_id, e.beneficiary_id, e.work_date.to_string(), e.day_hundredths, actor, now()],
    )
    .map_err(|err| unique_to_conflict(err, format!("a timesheet for {} on {} exists already", e.beneficiary_id, e.work_date)))?;
    audit::append(
        tx,
        actor,
        "timesheet.record",
        "timesheet",
        Some(&id.to_string()),
        &json!(e),
    )?;
    let path: String = tx.sqlite().query_row(
        "SELECT l.path FROM work_projects w JOIN locations l ON l.id = w.location_id WHERE w.id = ?1",
        [project_id],
        |r| r.get(0),
    )?;
    let summary = format!(
        "{} of a day on {} ({})",
        e.day_hundredths as f64 / 100.0,
        e.work_date,
        e.project
    );
    let maker_id = crate::users::store::actor_user(tx, actor)?;
    crate::tasks::store::open(
        tx,
        crate::tasks::policy::TaskKind::Timesheet,
        id,
        &path,
        &summary,
        actor,
        maker_id,
    )?;
    Ok(id)
}

/// Decides a pending timesheet. Four eyes: whoever recorded it cannot decide it.
pub fn decide_timesheet(
    tx: &WriteTx,
    actor: &str,
    scope: &Scope,
    id: Uuid,
    to: TimesheetStatus,
) -> Result<()> {
    if to == TimesheetStatus::Pending {
        return Err(Error::Invalid(
            "a timesheet is decided APPROVED or REJECTED".into(),
        ));
    }
    let (beneficiary, status, recorded_by, voided): (Uuid, TimesheetStatus, String, bool) = tx.sqlite()
        .query_row(
            "SELECT beneficiary_id, status, recorded_by, voided_at IS NOT NULL FROM timesheets WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, text_column(r, 1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?
        .ok_or_else(|| Error::not_found("timesheet", id))?;
    crate::registry::store::get_beneficiary(tx, scope, beneficiary)?;
    if voided {
        return Err(Error::Conflict(format!(
            "timesheet {id} was voided in the field; there is nothing to decide"
        )));
    }
    if status != TimesheetStatus::Pending {
        return Err(Error::Conflict(format!(
            "timesheet {id} is already {status}"
        )));
    }
    if recorded_by == actor {
        return Err(Error::Forbidden(
            "you recorded this timesheet; someone else decides it".into(),
        ));
    }
    // Nor does the person behind the API client that recorded it.
    let decider = crate::users::store::actor_user(tx, actor)?;
    if decider.is_some() && crate::users::store::actor_user(tx, &recorded_by)? == decider {
        return Err(Error::Forbidden(format!(
            "this timesheet was recorded by {recorded_by}, which answers to you; someone else decides it"
        )));
    }
    tx.sqlite().execute(
        "UPDATE timesheets SET status = ?2 WHERE id = ?1",
        params![id, to.as_str()],
    )?;
    audit::append(
        tx,
        actor,
        "timesheet.decide",
        "timesheet",
        Some(&id.to_string()),
        &json!({ "status": to }),
    )?;
    Ok(())
}

/// Timesheets are decided by four eyes; this applies the decision.
pub fn register_task_hooks(hooks: &mut tasks::Hooks) {
    hooks.register(TaskKind::Timesheet, apply_timesheet);
}

fn apply_timesheet(tx: &WriteTx, d: &tasks::Decided) -> Result<()> {
    let to = if d.approved {
        TimesheetStatus::Approved
    } else {
        TimesheetStatus::Rejected
    };
    decide_timesheet(tx, &d.user.actor(), &Scope::National, d.task.subject_id, to)
}

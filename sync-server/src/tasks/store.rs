//! Four-eyes tasks: opened when a change that needs approval is made, decided by people other
//! than its maker under the kind's policy ([`crate::tasks::policy`]), and applied in the same
//! transaction as the decision that completes them. Nothing is applied before that.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::store::{ReadTx, WriteTx};
use crate::{
    Error, Result,
    tasks::policy::{
        self as approvals, Decision, Level, Outcome, Policy, TaskKind, TaskStatus, Verdict,
    },
};
use crate::{
    areas::store::{Scope, under_path},
    store::audit,
    store::{json_column, now, text_column},
    users::store::{Role, User},
};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Task {
    pub id: Uuid,
    pub kind: TaskKind,
    pub subject_id: Uuid,
    pub path: String,
    pub summary: String,
    pub maker: String,
    #[serde(skip)]
    pub maker_id: Option<Uuid>,
    pub status: TaskStatus,
    pub policy: Policy,
    pub created_at: String,
    pub decided_at: Option<String>,
    pub decisions: Vec<TaskDecision>,
    /// Where the task stands under its policy (for a pending task: which tier, how many).
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TaskDecision {
    pub username: String,
    #[serde(skip)]
    pub user_id: Uuid,
    pub tier: usize,
    pub verdict: Verdict,
    pub reason: String,
    pub second_factor: bool,
    pub at: String,
}

pub fn policy(conn: &ReadTx, kind: TaskKind) -> Result<Policy> {
    conn.sqlite()
        .query_row(
            "SELECT policy FROM task_policies WHERE kind = ?1",
            [kind.as_str()],
            |r| json_column(r, 0),
        )
        .optional()?
        .ok_or_else(|| Error::not_found("task policy", kind.as_str()))
}

/// Sets a kind's policy; tasks already open keep the policy they opened with.
pub fn set_policy(tx: &WriteTx, actor: &str, kind: TaskKind, policy: &Policy) -> Result<()> {
    policy.check_for(kind).map_err(Error::Invalid)?;
    tx.sqlite().execute(
        "INSERT INTO task_policies (kind, policy, updated_by, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (kind) DO UPDATE SET policy = excluded.policy, updated_by = excluded.updated_by,
             updated_at = excluded.updated_at",
        params![kind.as_str(), json!(policy).to_string(), actor, now()],
    )?;
    audit::append(
        tx,
        actor,
        "task.policy",
        "task_policy",
        Some(kind.as_str()),
        &json!(policy),
    )
}

/// Opens a task unless one is already open for the subject. `maker_id` is the user who made
/// the change (a field agent, for records from a device).
pub fn open(
    tx: &WriteTx,
    kind: TaskKind,
    subject: Uuid,
    path: &str,
    summary: &str,
    maker: &str,
    maker_id: Option<Uuid>,
) -> Result<Uuid> {
    let policy = json!(policy(tx, kind)?).to_string();
    open_with(tx, kind, &policy, subject, path, summary, maker, maker_id)
}

/// Opens one task of `kind` per (subject, path, summary), as [`open`] does for each, with
/// the policy read and serialised once: payroll generation opens one per entitlement above
/// the single-payment limit, which can be a tenth of a million-line payroll.
pub fn open_many<'a>(
    tx: &WriteTx,
    kind: TaskKind,
    subjects: impl IntoIterator<Item = (Uuid, &'a str, String)>,
    maker: &str,
    maker_id: Option<Uuid>,
) -> Result<()> {
    let policy = json!(policy(tx, kind)?).to_string();
    for (subject, path, summary) in subjects {
        open_with(tx, kind, &policy, subject, path, &summary, maker, maker_id)?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn open_with(
    tx: &WriteTx,
    kind: TaskKind,
    policy: &str,
    subject: Uuid,
    path: &str,
    summary: &str,
    maker: &str,
    maker_id: Option<Uuid>,
) -> Result<Uuid> {
    let id = Uuid::now_v7();
    let inserted = tx.sqlite()
        .prepare_cached(
            "INSERT OR IGNORE INTO tasks (id, kind, subject_id, path, summary, maker_id, maker, status, policy, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'PENDING', ?8, ?9)",
        )?
        .execute(params![
            id,
            kind.as_str(),
            subject,
            path,
            summary,
            maker_id,
            maker,
            policy,
            now()
        ])?;
    if inserted == 0 {
        return tx
            .sqlite()
            .query_row(
                "SELECT id FROM tasks WHERE kind = ?1 AND subject_id = ?2 AND status = 'PENDING'",
                params![kind.as_str(), subject],
                |r| r.get(0),
            )
            .map_err(Error::from);
    }
    audit::append(
        tx,
        maker,
        "task.open",
        "task",
        Some(&id.to_string()),
        &json!({ "kind": kind, "subject": subject, "summary": summary }),
    )?;
    Ok(id)
}

const TASK_SELECT: &str =
    "SELECT t.id, t.kind, t.subject_id, t.path, t.summary, t.maker, t.maker_id,
        t.status, t.policy, t.created_at, t.decided_at FROM tasks t";

fn task_from_row(r: &rusqlite::Row) -> rusqlite::Result<Task> {
    Ok(Task {
        id: r.get(0)?,
        kind: text_column(r, 1)?,
        subject_id: r.get(2)?,
        path: r.get(3)?,
        summary: r.get(4)?,
        maker: r.get(5)?,
        maker_id: r.get(6)?,
        status: text_column(r, 7)?,
        policy: json_column(r, 8)?,
        created_at: r.get(9)?,
        decided_at: r.get(10)?,
        decisions: Vec::new(),
        outcome: Outcome::Approved,
    })
}

fn complete(conn: &ReadTx, mut task: Task) -> Result<Task> {
    let mut stmt = conn.sqlite().prepare_cached(
        "SELECT username, user_id, tier, decision, reason, second_factor, at FROM task_decisions
         WHERE task_id = ?1 ORDER BY at",
    )?;
    task.decisions = stmt
        .query_map([task.id], |r| {
            let verdict: String = r.get(3)?;
            Ok(TaskDecision {
                username: r.get(0)?,
                user_id: r.get(1)?,
                tier: r.get::<_, i64>(2)? as usize,
                verdict: if verdict == "REJECT" {
                    Verdict::Reject
                } else {
                    Verdict::Approve
                },
                reason: r.get(4)?,
                second_factor: r.get(5)?,
                at: r.get(6)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let eligible = eligible(conn, &task)?;
    task.outcome = approvals::outcome(&task.policy, &decisions(&task), &eligible);
    Ok(task)
}

fn decisions(task: &Task) -> Vec<Decision> {
    task.decisions
        .iter()
        .map(|d| Decision {
            by: d.user_id,
            tier: d.tier,
            verdict: d.verdict,
        })
        .collect()
}

/// How deep the links between accounts are followed from the maker, up and down: far beyond any real chain
/// of administrators, and a bound should the column ever hold a cycle.
const LINEAGE_DEPTH: u32 = 64;

/// A `WITH RECURSIVE` clause naming `lineage(id)`: the accounts the user `maker` (an SQL
/// expression; NULL gives none) was created through, directly or not, and the accounts created
/// through it. A log-in reset links the two accounts as a creation does (`login_reset_by`):
/// whoever reset it held its credentials. Lineage is symmetric, so the maker's ancestors and
/// descendants are every account that shares a line with it, whichever is the approver.
fn lineage_cte(maker: &str) -> String {
    format!(
        "WITH RECURSIVE
           link(child, parent) AS (
             SELECT id, created_by FROM users WHERE created_by IS NOT NULL
             UNION ALL
             SELECT id, login_reset_by FROM users WHERE login_reset_by IS NOT NULL),
           up(id, depth) AS (
             SELECT parent, 1 FROM link WHERE child = {maker}
             UNION
             SELECT l.parent, up.depth + 1 FROM link l JOIN up ON l.child = up.id
             WHERE up.depth < {LINEAGE_DEPTH}),
           down(id, depth) AS (
             SELECT child, 1 FROM link WHERE parent = {maker}
             UNION
             SELECT l.child, down.depth + 1 FROM link l JOIN down ON l.parent = down.id
             WHERE down.depth < {LINEAGE_DEPTH}),
           lineage(id) AS (SELECT id FROM up UNION SELECT id FROM down)"
    )
}

/// Whether `user`'s account and `maker`'s were created one through the other.
fn in_makers_lineage(conn: &ReadTx, maker: Option<Uuid>, user: Uuid) -> Result<bool> {
    Ok(conn.sqlite().query_row(
        &format!(
            "{} SELECT EXISTS (SELECT 1 FROM lineage WHERE id = ?2)",
            lineage_cte("?1")
        ),
        params![maker, user],
        |r| r.get(0),
    )?)
}

/// How many people may approve at each tier: supervisors and administrators, not disabled,
/// not the maker (nor, if the policy says so, in the maker's line of account creation), whose
/// area covers the task (and is at the tier's level, if it names one).
fn eligible(conn: &ReadTx, task: &Task) -> Result<Vec<u32>> {
    let mut out = Vec::with_capacity(task.policy.tiers.len());
    for tier in &task.policy.tiers {
        let level = tier.level.map(level_sql);
        let n: u32 = conn.sqlite().query_row(
            &format!(
                "{} SELECT count(*) FROM users u LEFT JOIN locations l ON l.id = u.area_id
                 WHERE u.role IN ('SUPERVISOR', 'ADMIN') AND u.disabled = 0
                   AND (?2 IS NULL OR u.id <> ?2)
                   AND (NOT ?4 OR u.id NOT IN (SELECT id FROM lineage))
                   AND (l.path IS NULL OR {})
                   AND (?3 IS NULL OR COALESCE(l.level, 'NATIONAL') = ?3)",
                lineage_cte("?2"),
                under_path("?1", "l.path")
            ),
            params![
                task.path,
                task.maker_id,
                level,
                task.policy.approvers_not_created_by_maker
            ],
            |r| r.get(0),
        )?;
        out.push(n);
    }
    Ok(out)
}

fn level_sql(l: Level) -> &'static str {
    match l {
        Level::Village => "VILLAGE",
        Level::District => "DISTRICT",
        Level::Region => "REGION",
        Level::National => "NATIONAL",
    }
}

fn user_level(conn: &ReadTx, user: &User) -> Result<Level> {
    let level: Option<String> = conn
        .sqlite()
        .query_row(
            "SELECT l.level FROM users u LEFT JOIN locations l ON l.id = u.area_id WHERE u.id = ?1",
            [user.id],
            |r| r.get(0),
        )
        .optional()?
        .flatten();
    Ok(match level.as_deref() {
        Some("VILLAGE") => Level::Village,
        Some("DISTRICT") => Level::District,
        Some("REGION") => Level::Region,
        _ => Level::National,
    })
}

pub fn get(conn: &ReadTx, scope: &Scope, id: Uuid) -> Result<Task> {
    let task = conn
        .sqlite()
        .query_row(
            &format!("{TASK_SELECT} WHERE t.id = ?1"),
            [id],
            task_from_row,
        )
        .optional()?
        .filter(|t| scope.contains(Some(&t.path)))
        .ok_or_else(|| Error::not_found("task", id))?;
    complete(conn, task)
}

/// The open task about `subject`, if any.
pub fn open_for(conn: &ReadTx, kind: TaskKind, subject: Uuid) -> Result<Option<Task>> {
    let task = conn.sqlite()
        .query_row(
            &format!("{TASK_SELECT} WHERE t.kind = ?1 AND t.subject_id = ?2 ORDER BY t.created_at DESC LIMIT 1"),
            params![kind.as_str(), subject],
            task_from_row,
        )
        .optional()?;
    task.map(|t| complete(conn, t)).transpose()
}

/// Tasks in the caller's area, oldest first; `status` PENDING for the inbox.
pub fn list(
    conn: &ReadTx,
    scope: &Scope,
    status: TaskStatus,
    kind: Option<TaskKind>,
    limit: u32,
) -> Result<Vec<Task>> {
    let mut stmt = conn.sqlite().prepare(&format!(
        "{TASK_SELECT} WHERE t.status = ?2 AND (?3 IS NULL OR t.kind = ?3)
           AND (?1 IS NULL OR {})
         ORDER BY t.created_at LIMIT ?4",
        under_path("t.path", "?1")
    ))?;
    let tasks: Vec<Task> = stmt
        .query_map(
            params![
                scope.sql(),
                status.as_str(),
                kind.map(TaskKind::as_str),
                limit
            ],
            task_from_row,
        )?
        .collect::<rusqlite::Result<_>>()?;
    tasks.into_iter().map(|t| complete(conn, t)).collect()
}

pub fn count_pending(conn: &ReadTx, scope: &Scope) -> Result<i64> {
    Ok(conn.sqlite().query_row(
        &format!(
            "SELECT count(*) FROM tasks t WHERE t.status = 'PENDING' AND (?1 IS NULL OR {})",
            under_path("t.path", "?1")
        ),
        [scope.sql()],
        |r| r.get(0),
    )?)
}

/// Records `user`'s decision. `second_factor` is true only when the caller checked a TOTP
/// code with this request. When the decision completes the task, its change is applied (or,
/// on a rejection, refused) in the same transaction.
pub fn decide(
    tx: &WriteTx,
    user: &User,
    id: Uuid,
    verdict: Verdict,
    reason: &str,
    second_factor: bool,
) -> Result<Task> {
    if !matches!(user.role, Role::Supervisor | Role::Admin) {
        return Err(Error::Forbidden(
            "only supervisors and administrators decide tasks".into(),
        ));
    }
    let task = get(tx, &user.scope(), id)?;
    if task.status != TaskStatus::Pending {
        return Err(Error::Conflict(format!(
            "this task is already {}",
            task.status
        )));
    }
    let eligible = eligible(tx, &task)?;
    if approvals::outcome(&task.policy, &decisions(&task), &eligible) == Outcome::Approved {
        // Complete already (an ALL group shrank when someone left): finish it now.
        return finish(tx, user, task, "");
    }
    let level = user_level(tx, user)?;
    let in_lineage = task.policy.approvers_not_created_by_maker
        && in_makers_lineage(tx, task.maker_id, user.id)?;
    let tier = approvals::may_decide(
        &task.policy,
        task.maker_id,
        &decisions(&task),
        &eligible,
        user.id,
        in_lineage,
        level,
        verdict,
        second_factor,
        reason,
    )
    .map_err(|e| match e {
        approvals::RuleError::SecondFactor | approvals::RuleError::NoReason => {
            Error::Invalid(e.to_string())
        }
        approvals::RuleError::Closed(_) | approvals::RuleError::AlreadyDecided => {
            Error::Conflict(e.to_string())
        }
        _ => Error::Forbidden(e.to_string()),
    })?;
    let at = now();
    tx.sqlite().execute(
        "INSERT INTO task_decisions (task_id, user_id, username, tier, decision, reason, second_factor, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            id,
            user.id,
            user.username,
            tier as i64,
            if verdict == Verdict::Approve { "APPROVE" } else { "REJECT" },
            reason.trim(),
            second_factor,
            at
        ],
    )?;
    audit::append(
        tx,
        &user.actor(),
        "task.decide",
        "task",
        Some(&id.to_string()),
        &json!({ "kind": task.kind, "verdict": verdict, "tier": tier, "reason": reason.trim(),
                 "second_factor": second_factor }),
    )?;
    let task = get(tx, &user.scope(), id)?;
    finish(tx, user, task, reason.trim())
}

/// Applies a task whose outcome is decided and closes it; a pending one is returned as is.
fn finish(tx: &WriteTx, user: &User, task: Task, reason: &str) -> Result<Task> {
    let id = task.id;
    let at = now();
    let done = match task.outcome {
        Outcome::Approved => "APPROVED",
        Outcome::Rejected => "REJECTED",
        Outcome::Pending { .. } => return Ok(task),
    };
    apply(tx, user, &task, task.outcome == Outcome::Approved, reason)?;
    tx.sqlite().execute(
        "UPDATE tasks SET status = ?2, decided_at = ?3 WHERE id = ?1",
        params![id, done, at],
    )?;
    audit::append(
        tx,
        &user.actor(),
        "task.complete",
        "task",
        Some(&id.to_string()),
        &json!({ "kind": task.kind, "status": done }),
    )?;
    get(tx, &user.scope(), id)
}

/// A completed task, as the domain that owns its subject sees it.
pub struct Decided<'a> {
    pub task: &'a Task,
    pub approved: bool,
    /// Whoever completed the decision.
    pub user: &'a User,
    /// The completing decision's reason (a rejection's is shown to the maker).
    pub reason: &'a str,
}

/// What the domain owning a kind's subject does once a task of that kind is decided: the
/// approved change, or the refusal recorded on the subject. It runs in the decision's
/// transaction, so a hook that fails undoes the decision with it.
pub type Hook = fn(&WriteTx, &Decided) -> Result<()>;

/// One hook per task kind, each registered by the domain that owns the kind's subject
/// (see `app::task_hooks`), so the engine decides without knowing any of them. The store
/// hands them to every write ([`WriteTx::service`]).
#[derive(Default)]
pub struct Hooks(std::collections::HashMap<TaskKind, Hook>);

impl Hooks {
    /// Registers what applies `kind`'s decisions; a second registration for a kind is a bug.
    pub fn register(&mut self, kind: TaskKind, hook: Hook) {
        let before = self.0.insert(kind, hook);
        assert!(before.is_none(), "two hooks registered for {kind:?} tasks");
    }

    /// The kinds nothing applies yet (empty once every domain has registered).
    pub fn missing(&self) -> Vec<TaskKind> {
        TaskKind::ALL
            .into_iter()
            .filter(|k| !self.0.contains_key(k))
            .collect()
    }
}

/// Hands a decided task to the hook of its kind.
fn apply(tx: &WriteTx, user: &User, task: &Task, approved: bool, reason: &str) -> Result<()> {
    let hook = tx
        .service::<Hooks>()
        .and_then(|h| h.0.get(&task.kind))
        .ok_or_else(|| Error::Internal(format!("nothing applies {} tasks", task.kind.as_str())))?;
    hook(
        tx,
        &Decided {
            task,
            approved,
            user,
            reason,
        },
    )
}

/// Withdraws the open task about `subject` when the subject itself went away (a timesheet
/// voided in the field): there is nothing left to decide.
pub fn withdraw(tx: &WriteTx, kind: TaskKind, subject: Uuid, actor: &str) -> Result<()> {
    let n = tx.sqlite().execute(
        "UPDATE tasks SET status = 'WITHDRAWN', decided_at = ?3 WHERE kind = ?1 AND subject_id = ?2 AND status = 'PENDING'",
        params![kind.as_str(), subject, now()],
    )?;
    if n > 0 {
        audit::append(
            tx,
            actor,
            "task.withdrawn",
            "task",
            Some(&subject.to_string()),
            &json!({ "kind": kind }),
        )?;
    }
    Ok(())
}

/// Decides the open task about `subject` (for callers that know the thing, not the task).
pub fn decide_subject(
    tx: &WriteTx,
    user: &User,
    kind: TaskKind,
    subject: Uuid,
    verdict: Verdict,
    reason: &str,
    second_factor: bool,
) -> Result<Task> {
    let task = open_for(tx, kind, subject)?
        .filter(|t| t.status == TaskStatus::Pending)
        .ok_or_else(|| Error::Conflict(format!("nothing waits for a decision on {subject}")))?;
    decide(tx, user, task.id, verdict, reason, second_factor)
}

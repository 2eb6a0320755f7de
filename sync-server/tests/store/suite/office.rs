//! The office's rules with the demo programme: four-eyes tasks
//! (nothing applied before approval, nothing applied after a rejection), second-factor codes,
//! and reconciliation's writes (float, resolutions, openIMIS sheets, statements, sign-off).

use super::open_in;
use automerge::AutoCommit;
use outpost_proto::{
    BeneficiaryStatus, EntitlementStatus, PayrollStatus,
    records::{Record, Verification},
    wire::{DocChanges, DocOutcome, Row, RowKind},
};
use outpost_server::{
    Error,
    demo::{self, DemoOptions},
    payroll::store as payroll,
    reconciliation::{
        ExceptionKind, LineStatus, sheets,
        store::{self as rec},
    },
    registry::{
        import::{FileFormat, parse_individuals},
        store::{self as registry, ImportOptions, Scope},
    },
    store::Store,
    sync::store::{
        records::{self, Origin},
        replica,
    },
    tasks::{
        policy::{Outcome, TaskKind, TaskStatus, Verdict},
        store as tasks,
    },
    users::store::{self as users, User, sessions},
};
use tempfile::TempDir;
use uuid::Uuid;

/// The client address office tests log in from.
const ADDRESS: &str = "192.0.2.1";

struct Office {
    _dir: TempDir,
    store: Store,
    /// The demo's cycle: the month of the day the test made it.
    cycle: String,
}

fn office() -> Office {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path(), "registry");
    let as_of = demo::today();
    demo::load(
        &store,
        &DemoOptions {
            households: 30,
            seed: 3,
            as_of,
        },
    )
    .unwrap();
    Office {
        _dir: dir,
        store,
        cycle: demo::cycle_of(as_of).code,
    }
}

impl Office {
    fn user(&self, name: &str) -> User {
        self.store
            .read(|c| users::user_by_username(c, name))
            .unwrap()
    }

    /// A new household in Ekwendeni, ACTIVE in CT-HH, and the supplementary payroll
    /// `sup.north1` generates for it.
    fn new_payroll(&self) -> Uuid {
        self.new_household_paid_by("T-1,Thandiwe,Mhango,1981-02-03,F", "sup.north1")
    }

    /// Imports one household (`id,first,last,dob,sex` of its head) in Ekwendeni, ACTIVE in
    /// CT-HH, and has `maker` generate the cycle's payroll for it.
    fn new_household_paid_by(&self, head: &str, maker: &str) -> Uuid {
        let code = head.split(',').next().unwrap();
        let r = self.import_and_generate(
            &format!("{head},N-MZ-01,HH-{code},HEAD,1,no,OWNED\n"),
            maker,
        );
        assert_eq!(r.entitlements_created, 1);
        r.payrolls[0]
    }

    /// Imports `rows` (openIMIS individual rows with the demo's two extra columns) ACTIVE in
    /// CT-HH, and has `maker` generate the cycle's CT-HH payrolls.
    fn import_and_generate(&self, rows: &str, maker: &str) -> payroll::GenerateReport {
        let csv = format!(
            "id,first_name,last_name,dob,sex,location_name,group_code,individual_role,recipient_info,disability,housing\n{rows}"
        );
        let maker = self.user(maker);
        self.store
            .write(|tx| {
                let schema = outpost_server::plans::store::plan_by_code(tx, "CT-HH")?.extra_schema;
                let parsed = parse_individuals(csv.as_bytes(), FileFormat::Csv, Some(&schema))?;
                let options = ImportOptions {
                    plan: Some("CT-HH".into()),
                    status: Some(BeneficiaryStatus::Active),
                    partial: false,
                };
                registry::apply_import(tx, "test", &Scope::National, &parsed, &options)?;
                payroll::generate(tx, &maker.actor(), &maker.scope(), "CT-HH", &self.cycle)
            })
            .unwrap()
    }

    fn decide(
        &self,
        who: &str,
        task: Uuid,
        verdict: Verdict,
        reason: &str,
        code: bool,
    ) -> Result<tasks::Task, Error> {
        let u = self.user(who);
        self.store
            .write(|tx| tasks::decide(tx, &u, task, verdict, reason, code))
    }

    fn payroll_status(&self, id: Uuid) -> PayrollStatus {
        self.store
            .read(|c| payroll::get_payroll(c, &Scope::National, id))
            .unwrap()
            .status
    }

    /// Entitlement rows of the payroll in the devices' feed: what a device holding the whole
    /// programme downloads from the start (rows, and tombstones of rows it must drop).
    fn in_the_field(&self, payroll: Uuid) -> i64 {
        let lines: Vec<Vec<u8>> = self
            .entitlements(payroll)
            .iter()
            .map(|e| e.id.as_bytes().to_vec())
            .collect();
        let mut seen = 0;
        let mut cursor = 0;
        loop {
            let page = self
                .store
                .read(|c| replica::page(c, "N", cursor, replica::MAX_PAGE_BYTES))
                .unwrap();
            seen += page
                .rows
                .iter()
                .filter(|r| matches!(&r.row, Some(Row::Entitlement(e)) if e.payroll_id == payroll.as_bytes()))
                .count() as i64;
            seen += page
                .tombstones
                .iter()
                .filter(|t| t.kind == RowKind::Entitlement as i32 && lines.contains(&t.id))
                .count() as i64;
            cursor = page.next_cursor;
            if !page.more {
                return seen;
            }
        }
    }

    /// The payroll's lines.
    fn entitlements(&self, payroll: Uuid) -> Vec<payroll::Entitlement> {
        self.store
            .read(|c| payroll::entitlements(c, &Scope::National, payroll, u32::MAX, 0))
            .unwrap()
    }

    /// The pending approvals of the payroll's lines above the single-payment limit.
    fn line_approvals(&self, payroll: Uuid) -> Vec<tasks::Task> {
        let lines: Vec<Uuid> = self.entitlements(payroll).iter().map(|e| e.id).collect();
        self.store
            .read(|c| {
                let kind = Some(TaskKind::EntitlementApproval);
                tasks::list(c, &Scope::National, TaskStatus::Pending, kind, u32::MAX)
            })
            .unwrap()
            .into_iter()
            .filter(|t| lines.contains(&t.subject_id))
            .collect()
    }

    fn approval_task(&self, payroll: Uuid) -> tasks::Task {
        self.store
            .read(|c| tasks::open_for(c, TaskKind::PayrollApproval, payroll))
            .unwrap()
            .expect("generation opens an approval task")
    }
}

#[test]
fn a_payroll_needs_two_approvers_who_are_not_its_maker_each_with_a_code() {
    let o = office();
    let payroll = o.new_payroll();
    let task = o.approval_task(payroll);
    assert_eq!(task.maker, "user:sup.north1");
    assert_eq!(o.payroll_status(payroll), PayrollStatus::PendingApproval);

    let err = o
        .decide("sup.north1", task.id, Verdict::Approve, "", true)
        .unwrap_err();
    assert!(
        matches!(err, Error::Forbidden(ref m) if m.contains("four eyes")),
        "{err}"
    );
    let err = o
        .decide("sup.north2", task.id, Verdict::Approve, "", false)
        .unwrap_err();
    assert!(
        matches!(err, Error::Invalid(ref m) if m.contains("authenticator")),
        "{err}"
    );
    // Another region's supervisor cannot even see it.
    let err = o
        .decide("sup.south1", task.id, Verdict::Approve, "", true)
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    let one = o
        .decide("sup.north2", task.id, Verdict::Approve, "", true)
        .unwrap();
    assert_eq!(
        one.outcome,
        Outcome::Pending {
            tier: 0,
            approvals: 1,
            needed: 2
        }
    );
    assert_eq!(o.payroll_status(payroll), PayrollStatus::PendingApproval);
    assert_eq!(
        o.in_the_field(payroll),
        0,
        "nothing reaches the field before approval"
    );
    let err = o
        .decide("sup.north2", task.id, Verdict::Approve, "", true)
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");

    let done = o
        .decide("sup.north3", task.id, Verdict::Approve, "", true)
        .unwrap();
    assert_eq!(done.status.as_str(), "APPROVED");
    assert_eq!(o.payroll_status(payroll), PayrollStatus::Approved);
    assert_eq!(o.in_the_field(payroll), 1);
    let audit = o
        .store
        .read(|c| outpost_server::store::audit::list(c, Some(&task.id.to_string()), 20))
        .unwrap();
    assert!(audit.iter().filter(|e| e.action == "task.decide").count() == 2);
}

#[test]
fn a_rejected_payroll_never_reaches_the_field() {
    let o = office();
    let payroll = o.new_payroll();
    let task = o.approval_task(payroll);
    o.decide("sup.north2", task.id, Verdict::Approve, "", true)
        .unwrap();
    let err = o
        .decide("sup.north3", task.id, Verdict::Reject, "  ", false)
        .unwrap_err();
    assert!(
        matches!(err, Error::Invalid(ref m) if m.contains("reason")),
        "{err}"
    );
    let rejected = o
        .decide("sup.north3", task.id, Verdict::Reject, "wrong cycle", false)
        .unwrap();
    assert_eq!(rejected.status.as_str(), "REJECTED");
    assert_eq!(o.payroll_status(payroll), PayrollStatus::Rejected);
    assert_eq!(o.in_the_field(payroll), 0);
    let err = o
        .decide("admin", task.id, Verdict::Approve, "", true)
        .unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
}

/// `maker` generates the cycle's CT-HH payrolls again, importing nothing.
fn generate_again(o: &Office, maker: &str) -> payroll::GenerateReport {
    let maker = o.user(maker);
    o.store
        .write(|tx| payroll::generate(tx, &maker.actor(), &maker.scope(), "CT-HH", &o.cycle))
        .unwrap()
}

/// The entitlements of a payroll, by beneficiary.
fn entitled(o: &Office, payroll: Uuid) -> Vec<Uuid> {
    let mut people: Vec<Uuid> = o
        .entitlements(payroll)
        .iter()
        .map(|e| e.beneficiary_id)
        .collect();
    people.sort();
    people
}

#[test]
fn a_rejected_payrolls_beneficiaries_are_covered_by_the_next_generation_and_nobody_twice() {
    let o = office();
    let rejected = o.new_payroll();
    let household = entitled(&o, rejected);
    assert_eq!(household.len(), 1);
    // Pending: generating again adds nobody.
    assert_eq!(generate_again(&o, "sup.north1").entitlements_created, 0);
    let task = o.approval_task(rejected);
    o.decide(
        "sup.north2",
        task.id,
        Verdict::Reject,
        "wrong amounts",
        false,
    )
    .unwrap();
    assert_eq!(o.payroll_status(rejected), PayrollStatus::Rejected);

    let again = generate_again(&o, "sup.north1");
    assert_eq!(again.entitlements_created, 1, "{again:?}");
    let fresh = again.payrolls[0];
    assert_ne!(fresh, rejected);
    assert_eq!(entitled(&o, fresh), household);
    assert_eq!(
        entitled(&o, rejected),
        household,
        "the rejected payroll keeps its lines as history"
    );
    assert_eq!(o.payroll_status(fresh), PayrollStatus::PendingApproval);

    // The new payroll, pending and then approved, blocks like any other: nobody is paid twice.
    assert_eq!(generate_again(&o, "sup.north2").entitlements_created, 0);
    let task = o.approval_task(fresh);
    o.decide("sup.north2", task.id, Verdict::Approve, "", true)
        .unwrap();
    o.decide("sup.north3", task.id, Verdict::Approve, "", true)
        .unwrap();
    assert_eq!(o.payroll_status(fresh), PayrollStatus::Approved);
    assert_eq!(generate_again(&o, "sup.north1").entitlements_created, 0);
    assert_eq!(o.in_the_field(fresh), 1);
    assert_eq!(o.in_the_field(rejected), 0);
}

/// Creates a supervisor in region N, as `creator` (an actor) would.
fn supervisor_made_by(o: &Office, creator: &str, username: &str, role: users::Role) {
    o.store
        .write(|tx| {
            users::create_user(
                tx,
                creator,
                &Scope::National,
                &users::NewUser {
                    username: username.into(),
                    display_name: username.into(),
                    role,
                    area: (role == users::Role::Supervisor).then(|| "N".into()),
                    password: demo::DEMO_PASSWORD.into(),
                },
            )
        })
        .unwrap();
}

#[test]
fn an_account_the_maker_created_cannot_approve_the_makers_payroll() {
    let o = office();
    // The administrator makes a supervisor of their own, then a payroll.
    supervisor_made_by(&o, "user:admin", "sup.puppet", users::Role::Supervisor);
    // Accounts made by someone else remain independent approvers.
    supervisor_made_by(&o, "system:test", "admin2", users::Role::Admin);
    supervisor_made_by(&o, "user:admin2", "sup.other", users::Role::Supervisor);
    let payroll = o.new_household_paid_by("T-7,Tiyamike,Banda,1980-05-06,F", "admin");
    let task = o.approval_task(payroll);
    assert!(task.policy.approvers_not_created_by_maker, "on by default");

    let err = o
        .decide("sup.puppet", task.id, Verdict::Approve, "", true)
        .unwrap_err();
    assert!(
        matches!(err, Error::Forbidden(ref m) if m.contains("created by the maker")),
        "{err}"
    );
    let one = o
        .decide("sup.other", task.id, Verdict::Approve, "", true)
        .unwrap();
    assert!(matches!(one.outcome, Outcome::Pending { approvals: 1, .. }));
    let done = o
        .decide("sup.north2", task.id, Verdict::Approve, "", true)
        .unwrap();
    assert_eq!(done.status.as_str(), "APPROVED");
    assert_eq!(o.payroll_status(payroll), PayrollStatus::Approved);
    let created_by = o.store.read(|c| users::creator(c, "sup.north1")).unwrap();
    assert_eq!(
        created_by, None,
        "the demo's accounts are made by the system"
    );
}

/// The rule follows `created_by` both ways and through accounts in between: an administrator
/// who makes the payroll as an account of their own making, or who approves through an account
/// made by one of theirs, is still one person.
#[test]
fn the_makers_line_of_account_creation_cannot_approve_either_way_or_through_a_chain() {
    let o = office();
    let refused = |who: &str, task: Uuid| {
        let err = o.decide(who, task, Verdict::Approve, "", true).unwrap_err();
        assert!(
            matches!(err, Error::Forbidden(ref m) if m.contains("created by the maker")),
            "{who}: {err}"
        );
    };
    // Reverse: the administrator makes an account, generates the payroll as it, and approves.
    supervisor_made_by(&o, "user:admin", "sup.puppet", users::Role::Supervisor);
    let payroll = o.new_household_paid_by("T-8,Chikondi,Mwale,1979-03-04,F", "sup.puppet");
    let reverse = o.approval_task(payroll);
    refused("admin", reverse.id);
    // Chain: admin makes admin.b, admin.b makes sup.c; sup.c approves the admin's payroll,
    // and the admin approves a payroll sup.c makes.
    supervisor_made_by(&o, "user:admin", "admin.b", users::Role::Admin);
    supervisor_made_by(&o, "user:admin.b", "sup.c", users::Role::Supervisor);
    let payroll = o.new_household_paid_by("T-9,Kondwani,Nyirenda,1985-07-08,M", "admin");
    let chain = o.approval_task(payroll);
    refused("sup.c", chain.id);
    refused("admin.b", chain.id);
    let payroll = o.new_household_paid_by("T-10,Mphatso,Gondwe,1990-01-02,F", "sup.c");
    let chain_up = o.approval_task(payroll);
    refused("admin", chain_up.id);
    refused("admin.b", chain_up.id);
    // The count of who may approve leaves the line out too: the admin's payroll still needs
    // two, and the demo's supervisors (made by the system) are there to give them.
    assert!(matches!(
        o.decide("sup.north2", chain.id, Verdict::Approve, "", true)
            .unwrap()
            .outcome,
        Outcome::Pending { approvals: 1, .. }
    ));
    let done = o
        .decide("sup.north1", chain.id, Verdict::Approve, "", true)
        .unwrap();
    assert_eq!(done.status.as_str(), "APPROVED");
    // An unrelated account approves the reverse case; rejecting stays open to the line.
    let one = o
        .decide("sup.north2", reverse.id, Verdict::Approve, "", true)
        .unwrap();
    assert!(matches!(one.outcome, Outcome::Pending { approvals: 1, .. }));
    let stopped = o
        .decide(
            "admin",
            chain_up.id,
            Verdict::Reject,
            "not mine to approve",
            false,
        )
        .unwrap();
    assert_eq!(stopped.status.as_str(), "REJECTED");
}

/// Whoever resets an account's log-in holds its credentials until its owner resets them again:
/// an administrator who resets a supervisor's password cannot then approve their own payroll
/// as that supervisor, nor the supervisor the administrator's.
#[test]
fn a_log_in_reset_links_the_accounts_as_creating_one_does() {
    let o = office();
    let payroll = o.new_household_paid_by("T-11,Thoko,Phiri,1981-05-06,F", "admin");
    let task = o.approval_task(payroll);
    let reset = users::Reset {
        password: Some("a new password of the admin's".into()),
        totp: true,
    };
    let hash = reset.prepare().unwrap();
    o.store
        .write(|tx| {
            users::reset_login(
                tx,
                "user:admin",
                &Scope::National,
                "sup.north2",
                &reset,
                hash.as_deref(),
            )
        })
        .unwrap();
    let err = o
        .decide("sup.north2", task.id, Verdict::Approve, "", true)
        .unwrap_err();
    assert!(
        matches!(err, Error::Forbidden(ref m) if m.contains("created by the maker")),
        "{err}"
    );
    // The other way: the supervisor's payroll is not the administrator's to approve.
    let payroll = o.new_household_paid_by("T-12,Chisomo,Banda,1983-02-03,M", "sup.north2");
    let theirs = o.approval_task(payroll);
    let err = o
        .decide("admin", theirs.id, Verdict::Approve, "", true)
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err}");
    // A reset on the server's command line is no person's: it links nobody.
    let reset = users::Reset {
        password: None,
        totp: true,
    };
    o.store
        .write(|tx| users::reset_login(tx, "cli", &Scope::National, "sup.north3", &reset, None))
        .unwrap();
    let ok = o
        .decide("sup.north3", task.id, Verdict::Approve, "", true)
        .unwrap();
    assert!(matches!(ok.outcome, Outcome::Pending { approvals: 1, .. }));
}

/// Entitlements above the single-payment limit and timesheets pay money too: their approvals
/// take the creator rule by default, so the administrator who makes a payroll as an account of
/// their own cannot approve its large line either.
#[test]
fn money_tasks_other_than_payrolls_take_the_creator_rule_by_default() {
    let o = office();
    for kind in [TaskKind::EntitlementApproval, TaskKind::Timesheet] {
        let policy = o.store.read(|c| tasks::policy(c, kind)).unwrap();
        assert!(policy.approvers_not_created_by_maker, "{kind:?}");
    }
    supervisor_made_by(&o, "user:admin", "sup.puppet", users::Role::Supervisor);
    // With a disability and no housing 22,500.00 MWK, above the 20,000.00 limit.
    let payroll = o
        .import_and_generate(
            "L-1,Limbani,Banda,1979-03-04,M,N-MZ-01,HH-L-1,HEAD,1,yes,NONE\n",
            "sup.puppet",
        )
        .payrolls[0];
    let line: Uuid = o.line_approvals(payroll)[0].id;
    let err = o
        .decide("admin", line, Verdict::Approve, "", true)
        .unwrap_err();
    assert!(
        matches!(err, Error::Forbidden(ref m) if m.contains("created by the maker")),
        "{err}"
    );
    let done = o
        .decide("sup.north2", line, Verdict::Approve, "", true)
        .unwrap();
    assert_eq!(done.status.as_str(), "APPROVED");
}

/// An ALL tier waits for everyone eligible: the count leaves out the maker's whole line of
/// account creation (not only the accounts the maker made directly), or the task could never
/// complete.
#[test]
fn the_count_of_approvers_leaves_out_the_makers_whole_line() {
    let o = office();
    supervisor_made_by(&o, "user:admin", "admin.b", users::Role::Admin);
    supervisor_made_by(&o, "user:admin.b", "sup.c", users::Role::Supervisor);
    let needed = |strict: bool, head: &str| {
        let all = outpost_server::tasks::policy::Policy {
            tiers: vec![outpost_server::tasks::policy::Tier {
                level: None,
                completion: outpost_server::tasks::policy::Completion::All,
            }],
            second_factor: true,
            approvers_not_created_by_maker: strict,
        };
        o.store
            .write(|tx| tasks::set_policy(tx, "test", TaskKind::PayrollApproval, &all))
            .unwrap();
        // The rejected payroll's household comes back into the next one: count no entitlements.
        let r = o.import_and_generate(
            &format!("{head},N-MZ-01,HH-{},HEAD,1,no,OWNED\n", &head[..4]),
            "admin",
        );
        let task = o.approval_task(r.payrolls[0]);
        // Closed, so the next generation opens a payroll (and a task) of its own.
        o.decide("sup.north1", task.id, Verdict::Reject, "counted", false)
            .unwrap();
        match task.outcome {
            Outcome::Pending { needed, .. } => needed,
            other => panic!("{other:?}"),
        }
    };
    let strict = needed(true, "T-11,Yamikani,Chirwa,1984-04-05,F");
    let open = needed(false, "T-12,Madalitso,Kumwenda,1982-06-07,M");
    assert_eq!(
        open,
        strict + 2,
        "admin.b and sup.c are out of the strict count"
    );
}

#[test]
fn a_totp_code_is_checked_and_accepted_once_and_wrong_ones_pause_the_account() {
    let o = office();
    let u = o.user("sup.north2");
    let right = sessions::current_code(sessions::DEMO_TOTP_SECRET).unwrap();
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    assert_eq!(
        o.store
            .write(|tx| sessions::check_code(tx, &u, wrong))
            .unwrap(),
        sessions::Code::Wrong
    );
    assert_eq!(
        o.store
            .write(|tx| sessions::check_code(tx, &u, &right))
            .unwrap(),
        sessions::Code::Accepted
    );
    assert_eq!(
        o.store
            .write(|tx| sessions::check_code(tx, &u, &right))
            .unwrap(),
        sessions::Code::Reused
    );
    // Wrong codes count in their own transaction, and five in a row pause the account.
    for _ in 0..4 {
        assert!(sessions::require_code(&o.store, &u, wrong).is_err());
    }
    let paused = sessions::require_code(&o.store, &u, wrong).unwrap_err();
    assert!(paused.to_string().contains("paused"), "{paused}");
    let again = o
        .store
        .write(|tx| sessions::check_code(tx, &u, &right))
        .unwrap();
    assert!(
        matches!(again, sessions::Code::Paused(_)),
        "even a right code waits: {again:?}"
    );
}

/// Five wrong passwords pause the name typed (not an account: unknown names pause alike),
/// even for the right password. Only the pause is audited, not each attempt, so guessing
/// cannot grow the audit log one entry per try.
#[test]
fn wrong_passwords_are_counted_and_pause_the_name_even_for_the_right_password() {
    let o = office();
    for _ in 0..4 {
        let r = sessions::log_in(&o.store, "sup.north1", "guess", ADDRESS).unwrap();
        assert_eq!(r, sessions::LogIn::Refused);
    }
    let r = sessions::log_in(&o.store, "sup.north1", "guess", ADDRESS).unwrap();
    assert!(matches!(r, sessions::LogIn::Paused(_)), "{r:?}");
    let r = sessions::log_in(&o.store, "sup.north1", demo::DEMO_PASSWORD, ADDRESS).unwrap();
    assert!(matches!(r, sessions::LogIn::Paused(_)), "{r:?}");
    // Unknown users get the same answer as wrong passwords.
    let r = sessions::log_in(&o.store, "nobody", "guess", ADDRESS).unwrap();
    assert_eq!(r, sessions::LogIn::Refused);
    let audit = o
        .store
        .read(|c| outpost_server::store::audit::list(c, None, 50))
        .unwrap();
    // Was: an `auth.failed` entry per attempt. Now one `auth.paused` entry, with the count;
    // the refused attempts before it and the unknown name's leave none.
    assert_eq!(
        audit.iter().filter(|e| e.action == "auth.failed").count(),
        0,
        "no entry per attempt"
    );
    let paused: Vec<_> = audit.iter().filter(|e| e.action == "auth.paused").collect();
    assert_eq!(paused.len(), 1, "one entry when the pause began");
    assert_eq!(paused[0].actor, "user:sup.north1");
    let detail = &paused[0].detail;
    assert_eq!(detail["failures"], 5, "{detail}");
    assert_eq!(detail["key"], "name:sup.north1", "{detail}");
}

#[test]
fn a_second_generation_by_someone_else_opens_its_own_payroll() {
    let o = office();
    let first = o.new_payroll();
    let second = o.new_household_paid_by("T-2,Chikondi,Mhango,1983-02-03,M", "sup.north2");
    assert_ne!(
        first, second,
        "sup.north2's additions do not ride on sup.north1's task"
    );
    let task = o.approval_task(second);
    assert_eq!(task.maker, "user:sup.north2");
    assert!(
        o.decide("sup.north2", task.id, Verdict::Approve, "", true)
            .is_err()
    );
}

/// A field verification proposing `to` for `beneficiary`, merged as a device's upload is.
fn propose(o: &Office, beneficiary: Uuid, to: BeneficiaryStatus) -> Uuid {
    let agent = o.user("agent.n-mz");
    let mut doc = AutoCommit::new();
    Record::Verification(Verification {
        beneficiary_id: beneficiary,
        answers: Default::default(),
        proposed_status: Some(to),
        note: "moved to town".into(),
        verified_at: chrono::Utc::now().fixed_offset(),
    })
    .write_new(&mut doc)
    .unwrap();
    let id = Uuid::now_v7();
    let changes = doc
        .get_changes(&[])
        .iter()
        .map(|c| c.raw_bytes().to_vec())
        .collect();
    let origin = Origin {
        device_id: None,
        scope: agent.scope(),
        home_path: "N/N-MZ".into(),
        actor: "agent:agent.n-mz".into(),
        user_id: Some(agent.id),
        author: "agent.n-mz".into(),
    };
    let dc = DocChanges {
        doc_id: id.as_bytes().to_vec(),
        kind: "verification".into(),
        changes,
        device_seq: 0,
    };
    let result = o
        .store
        .write(|tx| records::push(tx, &origin, records::prepare(vec![dc])))
        .unwrap();
    assert_eq!(
        result[0].outcome,
        DocOutcome::Accepted as i32,
        "{}",
        result[0].reason
    );
    id
}

#[test]
fn a_field_status_proposal_is_applied_only_when_approved() {
    let o = office();
    let b = o
        .store
        .read(|c| {
            let mzuzu = Scope::Area {
                path: "N/N-MZ".into(),
            };
            let active = Some(BeneficiaryStatus::Active);
            registry::list_beneficiaries(c, &mzuzu, None, active, 1, 0)
        })
        .unwrap()[0]
        .id;
    let status = |o: &Office| {
        o.store
            .read(|c| registry::get_beneficiary(c, &Scope::National, b))
            .unwrap()
            .status
    };

    let first = propose(&o, b, BeneficiaryStatus::Suspended);
    let task = o
        .store
        .read(|c| tasks::open_for(c, TaskKind::StatusChange, first))
        .unwrap()
        .unwrap();
    assert_eq!(
        status(&o),
        BeneficiaryStatus::Active,
        "not applied before approval"
    );
    o.decide(
        "sup.north1",
        task.id,
        Verdict::Reject,
        "seen at the market last week",
        false,
    )
    .unwrap();
    assert_eq!(
        status(&o),
        BeneficiaryStatus::Active,
        "not applied after a rejection"
    );

    let second = propose(&o, b, BeneficiaryStatus::Suspended);
    let task = o
        .store
        .read(|c| tasks::open_for(c, TaskKind::StatusChange, second))
        .unwrap()
        .unwrap();
    // The agent who made the proposal cannot decide it (nor can any field agent).
    assert!(
        o.decide("agent.n-mz", task.id, Verdict::Approve, "", false)
            .is_err()
    );
    o.decide("sup.north1", task.id, Verdict::Approve, "", false)
        .unwrap();
    assert_eq!(status(&o), BeneficiaryStatus::Suspended);
    let history = o.store.read(|c| registry::status_history(c, b)).unwrap();
    assert!(history.last().unwrap().reason.contains("moved to town"));
}

#[test]
fn an_office_status_change_waits_for_four_eyes_unless_the_policy_asks_for_none() {
    let o = office();
    let b = o
        .store
        .read(|c| {
            let mzuzu = Scope::Area {
                path: "N/N-MZ".into(),
            };
            let active = Some(BeneficiaryStatus::Active);
            registry::list_beneficiaries(c, &mzuzu, None, active, 1, 0)
        })
        .unwrap()[0]
        .id;
    let status = || {
        o.store
            .read(|c| registry::get_beneficiary(c, &Scope::National, b))
            .unwrap()
            .status
    };
    let sup = o.user("sup.north1");
    let ask = |to, why: &str| {
        o.store
            .write(|tx| registry::request_status_change(tx, &sup, b, to, why))
    };
    let pending = |r: Result<registry::StatusRequest, Error>| match r.unwrap() {
        registry::StatusRequest::Pending(task) => *task,
        other => panic!("applied without approval: {other:?}"),
    };
    // Bad requests are refused at once and open nothing.
    let open_before = o
        .store
        .read(|c| tasks::count_pending(c, &Scope::National))
        .unwrap();
    assert!(matches!(
        ask(BeneficiaryStatus::Suspended, " "),
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        ask(BeneficiaryStatus::Enrolled, "x"),
        Err(Error::Transition(_))
    ));
    let south = o.user("sup.south1");
    let err = o
        .store
        .write(|tx| {
            registry::request_status_change(tx, &south, b, BeneficiaryStatus::Suspended, "x")
        })
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert_eq!(
        o.store
            .read(|c| tasks::count_pending(c, &Scope::National))
            .unwrap(),
        open_before
    );

    let task = pending(ask(BeneficiaryStatus::Suspended, "moved away"));
    assert_eq!(task.kind, TaskKind::OfficeStatusChange);
    assert_eq!(task.maker, "user:sup.north1");
    assert_eq!(
        status(),
        BeneficiaryStatus::Active,
        "not applied before approval"
    );
    let err = o
        .decide("sup.north1", task.id, Verdict::Approve, "", false)
        .unwrap_err();
    assert!(
        matches!(err, Error::Forbidden(ref m) if m.contains("four eyes")),
        "{err}"
    );
    o.decide(
        "sup.north2",
        task.id,
        Verdict::Reject,
        "seen at home yesterday",
        false,
    )
    .unwrap();
    assert_eq!(
        status(),
        BeneficiaryStatus::Active,
        "not applied after a rejection"
    );

    let task = pending(ask(BeneficiaryStatus::Suspended, "moved away"));
    o.decide("sup.north2", task.id, Verdict::Approve, "", false)
        .unwrap();
    assert_eq!(status(), BeneficiaryStatus::Suspended);
    let history = o.store.read(|c| registry::status_history(c, b)).unwrap();
    let last = history.last().unwrap();
    assert_eq!(last.by, "user:sup.north1", "the history names who asked");
    assert_eq!(last.reason, "moved away (approved by user:sup.north2)");

    // A policy may drop the approval for this kind only; then the change applies at once.
    let no_approval = outpost_server::tasks::policy::Policy {
        tiers: vec![],
        second_factor: false,
        approvers_not_created_by_maker: false,
    };
    let err = o
        .store
        .write(|tx| tasks::set_policy(tx, "test", TaskKind::StatusChange, &no_approval))
        .unwrap_err();
    assert!(matches!(err, Error::Invalid(_)), "{err}");
    o.store
        .write(|tx| tasks::set_policy(tx, "test", TaskKind::OfficeStatusChange, &no_approval))
        .unwrap();
    match ask(BeneficiaryStatus::Active, "back home").unwrap() {
        registry::StatusRequest::Applied(now) => assert_eq!(now.status, BeneficiaryStatus::Active),
        other => panic!("{other:?}"),
    }
    assert_eq!(status(), BeneficiaryStatus::Active);

    // The demo's own status changes went through the same tasks.
    let demo_changes = o
        .store
        .read(|c| {
            let kind = Some(TaskKind::OfficeStatusChange);
            tasks::list(c, &Scope::National, TaskStatus::Approved, kind, u32::MAX)
        })
        .unwrap()
        .iter()
        .filter(|t| !t.summary.ends_with("moved away"))
        .count();
    assert!(demo_changes > 0);
}

fn approved_north_payroll(o: &Office) -> Uuid {
    o.store
        .read(|c| {
            payroll::list_payrolls(
                c,
                &Scope::National,
                Some("CT-HH"),
                None,
                Some(PayrollStatus::Approved),
            )
        })
        .unwrap()
        .into_iter()
        .filter(|p| p.location.starts_with("N-"))
        .max_by_key(|p| p.entitlements)
        .unwrap()
        .id
}

#[test]
fn float_resolutions_and_sign_off() {
    let o = office();
    let p = approved_north_payroll(&o);
    let sup = o.user("sup.north1");
    let report = |o: &Office| {
        o.store
            .read(|c| rec::reconcile_payroll(c, &Scope::National, p))
            .unwrap()
    };
    assert!(
        report(&o)
            .report
            .lines
            .iter()
            .all(|l| l.status == LineStatus::Unpaid)
    );

    // Cash issued and never paid out nor returned does not add up.
    o.store
        .write(|tx| rec::record_float(tx, &sup, p, "agent.n-mz", "MWK", 50_000, "float"))
        .unwrap();
    let err = o
        .store
        .write(|tx| rec::record_float(tx, &sup, p, "agent.n-mz", "USD", 5, ""))
        .unwrap_err();
    assert!(err.to_string().contains("pays in MWK"), "{err}");
    for slip in [outpost_proto::MAX_PAYMENT_MINOR + 1, i64::MIN] {
        let err = o
            .store
            .write(|tx| rec::record_float(tx, &sup, p, "agent.n-mz", "MWK", slip, ""))
            .unwrap_err();
        assert!(
            err.to_string().contains("beyond any plausible amount"),
            "{err}"
        );
    }
    let r = report(&o);
    let float = r
        .report
        .exceptions
        .iter()
        .find(|e| e.kind == ExceptionKind::FloatMismatch)
        .unwrap()
        .key
        .clone();
    assert_eq!(r.open_exceptions(), 1);

    let err = o
        .store
        .write(|tx| rec::request_sign_off(tx, &sup, p))
        .unwrap_err();
    assert!(err.to_string().contains("still open"), "{err}");
    assert!(
        o.store
            .write(|tx| rec::resolve(tx, &sup, p, &float, " "))
            .is_err()
    );
    assert!(matches!(
        o.store
            .write(|tx| rec::resolve(tx, &sup, p, "PAID_TWICE:nothing", "x")),
        Err(Error::NotFound { .. })
    ));
    o.store
        .write(|tx| rec::resolve(tx, &sup, p, &float, "cash counted back at the office"))
        .unwrap();
    assert_eq!(report(&o).open_exceptions(), 0);
    // More cash issued changes the exception: the old resolution no longer covers it.
    o.store
        .write(|tx| rec::record_float(tx, &sup, p, "agent.n-mz", "MWK", 1_000, "top-up"))
        .unwrap();
    assert_eq!(report(&o).open_exceptions(), 1);
    o.store
        .write(|tx| rec::resolve(tx, &sup, p, &float, "both handed back on the 30th"))
        .unwrap();
    // Another region's agent cannot be booked against this payroll.
    let err = o
        .store
        .write(|tx| rec::record_float(tx, &sup, p, "agent.s-ck", "MWK", 5, ""))
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");

    let task = o
        .store
        .write(|tx| rec::request_sign_off(tx, &sup, p))
        .unwrap();
    assert!(
        o.decide("sup.north1", task, Verdict::Approve, "", true)
            .is_err(),
        "the maker cannot sign off"
    );
    // Something new between the request and the sign-off stops it.
    o.store
        .write(|tx| rec::record_float(tx, &sup, p, "agent.n-mz", "MWK", 2_000, "late top-up"))
        .unwrap();
    let err = o
        .decide("sup.north2", task, Verdict::Approve, "", true)
        .unwrap_err();
    assert!(
        err.to_string().contains("since sign-off was requested"),
        "{err}"
    );
    o.store
        .write(|tx| rec::resolve(tx, &sup, p, &float, "all cash back"))
        .unwrap();
    o.decide("sup.north2", task, Verdict::Approve, "", true)
        .unwrap();
    assert_eq!(o.payroll_status(p), PayrollStatus::Closed);
    let err = o
        .store
        .write(|tx| rec::record_float(tx, &sup, p, "agent.n-mz", "MWK", 5, ""))
        .unwrap_err();
    assert!(err.to_string().contains("signed off"), "{err}");
    assert!(report(&o).payroll.status == PayrollStatus::Closed);
}

#[test]
fn an_openimis_sheet_round_trips_with_row_errors_and_a_statement_is_all_or_nothing() {
    let o = office();
    let p = approved_north_payroll(&o);
    let sup = o.user("sup.north1");
    let rows = o
        .store
        .read(|c| rec::openimis_rows(c, &Scope::National, p))
        .unwrap();
    assert!(rows.len() >= 3);
    assert!(
        rows.iter()
            .all(|r| r.status == "APPROVE_FOR_PAYMENT" && r.paid == Some(false))
    );

    // Row 1 paid with a receipt; row 2 with the wrong status; an unknown code.
    let mut edited = rows.clone();
    edited[0].paid = Some(true);
    edited[0].receipt = "MOMO-1".into();
    edited[1].paid = Some(true);
    edited[1].receipt = "MOMO-2".into();
    edited[1].status = "RECONCILED".into();
    edited[2].code = Uuid::now_v7().to_string();
    edited[2].paid = Some(true);
    edited[2].receipt = "MOMO-3".into();
    let sheet = sheets::openimis_csv(&edited);
    let outcome = o
        .store
        .write(|tx| rec::import_openimis(tx, &sup, p, &sheet))
        .unwrap();
    assert_eq!(outcome.imported, 1);
    assert_eq!(outcome.errors.len(), 2, "{:?}", outcome.errors);
    let again = o
        .store
        .write(|tx| rec::import_openimis(tx, &sup, p, &sheet))
        .unwrap();
    assert_eq!(
        again.imported, 0,
        "a sheet imported twice pays nothing twice"
    );
    let r = o
        .store
        .read(|c| rec::reconcile_payroll(c, &Scope::National, p))
        .unwrap();
    let first: Uuid = rows[0].code.parse().unwrap();
    let line = r
        .report
        .lines
        .iter()
        .find(|l| l.entitlement == first)
        .unwrap();
    assert_eq!((line.status, line.payouts), (LineStatus::Paid, 1));

    // A statement with one bad line is refused whole; the good one then imports.
    let mapping = sheets::ProviderMapping {
        reference: "Txn".into(),
        amount: "Amount".into(),
        our_reference: Some("Ref".into()),
        beneficiary: None,
        currency: None,
    };
    let second = &rows[1];
    let bad = format!(
        "Txn,Amount,Ref\nT1,{},{}\nT2,abc,{}\n",
        second.amount, second.code, second.code
    );
    let refused = o
        .store
        .write(|tx| rec::import_statement(tx, &sup, p, "mpamba", &mapping, bad.as_bytes()))
        .unwrap();
    assert_eq!((refused.imported, refused.errors.len()), (0, 1));
    let good = format!(
        "Txn,Amount,Ref\nT1,{},{}\nT9,10.00,nobody\n",
        second.amount, second.code
    );
    let ok = o
        .store
        .write(|tx| rec::import_statement(tx, &sup, p, "mpamba", &mapping, good.as_bytes()))
        .unwrap();
    assert_eq!(ok.imported, 2);
    assert!(
        o.store
            .read(|c| rec::provider_mapping(c, "MPAMBA"))
            .unwrap()
            .is_some()
    );
    let r = o
        .store
        .read(|c| rec::reconcile_payroll(c, &Scope::National, p))
        .unwrap();
    assert!(
        r.report
            .exceptions
            .iter()
            .any(|e| e.kind == ExceptionKind::ExternalUnmatched)
    );
    let second_id: Uuid = second.code.parse().unwrap();
    assert_eq!(
        r.report
            .lines
            .iter()
            .find(|l| l.entitlement == second_id)
            .unwrap()
            .status,
        LineStatus::Paid
    );
}

#[test]
fn a_grievance_closed_at_the_office_and_reopened_offline_keeps_the_comments_and_stays_closed() {
    use outpost_proto::records::{self as r, Comment, Grievance, GrievanceStatus};
    let o = office();
    let agent = o.user("agent.n-mz");
    let sup = o.user("sup.north1");
    let origin = Origin {
        device_id: None,
        scope: agent.scope(),
        home_path: "N/N-MZ".into(),
        actor: "agent:agent.n-mz".into(),
        user_id: Some(agent.id),
        author: "agent.n-mz".into(),
    };
    let send = |changes: Vec<Vec<u8>>, id: Uuid| {
        let dc = DocChanges {
            doc_id: id.as_bytes().to_vec(),
            kind: "grievance".into(),
            changes,
            device_seq: 0,
        };
        o.store
            .write(|tx| records::push(tx, &origin, records::prepare(vec![dc])))
            .unwrap()
    };
    let mut device = AutoCommit::new();
    Record::Grievance(Grievance {
        beneficiary_id: None,
        category: "PAYMENT_NOT_RECEIVED".into(),
        description: "no cash in October".into(),
        status: GrievanceStatus::Open,
        assignee: None,
        comments: vec![],
        created_at: chrono::Utc::now().fixed_offset(),
    })
    .write_new(&mut device)
    .unwrap();
    let id = Uuid::now_v7();
    let sent = device.get_heads();
    send(
        device
            .get_changes(&[])
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect(),
        id,
    );

    // The office resolves and closes it...
    for to in [GrievanceStatus::Resolved, GrievanceStatus::Closed] {
        o.store
            .write(|tx| {
                records::office_edit(tx, &sup, id, |d| r::set_grievance_status(d, to, None))
            })
            .unwrap();
    }
    // ...while the phone, offline, comments and moves it along and back to open.
    r::add_comment(
        &mut device,
        &Comment {
            author: "agent.n-mz".into(),
            at: chrono::Utc::now().fixed_offset(),
            text: "still not paid".into(),
        },
    )
    .unwrap();
    for to in [
        GrievanceStatus::InProgress,
        GrievanceStatus::Resolved,
        GrievanceStatus::Open,
    ] {
        r::set_grievance_status(&mut device, to, None).unwrap();
    }
    let result = send(
        device
            .get_changes(&sent)
            .iter()
            .map(|c| c.raw_bytes().to_vec())
            .collect(),
        id,
    );
    assert_eq!(
        result[0].outcome,
        DocOutcome::Accepted as i32,
        "{}",
        result[0].reason
    );

    let g = o
        .store
        .read(|c| records::get_grievance(c, &Scope::National, id))
        .unwrap();
    assert_eq!(
        g.status.as_str(),
        "CLOSED",
        "a closed grievance stays closed"
    );
    assert!(
        g.comments.iter().any(|c| c["text"] == "still not paid"),
        "the comment is kept"
    );
    let conflicts = o
        .store
        .read(|c| outpost_server::store::audit::list(c, Some(&id.to_string()), 20))
        .unwrap();
    assert!(
        conflicts
            .iter()
            .any(|e| e.action == "grievance.status_conflict")
    );
    // Every change is kept (the report, two office moves, the phone's four) plus the server's
    // correction, logged as the office's so every device receives it.
    let mut logged = 0;
    let mut cursor = 0;
    loop {
        // What a device that made none of them downloads.
        let reply = o
            .store
            .read(|c| records::changes_since(c, Uuid::nil(), "N", cursor, 0))
            .unwrap();
        logged += reply
            .docs
            .iter()
            .filter(|d| d.doc_id == id.as_bytes())
            .map(|d| d.changes.len())
            .sum::<usize>();
        cursor = reply.next_cursor;
        if !reply.more {
            break;
        }
    }
    assert_eq!(logged, 8);
}

#[test]
fn a_cached_report_lasts_until_something_it_reads_changes() {
    let o = office();
    let p = approved_north_payroll(&o);
    let sup = o.user("sup.north1");
    let cache = outpost_server::reconciliation::cache::ReportCache::default();
    let first = o.store.read(|c| cache.get(c, &Scope::National, p)).unwrap();
    // A log-in is audited, but reconciliation reads nothing of it.
    let _ = sessions::log_in(&o.store, "sup.north2", demo::DEMO_PASSWORD, ADDRESS).unwrap();
    let again = o.store.read(|c| cache.get(c, &Scope::National, p)).unwrap();
    assert!(
        std::sync::Arc::ptr_eq(&first, &again),
        "kept across a log-in"
    );
    // Cash issued to an agent is read: the report is computed again.
    o.store
        .write(|tx| rec::record_float(tx, &sup, p, "agent.n-mz", "MWK", 100, "float"))
        .unwrap();
    let fresh = o.store.read(|c| cache.get(c, &Scope::National, p)).unwrap();
    assert!(!std::sync::Arc::ptr_eq(&first, &fresh));
    assert_eq!(fresh.open_exceptions(), first.open_exceptions() + 1);
}

/// A demo served again in a later month opens that month's cycle, paid the same way; a
/// registry that is not a demo is never touched.
#[test]
fn a_demo_served_in_a_later_month_opens_that_months_cycle_and_nothing_else_changes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path(), "registry");
    // Made on the last day of last month, served again today (days of the test's own: the
    // calendar guard runs this a year ahead and months back).
    let today = demo::today();
    let this_month = demo::cycle_of(today);
    let made_on = this_month.start_date - chrono::Days::new(1);
    let last_month = demo::cycle_of(made_on);
    demo::load(
        &store,
        &DemoOptions {
            households: 20,
            seed: 3,
            as_of: made_on,
        },
    )
    .unwrap();
    let due_in = |code: &str| -> usize {
        store
            .read(|c| {
                let mut due = 0;
                // The plans that pay every ACTIVE household whatever its members' ages
                // (the child grant's children may turn 18 between the two months).
                for plan in ["CT-HH", "FOOD-KIT"] {
                    let approved = Some(PayrollStatus::Approved);
                    let s = &Scope::National;
                    for p in payroll::list_payrolls(c, s, Some(plan), Some(code), approved)? {
                        due += payroll::entitlements(c, s, p.id, u32::MAX, 0)?
                            .iter()
                            .filter(|e| e.status == EntitlementStatus::Due)
                            .count();
                    }
                }
                Ok(due)
            })
            .unwrap()
    };
    let earlier = due_in(&last_month.code);
    assert!(earlier > 0);
    assert_eq!(
        demo::bring_current(&store, last_month.start_date).unwrap(),
        None,
        "the month has its cycle"
    );
    assert_eq!(
        demo::bring_current(&store, today).unwrap().as_deref(),
        Some(this_month.code.as_str())
    );
    assert_eq!(
        due_in(&this_month.code),
        earlier,
        "the same households are paid"
    );
    assert_eq!(
        due_in(&last_month.code),
        earlier,
        "the earlier cycle is kept"
    );
    assert_eq!(demo::bring_current(&store, today).unwrap(), None);
    let chain = store.read(outpost_server::store::audit::verify).unwrap();
    assert!(chain.is_ok(), "the audit chain holds: {chain:?}");

    // A registry made by people, not by the demo, is left alone.
    let other = open_in(dir.path(), "other");
    other
        .write(|tx| {
            registry::add_location(tx, "user:admin", &Scope::National, &demo::locations()[0])
        })
        .unwrap();
    assert_eq!(demo::bring_current(&other, today).unwrap(), None);
    let cycles = other.read(|c| c.row_count("payment_cycles")).unwrap();
    assert_eq!(cycles, 0);
}

/// The totals kept on a payroll's row (lines, amount, lines awaiting their own approval) are
/// what its entitlements add up to, also when its maker generates into it a second time; and
/// each line above the single-payment limit waits in a task of its own.
#[test]
fn kept_payroll_totals_match_its_lines_across_generations() {
    let o = office();
    let generate = |rows: &str| o.import_and_generate(rows, "sup.north1").payrolls[0];
    // 15,000.00 MWK each; with a disability and no housing 22,500.00, above the 20,000.00 limit.
    let first = generate(
        "K-1,Kettie,Banda,1980-01-02,F,N-MZ-01,HH-K-1,HEAD,1,no,OWNED\n\
         K-2,Kamuzu,Banda,1979-03-04,M,N-MZ-01,HH-K-2,HEAD,1,yes,NONE\n",
    );
    let second = generate("K-3,Kondwani,Phiri,1985-05-06,M,N-MZ-01,HH-K-3,HEAD,1,yes,NONE\n");
    assert_eq!(
        first, second,
        "the maker's pending payroll takes the new line"
    );
    let kept = o
        .store
        .read(|c| {
            let p = payroll::get_payroll(c, &Scope::National, first)?;
            Ok((p.entitlements, p.total_minor, p.awaiting_approval))
        })
        .unwrap();
    let lines = o.entitlements(first);
    let counted = (
        lines.len() as i64,
        lines.iter().map(|e| e.amount_minor).sum::<i64>(),
        lines
            .iter()
            .filter(|e| e.status == EntitlementStatus::AwaitingApproval)
            .count() as i64,
    );
    let tasks = o.line_approvals(first).len();
    assert_eq!(kept, counted);
    assert_eq!(kept, (3, 1_500_000 + 2 * 2_250_000, 2));
    assert_eq!(tasks, 2, "one approval task per line above the limit");
}

/// A demo asked for a day to come is refused plainly, and nothing is written.
#[test]
fn a_demo_as_of_a_day_to_come_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path(), "registry");
    let later = demo::today() + chrono::Days::new(400);
    let refused = demo::load(
        &store,
        &DemoOptions {
            households: 5,
            seed: 1,
            as_of: later,
        },
    )
    .expect_err("a day to come");
    assert!(
        matches!(&refused, Error::Invalid(m) if m.contains("as of today or an earlier day")),
        "{refused}"
    );
    assert!(demo::is_empty(&store).unwrap());
}

/// A right password leaves the count of wrong codes alone, the approval form's code counts
/// too, and the account's pause after five wrong codes refuses its existing token.
#[test]
fn wrong_codes_are_counted_apart_from_passwords_and_pause_the_account_and_its_tokens() {
    let o = office();
    let u = o.user("sup.north2");
    let (token, _) = o.store.write(|tx| users::issue_token(tx, &u)).unwrap();
    let right = sessions::current_code(sessions::DEMO_TOTP_SECRET).unwrap();
    let wrong = if right == "000000" {
        "111111"
    } else {
        "000000"
    };
    for _ in 0..4 {
        let opened =
            sessions::log_in(&o.store, "sup.north2", demo::DEMO_PASSWORD, ADDRESS).unwrap();
        assert!(matches!(opened, sessions::LogIn::Opened(_)), "{opened:?}");
        assert_eq!(
            o.store
                .write(|tx| sessions::check_code(tx, &u, wrong))
                .unwrap(),
            sessions::Code::Wrong
        );
    }
    // The right password again does not reset the count: the fifth wrong code, typed on the
    // approval form, pauses the account.
    let opened = sessions::log_in(&o.store, "sup.north2", demo::DEMO_PASSWORD, ADDRESS).unwrap();
    assert!(matches!(opened, sessions::LogIn::Opened(_)), "{opened:?}");
    let paused = sessions::require_code(&o.store, &u, wrong).unwrap_err();
    assert!(paused.to_string().contains("paused"), "{paused}");
    let err = o
        .store
        .read(|c| users::user_for_token(c, &token))
        .unwrap_err();
    assert!(matches!(err, Error::Unauthenticated), "{err}");
    let again = sessions::log_in(&o.store, "sup.north2", demo::DEMO_PASSWORD, ADDRESS).unwrap();
    assert!(matches!(again, sessions::LogIn::Paused(_)), "{again:?}");
    let token_err = sessions::api_token(
        &o.store,
        "sup.north2",
        demo::DEMO_PASSWORD,
        Some(&right),
        ADDRESS,
    )
    .unwrap_err();
    assert!(token_err.to_string().contains("paused"), "{token_err}");
}

/// Wrong passwords for a name pause only new log-ins under that name: a session and a token
/// the account already has keep working. Unknown names pause alike, with the same message,
/// and one address that fails too often is paused for every name.
#[test]
fn a_paused_name_keeps_its_sessions_unknown_names_pause_alike_and_addresses_are_throttled() {
    let o = office();
    let codes = outpost_test_kit::FreshCodes::default();
    let u = o.user("sup.north1");
    let sessions::LogIn::Opened(cookie) =
        sessions::log_in(&o.store, "sup.north1", demo::DEMO_PASSWORD, ADDRESS).unwrap()
    else {
        panic!("the right password opens a session");
    };
    let half = o
        .store
        .read(|c| sessions::session(c, &cookie))
        .unwrap()
        .unwrap();
    let (code, wait) = codes.next("sup.north1", |at| {
        sessions::code_at(sessions::DEMO_TOTP_SECRET, at).unwrap()
    });
    std::thread::sleep(wait);
    let outcome = o
        .store
        .write(|tx| sessions::second_factor(tx, &half, &code))
        .unwrap();
    assert_eq!(outcome, sessions::Code::Accepted);
    let (token, _) = o.store.write(|tx| users::issue_token(tx, &u)).unwrap();

    let mut answers = Vec::new();
    for name in ["sup.north1", "nobody.here"] {
        for i in 0..sessions::MAX_FAILURES {
            // From addresses of their own, so only the name's count is reached.
            let address = format!("198.51.100.{i}");
            answers.push(sessions::log_in(&o.store, name, "guess", &address).unwrap());
        }
        let r = sessions::log_in(&o.store, name, "anything", "198.51.100.99").unwrap();
        assert!(matches!(r, sessions::LogIn::Paused(_)), "{name}: {r:?}");
    }
    let shape = |r: &sessions::LogIn| match r {
        sessions::LogIn::Paused(_) => "paused",
        sessions::LogIn::Refused => "refused",
        sessions::LogIn::Opened(_) => "opened",
    };
    let (known, unknown) = answers.split_at(answers.len() / 2);
    assert_eq!(
        known.iter().map(shape).collect::<Vec<_>>(),
        unknown.iter().map(shape).collect::<Vec<_>>(),
        "known and unknown names answer alike"
    );
    assert_eq!(shape(known.last().unwrap()), "paused");
    let still = o
        .store
        .read(|c| sessions::session(c, &cookie))
        .unwrap()
        .expect("the session survives someone else's failures");
    assert_eq!(still.stage, sessions::Stage::Full);
    assert_eq!(
        o.store
            .read(|c| users::user_for_token(c, &token))
            .unwrap()
            .username,
        "sup.north1"
    );

    // One address guessing many names is paused for all of them, the right one included.
    for i in 0..sessions::ADDRESS_MAX_FAILURES {
        let _ = sessions::log_in(&o.store, &format!("guess{i}"), "guess", "203.0.113.7").unwrap();
    }
    let r = sessions::log_in(&o.store, "sup.south1", demo::DEMO_PASSWORD, "203.0.113.7").unwrap();
    assert!(matches!(r, sessions::LogIn::Paused(_)), "{r:?}");
    let r = sessions::log_in(&o.store, "sup.south1", demo::DEMO_PASSWORD, ADDRESS).unwrap();
    assert!(matches!(r, sessions::LogIn::Opened(_)), "{r:?}");
}

/// The slow password check (argon2) runs while another request holds the writer: only the
/// small write that records the outcome waits for it.
///
/// The steps are those both log-in paths run (`api::check_password` for the HTTP handlers,
/// `sessions::check_password` for the store's callers): [`sessions::Stored::read`] on a
/// reader, [`sessions::Stored::verify`] (argon2) with nothing held, then
/// [`sessions::Verified::record`] in a write. The test holds the writer throughout the first
/// two: the verification finishes while it is held, the recording cannot (it needs the
/// writer), and once the writer is free the recording opens the session.
#[test]
fn a_password_is_checked_without_the_writer() {
    use std::sync::mpsc::RecvTimeoutError;
    enum Step {
        Verified,
        Recorded(outpost_server::Result<sessions::LogIn>),
    }
    let o = office();
    let store = std::sync::Arc::new(o.store);
    let (step, steps) = std::sync::mpsc::channel();
    // A deadlock guard, not a measure: each step either comes or the test fails.
    let guard = std::time::Duration::from_secs(120);
    let during = store
        .write(|_tx| {
            let s = store.clone();
            std::thread::spawn(move || {
                let verified = sessions::Stored::read(&s, "sup.north1")
                    .map(|stored| stored.verify(demo::DEMO_PASSWORD));
                let verified = match verified {
                    Ok(v) => v,
                    Err(e) => return drop(step.send(Step::Recorded(Err(e)))),
                };
                let _ = step.send(Step::Verified);
                let recorded = s
                    .write(|tx| verified.record(tx, ADDRESS, sessions::open_session))
                    .map(sessions::LogIn::from);
                let _ = step.send(Step::Recorded(recorded));
            });
            let verified = matches!(steps.recv_timeout(guard), Ok(Step::Verified));
            // The recording needs the writer this closure holds, so it cannot have happened.
            let not_recorded = matches!(
                steps.recv_timeout(std::time::Duration::ZERO),
                Err(RecvTimeoutError::Timeout)
            );
            Ok((verified, not_recorded))
        })
        .unwrap();
    assert_eq!(
        during,
        (true, true),
        "argon2 verified the password while the writer was held; the recording waited"
    );
    match steps.recv_timeout(guard) {
        Ok(Step::Recorded(Ok(sessions::LogIn::Opened(token)))) => {
            let live = store.read(|c| sessions::session(c, &token)).unwrap();
            assert!(
                live.is_some(),
                "the session was recorded once the writer was free"
            );
        }
        Ok(Step::Recorded(other)) => panic!("not opened: {other:?}"),
        Ok(Step::Verified) => panic!("verified twice"),
        Err(e) => panic!("the recording never came: {e}"),
    }
}

/// An administrator's reset ends every token and session of the account, takes effect on the
/// password and the authenticator app, and is audited; a supervisor cannot reset, and an
/// administrator only inside their area.
#[test]
fn a_reset_ends_the_accounts_tokens_and_sessions() {
    let o = office();
    let u = o.user("sup.south1");
    let (token, _) = o.store.write(|tx| users::issue_token(tx, &u)).unwrap();
    let sessions::LogIn::Opened(cookie) =
        sessions::log_in(&o.store, "sup.south1", demo::DEMO_PASSWORD, ADDRESS).unwrap()
    else {
        panic!("opened");
    };
    let reset = users::Reset {
        password: Some("a brand new password".into()),
        totp: true,
    };
    let hash = reset.prepare().unwrap();
    o.store
        .write(|tx| {
            users::reset_login(
                tx,
                "user:admin",
                &Scope::National,
                "sup.south1",
                &reset,
                hash.as_deref(),
            )
        })
        .unwrap();
    assert!(o.store.read(|c| users::user_for_token(c, &token)).is_err());
    assert!(
        o.store
            .read(|c| sessions::session(c, &cookie))
            .unwrap()
            .is_none()
    );
    let old = sessions::log_in(&o.store, "sup.south1", demo::DEMO_PASSWORD, ADDRESS).unwrap();
    assert_eq!(old, sessions::LogIn::Refused);
    let err = sessions::api_token(
        &o.store,
        "sup.south1",
        "a brand new password",
        Some("123456"),
        ADDRESS,
    )
    .unwrap_err();
    assert!(err.to_string().contains("authenticator app"), "{err}");
    let audit = o
        .store
        .read(|c| outpost_server::store::audit::list(c, None, 20))
        .unwrap();
    assert!(audit.iter().any(|e| e.action == "user.reset_login"));
    // Outside the caller's area the account is not found; nothing to reset is refused.
    let north = o.user("sup.north1").scope();
    let err = o
        .store
        .write(|tx| users::reset_login(tx, "user:x", &north, "sup.south1", &reset, None))
        .unwrap_err();
    assert!(matches!(err, Error::NotFound { .. }), "{err}");
    assert!(users::Reset::default().prepare().is_err());
}

//! Four eyes: the rules of a task's decisions, as pure functions of the policy and the
//! decisions so far. The engine (`tasks::store`) loads and saves; these say who may decide and
//! when a task is done.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

outpost_proto::named_enum!(
    /// The changes that wait for approval before they take effect.
    TaskKind, "task kind" {
        /// A generated payroll, before anything reaches the field.
        PayrollApproval = "PAYROLL_APPROVAL",
        /// Closing a reconciled payroll.
        PayrollSignOff = "PAYROLL_SIGN_OFF",
        /// A beneficiary status proposed by a field eligibility verification.
        StatusChange = "STATUS_CHANGE",
        /// A phone or address from the field.
        ContactUpdate = "CONTACT_UPDATE",
        /// Days of cash-for-work, before they feed a payroll.
        Timesheet = "TIMESHEET",
        /// An entitlement above its plan's single-payment limit (openIMIS's
        /// `limit_per_single_transaction`), before it may be paid.
        EntitlementApproval = "ENTITLEMENT_APPROVAL",
        /// A beneficiary status changed at the office (API), like a field proposal.
        OfficeStatusChange = "OFFICE_STATUS_CHANGE",
    }
);

impl TaskKind {
    /// Kinds whose policy may ask for no approval at all (no tiers): the change then applies
    /// at once. Money and field reports always wait for someone.
    pub fn may_skip_approval(self) -> bool {
        self == TaskKind::OfficeStatusChange
    }
}

outpost_proto::named_enum!(
    /// Where a task stands: waiting for decisions, or done one way or the other.
    TaskStatus, "task status" {
        Pending = "PENDING",
        Approved = "APPROVED",
        Rejected = "REJECTED",
        /// Its subject went away (a timesheet voided in the field): nothing is left to decide.
        Withdrawn = "WITHDRAWN",
    }
);

/// The level of an approver's area, which ordered tiers ask for ("district, then region").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Level {
    Village,
    District,
    Region,
    National,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Completion {
    /// One approval.
    Any,
    /// Every eligible approver of the tier.
    All,
    /// N distinct approvers.
    Threshold(u32),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Approvers whose area is at this level; `None`: any approver whose area covers the task.
    pub level: Option<Level>,
    pub completion: Completion,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Completed in order: a tier opens once the one before it is complete.
    pub tiers: Vec<Tier>,
    /// Each approval is confirmed with a TOTP code.
    pub second_factor: bool,
    /// No approval from an account in the maker's line of account creation (`users.created_by`,
    /// either way and through accounts in between): otherwise an administrator could make
    /// accounts in their area and approve their own change through them, or make the change
    /// as an account they made and approve it themselves. Rejections stay open to everyone.
    /// Policies stored before it read as `false`.
    #[serde(default)]
    pub approvers_not_created_by_maker: bool,
}

impl Policy {
    /// [`Policy::check`] for `kind`: no tiers (apply without approval) is allowed only where
    /// [`TaskKind::may_skip_approval`].
    pub fn check_for(&self, kind: TaskKind) -> Result<(), String> {
        if self.tiers.is_empty() && kind.may_skip_approval() {
            return Ok(());
        }
        self.check()
    }

    /// Refuses policies that could never complete or that would let one person decide alone
    /// a threshold of nobody.
    pub fn check(&self) -> Result<(), String> {
        if self.tiers.is_empty() {
            return Err("a policy needs at least one tier".into());
        }
        for t in &self.tiers {
            if let Completion::Threshold(n) = t.completion
                && !(1..=20).contains(&n)
            {
                return Err(format!("a threshold is 1 to 20 approvers, not {n}"));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    Approve,
    Reject,
}

/// A decision already taken on a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub by: Uuid,
    pub tier: usize,
    pub verdict: Verdict,
}

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// Waiting on `tier` (0-based), which has `approvals` of the `needed`.
    Pending {
        tier: usize,
        approvals: u32,
        needed: u32,
    },
    Approved,
    Rejected,
}

/// Why someone may not decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("you made this change, so someone else must approve it (four eyes)")]
    Maker,
    #[error(
        "your account was created by the maker of this change, or the maker's by you \
         (directly or through accounts in between), so it cannot approve it (the policy asks \
         for approvers outside the maker's line of account creation)"
    )]
    CreatedByMaker,
    #[error("you have already decided on this task")]
    AlreadyDecided,
    #[error("this task is already {0}")]
    Closed(&'static str),
    #[error("this step needs an approver at {0} level")]
    WrongTier(&'static str),
    #[error("approving this needs the code from your authenticator app")]
    SecondFactor,
    #[error("a rejection needs a reason")]
    NoReason,
}

/// How many approvals `tier` needs, given how many people may approve at it.
fn needed(tier: &Tier, eligible: u32) -> u32 {
    match tier.completion {
        Completion::Any => 1,
        // Nobody eligible: the tier cannot complete (rather than completing with nobody).
        Completion::All => eligible.max(1),
        Completion::Threshold(n) => n,
    }
}

/// The task's state. `eligible[t]` is how many people (not the maker) may approve at tier `t`.
/// One rejection rejects: four eyes means any checker can stop a change.
pub fn outcome(policy: &Policy, decisions: &[Decision], eligible: &[u32]) -> Outcome {
    if decisions.iter().any(|d| d.verdict == Verdict::Reject) {
        return Outcome::Rejected;
    }
    for (t, tier) in policy.tiers.iter().enumerate() {
        let approvals = decisions
            .iter()
            .filter(|d| d.tier == t && d.verdict == Verdict::Approve)
            .count() as u32;
        let needed = needed(tier, eligible.get(t).copied().unwrap_or(0));
        if approvals < needed {
            return Outcome::Pending {
                tier: t,
                approvals,
                needed,
            };
        }
    }
    Outcome::Approved
}

/// Whether `user` (whose area is at `level`) may take `verdict` now; `in_makers_lineage` says
/// whether the user's account and the maker's were created one through the other
/// (`users.created_by`, either way, any depth), which the store knows and this does not; returns the tier the decision counts for. `second_factor` says whether
/// a valid TOTP code came with it.
#[allow(clippy::too_many_arguments)]
pub fn may_decide(
    policy: &Policy,
    maker: Option<Uuid>,
    decisions: &[Decision],
    eligible: &[u32],
    user: Uuid,
    in_makers_lineage: bool,
    level: Level,
    verdict: Verdict,
    second_factor: bool,
    reason: &str,
) -> Result<usize, RuleError> {
    let tier = match outcome(policy, decisions, eligible) {
        Outcome::Approved => return Err(RuleError::Closed("approved")),
        Outcome::Rejected => return Err(RuleError::Closed("rejected")),
        Outcome::Pending { tier, .. } => tier,
    };
    if maker == Some(user) {
        return Err(RuleError::Maker);
    }
    if policy.approvers_not_created_by_maker
        && verdict == Verdict::Approve
        && maker.is_some()
        && in_makers_lineage
    {
        return Err(RuleError::CreatedByMaker);
    }
    if decisions.iter().any(|d| d.by == user) {
        return Err(RuleError::AlreadyDecided);
    }
    if let Some(wanted) = policy.tiers[tier].level
        && wanted != level
    {
        return Err(RuleError::WrongTier(level_name(wanted)));
    }
    match verdict {
        Verdict::Reject if reason.trim().is_empty() => Err(RuleError::NoReason),
        Verdict::Approve if policy.second_factor && !second_factor => Err(RuleError::SecondFactor),
        _ => Ok(tier),
    }
}

fn level_name(l: Level) -> &'static str {
    match l {
        Level::Village => "village",
        Level::District => "district",
        Level::Region => "region",
        Level::National => "national",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: u64) -> Uuid {
        Uuid::from_u64_pair(1, n)
    }

    fn two_approvers() -> Policy {
        Policy {
            tiers: vec![Tier {
                level: None,
                completion: Completion::Threshold(2),
            }],
            second_factor: true,
            approvers_not_created_by_maker: false,
        }
    }

    fn approve(by: u64, tier: usize) -> Decision {
        Decision {
            by: user(by),
            tier,
            verdict: Verdict::Approve,
        }
    }

    fn decide(
        policy: &Policy,
        decisions: &[Decision],
        eligible: &[u32],
        who: u64,
        level: Level,
        totp: bool,
    ) -> Result<usize, RuleError> {
        may_decide(
            policy,
            Some(user(1)),
            decisions,
            eligible,
            user(who),
            false,
            level,
            Verdict::Approve,
            totp,
            "",
        )
    }

    #[test]
    fn the_maker_cannot_approve() {
        let p = two_approvers();
        assert_eq!(
            decide(&p, &[], &[3], 1, Level::Region, true),
            Err(RuleError::Maker)
        );
    }

    #[test]
    fn two_distinct_approvers_are_needed() {
        let p = two_approvers();
        assert_eq!(decide(&p, &[], &[3], 2, Level::Region, true), Ok(0));
        let one = [approve(2, 0)];
        assert_eq!(
            outcome(&p, &one, &[3]),
            Outcome::Pending {
                tier: 0,
                approvals: 1,
                needed: 2
            }
        );
        assert_eq!(
            decide(&p, &one, &[3], 2, Level::Region, true),
            Err(RuleError::AlreadyDecided)
        );
        assert_eq!(decide(&p, &one, &[3], 3, Level::Region, true), Ok(0));
        let two = [approve(2, 0), approve(3, 0)];
        assert_eq!(outcome(&p, &two, &[3]), Outcome::Approved);
        assert_eq!(
            decide(&p, &two, &[3], 4, Level::Region, true),
            Err(RuleError::Closed("approved"))
        );
    }

    #[test]
    fn approving_money_without_the_second_factor_is_refused() {
        let p = two_approvers();
        assert_eq!(
            decide(&p, &[], &[3], 2, Level::Region, false),
            Err(RuleError::SecondFactor)
        );
        let relaxed = Policy {
            second_factor: false,
            ..p
        };
        assert_eq!(decide(&relaxed, &[], &[3], 2, Level::Region, false), Ok(0));
    }

    #[test]
    fn an_account_the_maker_created_cannot_approve_when_the_policy_says_so() {
        let strict = Policy {
            approvers_not_created_by_maker: true,
            ..two_approvers()
        };
        let by = |p: &Policy, in_makers_lineage: bool, verdict| {
            may_decide(
                p,
                Some(user(1)),
                &[],
                &[3],
                user(2),
                in_makers_lineage,
                Level::Region,
                verdict,
                true,
                "not this one",
            )
        };
        assert_eq!(
            by(&strict, true, Verdict::Approve),
            Err(RuleError::CreatedByMaker)
        );
        // Stopping a change stays open to anyone; accounts outside the maker's line may approve.
        assert_eq!(by(&strict, true, Verdict::Reject), Ok(0));
        assert_eq!(by(&strict, false, Verdict::Approve), Ok(0));
        assert_eq!(by(&two_approvers(), true, Verdict::Approve), Ok(0));
    }

    #[test]
    fn one_rejection_with_a_reason_rejects() {
        let p = two_approvers();
        let no_reason = may_decide(
            &p,
            Some(user(1)),
            &[],
            &[3],
            user(2),
            false,
            Level::Region,
            Verdict::Reject,
            false,
            " ",
        );
        assert_eq!(no_reason, Err(RuleError::NoReason));
        // A rejection needs no second factor: stopping money is always allowed.
        let ok = may_decide(
            &p,
            Some(user(1)),
            &[approve(3, 0)],
            &[3],
            user(2),
            false,
            Level::Region,
            Verdict::Reject,
            false,
            "wrong cycle",
        );
        assert_eq!(ok, Ok(0));
        let rejected = [
            approve(3, 0),
            Decision {
                by: user(2),
                tier: 0,
                verdict: Verdict::Reject,
            },
        ];
        assert_eq!(outcome(&p, &rejected, &[3]), Outcome::Rejected);
    }

    #[test]
    fn all_of_a_group_needs_everyone_eligible() {
        let p = Policy {
            tiers: vec![Tier {
                level: None,
                completion: Completion::All,
            }],
            second_factor: false,
            approvers_not_created_by_maker: false,
        };
        assert_eq!(
            outcome(&p, &[approve(2, 0), approve(3, 0)], &[3]),
            Outcome::Pending {
                tier: 0,
                approvals: 2,
                needed: 3
            }
        );
        assert_eq!(
            outcome(&p, &[approve(2, 0), approve(3, 0), approve(4, 0)], &[3]),
            Outcome::Approved
        );
        // A group of nobody never completes by itself.
        assert!(matches!(
            outcome(&p, &[], &[0]),
            Outcome::Pending { needed: 1, .. }
        ));
    }

    #[test]
    fn ordered_tiers_district_then_region() {
        let p = Policy {
            tiers: vec![
                Tier {
                    level: Some(Level::District),
                    completion: Completion::Any,
                },
                Tier {
                    level: Some(Level::Region),
                    completion: Completion::Any,
                },
            ],
            second_factor: false,
            approvers_not_created_by_maker: false,
        };
        // The region cannot go first.
        assert_eq!(
            decide(&p, &[], &[1, 1], 3, Level::Region, false),
            Err(RuleError::WrongTier("district"))
        );
        assert_eq!(decide(&p, &[], &[1, 1], 2, Level::District, false), Ok(0));
        let after_district = [approve(2, 0)];
        assert_eq!(
            outcome(&p, &after_district, &[1, 1]),
            Outcome::Pending {
                tier: 1,
                approvals: 0,
                needed: 1
            }
        );
        assert_eq!(
            decide(&p, &after_district, &[1, 1], 4, Level::District, false),
            Err(RuleError::WrongTier("region"))
        );
        assert_eq!(
            decide(&p, &after_district, &[1, 1], 3, Level::Region, false),
            Ok(1)
        );
        assert_eq!(
            outcome(&p, &[approve(2, 0), approve(3, 1)], &[1, 1]),
            Outcome::Approved
        );
    }

    #[test]
    fn policies_that_cannot_work_are_refused() {
        assert!(
            Policy {
                tiers: vec![],
                second_factor: false,
                approvers_not_created_by_maker: false,
            }
            .check()
            .is_err()
        );
        let zero = Policy {
            tiers: vec![Tier {
                level: None,
                completion: Completion::Threshold(0),
            }],
            second_factor: false,
            approvers_not_created_by_maker: false,
        };
        assert!(zero.check().is_err());
        let none = Policy {
            tiers: vec![],
            second_factor: false,
            approvers_not_created_by_maker: false,
        };
        assert!(none.check_for(TaskKind::OfficeStatusChange).is_ok());
        assert!(none.check_for(TaskKind::StatusChange).is_err());
        assert!(none.check_for(TaskKind::PayrollApproval).is_err());
        assert!(two_approvers().check().is_ok());
        let parsed: Policy = serde_json::from_str(
            r#"{"tiers":[{"level":"DISTRICT","completion":"ANY"},{"level":null,"completion":{"THRESHOLD":2}}],"second_factor":true}"#,
        )
        .unwrap();
        assert_eq!(parsed.tiers[1].completion, Completion::Threshold(2));
    }
}

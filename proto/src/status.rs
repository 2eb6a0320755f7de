//! Status machines and registry roles, named as openIMIS names them.
//!
//! The allowed transitions live here, once, so the server enforcing them and a device showing
//! what an agent may do cannot disagree.

/// A name that is not one of an enum's variants.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{given}' is not a valid {what}; expected one of: {expected}")]
pub struct UnknownName {
    pub what: &'static str,
    pub given: String,
    pub expected: String,
}

/// A status change the machine does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a {what} cannot go from {from} to {to}")]
pub struct TransitionError {
    pub what: &'static str,
    pub from: &'static str,
    pub to: &'static str,
}

/// An enum with one stored name per variant (the text in the database, files and JSON):
/// `as_str`, an exact `parse`, a case-insensitive `FromStr` (hand-made files say `head` or
/// `Head`), `Display`, `ALL` and serde, all from the one list of names. Every crate of the
/// workspace defines its statuses and kinds with it.
#[macro_export]
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, ::serde::Serialize, ::serde::Deserialize)]
        pub enum $name { $($(#[$vmeta])* #[serde(rename = $text)] $variant),+ }

        impl $name {
            pub const ALL: [$name; [$($text),+].len()] = [$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The variant stored as exactly `s`; `None` for anything else.
            pub fn parse(s: &str) -> Option<$name> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::UnknownName;

            /// Case-insensitive, so hand-made files (`head`, `Head`) are accepted.
            fn from_str(s: &str) -> ::std::result::Result<Self, $crate::UnknownName> {
                let t = s.trim();
                $(if t.eq_ignore_ascii_case($text) { return Ok($name::$variant); })+
                Err($crate::UnknownName {
                    what: $what,
                    given: s.to_owned(),
                    expected: [$($text),+].join(", "),
                })
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum!(
    /// A beneficiary's status in one plan.
    BeneficiaryStatus, "beneficiary status" {
        Potential = "POTENTIAL",
        Enrolled = "ENROLLED",
        Active = "ACTIVE",
        Suspended = "SUSPENDED",
        Graduated = "GRADUATED",
    }
);

impl BeneficiaryStatus {
    /// POTENTIAL → ENROLLED → ACTIVE ⇄ SUSPENDED, and any → GRADUATED, which is terminal:
    /// a graduated beneficiary never returns to the plan; the record stays for history.
    pub fn can_become(self, to: BeneficiaryStatus) -> bool {
        use BeneficiaryStatus::*;
        matches!(
            (self, to),
            (Potential, Enrolled)
                | (Enrolled, Active)
                | (Active, Suspended)
                | (Suspended, Active)
                | (Potential | Enrolled | Active | Suspended, Graduated)
        )
    }

    pub fn transition(self, to: BeneficiaryStatus) -> Result<BeneficiaryStatus, TransitionError> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(TransitionError {
                what: "beneficiary",
                from: self.as_str(),
                to: to.as_str(),
            })
        }
    }
}

named_enum!(
    /// A payroll's status. Only an APPROVED payroll reaches the field.
    PayrollStatus, "payroll status" {
        PendingApproval = "PENDING_APPROVAL",
        Approved = "APPROVED",
        Rejected = "REJECTED",
        Reconciled = "RECONCILED",
        Closed = "CLOSED",
    }
);

impl PayrollStatus {
    /// PENDING_APPROVAL → APPROVED → RECONCILED → CLOSED, or PENDING_APPROVAL → REJECTED.
    /// An approved payroll cannot be rejected: money may already be in people's hands, and
    /// rejecting must never take a payment back (an openIMIS lesson).
    pub fn can_become(self, to: PayrollStatus) -> bool {
        use PayrollStatus::*;
        matches!(
            (self, to),
            (PendingApproval, Approved | Rejected) | (Approved, Reconciled) | (Reconciled, Closed)
        )
    }

    pub fn transition(self, to: PayrollStatus) -> Result<PayrollStatus, TransitionError> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(TransitionError {
                what: "payroll",
                from: self.as_str(),
                to: to.as_str(),
            })
        }
    }
}

named_enum!(
    /// Whether an entitlement may be paid once its payroll is approved.
    EntitlementStatus, "entitlement status" {
        /// Payable once the payroll is approved.
        Due = "DUE",
        /// Above the plan's per-transaction limit: waits for its own approval.
        AwaitingApproval = "AWAITING_APPROVAL",
    }
);

named_enum!(
    /// A member's relationship to the household head, as openIMIS's `individual_role`.
    Relationship, "individual role" {
        Head = "HEAD",
        Spouse = "SPOUSE",
        Son = "SON",
        Daughter = "DAUGHTER",
        Mother = "MOTHER",
        Father = "FATHER",
        Grandfather = "GRANDFATHER",
        Grandmother = "GRANDMOTHER",
        Grandson = "GRANDSON",
        Granddaughter = "GRANDDAUGHTER",
        Brother = "BROTHER",
        Sister = "SISTER",
        OtherRelative = "OTHER_RELATIVE",
        NotRelated = "NOT_RELATED",
    }
);

named_enum!(
    /// Who may collect for a household, as openIMIS's `recipient_info` (1 primary, 2
    /// secondary, 0 none). A household has at most one primary and any number of secondaries;
    /// the head need not be a recipient.
    RecipientKind, "recipient" {
        None = "NONE",
        Primary = "PRIMARY",
        Secondary = "SECONDARY",
    }
);

impl RecipientKind {
    /// Reads openIMIS's `recipient_info` code: `1`, `2`, `0` or empty.
    pub fn from_openimis_code(code: &str) -> Result<RecipientKind, UnknownName> {
        match code.trim() {
            "" | "0" => Ok(RecipientKind::None),
            "1" => Ok(RecipientKind::Primary),
            "2" => Ok(RecipientKind::Secondary),
            other => other.parse().map_err(|_| UnknownName {
                what: "recipient_info",
                given: code.to_owned(),
                expected: "1 (primary), 2 (secondary), 0 or empty (none)".to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_beneficiary_transition_is_decided() {
        use BeneficiaryStatus::*;
        let allowed = [
            (Potential, Enrolled),
            (Enrolled, Active),
            (Active, Suspended),
            (Suspended, Active),
            (Potential, Graduated),
            (Enrolled, Graduated),
            (Active, Graduated),
            (Suspended, Graduated),
        ];
        for from in BeneficiaryStatus::ALL {
            for to in BeneficiaryStatus::ALL {
                let expected = allowed.contains(&(from, to));
                assert_eq!(from.can_become(to), expected, "{from} -> {to}");
                assert_eq!(from.transition(to).is_ok(), expected, "{from} -> {to}");
            }
        }
        let err = Graduated.transition(Active).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a beneficiary cannot go from GRADUATED to ACTIVE"
        );
    }

    #[test]
    fn every_payroll_transition_is_decided() {
        use PayrollStatus::*;
        let allowed = [
            (PendingApproval, Approved),
            (PendingApproval, Rejected),
            (Approved, Reconciled),
            (Reconciled, Closed),
        ];
        for from in PayrollStatus::ALL {
            for to in PayrollStatus::ALL {
                assert_eq!(
                    from.can_become(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn names_parse_case_insensitively_and_explain_failures() {
        assert_eq!("head".parse::<Relationship>(), Ok(Relationship::Head));
        assert_eq!(
            " Grandmother ".parse::<Relationship>(),
            Ok(Relationship::Grandmother)
        );
        let err = "COUSIN".parse::<Relationship>().unwrap_err();
        assert!(
            err.to_string()
                .contains("'COUSIN' is not a valid individual role")
        );
        assert!(err.to_string().contains("GRANDFATHER"));
        assert_eq!(
            serde_json::to_string(&BeneficiaryStatus::Active).unwrap(),
            "\"ACTIVE\""
        );
        assert_eq!(
            serde_json::to_string(&PayrollStatus::PendingApproval).unwrap(),
            "\"PENDING_APPROVAL\""
        );
    }

    #[test]
    fn recipient_codes_follow_openimis() {
        assert_eq!(
            RecipientKind::from_openimis_code("1"),
            Ok(RecipientKind::Primary)
        );
        assert_eq!(
            RecipientKind::from_openimis_code("2"),
            Ok(RecipientKind::Secondary)
        );
        assert_eq!(
            RecipientKind::from_openimis_code(""),
            Ok(RecipientKind::None)
        );
        assert_eq!(
            RecipientKind::from_openimis_code("0"),
            Ok(RecipientKind::None)
        );
        assert!(RecipientKind::from_openimis_code("3").is_err());
    }
}

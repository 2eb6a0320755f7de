//! The files reconciliation reads and writes: the report as CSV, openIMIS's reconciliation
//! sheet (exported, and imported back with per-row errors), and payment providers' statements
//! read through a column mapping saved per provider. Parsing only: the store decides what a
//! row refers to.

use outpost_proto::Currency;
use serde::{Deserialize, Serialize};

/// One line of the report as people read it (names rather than ids).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportRow {
    pub entitlement: String,
    pub beneficiary_code: String,
    pub name: String,
    pub currency: Currency,
    pub due_minor: i64,
    pub paid_minor: i128,
    pub payouts: u32,
    pub status: super::LineStatus,
    /// Exception kinds on this line, `;`-separated, open ones only.
    pub exceptions: String,
}

pub const REPORT_HEADER: [&str; 9] = [
    "entitlement",
    "beneficiary",
    "name",
    "currency",
    "due",
    "paid",
    "payments",
    "status",
    "open_exceptions",
];

/// Text from people (names) as a spreadsheet reads it: a leading `=`, `+`, `-` or `@` would
/// run as a formula when the export is opened, so it is quoted with an apostrophe.
fn cell(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_owned(),
    }
}

/// Reads back a cell written by [`cell`]: the guarding apostrophe goes, so an exported sheet
/// imports with the text it was made from.
fn uncell(text: String) -> String {
    match text.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest.to_owned(),
        _ => text,
    }
}

/// The report as CSV, amounts as decimals in the currency's unit.
pub fn report_csv(rows: &[ReportRow]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    // Writing to a Vec cannot fail.
    let _ = w.write_record(REPORT_HEADER);
    for r in rows {
        let _ = w.write_record([
            r.entitlement.as_str(),
            &cell(&r.beneficiary_code),
            &cell(&r.name),
            r.currency.as_str(),
            &r.currency.format_minor(r.due_minor),
            &r.currency.format_wide(r.paid_minor),
            &r.payouts.to_string(),
            r.status.as_str(),
            &r.exceptions,
        ]);
    }
    w.into_inner().unwrap_or_default()
}

/// openIMIS's reconciliation sheet columns, in its order.
pub const OPENIMIS_HEADER: [&str; 11] = [
    "Payroll Name",
    "Payroll Status",
    "First Name",
    "Last Name",
    "Date of Birth",
    "Code",
    "Status",
    "Amount",
    "Type",
    "Receipt",
    "Paid",
];

/// One row of the sheet. `code` is the entitlement id; `status` the benefit's openIMIS
/// status (see [`openimis_status`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SheetRow {
    pub payroll_name: String,
    pub payroll_status: String,
    pub first_name: String,
    pub last_name: String,
    pub dob: String,
    pub code: String,
    pub status: String,
    pub amount: String,
    pub kind: String,
    pub receipt: String,
    pub paid: Option<bool>,
}

/// The benefit's status as openIMIS names it: ACCEPTED before the payroll is approved,
/// APPROVE_FOR_PAYMENT while payable, RECONCILED once paid.
pub fn openimis_status(payroll_approved: bool, paid: bool) -> &'static str {
    match (payroll_approved, paid) {
        (_, true) => "RECONCILED",
        (true, false) => "APPROVE_FOR_PAYMENT",
        (false, false) => "ACCEPTED",
    }
}

pub fn openimis_csv(rows: &[SheetRow]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(OPENIMIS_HEADER);
    for r in rows {
        let paid = match r.paid {
            Some(true) => "Yes",
            Some(false) => "No",
            None => "",
        };
        // The payroll's name comes from a plan's code and the receipt from a provider's
        // statement: text from outside, guarded like names.
        let _ = w.write_record([
            cell(&r.payroll_name).as_str(),
            &r.payroll_status,
            &cell(&r.first_name),
            &cell(&r.last_name),
            &r.dob,
            &r.code,
            &r.status,
            &r.amount,
            &r.kind,
            &cell(&r.receipt),
            paid,
        ]);
    }
    w.into_inner().unwrap_or_default()
}

/// The readable records with their line numbers (the header is line 1), and an error for
/// each unreadable one.
fn numbered(r: &mut csv::Reader<&[u8]>) -> (Vec<(usize, csv::StringRecord)>, Vec<SheetError>) {
    let mut errors = Vec::new();
    let records = r
        .records()
        .enumerate()
        .filter_map(|(n, record)| match record {
            Ok(rec) => Some((n + 2, rec)),
            Err(e) => {
                errors.push(SheetError {
                    row: n + 2,
                    code: String::new(),
                    reason: format!("unreadable: {e}"),
                });
                None
            }
        })
        .collect();
    (records, errors)
}

/// A row's problem, reported by its code (openIMIS reports per code and reconciles the rest).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SheetError {
    pub row: usize,
    pub code: String,
    pub reason: String,
}

/// Reads a sheet. Columns are found by header name, so extra-info columns may follow; rows
/// that cannot be read are errors, the rest are returned.
/// Rows read (with their line number) and rows refused.
pub type SheetRead = (Vec<(usize, SheetRow)>, Vec<SheetError>);

pub fn read_openimis(bytes: &[u8]) -> Result<SheetRead, String> {
    let mut r = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let headers = r
        .headers()
        .map_err(|e| format!("the sheet cannot be read as CSV: {e}"))?
        .clone();
    let col = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
    };
    let mut at = Vec::new();
    for name in OPENIMIS_HEADER {
        match col(name) {
            Some(i) => at.push(i),
            None => return Err(format!("the sheet has no '{name}' column")),
        }
    }
    let mut rows = Vec::new();
    let (records, mut errors) = numbered(&mut r);
    for (row, record) in records {
        let get = |i: usize| record.get(at[i]).unwrap_or("").trim().to_owned();
        let code = get(5);
        let paid = match get(10).to_ascii_lowercase().as_str() {
            "yes" => Some(true),
            "no" => Some(false),
            "" => None,
            other => {
                errors.push(SheetError {
                    row,
                    code,
                    reason: format!("Paid is '{other}'; expected Yes, No or empty"),
                });
                continue;
            }
        };
        let receipt = uncell(get(9));
        if paid == Some(true) && receipt.is_empty() {
            errors.push(SheetError {
                row,
                code,
                reason: "a paid row needs a Receipt".into(),
            });
            continue;
        }
        rows.push((
            row,
            SheetRow {
                payroll_name: uncell(get(0)),
                payroll_status: get(1),
                first_name: uncell(get(2)),
                last_name: uncell(get(3)),
                dob: get(4),
                code,
                status: get(6),
                amount: get(7),
                kind: get(8),
                receipt,
                paid,
            },
        ));
    }
    Ok((rows, errors))
}

/// Which columns of a provider's statement hold what; saved per provider so the next
/// statement imports in one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderMapping {
    /// The provider's transaction reference (kept as the receipt).
    pub reference: String,
    /// The amount, as a decimal in the currency's unit.
    pub amount: String,
    /// Our payment reference (the entitlement id), if the provider echoes it.
    #[serde(default)]
    pub our_reference: Option<String>,
    /// The beneficiary's code (individual external id or household code).
    #[serde(default)]
    pub beneficiary: Option<String>,
    /// A currency column; without one, the payroll's currency.
    #[serde(default)]
    pub currency: Option<String>,
}

impl ProviderMapping {
    pub fn check(&self) -> Result<(), String> {
        for (what, col) in [("reference", &self.reference), ("amount", &self.amount)] {
            if col.trim().is_empty() {
                return Err(format!("the mapping needs the {what} column"));
            }
        }
        if self
            .our_reference
            .as_deref()
            .is_none_or(|c| c.trim().is_empty())
            && self
                .beneficiary
                .as_deref()
                .is_none_or(|c| c.trim().is_empty())
        {
            return Err(
                "the mapping needs our reference or the beneficiary column to match lines".into(),
            );
        }
        Ok(())
    }
}

/// One statement line, as read through a mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct StatementLine {
    pub row: usize,
    pub reference: String,
    pub amount_minor: i64,
    pub currency: Currency,
    pub our_reference: Option<String>,
    pub beneficiary: Option<String>,
}

/// Reads a statement; every bad row is reported and nothing is returned then, since a bank
/// statement is imported whole or not at all.
pub fn read_statement(
    bytes: &[u8],
    mapping: &ProviderMapping,
    default_currency: Currency,
) -> Result<Vec<StatementLine>, Vec<SheetError>> {
    let fail = |reason: String| {
        vec![SheetError {
            row: 1,
            code: String::new(),
            reason,
        }]
    };
    mapping.check().map_err(fail)?;
    let mut r = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let headers = r
        .headers()
        .map_err(|e| fail(format!("the statement cannot be read as CSV: {e}")))?
        .clone();
    let find = |name: &str| -> Result<usize, Vec<SheetError>> {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name.trim()))
            .ok_or_else(|| fail(format!("the statement has no '{name}' column")))
    };
    let optional = |name: &Option<String>| -> Result<Option<usize>, Vec<SheetError>> {
        match name.as_deref().map(str::trim) {
            Some(n) if !n.is_empty() => find(n).map(Some),
            _ => Ok(None),
        }
    };
    let reference = find(&mapping.reference)?;
    let amount = find(&mapping.amount)?;
    let ours = optional(&mapping.our_reference)?;
    let beneficiary = optional(&mapping.beneficiary)?;
    let currency = optional(&mapping.currency)?;
    let mut lines = Vec::new();
    let (records, mut errors) = numbered(&mut r);
    for (row, record) in records {
        let get = |i: usize| record.get(i).unwrap_or("").trim().to_owned();
        let reference = get(reference);
        let mut problem = |reason: String| {
            errors.push(SheetError {
                row,
                code: reference.clone(),
                reason,
            });
        };
        if reference.is_empty() {
            problem("the reference is empty".into());
            continue;
        }
        let cur = match currency.map(get) {
            Some(c) => match c.parse::<Currency>() {
                Ok(c) => c,
                Err(e) => {
                    problem(e.to_string());
                    continue;
                }
            },
            None => default_currency,
        };
        let amount_minor = match cur.parse_minor(&get(amount)) {
            Ok(a) if a > 0 => a,
            Ok(_) => {
                problem("the amount must be above zero".into());
                continue;
            }
            Err(e) => {
                problem(e.to_string());
                continue;
            }
        };
        let nonempty = |s: String| (!s.is_empty()).then_some(s);
        lines.push(StatementLine {
            row,
            reference: reference.clone(),
            amount_minor,
            currency: cur,
            our_reference: ours.map(get).and_then(nonempty),
            beneficiary: beneficiary.map(get).and_then(nonempty),
        });
    }
    if errors.is_empty() {
        Ok(lines)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mwk() -> Currency {
        "MWK".parse().unwrap()
    }

    #[test]
    fn the_openimis_sheet_round_trips_and_reports_rows_by_code() {
        let row = SheetRow {
            payroll_name: "CT-HH 2026-11 N-MZ".into(),
            payroll_status: "APPROVED".into(),
            first_name: "Zoë".into(),
            last_name: "Banda, Jr".into(),
            dob: "1980-01-02".into(),
            code: "0190-abc".into(),
            status: "APPROVE_FOR_PAYMENT".into(),
            amount: "150.00".into(),
            kind: "CASH".into(),
            receipt: String::new(),
            paid: Some(false),
        };
        let bytes = openimis_csv(std::slice::from_ref(&row));
        let (rows, errors) = read_openimis(&bytes).unwrap();
        assert!(errors.is_empty());
        assert_eq!(rows, [(2, row)]);

        let sheet = "Payroll Name,Payroll Status,First Name,Last Name,Date of Birth,Code,Status,Amount,Type,Receipt,Paid,Village\n\
                     P,APPROVED,A,B,1980-01-01,c1,APPROVE_FOR_PAYMENT,150.00,CASH,,Yes,X\n\
                     P,APPROVED,A,B,1980-01-01,c2,APPROVE_FOR_PAYMENT,150.00,CASH,R-2,Maybe,X\n\
                     P,APPROVED,A,B,1980-01-01,c3,APPROVE_FOR_PAYMENT,150.00,CASH,R-3,Yes,X\n";
        let (rows, errors) = read_openimis(sheet.as_bytes()).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].1.code, "c3");
        let codes: Vec<_> = errors.iter().map(|e| (e.row, e.code.as_str())).collect();
        assert_eq!(codes, [(2, "c1"), (3, "c2")]);
        assert!(errors[0].reason.contains("Receipt"));

        let err = read_openimis(b"Code,Paid\nx,Yes\n").unwrap_err();
        assert!(err.contains("'Payroll Name'"), "{err}");
    }

    #[test]
    fn a_statement_is_read_through_its_mapping_or_refused_whole() {
        let mapping = ProviderMapping {
            reference: "TxnID".into(),
            amount: "Amount".into(),
            our_reference: Some("Narrative".into()),
            beneficiary: Some("Customer".into()),
            currency: None,
        };
        let ok = "TxnID,Amount,Narrative,Customer\nT1,150.00,e-1,IND-1\nT2,\"1,000.5\",,IND-2\n";
        let lines = read_statement(ok.as_bytes(), &mapping, mwk()).unwrap();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].amount_minor, 15000);
        assert_eq!(lines[0].our_reference.as_deref(), Some("e-1"));
        assert_eq!(lines[1].amount_minor, 100050);
        assert_eq!(lines[1].our_reference, None);

        let bad = "TxnID,Amount,Narrative,Customer\nT1,abc,e-1,IND-1\n,150,e-2,IND-2\nT3,-1,e-3,\n";
        let errors = read_statement(bad.as_bytes(), &mapping, mwk()).unwrap_err();
        assert_eq!(errors.iter().map(|e| e.row).collect::<Vec<_>>(), [2, 3, 4]);

        let missing = ProviderMapping {
            amount: "Value".into(),
            ..mapping.clone()
        };
        let errors = read_statement(ok.as_bytes(), &missing, mwk()).unwrap_err();
        assert!(errors[0].reason.contains("'Value'"));

        let unmatched = ProviderMapping {
            our_reference: None,
            beneficiary: None,
            ..mapping
        };
        assert!(read_statement(ok.as_bytes(), &unmatched, mwk()).is_err());
    }

    #[test]
    fn names_that_look_like_formulas_are_defused() {
        assert_eq!(cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(cell("Zoë"), "Zoë");
    }

    #[test]
    fn the_openimis_sheet_defuses_receipts_and_payroll_names_and_reads_them_back() {
        let row = SheetRow {
            payroll_name: "=HYPERLINK(\"http://x\")".into(),
            payroll_status: "APPROVED".into(),
            first_name: "+Zoë".into(),
            last_name: "Banda".into(),
            dob: "1980-01-02".into(),
            code: "0190-abc".into(),
            status: "RECONCILED".into(),
            amount: "150.00".into(),
            kind: "CASH".into(),
            receipt: "@SUM(A1)".into(),
            paid: Some(true),
        };
        let bytes = openimis_csv(std::slice::from_ref(&row));
        let text = String::from_utf8(bytes.clone()).unwrap();
        let line = text.lines().nth(1).unwrap();
        assert!(
            line.starts_with("\"'=HYPERLINK(") && line.contains(",'@SUM(A1),Yes"),
            "{line}"
        );
        assert!(line.contains(",'+Zoë,"), "{line}");
        let (rows, errors) = read_openimis(&bytes).unwrap();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(rows, [(2, row)], "the guard is undone on import");
    }

    #[test]
    fn the_report_csv_writes_decimals_and_quotes_names() {
        let bytes = report_csv(&[ReportRow {
            entitlement: "e1".into(),
            beneficiary_code: "IND-1".into(),
            name: "Banda, Zoë".into(),
            currency: mwk(),
            due_minor: 15000,
            paid_minor: 30000,
            payouts: 2,
            status: crate::reconciliation::LineStatus::Overpaid,
            exceptions: "AMOUNT_MISMATCH;PAID_TWICE".into(),
        }]);
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(
            text,
            "entitlement,beneficiary,name,currency,due,paid,payments,status,open_exceptions\n\
             e1,IND-1,\"Banda, Zoë\",MWK,150.00,300.00,2,OVERPAID,AMOUNT_MISMATCH;PAID_TWICE\n"
        );
    }
}

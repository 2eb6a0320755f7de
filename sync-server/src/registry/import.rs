//! Reading an openIMIS individual upload (CSV or XLSX) into checked rows.
//!
//! Pure: bytes in, typed rows and every problem out. Nothing here touches the database; the
//! store checks the rows against the registry (locations, existing households) and writes
//! them. A file made for openIMIS imports unchanged: `first_name`, `last_name`, `dob`, `id`
//! required; `sex`, `location_name`, `group_code`, `individual_role`, `recipient_info`
//! optional; any other column is an extra field declared in the plan's schema.

use std::collections::HashMap;

use chrono::NaiveDate;
use csv::StringRecord;
use outpost_proto::{RecipientKind, Relationship};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::plans::schema::{ExtraSchema, FieldSpec, parse_date};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    Xlsx,
}

impl FileFormat {
    /// An XLSX file is a ZIP archive; anything else is read as CSV.
    pub fn sniff(bytes: &[u8]) -> FileFormat {
        if bytes.starts_with(b"PK\x03\x04") {
            FileFormat::Xlsx
        } else {
            FileFormat::Csv
        }
    }
}

/// One person from the file, checked and typed.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportRow {
    /// The row as a spreadsheet shows it (the header is row 1).
    pub row: usize,
    pub external_id: String,
    pub first_name: String,
    pub last_name: String,
    pub dob: NaiveDate,
    /// `M`, `F` or `O`.
    pub sex: Option<String>,
    pub location_name: Option<String>,
    pub group_code: Option<String>,
    pub role: Option<Relationship>,
    pub recipient: RecipientKind,
    pub extra: Map<String, Value>,
}

/// One problem with one row, in the words an administrator fixing the file needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowError {
    pub row: usize,
    pub column: Option<String>,
    pub reason: String,
}

/// A problem with the file as a whole: nothing in it can be read as rows.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FileError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is UTF-16; save it as \"CSV UTF-8\" and import it again")]
    Utf16,
    #[error(
        "the file is an old Excel workbook (.xls); save it as .xlsx or \"CSV UTF-8\" and import it again"
    )]
    OldExcel,
    #[error(
        "the file is not UTF-8 (row {row} holds bytes that are not): it is probably Windows-1252 \
         or Latin-1; save it as \"CSV UTF-8\" and import it again"
    )]
    NotUtf8 { row: usize },
    #[error("missing required column(s): {}", .0.join(", "))]
    MissingColumns(Vec<String>),
    #[error(
        "unknown column(s): {}; declare them in the plan's extra-field schema or remove them \
         (known columns: {})", .unknown.join(", "), .known.join(", ")
    )]
    UnknownColumns {
        unknown: Vec<String>,
        known: Vec<String>,
    },
    #[error("column '{0}' appears twice")]
    DuplicateColumn(String),
    #[error("the CSV cannot be read at row {row}: {reason}")]
    Malformed { row: usize, reason: String },
    #[error("the spreadsheet cannot be read: {0}")]
    Spreadsheet(String),
}

/// The checked content of a file: its rows, every problem found, and the original cells (to
/// hand rejected rows back).
#[derive(Debug)]
pub struct ParsedFile {
    pub header: Vec<String>,
    /// Every row that could be split into the header's columns, as far as it converted; a
    /// row with an entry in `errors` must not be written (see [`ParsedFile::valid_rows`]).
    /// Rows with errors are kept so the registry's checks can report their other problems.
    pub rows: Vec<ImportRow>,
    pub errors: Vec<RowError>,
    /// (row number, original cells), in file order.
    raw: Vec<(usize, StringRecord)>,
}

/// The standard columns, as openIMIS names them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Col {
    FirstName,
    LastName,
    Dob,
    Id,
    Sex,
    Location,
    Group,
    Role,
    Recipient,
}

const COLUMNS: &[(&str, Col, bool)] = &[
    ("first_name", Col::FirstName, true),
    ("last_name", Col::LastName, true),
    ("dob", Col::Dob, true),
    ("id", Col::Id, true),
    ("sex", Col::Sex, false),
    ("location_name", Col::Location, false),
    ("group_code", Col::Group, false),
    ("individual_role", Col::Role, false),
    ("recipient_info", Col::Recipient, false),
];

/// The column [`ParsedFile::rejected_csv`] adds; ignored when that file is imported again.
const REJECTS_COLUMN: &str = "error";

const MAX_ID_LEN: usize = 64;
const MAX_NAME_LEN: usize = 200;

/// Reads and checks a whole individual upload. Whole-file problems are an `Err`; row
/// problems are collected in [`ParsedFile::errors`] (all of them, not the first).
pub fn parse_individuals(
    bytes: &[u8],
    format: FileFormat,
    schema: Option<&ExtraSchema>,
) -> Result<ParsedFile, FileError> {
    if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0]) {
        return Err(FileError::OldExcel);
    }
    let records = match format {
        FileFormat::Csv => read_csv(bytes)?,
        FileFormat::Xlsx => read_xlsx(bytes)?,
    };
    let mut records = records.into_iter();
    let (_, header_record) = records.next().ok_or(FileError::Empty)?;
    let header: Vec<String> = header_record
        .iter()
        .map(|h| h.trim().trim_start_matches('\u{feff}').to_lowercase())
        .collect();
    let layout = Layout::new(&header, schema)?;
    let mut checks = FileChecks::default();
    let mut out = ParsedFile {
        header,
        rows: Vec::new(),
        errors: Vec::new(),
        raw: Vec::new(),
    };
    for (row, record) in records {
        if record.iter().all(|c| c.trim().is_empty()) {
            continue;
        }
        if record.len() != out.header.len() {
            out.errors.push(RowError {
                row,
                column: None,
                reason: format!(
                    "has {} cells where the header has {} columns",
                    record.len(),
                    out.header.len()
                ),
            });
        } else {
            let parsed = layout.parse(row, &record, &mut out.errors);
            check_row(&parsed, &mut out.errors);
            checks.check(&parsed, &mut out.errors);
            out.rows.push(parsed);
        }
        out.raw.push((row, record));
    }
    Ok(out)
}

/// Checks rows that arrive already typed (the JSON API's "create individual") with the same
/// rules as a file's rows, extra fields against `schema` included.
pub fn check_rows(rows: Vec<ImportRow>, schema: Option<&ExtraSchema>) -> ParsedFile {
    let empty = ExtraSchema::default();
    let schema = schema.unwrap_or(&empty);
    let mut checks = FileChecks::default();
    let mut out = ParsedFile {
        header: Vec::new(),
        rows: Vec::new(),
        errors: Vec::new(),
        raw: Vec::new(),
    };
    for row in rows {
        if let Err(fields) = schema.validate_json(&row.extra) {
            out.errors
                .extend(fields.into_iter().map(|(field, reason)| RowError {
                    row: row.row,
                    column: Some(field),
                    reason,
                }));
        }
        for (col, value) in [
            ("id", &row.external_id),
            ("first_name", &row.first_name),
            ("last_name", &row.last_name),
        ] {
            if value.trim().is_empty() {
                out.errors.push(RowError {
                    row: row.row,
                    column: Some(col.into()),
                    reason: "is required".into(),
                });
            }
        }
        if let Some(sex) = &row.sex
            && parse_sex(sex).is_err()
        {
            out.errors.push(RowError {
                row: row.row,
                column: Some("sex".into()),
                reason: format!("'{sex}' is not M, F or O"),
            });
        }
        if let Err(e) = check_dob(row.dob) {
            out.errors.push(RowError {
                row: row.row,
                column: Some("dob".into()),
                reason: e,
            });
        }
        check_row(&row, &mut out.errors);
        checks.check(&row, &mut out.errors);
        out.rows.push(row);
    }
    out
}

impl ParsedFile {
    /// The rows without any error.
    pub fn valid_rows(&self) -> impl Iterator<Item = &ImportRow> {
        let bad: std::collections::HashSet<usize> = self.errors.iter().map(|e| e.row).collect();
        self.rows.iter().filter(move |r| !bad.contains(&r.row))
    }

    /// The rejected rows as a CSV to fix and import again: the original header plus an
    /// `error` column, then each rejected row's original cells with its reasons.
    pub fn rejected_csv(&self, rejected: &[RowError]) -> Vec<u8> {
        let mut reasons: HashMap<usize, Vec<String>> = HashMap::new();
        for e in rejected {
            let text = match &e.column {
                Some(c) => format!("{c}: {}", e.reason),
                None => e.reason.clone(),
            };
            reasons.entry(e.row).or_default().push(text);
        }
        let mut w = csv::Writer::from_writer(Vec::new());
        // A file rejected twice keeps one reasons column, with the new reasons.
        let previous = self.header.iter().position(|h| h == REJECTS_COLUMN);
        let mut header: StringRecord = self
            .header
            .iter()
            .filter(|h| *h != REJECTS_COLUMN)
            .collect();
        header.push_field(REJECTS_COLUMN);
        let _ = w.write_record(&header);
        for (row, record) in &self.raw {
            if let Some(why) = reasons.get(row) {
                let mut cells: StringRecord = record
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| Some(*i) != previous)
                    .map(|(_, c)| c)
                    .collect();
                cells.push_field(&why.join("; "));
                let _ = w.write_record(&cells);
            }
        }
        w.into_inner().unwrap_or_default()
    }
}

/// Where each column of this file's header is.
struct Layout<'s> {
    standard: Vec<(usize, Col)>,
    extras: Vec<(usize, &'s FieldSpec)>,
}

impl<'s> Layout<'s> {
    fn new(header: &[String], schema: Option<&'s ExtraSchema>) -> Result<Layout<'s>, FileError> {
        let mut seen = std::collections::HashSet::new();
        let mut standard = Vec::new();
        let mut extras = Vec::new();
        let mut unknown = Vec::new();
        for (i, name) in header.iter().enumerate() {
            if name.is_empty() {
                unknown.push(format!("(empty header in column {})", i + 1));
                continue;
            }
            if !seen.insert(name.as_str()) {
                return Err(FileError::DuplicateColumn(name.clone()));
            }
            if let Some((_, col, _)) = COLUMNS.iter().find(|(n, ..)| n == name) {
                standard.push((i, *col));
            } else if let Some(spec) = schema.and_then(|s| s.field(name)) {
                extras.push((i, spec));
            } else if name == REJECTS_COLUMN {
                // The reasons column of a rejected-rows file: it re-imports as it is.
            } else {
                unknown.push(name.clone());
            }
        }
        let mut missing: Vec<String> = COLUMNS
            .iter()
            .filter(|(n, _, required)| *required && !seen.contains(n))
            .map(|(n, ..)| n.to_string())
            .collect();
        if let Some(schema) = schema {
            missing.extend(
                schema
                    .fields
                    .iter()
                    .filter(|f| f.required && !seen.contains(f.name.as_str()))
                    .map(|f| f.name.clone()),
            );
        }
        if !missing.is_empty() {
            return Err(FileError::MissingColumns(missing));
        }
        if !unknown.is_empty() {
            let mut known: Vec<String> = COLUMNS.iter().map(|(n, ..)| n.to_string()).collect();
            known.extend(
                schema
                    .iter()
                    .flat_map(|s| s.fields.iter().map(|f| f.name.clone())),
            );
            return Err(FileError::UnknownColumns { unknown, known });
        }
        Ok(Layout { standard, extras })
    }

    /// Converts one record's cells; what cannot be converted is reported in `errors` and left
    /// empty in the row, so the row's other checks still run.
    fn parse(&self, row: usize, record: &StringRecord, errors: &mut Vec<RowError>) -> ImportRow {
        let mut err = |col: &str, reason: String| {
            errors.push(RowError {
                row,
                column: Some(col.to_owned()),
                reason,
            })
        };
        let mut r = ImportRow {
            row,
            external_id: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            dob: NaiveDate::MIN,
            sex: None,
            location_name: None,
            group_code: None,
            role: None,
            recipient: RecipientKind::None,
            extra: Map::new(),
        };
        for &(i, col) in &self.standard {
            let cell = record.get(i).unwrap_or("").trim();
            let present = (!cell.is_empty()).then(|| cell.to_owned());
            match col {
                Col::FirstName | Col::LastName | Col::Id | Col::Dob if cell.is_empty() => {
                    err(col_name(col), "is required".into());
                }
                Col::FirstName => r.first_name = cell.to_owned(),
                Col::LastName => r.last_name = cell.to_owned(),
                Col::Id => r.external_id = cell.to_owned(),
                Col::Dob => match parse_date(cell).and_then(|d| check_dob(d).map(|()| d)) {
                    Ok(d) => r.dob = d,
                    Err(e) => err("dob", e),
                },
                Col::Sex if cell.is_empty() => {}
                Col::Sex => match parse_sex(cell) {
                    Ok(s) => r.sex = Some(s.to_owned()),
                    Err(e) => err("sex", e),
                },
                Col::Location => r.location_name = present,
                Col::Group => r.group_code = present,
                Col::Role if cell.is_empty() => {}
                Col::Role => match cell.parse::<Relationship>() {
                    Ok(role) => r.role = Some(role),
                    Err(e) => err("individual_role", e.to_string()),
                },
                Col::Recipient => match RecipientKind::from_openimis_code(cell) {
                    Ok(k) => r.recipient = k,
                    Err(e) => err("recipient_info", e.to_string()),
                },
            }
        }
        for &(i, spec) in &self.extras {
            match spec.parse_cell(record.get(i).unwrap_or("")) {
                Ok(Some(v)) => {
                    r.extra.insert(spec.name.clone(), v);
                }
                Ok(None) => {}
                Err(e) => err(&spec.name, e),
            }
        }
        r
    }
}

fn col_name(col: Col) -> &'static str {
    COLUMNS
        .iter()
        .find(|(_, c, _)| *c == col)
        .map_or("", |(n, ..)| n)
}

fn parse_sex(s: &str) -> Result<&'static str, String> {
    match s.trim().to_uppercase().as_str() {
        "M" | "MALE" => Ok("M"),
        "F" | "FEMALE" => Ok("F"),
        "O" | "OTHER" => Ok("O"),
        _ => Err(format!("'{s}' is not M, F or O")),
    }
}

/// A date of birth is neither in the future nor before 1900.
fn check_dob(dob: NaiveDate) -> Result<(), String> {
    // Tomorrow in UTC is still today somewhere east of Greenwich: a newborn registered on
    // their birthday is not refused.
    if dob > chrono::Utc::now().date_naive() + chrono::Days::new(1) {
        Err(format!("{dob} is in the future"))
    } else if dob < NaiveDate::from_ymd_opt(1900, 1, 1).expect("valid date") {
        Err(format!("{dob} is before 1900"))
    } else {
        Ok(())
    }
}

/// Checks of one typed row that need no other row.
fn check_row(r: &ImportRow, errors: &mut Vec<RowError>) {
    let mut err = |col: &str, reason: String| {
        errors.push(RowError {
            row: r.row,
            column: Some(col.to_owned()),
            reason,
        })
    };
    if r.external_id.chars().count() > MAX_ID_LEN || r.external_id.chars().any(char::is_control) {
        err(
            "id",
            format!("must be at most {MAX_ID_LEN} characters, without control characters"),
        );
    }
    for (col, v) in [("first_name", &r.first_name), ("last_name", &r.last_name)] {
        if v.chars().count() > MAX_NAME_LEN || v.chars().any(char::is_control) {
            err(
                col,
                format!("must be at most {MAX_NAME_LEN} characters, without control characters"),
            );
        }
    }
    if let Some(g) = &r.group_code
        && (g.chars().count() > MAX_ID_LEN || g.chars().any(char::is_control))
    {
        err(
            "group_code",
            format!("must be at most {MAX_ID_LEN} characters, without control characters"),
        );
    }
    if r.group_code.is_none() {
        if r.role.is_some() {
            err("individual_role", "needs a group_code".into());
        }
        if r.recipient != RecipientKind::None {
            err("recipient_info", "needs a group_code".into());
        }
    }
}

/// Checks across rows: ids unique in the file, one head and one primary recipient per
/// household (openIMIS refuses a second primary; secondaries can be many).
#[derive(Default)]
struct FileChecks {
    ids: HashMap<String, usize>,
    heads: HashMap<String, usize>,
    primaries: HashMap<String, usize>,
}

impl FileChecks {
    /// Claims are registered from every row (a bad row's id is still taken), so a duplicate
    /// is reported whichever copy has other problems.
    fn check(&mut self, r: &ImportRow, errors: &mut Vec<RowError>) {
        let before = errors.len();
        let mut err = |col: &str, reason: String| {
            errors.push(RowError {
                row: r.row,
                column: Some(col.to_owned()),
                reason,
            })
        };
        if let Some(first) = self
            .ids
            .get(&r.external_id)
            .filter(|_| !r.external_id.is_empty())
        {
            err(
                "id",
                format!("'{}' already appears in row {first}", r.external_id),
            );
        }
        if let Some(g) = &r.group_code {
            if r.role == Some(Relationship::Head)
                && let Some(first) = self.heads.get(g)
            {
                err(
                    "individual_role",
                    format!("household {g} already has a head in row {first}"),
                );
            }
            if r.recipient == RecipientKind::Primary
                && let Some(first) = self.primaries.get(g)
            {
                err(
                    "recipient_info",
                    format!("household {g} already has a primary recipient in row {first}"),
                );
            }
        }
        if errors.len() == before {
            if !r.external_id.is_empty() {
                self.ids.insert(r.external_id.clone(), r.row);
            }
            if let Some(g) = &r.group_code {
                if r.role == Some(Relationship::Head) {
                    self.heads.insert(g.clone(), r.row);
                }
                if r.recipient == RecipientKind::Primary {
                    self.primaries.insert(g.clone(), r.row);
                }
            }
        }
    }
}

/// Decodes and splits a CSV; each record comes with the row number a spreadsheet shows.
fn read_csv(bytes: &[u8]) -> Result<Vec<(usize, StringRecord)>, FileError> {
    if bytes.is_empty() {
        return Err(FileError::Empty);
    }
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(FileError::Utf16);
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| FileError::NotUtf8 {
        row: 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count(),
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(sniff_delimiter(text))
        .from_reader(text.as_bytes());
    let mut out = Vec::new();
    // The row a spreadsheet shows: line breaks before the record, less those inside quoted
    // cells (a multi-line cell is one row). Blank lines count, as spreadsheets show them.
    let (mut newlines, mut counted_to, mut embedded) = (0, 0, 0);
    let mut row_at = |mut byte: usize, embedded: usize| {
        // With CRLF, a record is reported as starting at the previous line's `\n`.
        while text
            .as_bytes()
            .get(byte)
            .is_some_and(|b| matches!(b, b'\r' | b'\n'))
        {
            byte += 1;
        }
        newlines += text.as_bytes()[counted_to..byte]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        counted_to = byte;
        newlines + 1 - embedded
    };
    let mut record = StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let byte = record.position().map_or(0, |p| p.byte() as usize);
                out.push((row_at(byte, embedded), record.clone()));
                embedded += record
                    .iter()
                    .map(|c| c.matches('\n').count())
                    .sum::<usize>();
            }
            Err(e) => {
                let byte = e.position().map_or(text.len(), |p| p.byte() as usize);
                return Err(FileError::Malformed {
                    row: row_at(byte, embedded),
                    reason: e.to_string(),
                });
            }
        }
    }
    if out.is_empty() {
        return Err(FileError::Empty);
    }
    Ok(out)
}

/// `,` unless the header line has more `;` (Excel in French locales) or tabs.
fn sniff_delimiter(text: &str) -> u8 {
    let first = text.lines().next().unwrap_or("");
    let count = |c: char| first.matches(c).count();
    [(b',', count(',')), (b';', count(';')), (b'\t', count('\t'))]
        .into_iter()
        .max_by_key(|&(d, n)| (n, d == b','))
        .map_or(b',', |(d, _)| d)
}

/// The first worksheet as text records; dates become YYYY-MM-DD and whole numbers lose `.0`.
fn read_xlsx(bytes: &[u8]) -> Result<Vec<(usize, StringRecord)>, FileError> {
    use calamine::{Data, Reader, Xlsx};
    let mut book: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes))
        .map_err(|e: calamine::XlsxError| FileError::Spreadsheet(e.to_string()))?;
    let range = book
        .worksheet_range_at(0)
        .ok_or_else(|| FileError::Spreadsheet("the workbook has no worksheet".into()))?
        .map_err(|e| FileError::Spreadsheet(e.to_string()))?;
    let first_row = range.start().map_or(0, |(r, _)| r as usize);
    let first_col = range.start().map_or(0, |(_, c)| c as usize);
    let mut out = Vec::new();
    for (i, cells) in range.rows().enumerate() {
        let mut record = StringRecord::new();
        // Cells left of the used range are empty; keep column positions.
        for _ in 0..first_col {
            record.push_field("");
        }
        for cell in cells.iter().cloned() {
            let text = match cell {
                Data::Empty => String::new(),
                Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s,
                Data::Int(n) => n.to_string(),
                Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
                Data::Float(f) => f.to_string(),
                Data::Bool(b) => b.to_string(),
                Data::DateTime(d) => d
                    .as_datetime()
                    .map_or_else(|| d.to_string(), |dt| dt.date().to_string()),
                Data::Error(e) => format!("#{e:?}"),
            };
            record.push_field(&text);
        }
        out.push((first_row + i + 1, record));
    }
    // The header is the first non-empty row.
    let start = out
        .iter()
        .position(|(_, r)| r.iter().any(|c| !c.trim().is_empty()));
    match start {
        Some(s) => Ok(out.split_off(s)),
        None => Err(FileError::Empty),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const OPENIMIS: &str =
        "first_name,last_name,dob,id,location_name,individual_role,recipient_info,group_code
Mia,Foo,1989-01-01,1,Washington DC,HEAD,1,AA
Bob,Foo,1988-01-01,2,Washington DC,SPOUSE,1,AA
Michelle,Bar,1990-01-01,3,Fairfax,HEAD,0,BB
";

    fn parse(text: &str) -> ParsedFile {
        parse_individuals(text.as_bytes(), FileFormat::Csv, None).unwrap()
    }

    fn schema() -> ExtraSchema {
        serde_json::from_value(json!({"fields": [
            {"name": "disability", "type": "boolean"},
            {"name": "household_size", "type": "integer", "min": 1},
        ]}))
        .unwrap()
    }

    #[test]
    fn the_openimis_example_refuses_a_second_primary() {
        let p = parse(OPENIMIS);
        let valid: Vec<&ImportRow> = p.valid_rows().collect();
        assert_eq!(valid.len(), 2);
        assert_eq!(valid[0].first_name, "Mia");
        assert_eq!(valid[0].role, Some(Relationship::Head));
        assert_eq!(valid[0].recipient, RecipientKind::Primary);
        assert_eq!(valid[1].row, 4);
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].row, 3);
        assert_eq!(p.errors[0].column.as_deref(), Some("recipient_info"));
        assert!(
            p.errors[0]
                .reason
                .contains("already has a primary recipient in row 2")
        );
    }

    #[test]
    fn bom_crlf_semicolons_and_quotes() {
        let text = "\u{feff}First_Name;LAST_NAME;dob;id\r\n\"Ana; Maria\";\"O\"\"Neil\";1990-01-01;X1\r\n\"Multi\nLine\";Ng;1991-02-03;X2\r\n;;;\r\nZed;Ng;1992-03-04;X3\r\n";
        let p = parse(text);
        let names: Vec<(&str, &str, usize)> = p
            .valid_rows()
            .map(|r| (r.first_name.as_str(), r.last_name.as_str(), r.row))
            .collect();
        assert_eq!(names, [("Ana; Maria", "O\"Neil", 2), ("Zed", "Ng", 5)]);
        // A line break inside a name is refused, and row numbers stay those a spreadsheet shows.
        assert_eq!(
            (p.errors[0].row, p.errors[0].column.as_deref()),
            (3, Some("first_name"))
        );
        let tabs = parse("first_name\tlast_name\tdob\tid\nA\tB\t1990-01-01\tT1\n");
        assert_eq!(tabs.rows.len(), 1);
    }

    #[test]
    fn names_in_any_script_are_kept_exactly() {
        let names = ["José", "Zoë", "فاطمة", "सीता", "王明", "አበበ", "Nguyễn Thị"];
        let mut text = String::from("first_name,last_name,dob,id\n");
        for (i, n) in names.iter().enumerate() {
            text.push_str(&format!("{n},{n},1990-01-01,N{i}\n"));
        }
        let p = parse(&text);
        let got: Vec<&str> = p.rows.iter().map(|r| r.first_name.as_str()).collect();
        assert_eq!(got, names);
    }

    #[test]
    fn wrong_encodings_are_refused() {
        let utf16 = [0xFF, 0xFE, b'f', 0];
        assert_eq!(
            parse_individuals(&utf16, FileFormat::Csv, None).unwrap_err(),
            FileError::Utf16
        );
        let latin1 = b"first_name,last_name,dob,id\nAna,B,1990-01-01,1\nJos\xe9,B,1990-01-01,2\n";
        let err = parse_individuals(latin1, FileFormat::Csv, None).unwrap_err();
        assert_eq!(err, FileError::NotUtf8 { row: 3 });
        assert!(err.to_string().contains("Latin-1"));
        assert_eq!(
            parse_individuals(b"", FileFormat::Csv, None).unwrap_err(),
            FileError::Empty
        );
        let xls = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
        let err = parse_individuals(&xls, FileFormat::sniff(&xls), None).unwrap_err();
        assert_eq!(err, FileError::OldExcel);
    }

    #[test]
    fn header_problems() {
        let err = parse_individuals(b"first_name,dob\n", FileFormat::Csv, None).unwrap_err();
        assert_eq!(
            err,
            FileError::MissingColumns(vec!["last_name".into(), "id".into()])
        );
        let err = parse_individuals(
            b"first_name,last_name,dob,id,colour\n",
            FileFormat::Csv,
            None,
        )
        .unwrap_err();
        assert!(
            matches!(&err, FileError::UnknownColumns { unknown, .. } if unknown == &["colour"]),
            "{err}"
        );
        assert!(err.to_string().contains("extra-field schema"));
        let err = parse_individuals(b"first_name,last_name,dob,id,ID\n", FileFormat::Csv, None)
            .unwrap_err();
        assert_eq!(err, FileError::DuplicateColumn("id".into()));
        let header_only = parse("first_name,last_name,dob,id\n");
        assert!(header_only.rows.is_empty() && header_only.errors.is_empty());
    }

    #[test]
    fn every_bad_row_is_reported() {
        let text = "first_name,last_name,dob,id,sex,group_code,individual_role,recipient_info
A,B,12/31/1990,1,M,,,
,B,1990-01-01,2,X,,HEAD,
C,D,2990-01-01,3,f,,,3
E,F,1990-01-01,1,,,,
G,H,1990-01-01,5
";
        let p = parse(text);
        let got: Vec<(usize, Option<&str>)> = p
            .errors
            .iter()
            .map(|e| (e.row, e.column.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (2, Some("dob")),
                (3, Some("first_name")),
                (3, Some("sex")),
                (3, Some("individual_role")),
                (4, Some("dob")),
                (4, Some("recipient_info")),
                (5, Some("id")),
                (6, None),
            ]
        );
        assert!(p.errors[0].reason.contains("YYYY-MM-DD, got '12/31/1990'"));
        assert!(p.errors[6].reason.contains("already appears in row 2"));
        let role_without_group =
            parse("first_name,last_name,dob,id,individual_role\nA,B,1990-01-01,1,HEAD\n");
        assert_eq!(role_without_group.errors[0].reason, "needs a group_code");
    }

    #[test]
    fn extra_columns_follow_the_schema() {
        let text = "first_name,last_name,dob,id,disability,household_size
A,B,1990-01-01,1,yes,4
C,D,1990-01-01,2,perhaps,0
";
        let p = parse_individuals(text.as_bytes(), FileFormat::Csv, Some(&schema())).unwrap();
        assert_eq!(
            p.rows[0].extra,
            json!({"disability": true, "household_size": 4})
                .as_object()
                .unwrap()
                .clone()
        );
        let cols: Vec<_> = p.errors.iter().map(|e| e.column.clone().unwrap()).collect();
        assert_eq!(cols, ["disability", "household_size"]);
    }

    #[test]
    fn rejected_rows_come_back_with_their_reasons() {
        let p = parse(OPENIMIS);
        let mut rejected = p.errors.clone();
        rejected.push(RowError {
            row: 4,
            column: Some("location_name".into()),
            reason: "no location 'Fairfax'".into(),
        });
        let csv = String::from_utf8(p.rejected_csv(&rejected)).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "first_name,last_name,dob,id,location_name,individual_role,recipient_info,group_code,error"
        );
        assert!(lines[1].starts_with("Bob,Foo,1988-01-01,2,Washington DC,SPOUSE,1,AA,"));
        assert!(
            lines[2].starts_with("Michelle") && lines[2].contains("location_name: no location")
        );
        assert_eq!(lines.len(), 3);
        // The rejects file imports again as it is; rejected again, it keeps one reasons column.
        let again = parse_individuals(csv.as_bytes(), FileFormat::Csv, None).unwrap();
        assert_eq!((again.rows.len(), again.errors.len()), (2, 0));
        let still = [RowError {
            row: 2,
            column: None,
            reason: "still wrong".into(),
        }];
        let twice = String::from_utf8(again.rejected_csv(&still)).unwrap();
        assert_eq!(twice.lines().next().unwrap().matches("error").count(), 1);
        assert!(
            twice.lines().nth(1).unwrap().ends_with(",still wrong"),
            "{twice}"
        );
    }

    #[test]
    fn an_xlsx_reads_like_its_csv() {
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        let header = [
            "first_name",
            "last_name",
            "dob",
            "id",
            "group_code",
            "individual_role",
            "recipient_info",
        ];
        for (c, h) in header.iter().enumerate() {
            sheet.write_string(0, c as u16, *h).unwrap();
        }
        let date_format = rust_xlsxwriter::Format::new().set_num_format("dd/mm/yyyy");
        sheet.write_string(1, 0, "Zoë").unwrap();
        sheet.write_string(1, 1, "حسن").unwrap();
        let dob = rust_xlsxwriter::ExcelDateTime::from_ymd(1985, 6, 7).unwrap();
        sheet
            .write_datetime_with_format(1, 2, &dob, &date_format)
            .unwrap();
        sheet.write_number(1, 3, 1001.0).unwrap();
        sheet.write_string(1, 4, "G1").unwrap();
        sheet.write_string(1, 5, "HEAD").unwrap();
        sheet.write_number(1, 6, 1.0).unwrap();
        let bytes = book.save_to_buffer().unwrap();
        assert_eq!(FileFormat::sniff(&bytes), FileFormat::Xlsx);
        let from_xlsx = parse_individuals(&bytes, FileFormat::Xlsx, None).unwrap();
        let from_csv = parse(
            "first_name,last_name,dob,id,group_code,individual_role,recipient_info\nZoë,حسن,1985-06-07,1001,G1,HEAD,1\n",
        );
        assert!(
            from_xlsx.errors.is_empty() && from_csv.errors.is_empty(),
            "{:?}",
            from_xlsx.errors
        );
        assert_eq!(from_xlsx.rows, from_csv.rows);
        let broken =
            parse_individuals(b"PK\x03\x04 not really a zip", FileFormat::Xlsx, None).unwrap_err();
        assert!(matches!(broken, FileError::Spreadsheet(_)));
    }

    #[test]
    fn typed_rows_get_the_same_checks() {
        let row = |id: &str, extra: Value| ImportRow {
            row: 1,
            external_id: id.into(),
            first_name: "A".into(),
            last_name: "B".into(),
            dob: NaiveDate::from_ymd_opt(1990, 1, 1).unwrap(),
            sex: None,
            location_name: None,
            group_code: None,
            role: None,
            recipient: RecipientKind::None,
            extra: extra.as_object().unwrap().clone(),
        };
        let ok = check_rows(vec![row("1", json!({"disability": true}))], Some(&schema()));
        assert_eq!((ok.valid_rows().count(), ok.errors.len()), (1, 0));
        let bad = check_rows(
            vec![row("", json!({"disability": "yes", "colour": 1}))],
            Some(&schema()),
        );
        let cols: Vec<_> = bad
            .errors
            .iter()
            .map(|e| e.column.clone().unwrap())
            .collect();
        assert_eq!(cols, ["colour", "disability", "id"]);
    }
}

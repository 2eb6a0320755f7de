//! A benefit plan's extra-field schema: the per-plan fields (openIMIS `json_ext`) that
//! beneficiaries carry, and how text cells and JSON values are checked against it.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

/// Column names an individual upload reserves; an extra field may not reuse them.
pub const RESERVED: &[&str] = &[
    "first_name",
    "last_name",
    "dob",
    "id",
    "sex",
    "location_name",
    "group_code",
    "individual_role",
    "recipient_info",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ExtraSchema {
    #[serde(default)]
    pub fields: Vec<FieldSpec>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: FieldKind,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// The allowed values of an `enum` field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldKind {
    String,
    Integer,
    Number,
    Boolean,
    Date,
    Enum,
}

impl ExtraSchema {
    /// Checks the definition itself, so a plan with an unusable schema is refused when saved.
    pub fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for f in &self.fields {
            let n = f.name.as_str();
            let mut chars = n.chars();
            let well_formed = chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                && n.len() <= 64;
            if !well_formed {
                return Err(format!(
                    "field name '{n}' must start with a lower-case letter and hold only a-z, 0-9 and '_'"
                ));
            }
            if RESERVED.contains(&n) {
                return Err(format!(
                    "'{n}' is a standard column and cannot be an extra field"
                ));
            }
            if !seen.insert(n) {
                return Err(format!("field '{n}' is declared twice"));
            }
            if f.kind == FieldKind::Enum && f.values.is_empty() {
                return Err(format!("enum field '{n}' lists no values"));
            }
            if f.kind != FieldKind::Enum && !f.values.is_empty() {
                return Err(format!("field '{n}' has values but is not an enum"));
            }
            if let (Some(min), Some(max)) = (f.min, f.max)
                && min > max
            {
                return Err(format!("field '{n}' has min above max"));
            }
            let numeric = matches!(f.kind, FieldKind::Integer | FieldKind::Number);
            if !numeric && (f.min.is_some() || f.max.is_some()) {
                return Err(format!("field '{n}' has min/max but is not a number"));
            }
            if f.kind != FieldKind::String && f.max_length.is_some() {
                return Err(format!("field '{n}' has max_length but is not a string"));
            }
        }
        Ok(())
    }

    pub fn field(&self, name: &str) -> Option<&FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Checks extra fields sent as JSON (the API): unknown keys, types, ranges, required.
    pub fn validate_json(&self, extra: &Map<String, Value>) -> Result<(), Vec<(String, String)>> {
        let mut errors = Vec::new();
        for key in extra.keys() {
            if self.field(key).is_none() {
                errors.push((
                    key.clone(),
                    "is not a field of the plan's schema".to_owned(),
                ));
            }
        }
        for f in &self.fields {
            match extra.get(&f.name) {
                None | Some(Value::Null) if f.required => {
                    errors.push((f.name.clone(), "is required".to_owned()));
                }
                None | Some(Value::Null) => {}
                Some(v) => {
                    if let Err(e) = f.check_json(v) {
                        errors.push((f.name.clone(), e));
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }
}

impl FieldSpec {
    /// Reads a text cell (CSV, XLSX): `None` when empty.
    pub fn parse_cell(&self, raw: &str) -> Result<Option<Value>, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return if self.required {
                Err("is required".into())
            } else {
                Ok(None)
            };
        }
        let value = match self.kind {
            FieldKind::String => Value::String(raw.to_owned()),
            FieldKind::Integer => Value::from(
                raw.parse::<i64>()
                    .map_err(|_| format!("expected a whole number, got '{raw}'"))?,
            ),
            FieldKind::Number => {
                let n: f64 = raw
                    .parse()
                    .map_err(|_| format!("expected a number, got '{raw}'"))?;
                Value::Number(
                    Number::from_f64(n).ok_or_else(|| format!("expected a number, got '{raw}'"))?,
                )
            }
            FieldKind::Boolean => Value::Bool(match raw.to_lowercase().as_str() {
                "true" | "yes" | "y" | "1" | "oui" | "vrai" => true,
                "false" | "no" | "n" | "0" | "non" | "faux" => false,
                _ => return Err(format!("expected yes or no, got '{raw}'")),
            }),
            FieldKind::Date => Value::String(parse_date(raw)?.to_string()),
            FieldKind::Enum => Value::String(
                self.values
                    .iter()
                    .find(|v| v.eq_ignore_ascii_case(raw))
                    .ok_or_else(|| {
                        format!("expected one of {}, got '{raw}'", self.values.join(", "))
                    })?
                    .clone(),
            ),
        };
        self.check_json(&value)?;
        Ok(Some(value))
    }

    fn check_json(&self, v: &Value) -> Result<(), String> {
        let number = match (self.kind, v) {
            (FieldKind::String, Value::String(s)) => {
                if let Some(max) = self.max_length
                    && s.chars().count() > max
                {
                    return Err(format!("is longer than {max} characters"));
                }
                None
            }
            (FieldKind::Integer, Value::Number(n)) if n.is_i64() => n.as_f64(),
            (FieldKind::Integer, _) => return Err(format!("expected a whole number, got {v}")),
            (FieldKind::Number, Value::Number(n)) => n.as_f64(),
            (FieldKind::Boolean, Value::Bool(_)) => None,
            (FieldKind::Date, Value::String(s)) => {
                parse_date(s)?;
                None
            }
            (FieldKind::Enum, Value::String(s)) if self.values.contains(s) => None,
            (FieldKind::Enum, _) => {
                return Err(format!(
                    "expected one of {}, got {v}",
                    self.values.join(", ")
                ));
            }
            (kind, _) => return Err(format!("expected a {}, got {v}", kind_name(kind))),
        };
        if let Some(n) = number {
            if let Some(min) = self.min
                && n < min
            {
                return Err(format!("must be at least {min}, got {n}"));
            }
            if let Some(max) = self.max
                && n > max
            {
                return Err(format!("must be at most {max}, got {n}"));
            }
        }
        Ok(())
    }
}

fn kind_name(kind: FieldKind) -> &'static str {
    match kind {
        FieldKind::String => "text",
        FieldKind::Integer => "whole number",
        FieldKind::Number => "number",
        FieldKind::Boolean => "yes or no",
        FieldKind::Date => "date (YYYY-MM-DD)",
        FieldKind::Enum => "value from the list",
    }
}

/// Dates are ISO only: day/month order differs between countries, so anything else is
/// ambiguous and refused rather than guessed.
pub fn parse_date(raw: &str) -> Result<NaiveDate, String> {
    let raw = raw.trim();
    if raw.len() == 10 && raw.as_bytes()[4] == b'-' && raw.as_bytes()[7] == b'-' {
        if let Ok(d) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
            return Ok(d);
        }
        return Err(format!("'{raw}' is not a real date"));
    }
    Err(format!("date must be YYYY-MM-DD, got '{raw}'"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> ExtraSchema {
        serde_json::from_value(json!({"fields": [
            {"name": "disability", "type": "boolean"},
            {"name": "children_in_school", "type": "integer", "required": true, "min": 0, "max": 30},
            {"name": "income", "type": "number", "min": 0},
            {"name": "note", "type": "string", "max_length": 5},
            {"name": "registered_on", "type": "date"},
            {"name": "housing", "type": "enum", "values": ["OWNED", "RENTED", "NONE"]},
        ]}))
        .unwrap()
    }

    #[test]
    fn definitions_are_checked() {
        schema().check().unwrap();
        let bad = [
            (
                json!([{"name": "Bad Name", "type": "string"}]),
                "must start",
            ),
            (json!([{"name": "dob", "type": "date"}]), "standard column"),
            (
                json!([{"name": "a", "type": "string"}, {"name": "a", "type": "integer"}]),
                "twice",
            ),
            (json!([{"name": "e", "type": "enum"}]), "no values"),
            (
                json!([{"name": "n", "type": "integer", "min": 5, "max": 1}]),
                "min above max",
            ),
            (
                json!([{"name": "s", "type": "string", "min": 1}]),
                "not a number",
            ),
        ];
        for (fields, expected) in bad {
            let s: ExtraSchema = serde_json::from_value(json!({ "fields": fields })).unwrap();
            let err = s.check().unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
        assert!(
            serde_json::from_value::<ExtraSchema>(
                json!({"fields": [{"name": "a", "type": "string", "typo": 1}]})
            )
            .is_err()
        );
    }

    #[test]
    fn cells_parse_by_type() {
        let s = schema();
        let cell = |name: &str, raw: &str| s.field(name).unwrap().parse_cell(raw);
        assert_eq!(cell("disability", "Yes"), Ok(Some(json!(true))));
        assert_eq!(cell("disability", "non"), Ok(Some(json!(false))));
        assert_eq!(cell("disability", "VRAI"), Ok(Some(json!(true))));
        assert!(
            cell("disability", "maybe")
                .unwrap_err()
                .contains("yes or no")
        );
        assert_eq!(cell("children_in_school", "3"), Ok(Some(json!(3))));
        assert!(
            cell("children_in_school", "3.5")
                .unwrap_err()
                .contains("whole number")
        );
        assert!(
            cell("children_in_school", "three")
                .unwrap_err()
                .contains("'three'")
        );
        assert!(
            cell("children_in_school", "31")
                .unwrap_err()
                .contains("at most 30")
        );
        assert_eq!(cell("children_in_school", ""), Err("is required".into()));
        assert_eq!(cell("income", "12.5"), Ok(Some(json!(12.5))));
        assert!(cell("income", "-1").unwrap_err().contains("at least 0"));
        assert_eq!(cell("note", "ab"), Ok(Some(json!("ab"))));
        assert!(cell("note", "abcdef").is_err());
        assert_eq!(
            cell("registered_on", "2024-02-29"),
            Ok(Some(json!("2024-02-29")))
        );
        assert!(
            cell("registered_on", "2023-02-29")
                .unwrap_err()
                .contains("not a real date")
        );
        assert!(
            cell("registered_on", "29/02/2024")
                .unwrap_err()
                .contains("YYYY-MM-DD")
        );
        assert_eq!(cell("housing", "rented"), Ok(Some(json!("RENTED"))));
        assert!(
            cell("housing", "castle")
                .unwrap_err()
                .contains("OWNED, RENTED, NONE")
        );
        assert_eq!(cell("income", "  "), Ok(None));
    }

    #[test]
    fn json_values_are_checked() {
        let s = schema();
        let ok = json!({"children_in_school": 2, "housing": "NONE", "disability": false});
        s.validate_json(ok.as_object().unwrap()).unwrap();
        let bad = json!({"children_in_school": "2", "housing": "none", "colour": "red"});
        let errors = s.validate_json(bad.as_object().unwrap()).unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["colour", "children_in_school", "housing"]);
        let missing = s.validate_json(&Map::new()).unwrap_err();
        assert_eq!(
            missing,
            vec![("children_in_school".to_owned(), "is required".to_owned())]
        );
    }
}

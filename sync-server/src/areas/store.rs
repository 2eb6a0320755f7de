//! Areas: the location tree (regions, districts, villages) and the [`Scope`] every read of
//! the registry takes, so a query cannot reach outside a user's area by forgetting a filter.
//! Every other part of the store builds on it; it builds on none of them.

use rusqlite::{OptionalExtension, Row, params};
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::{Error, Result};
use crate::{
    store::audit,
    store::{ReadTx, WriteTx, text_column},
};

/// What part of the location tree a user may see.
#[derive(Debug, Clone, PartialEq)]
pub enum Scope {
    National,
    /// The subtree under one location, by its path (`R01/D02`).
    Area {
        path: String,
    },
}

impl Scope {
    /// The path prefix for SQL (`NULL` = everything); see [`IN_SCOPE`].
    pub fn sql(&self) -> Option<&str> {
        match self {
            Scope::National => None,
            Scope::Area { path } => Some(path),
        }
    }

    pub fn contains(&self, location_path: Option<&str>) -> bool {
        match (self, location_path) {
            (Scope::National, _) => true,
            (Scope::Area { .. }, None) => false,
            (Scope::Area { path }, Some(p)) => {
                p == path || (p.starts_with(path.as_str()) && p.as_bytes()[path.len()] == b'/')
            }
        }
    }
}

/// The scope filter on a location path column `l.path`, with the scope's path as `?1`
/// (`NULL` = national): [`under_path`] spelled out, since `format!` needs a literal.
pub const IN_SCOPE: &str =
    "(?1 IS NULL OR l.path = ?1 OR substr(l.path, 1, length(?1) + 1) = ?1 || '/')";

/// SQL: the location path `column` is `path` or below it (both SQL expressions).
/// `substr` rather than LIKE, since codes may contain `_`.
pub fn under_path(column: &str, path: &str) -> String {
    format!("({column} = {path} OR substr({column}, 1, length({path}) + 1) = {path} || '/')")
}

// ---------------------------------------------------------------------------------------------
// Locations

outpost_proto::named_enum!(
    LocationLevel, "location level" {
        Region = "REGION",
        District = "DISTRICT",
        Village = "VILLAGE",
    }
);

impl LocationLevel {
    /// A level as a file or form names it, in any case.
    fn named(s: &str) -> Result<LocationLevel> {
        s.parse().map_err(|_| {
            Error::Invalid(format!(
                "'{s}' is not a location level; expected REGION, DISTRICT or VILLAGE"
            ))
        })
    }

    fn parent(self) -> Option<LocationLevel> {
        match self {
            LocationLevel::Region => None,
            LocationLevel::District => Some(LocationLevel::Region),
            LocationLevel::Village => Some(LocationLevel::District),
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Location {
    pub id: Uuid,
    pub code: String,
    pub name: String,
    pub level: LocationLevel,
    pub path: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NewLocation {
    pub code: String,
    pub name: String,
    pub level: LocationLevel,
    pub parent_code: Option<String>,
}

fn location_from_row(r: &Row) -> rusqlite::Result<Location> {
    Ok(Location {
        id: r.get(0)?,
        code: r.get(1)?,
        name: r.get(2)?,
        level: text_column(r, 3)?,
        path: r.get(4)?,
    })
}

const LOCATION_COLUMNS: &str = "l.id, l.code, l.name, l.level, l.path";

/// Adds a location under its parent: regions at the top, districts in regions, villages in
/// districts. A scoped admin may only add inside their area.
pub fn add_location(
    tx: &WriteTx,
    actor: &str,
    scope: &Scope,
    new: &NewLocation,
) -> Result<Location> {
    check_code("location code", &new.code)?;
    let name = new.name.trim();
    if name.is_empty() {
        return Err(Error::Invalid("a location needs a name".into()));
    }
    let (path, parent_id) = match (new.level.parent(), new.parent_code.as_deref()) {
        (None, None) => (new.code.clone(), None),
        (None, Some(_)) => return Err(Error::Invalid("a region has no parent location".into())),
        (Some(level), None) => {
            return Err(Error::Invalid(format!(
                "a {} needs a parent {}",
                new.level.as_str().to_lowercase(),
                level.as_str().to_lowercase()
            )));
        }
        (Some(level), Some(parent_code)) => {
            let parent = location_by_code(tx, parent_code)?;
            if parent.level != level {
                return Err(Error::Invalid(format!(
                    "the parent of a {} must be a {}, and '{}' is a {}",
                    new.level.as_str().to_lowercase(),
                    level.as_str().to_lowercase(),
                    parent.code,
                    parent.level.as_str().to_lowercase()
                )));
            }
            (format!("{}/{}", parent.path, new.code), Some(parent.id))
        }
    };
    if !scope.contains(Some(&path)) {
        return Err(Error::Forbidden(format!(
            "location '{}' is outside your area",
            new.code
        )));
    }
    let id = Uuid::now_v7();
    tx.sqlite().execute(
        "INSERT INTO locations (id, code, name, level, parent_id, path) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, new.code, name, new.level.as_str(), parent_id, path],
    )
    .map_err(|e| unique_to_conflict(e, format!("location code '{}' is taken", new.code)))?;
    audit::append(
        tx,
        actor,
        "location.create",
        "location",
        Some(&id.to_string()),
        &json!({ "code": new.code, "name": name, "path": path }),
    )?;
    Ok(Location {
        id,
        code: new.code.clone(),
        name: name.to_owned(),
        level: new.level,
        path,
    })
}

/// Loads a `code,name,level,parent_code` CSV of locations (parents before children); all or
/// nothing.
pub fn import_locations(tx: &WriteTx, actor: &str, scope: &Scope, csv: &[u8]) -> Result<usize> {
    let text = std::str::from_utf8(csv.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(csv))
        .map_err(|_| Error::Invalid("the locations file must be UTF-8".into()))?;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut count = 0;
    for (i, record) in reader.deserialize::<LocationCsvRow>().enumerate() {
        let row =
            record.map_err(|e| Error::Invalid(format!("locations file row {}: {e}", i + 2)))?;
        let new = NewLocation {
            code: row.code,
            name: row.name,
            level: LocationLevel::named(&row.level)
                .map_err(|e| Error::Invalid(format!("locations file row {}: {e}", i + 2)))?,
            parent_code: row.parent_code.filter(|p| !p.is_empty()),
        };
        if location_by_code_opt(tx, &new.code)?.is_none() {
            add_location(tx, actor, scope, &new)
                .map_err(|e| Error::Invalid(format!("locations file row {}: {e}", i + 2)))?;
            count += 1;
        }
    }
    Ok(count)
}

#[derive(Deserialize)]
struct LocationCsvRow {
    code: String,
    name: String,
    level: String,
    parent_code: Option<String>,
}

pub fn location_by_code(conn: &ReadTx, code: &str) -> Result<Location> {
    location_by_code_opt(conn, code)?.ok_or_else(|| Error::not_found("location", code))
}

pub fn location_by_id(conn: &ReadTx, id: Uuid) -> Result<Location> {
    conn.sqlite()
        .query_row(
            &format!("SELECT {LOCATION_COLUMNS} FROM locations l WHERE l.id = ?1"),
            [id],
            location_from_row,
        )
        .optional()?
        .ok_or_else(|| Error::not_found("location", id))
}

fn location_by_code_opt(conn: &ReadTx, code: &str) -> Result<Option<Location>> {
    Ok(conn
        .sqlite()
        .query_row(
            &format!("SELECT {LOCATION_COLUMNS} FROM locations l WHERE l.code = ?1"),
            [code],
            location_from_row,
        )
        .optional()?)
}

pub fn list_locations(conn: &ReadTx, scope: &Scope) -> Result<Vec<Location>> {
    let mut stmt = conn.sqlite().prepare(&format!(
        "SELECT {LOCATION_COLUMNS} FROM locations l WHERE {IN_SCOPE} ORDER BY l.path"
    ))?;
    let rows = stmt.query_map([scope.sql()], location_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// [`IN_SCOPE`] for rows whose location may be unset: those are visible only to national users.
pub(crate) fn in_scope_or_unplaced() -> String {
    format!("(?1 IS NULL OR (l.path IS NOT NULL AND {IN_SCOPE}))")
}

/// Codes appear in URLs, files and paths: letters, digits, `-` and `_` only.
pub fn check_code(what: &str, code: &str) -> Result<()> {
    if code.is_empty()
        || code.len() > 64
        || !code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(Error::Invalid(format!(
            "{what} '{code}' must be 1 to 64 letters, digits, '-' or '_'"
        )));
    }
    Ok(())
}

pub(crate) fn unique_to_conflict(e: rusqlite::Error, message: String) -> Error {
    let e = Error::from(e);
    if e.is_constraint() {
        Error::Conflict(message)
    } else {
        e
    }
}

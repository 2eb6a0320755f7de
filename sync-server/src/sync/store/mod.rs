//! The sync protocol's storage: record documents merged from uploads (`records`) and the
//! replica pages devices download (`replica`).
//!
//! Both feeds are partitioned by location path: every entry of `replica_log` and
//! `doc_changes` names the partition it was written to (a village for people and their
//! records, `''` for programme-wide rows), and each partition is read from its own
//! `(path, seq)` index range. A download merges its partitions' ranges in `seq` order, so the
//! cursor stays one number and a page costs what changed in the device's partitions, however
//! busy the rest of the country is.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rusqlite::{CachedStatement, Connection, Rows};

use crate::Result;

pub mod records;
pub mod replica;

/// One partition a download reads.
pub(crate) struct Partition {
    pub path: String,
    /// A location above the assignment: the device holds its name (location rows), not the
    /// rest of what is filed there (a district's work projects, say).
    pub locations_only: bool,
}

/// The partitions of an assignment: every location at or under it, and, for the replica, the
/// programme-wide partition `''` and the locations above it.
pub(crate) fn partitions(
    conn: &Connection,
    assignment_path: &str,
    replica: bool,
) -> Result<Vec<Partition>> {
    // A range rather than a prefix test, so the path index answers it: the paths below `p`
    // are those from `p/` up to, not including, `p0` ('0' follows '/').
    let mut stmt = conn.prepare_cached(
        "SELECT path FROM locations
         WHERE path = ?1 OR (path > ?1 || '/' AND path < ?1 || '0') ORDER BY path",
    )?;
    let mut parts = stmt
        .query_map([assignment_path], |r| {
            Ok(Partition {
                path: r.get(0)?,
                locations_only: false,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if replica {
        parts.push(Partition {
            path: String::new(),
            locations_only: false,
        });
        let mut above = assignment_path;
        while let Some((parent, _)) = above.rsplit_once('/') {
            parts.push(Partition {
                path: parent.to_owned(),
                locations_only: true,
            });
            above = parent;
        }
    }
    Ok(parts)
}

/// One cached statement per partition: each partition's range is read by a query of its own,
/// all open at once while a page is merged. The connection's cache keeps one statement per
/// SQL text, so each slot's text is made distinct (a comment), or every page would prepare
/// all but one of them again.
pub(crate) fn statements<'c>(
    conn: &'c Connection,
    sql: &str,
    count: usize,
) -> Result<Vec<CachedStatement<'c>>> {
    (0..count)
        .map(|slot| Ok(conn.prepare_cached(&format!("{sql}\n-- partition slot {slot}"))?))
        .collect()
}

/// The entries of several partitions' ranges, each already in `seq` order, merged into one
/// `seq` order: what one query over the whole log would return for those partitions, without
/// reading any entry of another partition.
pub(crate) struct Merged<'s, T> {
    rows: Vec<Rows<'s>>,
    heads: Vec<Option<T>>,
    next: BinaryHeap<Reverse<(u64, usize)>>,
    read: fn(&rusqlite::Row) -> rusqlite::Result<(u64, T)>,
}

impl<'s, T> Merged<'s, T> {
    /// Starts every partition's query: `query` runs one statement for one partition and
    /// returns its rows ordered by `seq`, which `read` takes from a row with its item.
    pub fn open<'c: 's>(
        statements: &'s mut [CachedStatement<'c>],
        partitions: &[Partition],
        mut query: impl FnMut(&'s mut CachedStatement<'c>, &Partition) -> rusqlite::Result<Rows<'s>>,
        read: fn(&rusqlite::Row) -> rusqlite::Result<(u64, T)>,
    ) -> Result<Self> {
        let mut merged = Merged {
            rows: Vec::with_capacity(partitions.len()),
            heads: Vec::with_capacity(partitions.len()),
            next: BinaryHeap::with_capacity(partitions.len()),
            read,
        };
        for (stmt, partition) in statements.iter_mut().zip(partitions) {
            let rows = query(stmt, partition)?;
            merged.rows.push(rows);
            merged.heads.push(None);
            merged.advance(merged.rows.len() - 1)?;
        }
        Ok(merged)
    }

    fn advance(&mut self, at: usize) -> Result<()> {
        if let Some(row) = self.rows[at].next()? {
            let (seq, item) = (self.read)(row)?;
            self.heads[at] = Some(item);
            self.next.push(Reverse((seq, at)));
        }
        Ok(())
    }

    /// The entry with the lowest `seq` not yet returned, across every partition.
    pub fn next(&mut self) -> Result<Option<(u64, T)>> {
        let Some(Reverse((seq, at))) = self.next.pop() else {
            return Ok(None);
        };
        let item = self.heads[at]
            .take()
            .expect("a partition in the heap holds its head");
        self.advance(at)?;
        Ok(Some((seq, item)))
    }
}

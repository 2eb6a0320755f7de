//! The seam itself: a write is all or nothing, and so is a nested `all_or_nothing`.

use outpost_server::{Error, plans::store as plans};

use super::open_in;

fn maize(code: &str) -> plans::GoodsItem {
    plans::GoodsItem {
        code: code.into(),
        name: "Maize".into(),
        unit: "kg".into(),
    }
}

#[test]
fn a_failed_write_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path(), "registry");
    let result: Result<(), Error> = store.write(|tx| {
        plans::add_goods_item(tx, "test", &maize("MAIZE"))?;
        Err(Error::Invalid("stop".into()))
    });
    assert!(result.is_err());
    let count = store.read(|c| c.row_count("goods_items")).unwrap();
    assert_eq!(count, 0);
    // The audit entry the write made went with it.
    assert_eq!(store.read(|c| c.row_count("audit_log")).unwrap(), 0);
}

/// A part that fails inside a write is undone alone; the write's other changes stay, and a
/// part that succeeds stays too.
#[test]
fn a_failed_part_of_a_write_is_undone_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path(), "registry");
    let (kept, refused) = store
        .write(|tx| {
            plans::add_goods_item(tx, "test", &maize("BEFORE"))?;
            let kept = tx.all_or_nothing(|tx| plans::add_goods_item(tx, "test", &maize("KEPT")))?;
            let refused = tx.all_or_nothing(|tx| {
                plans::add_goods_item(tx, "test", &maize("UNDONE"))?;
                // The same code again: a constraint the backend enforces.
                plans::add_goods_item(tx, "test", &maize("UNDONE"))
            })?;
            Ok((kept, refused))
        })
        .unwrap();
    assert!(kept.is_ok());
    assert!(
        matches!(refused, Err(Error::Conflict(_) | Error::Storage { .. })),
        "{refused:?}"
    );
    let codes: Vec<String> = store
        .read(plans::list_goods_items)
        .unwrap()
        .into_iter()
        .map(|g| g.code)
        .collect();
    assert_eq!(codes, ["BEFORE", "KEPT"]);
}

/// A name that is not one of the store's tables is refused, not counted.
#[test]
fn only_the_stores_own_tables_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_in(dir.path(), "registry");
    for bad in ["no_such_table", "goods_items; DROP TABLE users", ""] {
        let err = store.read(|c| c.row_count(bad)).unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{bad}: {err}");
    }
}

//! Names, checksums and the plan of a run, on their own: no server needed.

use super::apply::{lock_key, plan, Record, Step};
use super::source::{checksum, parse_file_name};
use super::*;

#[test]
fn file_names() {
    let ok = |file: &str, version: i64, name: &str| {
        assert_eq!(
            parse_file_name(file),
            Ok((version, name.to_owned())),
            "{file}"
        );
    };
    ok("0001_create_users.sql", 1, "create_users");
    ok(
        "20240101120000_add_index.sql",
        20_240_101_120_000,
        "add_index",
    );
    ok("V1__create_users.sql", 1, "create_users");
    ok("v12__x.sql", 12, "x");
    ok("1_a_b.sql", 1, "a_b");
    ok("0_zero.sql", 0, "zero");
    for bad in [
        "create_users.sql",
        "1create.sql",
        "1_.sql",
        "_1_x.sql",
        "V1_x.sql",
        "V__x.sql",
        "1_x.SQL",
        "1_x",
        "-1_x.sql",
    ] {
        let err = parse_file_name(bad).unwrap_err();
        assert!(err.contains(bad), "{err}");
    }
    let err = parse_file_name("99999999999999999999_big.sql").unwrap_err();
    assert!(err.contains("bigint"), "{err}");
}

#[test]
fn checksums_ignore_crlf_only() {
    let lf = checksum("CREATE TABLE a (id int);\nCREATE TABLE b (id int);\n");
    assert_eq!(lf.len(), 64);
    assert_eq!(
        lf,
        checksum("CREATE TABLE a (id int);\r\nCREATE TABLE b (id int);\r\n")
    );
    assert_ne!(
        lf,
        checksum("CREATE TABLE a (id int);\nCREATE TABLE b (id bigint);\n")
    );
    // A known value: SHA-256 of the empty string.
    assert_eq!(
        checksum(""),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
}

fn migrator(files: &[(&'static str, &'static str)]) -> Migrator {
    Migrator::from_files(files.iter().copied()).unwrap()
}

fn record(m: &Migration) -> Record {
    Record {
        version: m.version(),
        name: m.name().to_owned(),
        checksum: m.checksum().to_owned(),
        execution_ms: 3,
    }
}

#[test]
fn ordered_by_version_and_duplicates_refused() {
    let m = migrator(&[("10_c.sql", "c"), ("2_b.sql", "b"), ("V1__a.sql", "a")]);
    let versions: Vec<i64> = m.migrations().iter().map(Migration::version).collect();
    assert_eq!(versions, [1, 2, 10]);
    let err = Migrator::from_files([("1_a.sql", "a"), ("V1__b.sql", "b")]).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("V1__b.sql") && text.contains("1_a.sql"),
        "{text}"
    );
    assert!(Migrator::from_files([("notes.sql", "")]).is_err());
}

#[test]
fn plan_applies_in_order_and_refuses_edits() {
    let m = migrator(&[("1_a.sql", "a"), ("2_b.sql", "b"), ("3_c.sql", "c")]);
    let all = m.migrations();
    assert!(matches!(plan(all, &[]).unwrap(), Step::Apply(x) if x.version() == 1));
    let first = [record(&all[0])];
    assert!(matches!(plan(all, &first).unwrap(), Step::Apply(x) if x.version() == 2));
    let every: Vec<Record> = all.iter().map(record).collect();
    assert!(matches!(plan(all, &every).unwrap(), Step::Done { missing } if missing.is_empty()));

    let mut edited = every.clone();
    edited[1].checksum = checksum("b -- changed");
    let err = plan(all, &edited).unwrap_err();
    assert!(
        matches!(&err, Error::Migration { file, version: Some(2), .. } if file == "2_b.sql"),
        "{err}"
    );
    assert!(err.to_string().contains("edited"), "{err}");
}

#[test]
fn plan_reports_missing_files_and_refuses_gaps() {
    let m = migrator(&[("1_a.sql", "a"), ("3_c.sql", "c")]);
    let all = m.migrations();
    let mut gone = record(&all[0]);
    gone.version = 2;
    gone.name = "b".into();
    let records = [record(&all[0]), gone, record(&all[1])];
    match plan(all, &records).unwrap() {
        Step::Done { missing } => {
            assert_eq!(missing.len(), 1);
            assert_eq!((missing[0].version, missing[0].name.as_str()), (2, "b"));
            assert_eq!(missing[0].duration, Duration::from_millis(3));
        }
        other => panic!("{other:?}"),
    }
    // 1 is pending while 3 is applied: out of order.
    let err = plan(all, &[record(&all[1])]).unwrap_err();
    assert!(
        matches!(&err, Error::Migration { file, .. } if file == "1_a.sql"),
        "{err}"
    );
}

#[test]
fn embedded_mistakes_surface_at_run() {
    let m = Migrator::__embedded(&[("1_a.sql", "a"), ("bad.sql", "b")]);
    assert!(m
        .invalid
        .as_ref()
        .is_some_and(|(file, _)| file == "bad.sql"));
    assert!(m.migrations().is_empty());
}

#[test]
fn table_names_and_checksums() {
    let m = migrator(&[("1_a.sql", "a")]);
    assert!(m.clone().with_table("").is_err());
    let other = m.clone().with_table("app_migrations").unwrap();
    assert_ne!(m.checksum(), other.checksum());
    assert_eq!(m.checksum(), migrator(&[("V1__b.sql", "a")]).checksum());
    assert_ne!(m.checksum(), migrator(&[("1_a.sql", "a;")]).checksum());
    let (a, b) = (m.table().unwrap(), other.table().unwrap());
    assert_ne!(lock_key(&a), lock_key(&b));
    assert_eq!(lock_key(&a), lock_key(&migrator(&[]).table().unwrap()));
}

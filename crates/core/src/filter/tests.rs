//! Filter language tests: parsing, type errors pointing at columns, evaluation, compilation.

use super::dynamo::{compile, AttrValue, Plan};
use super::*;
use crate::metadata::MetaValue;
use proptest::prelude::*;

fn schema() -> LabSchema {
    LabSchema::default()
}

fn subject(session: &str, status: &str, fatigue: f64, model: &str) -> Subject {
    let mut metadata = crate::Metadata::new();
    metadata.insert("fatigue".into(), MetaValue::Number(fatigue));
    metadata.insert("hardware_model".into(), MetaValue::Text(model.into()));
    metadata.insert("channels".into(), MetaValue::Number(8.0));
    let recorded_at = crate::SessionId::parse(session).unwrap().recorded_at();
    Subject {
        session: session.into(),
        recorded_at,
        status: status.into(),
        total_bytes: 600_000_000,
        files: 6,
        metadata,
    }
}

/// `check(filter, expected matches among a fixed set of sessions)`.
fn check(filter: &str, expect: &[&str]) {
    let sessions = [
        subject("20210301_161221", "processed", 3.5, "X200"),
        subject("20210315_090000", "failed", 7.0, "NeuroAmp-32"),
        subject("20210401_000000", "processed", 1.0, "BioRec Mk2"),
        subject("20210228_235959", "cataloged", 5.0, "X200"),
    ];
    let f = Filter::new(filter, &schema()).unwrap_or_else(|e| panic!("{}", e.render(filter)));
    let got: Vec<&str> = sessions
        .iter()
        .filter(|s| f.matches(s))
        .map(|s| s.session.as_str())
        .collect();
    assert_eq!(got, expect, "{filter}");
}

#[test]
fn evaluates_the_documented_example() {
    check(
        r#"fatigue > 3 and hardware_model = "X200" and date >= 2021-03-01 and date < 2021-04-01 and status = processed"#,
        &["20210301_161221"],
    );
}

#[test]
fn operators_and_precedence() {
    check(
        "",
        &[
            "20210301_161221",
            "20210315_090000",
            "20210401_000000",
            "20210228_235959",
        ],
    );
    check("fatigue >= 5", &["20210315_090000", "20210228_235959"]);
    check(
        "fatigue != 5",
        &["20210301_161221", "20210315_090000", "20210401_000000"],
    );
    check(
        "fatigue <= 3.5 or status = failed",
        &["20210301_161221", "20210315_090000", "20210401_000000"],
    );
    check(
        "not (status = processed) and fatigue < 6",
        &["20210228_235959"],
    );
    check(
        "status = processed or status = failed and fatigue > 100",
        &["20210301_161221", "20210401_000000"],
    );
    check(
        "(status = processed or status = failed) and fatigue > 3",
        &["20210301_161221", "20210315_090000"],
    );
    check(
        "hardware_model in (X200, \"BioRec Mk2\")",
        &["20210301_161221", "20210401_000000", "20210228_235959"],
    );
    check("hardware_model contains \"Mk\"", &["20210401_000000"]);
    check("hardware_model contains mk", &[]);
    check("room exists", &[]);
    check(
        "not room exists and fatigue exists",
        &[
            "20210301_161221",
            "20210315_090000",
            "20210401_000000",
            "20210228_235959",
        ],
    );
    check("room = B12", &[]);
    check(
        "not room = B12",
        &[
            "20210301_161221",
            "20210315_090000",
            "20210401_000000",
            "20210228_235959",
        ],
    );
    check("room != B12", &[]);
    check("STATUS = PROCESSED AND Fatigue > 3", &["20210301_161221"]);
    check("session = \"20210315_090000\"", &["20210315_090000"]);
}

#[test]
fn dates_and_times() {
    check("date = 2021-03-01", &["20210301_161221"]);
    check("date <= 2021-02-28", &["20210228_235959"]);
    check("date > 2021-03-15", &["20210401_000000"]);
    check(
        "date != 2021-03-01 and date < 2021-04-01",
        &["20210315_090000", "20210228_235959"],
    );
    check(
        "time >= 2021-03-01T16:12:21 and time < 2021-04-01T00:00",
        &["20210301_161221", "20210315_090000"],
    );
    check(
        "time > 2021-03-01T16:12:21",
        &["20210315_090000", "20210401_000000"],
    );
    check("recorded_at < 2021-03-01", &["20210228_235959"]);
}

/// `bad(filter, column, message fragment)`.
fn bad(filter: &str, column: usize, fragment: &str) {
    let err = Filter::new(filter, &schema()).expect_err(filter);
    assert!(err.message.contains(fragment), "{filter}: {}", err.message);
    assert_eq!(err.column, column, "{filter}: {}", err.render(filter));
}

#[test]
fn errors_point_at_the_column() {
    bad(
        "fatige > 3",
        0,
        "unknown field 'fatige' — did you mean 'fatigue'?",
    );
    bad(
        "fatigue > 3 and hardware_modle = X200",
        16,
        "did you mean 'hardware_model'?",
    );
    bad("zzzz = 1", 0, "known fields: session, date");
    bad(
        "fatigue > \"high\"",
        10,
        "'fatigue' is a number field but \"high\" is a text",
    );
    bad(
        "hardware_model = 3",
        17,
        "'hardware_model' is a text field but 3 is a number",
    );
    bad("date >= 3", 8, "'date' is a date field but 3 is a number");
    bad(
        "hardware_model > X200",
        0,
        "use = , != , in (…) or contains, not >",
    );
    bad(
        "status = done",
        9,
        "'done' is not a status; use one of detected",
    );
    bad(
        "fatigue contains \"3\"",
        17,
        "contains works on text fields",
    );
    bad("fatigue contains 3", 17, "contains needs a text");
    bad("date in (2021-03-01)", 0, "use >= and < for a range");
    bad(
        "fatigue >",
        9,
        "expected a value after '>' but found the end of the filter",
    );
    bad("fatigue > 3 and", 15, "expected a field name");
    bad("(fatigue > 3", 0, "never closed");
    bad("fatigue > 3)", 11, "no matching '('");
    bad("fatigue 3", 8, "expected a comparison after 'fatigue'");
    bad(
        "fatigue > 3 fatigue < 5",
        12,
        "expected 'and', 'or' or the end",
    );
    bad("hardware_model = \"X200", 17, "no closing \"");
    bad("date >= 2021-02-29", 8, "not a valid date");
    bad("fatigue > 3,5", 11, "expected 'and', 'or'");
    bad("fatigue ! 3", 8, "'!' must be followed by '='");
    bad("fatigue > 3 & x", 12, "unexpected character '&'");
    bad("hardware_model in X200", 18, "in needs a list");
}

#[test]
fn errors_render_with_a_caret() {
    let err = Filter::new("fatige > 3", &schema()).unwrap_err();
    assert_eq!(
        err.render("fatige > 3"),
        "fatige > 3\n^^^^^^ unknown field 'fatige' — did you mean 'fatigue'?"
    );
    assert_eq!(
        err.to_string(),
        "unknown field 'fatige' — did you mean 'fatigue'? (at column 1)"
    );
}

#[test]
fn compiles_date_bounded_filters_to_month_queries() {
    let f = Filter::new(
        "fatigue > 3 and date >= 2021-03-01 and date < 2021-05-01 and status = processed",
        &schema(),
    )
    .unwrap();
    let c = compile(&f);
    let Plan::Query {
        index,
        months,
        key_condition,
    } = &c.plan
    else {
        panic!("{c:?}")
    };
    assert_eq!(*index, "by_month");
    assert_eq!(months, &["2021-03", "2021-04"]);
    assert_eq!(key_condition, "#n0 = :month AND #n1 BETWEEN :v0 AND :v1");
    assert_eq!(c.values[":v0"], AttrValue::S("2021-03-01T00:00:00".into()));
    assert_eq!(c.values[":v1"], AttrValue::S("2021-04-30T23:59:59".into()));
    assert_eq!(c.filter.as_deref(), Some("#n2 > :v2 AND #n3 = :v3"));
    assert_eq!(c.names["#n2"], "m_fatigue");
    assert_eq!(c.values[":v2"], AttrValue::N("3".into()));
    assert_eq!(c.values[":v3"], AttrValue::S("PROCESSED".into()));
}

#[test]
fn compiles_everything_else_to_a_scan_of_session_items() {
    let f = Filter::new("date >= 2021-03-01 or fatigue != 2", &schema()).unwrap();
    let c = compile(&f);
    assert_eq!(c.plan, Plan::Scan);
    assert_eq!(
        c.filter.as_deref(),
        Some("#n0 = :v0 AND ((#n1 >= :v1) OR (attribute_type(#n2, :v3) AND #n2 <> :v2))")
    );
    assert_eq!(c.names["#n0"], "sk");
    let all = compile(&Filter::new("", &schema()).unwrap());
    assert_eq!(all.filter.as_deref(), Some("#n0 = :v0"));
    // Only a lower bound: unbounded range, scan.
    assert_eq!(
        compile(&Filter::new("date >= 2021-03-01", &schema()).unwrap()).plan,
        Plan::Scan
    );
    // An empty range queries no month.
    let empty =
        compile(&Filter::new("date > 2021-03-05 and date < 2021-03-01", &schema()).unwrap());
    assert!(matches!(empty.plan, Plan::Query { ref months, .. } if months.is_empty()));
}

#[test]
fn user_text_never_enters_the_expression() {
    let nasty = r#"hardware_model = "X) OR (#n0 <> :v0" and notes contains "' OR 1=1 --""#;
    let c = compile(&Filter::new(nasty, &schema()).unwrap());
    let text = format!("{:?}{:?}", c.plan, c.filter);
    assert!(!text.contains("OR 1=1") && !text.contains("X)"), "{text}");
    assert!(c
        .values
        .values()
        .any(|v| *v == AttrValue::S("X) OR (#n0 <> :v0".into())));
}

fn arb_filter() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        (
            prop::sample::select(vec!["fatigue", "channels", "sample_rate_hz"]),
            prop::sample::select(vec!["=", "!=", "<", "<=", ">", ">="]),
            0u8..12
        )
            .prop_map(|(f, o, v)| format!("{f} {o} {v}")),
        (
            prop::sample::select(vec!["hardware_model", "subject_id"]),
            prop::sample::select(vec!["X200", "S1", "\"BioRec Mk2\""])
        )
            .prop_map(|(f, v)| format!("{f} = {v}")),
        (1u32..28, prop::sample::select(vec!["<", ">=", "=", "!="]))
            .prop_map(|(d, o)| format!("date {o} 2021-03-{d:02}")),
        prop::sample::select(vec![
            "room exists",
            "status = processed",
            "hardware_model contains X",
            "hardware_model in (X200, S1)"
        ])
        .prop_map(String::from),
    ];
    leaf.prop_recursive(3, 12, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) or ({b})")),
            inner.prop_map(|a| format!("not ({a})")),
        ]
    })
}

proptest! {
    #[test]
    fn parser_never_panics(s in "\\PC{0,60}") {
        let _ = Filter::new(&s, &schema());
    }

    #[test]
    fn generated_filters_check_and_compile(src in arb_filter()) {
        let f = Filter::new(&src, &schema()).map_err(|e| TestCaseError::fail(e.render(&src)))?;
        let c = compile(&f);
        // Every placeholder used is defined, and every defined one is used (DynamoDB rejects both).
        let mut text = c.filter.clone().unwrap_or_default();
        if let Plan::Query { key_condition, .. } = &c.plan { text.push_str(key_condition); }
        for k in c.names.keys().chain(c.values.keys()) {
            prop_assert!(text.contains(k.as_str()), "{k} unused in {text}");
        }
    }
}

/// `refuse(filter, column, words in the message)`: bounds end in a clear error at a column,
/// never in a stack overflow further down (type checks, evaluation, compilation, drop).
fn refuse(filter: &str, column: usize, words: &str) {
    let e = match Filter::new(filter, &schema()) {
        Ok(_) => panic!("accepted a filter over a bound: {} bytes", filter.len()),
        Err(e) => e,
    };
    assert_eq!(e.column, column, "{}", e.message);
    assert!(e.message.contains(words), "{}", e.message);
}

#[test]
fn nesting_deeper_than_the_limit_is_refused_at_the_first_level_too_deep() {
    let ok = format!(
        "{}fatigue > 1{}",
        "(".repeat(MAX_DEPTH),
        ")".repeat(MAX_DEPTH)
    );
    Filter::new(&ok, &schema()).unwrap_or_else(|e| panic!("{}", e.render(&ok)));
    let deep = format!(
        "{}fatigue > 1{}",
        "(".repeat(MAX_DEPTH + 1),
        ")".repeat(MAX_DEPTH + 1)
    );
    refuse(&deep, MAX_DEPTH, "nests deeper than 32");
    let nots = format!("{}fatigue > 1", "not ".repeat(MAX_DEPTH + 1));
    refuse(&nots, 4 * MAX_DEPTH, "nests deeper");
    // A hostile depth that would overflow the stack without the bound.
    let hostile = format!(
        "{}fatigue > 1",
        "(".repeat(100_000).chars().take(4000).collect::<String>()
    );
    refuse(&hostile, MAX_DEPTH, "nests deeper");
}

#[test]
fn too_many_comparisons_or_values_are_refused() {
    let term = "fatigue > 1";
    let ok = vec![term; MAX_COMPARISONS].join(" and ");
    Filter::new(&ok, &schema()).unwrap_or_else(|e| panic!("{}", e.render(&ok)));
    let long = vec![term; MAX_COMPARISONS + 1].join(" or ");
    refuse(
        &long,
        MAX_COMPARISONS * (term.len() + 4),
        "more than 100 comparisons",
    );
    let values: Vec<String> = (0..=MAX_IN_VALUES).map(|i| format!("M{i}")).collect();
    let list = format!("hardware_model in ({})", values.join(", "));
    let at = list.rfind("M100").unwrap();
    refuse(&list, at, "at most 100 values");
}

#[test]
fn text_longer_than_the_limit_is_refused_before_parsing() {
    let long = format!("hardware_model = \"{}\"", "x".repeat(MAX_LENGTH));
    refuse(&long, MAX_LENGTH, "more than the 4096");
}

use serde_json::{Map, Value, json};

use super::*;

fn parse(v: Value) -> MetadataFilter {
    MetadataFilter::parse(&v).unwrap_or_else(|e| panic!("{v}: {e}"))
}

fn error(v: Value) -> String {
    match MetadataFilter::parse(&v) {
        Ok(f) => panic!("{v} parsed as {f:?}"),
        Err(e) => e.within("filter.metadata").to_string(),
    }
}

fn meta(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn parses_plain_values_operators_and_combinations() {
    assert!(parse(json!({})).is_empty());
    assert_eq!(
        parse(json!({"lang": "en"})).conditions(),
        [Condition::Compare {
            key: "lang".into(),
            op: CompareOp::Eq,
            value: Scalar::Str("en".into()),
        }]
    );
    let f = parse(json!({"year": {"$gte": 2020, "$lt": 2024}, "lang": {"$in": ["en", "de"]}}));
    assert_eq!(f.conditions().len(), 3);
    assert!(f.conditions().contains(&Condition::In {
        key: "lang".into(),
        values: vec![Scalar::Str("en".into()), Scalar::Str("de".into())],
        negated: false,
    }));
    let f = parse(json!({"$or": [{"a": 1}, {"b": null, "c": {"$exists": false}}]}));
    assert_eq!(
        f.conditions(),
        [Condition::Or(vec![
            Condition::Compare {
                key: "a".into(),
                op: CompareOp::Eq,
                value: Scalar::Num(1.0),
            },
            Condition::And(vec![
                Condition::Compare {
                    key: "b".into(),
                    op: CompareOp::Eq,
                    value: Scalar::Null,
                },
                Condition::Exists {
                    key: "c".into(),
                    present: false,
                },
            ]),
        ])]
    );
    // $and / $or nest inside each other's lists.
    parse(json!({"$and": [{"$or": [{"a": 1}, {"a": 2}]}, {"b": {"$ne": true}}]}));
}

#[test]
fn errors_name_the_place_and_what_was_expected() {
    assert_eq!(
        error(json!({"year": {"$gte": [2020]}})),
        "filter.metadata.year: $gte needs a number or a string, got an array"
    );
    assert_eq!(
        error(json!({"year": {"$lt": true}})),
        "filter.metadata.year: $lt needs a number or a string, got a boolean"
    );
    let unknown = error(json!({"title": {"$regex": "^a"}}));
    assert!(
        unknown.starts_with("filter.metadata.title: unknown operator $regex; ")
            && [
                "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"
            ]
            .iter()
            .all(|op| unknown.contains(op)),
        "{unknown}"
    );
    assert!(error(json!({"$not": {"a": 1}})).contains("unknown operator $not; only $and and $or"));
    assert!(error(json!({"a": {"$or": [{"b": 1}]}})).contains("$and and $or combine whole"));
    assert_eq!(
        error(json!({"lang": {"$in": ["en", {"x": 1}]}})),
        "filter.metadata.lang: $in[1] needs a string, number, boolean or null, got an object"
    );
    assert_eq!(
        error(json!({"lang": {"$nin": "en"}})),
        "filter.metadata.lang: $nin needs an array of strings, numbers, booleans or nulls, got a string"
    );
    assert_eq!(
        error(json!({"a": {"$exists": 1}})),
        "filter.metadata.a: $exists needs true or false, got a number"
    );
    assert!(error(json!({"tags": ["a", "b"]})).contains("use {\"$in\": [...]}"));
    assert!(error(json!({"a": {"b": 1}})).contains("top level only"));
    assert!(error(json!({"a": {"$eq": 1, "b": 1}})).contains("the key \"b\""));
    assert_eq!(
        error(json!({"a": {}})),
        "filter.metadata.a: a key's operator object must not be empty"
    );
    assert_eq!(
        error(json!({"$or": []})),
        "filter.metadata.$or: $or must not be empty"
    );
    assert_eq!(
        error(json!({"$or": [{"a": 1}, 2]})),
        "filter.metadata.$or[1]: a filter is a JSON object of conditions, got a number"
    );
    assert_eq!(
        error(json!({"$and": [{"a": {"$gt": null}}]})),
        "filter.metadata.$and[0].a: $gt needs a number or a string, got null"
    );
    assert_eq!(
        error(json!({"odd key.x": {"$eq": {}}})),
        "filter.metadata[\"odd key.x\"]: $eq needs a string, number, boolean or null, got an object"
    );
    assert_eq!(
        MetadataFilter::parse(&json!(["a"]))
            .unwrap_err()
            .to_string(),
        "a filter is a JSON object of conditions, got an array"
    );
}

#[test]
fn limits_clauses_values_and_keys() {
    let clauses = |n: usize| -> Value {
        Value::Object((0..n).map(|i| (format!("k{i}"), json!(i))).collect())
    };
    parse(clauses(MAX_CLAUSES));
    assert_eq!(
        error(clauses(MAX_CLAUSES + 1)),
        "filter.metadata: more than 64 clauses; the limit is 64"
    );
    // The hardening issue's case: far more keys than SQLite has variables.
    assert!(error(clauses(16_384)).contains("64 clauses"));
    // $and / $or count too, so nesting stays shallow.
    let mut deep = json!({"a": 1});
    for _ in 0..MAX_CLAUSES {
        deep = json!({"$and": [deep]});
    }
    assert!(error(deep).contains("64 clauses"));

    let values = |n: usize| json!({"id": {"$in": (0..n).collect::<Vec<_>>()}});
    parse(values(MAX_IN_VALUES));
    assert_eq!(
        error(values(MAX_IN_VALUES + 1)),
        "filter.metadata.id: $in has 1001 values; the limit is 1000"
    );
    let long = "k".repeat(MAX_KEY_BYTES + 1);
    assert!(error(json!({ long.clone(): 1 })).contains("is 257 bytes long; the limit is 256"));
    parse(json!({ "k".repeat(MAX_KEY_BYTES): 1 }));

    check_doc_ids(&vec!["d".to_string(); MAX_DOC_IDS]).unwrap();
    assert_eq!(
        check_doc_ids(&vec!["d".to_string(); MAX_DOC_IDS + 1])
            .unwrap_err()
            .within("filter.doc_ids")
            .to_string(),
        "filter.doc_ids: 10001 document ids; the limit is 10000"
    );
}

#[test]
fn metadata_is_capped_at_64_kib_and_key_length() {
    let sized = |bytes: usize| {
        // {"t":"..."} is 8 bytes of JSON around the string.
        meta(json!({"t": "x".repeat(bytes - 8)}))
    };
    check_metadata(&sized(MAX_METADATA_BYTES)).unwrap();
    assert_eq!(
        check_metadata(&sized(MAX_METADATA_BYTES + 1))
            .unwrap_err()
            .to_string(),
        "metadata: 65537 bytes of JSON; the limit is 65536 (64 KiB)"
    );
    let long = "k".repeat(MAX_KEY_BYTES + 1);
    assert!(
        check_metadata(&meta(json!({ long: 1 })))
            .unwrap_err()
            .to_string()
            .starts_with("metadata: the key \"kkkk")
    );
}

#[test]
fn every_operator_against_a_fixture() {
    let docs = [
        (
            "a",
            json!({"year": 2019, "lang": "en", "draft": true, "score": 0.5}),
        ),
        (
            "b",
            json!({"year": 2021, "lang": "de", "draft": false, "score": 1}),
        ),
        ("c", json!({"year": "2021", "lang": "fr", "note": null})),
        ("d", json!({"year": 2024.0, "tags": ["x"], "draft": 1})),
        ("e", json!({})),
    ];
    let hits = |f: Value| -> String {
        let f = parse(f);
        docs.iter()
            .filter(|(_, m)| f.matches(&meta(m.clone())))
            .map(|(id, _)| *id)
            .collect()
    };
    assert_eq!(hits(json!({})), "abcde");
    assert_eq!(hits(json!({"lang": "en"})), "a");
    assert_eq!(
        hits(json!({"year": {"$eq": 2021}})),
        "b",
        "the string \"2021\" is not 2021"
    );
    assert_eq!(hits(json!({"year": {"$eq": "2021"}})), "c");
    assert_eq!(hits(json!({"year": 2024})), "d", "2024.0 is 2024");
    assert_eq!(
        hits(json!({"year": {"$ne": 2021}})),
        "acde",
        "missing keys and other types pass $ne"
    );
    assert_eq!(hits(json!({"year": {"$gt": 2019}})), "bd");
    assert_eq!(hits(json!({"year": {"$gte": 2019}})), "abd");
    assert_eq!(hits(json!({"year": {"$lt": 2021}})), "a");
    assert_eq!(hits(json!({"year": {"$lte": 2021}})), "ab");
    assert_eq!(
        hits(json!({"year": {"$gte": "2000"}})),
        "c",
        "strings compare with strings"
    );
    assert_eq!(hits(json!({"lang": {"$gt": "d"}})), "abc");
    assert_eq!(hits(json!({"lang": {"$lt": "e"}})), "b");
    assert_eq!(hits(json!({"score": {"$gt": 0.7}})), "b");
    assert_eq!(hits(json!({"lang": {"$in": ["en", "fr"]}})), "ac");
    assert_eq!(hits(json!({"year": {"$in": [2019, "2021"]}})), "ac");
    assert_eq!(hits(json!({"lang": {"$nin": ["en", "fr"]}})), "bde");
    assert_eq!(hits(json!({"lang": {"$in": []}})), "");
    assert_eq!(hits(json!({"lang": {"$nin": []}})), "abcde");
    assert_eq!(hits(json!({"draft": true})), "a", "1 is not true");
    assert_eq!(hits(json!({"draft": 1})), "d", "true is not 1");
    assert_eq!(hits(json!({"draft": {"$in": [false, true]}})), "ab");
    assert_eq!(
        hits(json!({"note": null})),
        "c",
        "null matches a null value, not a missing key"
    );
    assert_eq!(hits(json!({"note": {"$exists": true}})), "c");
    assert_eq!(hits(json!({"draft": {"$exists": false}})), "ce");
    assert_eq!(hits(json!({"tags": {"$exists": true}})), "d");
    assert_eq!(hits(json!({"tags": "x"})), "", "arrays are not searched");
    assert_eq!(hits(json!({"year": {"$gte": 2019, "$lt": 2024}})), "ab");
    assert_eq!(
        hits(json!({"$or": [{"lang": "en"}, {"year": {"$gt": 2022}}]})),
        "ad"
    );
    assert_eq!(
        hits(
            json!({"$and": [{"draft": {"$exists": true}}, {"$or": [{"draft": false}, {"draft": 1}]}]})
        ),
        "bd"
    );
}

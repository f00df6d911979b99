//! Metadata filters in SQLite: the leaves of [`crate::filter::sql`] over a JSON text column,
//! read with `json_type` and `json_extract` so that types never coerce (`json_extract` alone
//! would turn `true` into 1 and a missing key into NULL).

use rusqlite::types::Value as SqlValue;

use crate::filter::sql::{Params, SqlDialect};
use crate::filter::{CompareOp, Scalar};

/// SQLite's numbered placeholder (`?1`, `?2`, ...), so that one parameter serves several uses.
pub fn placeholder(n: usize) -> String {
    format!("?{n}")
}

/// Renders filter leaves against one column holding a JSON object per row.
pub struct Sqlite<'a> {
    column: &'a str,
}

impl<'a> Sqlite<'a> {
    /// Leaves over `column` (an SQL expression, e.g. `d.metadata`; never user input).
    pub fn new(column: &'a str) -> Self {
        Self { column }
    }

    /// SQL for the JSON type (`'text'`, `'integer'`, `'real'`, `'true'`, `'false'`, `'null'`,
    /// `'array'`, `'object'`; NULL when absent) and the SQL value of `key`.
    fn access(&self, key: &str, params: &mut Params<SqlValue>) -> (String, String) {
        let column = self.column;
        if path_safe(key) {
            let path = params.bind(SqlValue::Text(json_path(key)));
            (
                format!("json_type({column}, {path})"),
                format!("json_extract({column}, {path})"),
            )
        } else {
            // A key that a JSON path cannot spell (SQLite ends a quoted label at the first
            // double quote): find it among the object's members instead.
            let key = params.bind(SqlValue::Text(key.to_string()));
            (
                format!("(SELECT type FROM json_each({column}) WHERE key = {key})"),
                format!("(SELECT value FROM json_each({column}) WHERE key = {key})"),
            )
        }
    }
}

impl SqlDialect for Sqlite<'_> {
    type Param = SqlValue;
    const TRUE: &'static str = "1";
    const FALSE: &'static str = "0";

    fn compare(
        &self,
        key: &str,
        op: CompareOp,
        value: &Scalar,
        params: &mut Params<SqlValue>,
    ) -> String {
        let operator = crate::filter::sql::operator(op);
        let ordered = !matches!(op, CompareOp::Eq | CompareOp::Ne);
        let (ty, val) = self.access(key, params);
        // IFNULL: a missing key makes the type NULL; the leaf must still say false.
        match value {
            Scalar::Str(s) => {
                let p = params.bind(SqlValue::Text(s.clone()));
                format!("IFNULL({ty} = 'text' AND {val} {operator} {p}, 0)")
            }
            Scalar::Num(n) => {
                let p = params.bind(SqlValue::Real(*n));
                format!("IFNULL({ty} IN ('integer', 'real') AND {val} {operator} {p}, 0)")
            }
            // Booleans and null have no order (the parser never asks).
            _ if ordered => Self::FALSE.to_string(),
            Scalar::Bool(b) => format!("IFNULL({ty} = '{b}', 0)"),
            Scalar::Null => format!("IFNULL({ty} = 'null', 0)"),
        }
    }

    fn one_of(&self, key: &str, values: &[Scalar], params: &mut Params<SqlValue>) -> String {
        let (ty, val) = self.access(key, params);
        let mut strings = Vec::new();
        let mut numbers = Vec::new();
        let mut kinds = Vec::new();
        for v in values {
            match v {
                Scalar::Str(s) => strings.push(serde_json::Value::String(s.clone())),
                Scalar::Num(n) => numbers.push(serde_json::Value::from(*n)),
                Scalar::Bool(true) => kinds.push("'true'"),
                Scalar::Bool(false) => kinds.push("'false'"),
                Scalar::Null => kinds.push("'null'"),
            }
        }
        // Each type's values travel as one JSON array parameter, however many there are.
        let mut any = Vec::new();
        for (list, types) in [(strings, "'text'"), (numbers, "'integer', 'real'")] {
            if !list.is_empty() {
                let p = params.bind(SqlValue::Text(serde_json::Value::Array(list).to_string()));
                any.push(format!(
                    "({ty} IN ({types}) AND {val} IN (SELECT value FROM json_each({p})))"
                ));
            }
        }
        if !kinds.is_empty() {
            kinds.sort_unstable();
            kinds.dedup();
            any.push(format!("{ty} IN ({})", kinds.join(", ")));
        }
        if any.is_empty() {
            return Self::FALSE.to_string();
        }
        format!("IFNULL({}, 0)", any.join(" OR "))
    }

    fn exists(&self, key: &str, params: &mut Params<SqlValue>) -> String {
        let (ty, _) = self.access(key, params);
        format!("({ty} IS NOT NULL)")
    }
}

/// Whether a quoted JSON path label can name `key` exactly: no quote, backslash or control
/// character, which SQLite's path syntax would read otherwise.
fn path_safe(key: &str) -> bool {
    !key.chars().any(|c| c == '"' || c == '\\' || c.is_control())
}

/// A JSON path selecting one top-level key, quoted so that dots, brackets and spaces are
/// literal (only for [`path_safe`] keys).
fn json_path(key: &str) -> String {
    format!("$.\"{key}\"")
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    use crate::filter::{MAX_CLAUSES, MAX_IN_VALUES, MetadataFilter};
    use crate::storage::embedded::store::Store;
    use crate::storage::{ChunkFilter, ChunkId, ModelIdentity, NewChunk, NewDocument};

    /// A store holding one single-chunk document per metadata object.
    struct Fixture {
        store: Store,
        ids: Vec<(ChunkId, String)>,
        metadata: Vec<Map<String, Value>>,
        _dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new(docs: &[(String, Value)]) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let model = ModelIdentity {
                name: "test-model".into(),
                fingerprint: "abc123".into(),
                dimension: 3,
                precision: "f32".into(),
            };
            let mut store = Store::open(dir.path(), &model).unwrap();
            let mut ids = Vec::new();
            let mut metadata = Vec::new();
            for (id, meta) in docs {
                let meta = meta.as_object().unwrap().clone();
                let chunk = NewChunk {
                    index: 0,
                    start: 0,
                    end: 1,
                    text: "x",
                    vector: &[1.0, 0.0, 0.0],
                    tokens: None,
                    section: &[],
                    pages: None,
                };
                let doc = NewDocument {
                    id,
                    source: None,
                    text: "x",
                    metadata: &meta,
                    content_hash: "h",
                    title: None,
                    title_in_context: false,
                    format: None,
                };
                let out = store.put_document(&doc, &[chunk]).unwrap();
                ids.push((out.added[0], id.clone()));
                metadata.push(meta);
            }
            Self {
                store,
                ids,
                metadata,
                _dir: dir,
            }
        }

        /// The ids SQLite admits, in fixture order.
        fn sql(&self, filter: &MetadataFilter) -> Vec<String> {
            let admitted = self
                .store
                .chunk_ids_matching(&ChunkFilter {
                    doc_ids: None,
                    metadata: filter.clone(),
                })
                .unwrap();
            self.ids
                .iter()
                .filter(|(chunk, _)| admitted.contains(chunk))
                .map(|(_, id)| id.clone())
                .collect()
        }

        /// The ids the in-memory reference admits, in fixture order.
        fn reference(&self, filter: &MetadataFilter) -> Vec<String> {
            self.ids
                .iter()
                .zip(&self.metadata)
                .filter(|(_, m)| filter.matches(m))
                .map(|((_, id), _)| id.clone())
                .collect()
        }
    }

    fn fixture() -> Fixture {
        Fixture::new(
            &[
                ("a", json!({"year": 2019, "lang": "en", "draft": true, "score": 0.5})),
                ("b", json!({"year": 2021, "lang": "de", "draft": false, "score": 1})),
                ("c", json!({"year": "2021", "lang": "fr", "note": null})),
                ("d", json!({"year": 2024.0, "tags": ["x"], "draft": 1, "o": {"p": 1}})),
                ("e", json!({})),
                (
                    "f",
                    json!({"dotted.key": "x", "q\"uote": "y", "back\\slash": 3, "new\nline": true, "": "empty", "ü": "ä", "[0]": 1}),
                ),
            ]
            .map(|(id, m)| (id.to_string(), m)),
        )
    }

    fn hits(f: &Fixture, filter: Value) -> String {
        let parsed = MetadataFilter::parse(&filter).unwrap();
        let sql = f.sql(&parsed);
        assert_eq!(
            sql,
            f.reference(&parsed),
            "SQLite and the reference differ on {filter}"
        );
        sql.concat()
    }

    #[test]
    fn every_operator_in_sqlite() {
        let f = fixture();
        assert_eq!(hits(&f, json!({})), "abcdef");
        assert_eq!(hits(&f, json!({"lang": "en"})), "a");
        assert_eq!(hits(&f, json!({"year": {"$eq": 2021}})), "b");
        assert_eq!(hits(&f, json!({"year": {"$eq": "2021"}})), "c");
        assert_eq!(hits(&f, json!({"year": 2024})), "d");
        assert_eq!(hits(&f, json!({"year": {"$ne": 2021}})), "acdef");
        assert_eq!(hits(&f, json!({"year": {"$gt": 2019}})), "bd");
        assert_eq!(hits(&f, json!({"year": {"$gte": 2019}})), "abd");
        assert_eq!(hits(&f, json!({"year": {"$lt": 2021}})), "a");
        assert_eq!(hits(&f, json!({"year": {"$lte": 2021}})), "ab");
        assert_eq!(hits(&f, json!({"year": {"$gte": "2000"}})), "c");
        assert_eq!(hits(&f, json!({"lang": {"$gt": "d"}})), "abc");
        assert_eq!(hits(&f, json!({"score": {"$gt": 0.7}})), "b");
        assert_eq!(hits(&f, json!({"lang": {"$in": ["en", "fr"]}})), "ac");
        assert_eq!(hits(&f, json!({"year": {"$in": [2019, "2021"]}})), "ac");
        assert_eq!(hits(&f, json!({"lang": {"$nin": ["en", "fr"]}})), "bdef");
        assert_eq!(hits(&f, json!({"lang": {"$in": []}})), "");
        assert_eq!(hits(&f, json!({"lang": {"$nin": []}})), "abcdef");
        assert_eq!(hits(&f, json!({"draft": true})), "a");
        assert_eq!(hits(&f, json!({"draft": 1})), "d");
        assert_eq!(hits(&f, json!({"draft": {"$ne": true}})), "bcdef");
        assert_eq!(
            hits(&f, json!({"draft": {"$in": [false, true, true]}})),
            "ab"
        );
        assert_eq!(hits(&f, json!({"note": null})), "c");
        assert_eq!(hits(&f, json!({"note": {"$in": [null]}})), "c");
        assert_eq!(hits(&f, json!({"note": {"$exists": true}})), "c");
        assert_eq!(hits(&f, json!({"draft": {"$exists": false}})), "cef");
        assert_eq!(hits(&f, json!({"tags": {"$exists": true}})), "d");
        assert_eq!(hits(&f, json!({"tags": "x"})), "");
        assert_eq!(hits(&f, json!({"o": {"$exists": true}})), "d");
        assert_eq!(hits(&f, json!({"year": {"$gte": 2019, "$lt": 2024}})), "ab");
        assert_eq!(
            hits(
                &f,
                json!({"$or": [{"lang": "en"}, {"year": {"$gt": 2022}}]})
            ),
            "ad"
        );
        assert_eq!(
            hits(
                &f,
                json!({"$and": [{"draft": {"$exists": true}}, {"$or": [{"draft": false}, {"draft": 1}]}]})
            ),
            "bd"
        );
    }

    #[test]
    fn keys_are_literal_whatever_their_characters() {
        let f = fixture();
        for (key, value) in [
            ("dotted.key", json!("x")),
            ("q\"uote", json!("y")),
            ("back\\slash", json!(3)),
            ("new\nline", json!(true)),
            ("", json!("empty")),
            ("ü", json!("ä")),
            ("[0]", json!(1)),
        ] {
            assert_eq!(hits(&f, json!({ key: value })), "f", "key {key:?}");
            assert_eq!(
                hits(&f, json!({ key: {"$exists": true} })),
                "f",
                "key {key:?}"
            );
            assert_eq!(
                hits(&f, json!({ key: {"$in": [value]} })),
                "f",
                "key {key:?}"
            );
            assert_eq!(
                hits(&f, json!({ key: {"$ne": value} })),
                "abcde",
                "key {key:?}"
            );
        }
        assert_eq!(hits(&f, json!({"dotted": {"$exists": true}})), "");
        assert_eq!(hits(&f, json!({"o.p": 1})), "", "no paths into objects");
    }

    #[test]
    fn the_largest_filters_bind_few_parameters() {
        let f = fixture();
        // 64 clauses, each an $in of 1,000 values: one JSON parameter per type and clause.
        let big: Map<String, Value> = (0..MAX_CLAUSES)
            .map(|i| {
                let values: Vec<Value> = (0..MAX_IN_VALUES)
                    .map(|v| {
                        if v % 2 == 0 {
                            json!(v)
                        } else {
                            json!(format!("{v}"))
                        }
                    })
                    .collect();
                (format!("k{i}"), json!({ "$nin": values }))
            })
            .collect();
        assert_eq!(hits(&f, Value::Object(big)), "abcdef");
        let ids: Vec<String> = (0..crate::filter::MAX_DOC_IDS)
            .map(|i| format!("d{i}"))
            .collect();
        let admitted = f
            .store
            .chunk_ids_matching(&ChunkFilter {
                doc_ids: Some(ids),
                metadata: MetadataFilter::default(),
            })
            .unwrap();
        assert!(admitted.is_empty());
    }

    #[test]
    fn filters_read_indexes_not_rows() {
        let f = fixture();
        let plan = |filter: ChunkFilter| -> String {
            let (sql, params) = crate::storage::embedded::store::matching_sql(&filter).unwrap();
            let mut stmt = f
                .store
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let rows = stmt
                .query_map(rusqlite::params_from_iter(params), |r| {
                    r.get::<_, String>(3)
                })
                .unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join("\n")
        };
        let by_metadata = plan(ChunkFilter {
            doc_ids: None,
            metadata: MetadataFilter::parse(&json!({"year": {"$gte": 2020}})).unwrap(),
        });
        assert!(
            by_metadata.contains("SCAN d USING COVERING INDEX documents_by_metadata")
                && by_metadata.contains("USING COVERING INDEX chunks_by_document"),
            "{by_metadata}"
        );
        let by_id = plan(ChunkFilter {
            doc_ids: Some(vec!["a".into()]),
            metadata: MetadataFilter::parse(&json!({"lang": "en"})).unwrap(),
        });
        assert!(
            by_id.contains("SEARCH d USING INDEX sqlite_autoindex_documents_1 (id=?)")
                && by_id.contains("USING COVERING INDEX chunks_by_document"),
            "{by_id}"
        );
    }

    /// Scalars and containers that make type mix-ups visible.
    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(json!(null)),
            Just(json!(true)),
            Just(json!(false)),
            (-3i64..4).prop_map(|n| json!(n)),
            (-3i64..4).prop_map(|n| json!(n as f64 + 0.5)),
            Just(json!(1.0)),
            prop::sample::select(vec!["", "a", "b", "B", "ab", "é", "1", "true", "null"])
                .prop_map(|s| json!(s)),
            Just(json!([1])),
            Just(json!({"a": 1})),
        ]
    }

    fn scalar() -> impl Strategy<Value = Value> {
        value().prop_filter("scalar", |v| !v.is_array() && !v.is_object())
    }

    const KEYS: [&str; 4] = ["a", "b", "x.y", "q\"k"];

    fn leaf() -> impl Strategy<Value = Value> {
        let key = prop::sample::select(KEYS.to_vec());
        let op = prop_oneof![
            scalar().prop_map(|v| v),
            scalar().prop_map(|v| json!({"$eq": v})),
            scalar().prop_map(|v| json!({"$ne": v})),
            (
                prop::sample::select(vec!["$gt", "$gte", "$lt", "$lte"]),
                scalar().prop_filter("ordered", |v| v.is_number() || v.is_string())
            )
                .prop_map(|(op, v)| json!({ op: v })),
            (any::<bool>(), prop::collection::vec(scalar(), 0..4))
                .prop_map(|(neg, vs)| json!({ if neg { "$nin" } else { "$in" }: vs })),
            any::<bool>().prop_map(|b| json!({"$exists": b})),
        ];
        (key, op).prop_map(|(k, op)| json!({ k: op }))
    }

    fn filter() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 12, 3, |inner| {
            (any::<bool>(), prop::collection::vec(inner, 1..4))
                .prop_map(|(or, list)| json!({ if or { "$or" } else { "$and" }: list }))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// SQLite admits exactly the documents the in-memory reference admits.
        #[test]
        fn sqlite_agrees_with_the_reference(
            docs in prop::collection::vec(
                prop::collection::btree_map(prop::sample::select(KEYS.to_vec()), value(), 0..4),
                1..12,
            ),
            filters in prop::collection::vec(filter(), 1..8),
        ) {
            let docs: Vec<(String, Value)> = docs
                .into_iter()
                .enumerate()
                .map(|(i, m)| (format!("d{i}"), Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())))
                .collect();
            let f = Fixture::new(&docs);
            for filter in filters {
                let parsed = MetadataFilter::parse(&filter).unwrap();
                prop_assert_eq!(f.sql(&parsed), f.reference(&parsed), "filter {}", filter);
            }
        }
    }
}

//! The metadata filter language: a typed condition tree, parsed once from JSON and then
//! trusted by every layer below.
//!
//! ```json
//! {"year": {"$gte": 2020}, "lang": {"$in": ["en", "de"]}, "$or": [{"draft": false}, {"reviewed": true}]}
//! ```
//!
//! A filter is a JSON object whose entries must all hold. An entry is `KEY: VALUE` (equality) or
//! `KEY: {"$op": OPERAND, ...}` (every operator must hold), or `"$and"` / `"$or"` with a list of
//! filter objects. Keys name top-level metadata keys literally: `"a.b"` is the key `a.b`, not
//! a path into an object. Types never coerce: numbers compare with numbers, strings with strings
//! (by Unicode code point), `true` never equals `1`, and a comparison across types matches
//! nothing. `$ne` and `$nin` are the exact complements of `$eq` and `$in`, so they also match
//! documents that lack the key or hold another type there. Arrays and objects stored in
//! metadata are only seen by `$exists` (and by those complements).
//!
//! The tree says nothing about storage: [`sql`] walks it for any SQL dialect (the store
//! implements SQLite's), and [`MetadataFilter::matches`] evaluates it in memory, the reference
//! the SQL translations are tested against.

mod eval;
mod parse;
pub mod sql;

#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

/// Most clauses in one filter: each comparison, each `$in`/`$exists` and each `$and`/`$or`.
/// Bounds the SQL a filter compiles to (and its bound parameters, far below SQLite's 32,766).
pub const MAX_CLAUSES: usize = 64;
/// Most values in one `$in` or `$nin` list (they travel as one JSON parameter).
pub const MAX_IN_VALUES: usize = 1000;
/// Most ids in a search's `doc_ids` (they travel as one JSON parameter).
pub const MAX_DOC_IDS: usize = 10_000;
/// Longest metadata key, in bytes, in a document or in a filter.
pub const MAX_KEY_BYTES: usize = 256;
/// Largest metadata of one document: its serialized JSON, in bytes (64 KiB). Filters read
/// documents' metadata row by row, so its size is what a filtered search pays for.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// A value a condition compares against. Numbers compare as 64-bit floats (exact for
/// integers up to 2^53).
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// A JSON string.
    Str(String),
    /// A JSON number.
    Num(f64),
    /// `true` or `false`.
    Bool(bool),
    /// JSON `null` (matches a key present with the value null, not a missing key).
    Null,
}

/// How a [`Condition::Compare`] relates the stored value to its operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    /// `$eq` (and a plain value): same type, same value.
    Eq,
    /// `$ne`: not `$eq`.
    Ne,
    /// `$gt`: same type (number or string), greater.
    Gt,
    /// `$gte`: same type, greater or equal.
    Gte,
    /// `$lt`: same type, less.
    Lt,
    /// `$lte`: same type, less or equal.
    Lte,
}

impl CompareOp {
    /// The operator as written in a filter.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eq => "$eq",
            Self::Ne => "$ne",
            Self::Gt => "$gt",
            Self::Gte => "$gte",
            Self::Lt => "$lt",
            Self::Lte => "$lte",
        }
    }
}

/// One node of a parsed filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The value at `key` compared with `value` (`$eq $ne $gt $gte $lt $lte`; ordered
    /// comparisons only ever hold a number or a string).
    Compare {
        /// The metadata key.
        key: String,
        /// The comparison.
        op: CompareOp,
        /// The operand.
        value: Scalar,
    },
    /// The value at `key` equals one of `values` (`$in`), or none of them (`$nin`).
    In {
        /// The metadata key.
        key: String,
        /// The candidates (at most [`MAX_IN_VALUES`]).
        values: Vec<Scalar>,
        /// `$nin`: the complement.
        negated: bool,
    },
    /// The document has `key` (any value, null included), or lacks it.
    Exists {
        /// The metadata key.
        key: String,
        /// `true` for present, `false` for absent.
        present: bool,
    },
    /// Every condition holds.
    And(Vec<Condition>),
    /// At least one condition holds.
    Or(Vec<Condition>),
}

/// A validated metadata filter: the conditions a document's metadata must all meet. The
/// default (empty) filter admits every document. Only [`MetadataFilter::parse`] makes one, so
/// a filter in hand is within the limits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetadataFilter {
    conditions: Vec<Condition>,
}

impl MetadataFilter {
    /// Parses a filter object (`filter.metadata` on the wire), checking operators, operand
    /// types and limits. Errors name the offending place, relative to the object.
    pub fn parse(value: &Value) -> Result<Self, FilterError> {
        match value {
            Value::Object(map) => Self::parse_object(map),
            other => Err(FilterError::new(
                "",
                FilterErrorKind::NotAnObject(json_kind(other)),
            )),
        }
    }

    /// [`MetadataFilter::parse`] for an object already in hand.
    pub fn parse_object(map: &Map<String, Value>) -> Result<Self, FilterError> {
        parse::parse_filter(map)
    }

    /// Whether the filter admits everything.
    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty()
    }

    /// The conditions, all of which must hold (none: everything passes).
    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }
}

/// Why a filter, or a document's metadata, was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{kind}", display_path(path))]
pub struct FilterError {
    /// Where: `year`, `$or[1].lang`, `lang.$in[3]`; empty for the filter as a whole. Callers
    /// prefix where the filter sits in their request ([`FilterError::within`]).
    pub path: String,
    /// What is wrong there.
    pub kind: FilterErrorKind,
}

impl FilterError {
    fn new(path: impl Into<String>, kind: FilterErrorKind) -> Self {
        Self {
            path: path.into(),
            kind,
        }
    }

    /// The same error with `prefix` (e.g. `filter.metadata`) in front of its path, so that the
    /// message names the place in the caller's request.
    pub fn within(mut self, prefix: &str) -> Self {
        self.path = join_path(prefix, &self.path);
        self
    }
}

fn display_path(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

/// What is wrong with a filter or with metadata.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterErrorKind {
    /// A filter, or an element of `$and`/`$or`, is not an object.
    #[error("a filter is a JSON object of conditions, got {0}")]
    NotAnObject(&'static str),
    /// An operand of the wrong JSON type.
    #[error("{op} needs {expected}, got {got}")]
    Operand {
        /// The operator.
        op: String,
        /// What it takes.
        expected: &'static str,
        /// What it got.
        got: &'static str,
    },
    /// A plain array value (equality with an array is not supported).
    #[error(
        "an array cannot be matched by equality; use {{\"$in\": [...]}} for one of several values"
    )]
    ArrayValue,
    /// A plain object value without operators.
    #[error(
        "an object value must hold operators ($eq, $gt, ...); metadata keys are matched at the top level only"
    )]
    NestedObject,
    /// An object mixing operators and plain keys.
    #[error("an object value must hold only operators, got the key {0:?} among them")]
    MixedOperators(String),
    /// An operator that does not exist where it stands.
    #[error("unknown operator {op}; {allowed}")]
    UnknownOperator {
        /// The operator as written.
        op: String,
        /// The operators allowed there.
        allowed: &'static str,
    },
    /// `{}` as a key's operators, or as an element of `$and`/`$or`; `[]` as `$and`/`$or`.
    #[error("{0} must not be empty")]
    Empty(&'static str),
    /// More clauses than [`MAX_CLAUSES`].
    #[error("more than {max} clauses; the limit is {max}", max = MAX_CLAUSES)]
    TooManyClauses,
    /// An `$in`/`$nin` list longer than [`MAX_IN_VALUES`].
    #[error("{op} has {count} values; the limit is {max}", max = MAX_IN_VALUES)]
    TooManyValues {
        /// `$in` or `$nin`.
        op: &'static str,
        /// How many it has.
        count: usize,
    },
    /// A `doc_ids` list longer than [`MAX_DOC_IDS`].
    #[error("{count} document ids; the limit is {max}", max = MAX_DOC_IDS)]
    TooManyDocIds {
        /// How many it has.
        count: usize,
    },
    /// A key longer than [`MAX_KEY_BYTES`].
    #[error("the key {key:?}... is {bytes} bytes long; the limit is {max}", max = MAX_KEY_BYTES)]
    KeyTooLong {
        /// The key's first characters.
        key: String,
        /// Its length.
        bytes: usize,
    },
    /// A document's metadata over [`MAX_METADATA_BYTES`].
    #[error("{bytes} bytes of JSON; the limit is {max} (64 KiB)", max = MAX_METADATA_BYTES)]
    MetadataTooLarge {
        /// Its serialized size.
        bytes: usize,
    },
    /// Not JSON, or not of the filter's shape (a query-string or command-line filter).
    #[error("{0}")]
    Malformed(String),
}

impl FilterErrorKind {
    /// The error at `path` (empty: the filter as a whole).
    pub fn at(self, path: impl Into<String>) -> FilterError {
        FilterError::new(path, self)
    }
}

/// Checks a search's `doc_ids` list against [`MAX_DOC_IDS`].
pub fn check_doc_ids(ids: &[String]) -> Result<(), FilterError> {
    if ids.len() > MAX_DOC_IDS {
        return Err(FilterErrorKind::TooManyDocIds { count: ids.len() }.at(""));
    }
    Ok(())
}

/// Checks a document's metadata: at most [`MAX_METADATA_BYTES`] of JSON and keys of at most
/// [`MAX_KEY_BYTES`], so that every filter reads bounded rows.
pub fn check_metadata(metadata: &Map<String, Value>) -> Result<(), FilterError> {
    if let Some(key) = metadata.keys().find(|k| k.len() > MAX_KEY_BYTES) {
        return Err(key_too_long(key).at("metadata"));
    }
    let bytes = json_size(metadata);
    if bytes > MAX_METADATA_BYTES {
        return Err(FilterErrorKind::MetadataTooLarge { bytes }.at("metadata"));
    }
    Ok(())
}

fn key_too_long(key: &str) -> FilterErrorKind {
    FilterErrorKind::KeyTooLong {
        key: key.chars().take(32).collect(),
        bytes: key.len(),
    }
}

/// The length of `metadata` serialized as compact JSON, without building the string.
fn json_size(metadata: &Map<String, Value>) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a map of JSON values into a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut count, metadata);
    count.0
}

/// The JSON type of a value, for messages ("an array").
fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `parent.child`, or `parent["odd key"]` when the key would read ambiguously.
fn join_path(parent: &str, child: &str) -> String {
    match (parent.is_empty(), child.is_empty()) {
        (true, _) => child.to_string(),
        (false, true) => parent.to_string(),
        (false, false) if child.starts_with('[') => format!("{parent}{child}"),
        (false, false) => format!("{parent}.{child}"),
    }
}

/// A metadata key as a path segment: bare when plain, JSON-quoted in brackets otherwise.
fn key_segment(key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '$'));
    if plain {
        key.to_string()
    } else {
        format!("[{}]", Value::String(key.to_string()))
    }
}

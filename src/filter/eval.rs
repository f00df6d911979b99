//! The filter language's meaning, in memory: the reference every SQL translation is tested
//! against, and usable wherever metadata is already in hand.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::{CompareOp, Condition, MetadataFilter, Scalar};

impl MetadataFilter {
    /// Whether a document with this metadata passes the filter.
    pub fn matches(&self, metadata: &Map<String, Value>) -> bool {
        self.conditions.iter().all(|c| c.matches(metadata))
    }
}

impl Condition {
    /// Whether a document with this metadata meets the condition.
    pub fn matches(&self, metadata: &Map<String, Value>) -> bool {
        match self {
            Self::Compare { key, op, value } => {
                let stored = metadata.get(key);
                match op {
                    CompareOp::Eq => equal(stored, value),
                    CompareOp::Ne => !equal(stored, value),
                    CompareOp::Gt => order(stored, value) == Some(Ordering::Greater),
                    CompareOp::Gte => order(stored, value).is_some_and(Ordering::is_ge),
                    CompareOp::Lt => order(stored, value) == Some(Ordering::Less),
                    CompareOp::Lte => order(stored, value).is_some_and(Ordering::is_le),
                }
            }
            Self::In {
                key,
                values,
                negated,
            } => {
                let stored = metadata.get(key);
                values.iter().any(|v| equal(stored, v)) != *negated
            }
            Self::Exists { key, present } => metadata.contains_key(key) == *present,
            Self::And(all) => all.iter().all(|c| c.matches(metadata)),
            Self::Or(any) => any.iter().any(|c| c.matches(metadata)),
        }
    }
}

/// Same type and same value; a missing key equals nothing.
fn equal(stored: Option<&Value>, operand: &Scalar) -> bool {
    match (stored, operand) {
        (Some(Value::String(s)), Scalar::Str(o)) => s == o,
        (Some(Value::Number(n)), Scalar::Num(o)) => n.as_f64() == Some(*o),
        (Some(Value::Bool(b)), Scalar::Bool(o)) => b == o,
        (Some(Value::Null), Scalar::Null) => true,
        _ => false,
    }
}

/// The order of a stored number or string against an operand of the same type; `None`
/// across types (and for a missing key).
fn order(stored: Option<&Value>, operand: &Scalar) -> Option<Ordering> {
    match (stored, operand) {
        // Rust orders strings byte by byte, which for UTF-8 is code-point order.
        (Some(Value::String(s)), Scalar::Str(o)) => Some(s.as_str().cmp(o.as_str())),
        (Some(Value::Number(n)), Scalar::Num(o)) => n.as_f64()?.partial_cmp(o),
        _ => None,
    }
}

//! JSON to a [`Condition`] tree, with every check a filter must pass (operators, operand
//! types, limits), failing at the first problem with its place.

use serde_json::{Map, Value};

use super::{
    CompareOp, Condition, FilterError, FilterErrorKind, MAX_CLAUSES, MAX_IN_VALUES, MAX_KEY_BYTES,
    MetadataFilter, Scalar, join_path, json_kind, key_segment, key_too_long,
};

const KEY_OPERATORS: &str =
    "a key's operators are $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin and $exists";
const TOP_OPERATORS: &str = "only $and and $or combine conditions; put other operators under a key, as in {\"year\": {\"$gte\": 2020}}";
const COMBINE_INSIDE_KEY: &str = "$and and $or combine whole conditions, as in {\"$or\": [{\"a\": 1}, {\"b\": 2}]}, not a key's operators";

/// Parses the entries of a filter object.
pub(super) fn parse_filter(map: &Map<String, Value>) -> Result<MetadataFilter, FilterError> {
    let mut parser = Parser { clauses: 0 };
    Ok(MetadataFilter {
        conditions: parser.object(map, "")?,
    })
}

/// Walks one filter, counting clauses as it goes so that a huge filter fails early and the
/// recursion stays as shallow as the clause limit.
struct Parser {
    clauses: usize,
}

impl Parser {
    fn count(&mut self) -> Result<(), FilterError> {
        self.clauses += 1;
        if self.clauses > MAX_CLAUSES {
            return Err(FilterErrorKind::TooManyClauses.at(""));
        }
        Ok(())
    }

    /// A filter object: one or more conditions per entry, all of which must hold.
    fn object(
        &mut self,
        map: &Map<String, Value>,
        path: &str,
    ) -> Result<Vec<Condition>, FilterError> {
        let mut out = Vec::with_capacity(map.len());
        for (key, value) in map {
            match key.as_str() {
                "$and" | "$or" => {
                    self.count()?;
                    let here = join_path(path, key);
                    let list = self.list(key, value, &here)?;
                    out.push(if key == "$and" {
                        Condition::And(list)
                    } else {
                        Condition::Or(list)
                    });
                }
                op if op.starts_with('$') => {
                    return Err(FilterErrorKind::UnknownOperator {
                        op: op.to_string(),
                        allowed: TOP_OPERATORS,
                    }
                    .at(path));
                }
                _ => self.field(key, value, path, &mut out)?,
            }
        }
        Ok(out)
    }

    /// The list of `$and` / `$or`: filter objects, each the conjunction of its entries.
    fn list(&mut self, op: &str, value: &Value, here: &str) -> Result<Vec<Condition>, FilterError> {
        let Value::Array(items) = value else {
            return Err(FilterErrorKind::Operand {
                op: op.to_string(),
                expected: "an array of filter objects",
                got: json_kind(value),
            }
            .at(here));
        };
        if items.is_empty() {
            return Err(FilterErrorKind::Empty(if op == "$and" { "$and" } else { "$or" }).at(here));
        }
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let at = format!("{here}[{i}]");
            let Value::Object(map) = item else {
                return Err(FilterErrorKind::NotAnObject(json_kind(item)).at(at));
            };
            if map.is_empty() {
                return Err(FilterErrorKind::Empty("a condition object").at(at));
            }
            let mut conditions = self.object(map, &at)?;
            out.push(match conditions.len() {
                1 => conditions.remove(0),
                _ => Condition::And(conditions),
            });
        }
        Ok(out)
    }

    /// `key: value` or `key: {"$op": operand, ...}`.
    fn field(
        &mut self,
        key: &str,
        value: &Value,
        path: &str,
        out: &mut Vec<Condition>,
    ) -> Result<(), FilterError> {
        if key.len() > MAX_KEY_BYTES {
            return Err(key_too_long(key).at(path));
        }
        let here = join_path(path, &key_segment(key));
        match value {
            Value::Object(ops) => {
                if ops.is_empty() {
                    return Err(FilterErrorKind::Empty("a key's operator object").at(here));
                }
                if let Some(plain) = ops.keys().find(|k| !k.starts_with('$')) {
                    let kind = if ops.keys().any(|k| k.starts_with('$')) {
                        FilterErrorKind::MixedOperators(plain.clone())
                    } else {
                        FilterErrorKind::NestedObject
                    };
                    return Err(kind.at(here));
                }
                for (op, operand) in ops {
                    self.count()?;
                    out.push(operator(key, op, operand, &here)?);
                }
            }
            Value::Array(_) => return Err(FilterErrorKind::ArrayValue.at(here)),
            plain => {
                self.count()?;
                out.push(Condition::Compare {
                    key: key.to_string(),
                    op: CompareOp::Eq,
                    value: scalar(plain, "$eq", &here)?,
                });
            }
        }
        Ok(())
    }
}

/// One `"$op": operand` of a key.
fn operator(key: &str, op: &str, operand: &Value, here: &str) -> Result<Condition, FilterError> {
    let compare = |op: CompareOp, value: Scalar| Condition::Compare {
        key: key.to_string(),
        op,
        value,
    };
    Ok(match op {
        "$eq" => compare(CompareOp::Eq, scalar(operand, op, here)?),
        "$ne" => compare(CompareOp::Ne, scalar(operand, op, here)?),
        "$gt" | "$gte" | "$lt" | "$lte" => {
            let cmp = match op {
                "$gt" => CompareOp::Gt,
                "$gte" => CompareOp::Gte,
                "$lt" => CompareOp::Lt,
                _ => CompareOp::Lte,
            };
            match operand {
                Value::Number(_) | Value::String(_) => compare(cmp, scalar(operand, op, here)?),
                _ => {
                    return Err(FilterErrorKind::Operand {
                        op: op.to_string(),
                        expected: "a number or a string",
                        got: json_kind(operand),
                    }
                    .at(here));
                }
            }
        }
        "$in" | "$nin" => {
            let name = if op == "$in" { "$in" } else { "$nin" };
            let Value::Array(items) = operand else {
                return Err(FilterErrorKind::Operand {
                    op: op.to_string(),
                    expected: "an array of strings, numbers, booleans or nulls",
                    got: json_kind(operand),
                }
                .at(here));
            };
            if items.len() > MAX_IN_VALUES {
                return Err(FilterErrorKind::TooManyValues {
                    op: name,
                    count: items.len(),
                }
                .at(here));
            }
            let values = items
                .iter()
                .enumerate()
                .map(|(i, item)| scalar(item, &format!("{op}[{i}]"), here))
                .collect::<Result<Vec<_>, _>>()?;
            Condition::In {
                key: key.to_string(),
                values,
                negated: op == "$nin",
            }
        }
        "$exists" => match operand {
            Value::Bool(present) => Condition::Exists {
                key: key.to_string(),
                present: *present,
            },
            other => {
                return Err(FilterErrorKind::Operand {
                    op: op.to_string(),
                    expected: "true or false",
                    got: json_kind(other),
                }
                .at(here));
            }
        },
        "$and" | "$or" => {
            return Err(FilterErrorKind::UnknownOperator {
                op: op.to_string(),
                allowed: COMBINE_INSIDE_KEY,
            }
            .at(here));
        }
        _ => {
            return Err(FilterErrorKind::UnknownOperator {
                op: op.to_string(),
                allowed: KEY_OPERATORS,
            }
            .at(here));
        }
    })
}

/// A JSON scalar as an operand; arrays and objects are refused, naming `op`.
fn scalar(value: &Value, op: &str, here: &str) -> Result<Scalar, FilterError> {
    let refuse = || {
        FilterErrorKind::Operand {
            op: op.to_string(),
            expected: "a string, number, boolean or null",
            got: json_kind(value),
        }
        .at(here)
    };
    Ok(match value {
        Value::Null => Scalar::Null,
        Value::Bool(b) => Scalar::Bool(*b),
        Value::Number(n) => Scalar::Num(n.as_f64().filter(|f| f.is_finite()).ok_or_else(refuse)?),
        Value::String(s) => Scalar::Str(s.clone()),
        Value::Array(_) | Value::Object(_) => return Err(refuse()),
    })
}

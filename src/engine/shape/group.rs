//! Grouping hits by their document or by a metadata value: the `k` best groups, each with up
//! to `size` passages in rank order, so that one long document cannot take every place of a
//! result list.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// Longest metadata key a grouping may name, in bytes (the filters' limit).
pub const MAX_KEY_BYTES: usize = 256;

/// What hits are grouped by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// Their document.
    DocId,
    /// A top-level metadata key of their document: documents holding the same value (a
    /// string, number or boolean) share a group; documents without one are left out.
    Metadata(String),
}

impl GroupBy {
    /// `"doc_id"` or a metadata key (taken literally, as filters take keys).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "doc_id" {
            return Ok(Self::DocId);
        }
        if text.is_empty() || text.starts_with('$') || text.len() > MAX_KEY_BYTES {
            return Err(format!(
                "group_by must be \"doc_id\" or a metadata key of 1 to {MAX_KEY_BYTES} bytes not \
                 starting with $, got {text:?}"
            ));
        }
        Ok(Self::Metadata(text.to_string()))
    }

    /// The name as a request gives it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::DocId => "doc_id",
            Self::Metadata(key) => key,
        }
    }

    /// The group of a passage of document `doc_id` with `metadata`; `None` when it belongs to
    /// none (no value at the key, or `null`, an array or an object there).
    pub fn key_of(&self, doc_id: &str, metadata: &Map<String, Value>) -> Option<Value> {
        match self {
            Self::DocId => Some(Value::String(doc_id.to_string())),
            Self::Metadata(key) => match metadata.get(key)? {
                v @ (Value::String(_) | Value::Bool(_)) => Some(v.clone()),
                Value::Number(n) => Some(Value::Number(n.clone())),
                Value::Null | Value::Array(_) | Value::Object(_) => None,
            },
        }
    }
}

/// Hits collected into groups as they arrive in rank order.
#[derive(Debug)]
pub struct Grouper {
    groups: usize,
    size: usize,
    /// Each group's key and the positions of its hits, in order of the group's first hit.
    found: Vec<(Value, Vec<usize>)>,
    by_key: HashMap<String, usize>,
}

impl Grouper {
    /// Collects up to `groups` groups of up to `size` hits each.
    pub fn new(groups: usize, size: usize) -> Self {
        Self {
            groups,
            size,
            found: Vec::new(),
            by_key: HashMap::new(),
        }
    }

    /// Offers the hit at `position` (positions come in rank order) with its group's key;
    /// returns whether it was taken (its group has room, or is new and there is room for it).
    pub fn offer(&mut self, key: Option<Value>, position: usize) -> bool {
        let Some(key) = key else { return false };
        let name = canonical(&key);
        match self.by_key.get(&name) {
            Some(&g) if self.found[g].1.len() < self.size => {
                self.found[g].1.push(position);
                true
            }
            Some(_) => false,
            None if self.found.len() < self.groups => {
                self.by_key.insert(name, self.found.len());
                self.found.push((key, vec![position]));
                true
            }
            None => false,
        }
    }

    /// Whether every group there can be is full: later hits cannot change the answer.
    pub fn is_complete(&self) -> bool {
        self.found.len() == self.groups && self.found.iter().all(|(_, h)| h.len() == self.size)
    }

    /// The groups, in order of their best hit, each with its hits' positions in rank order.
    pub fn into_groups(self) -> Vec<(Value, Vec<usize>)> {
        self.found
    }
}

/// One spelling per value, so that `2024` and `2024.0` fall in one group (as filters compare
/// them equal).
fn canonical(key: &Value) -> String {
    match key {
        Value::Number(n) => match n.as_f64() {
            Some(f) => format!("n:{f:?}"),
            None => format!("n:{n}"),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn groups_fill_in_rank_order_and_stop_when_full() {
        let mut g = Grouper::new(2, 2);
        let keys = ["a", "a", "a", "b", "c", "b", "b"];
        let taken: Vec<bool> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| g.offer(Some(json!(k)), i))
            .collect();
        assert_eq!(taken, [true, true, false, true, false, true, false]);
        assert!(g.is_complete());
        let groups = g.into_groups();
        assert_eq!(groups, [(json!("a"), vec![0, 1]), (json!("b"), vec![3, 5])]);
    }

    #[test]
    fn metadata_keys_group_scalars_and_equal_numbers() {
        let by = GroupBy::parse("year").unwrap();
        let meta = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            by.key_of("d", &meta(json!({"year": 2024}))),
            Some(json!(2024))
        );
        assert_eq!(by.key_of("d", &meta(json!({"year": [1]}))), None);
        assert_eq!(by.key_of("d", &meta(json!({"year": null}))), None);
        assert_eq!(by.key_of("d", &meta(json!({}))), None);
        let mut g = Grouper::new(5, 5);
        assert!(g.offer(Some(json!(2024)), 0));
        assert!(g.offer(Some(json!(2024.0)), 1));
        assert!(!g.offer(None, 2));
        assert_eq!(g.into_groups().len(), 1);
        assert_eq!(GroupBy::parse("doc_id").unwrap(), GroupBy::DocId);
        assert!(GroupBy::parse("").is_err());
        assert!(GroupBy::parse("$or").is_err());
        assert!(GroupBy::parse(&"k".repeat(257)).is_err());
    }
}

//! Filters as SQL, for any dialect: the walk over the tree (`AND`, `OR`, negation) is shared,
//! and a [`SqlDialect`] renders the leaves for its database's JSON functions (SQLite's in
//! `store`; a PostgreSQL store would render `jsonb` operators against the same tree).
//!
//! Every operand is a bound parameter, never text in the statement, and the number of
//! parameters is bounded by the filter's limits.

use super::{CompareOp, Condition, MetadataFilter, Scalar};

/// Parameters of a statement being built, and their placeholders.
#[derive(Debug)]
pub struct Params<P> {
    values: Vec<P>,
    placeholder: fn(usize) -> String,
}

impl<P> Params<P> {
    /// No parameters yet; `placeholder(n)` names the n-th (from 1), e.g. `?1` or `$1`.
    pub fn new(placeholder: fn(usize) -> String) -> Self {
        Self {
            values: Vec::new(),
            placeholder,
        }
    }

    /// Adds a parameter and returns its placeholder (which may be used more than once).
    pub fn bind(&mut self, value: P) -> String {
        self.values.push(value);
        (self.placeholder)(self.values.len())
    }

    /// The parameters in placeholder order.
    pub fn into_values(self) -> Vec<P> {
        self.values
    }

    /// How many are bound.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether none are bound.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// How one database expresses the leaves of a filter over a JSON metadata column.
///
/// Every expression a dialect returns must be true or false, never NULL (a missing key
/// included), so that the walker can negate it: `$ne`, `$nin` and `$exists: false` are
/// `NOT` of `$eq`, `$in` and `$exists: true`.
pub trait SqlDialect {
    /// The parameter type of the database's driver.
    type Param;
    /// A condition that always holds.
    const TRUE: &'static str;
    /// A condition that never holds.
    const FALSE: &'static str;

    /// `key` holds a value of `value`'s type that relates to it by `op`; `op` is never
    /// [`CompareOp::Ne`], and ordered comparisons only get numbers and strings.
    fn compare(
        &self,
        key: &str,
        op: CompareOp,
        value: &Scalar,
        params: &mut Params<Self::Param>,
    ) -> String;

    /// `key` holds a value equal (same type) to one of `values` (never empty).
    fn one_of(&self, key: &str, values: &[Scalar], params: &mut Params<Self::Param>) -> String;

    /// The metadata has `key`, whatever its value (null included).
    fn exists(&self, key: &str, params: &mut Params<Self::Param>) -> String;
}

/// The SQL operator of a comparison (`$ne` is rendered as `NOT` of `=` by the walker).
pub fn operator(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Eq | CompareOp::Ne => "=",
        CompareOp::Gt => ">",
        CompareOp::Gte => ">=",
        CompareOp::Lt => "<",
        CompareOp::Lte => "<=",
    }
}

/// The SQL condition for `filter` in `dialect`, its parameters added to `params`.
pub fn to_sql<D: SqlDialect>(
    dialect: &D,
    filter: &MetadataFilter,
    params: &mut Params<D::Param>,
) -> String {
    all(dialect, filter.conditions(), params)
}

fn all<D: SqlDialect>(d: &D, conditions: &[Condition], params: &mut Params<D::Param>) -> String {
    join(d, conditions, " AND ", D::TRUE, params)
}

fn join<D: SqlDialect>(
    d: &D,
    conditions: &[Condition],
    separator: &str,
    empty: &str,
    params: &mut Params<D::Param>,
) -> String {
    match conditions {
        [] => empty.to_string(),
        [one] => condition(d, one, params),
        many => {
            let parts: Vec<String> = many.iter().map(|c| condition(d, c, params)).collect();
            format!("({})", parts.join(separator))
        }
    }
}

fn condition<D: SqlDialect>(d: &D, c: &Condition, params: &mut Params<D::Param>) -> String {
    match c {
        Condition::Compare {
            key,
            op: CompareOp::Ne,
            value,
        } => format!("NOT ({})", d.compare(key, CompareOp::Eq, value, params)),
        Condition::Compare { key, op, value } => d.compare(key, *op, value, params),
        Condition::In {
            key,
            values,
            negated,
        } => {
            let any = if values.is_empty() {
                D::FALSE.to_string()
            } else {
                d.one_of(key, values, params)
            };
            if *negated {
                format!("NOT ({any})")
            } else {
                any
            }
        }
        Condition::Exists { key, present } => {
            let has = d.exists(key, params);
            if *present {
                has
            } else {
                format!("NOT ({has})")
            }
        }
        Condition::And(all) => join(d, all, " AND ", D::TRUE, params),
        Condition::Or(any) => join(d, any, " OR ", D::FALSE, params),
    }
}

//! Metadata filters in PostgreSQL: the leaves of [`crate::filter::sql`] over a `jsonb`
//! column. Types never coerce: each leaf checks `jsonb_typeof` first, inside a `CASE` so that
//! a cast only ever sees a value of its type, and strings compare byte-wise (`COLLATE "C"`)
//! as they do in the embedded backend.
//!
//! PostgreSQL text cannot hold NUL, so nothing stored has one: an operand or key with NUL is
//! decided here instead of being sent (equal to nothing; ordered against the part before its
//! first NUL, which orders the same against any NUL-free string).

use postgres::types::ToSql;

use crate::filter::sql::{Params, SqlDialect};
use crate::filter::{CompareOp, Scalar};

/// A bound parameter of a dynamic statement.
pub type Param = Box<dyn ToSql + Sync + Send>;

/// PostgreSQL's numbered placeholder (`$1`, `$2`, ...).
pub fn placeholder(n: usize) -> String {
    format!("${n}")
}

/// Renders filter leaves against one `jsonb` column.
pub struct Postgres<'a> {
    column: &'a str,
}

impl<'a> Postgres<'a> {
    /// Leaves over `column` (an SQL expression, e.g. `d.metadata`; never user input).
    pub fn new(column: &'a str) -> Self {
        Self { column }
    }

    /// The member `key` of the column, as `jsonb` (NULL when absent).
    fn member(&self, key: &str, params: &mut Params<Param>) -> String {
        let key = params.bind(Box::new(key.to_string()));
        format!("({} -> {key}::text)", self.column)
    }
}

impl SqlDialect for Postgres<'_> {
    type Param = Param;
    const TRUE: &'static str = "true";
    const FALSE: &'static str = "false";

    fn compare(
        &self,
        key: &str,
        op: CompareOp,
        value: &Scalar,
        params: &mut Params<Param>,
    ) -> String {
        let operator = crate::filter::sql::operator(op);
        let ordered = !matches!(op, CompareOp::Eq | CompareOp::Ne);
        if key.contains('\0') {
            return Self::FALSE.to_string();
        }
        let (operator, value) = match value {
            Scalar::Str(s) if s.contains('\0') => {
                // t > "a\0x" and t >= "a\0x" are t > "a"; t < and t <= "a\0x" are t <= "a".
                let prefix = s.split('\0').next().unwrap_or_default().to_string();
                let operator = match op {
                    CompareOp::Eq | CompareOp::Ne => return Self::FALSE.to_string(),
                    CompareOp::Gt | CompareOp::Gte => ">",
                    CompareOp::Lt | CompareOp::Lte => "<=",
                };
                (operator, std::borrow::Cow::Owned(Scalar::Str(prefix)))
            }
            _ => (operator, std::borrow::Cow::Borrowed(value)),
        };
        let member = self.member(key, params);
        match value.as_ref() {
            Scalar::Str(s) => {
                let p = params.bind(Box::new(s.clone()));
                format!(
                    "(CASE WHEN jsonb_typeof({member}) = 'string' \
                     THEN ({member} #>> '{{}}') COLLATE \"C\" {operator} {p}::text COLLATE \"C\" \
                     ELSE false END)"
                )
            }
            Scalar::Num(n) => {
                let p = params.bind(Box::new(*n));
                format!(
                    "(CASE WHEN jsonb_typeof({member}) = 'number' \
                     THEN ({member} #>> '{{}}')::float8 {operator} {p}::float8 ELSE false END)"
                )
            }
            // Booleans and null have no order (the parser never asks).
            _ if ordered => Self::FALSE.to_string(),
            Scalar::Bool(b) => format!("coalesce({member} = '{b}'::jsonb, false)"),
            Scalar::Null => format!("coalesce(jsonb_typeof({member}) = 'null', false)"),
        }
    }

    fn one_of(&self, key: &str, values: &[Scalar], params: &mut Params<Param>) -> String {
        if key.contains('\0') {
            return Self::FALSE.to_string();
        }
        let member = self.member(key, params);
        let mut strings = Vec::new();
        let mut numbers = Vec::new();
        let mut kinds = Vec::new();
        for v in values {
            match v {
                // Equal to nothing stored.
                Scalar::Str(s) if s.contains('\0') => {}
                Scalar::Str(s) => strings.push(s.clone()),
                Scalar::Num(n) => numbers.push(*n),
                Scalar::Bool(true) => kinds.push("'true'::jsonb"),
                Scalar::Bool(false) => kinds.push("'false'::jsonb"),
                Scalar::Null => kinds.push("'null'::jsonb"),
            }
        }
        // Each type's values travel as one array parameter, however many there are.
        let mut any = Vec::new();
        if !strings.is_empty() {
            let p = params.bind(Box::new(strings));
            any.push(format!(
                "(CASE WHEN jsonb_typeof({member}) = 'string' \
                 THEN ({member} #>> '{{}}') = ANY({p}::text[]) ELSE false END)"
            ));
        }
        if !numbers.is_empty() {
            let p = params.bind(Box::new(numbers));
            any.push(format!(
                "(CASE WHEN jsonb_typeof({member}) = 'number' \
                 THEN ({member} #>> '{{}}')::float8 = ANY({p}::float8[]) ELSE false END)"
            ));
        }
        if !kinds.is_empty() {
            kinds.sort_unstable();
            kinds.dedup();
            any.push(format!(
                "coalesce({member} IN ({}), false)",
                kinds.join(", ")
            ));
        }
        if any.is_empty() {
            return Self::FALSE.to_string();
        }
        format!("({})", any.join(" OR "))
    }

    fn exists(&self, key: &str, params: &mut Params<Param>) -> String {
        if key.contains('\0') {
            return Self::FALSE.to_string();
        }
        let key = params.bind(Box::new(key.to_string()));
        format!("jsonb_exists({}, {key}::text)", self.column)
    }
}

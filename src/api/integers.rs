//! Integer fields as JSON Schema defines integers: `5`, and also `5.0` (a number whose
//! fractional part is zero is an integer there, and clients such as JavaScript's `JSON.stringify`
//! of computed values or schemathesis send it). serde's own `usize` refuses `5.0`; these
//! deserializers accept it, and still refuse `5.5`, `"5"`, negatives and values out of range.
//! In a query string every value arrives as text: the `query_` variants read `5` and `5.0`
//! there.

use std::fmt;

use serde::Deserializer;
use serde::de::{self, Visitor};

/// A `usize` written as an integer or an integral number (JSON).
pub fn usize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    deserializer.deserialize_any(UsizeVisitor { text: false })
}

/// An optional `usize` (absent or `null` is `None`) (JSON).
pub fn option_usize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<usize>, D::Error> {
    deserializer.deserialize_option(OptionVisitor { text: false })
}

/// A `usize` in a query string.
pub fn query_usize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    deserializer.deserialize_any(UsizeVisitor { text: true })
}

/// An optional `usize` in a query string.
pub fn query_option_usize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<usize>, D::Error> {
    deserializer.deserialize_option(OptionVisitor { text: true })
}

/// Reads integers and integral floats; text too when `text` (query strings).
#[derive(Clone, Copy)]
struct UsizeVisitor {
    text: bool,
}

impl<'de> Visitor<'de> for UsizeVisitor {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a non-negative integer")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<usize, E> {
        usize::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<usize, E> {
        usize::try_from(v).map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<usize, E> {
        // 2^64 as f64; every integral f64 below it converts exactly.
        if v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&v) {
            self.visit_u64(v as u64)
        } else {
            Err(E::invalid_value(de::Unexpected::Float(v), &self))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<usize, E> {
        if !self.text {
            return Err(E::invalid_type(de::Unexpected::Str(v), &self));
        }
        if let Ok(n) = v.parse::<u64>() {
            return self.visit_u64(n);
        }
        match v.parse::<f64>() {
            Ok(f) if f.is_finite() => self.visit_f64(f),
            _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
}

struct OptionVisitor {
    text: bool,
}

impl<'de> Visitor<'de> for OptionVisitor {
    type Value = Option<usize>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a non-negative integer or null")
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(UsizeVisitor { text: self.text })
            .map(Some)
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Body {
        #[serde(deserialize_with = "super::usize")]
        k: usize,
        #[serde(default, deserialize_with = "super::option_usize")]
        ef: Option<usize>,
    }

    fn json(text: &str) -> Result<Body, serde_json::Error> {
        serde_json::from_str(text)
    }

    #[test]
    fn integral_numbers_are_integers() {
        assert_eq!(json(r#"{"k": 5}"#).unwrap(), Body { k: 5, ef: None });
        assert_eq!(
            json(r#"{"k": 5.0, "ef": 1e2}"#).unwrap(),
            Body {
                k: 5,
                ef: Some(100)
            }
        );
        assert_eq!(json(r#"{"k": 1, "ef": null}"#).unwrap().ef, None);
        for bad in [
            r#"{"k": 5.5}"#,
            r#"{"k": -1}"#,
            r#"{"k": -1.0}"#,
            r#"{"k": 1e30}"#,
            r#"{"k": "5"}"#,
            r#"{"k": true}"#,
            r#"{"k": 1, "ef": -2}"#,
        ] {
            assert!(json(bad).is_err(), "{bad}");
        }
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Params {
        #[serde(deserialize_with = "super::query_usize")]
        k: usize,
        #[serde(default, deserialize_with = "super::query_option_usize")]
        ef: Option<usize>,
    }

    fn query(q: &str) -> Option<Params> {
        let uri: axum::http::Uri = format!("/search?{q}").parse().unwrap();
        axum::extract::Query::<Params>::try_from_uri(&uri)
            .ok()
            .map(|p| p.0)
    }

    #[test]
    fn query_strings_read_integral_text() {
        assert_eq!(query("k=7.0&ef=3"), Some(Params { k: 7, ef: Some(3) }));
        assert_eq!(query("k=7"), Some(Params { k: 7, ef: None }));
        for bad in ["k=abc", "k=-1", "k=2.5", "k=1&ef=-1", "k=", "k=inf"] {
            assert_eq!(query(bad), None, "{bad}");
        }
    }
}

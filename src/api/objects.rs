//! Fields that must be JSON objects. serde reads a struct from an array of its field values
//! too (`"filter": []` would be an empty filter), which is not what the API's schema says; these
//! deserializers take an object (or, for the optional one, `null`) and refuse anything else.
//! (Request bodies themselves are checked by [`super::error::ApiJson`].)

use serde::de::{DeserializeOwned, Error};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// A `T` that must be written as an object.
pub fn object<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<T, D::Error> {
    let map = Map::<String, Value>::deserialize(d)?;
    T::deserialize(Value::Object(map)).map_err(D::Error::custom)
}

/// An optional `T` that must be written as an object, or `null`.
pub fn option_object<'de, D: Deserializer<'de>, T: DeserializeOwned>(
    d: D,
) -> Result<Option<T>, D::Error> {
    match Option::<Map<String, Value>>::deserialize(d)? {
        None => Ok(None),
        Some(map) => T::deserialize(Value::Object(map))
            .map(Some)
            .map_err(D::Error::custom),
    }
}

/// A list of `T`s, each written as an object.
pub fn objects<'de, D: Deserializer<'de>, T: DeserializeOwned>(d: D) -> Result<Vec<T>, D::Error> {
    Vec::<Map<String, Value>>::deserialize(d)?
        .into_iter()
        .enumerate()
        .map(|(i, map)| {
            T::deserialize(Value::Object(map)).map_err(|e| D::Error::custom(format!("[{i}]: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq, Default)]
    struct Inner {
        #[serde(default)]
        a: u8,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Outer {
        #[serde(deserialize_with = "super::object")]
        one: Inner,
        #[serde(default, deserialize_with = "super::option_object")]
        maybe: Option<Inner>,
        #[serde(default, deserialize_with = "super::objects")]
        many: Vec<Inner>,
    }

    #[test]
    fn arrays_are_not_objects() {
        let ok: Outer =
            serde_json::from_str(r#"{"one": {"a": 1}, "maybe": null, "many": [{}, {"a": 2}]}"#)
                .unwrap();
        assert_eq!(ok.one.a, 1);
        assert_eq!(ok.maybe, None);
        assert_eq!(ok.many[1].a, 2);
        for bad in [
            r#"{"one": []}"#,
            r#"{"one": [1]}"#,
            r#"{"one": {}, "maybe": []}"#,
            r#"{"one": {}, "many": [[]]}"#,
            r#"{"one": {}, "many": [{"a": "x"}]}"#,
        ] {
            assert!(serde_json::from_str::<Outer>(bad).is_err(), "{bad}");
        }
    }
}

//! OpenAPI schemas written by hand, for wire types whose derived schema would be looser than
//! what the server accepts (utoipa cannot put constraints on an enum variant's field), and the
//! served spec's one model-dependent bound.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use super::openai_tokens::TokenEncoding;
use super::types::{Inputs, OpenAiInput};

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// An array of at least one `item`.
fn non_empty(item: impl Into<RefOr<Schema>>) -> ArrayBuilder {
    ArrayBuilder::new().items(item.into()).min_items(Some(1))
}

/// A token id of the default encoding: 0 up to its last special token (a few ids below that
/// are unassigned and refused with 422).
fn token_id() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0))
        .maximum(Some(TokenEncoding::default().max_id()))
}

/// A metadata filter: an object whose entries are values, lists (`$and`, `$or`) or operator
/// objects, never an empty operator object (refused with 422).
pub fn metadata_filter() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(ObjectBuilder::new().min_properties(Some(1))))
}

impl PartialSchema for Inputs {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(string().description(Some("A single text.")))
            .item(non_empty(string()).description(Some("Several texts (at least one).")))
            .description(Some("One text or many."))
            .into()
    }
}

impl ToSchema for Inputs {}

impl PartialSchema for OpenAiInput {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(string().description(Some("One text.")))
            .item(non_empty(string()).description(Some("Several texts (at least one).")))
            .item(non_empty(token_id()).description(Some(
                "One input as token ids of the configured tiktoken encoding (cl100k_base unless \
                 --openai-token-encoding says otherwise).",
            )))
            .item(
                non_empty(ArrayBuilder::new().items(token_id())).description(Some(
                    "Several inputs as token ids, one array each (an empty one is the empty text).",
                )),
            )
            .description(Some("Text(s), or tiktoken token ids (decoded to text)."))
            .into()
    }
}

impl ToSchema for OpenAiInput {}

/// The spec as served, promising exactly what this server accepts: once the model is loaded,
/// `dimensions` of `/v1/embeddings` is bounded by the model's vector length, and token ids are
/// those of the configured encoding (its range, less its unassigned ids).
pub fn for_model(
    spec: &utoipa::openapi::OpenApi,
    dimension: Option<usize>,
    encoding: TokenEncoding,
) -> serde_json::Value {
    let mut value = serde_json::to_value(spec).unwrap_or_default();
    if let Some(dimension) = dimension
        && let Some(field) =
            value.pointer_mut("/components/schemas/OpenAiEmbeddingsBody/properties/dimensions")
        && let Some(field) = field.as_object_mut()
    {
        field.insert("maximum".into(), dimension.into());
    }
    let unassigned = encoding.unassigned_ids();
    for path in [
        "/components/schemas/OpenAiInput/oneOf/2/items",
        "/components/schemas/OpenAiInput/oneOf/3/items/items",
    ] {
        if let Some(id) = value.pointer_mut(path).and_then(|v| v.as_object_mut()) {
            id.insert("maximum".into(), encoding.max_id().into());
            id.insert("not".into(), serde_json::json!({ "enum": unassigned }));
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_lists_may_not_be_empty() {
        let schema = serde_json::to_value(Inputs::schema()).unwrap();
        assert_eq!(schema["oneOf"][1]["minItems"], 1);
        let schema = serde_json::to_value(OpenAiInput::schema()).unwrap();
        assert_eq!(schema["oneOf"].as_array().unwrap().len(), 4);
        assert_eq!(schema["oneOf"][3]["items"]["items"]["maximum"], 100_276);
    }

    #[test]
    fn the_served_spec_bounds_dimensions_by_the_model() {
        let spec = crate::api::openapi();
        let path = "/components/schemas/OpenAiEmbeddingsBody/properties/dimensions";
        let loading = for_model(&spec, None, TokenEncoding::default());
        assert!(loading.pointer(path).unwrap().get("maximum").is_none());
        let served = for_model(&spec, Some(384), TokenEncoding::default());
        assert_eq!(served.pointer(path).unwrap()["maximum"], 384);
        assert_eq!(served.pointer(path).unwrap()["minimum"], 1);
    }

    #[test]
    fn an_empty_operator_object_is_outside_the_filter_schema() {
        let spec = serde_json::to_value(crate::api::openapi()).unwrap();
        let metadata = spec
            .pointer("/components/schemas/FilterBody/properties/metadata")
            .unwrap();
        assert_eq!(metadata["additionalProperties"]["minProperties"], 1);
    }

    #[test]
    fn token_ids_of_the_served_spec_are_the_encodings_assigned_ones() {
        let spec = crate::api::openapi();
        let served = for_model(&spec, None, TokenEncoding::O200kBase);
        let id = served
            .pointer("/components/schemas/OpenAiInput/oneOf/3/items/items")
            .unwrap();
        assert_eq!(id["maximum"], 200_018);
        assert_eq!(id["not"]["enum"][0], 199_998);
        assert_eq!(id["not"]["enum"].as_array().unwrap().len(), 19);
    }
}

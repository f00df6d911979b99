//! Embedding routes: text-embeddings-inference's `/embed` and `/similarity`, OpenAI's
//! `/v1/embeddings`.

use axum::Json;
use axum::extract::State;
use base64::Engine as _;

use crate::api::error::{ApiError, ApiJson};
use crate::api::openai_tokens;
use crate::api::responses::{Common, JsonBody, Overloaded};
use crate::api::state::AppState;
use crate::api::types::{
    EmbedBody, OpenAiEmbedding, OpenAiEmbeddingsBody, OpenAiEmbeddingsResponse, OpenAiInput,
    OpenAiUsage, OpenAiVector, SimilarityBody,
};
use crate::embed::l2_normalize;
use crate::index::dot;

/// Vectors for one or many texts (text-embeddings-inference compatible).
#[utoipa::path(
    post,
    path = "/embed",
    tag = "embeddings",
    request_body = EmbedBody,
    responses(
        (status = 200, description = "One vector per input", body = Vec<Vec<f32>>),
        JsonBody,
        Overloaded,
        Common,
    )
)]
pub async fn embed(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<EmbedBody>,
) -> Result<Json<Vec<Vec<f32>>>, ApiError> {
    if body
        .truncation_direction
        .as_deref()
        .is_some_and(|d| !d.eq_ignore_ascii_case("right"))
    {
        return Err(ApiError::invalid(
            "only truncation_direction \"Right\" is supported",
        ));
    }
    let embeddings = state
        .service()?
        .embed(body.inputs.into_vec(), body.truncate)
        .await?;
    Ok(Json(
        embeddings
            .into_iter()
            .map(|e| if body.normalize { e.unit } else { e.raw })
            .collect(),
    ))
}

/// Cosine similarity of a source sentence with each of several sentences.
#[utoipa::path(
    post,
    path = "/similarity",
    tag = "embeddings",
    request_body = SimilarityBody,
    responses(
        (status = 200, description = "One score per sentence", body = Vec<f32>),
        JsonBody,
        Overloaded,
        Common,
    )
)]
pub async fn similarity(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SimilarityBody>,
) -> Result<Json<Vec<f32>>, ApiError> {
    if body.inputs.sentences.is_empty() {
        return Err(ApiError::invalid("sentences must not be empty"));
    }
    let mut texts = Vec::with_capacity(body.inputs.sentences.len() + 1);
    texts.push(body.inputs.source_sentence);
    texts.extend(body.inputs.sentences);
    let mut embeddings = state
        .service()?
        .embed(texts, true)
        .await?
        .into_iter()
        .map(|e| e.unit);
    let source = embeddings
        .next()
        .ok_or_else(|| ApiError::internal("no embedding returned"))?;
    Ok(Json(embeddings.map(|v| dot(&source, &v)).collect()))
}

/// OpenAI-compatible embeddings: works with the official `openai` client and its base64
/// default. Vectors are unit length, as OpenAI's are, whatever the model's own pipeline does.
/// Inputs longer than the model's window are truncated, as sentence-transformers does.
/// Token-id inputs (LangChain's default) are decoded with the configured tiktoken encoding
/// and embedded as the text they encode.
#[utoipa::path(
    post,
    path = "/v1/embeddings",
    tag = "embeddings",
    request_body = OpenAiEmbeddingsBody,
    responses(
        (status = 200, description = "One vector per input", body = OpenAiEmbeddingsResponse),
        JsonBody,
        Overloaded,
        Common,
    )
)]
pub async fn openai(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<OpenAiEmbeddingsBody>,
) -> Result<Json<OpenAiEmbeddingsResponse>, ApiError> {
    let texts = match body.input {
        OpenAiInput::One(s) => vec![s],
        OpenAiInput::Many(v) => v,
        // Decoding is wire translation and fast (the tables are built at start).
        OpenAiInput::Tokens(ids) => {
            openai_tokens::decode_input(state.config().openai_token_encoding, &ids)?
        }
    };
    let base64 = match body.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(format!(
                "encoding_format {other:?} is not supported; use \"float\" or \"base64\""
            )));
        }
    };
    let service = state.service()?;
    let config = service.engine().encoder().config().clone();
    let dimension = config.dimension();
    let keep = match body.dimensions {
        None => dimension,
        Some(d) if (1..=dimension).contains(&d) => d,
        Some(d) => {
            return Err(ApiError::invalid(format!(
                "dimensions must be between 1 and {dimension}, got {d}"
            )));
        }
    };
    let max_tokens = service.engine().encoder().max_tokens();
    let embeddings = service.embed(texts, true).await?;
    let prompt_tokens = embeddings.iter().map(|e| e.tokens.min(max_tokens)).sum();
    let data = embeddings
        .into_iter()
        .enumerate()
        .map(|(index, e)| {
            let mut v = e.unit;
            if keep < dimension {
                v.truncate(keep);
                l2_normalize(&mut v);
            }
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                OpenAiVector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                OpenAiVector::Float(v)
            };
            OpenAiEmbedding {
                object: "embedding".into(),
                index,
                embedding,
            }
        })
        .collect();
    Ok(Json(OpenAiEmbeddingsResponse {
        object: "list".into(),
        data,
        model: config.name,
        usage: OpenAiUsage {
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
    }))
}

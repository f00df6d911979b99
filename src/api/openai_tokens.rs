//! Token-id inputs of `POST /v1/embeddings`.
//!
//! The OpenAI API lets `input` be token ids instead of text: one array of ids, or an array of
//! such arrays. LangChain's `OpenAIEmbeddings` sends exactly that by default: it tokenizes each
//! text with tiktoken (`cl100k_base` for a model name tiktoken does not know), cuts long texts
//! into windows and posts the windows' ids. Those ids belong to OpenAI's tokenizer, not to the
//! served model, so they are decoded back to the text they stand for here, and that text is
//! then tokenized and embedded like any other.
//!
//! The encodings are compiled into the binary by `tiktoken-rs`; nothing is downloaded.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use serde_json::Value;
use tiktoken_rs::{CoreBPE, DecodeKeyError};

use super::error::ApiError;

/// The tiktoken encoding whose token ids `/v1/embeddings` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TokenEncoding {
    /// `cl100k_base`: the encoding LangChain uses for any model name tiktoken does not know.
    #[default]
    Cl100kBase,
    /// `o200k_base`: the encoding of OpenAI's GPT-4o-era models.
    O200kBase,
}

impl TokenEncoding {
    /// The encoding's tiktoken name, e.g. `cl100k_base`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Cl100kBase => "cl100k_base",
            Self::O200kBase => "o200k_base",
        }
    }

    /// The largest token id of the encoding (its last special token). Some ids below it are
    /// unassigned and refused too.
    pub fn max_id(self) -> u32 {
        match self {
            Self::Cl100kBase => 100_276,
            Self::O200kBase => 200_018,
        }
    }

    /// The ids at or below [`TokenEncoding::max_id`] that name no token (between the last
    /// ordinary token and the special ones): refused with 422, and excluded by the served
    /// OpenAPI spec so that it promises exactly what is accepted.
    pub fn unassigned_ids(self) -> Vec<u32> {
        match self {
            Self::Cl100kBase => std::iter::once(100_256).chain(100_261..=100_275).collect(),
            Self::O200kBase => std::iter::once(199_998).chain(200_000..=200_017).collect(),
        }
    }

    /// Builds the encoding's tables now (a fraction of a second), so that no request pays for
    /// it: the server calls this while it loads the model.
    pub fn warm(self) {
        if let Err(e) = self.bpe() {
            tracing::warn!(error = %e, "the token-id decoder is unavailable");
        }
    }

    /// The encoding's BPE tables, built on first use (that takes a moment) and kept.
    fn bpe(self) -> Result<&'static CoreBPE, TokenInputError> {
        static CL100K_BASE: OnceLock<Result<CoreBPE, String>> = OnceLock::new();
        static O200K_BASE: OnceLock<Result<CoreBPE, String>> = OnceLock::new();
        let cell = match self {
            Self::Cl100kBase => &CL100K_BASE,
            Self::O200kBase => &O200K_BASE,
        };
        cell.get_or_init(|| {
            let built = match self {
                Self::Cl100kBase => tiktoken_rs::cl100k_base(),
                Self::O200kBase => tiktoken_rs::o200k_base(),
            };
            built.map_err(|e| format!("{e:#}"))
        })
        .as_ref()
        .map_err(|reason| TokenInputError::Unavailable {
            encoding: self,
            reason: reason.clone(),
        })
    }
}

impl FromStr for TokenEncoding {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cl100k_base" => Ok(Self::Cl100kBase),
            "o200k_base" => Ok(Self::O200kBase),
            other => Err(format!(
                "unknown token encoding {other:?}; expected \"cl100k_base\" or \"o200k_base\""
            )),
        }
    }
}

impl fmt::Display for TokenEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why token-id input could not be turned into texts. Every variant but `Unavailable` is the
/// client's mistake (422) and names the first offending position, e.g. `input[1][7]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenInputError {
    /// Something other than a non-negative integer where a token id belongs.
    #[error("{at} must be a token id (a non-negative integer), got {value}")]
    NotAnId {
        /// Where, e.g. `input[1][7]`.
        at: String,
        /// The offending JSON, shortened.
        value: String,
    },
    /// An integer that is no token of the encoding.
    #[error(
        "{at}: {id} is not a token id of {encoding} (its ids lie between 0 and {max}); send text, or ids of {encoding}",
        max = encoding.max_id()
    )]
    UnknownId {
        /// Where, e.g. `input[1][7]`.
        at: String,
        /// The id.
        id: u64,
        /// The encoding the ids are read in.
        encoding: TokenEncoding,
    },
    /// Something other than an array of ids in an array of token arrays.
    #[error("{at} must be an array of token ids like input[0], got {value}")]
    NotAnArray {
        /// Where, e.g. `input[2]`.
        at: String,
        /// The offending JSON, shortened.
        value: String,
    },
    /// Something other than a string in an array of texts.
    #[error("{at} must be a string like input[0], got {value}")]
    NotAString {
        /// Where, e.g. `input[2]`.
        at: String,
        /// The offending JSON, shortened.
        value: String,
    },
    /// The encoding's tables could not be built (a server fault, not the client's).
    #[error("the {encoding} token encoding could not be loaded: {reason}")]
    Unavailable {
        /// The encoding.
        encoding: TokenEncoding,
        /// Why.
        reason: String,
    },
}

impl From<TokenInputError> for ApiError {
    fn from(err: TokenInputError) -> Self {
        match err {
            TokenInputError::Unavailable { .. } => Self::internal(err),
            other => Self::invalid(other.to_string()),
        }
    }
}

/// Decodes an OpenAI `input` that is not plain text into the texts it stands for: one array of
/// token ids gives one text, an array of arrays one text per array. Ids are read in
/// `encoding`; a window that cuts a multi-byte character in two decodes with U+FFFD in its
/// place rather than failing. An array of strings (reaching here only when it holds something
/// else too) is refused at its first non-string.
pub fn decode_input(
    encoding: TokenEncoding,
    input: &[Value],
) -> Result<Vec<String>, TokenInputError> {
    match input.first() {
        None => Ok(Vec::new()),
        Some(Value::String(_)) => match input.iter().position(|v| !v.is_string()) {
            Some(i) => Err(TokenInputError::NotAString {
                at: format!("input[{i}]"),
                value: preview(&input[i]),
            }),
            None => Ok(input
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()),
        },
        Some(Value::Array(_)) => {
            let bpe = encoding.bpe()?;
            input
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::Array(ids) => {
                        decode_ids(bpe, encoding, ids, |j| format!("input[{i}][{j}]"))
                    }
                    other => Err(TokenInputError::NotAnArray {
                        at: format!("input[{i}]"),
                        value: preview(other),
                    }),
                })
                .collect()
        }
        Some(_) => {
            let bpe = encoding.bpe()?;
            Ok(vec![decode_ids(bpe, encoding, input, |j| {
                format!("input[{j}]")
            })?])
        }
    }
}

/// One token array to text, or the error at its first bad position (`at` names position j).
fn decode_ids(
    bpe: &CoreBPE,
    encoding: TokenEncoding,
    values: &[Value],
    at: impl Fn(usize) -> String,
) -> Result<String, TokenInputError> {
    let mut ids = Vec::with_capacity(values.len());
    let mut malformed = None;
    for (j, value) in values.iter().enumerate() {
        // JSON Schema counts 5.0 as an integer; so do we.
        let id = value.as_u64().or_else(|| {
            value
                .as_f64()
                .filter(|f| f.fract() == 0.0 && (0.0..4_294_967_296.0).contains(f))
                .map(|f| f as u64)
        });
        match id {
            Some(n) => match u32::try_from(n) {
                Ok(id) => ids.push(id),
                Err(_) => {
                    malformed = Some(TokenInputError::UnknownId {
                        at: at(j),
                        id: n,
                        encoding,
                    });
                    break;
                }
            },
            None => {
                malformed = Some(TokenInputError::NotAnId {
                    at: at(j),
                    value: preview(value),
                });
                break;
            }
        }
    }
    // The ids before the first malformed value may hold an unknown one: that one comes first.
    let bytes =
        bpe.decode_bytes(&ids)
            .map_err(|DecodeKeyError { token }| TokenInputError::UnknownId {
                at: at(ids.iter().position(|&id| id == token).unwrap_or_default()),
                id: token.into(),
                encoding,
            })?;
    match malformed {
        Some(err) => Err(err),
        None => Ok(String::from_utf8_lossy(&bytes).into_owned()),
    }
}

/// A value's JSON, cut to a readable length for an error message.
fn preview(value: &Value) -> String {
    const MAX_CHARS: usize = 40;
    let json = value.to_string();
    if json.chars().count() <= MAX_CHARS {
        json
    } else {
        let head: String = json.chars().take(MAX_CHARS).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const TEXTS: [&str; 6] = [
        "Putin accepted an invitation to visit North Korea.",
        "Crème brûlée, façade, naïve Ærøskøbing",
        "金正恩与普京在东方航天发射场会晤。",
        "rockets 🚀🇰🇵 and 👩‍👩‍👧 families",
        "",
        "tabs\tand\nnewlines  and   spaces",
    ];

    fn values(ids: &[u32]) -> Vec<Value> {
        ids.iter().map(|&id| json!(id)).collect()
    }

    fn input(value: Value) -> Vec<Value> {
        match value {
            Value::Array(items) => items,
            other => panic!("not an array: {other}"),
        }
    }

    #[test]
    fn ids_decode_back_to_their_text_in_both_encodings() {
        for encoding in [TokenEncoding::Cl100kBase, TokenEncoding::O200kBase] {
            let bpe = encoding.bpe().unwrap();
            for text in TEXTS {
                let ids = values(&bpe.encode_ordinary(text));
                assert_eq!(
                    decode_input(encoding, &[Value::Array(ids.clone())]).unwrap(),
                    vec![text.to_string()],
                    "{encoding}: {text:?} as an array of arrays"
                );
                // `[]` is no input at all (the handler refuses it), not one empty text.
                let want: Vec<String> = Some(text.to_string())
                    .filter(|t| !t.is_empty())
                    .into_iter()
                    .collect();
                assert_eq!(
                    decode_input(encoding, &ids).unwrap(),
                    want,
                    "{encoding}: {text:?}"
                );
            }
        }
    }

    #[test]
    fn an_array_of_arrays_gives_one_text_per_array() {
        let bpe = TokenEncoding::Cl100kBase.bpe().unwrap();
        let nested: Vec<Value> = TEXTS
            .iter()
            .map(|t| Value::Array(values(&bpe.encode_ordinary(t))))
            .collect();
        assert_eq!(
            decode_input(TokenEncoding::Cl100kBase, &nested).unwrap(),
            TEXTS.to_vec()
        );
    }

    #[test]
    fn windows_that_split_a_character_decode_lossily() {
        let bpe = TokenEncoding::Cl100kBase.bpe().unwrap();
        let text = "金正恩 🚀🇰🇵 Ærøskøbing";
        let ids = bpe.encode_ordinary(text);
        let mut split_somewhere = false;
        for cut in 0..=ids.len() {
            let windows = vec![
                Value::Array(values(&ids[..cut])),
                Value::Array(values(&ids[cut..])),
            ];
            let texts = decode_input(TokenEncoding::Cl100kBase, &windows).unwrap();
            if texts.concat() == text {
                assert!(!texts.concat().contains('\u{FFFD}'));
            } else {
                split_somewhere = true;
                assert!(texts.concat().contains('\u{FFFD}'), "{texts:?}");
            }
        }
        assert!(split_somewhere, "no cut fell inside a character");
    }

    #[test]
    fn special_tokens_are_in_range_and_the_largest_ids_are_right() {
        assert_eq!(
            decode_input(TokenEncoding::Cl100kBase, &values(&[100_257])).unwrap(),
            vec!["<|endoftext|>".to_string()]
        );
        for encoding in [TokenEncoding::Cl100kBase, TokenEncoding::O200kBase] {
            let bpe = encoding.bpe().unwrap();
            assert!(bpe.decode_bytes(&[encoding.max_id()]).is_ok(), "{encoding}");
            assert!(
                bpe.decode_bytes(&[encoding.max_id() + 1]).is_err(),
                "{encoding}"
            );
        }
    }

    #[test]
    fn errors_name_the_first_bad_position() {
        let cases = [
            (json!([1, 2, 100_277]), "input[2]: 100277 is not a token id"),
            (json!([1, 100_256, 2]), "input[1]: 100256 is not a token id"),
            (json!([5, 4_294_967_296_u64]), "input[1]: 4294967296 is not"),
            (json!([1, -3]), "input[1] must be a token id"),
            (json!([1, 2.5]), "input[1] must be a token id"),
            (json!([1, "a"]), "input[1] must be a token id"),
            (json!([null]), "input[0] must be a token id"),
            (json!([1, [2]]), "input[1] must be a token id"),
            (json!([[1, 2], [3, -1]]), "input[1][1] must be a token id"),
            (
                json!([[1, 2], [3, 4, 5, 6, 7, 8, 9, 100_300]]),
                "input[1][7]: 100300",
            ),
            (json!([[1], 2]), "input[1] must be an array of token ids"),
            (json!(["a", 1]), "input[1] must be a string"),
            // An unknown id before a malformed value is the first bad position.
            (json!([1, 100_300, -1]), "input[1]: 100300"),
            (json!([1, -1, 100_300]), "input[1] must be a token id"),
            (json!([[100_300], [-1]]), "input[0][0]: 100300"),
        ];
        for (body, want) in cases {
            let err = decode_input(TokenEncoding::Cl100kBase, &input(body.clone())).unwrap_err();
            assert!(
                err.to_string().starts_with(want),
                "{body}: {err} (wanted {want:?})"
            );
            let api: ApiError = err.into();
            assert_eq!(api.status, axum::http::StatusCode::UNPROCESSABLE_ENTITY);
            assert_eq!(api.code, "invalid_request");
        }
        let o200k = decode_input(TokenEncoding::O200kBase, &values(&[200_019])).unwrap_err();
        assert!(o200k.to_string().contains("o200k_base"), "{o200k}");
        assert!(
            decode_input(TokenEncoding::O200kBase, &values(&[150_000])).is_ok(),
            "ids past cl100k's range are o200k tokens"
        );
    }

    #[test]
    fn long_values_are_shortened_in_messages() {
        let long = json!([[1], {"text": "x".repeat(1000)}]);
        let err = decode_input(TokenEncoding::Cl100kBase, &input(long)).unwrap_err();
        assert!(err.to_string().chars().count() < 150, "{err}");
    }

    #[test]
    fn encoding_names_round_trip() {
        for encoding in [TokenEncoding::Cl100kBase, TokenEncoding::O200kBase] {
            assert_eq!(encoding.to_string().parse::<TokenEncoding>(), Ok(encoding));
        }
        assert_eq!(TokenEncoding::default(), TokenEncoding::Cl100kBase);
        assert!("p50k_base".parse::<TokenEncoding>().is_err());
    }

    #[test]
    fn unassigned_ids_are_exactly_those_the_decoder_refuses() {
        for encoding in [TokenEncoding::Cl100kBase, TokenEncoding::O200kBase] {
            let bpe = encoding.bpe().unwrap();
            let refused: Vec<u32> = (0..=encoding.max_id())
                .filter(|&id| bpe.decode_bytes(&[id]).is_err())
                .collect();
            let expected = encoding.unassigned_ids();
            assert_eq!(refused, expected, "{encoding}");
        }
    }
}

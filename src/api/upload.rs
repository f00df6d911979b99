//! Documents sent as files, the other way into `POST /documents` beside the JSON body: one
//! file as the request body (its `Content-Type` names the format; id and metadata in the query
//! string) or several as `multipart/form-data` (each part's file name is its id). The
//! extractors ([`crate::extract`]) read them on the blocking pool, each within the server's
//! [`ExtractLimits`]; a file that cannot be read refuses the whole request with the
//! extractor's message (422, or 413/415 where that is the trouble) before anything is stored.

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::StatusCode;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::error::{ApiError, ApiJson, content_type_essence, is_json_essence};
use super::types::DocumentsBody;
use crate::engine::DocumentInput;
use crate::extract::{ExtractError, ExtractLimits, Hint};
use crate::jobs::StagedFile;

/// `Content-Type` of a Word document.
const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

/// The content types a file body may have. `application/octet-stream` leaves the format to
/// the content alone (as every format is detected by content first).
pub const FILE_CONTENT_TYPES: &[&str] = &[
    "application/pdf",
    "text/html",
    "application/xhtml+xml",
    "text/markdown",
    "text/x-markdown",
    DOCX,
    "text/plain",
    "application/octet-stream",
];

/// The form field that carries metadata for every file of a multipart upload.
const METADATA_FIELD: &str = "metadata";

/// What an ingest request sent.
pub enum IngestBody {
    /// Documents as JSON: `{"id", "text", "metadata"}` or `{"documents": [...]}`.
    Json(DocumentsBody),
    /// Files, as received, not yet read.
    Files(Files),
}

/// Files of one request and the metadata sent with them in the body (a multipart upload's
/// `metadata` field).
pub struct Files {
    files: Vec<Upload>,
    metadata: Map<String, Value>,
}

/// Files as a job stages them (each with its bytes), and the metadata for all of them.
pub type Staged = (Vec<(StagedFile, Vec<u8>)>, Map<String, Value>);

/// One received file.
struct Upload {
    /// Its file name (a multipart part's), if it has one.
    file_name: Option<String>,
    /// Its `Content-Type`, as sent.
    content_type: Option<String>,
    bytes: Bytes,
}

/// The query parameters of an ingest: a file's id and metadata for every file.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct UploadParams {
    /// `id`: the document id of a file body (or of a multipart upload's only file).
    pub id: Option<String>,
    /// `metadata=<JSON object>` with every `meta.KEY=VALUE` put in (VALUE read as JSON if it
    /// parses, else as a string: `meta.year=2024` is a number, `meta.lang=en` a string).
    pub metadata: Map<String, Value>,
    /// `wait`: `false` makes files a job (`202`) whatever their size; `true` (or absent)
    /// leaves that to the server's threshold.
    pub wait: Option<bool>,
}

impl UploadParams {
    /// Reads the query string's pairs; an unknown or repeated parameter is refused, so that a
    /// typo does not silently drop metadata.
    pub fn parse(pairs: Vec<(String, String)>) -> Result<Self, ApiError> {
        let mut params = Self::default();
        let mut given: Option<Map<String, Value>> = None;
        let mut singles: Map<String, Value> = Map::new();
        for (key, value) in pairs {
            if key == "id" {
                if params.id.replace(value).is_some() {
                    return Err(query_error("`id` is given more than once"));
                }
            } else if key == "metadata" {
                let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&value) else {
                    return Err(ApiError::invalid(
                        "`metadata` must be a JSON object, e.g. metadata={\"lang\":\"en\"}",
                    ));
                };
                if given.replace(map).is_some() {
                    return Err(query_error("`metadata` is given more than once"));
                }
            } else if key == "wait" {
                let wait = match value.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(query_error("`wait` must be true or false")),
                };
                if params.wait.replace(wait).is_some() {
                    return Err(query_error("`wait` is given more than once"));
                }
            } else if let Some(name) = key.strip_prefix("meta.") {
                if name.is_empty() {
                    return Err(ApiError::invalid("`meta.` needs a key: meta.KEY=VALUE"));
                }
                let value = serde_json::from_str(&value).unwrap_or(Value::String(value));
                if singles.insert(name.to_string(), value).is_some() {
                    return Err(query_error(format!("`{key}` is given more than once")));
                }
            } else {
                return Err(query_error(format!(
                    "unknown query parameter `{key}` (id, metadata, meta.KEY and wait are known)"
                )));
            }
        }
        params.metadata = given.unwrap_or_default();
        params.metadata.extend(singles);
        Ok(params)
    }

    /// Whether any parameter was given.
    pub fn is_empty(&self) -> bool {
        self.id.is_none() && self.metadata.is_empty() && self.wait.is_none()
    }
}

fn query_error(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message)
}

impl<S: Send + Sync> FromRequest<S> for IngestBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let kind = content_type_essence(req.headers());
        match kind.as_deref() {
            Some("multipart/form-data") => {
                let form = Multipart::from_request(req, state).await.map_err(|r| {
                    ApiError::new(r.status(), ApiError::code_for(r.status()), r.body_text())
                })?;
                read_form(form).await.map(Self::Files)
            }
            Some(kind) if FILE_CONTENT_TYPES.contains(&kind) => {
                let content_type = Some(kind.to_string());
                let bytes = Bytes::from_request(req, state).await.map_err(|r| {
                    ApiError::new(r.status(), ApiError::code_for(r.status()), r.body_text())
                })?;
                Ok(Self::Files(Files {
                    files: vec![Upload {
                        file_name: None,
                        content_type,
                        bytes,
                    }],
                    metadata: Map::new(),
                }))
            }
            Some(kind) if !is_json_essence(kind) => Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "`Content-Type: {kind}` is not taken here: send documents as \
                     application/json, files as multipart/form-data, or one file as the body \
                     with one of {}",
                    FILE_CONTENT_TYPES.join(", ")
                ),
            )),
            // JSON, or no content type: the JSON reader answers (415 for the latter).
            _ => ApiJson::<DocumentsBody>::from_request(req, state)
                .await
                .map(|ApiJson(body)| Self::Json(body)),
        }
    }
}

/// Reads a multipart upload: every part but `metadata` is a file.
async fn read_form(mut form: Multipart) -> Result<Files, ApiError> {
    let bad_form = |e: axum::extract::multipart::MultipartError| {
        ApiError::new(e.status(), ApiError::code_for(e.status()), e.body_text())
    };
    let mut files = Vec::new();
    let mut metadata = None;
    while let Some(field) = form.next_field().await.map_err(bad_form)? {
        let name = field.name().unwrap_or_default().to_string();
        let file_name = field.file_name().map(str::to_string);
        if name == METADATA_FIELD && file_name.is_none() {
            let text = field.text().await.map_err(bad_form)?;
            let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&text) else {
                return Err(ApiError::invalid(
                    "the `metadata` field must be a JSON object",
                ));
            };
            if metadata.replace(map).is_some() {
                return Err(ApiError::invalid(
                    "the `metadata` field is given more than once",
                ));
            }
            continue;
        }
        // A part without a file name is a form field, not a file (as browsers, curl -F
        // name=@path and every HTTP framework see it): only `metadata` is one.
        let Some(file_name) = file_name else {
            return Err(ApiError::invalid(format!(
                "form field {name:?} is not a file: send each file as a part with a file name \
                 (Content-Disposition: form-data; name=\"files\"; filename=\"...\"), and \
                 metadata as the `metadata` field"
            )));
        };
        let content_type = field.content_type().map(str::to_ascii_lowercase);
        let bytes = field.bytes().await.map_err(bad_form)?;
        files.push(Upload {
            file_name: Some(file_name),
            content_type,
            bytes,
        });
    }
    if files.is_empty() {
        return Err(ApiError::invalid(
            "the form holds no file: send each file as a part with a file name",
        ));
    }
    Ok(Files {
        files,
        metadata: metadata.unwrap_or_default(),
    })
}

/// The document id a file's name gives: its last path component (browsers and curl send the
/// bare name; some clients send a path).
fn id_from_file_name(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name).trim();
    (!base.is_empty()).then(|| base.to_string())
}

impl Files {
    /// How many bytes were received, all files together.
    pub fn bytes(&self) -> usize {
        self.files.iter().map(|f| f.bytes.len()).sum()
    }

    /// The document id of each file: `params.id` for a lone file, else its file name.
    fn ids(&self, params: &UploadParams) -> Result<Vec<String>, ApiError> {
        if params.id.is_some() && self.files.len() > 1 {
            return Err(ApiError::invalid(format!(
                "`id` names one document, and {} files were sent: each file's name is its id",
                self.files.len()
            )));
        }
        self.files
            .iter()
            .map(|file| {
                let named = file.file_name.as_deref().and_then(id_from_file_name);
                params.id.clone().or(named).ok_or_else(|| {
                    ApiError::invalid(if file.file_name.is_some() {
                        "a file's name gives no id: add ?id=NAME"
                    } else {
                        "a file sent as the body needs an id: add ?id=NAME"
                    })
                })
            })
            .collect()
    }

    /// The metadata every file's document gets: the form's, then the query string's.
    fn metadata(&self, params: &UploadParams) -> Map<String, Value> {
        let mut metadata = self.metadata.clone();
        metadata.extend(params.metadata.clone());
        metadata
    }

    /// Reads every file into a document (blocking: run it on the blocking pool). The first
    /// file that cannot be read refuses them all, with its name and the extractor's message.
    pub fn into_documents(
        self,
        params: UploadParams,
        limits: &ExtractLimits,
    ) -> Result<Vec<DocumentInput>, ApiError> {
        let ids = self.ids(&params)?;
        let metadata = self.metadata(&params);
        self.files
            .into_iter()
            .zip(ids)
            .enumerate()
            .map(|(i, (file, id))| {
                let hint = file.hint();
                let name = hint.file_name.clone().unwrap_or_else(|| id.clone());
                crate::engine::sources::file_document(
                    id,
                    &hint,
                    file.bytes.to_vec(),
                    metadata.clone(),
                    limits,
                )
                .map_err(|e| refused(&name, i, e))
            })
            .collect()
    }

    /// The files as a job stages them, with the metadata for all (ids checked here, so that
    /// a request that names its files wrongly is refused before a job is made).
    pub fn into_staged(self, params: &UploadParams) -> Result<Staged, ApiError> {
        let ids = self.ids(params)?;
        let metadata = self.metadata(params);
        let staged = self
            .files
            .into_iter()
            .zip(ids)
            .map(|(file, id)| {
                (
                    StagedFile {
                        id,
                        file_name: file.file_name,
                        content_type: file.content_type,
                    },
                    file.bytes.to_vec(),
                )
            })
            .collect();
        Ok((staged, metadata))
    }
}

impl Upload {
    fn hint(&self) -> Hint {
        hint(self.file_name.clone(), self.content_type.clone())
    }
}

/// What the extractors are told of a file besides its bytes (`application/octet-stream` says
/// nothing).
pub fn hint(file_name: Option<String>, content_type: Option<String>) -> Hint {
    Hint {
        file_name,
        content_type: content_type.filter(|t| t != "application/octet-stream"),
    }
}

/// The answer for a file the extractors refused: what is wrong with it, with the status that
/// says whose move it is (415: not a format semdex reads; 413: over a size limit; 422: a file
/// of a known format that cannot be read).
pub fn refused(name: &str, index: usize, err: ExtractError) -> ApiError {
    let message = format!("file {} ({name:?}): {err}", index + 1);
    match err {
        ExtractError::UnknownFormat { .. } | ExtractError::JsonLines => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        ),
        ExtractError::TooManyPages { .. } | ExtractError::DecompressionLimit { .. } => {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", message)
        }
        _ => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "unreadable_file", message),
    }
}

/// The query parameters of an ingest, as the OpenAPI document shows them (read by
/// [`UploadParams::parse`], which also takes `meta.KEY=VALUE`).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct UploadQuery {
    /// The document id of a file sent as the body (or of a form's only file); a form's files
    /// are otherwise named by their file names. Not with a JSON body.
    id: Option<String>,
    /// Metadata for every file: a JSON object; `meta.KEY=VALUE` parameters add one key each
    /// (VALUE read as JSON if it parses, else as a string). Not with a JSON body.
    metadata: Option<String>,
    /// `false`: ingest the files as a job (`202` and `GET /jobs/{id}`) whatever their size;
    /// files over the server's threshold always are. Not with a JSON body.
    wait: Option<bool>,
}

/// One file as the request body (OpenAPI only).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct FileBody(#[allow(dead_code)] Vec<u8>);

/// Several files as `multipart/form-data` (OpenAPI only): every part but `metadata` is a file,
/// its file name its document id.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct UploadForm {
    /// The files, one part each.
    #[schema(value_type = Vec<String>, format = Binary)]
    files: Vec<Vec<u8>>,
    /// Metadata for every file: a JSON object (the query string's `metadata` and `meta.KEY`
    /// are put in after it).
    #[schema(value_type = Option<String>)]
    metadata: Option<String>,
}

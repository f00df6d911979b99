//! The Model Context Protocol server (the official Rust SDK, `rmcp`): semdex's search and
//! documents as tools an agent calls, over stdio (`semdex mcp`, for desktop agents) or
//! streamable HTTP (`/mcp` on `semdex serve`, behind the same API key as every route).
//!
//! Like the HTTP routes, it only translates: tool arguments become the same checked requests
//! (`POST /search`'s body, `POST /documents`' documents), one [`Service`] call does the work,
//! and the answer comes back as text an LLM can cite (document ids, sections and pages when
//! the metadata names them, byte offsets) beside the structured JSON the HTTP API returns.
//! Every failure a user can act on (an unknown collection, a bad filter, a value out of
//! range, even arguments of the wrong shape) is a tool error carrying the message, never a
//! protocol error that ends the call or the session.

mod text;

use std::sync::Arc;
use std::time::Instant;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, JsonObject, ServerCapabilities, ServerConfig,
};
use rmcp::schemars::{self, JsonSchema};
use rmcp::{ServerHandler, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::api::AppState;
use crate::api::types::{
    CollectionResponse, DocumentBody, DocumentsBody, FilterBody, SearchBody, SearchResponse,
};
use crate::collections::DEFAULT_COLLECTION;
use crate::service::{Service, ServiceError};
use crate::storage::Consistency;

/// Longest document text `get_document` returns at once, in bytes: past it the answer says
/// how to ask for the rest (`start`/`end`), so that one call cannot flood an agent's context.
pub const MAX_DOCUMENT_BYTES: usize = 20_000;

/// Instructions an MCP client shows its model: what the tools are for and how they fit.
const INSTRUCTIONS: &str = "semdex searches a corpus of documents by meaning and by words \
(hybrid retrieval) and returns passages with their document id and byte offsets. Use `search` \
to find passages that answer a question (set max_tokens to get context that fits a prompt, \
group_by \"doc_id\" for one entry per document, expand to widen each passage with its \
neighbours). Cite results by document id and offsets; `get_document` reads a document or a \
span of it. `list_collections` names the corpora; `add_documents` and `delete_document` change \
one.";

/// The MCP server: one per stdio session or HTTP request, all sharing the server's state.
#[derive(Clone)]
pub struct SemdexMcp {
    state: AppState,
    tool_router: ToolRouter<Self>,
}

/// `search`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchArgs {
    /// The question or text to find passages for.
    pub query: String,
    /// How many passages to return (or groups, with group_by): 1 to 1000, default 5.
    #[serde(default)]
    pub k: Option<usize>,
    /// The collection to search (default "default"); list_collections names them.
    #[serde(default)]
    pub collection: Option<String>,
    /// "hybrid" (default: meaning and words together, the most accurate), "dense" (meaning
    /// only) or "lexical" (BM25 words only: exact names, codes, rare terms).
    #[serde(default)]
    pub mode: Option<String>,
    /// Only documents whose metadata passes this filter, e.g. {"year": {"$gte": 2020},
    /// "lang": {"$in": ["en", "de"]}}; operators $eq $ne $gt $gte $lt $lte $in $nin $exists,
    /// and "$and" / "$or" lists.
    #[serde(default)]
    pub filter: Option<Map<String, Value>>,
    /// Only passages of these documents.
    #[serde(default)]
    pub doc_ids: Option<Vec<String>>,
    /// "doc_id" for one entry per document (its best passages), or a metadata key to group
    /// by its values; k then counts groups.
    #[serde(default)]
    pub group_by: Option<String>,
    /// Passages per group with group_by (1 to 100, default 1).
    #[serde(default)]
    pub group_size: Option<usize>,
    /// Widen each passage with up to this many neighbouring passages on each side (0 to 10),
    /// overlapping windows merged: more context around each answer.
    #[serde(default)]
    pub expand: Option<usize>,
    /// Fill the answer in rank order with at most this many model tokens (1 to 100000), the
    /// last passage cut at a sentence boundary: context that fits a prompt.
    #[serde(default)]
    pub max_tokens: Option<usize>,
    /// Re-rank for variety, 0 to 1 (default 0): higher values prefer passages unlike those
    /// above them over near-duplicates.
    #[serde(default)]
    pub diversity: Option<f64>,
}

/// One document for `add_documents`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentArg {
    /// A stable id (reusing one replaces that document); derived from the text when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// The text.
    pub text: String,
    /// Metadata to filter and group by, e.g. {"title": "...", "year": 2024, "page": 3}.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// `add_documents`' arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddDocumentsArgs {
    /// The documents (1 to 10000); each is split into passages and embedded.
    pub documents: Vec<DocumentArg>,
    /// The collection to add them to (default "default"); it must exist.
    #[serde(default)]
    pub collection: Option<String>,
}

/// `get_document`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetDocumentArgs {
    /// The document's id (as search results give it).
    pub id: String,
    /// The collection (default "default").
    #[serde(default)]
    pub collection: Option<String>,
    /// Byte offset to read from (default 0), e.g. a search result's start.
    #[serde(default)]
    pub start: Option<usize>,
    /// Byte offset to read to (default: the end, at most 20000 bytes after start).
    #[serde(default)]
    pub end: Option<usize>,
}

/// `delete_document`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteDocumentArgs {
    /// The document's id.
    pub id: String,
    /// The collection (default "default").
    #[serde(default)]
    pub collection: Option<String>,
}

/// `list_collections`' arguments (none).
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// The input schema of a tool taking `T`.
fn input_schema<T: JsonSchema + 'static>() -> Arc<JsonObject> {
    rmcp::handler::server::common::schema_for_input::<T>()
        .unwrap_or_else(|e| panic!("the input schema of {}: {e}", std::any::type_name::<T>()))
}

/// A failed tool call: the message the user needs, as a tool error (the session goes on).
struct ToolError(String);

impl From<ServiceError> for ToolError {
    fn from(err: ServiceError) -> Self {
        Self(match err {
            ServiceError::CollectionNotFound(name) => format!(
                "no collection named {name:?}; list_collections names the collections there are"
            ),
            ServiceError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error in an MCP tool call");
                "internal error; the details are in semdex's log".to_string()
            }
            other => other.to_string(),
        })
    }
}

impl From<crate::api::ApiError> for ToolError {
    fn from(err: crate::api::ApiError) -> Self {
        Self(err.message)
    }
}

/// A tool's answer: text for the model, the structured JSON beside it.
type ToolResult = Result<(String, Value), ToolError>;

/// The tool result of an answer or a failure.
fn respond(result: ToolResult) -> CallToolResult {
    match result {
        Ok((text, structured)) => {
            let mut answer = CallToolResult::success(vec![ContentBlock::text(text)]);
            answer.structured_content = Some(structured);
            answer
        }
        Err(ToolError(message)) => CallToolResult::error(vec![ContentBlock::text(message)]),
    }
}

/// A tool's arguments, read here (not by the SDK) so that arguments of the wrong shape are a
/// tool error naming the problem.
fn parse<T: DeserializeOwned>(arguments: JsonObject) -> Result<T, ToolError> {
    serde_json::from_value(Value::Object(arguments))
        .map_err(|e| ToolError(format!("invalid arguments: {e}")))
}

#[tool_router]
impl SemdexMcp {
    /// A server over `state` (its service may still be loading: tools then say so).
    pub fn new(state: AppState) -> Self {
        Self {
            state,
            tool_router: Self::tool_router(),
        }
    }

    fn service(&self) -> Result<&Service, ToolError> {
        self.state.service().map_err(|_| {
            ToolError("semdex is still loading its model and index; retry in a moment".into())
        })
    }

    /// Find the passages of a document collection that best answer a question: hybrid
    /// retrieval (meaning and words), each result with its document id, passage number, byte
    /// offsets, score and the sentence that best matches. Options give context ready for a
    /// prompt: max_tokens (a budget), expand (neighbouring passages), group_by "doc_id" (one
    /// entry per document), filter (metadata conditions).
    #[tool(
        name = "search",
        input_schema = input_schema::<SearchArgs>(),
        annotations(title = "Search documents", read_only_hint = true, open_world_hint = false)
    )]
    async fn search(&self, arguments: JsonObject) -> CallToolResult {
        respond(self.run_search(arguments).await)
    }

    /// Add documents (text with optional id and metadata) to a collection so that search
    /// finds them: each is split into passages and embedded. A document with an existing id
    /// replaces it; an unchanged one is skipped.
    #[tool(
        name = "add_documents",
        input_schema = input_schema::<AddDocumentsArgs>(),
        annotations(title = "Add documents", read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn add_documents(&self, arguments: JsonObject) -> CallToolResult {
        respond(self.run_add(arguments).await)
    }

    /// Read a stored document by id: its text (or the byte span start..end of it, e.g. around
    /// a search result) and its metadata.
    #[tool(
        name = "get_document",
        input_schema = input_schema::<GetDocumentArgs>(),
        annotations(title = "Read a document", read_only_hint = true, open_world_hint = false)
    )]
    async fn get_document(&self, arguments: JsonObject) -> CallToolResult {
        respond(self.run_get(arguments).await)
    }

    /// Delete a document and its passages from a collection, by id.
    #[tool(
        name = "delete_document",
        input_schema = input_schema::<DeleteDocumentArgs>(),
        annotations(title = "Delete a document", read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = false)
    )]
    async fn delete_document(&self, arguments: JsonObject) -> CallToolResult {
        respond(self.run_delete(arguments).await)
    }

    /// List the document collections (named corpora) with their sizes; search and the other
    /// tools take a collection name, "default" when none is given.
    #[tool(
        name = "list_collections",
        input_schema = input_schema::<NoArgs>(),
        annotations(title = "List collections", read_only_hint = true, open_world_hint = false)
    )]
    async fn list_collections(&self, arguments: JsonObject) -> CallToolResult {
        respond(self.run_list(arguments).await)
    }
}

impl SemdexMcp {
    async fn run_search(&self, arguments: JsonObject) -> ToolResult {
        let args: SearchArgs = parse(arguments)?;
        let collection = args
            .collection
            .as_deref()
            .unwrap_or(DEFAULT_COLLECTION)
            .to_string();
        let body = SearchBody {
            query: args.query,
            k: args.k.unwrap_or(5),
            ef: None,
            exact: false,
            filter: (args.filter.is_some() || args.doc_ids.is_some()).then(|| FilterBody {
                doc_ids: args.doc_ids,
                metadata: args.filter.unwrap_or_default(),
            }),
            include_metadata: true,
            mode: args.mode,
            fusion: None,
            dense_weight: None,
            rerank: None,
            group_by: args.group_by,
            group_size: args.group_size,
            diversity: args.diversity,
            expand: args.expand,
            max_tokens: args.max_tokens,
            max_chars: None,
            highlights: Some(true),
            consistency: None,
        };
        let request = body.to_request()?;
        let shape = request.shape.clone();
        let started = Instant::now();
        let results = self
            .service()?
            .search(
                &collection,
                body.query.clone(),
                request,
                Consistency::default(),
            )
            .await?;
        let mut response =
            SearchResponse::new(results, &shape, started.elapsed().as_secs_f64() * 1000.0);
        crate::api::metadata_budget::apply(
            &mut response.results,
            true,
            self.state.config().max_response_metadata_bytes,
        );
        crate::api::text_budget::apply(
            &mut response.results,
            self.state.config().max_response_bytes,
        );
        let text = text::search(&body.query, &collection, &response);
        Ok((text, to_json(&response)?))
    }

    async fn run_add(&self, arguments: JsonObject) -> ToolResult {
        let args: AddDocumentsArgs = parse(arguments)?;
        let collection = args
            .collection
            .as_deref()
            .unwrap_or(DEFAULT_COLLECTION)
            .to_string();
        let documents = DocumentsBody::Many {
            documents: args
                .documents
                .into_iter()
                .map(|d| DocumentBody {
                    id: d.id,
                    text: d.text,
                    metadata: d.metadata.unwrap_or_default(),
                })
                .collect(),
        }
        .into_inputs();
        // No deadline: an agent's call runs to the end (or fails whole).
        let reports = self
            .service()?
            .ingest(&collection, documents, None)
            .await?
            .reports;
        let structured = json!({
            "collection": collection,
            "documents": reports.iter().map(|r| json!({
                "id": r.id, "status": r.status.as_str(), "chunks": r.chunks,
            })).collect::<Vec<_>>(),
        });
        Ok((text::added(&collection, &reports), structured))
    }

    async fn run_get(&self, arguments: JsonObject) -> ToolResult {
        let args: GetDocumentArgs = parse(arguments)?;
        let collection = args
            .collection
            .as_deref()
            .unwrap_or(DEFAULT_COLLECTION)
            .to_string();
        let document = self
            .service()?
            .document(&collection, args.id.clone(), Consistency::default())
            .await?;
        let length = document.text.len();
        let start = args.start.unwrap_or(0);
        let end = args
            .end
            .unwrap_or(length)
            .min(length)
            .min(start.saturating_add(MAX_DOCUMENT_BYTES));
        if start > end || start > length {
            return Err(ToolError(format!(
                "start..end must lie within the document's {length} bytes, got {start}..{}",
                args.end.map_or("end".to_string(), |e| e.to_string())
            )));
        }
        let (start, end) = (
            floor_char(&document.text, start),
            floor_char(&document.text, end),
        );
        let text = text::document(&collection, &document, start, end);
        let structured = json!({
            "collection": collection,
            "id": document.id,
            "source": document.source,
            "metadata": document.metadata,
            "content_hash": document.content_hash,
            "ingested_at": document.ingested_at,
            "chunks": document.chunks,
            "length": length,
            "start": start,
            "end": end,
            "text": &document.text[start..end],
        });
        Ok((text, structured))
    }

    async fn run_delete(&self, arguments: JsonObject) -> ToolResult {
        let args: DeleteDocumentArgs = parse(arguments)?;
        let collection = args
            .collection
            .as_deref()
            .unwrap_or(DEFAULT_COLLECTION)
            .to_string();
        let removed = self.service()?.delete(&collection, args.id.clone()).await?;
        Ok((
            format!(
                "Deleted document {:?} from collection {collection:?} ({removed} passages).",
                args.id
            ),
            json!({"collection": collection, "id": args.id, "deleted_chunks": removed}),
        ))
    }

    async fn run_list(&self, arguments: JsonObject) -> ToolResult {
        let _: NoArgs = parse(arguments)?;
        let collections: Vec<CollectionResponse> = self
            .service()?
            .list_collections()
            .await?
            .into_iter()
            .map(CollectionResponse::from)
            .collect();
        Ok((
            text::collections(&collections),
            json!({ "collections": to_json(&collections)? }),
        ))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for SemdexMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("semdex", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }
}

/// A value as JSON (the wire types always serialise).
fn to_json<T: serde::Serialize>(value: &T) -> Result<Value, ToolError> {
    serde_json::to_value(value).map_err(|e| ToolError(format!("internal error: {e}")))
}

/// The largest character boundary of `text` at or before `at`.
fn floor_char(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// `/mcp`: the tools over streamable HTTP, stateless (each POST answered with its JSON-RPC
/// response; no session to keep). With an API key every request must carry it, and the
/// `Host` check against DNS rebinding is left to the key; without one only loopback hosts
/// are served, as rmcp defaults.
pub fn http_service(
    state: AppState,
    max_body_bytes: usize,
) -> rmcp::transport::streamable_http_server::StreamableHttpService<
    SemdexMcp,
    rmcp::transport::streamable_http_server::session::local::LocalSessionManager,
> {
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };
    let keyed = state.config().api_key.is_some();
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_max_request_body_bytes(max_body_bytes);
    if keyed {
        config = config.disable_allowed_hosts();
    }
    StreamableHttpService::new(
        move || Ok(SemdexMcp::new(state.clone())),
        Default::default(),
        config,
    )
}

/// Serves the tools over stdin and stdout until the client closes them (`semdex mcp`).
pub async fn serve_stdio(state: AppState) -> Result<(), String> {
    use rmcp::ServiceExt;
    let running = SemdexMcp::new(state)
        .serve(rmcp::transport::io::stdio_pipes())
        .await
        .map_err(|e| format!("the MCP client did not initialise the session: {e}"))?;
    running
        .waiting()
        .await
        .map_err(|e| format!("the MCP session failed: {e}"))?;
    Ok(())
}

//! The PostgreSQL backend: documents, passages, vectors (pgvector, HNSW) and BM25 postings (the
//! terms of semdex's lexical analyzer, scored in SQL by tantivy's formula) in one database that
//! any number of semdex processes share.
//!
//! Nothing is kept in the process but a bounded pool of connections: a document written
//! through one replica is found through every other at once. Each document is written in one
//! transaction under an advisory lock on its id, so a killed semdex leaves no partial
//! document and concurrent writers of one id (in any replica) end with one version. A
//! database that cannot be reached gives [`EngineError::Unavailable`] (the API's 503 with
//! `Retry-After`); the pool replaces broken connections, so service resumes when it returns.

mod filter;
mod schema;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use pgvector::Vector;
use postgres::error::SqlState;
use postgres::{GenericClient, NoTls, Row};
use r2d2_postgres::PostgresConnectionManager;
use serde_json::{Map, Value};

use crate::filter::sql::{Params, to_sql};
use crate::index::{Hit, HnswParams};
use crate::lexical::LexicalStats;
use crate::store::{
    ChunkFilter, ChunkRecord, ChunkSpan, DocumentState, DocumentSummary, ModelIdentity, NewChunk,
    NewDocument, StoredDocument,
};

use super::super::{
    EngineError, EngineOptions, EngineStats, IngestStatus, LexicalKind, Result, SearchStrategy,
};
use super::{Backend, CandidateQuery, Candidates, Decision, Written, decide};
use filter::Param;

pub use schema::SCHEMA_VERSION;

/// pgvector's largest `hnsw.ef_search`.
const MAX_EF_SEARCH: usize = 1000;

/// How long a request waits for a pooled connection (or a new one) before the database is
/// reported unavailable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Failures of the database that are not the caller's doing and not an outage.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// A statement failed.
    #[error("PostgreSQL: {0}")]
    Query(#[from] postgres::Error),
    /// The database's vectors were made with another model.
    #[error(
        "the database holds vectors of model {stored}, not {current}: use the model it was made with, or another database"
    )]
    ModelMismatch {
        /// The model recorded in the database.
        stored: String,
        /// The model in use now.
        current: String,
    },
    /// The schema was written by a newer semdex.
    #[error("the database has schema version {found}; this semdex knows up to {supported}")]
    SchemaTooNew {
        /// The version found.
        found: i32,
        /// The newest version this build knows.
        supported: i32,
    },
    /// The URL cannot be parsed.
    #[error("database URL: {0}")]
    BadUrl(String),
    /// A stored value is not what the schema promises.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// The server lacks something semdex needs (pgvector 0.8, a UTF-8 database).
    #[error("the database is not usable: {0}")]
    Unsupported(String),
}

impl From<postgres::Error> for EngineError {
    /// Sorts a driver error: an outage or a conflict worth retrying (no connection, a closed
    /// one, a server shutting down or starting, a deadlock, a failover) is
    /// [`EngineError::Unavailable`]; a value the database cannot take from the caller (a
    /// character outside the server's encoding, a value past one of its limits)
    /// is [`EngineError::InvalidRequest`]; a write into a collection another replica deleted
    /// is [`EngineError::CollectionNotFound`]; the rest is ours.
    fn from(err: postgres::Error) -> Self {
        if is_retryable(&err) {
            return EngineError::Unavailable(err.to_string());
        }
        match err.code() {
            Some(code) if *code == SqlState::FOREIGN_KEY_VIOLATION => {
                EngineError::CollectionNotFound(String::new())
            }
            Some(code)
                if [
                    SqlState::CHARACTER_NOT_IN_REPERTOIRE,
                    SqlState::UNTRANSLATABLE_CHARACTER,
                    SqlState::PROGRAM_LIMIT_EXCEEDED,
                ]
                .contains(code) =>
            {
                EngineError::InvalidRequest(format!("the database refused a value: {err}"))
            }
            _ => EngineError::Postgres(PgError::Query(err)),
        }
    }
}

/// Whether a driver error is worth a retry: the database is unreachable now, or the
/// statement lost a conflict (deadlock, serialisation) or hit a standby after a failover.
fn is_retryable(err: &postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    match err.code() {
        Some(code) => {
            code.code().starts_with("08")
                || [
                    SqlState::ADMIN_SHUTDOWN,
                    SqlState::CRASH_SHUTDOWN,
                    SqlState::CANNOT_CONNECT_NOW,
                    SqlState::TOO_MANY_CONNECTIONS,
                    SqlState::T_R_DEADLOCK_DETECTED,
                    SqlState::T_R_SERIALIZATION_FAILURE,
                    SqlState::LOCK_NOT_AVAILABLE,
                    SqlState::QUERY_CANCELED,
                    SqlState::READ_ONLY_SQL_TRANSACTION,
                ]
                .contains(code)
        }
        // No SQLSTATE: an I/O failure of the connection is an outage; a conversion or
        // protocol error is a bug of ours, not worth a retry.
        None => std::error::Error::source(err)
            .is_some_and(|source| source.downcast_ref::<std::io::Error>().is_some()),
    }
}

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;
type Connection = r2d2::PooledConnection<PostgresConnectionManager<NoTls>>;

/// A PostgreSQL database holding semdex's collections: a bounded pool of connections.
pub struct Database {
    pool: Pool,
    /// The URL without its password, for logs and `/info`.
    display: String,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("url", &self.display)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Connects (lazily: connections open as they are needed, at most `pool_size`), then
    /// creates or upgrades the schema for `model` and checks the database was made with it.
    pub fn connect(
        url: &str,
        pool_size: u32,
        model: &ModelIdentity,
        hnsw: HnswParams,
    ) -> Result<Arc<Self>> {
        let config: postgres::Config = url
            .parse()
            .map_err(|e: postgres::Error| PgError::BadUrl(e.to_string()))?;
        let display = redact(url);
        let mut config = config;
        if config.get_application_name().is_none() {
            config.application_name("semdex");
        }
        config.connect_timeout(CONNECT_TIMEOUT);
        let manager = PostgresConnectionManager::new(config, NoTls);
        let pool = r2d2::Pool::builder()
            .max_size(pool_size.max(1))
            .min_idle(Some(0))
            .connection_timeout(CONNECT_TIMEOUT)
            // A connection broken by a database restart is found and replaced before use.
            .test_on_check_out(true)
            .build_unchecked(manager);
        let database = Self { pool, display };
        let mut client = database.client()?;
        schema::migrate(&mut client, model, hnsw)?;
        backfill_postings(&mut client)?;
        drop(client);
        tracing::info!(url = %database.display, pool_size, "connected to PostgreSQL");
        Ok(Arc::new(database))
    }

    /// The URL without its password.
    pub fn display_url(&self) -> &str {
        &self.display
    }

    /// A connection from the pool; [`EngineError::Unavailable`] when none can be had.
    fn client(&self) -> Result<Connection> {
        self.pool
            .get()
            .map_err(|e| EngineError::Unavailable(format!("PostgreSQL at {}: {e}", self.display)))
    }

    /// Names of the collections recorded in the database, with their settings (JSON) and
    /// creation time (RFC 3339), in name order.
    pub fn collections(&self) -> Result<Vec<(String, Value, String)>> {
        let rows = self.client()?.query(
            &format!(
                "SELECT name, settings, {} FROM semdex_collections ORDER BY name",
                rfc3339("created_at")
            ),
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    /// Records a collection and returns its creation time (RFC 3339, the database's clock);
    /// `None` when one of that name exists already.
    pub fn create_collection(&self, name: &str, settings: &Value) -> Result<Option<String>> {
        let row = self.client()?.query_opt(
            &format!(
                "INSERT INTO semdex_collections (name, settings) VALUES ($1, $2)
                 ON CONFLICT (name) DO NOTHING RETURNING {}",
                rfc3339("created_at")
            ),
            &[&name, settings],
        )?;
        Ok(row.map(|r| r.get(0)))
    }

    /// The settings a collection was created with, or `None` when there is none.
    pub fn collection_settings(&self, name: &str) -> Result<Option<Value>> {
        let row = self.client()?.query_opt(
            "SELECT settings FROM semdex_collections WHERE name = $1",
            &[&name],
        )?;
        Ok(row.map(|r| r.get(0)))
    }

    /// When the collection of that name was created, or `None` when there is none: another
    /// replica may have deleted it, or deleted it and created another of the same name.
    pub fn collection_created(&self, name: &str) -> Result<Option<String>> {
        let row = self.client()?.query_opt(
            &format!(
                "SELECT {} FROM semdex_collections WHERE name = $1",
                rfc3339("created_at")
            ),
            &[&name],
        )?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Deletes a collection and everything in it, in one transaction; `false` when there was
    /// no such collection.
    pub fn delete_collection(&self, name: &str) -> Result<bool> {
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        let deleted = tx.execute("DELETE FROM semdex_collections WHERE name = $1", &[&name])?;
        tx.execute(
            "DELETE FROM semdex_documents WHERE collection = $1",
            &[&name],
        )?;
        tx.commit()?;
        Ok(deleted == 1)
    }

    /// Documents and passages of a collection.
    pub fn counts(&self, collection: &str) -> Result<(usize, usize)> {
        let row = self.client()?.query_one(
            "SELECT (SELECT count(*) FROM semdex_documents WHERE collection = $1),
                    (SELECT count(*) FROM semdex_chunks WHERE collection = $1)",
            &[&collection],
        )?;
        Ok((row.get::<_, i64>(0) as usize, row.get::<_, i64>(1) as usize))
    }
}

/// One collection's rows in a [`Database`].
pub struct PostgresBackend {
    database: Arc<Database>,
    collection: String,
    hnsw: HnswParams,
    exact_below: usize,
}

impl PostgresBackend {
    /// The collection `collection` of `database` (whose schema [`Database::connect`] made).
    pub fn open(
        database: Arc<Database>,
        collection: &str,
        _model: &ModelIdentity,
        options: &EngineOptions,
    ) -> Result<Self> {
        options.hnsw.validate()?;
        Ok(Self {
            database,
            collection: collection.to_string(),
            hnsw: options.hnsw,
            exact_below: options.exact_below,
        })
    }

    fn client(&self) -> Result<Connection> {
        self.database.client()
    }

    /// Takes the transaction-level lock that serialises writes to one document id in every
    /// replica, then a share lock on the collection's row: a delete of the collection waits
    /// for this write (always locked in this order: no deadlock with it), or has happened, and
    /// the write is refused.
    fn lock_id(&self, tx: &mut postgres::Transaction<'_>, id: &str) -> Result<()> {
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))",
            &[&self.collection, &id],
        )?;
        let live = tx
            .query_opt(
                "SELECT 1 FROM semdex_collections WHERE name = $1 FOR KEY SHARE",
                &[&self.collection],
            )?
            .is_some();
        if !live {
            return Err(EngineError::CollectionNotFound(self.collection.clone()));
        }
        Ok(())
    }

    /// The `WHERE` conditions (over `c`, the passages, and `d`, their documents) that keep a
    /// query inside this collection and its filter, with their parameters after `params`.
    fn conditions(&self, filter: &ChunkFilter, params: &mut Params<Param>) -> (String, bool) {
        let collection = params.bind(Box::new(self.collection.clone()));
        let mut conditions = vec![format!("c.collection = {collection}")];
        let mut needs_documents = false;
        if let Some(ids) = &filter.doc_ids {
            // An id with NUL names nothing stored (and PostgreSQL text cannot carry it).
            let ids: Vec<String> = ids
                .iter()
                .filter(|id| !id.contains('\0'))
                .cloned()
                .collect();
            let list = params.bind(Box::new(ids));
            conditions.push(format!("c.doc_id = ANY({list}::text[])"));
        }
        if !filter.metadata.is_empty() {
            needs_documents = true;
            let dialect = filter::Postgres::new("d.metadata");
            conditions.push(to_sql(&dialect, &filter.metadata, params));
        }
        (conditions.join(" AND "), needs_documents)
    }

    fn dense(
        &self,
        client: &mut Connection,
        vector: &[f32],
        query: &CandidateQuery<'_>,
    ) -> Result<(Vec<Hit>, SearchStrategy)> {
        let mut params: Params<Param> = Params::new(filter::placeholder);
        let q = params.bind(Box::new(Vector::from(vector.to_vec())));
        let (conditions, join) = self.conditions(query.filter, &mut params);
        let limit = params.bind(Box::new(query.dense_depth as i64));
        let sql = format!(
            "SELECT c.id, -(c.embedding <#> {q}) FROM semdex_chunks c {} WHERE {conditions}
             ORDER BY c.embedding <#> {q} LIMIT {limit}",
            if join { DOCUMENTS_JOIN } else { "" }
        );
        // The graph returns at most ef_search rows: never fewer than asked for.
        let ef = query
            .ef
            .unwrap_or(self.hnsw.ef_search)
            .max(query.dense_depth)
            .min(MAX_EF_SEARCH);
        let filtered = !query.filter.is_empty();
        // Few passages (a small collection, a list of documents, metadata few passages match)
        // are scored exactly, as the embedded backend does: walking a graph that other
        // collections share past passages the query excludes would stop at pgvector's scan
        // limit with fewer than k.
        let exact = query.exact
            || query.filter.doc_ids.is_some()
            || self.admits_at_most(
                client,
                query.filter,
                self.exact_below.max(query.dense_depth),
            )?;
        let mut tx = client.build_transaction().read_only(true).start()?;
        let mut settings = format!("SET LOCAL hnsw.ef_search = {ef};");
        if exact {
            // Without index scans the planner scores every admitted passage: exact search.
            settings.push_str("SET LOCAL enable_indexscan = off;");
        } else {
            // The graph holds every collection: keep walking it until enough passages of this
            // one (and its filter) are found, in exact order.
            settings.push_str("SET LOCAL hnsw.iterative_scan = strict_order;");
        }
        tx.batch_execute(&settings)?;
        let hits = hits(&tx.query(&sql, &as_params(&params.into_values()))?);
        tx.commit()?;
        let strategy = match (exact, filtered) {
            (true, false) => SearchStrategy::Exact,
            (true, true) => SearchStrategy::ExactFiltered,
            (false, false) => SearchStrategy::Hnsw,
            (false, true) => SearchStrategy::HnswFiltered,
        };
        Ok((hits, strategy))
    }

    /// Whether `filter` admits at most `limit` passages of the collection (it reads at most
    /// one more).
    fn admits_at_most(
        &self,
        client: &mut Connection,
        filter: &ChunkFilter,
        limit: usize,
    ) -> Result<bool> {
        let mut params: Params<Param> = Params::new(filter::placeholder);
        let (conditions, join) = self.conditions(filter, &mut params);
        let cap = params.bind(Box::new(limit as i64 + 1));
        let sql = format!(
            "SELECT count(*) FROM (SELECT 1 FROM semdex_chunks c {} WHERE {conditions} LIMIT {cap}) AS admitted",
            if join { DOCUMENTS_JOIN } else { "" }
        );
        let admitted: i64 = client
            .query_one(&sql, &as_params(&params.into_values()))?
            .get(0);
        Ok(admitted as usize <= limit)
    }

    fn lexical(
        &self,
        client: &mut Connection,
        text: &str,
        depth: usize,
        filter: &ChunkFilter,
    ) -> Result<Vec<Hit>> {
        let terms = crate::lexical::analyzer::query_terms(text);
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        let mut params: Params<Param> = Params::new(filter::placeholder);
        let collection = params.bind(Box::new(self.collection.clone()));
        let terms = params.bind(Box::new(terms));
        // The filter's conditions are over the passage (c) and its document (d): joined only
        // when there is a filter, as scoring itself reads the postings index alone.
        let restriction = if filter.is_empty() {
            String::new()
        } else {
            let (conditions, join) = self.conditions(filter, &mut params);
            format!(
                "JOIN semdex_chunks c ON c.id = p.chunk_id {} WHERE {conditions}",
                if join { DOCUMENTS_JOIN } else { "" }
            )
        };
        let limit = params.bind(Box::new(depth as i64));
        let sql = format!(
            "WITH {totals}, {postings}
             SELECT p.chunk_id, sum({score})::float8 AS score
             FROM p CROSS JOIN totals t {restriction}
             GROUP BY p.chunk_id ORDER BY score DESC, p.chunk_id LIMIT {limit}",
            totals = totals_cte(&collection),
            postings = postings_cte(&collection, &terms),
            score = bm25_score(),
        );
        Ok(hits(
            &client.query(&sql, &as_params(&params.into_values()))?,
        ))
    }
}

/// BM25's constants, tantivy's: both backends rank alike.
const BM25_K1: f64 = 1.2;
const BM25_B: f64 = 0.75;

/// One posting's BM25 term score, over `p` ([`postings_cte`]) and `totals t`: the inverse
/// document frequency times the saturated, length-normalised term frequency. N is never taken
/// below a term's frequency, so totals that drifted (see the README on upgrades) cannot make
/// the idf negative. Every operand is float8: an integer beside a decimal literal would make
/// PostgreSQL compute in `numeric`, several times slower.
fn bm25_score() -> String {
    format!(
        "ln(1 + (greatest(t.n, p.df) - p.df + 0.5) / (p.df + 0.5))
         * {k1_plus_1} * p.tf::float8
         / (p.tf::float8 + {k1} * ({one_minus_b} + {b} * p.length::float8 / t.avgdl))",
        k1_plus_1 = BM25_K1 + 1.0,
        k1 = BM25_K1,
        one_minus_b = 1.0 - BM25_B,
        b = BM25_B
    )
}

/// `p (chunk_id, tf, length, df)`: the postings of the query's terms in a collection, each with
/// its term's document frequency. The window counts over the index's order (collection, term),
/// so it needs no sort; conditions applied outside it leave the frequencies whole.
fn postings_cte(collection: &str, terms: &str) -> String {
    format!(
        "p AS (
             SELECT chunk_id, tf, length, count(*) OVER (PARTITION BY term)::float8 AS df
             FROM semdex_postings WHERE collection = {collection} AND term = ANY({terms}::text[])
         )"
    )
}

/// `totals (n, avgdl)`: a collection's BM25 statistics, from its row of `semdex_lexical_totals`.
fn totals_cte(collection: &str) -> String {
    format!(
        "totals AS (
             SELECT passages::float8 AS n, greatest(terms::float8 / greatest(passages, 1), 1e-9) AS avgdl
             FROM semdex_lexical_totals WHERE collection = {collection}
         )"
    )
}

/// A passage's terms (by the lexical analyzer, the embedded backend's) with their counts, and
/// how many there are in all: its postings and BM25 length.
struct TermCounts {
    terms: Vec<String>,
    counts: Vec<i32>,
    length: i32,
}

impl TermCounts {
    fn of(words: &str) -> Self {
        let all = crate::lexical::analyzer::terms(words);
        let mut counts: std::collections::BTreeMap<String, i32> = Default::default();
        for term in &all {
            *counts.entry(term.clone()).or_default() += 1;
        }
        let length = i32::try_from(all.len()).unwrap_or(i32::MAX);
        let (terms, counts) = counts.into_iter().unzip();
        Self {
            terms,
            counts,
            length,
        }
    }
}

/// The postings of several passages, gathered for one insert.
#[derive(Default)]
struct PostingRows {
    chunk_ids: Vec<i64>,
    terms: Vec<String>,
    tfs: Vec<i32>,
    lengths: Vec<i32>,
}

impl PostingRows {
    fn push(&mut self, chunk_id: i64, passage: TermCounts) {
        for (term, tf) in passage.terms.into_iter().zip(passage.counts) {
            self.chunk_ids.push(chunk_id);
            self.terms.push(term);
            self.tfs.push(tf);
            self.lengths.push(passage.length);
        }
    }

    fn insert(&self, tx: &mut impl GenericClient, collection: &str) -> Result<()> {
        if self.chunk_ids.is_empty() {
            return Ok(());
        }
        tx.execute(
            "INSERT INTO semdex_postings (collection, term, chunk_id, tf, length)
             SELECT $1, * FROM unnest($2::text[], $3::bigint[], $4::integer[], $5::integer[])",
            &[
                &collection,
                &self.terms,
                &self.chunk_ids,
                &self.tfs,
                &self.lengths,
            ],
        )?;
        Ok(())
    }
}

/// A change to a collection's BM25 totals within one transaction.
#[derive(Default)]
struct LexicalDelta {
    passages: i64,
    terms: i64,
}

impl LexicalDelta {
    fn add(&mut self, length: i32) {
        self.passages += 1;
        self.terms += i64::from(length);
    }

    /// Takes away deleted passages (their `terms`; a passage without postings never counted).
    fn remove(&mut self, lengths: &[Option<i32>]) {
        for length in lengths.iter().flatten() {
            self.passages -= 1;
            self.terms -= i64::from(*length);
        }
    }

    /// Writes the change: last in a transaction, as the row lock it takes is held to commit
    /// and serialises the collection's writers.
    fn apply(&self, tx: &mut impl GenericClient, collection: &str) -> Result<()> {
        if self.passages == 0 && self.terms == 0 {
            return Ok(());
        }
        tx.execute(
            "INSERT INTO semdex_lexical_totals AS t (collection, passages, terms)
             VALUES ($1, $2, $3)
             ON CONFLICT (collection) DO UPDATE
             SET passages = t.passages + EXCLUDED.passages, terms = t.terms + EXCLUDED.terms",
            &[&collection, &self.passages, &self.terms],
        )?;
        Ok(())
    }
}

/// Deletes a document and its passages (their postings go with them), and takes the passages
/// out of the collection's BM25 totals in `delta`, by their lengths as deleted: a concurrent
/// backfill's are counted once it has committed. Whether the document was there, and how many
/// passages it had.
fn delete_document(
    tx: &mut impl GenericClient,
    collection: &str,
    doc_id: &str,
    delta: &mut LexicalDelta,
) -> Result<(bool, usize)> {
    let lengths: Vec<Option<i32>> = tx
        .query(
            "DELETE FROM semdex_chunks WHERE collection = $1 AND doc_id = $2 RETURNING terms",
            &[&collection, &doc_id],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    delta.remove(&lengths);
    let deleted = tx.execute(
        "DELETE FROM semdex_documents WHERE collection = $1 AND id = $2",
        &[&collection, &doc_id],
    )?;
    Ok((deleted == 1, lengths.len()))
}

/// Joins each passage to its document, for metadata filters and results.
const DOCUMENTS_JOIN: &str =
    "JOIN semdex_documents d ON d.collection = c.collection AND d.id = c.doc_id";

/// SQL rendering a timestamp column as RFC 3339 UTC with milliseconds, as the embedded store
/// writes them.
fn rfc3339(column: &str) -> String {
    format!("to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')")
}

fn as_params(values: &[Param]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
    values
        .iter()
        .map(|p| p.as_ref() as &(dyn postgres::types::ToSql + Sync))
        .collect()
}

/// `(id, score)` rows as hits.
fn hits(rows: &[Row]) -> Vec<Hit> {
    rows.iter()
        .map(|r| Hit {
            id: r.get::<_, i64>(0) as u64,
            score: r.get::<_, f64>(1) as f32,
        })
        .collect()
}

fn ids_param(ids: &[u64]) -> Vec<i64> {
    ids.iter().map(|&id| id as i64).collect()
}

/// Metadata as it was given, from its stored text (the `jsonb` copy, which filters read,
/// normalises numbers: 1e16 comes back as 10000000000000000, and f64::MAX as 309 digits that
/// serde_json cannot read back).
fn metadata_of(text: &str) -> Result<Map<String, Value>> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(EngineError::Postgres(PgError::Corrupt(format!(
            "stored metadata is not a JSON object: {text}"
        )))),
    }
}

/// Refuses what PostgreSQL text cannot hold (NUL), naming the document.
fn check_storable(doc: &NewDocument<'_>) -> Result<()> {
    fn has_nul(value: &Value) -> bool {
        match value {
            Value::String(s) => s.contains('\0'),
            Value::Array(items) => items.iter().any(has_nul),
            Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    let has_nul = doc.text.contains('\0')
        || doc.id.contains('\0')
        || doc.source.is_some_and(|s| s.contains('\0'))
        || doc.title.is_some_and(|t| t.contains('\0'))
        || doc
            .metadata
            .iter()
            .any(|(k, v)| k.contains('\0') || has_nul(v));
    if has_nul {
        return Err(EngineError::InvalidRequest(format!(
            "document {:?}: the NUL character cannot be stored in PostgreSQL",
            doc.id
        )));
    }
    Ok(())
}

/// Replaces `url`'s password with `***`.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user_info, host)) => {
                let user = user_info.split(':').next().unwrap_or("");
                if user_info.contains(':') {
                    format!("{scheme}://{user}:***@{host}")
                } else {
                    format!("{scheme}://{user_info}@{host}")
                }
            }
            None => url.to_string(),
        },
        None => "(key=value connection string)".to_string(),
    }
}

impl Backend for PostgresBackend {
    fn stats(&self) -> Result<EngineStats> {
        let (documents, chunks) = self.database.counts(&self.collection)?;
        let row = self.client()?.query_one(
            "SELECT pg_total_relation_size('semdex_postings'),
                    coalesce((SELECT array_to_string(reloptions, ',') FROM pg_class
                              WHERE relname = 'semdex_chunks_embedding'), ''),
                    coalesce((SELECT passages FROM semdex_lexical_totals WHERE collection = $1), 0)",
            &[&self.collection],
        )?;
        let bytes: i64 = row.get(0);
        let with_postings: i64 = row.get(2);
        // The graph was built with the settings of the semdex that created the schema.
        let built: String = row.get(1);
        let setting = |key: &str, default: usize| {
            built
                .split(',')
                .filter_map(|kv| kv.split_once('='))
                .find(|(k, _)| *k == key)
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(default)
        };
        let hnsw = HnswParams {
            m: setting("m", self.hnsw.m),
            ef_construction: setting("ef_construction", self.hnsw.ef_construction),
            ef_search: self.hnsw.ef_search,
        };
        Ok(EngineStats {
            documents,
            chunks,
            indexed: chunks,
            tombstones: 0,
            index_kind: "pgvector_hnsw",
            hnsw,
            exact_below: self.exact_below,
            // The vectors live in PostgreSQL, not in this process.
            vector_bytes: 0,
            index_memory_bytes: 0,
            // The passages with postings; the bytes of the whole database's postings (every
            // collection's), indexes included.
            lexical: LexicalStats {
                passages: with_postings as u64,
                bytes: bytes as u64,
            },
            lexical_kind: LexicalKind {
                ranking: "BM25 in SQL (semdex_postings)",
                analyzer: crate::lexical::analyzer::ANALYZER,
            },
        })
    }

    fn document_state(&self, id: &str) -> Result<Option<DocumentState>> {
        if id.contains('\0') {
            return Ok(None);
        }
        document_state(&mut *self.client()?, &self.collection, id)
    }

    fn write(
        &self,
        doc: &NewDocument<'_>,
        passages: Option<&[NewChunk<'_>]>,
        deleted_since: &dyn Fn(Option<&DocumentState>) -> bool,
    ) -> Result<Written> {
        check_storable(doc)?;
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        self.lock_id(&mut tx, doc.id)?;
        let state = document_state(&mut tx, &self.collection, doc.id)?;
        if deleted_since(state.as_ref()) {
            return Ok(Written::Settled(IngestStatus::Deleted));
        }
        let existed = match decide(state.as_ref(), doc) {
            Decision::Unchanged => return Ok(Written::Settled(IngestStatus::Unchanged)),
            Decision::MetadataOnly => {
                tx.execute(
                    "UPDATE semdex_documents
                     SET metadata = $3, metadata_text = $4, ingested_at = clock_timestamp()
                     WHERE collection = $1 AND id = $2",
                    &[
                        &self.collection,
                        &doc.id,
                        &Value::Object(doc.metadata.clone()),
                        &Value::Object(doc.metadata.clone()).to_string(),
                    ],
                )?;
                tx.commit()?;
                return Ok(Written::Settled(IngestStatus::MetadataUpdated));
            }
            Decision::Passages { existed } => existed,
        };
        let Some(passages) = passages else {
            return Ok(Written::NeedsPassages);
        };
        let mut totals = LexicalDelta::default();
        if existed {
            delete_document(&mut tx, &self.collection, doc.id, &mut totals)?;
        }
        tx.execute(
            "INSERT INTO semdex_documents
                 (collection, id, source, text, metadata, metadata_text, content_hash, title)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &[
                &self.collection,
                &doc.id,
                &doc.source,
                &doc.text,
                &Value::Object(doc.metadata.clone()),
                &Value::Object(doc.metadata.clone()).to_string(),
                &doc.content_hash,
                &doc.title,
            ],
        )?;
        let insert = tx.prepare(
            "INSERT INTO semdex_chunks
                 (collection, doc_id, idx, start_byte, end_byte, text, embedding, tokens, terms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )?;
        let mut postings = PostingRows::default();
        for p in passages {
            let terms = TermCounts::of(&crate::chunk::with_title(doc.title, p.text));
            let id: i64 = tx
                .query_one(
                    &insert,
                    &[
                        &self.collection,
                        &doc.id,
                        &(p.index as i32),
                        &(p.start as i64),
                        &(p.end as i64),
                        &p.text,
                        &Vector::from(p.vector.to_vec()),
                        &p.tokens,
                        &terms.length,
                    ],
                )?
                .get(0);
            totals.add(terms.length);
            postings.push(id, terms);
        }
        postings.insert(&mut tx, &self.collection)?;
        totals.apply(&mut tx, &self.collection)?;
        tx.commit()?;
        Ok(Written::Stored { existed })
    }

    fn delete(&self, id: &str) -> Result<Option<usize>> {
        if id.contains('\0') {
            // Nothing stored has one.
            return Ok(None);
        }
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        self.lock_id(&mut tx, id)?;
        let mut totals = LexicalDelta::default();
        let (deleted, passages) = delete_document(&mut tx, &self.collection, id, &mut totals)?;
        totals.apply(&mut tx, &self.collection)?;
        tx.commit()?;
        Ok(deleted.then_some(passages))
    }

    /// Nothing to do: postings are written in each document's transaction.
    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn document(&self, id: &str) -> Result<Option<StoredDocument>> {
        if id.contains('\0') {
            return Ok(None);
        }
        let row = self.client()?.query_opt(
            &format!(
                "SELECT d.id, d.source, d.text, d.metadata_text, d.content_hash, {},
                        (SELECT count(*) FROM semdex_chunks c
                         WHERE c.collection = d.collection AND c.doc_id = d.id)
                 FROM semdex_documents d WHERE d.collection = $1 AND d.id = $2",
                rfc3339("d.ingested_at")
            ),
            &[&self.collection, &id],
        )?;
        row.map(|r| {
            Ok(StoredDocument {
                id: r.get(0),
                source: r.get(1),
                text: r.get(2),
                metadata: metadata_of(r.get::<_, &str>(3))?,
                content_hash: r.get(4),
                ingested_at: r.get(5),
                chunks: r.get::<_, i64>(6) as usize,
            })
        })
        .transpose()
    }

    fn documents(&self, limit: usize, offset: usize) -> Result<Vec<DocumentSummary>> {
        let rows = self.client()?.query(
            &format!(
                "SELECT d.id, d.source, d.metadata_text, {}, octet_length(d.text)::bigint,
                        (SELECT count(*) FROM semdex_chunks c
                         WHERE c.collection = d.collection AND c.doc_id = d.id)
                 FROM semdex_documents d WHERE d.collection = $1
                 ORDER BY d.id LIMIT $2 OFFSET $3",
                rfc3339("d.ingested_at")
            ),
            &[&self.collection, &(limit as i64), &(offset as i64)],
        )?;
        rows.into_iter()
            .map(|r| {
                Ok(DocumentSummary {
                    id: r.get(0),
                    source: r.get(1),
                    metadata: metadata_of(r.get::<_, &str>(2))?,
                    ingested_at: r.get(3),
                    bytes: r.get::<_, i64>(4) as usize,
                    chunks: r.get::<_, i64>(5) as usize,
                })
            })
            .collect()
    }

    fn document_chunks(&self, id: &str) -> Result<Option<Vec<ChunkSpan>>> {
        if id.contains('\0') {
            return Ok(None);
        }
        let mut client = self.client()?;
        let mut tx = client.build_transaction().read_only(true).start()?;
        let exists = tx
            .query_opt(
                "SELECT 1 FROM semdex_documents WHERE collection = $1 AND id = $2",
                &[&self.collection, &id],
            )?
            .is_some();
        if !exists {
            return Ok(None);
        }
        let rows = tx.query(
            "SELECT id, idx, start_byte, end_byte FROM semdex_chunks
             WHERE collection = $1 AND doc_id = $2 ORDER BY idx",
            &[&self.collection, &id],
        )?;
        tx.commit()?;
        Ok(Some(
            rows.iter()
                .map(|r| ChunkSpan {
                    chunk_id: r.get::<_, i64>(0) as u64,
                    index: r.get::<_, i32>(1) as usize,
                    start: r.get::<_, i64>(2) as usize,
                    end: r.get::<_, i64>(3) as usize,
                })
                .collect(),
        ))
    }

    fn candidates(&self, query: &CandidateQuery<'_>) -> Result<Candidates> {
        let mut client = self.client()?;
        let (dense, strategy) = match query.vector {
            Some(vector) if query.dense_depth > 0 => {
                let (hits, strategy) = self.dense(&mut client, vector, query)?;
                (hits, Some(strategy))
            }
            _ => (Vec::new(), None),
        };
        let lexical = if query.lexical_depth > 0 {
            self.lexical(&mut client, query.text, query.lexical_depth, query.filter)?
        } else {
            Vec::new()
        };
        Ok(Candidates {
            dense,
            lexical,
            strategy,
        })
    }

    fn dense_among(&self, vector: &[f32], ids: &[u64]) -> Result<Vec<Hit>> {
        let rows = self.client()?.query(
            "SELECT id, -(embedding <#> $1) FROM semdex_chunks
             WHERE collection = $2 AND id = ANY($3) ORDER BY 2 DESC",
            &[
                &Vector::from(vector.to_vec()),
                &self.collection,
                &ids_param(ids),
            ],
        )?;
        Ok(hits(&rows))
    }

    fn lexical_among(&self, text: &str, ids: &[u64]) -> Result<Vec<Hit>> {
        let terms = crate::lexical::analyzer::query_terms(text);
        if terms.is_empty() || ids.is_empty() {
            return Ok(Vec::new());
        }
        // Document frequencies over the whole collection, as in a search (the condition on
        // `ids` applies after the window); the scores only for `ids`.
        let sql = format!(
            "WITH {totals}, {postings}
             SELECT p.chunk_id, sum({score})::float8 AS score
             FROM p CROSS JOIN totals t WHERE p.chunk_id = ANY($3)
             GROUP BY p.chunk_id ORDER BY score DESC",
            totals = totals_cte("$1"),
            postings = postings_cte("$1", "$2"),
            score = bm25_score(),
        );
        let rows = self
            .client()?
            .query(&sql, &[&self.collection, &terms, &ids_param(ids)])?;
        Ok(hits(&rows))
    }

    fn visit_token_vectors(&self, ids: &[u64], visit: &mut dyn FnMut(u64, &[u8])) -> Result<()> {
        let rows = self.client()?.query(
            "SELECT id, tokens FROM semdex_chunks
             WHERE collection = $1 AND id = ANY($2) AND tokens IS NOT NULL",
            &[&self.collection, &ids_param(ids)],
        )?;
        for r in &rows {
            visit(r.get::<_, i64>(0) as u64, r.get::<_, &[u8]>(1));
        }
        Ok(())
    }

    fn chunks_by_ids(&self, ids: &[u64]) -> Result<HashMap<u64, ChunkRecord>> {
        let rows = self.client()?.query(
            &format!(
                "SELECT c.id, c.doc_id, c.idx, c.start_byte, c.end_byte, c.text, d.metadata_text
                 FROM semdex_chunks c {DOCUMENTS_JOIN}
                 WHERE c.collection = $1 AND c.id = ANY($2)"
            ),
            &[&self.collection, &ids_param(ids)],
        )?;
        rows.into_iter()
            .map(|r| {
                let id = r.get::<_, i64>(0) as u64;
                Ok((
                    id,
                    ChunkRecord {
                        chunk_id: id,
                        doc_id: r.get(1),
                        index: r.get::<_, i32>(2) as usize,
                        start: r.get::<_, i64>(3) as usize,
                        end: r.get::<_, i64>(4) as usize,
                        text: r.get(5),
                        metadata: metadata_of(r.get::<_, &str>(6))?,
                    },
                ))
            })
            .collect()
    }
}

/// Passages per transaction of [`backfill_postings`].
const BACKFILL_BATCH: i64 = 512;

/// Writes the BM25 postings of passages that have none (written under schema 1), a batch per
/// transaction, so that an upgraded database ranks every passage; replicas starting together
/// share the work (`SKIP LOCKED`). Derived data, like the embedded backend's lexical index
/// rebuilt from its store.
fn backfill_postings(client: &mut postgres::Client) -> Result<()> {
    let started = std::time::Instant::now();
    let mut written = 0usize;
    loop {
        let mut tx = client.transaction()?;
        let rows = tx.query(
            "SELECT c.id, c.collection, c.text, d.title FROM semdex_chunks c
             JOIN semdex_documents d ON d.collection = c.collection AND d.id = c.doc_id
             WHERE c.terms IS NULL ORDER BY c.id LIMIT $1 FOR UPDATE OF c SKIP LOCKED",
            &[&BACKFILL_BATCH],
        )?;
        if rows.is_empty() {
            break;
        }
        // Per collection, in name order: replicas backfilling together lock totals alike.
        let mut batches: std::collections::BTreeMap<String, (PostingRows, LexicalDelta)> =
            Default::default();
        let (mut ids, mut lengths) = (Vec::new(), Vec::new());
        for row in &rows {
            let id: i64 = row.get(0);
            let text: &str = row.get(2);
            let title: Option<&str> = row.get(3);
            let terms = TermCounts::of(&crate::chunk::with_title(title, text));
            ids.push(id);
            lengths.push(terms.length);
            let (postings, delta) = batches.entry(row.get(1)).or_default();
            delta.add(terms.length);
            postings.push(id, terms);
        }
        tx.execute(
            "UPDATE semdex_chunks SET terms = u.terms
             FROM unnest($1::bigint[], $2::integer[]) AS u(id, terms) WHERE semdex_chunks.id = u.id",
            &[&ids, &lengths],
        )?;
        for (collection, (postings, _)) in &batches {
            postings.insert(&mut tx, collection)?;
        }
        for (collection, (_, delta)) in &batches {
            delta.apply(&mut tx, collection)?;
        }
        tx.commit()?;
        if written == 0 {
            tracing::info!("writing the BM25 postings of passages stored by an older semdex");
        }
        written += rows.len();
    }
    if written > 0 {
        tracing::info!(
            passages = written,
            seconds = format!("{:.1}", started.elapsed().as_secs_f64()),
            "wrote BM25 postings"
        );
    }
    Ok(())
}

/// What the database holds for a document id.
fn document_state(
    client: &mut impl GenericClient,
    collection: &str,
    id: &str,
) -> Result<Option<DocumentState>> {
    client
        .query_opt(
            "SELECT content_hash, metadata_text FROM semdex_documents WHERE collection = $1 AND id = $2",
            &[&collection, &id],
        )?
        .map(|r| {
            Ok(DocumentState {
                content_hash: r.get(0),
                metadata: metadata_of(r.get::<_, &str>(1))?,
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_the_logs() {
        assert_eq!(
            redact("postgres://app:secret@db:5432/semdex"),
            "postgres://app:***@db:5432/semdex"
        );
        assert_eq!(
            redact("postgres://app@db/semdex"),
            "postgres://app@db/semdex"
        );
        assert_eq!(redact("host=db user=app"), "(key=value connection string)");
    }
}

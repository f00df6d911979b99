//! One collection's rows in a [`Database`]: the [`Backend`] over PostgreSQL.

use std::collections::HashMap;
use std::sync::Arc;

use pgvector::Vector;
use postgres::{GenericClient, Row};
use serde_json::{Map, Value};

use crate::filter::sql::{Params, to_sql};
use crate::index::{Hit, HnswParams};
use crate::lexical::LexicalStats;
use crate::storage::StorageError;
use crate::storage::backend::{
    Backend, BackendOptions, CandidateQuery, Candidates, CollectionStats, Decision, LexicalKind,
    SearchStrategy, Settled, Written, decide,
};
use crate::storage::types::{
    ChunkFilter, ChunkRecord, ChunkSpan, Citation, DocumentState, DocumentSummary, NewChunk,
    NewDocument, StoredDocument, pages_from_columns, section_from_json, section_to_json,
};

use super::bm25::{bm25_score, postings_cte, totals_cte};
use super::filter::{self, Param};
use super::postings::{LexicalDelta, PostingRows, TermCounts, delete_document};
use super::{Connection, Database, PgError, Result};

/// pgvector's largest `hnsw.ef_search`.
const MAX_EF_SEARCH: usize = 1000;

/// A document's passages as columns, for one insert.
#[derive(Default)]
struct PassageRows<'a> {
    indexes: Vec<i32>,
    starts: Vec<i64>,
    ends: Vec<i64>,
    texts: Vec<&'a str>,
    vectors: Vec<Vector>,
    tokens: Vec<Option<&'a [u8]>>,
    lengths: Vec<i32>,
    sections: Vec<Option<String>>,
    first_pages: Vec<Option<i32>>,
    last_pages: Vec<Option<i32>>,
}

impl<'a> PassageRows<'a> {
    fn push(&mut self, passage: &NewChunk<'a>, length: i32) {
        let page = |p: u32| i32::try_from(p).ok();
        self.sections.push(section_to_json(passage.section));
        self.first_pages
            .push(passage.pages.and_then(|p| page(p.first)));
        self.last_pages
            .push(passage.pages.and_then(|p| page(p.last)));
        self.indexes.push(passage.index as i32);
        self.starts.push(passage.start as i64);
        self.ends.push(passage.end as i64);
        self.texts.push(passage.text);
        self.vectors.push(Vector::from(passage.vector.to_vec()));
        self.tokens.push(passage.tokens);
        self.lengths.push(length);
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
        options: &BackendOptions,
    ) -> Result<Self> {
        options.hnsw.validate()?;
        Ok(Self {
            database,
            collection: collection.to_string(),
            hnsw: options.hnsw,
            exact_below: options.exact_below,
        })
    }

    /// A connection to the primary, for writes and the reads a write makes.
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
            return Err(StorageError::CollectionNotFound(self.collection.clone()));
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

/// Joins each passage to its document, for metadata filters and results.
const DOCUMENTS_JOIN: &str =
    "JOIN semdex_documents d ON d.collection = c.collection AND d.id = c.doc_id";

/// SQL rendering a timestamp column as RFC 3339 UTC with milliseconds, as the embedded store
/// writes them.
pub(super) fn rfc3339(column: &str) -> String {
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

/// The page range in the integer columns `at` and `at + 1`.
fn pages_of(row: &Row, at: usize) -> Option<crate::storage::types::PageRange> {
    pages_from_columns(
        row.get::<_, Option<i32>>(at).map(i64::from),
        row.get::<_, Option<i32>>(at + 1).map(i64::from),
    )
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
        _ => Err(StorageError::Postgres(PgError::Corrupt(format!(
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
        || doc.format.is_some_and(|f| f.contains('\0'))
        || doc
            .metadata
            .iter()
            .any(|(k, v)| k.contains('\0') || has_nul(v));
    if has_nul {
        return Err(StorageError::InvalidRequest(format!(
            "document {:?}: the NUL character cannot be stored in PostgreSQL",
            doc.id
        )));
    }
    Ok(())
}

impl Backend for PostgresBackend {
    fn stats(&self) -> Result<CollectionStats> {
        let (documents, chunks) = self.database.counts(&self.collection)?;
        let row = self.database.read(|client| {
            Ok(client.query_one(
                "SELECT pg_total_relation_size('semdex_postings'),
                        coalesce((SELECT array_to_string(reloptions, ',') FROM pg_class
                                  WHERE relname = 'semdex_chunks_embedding'), ''),
                        coalesce((SELECT passages FROM semdex_lexical_totals WHERE collection = $1), 0)",
                &[&self.collection],
            )?)
        })?;
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
        Ok(CollectionStats {
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
        self.database.check_writable()?;
        check_storable(doc)?;
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        self.lock_id(&mut tx, doc.id)?;
        let state = document_state(&mut tx, &self.collection, doc.id)?;
        if deleted_since(state.as_ref()) {
            return Ok(Written::Settled(Settled::Deleted));
        }
        let existed = match decide(state.as_ref(), doc) {
            Decision::Unchanged => return Ok(Written::Settled(Settled::Unchanged)),
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
                return Ok(Written::Settled(Settled::MetadataUpdated));
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
                 (collection, id, source, text, metadata, metadata_text, content_hash, title,
                  title_in_context, format)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &[
                &self.collection,
                &doc.id,
                &doc.source,
                &doc.text,
                &Value::Object(doc.metadata.clone()),
                &Value::Object(doc.metadata.clone()).to_string(),
                &doc.content_hash,
                &doc.title,
                &doc.title_in_context,
                &doc.format,
            ],
        )?;
        // Every passage and its postings in one statement: one round trip however long the
        // document. A posting names its passage by position; the insert maps positions to the
        // ids the database assigns.
        let mut rows = PassageRows::default();
        let mut postings = PostingRows::default();
        for p in passages {
            if p.section.iter().any(|h| h.contains('\0')) {
                return Err(StorageError::InvalidRequest(format!(
                    "document {:?}: the NUL character cannot be stored in PostgreSQL",
                    doc.id
                )));
            }
            let terms = TermCounts::of(&crate::chunk::contextual_text(
                doc.context_title(),
                p.section,
                p.text,
            ));
            totals.add(terms.length);
            rows.push(p, terms.length);
            postings.push(p.index as i64, terms);
        }
        tx.execute(
            "WITH inserted AS (
                 INSERT INTO semdex_chunks
                     (collection, doc_id, idx, start_byte, end_byte, text, embedding, tokens, terms,
                      section, page_first, page_last)
                 SELECT $1, $2, u.idx, u.start_byte, u.end_byte, u.text, u.embedding, u.tokens,
                        u.terms, u.section::jsonb, u.page_first, u.page_last
                 FROM unnest($3::integer[], $4::bigint[], $5::bigint[], $6::text[], $7::vector[],
                             $8::bytea[], $9::integer[], $14::text[], $15::integer[],
                             $16::integer[])
                      AS u(idx, start_byte, end_byte, text, embedding, tokens, terms, section,
                           page_first, page_last)
                 RETURNING id, idx
             )
             INSERT INTO semdex_postings (collection, term, chunk_id, tf, length)
             SELECT $1, p.term, i.id, p.tf, p.length
             FROM unnest($10::bigint[], $11::text[], $12::integer[], $13::integer[])
                  AS p(idx, term, tf, length)
             JOIN inserted i ON i.idx = p.idx",
            &[
                &self.collection,
                &doc.id,
                &rows.indexes,
                &rows.starts,
                &rows.ends,
                &rows.texts,
                &rows.vectors,
                &rows.tokens,
                &rows.lengths,
                &postings.chunk_ids,
                &postings.terms,
                &postings.tfs,
                &postings.lengths,
                &rows.sections,
                &rows.first_pages,
                &rows.last_pages,
            ],
        )?;
        totals.apply(&mut tx, &self.collection)?;
        tx.commit()?;
        Ok(Written::Stored { existed })
    }

    fn delete(&self, id: &str, on_deleted: &dyn Fn()) -> Result<Option<usize>> {
        if id.contains('\0') {
            // Nothing stored has one.
            return Ok(None);
        }
        self.database.check_writable()?;
        let mut client = self.client()?;
        let mut tx = client.transaction()?;
        self.lock_id(&mut tx, id)?;
        let mut totals = LexicalDelta::default();
        let (deleted, passages) = delete_document(&mut tx, &self.collection, id, &mut totals)?;
        totals.apply(&mut tx, &self.collection)?;
        if deleted {
            // Still under the id's advisory lock (released by the commit): a writer of the id
            // in this process that takes it next sees the mark.
            on_deleted();
        }
        tx.commit()?;
        Ok(deleted.then_some(passages))
    }

    /// Nothing to do: postings are written in each document's transaction.
    fn flush(&self) -> Result<()> {
        Ok(())
    }

    fn check_writable(&self) -> Result<()> {
        self.database.check_writable()
    }

    fn document(&self, id: &str) -> Result<Option<StoredDocument>> {
        if id.contains('\0') {
            return Ok(None);
        }
        let sql = format!(
            "SELECT d.id, d.source, d.text, d.metadata_text, d.content_hash, {},
                    (SELECT count(*) FROM semdex_chunks c
                     WHERE c.collection = d.collection AND c.doc_id = d.id),
                    d.title, d.format
             FROM semdex_documents d WHERE d.collection = $1 AND d.id = $2",
            rfc3339("d.ingested_at")
        );
        let row = self
            .database
            .read(|client| Ok(client.query_opt(&sql, &[&self.collection, &id])?))?;
        row.map(|r| {
            Ok(StoredDocument {
                id: r.get(0),
                source: r.get(1),
                text: r.get(2),
                metadata: metadata_of(r.get::<_, &str>(3))?,
                content_hash: r.get(4),
                ingested_at: r.get(5),
                chunks: r.get::<_, i64>(6) as usize,
                title: r.get(7),
                format: r.get(8),
            })
        })
        .transpose()
    }

    fn documents(&self, limit: usize, offset: usize) -> Result<Vec<DocumentSummary>> {
        let sql = format!(
            "SELECT d.id, d.source, d.metadata_text, {}, octet_length(d.text)::bigint,
                    (SELECT count(*) FROM semdex_chunks c
                     WHERE c.collection = d.collection AND c.doc_id = d.id),
                    d.title, d.format
             FROM semdex_documents d WHERE d.collection = $1
             ORDER BY d.id LIMIT $2 OFFSET $3",
            rfc3339("d.ingested_at")
        );
        let rows = self.database.read(|client| {
            Ok(client.query(&sql, &[&self.collection, &(limit as i64), &(offset as i64)])?)
        })?;
        rows.into_iter()
            .map(|r| {
                Ok(DocumentSummary {
                    id: r.get(0),
                    source: r.get(1),
                    metadata: metadata_of(r.get::<_, &str>(2))?,
                    ingested_at: r.get(3),
                    bytes: r.get::<_, i64>(4) as usize,
                    chunks: r.get::<_, i64>(5) as usize,
                    title: r.get(6),
                    format: r.get(7),
                })
            })
            .collect()
    }

    fn document_chunks(&self, id: &str) -> Result<Option<Vec<ChunkSpan>>> {
        if id.contains('\0') {
            return Ok(None);
        }
        let rows = self.database.read(|client| {
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
                "SELECT id, idx, start_byte, end_byte, section::text, page_first, page_last
                 FROM semdex_chunks WHERE collection = $1 AND doc_id = $2 ORDER BY idx",
                &[&self.collection, &id],
            )?;
            tx.commit()?;
            Ok(Some(rows))
        })?;
        let Some(rows) = rows else {
            return Ok(None);
        };
        Ok(Some(
            rows.iter()
                .map(|r| ChunkSpan {
                    chunk_id: r.get::<_, i64>(0) as u64,
                    index: r.get::<_, i32>(1) as usize,
                    start: r.get::<_, i64>(2) as usize,
                    end: r.get::<_, i64>(3) as usize,
                    section: section_from_json(r.get(4)),
                    pages: pages_of(r, 5),
                })
                .collect(),
        ))
    }

    fn candidates(&self, query: &CandidateQuery<'_>) -> Result<Candidates> {
        self.database.read(|client| {
            let (dense, strategy) = match query.vector {
                Some(vector) if query.dense_depth > 0 => {
                    let (hits, strategy) = self.dense(client, vector, query)?;
                    (hits, Some(strategy))
                }
                _ => (Vec::new(), None),
            };
            let lexical = if query.lexical_depth > 0 {
                self.lexical(client, query.text, query.lexical_depth, query.filter)?
            } else {
                Vec::new()
            };
            Ok(Candidates {
                dense,
                lexical,
                strategy,
            })
        })
    }

    fn dense_among(&self, vector: &[f32], ids: &[u64]) -> Result<Vec<Hit>> {
        let (vector, ids) = (Vector::from(vector.to_vec()), ids_param(ids));
        let rows = self.database.read(|client| {
            Ok(client.query(
                "SELECT id, -(embedding <#> $1) FROM semdex_chunks
                 WHERE collection = $2 AND id = ANY($3) ORDER BY 2 DESC",
                &[&vector, &self.collection, &ids],
            )?)
        })?;
        Ok(hits(&rows))
    }

    fn vectors_by_ids(&self, ids: &[u64]) -> Result<HashMap<u64, Vec<f32>>> {
        let rows = self.client()?.query(
            "SELECT id, embedding FROM semdex_chunks WHERE collection = $1 AND id = ANY($2)",
            &[&self.collection, &ids_param(ids)],
        )?;
        Ok(rows
            .iter()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, Vector>(1).to_vec()))
            .collect())
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
        let ids = ids_param(ids);
        let rows = self
            .database
            .read(|client| Ok(client.query(&sql, &[&self.collection, &terms, &ids])?))?;
        Ok(hits(&rows))
    }

    fn visit_token_vectors(&self, ids: &[u64], visit: &mut dyn FnMut(u64, &[u8])) -> Result<()> {
        // Read whole before any visit: a read retried on another server visits nothing twice.
        let ids = ids_param(ids);
        let rows = self.database.read(|client| {
            Ok(client.query(
                "SELECT id, tokens FROM semdex_chunks
                 WHERE collection = $1 AND id = ANY($2) AND tokens IS NOT NULL",
                &[&self.collection, &ids],
            )?)
        })?;
        for r in &rows {
            visit(r.get::<_, i64>(0) as u64, r.get::<_, &[u8]>(1));
        }
        Ok(())
    }

    fn chunks_by_ids(&self, ids: &[u64]) -> Result<HashMap<u64, ChunkRecord>> {
        let sql = format!(
            "SELECT c.id, c.doc_id, c.idx, c.start_byte, c.end_byte, c.text, d.metadata_text,
                    d.title, c.section::text, c.page_first, c.page_last
             FROM semdex_chunks c {DOCUMENTS_JOIN}
             WHERE c.collection = $1 AND c.id = ANY($2)"
        );
        let ids = ids_param(ids);
        let rows = self
            .database
            .read(|client| Ok(client.query(&sql, &[&self.collection, &ids])?))?;
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
                        citation: Citation {
                            title: r.get(7),
                            section: section_from_json(r.get(8)),
                            pages: pages_of(&r, 9),
                        },
                    },
                ))
            })
            .collect()
    }
}

/// What the database holds for a document id.
fn document_state(
    client: &mut impl GenericClient,
    collection: &str,
    id: &str,
) -> Result<Option<DocumentState>> {
    client
        .query_opt(
            "SELECT content_hash, metadata_text, format FROM semdex_documents
             WHERE collection = $1 AND id = $2",
            &[&collection, &id],
        )?
        .map(|r| {
            Ok(DocumentState {
                content_hash: r.get(0),
                metadata: metadata_of(r.get::<_, &str>(1))?,
                format: r.get(2),
            })
        })
        .transpose()
}

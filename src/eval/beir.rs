//! BEIR retrieval quality: ingest a BEIR corpus through the engine, run every query of a split
//! through each requested retrieval (dense by HNSW and exactly, lexical, hybrid by each fusion),
//! and score each with [`super::metrics`].

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::metrics::{Qrels, Ranking, RetrievalMetrics, evaluate};
use crate::chunk::ChunkOptions;
use crate::embed::Encoder;
use crate::engine::{
    DocumentInput, Engine, EngineError, EngineOptions, Query, SearchRequest, SearchResults,
};
use crate::progress::{NoProgress, Progress};

/// Why a BEIR run could not go on.
#[derive(Debug, thiserror::Error)]
pub enum BeirError {
    /// A dataset file is missing or unreadable.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A dataset file is malformed.
    #[error("{path}:{line}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The data directory holds something else.
    #[error(
        "data directory {dir} was made from another corpus or with other settings ({found}); pass another --data-dir"
    )]
    DataDirMismatch {
        /// The data directory.
        dir: PathBuf,
        /// What it was made from.
        found: String,
    },
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// One corpus document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeirDocument {
    /// `_id`.
    pub id: String,
    /// `title` (may be empty).
    pub title: String,
    /// `text`.
    pub text: String,
}

impl BeirDocument {
    /// The text that gets embedded: `title + " " + text`, the BEIR/MTEB convention.
    pub fn full_text(&self) -> String {
        format!("{} {}", self.title, self.text).trim().to_string()
    }
}

/// A BEIR dataset with one split's judgements.
#[derive(Debug, Clone)]
pub struct BeirDataset {
    /// The dataset folder's name.
    pub name: String,
    /// The split the qrels come from.
    pub split: String,
    /// Every corpus document.
    pub corpus: Vec<BeirDocument>,
    /// Query id → text.
    pub queries: HashMap<String, String>,
    /// The split's judgements.
    pub qrels: Qrels,
    /// SHA-256 of `corpus.jsonl`, to recognise a data directory made from it.
    pub corpus_sha256: String,
}

#[derive(Deserialize)]
struct CorpusLine {
    #[serde(rename = "_id")]
    id: serde_json::Value,
    #[serde(default)]
    title: String,
    #[serde(default)]
    text: String,
}

#[derive(Deserialize)]
struct QueryLine {
    #[serde(rename = "_id")]
    id: serde_json::Value,
    text: String,
}

fn id_string(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn lines(path: &Path) -> Result<Vec<String>, BeirError> {
    let file = std::fs::File::open(path).map_err(|source| BeirError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    std::io::BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(|source| BeirError::Io {
            path: path.to_path_buf(),
            source,
        })
}

fn parse_err(path: &Path, line: usize, reason: impl ToString) -> BeirError {
    BeirError::Parse {
        path: path.to_path_buf(),
        line,
        reason: reason.to_string(),
    }
}

/// Reads `corpus.jsonl`, `queries.jsonl` and `qrels/<split>.tsv` (header row optional).
pub fn load(dir: &Path, split: &str) -> Result<BeirDataset, BeirError> {
    let corpus_path = dir.join("corpus.jsonl");
    let bytes = std::fs::read(&corpus_path).map_err(|source| BeirError::Io {
        path: corpus_path.clone(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| parse_err(&corpus_path, 0, "not UTF-8"))?;
    let corpus_sha256 = crate::engine::content_hash(&text);
    let mut corpus = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let d: CorpusLine =
            serde_json::from_str(line).map_err(|e| parse_err(&corpus_path, n + 1, e))?;
        corpus.push(BeirDocument {
            id: id_string(&d.id),
            title: d.title,
            text: d.text,
        });
    }
    let queries_path = dir.join("queries.jsonl");
    let mut queries = HashMap::new();
    for (n, line) in lines(&queries_path)?
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let q: QueryLine =
            serde_json::from_str(line).map_err(|e| parse_err(&queries_path, n + 1, e))?;
        queries.insert(id_string(&q.id), q.text);
    }
    let qrels_path = dir.join("qrels").join(format!("{split}.tsv"));
    let mut qrels = Qrels::new();
    for (n, line) in lines(&qrels_path)?.iter().enumerate() {
        let cols: Vec<&str> = line.split('\t').collect();
        if line.trim().is_empty() || (n == 0 && cols.first() == Some(&"query-id")) {
            continue;
        }
        let [query, doc, grade] = cols[..] else {
            return Err(parse_err(
                &qrels_path,
                n + 1,
                "expected query-id, corpus-id, score",
            ));
        };
        let grade: i32 = grade
            .trim()
            .parse()
            .map_err(|e| parse_err(&qrels_path, n + 1, e))?;
        qrels
            .entry(query.to_string())
            .or_default()
            .insert(doc.to_string(), grade);
    }
    Ok(BeirDataset {
        name: dir
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "beir".into()),
        split: split.to_string(),
        corpus,
        queries,
        qrels,
        corpus_sha256,
    })
}

/// What a data directory made for BEIR records about itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Marker {
    corpus_sha256: String,
    whole_documents: bool,
    chunk_tokens: usize,
    chunk_overlap: usize,
    /// Whether passages were embedded after their document's title.
    #[serde(default)]
    title_context: bool,
    /// The layout of what the engine stores (token vectors, titles): a directory made by
    /// another is re-made rather than half-used.
    #[serde(default)]
    layout: u32,
}

/// What [`Marker::layout`] this build writes: 2 stores token vectors and document titles.
const LAYOUT: u32 = 2;

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct BeirOptions {
    /// Where the ingested corpus lives (reused when made from the same corpus and settings).
    pub data_dir: PathBuf,
    /// A collection of a catalog (a database) to keep the corpus in instead of the data
    /// directory.
    pub in_database: Option<(Arc<dyn crate::storage::Catalog>, String)>,
    /// Evaluate semdex's chunked pipeline (a document scores as its best chunk) instead of
    /// whole documents.
    pub chunked: bool,
    /// Chunking parameters in chunked mode.
    pub chunk: ChunkOptions,
    /// The retrievals to score, each under its name.
    pub runs: Vec<NamedRun>,
    /// Embed and index each passage after its document's title (chunked mode).
    pub title_context: bool,
}

/// One retrieval configuration of a run, scored under its name (`dense`, `hybrid`, ...).
#[derive(Debug, Clone)]
pub struct NamedRun {
    /// The name its metrics are reported under.
    pub name: String,
    /// The search it makes (`k` is set by the benchmark).
    pub request: SearchRequest,
}

/// The metrics and speed of one named retrieval.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The metrics.
    #[serde(flatten)]
    pub metrics: RetrievalMetrics,
    /// Queries per second, query embedding excluded (all cores).
    pub qps: f64,
    /// Distinct documents among the first 10 passages a query returns, averaged (what
    /// grouping and diversity change; 10 at most).
    pub distinct_docs_10: f64,
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct BeirReport {
    /// Dataset name.
    pub dataset: String,
    /// Split evaluated.
    pub split: String,
    /// "whole" or "chunked".
    pub mode: String,
    /// Corpus documents.
    pub documents: usize,
    /// Chunks indexed.
    pub chunks: usize,
    /// Seconds spent ingesting in this run (0 when the data directory was reused).
    pub ingest_seconds: f64,
    /// Each retrieval's figures, under its name.
    #[serde(flatten)]
    pub runs: std::collections::BTreeMap<String, RunReport>,
    /// Each retrieval's rankings, for TREC run files (not serialised).
    #[serde(skip)]
    pub rankings: std::collections::BTreeMap<String, HashMap<String, Ranking>>,
}

/// Chunks retrieved per query in chunked mode before documents are ranked by their best chunk.
const CHUNKS_PER_QUERY: usize = 400;
/// Documents ranked per query (Recall@100, MAP@100).
const DOCS_PER_QUERY: usize = 100;

/// Ingests `dataset` (unless the data directory already holds it), then runs and scores every
/// query of its split through each of `options.runs`.
pub fn run(
    encoder: Arc<Encoder>,
    dataset: &BeirDataset,
    options: &BeirOptions,
    progress: &dyn Progress,
) -> Result<BeirReport, BeirError> {
    let mut chunk = options.chunk;
    chunk.whole_documents = !options.chunked;
    let marker = Marker {
        corpus_sha256: dataset.corpus_sha256.clone(),
        whole_documents: chunk.whole_documents,
        chunk_tokens: chunk.max_tokens,
        chunk_overlap: chunk.overlap,
        title_context: options.title_context,
        layout: LAYOUT,
    };
    if options.in_database.is_none() {
        // A database collection needs no marker: documents already stored with the same text
        // are skipped by the ingest below, others replaced.
        check_marker(&options.data_dir, &marker)?;
    }
    let mut engine_options = EngineOptions::new(&options.data_dir);
    engine_options.chunk = chunk;
    engine_options.title_context = options.title_context;
    engine_options.exact_below = 0;
    let engine = match &options.in_database {
        Some((catalog, collection)) => {
            let backend = catalog
                .open(
                    collection,
                    &crate::engine::model_identity(&encoder),
                    &engine_options.backend(),
                    &NoProgress,
                )
                .map_err(crate::engine::EngineError::from)?;
            Engine::with_backend(encoder.clone(), backend, engine_options, &NoProgress)?
        }
        None => Engine::open(encoder.clone(), engine_options, &NoProgress)?,
    };

    let started = Instant::now();
    let docs: Vec<DocumentInput> = dataset
        .corpus
        .iter()
        .map(|d| {
            let mut metadata = serde_json::Map::new();
            if options.title_context && !d.title.trim().is_empty() {
                metadata.insert("title".into(), d.title.clone().into());
            }
            DocumentInput {
                id: d.id.clone(),
                text: d.full_text(),
                metadata,
                source: Some(dataset.name.clone()),
                structure: None,
                format: None,
            }
        })
        .filter(|d| !d.text.is_empty())
        .collect();
    let reports = engine.ingest(docs, progress)?;
    let embedded = reports
        .iter()
        .any(|r| r.status != crate::engine::IngestStatus::Unchanged);
    let ingest_seconds = if embedded {
        started.elapsed().as_secs_f64()
    } else {
        0.0
    };
    // Fold what was ingested into the graph, as the server does after each request.
    engine.maintain()?;
    engine.persist()?;

    let mut ids: Vec<&String> = dataset
        .qrels
        .keys()
        .filter(|q| dataset.queries.contains_key(*q))
        .collect();
    ids.sort();
    let texts: Vec<&str> = ids.iter().map(|q| dataset.queries[*q].as_str()).collect();
    let vectors = encoder
        .embed_with_tokens(&texts)
        .map_err(EngineError::from)?;
    let tokens: Vec<_> = vectors.iter().map(|e| engine.query_tokens(e)).collect();
    let k = if options.chunked {
        CHUNKS_PER_QUERY
    } else {
        DOCS_PER_QUERY
    };
    let mut runs = std::collections::BTreeMap::new();
    let mut rankings = std::collections::BTreeMap::new();
    for named in &options.runs {
        // A grouped run asks for documents: its groups are the ranking.
        let grouped = named.request.shape.group_by.is_some();
        let request = SearchRequest {
            k: if grouped { DOCS_PER_QUERY } else { k },
            ..named.request.clone()
        };
        let by_rank = grouped || named.request.shape.diversity.is_some_and(|d| d > 0.0);
        let started = Instant::now();
        let found: Vec<Result<(Ranking, usize), EngineError>> = texts
            .par_iter()
            .zip(vectors.par_iter())
            .zip(tokens.par_iter())
            .map(|((text, v), tokens)| {
                let query = Query {
                    text,
                    vector: Some(&v.unit),
                    tokens: tokens.as_ref(),
                };
                let SearchResults { hits, .. } = engine.search_query(&query, &request)?;
                let distinct = hits
                    .iter()
                    .take(10)
                    .map(|h| h.doc_id.as_str())
                    .collect::<std::collections::HashSet<_>>()
                    .len();
                let hits = hits.into_iter().map(|h| (h.doc_id, h.score));
                let ranking = if by_rank {
                    first_chunk_per_document(hits)
                } else {
                    best_chunk_per_document(hits)
                };
                Ok((ranking, distinct))
            })
            .collect();
        let qps = ids.len() as f64 / started.elapsed().as_secs_f64();
        let mut by_query = HashMap::with_capacity(ids.len());
        let mut distinct = 0;
        for (qid, found) in ids.iter().zip(found) {
            let (ranking, docs) = found?;
            by_query.insert((*qid).clone(), ranking);
            distinct += docs;
        }
        runs.insert(
            named.name.clone(),
            RunReport {
                metrics: evaluate(&dataset.qrels, &by_query),
                qps,
                distinct_docs_10: distinct as f64 / ids.len().max(1) as f64,
            },
        );
        rankings.insert(named.name.clone(), by_query);
    }
    let stats = engine.stats()?;
    Ok(BeirReport {
        dataset: dataset.name.clone(),
        split: dataset.split.clone(),
        mode: if options.chunked { "chunked" } else { "whole" }.into(),
        documents: stats.documents,
        chunks: stats.chunks,
        ingest_seconds,
        runs,
        rankings,
    })
}

/// A document's score is its best chunk's; the top [`DOCS_PER_QUERY`] documents are kept.
fn best_chunk_per_document(hits: impl Iterator<Item = (String, f32)>) -> Ranking {
    let mut best: HashMap<String, f32> = HashMap::new();
    for (doc, score) in hits {
        let entry = best.entry(doc).or_insert(f32::NEG_INFINITY);
        *entry = entry.max(score);
    }
    let mut ranking: Ranking = best.into_iter().collect();
    super::metrics::trec_order(&mut ranking);
    ranking.truncate(DOCS_PER_QUERY);
    ranking
}

/// Documents in the order their first passage appears (for a list that is ordered by
/// something other than its scores: groups, or a diversity re-ranking), scored by rank so
/// that TREC order keeps it; the top [`DOCS_PER_QUERY`] are kept.
fn first_chunk_per_document(hits: impl Iterator<Item = (String, f32)>) -> Ranking {
    let mut seen = std::collections::HashSet::new();
    let order: Vec<String> = hits
        .filter_map(|(doc, _)| seen.insert(doc.clone()).then_some(doc))
        .take(DOCS_PER_QUERY)
        .collect();
    let n = order.len();
    order
        .into_iter()
        .enumerate()
        .map(|(rank, doc)| (doc, (n - rank) as f32))
        .collect()
}

fn check_marker(dir: &Path, marker: &Marker) -> Result<(), BeirError> {
    let path = dir.join("beir.json");
    let io = |source| BeirError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read(&path) {
        Ok(bytes) => {
            let found: Option<Marker> = serde_json::from_slice(&bytes).ok();
            if found.as_ref() != Some(marker) {
                return Err(BeirError::DataDirMismatch {
                    dir: dir.to_path_buf(),
                    found: String::from_utf8_lossy(&bytes).into_owned(),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if dir
                .join(crate::storage::embedded::store::DATABASE_FILE)
                .exists()
            {
                return Err(BeirError::DataDirMismatch {
                    dir: dir.to_path_buf(),
                    found: "a data directory not made by `semdex bench beir`".into(),
                });
            }
            std::fs::create_dir_all(dir).map_err(io)?;
            let json = serde_json::to_vec_pretty(marker).unwrap_or_default();
            std::fs::write(&path, json).map_err(io)
        }
        Err(e) => Err(io(e)),
    }
}

/// Writes a ranking set as a TREC run file (`qid Q0 docid rank score tag`).
pub fn write_trec_run(
    path: &Path,
    runs: &HashMap<String, Ranking>,
    tag: &str,
) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut ids: Vec<&String> = runs.keys().collect();
    ids.sort();
    for qid in ids {
        for (rank, (doc, score)) in runs[qid].iter().enumerate() {
            writeln!(out, "{qid} Q0 {doc} {} {score} {tag}", rank + 1)?;
        }
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_the_beir_layout() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("corpus.jsonl"),
            "{\"_id\": \"d1\", \"title\": \"T\", \"text\": \"body\"}\n{\"_id\": 2, \"text\": \"no title\"}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("queries.jsonl"),
            "{\"_id\": \"q1\", \"text\": \"question\"}\n",
        )
        .unwrap();
        std::fs::create_dir(dir.path().join("qrels")).unwrap();
        std::fs::write(
            dir.path().join("qrels/test.tsv"),
            "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\t2\t0\n",
        )
        .unwrap();
        let ds = load(dir.path(), "test").unwrap();
        assert_eq!(ds.corpus.len(), 2);
        assert_eq!(ds.corpus[0].full_text(), "T body");
        assert_eq!(ds.corpus[1].id, "2");
        assert_eq!(ds.corpus[1].full_text(), "no title");
        assert_eq!(ds.queries["q1"], "question");
        assert_eq!(ds.qrels["q1"]["d1"], 1);
        assert_eq!(ds.qrels["q1"]["2"], 0);
        assert!(matches!(
            load(dir.path(), "train"),
            Err(BeirError::Io { .. })
        ));
        std::fs::write(dir.path().join("qrels/bad.tsv"), "q1\td1\n").unwrap();
        assert!(matches!(
            load(dir.path(), "bad"),
            Err(BeirError::Parse { line: 1, .. })
        ));
    }

    #[test]
    fn best_chunk_wins_and_ranking_is_trec_ordered() {
        let hits = vec![
            ("a".to_string(), 0.5),
            ("b".to_string(), 0.9),
            ("a".to_string(), 0.95),
            ("c".to_string(), 0.5),
        ];
        let r = best_chunk_per_document(hits.into_iter());
        let order: Vec<&str> = r.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(order, ["a", "b", "c"]);
        assert_eq!(r[0].1, 0.95);
    }
}

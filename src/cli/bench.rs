//! `semdex bench ...`: offline measurements, a table on the terminal or JSON.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use semdex::embed::{Encoder, EncoderOptions};
use semdex::engine::{Fusion, SearchMode, SearchRequest};
use semdex::eval::speed;

use super::GlobalArgs;

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Encoder throughput (passages/s, tokens/s) per batch size, and short-query latency.
    Encode(EncodeArgs),
    /// Ingest throughput against the bare encoder's on the same chunks.
    Ingest(IngestArgs),
    /// HNSW recall@10 against queries/s per ef, beside exact search (ann-benchmarks' figures),
    /// with build time and memory; vectors from a data directory, .fvecs files or synthetic.
    Ann(AnnArgs),
    /// Question-answering hit rate: hit@1/3/5 and MRR of passages containing the answer.
    Qa(QaArgs),
    /// Shaped answers: the share of questions whose answer lies in the contexts a token
    /// budget returns (with and without windows and diversity), and in the top highlight.
    Context(ContextArgs),
    /// Retrieval quality on a BEIR dataset: nDCG@10, MRR@10, Recall@10/100, MAP@100 for HNSW
    /// and exact search.
    Beir(BeirArgs),
    /// Filtered search: latency and recall@k against exact search for metadata filters
    /// admitting about 100 %, 10 %, 1 % and 0.1 % of the passages.
    Filter(FilterArgs),
    /// Sentence similarity: Spearman correlation of cosine similarity with the human scores of
    /// an STS Benchmark file (e.g. sts-test.csv), at the encoder's --precision.
    Sts(StsArgs),
}

#[derive(Args, Debug)]
pub struct StsArgs {
    /// STS Benchmark file: tab-separated, gold score in column 5, sentences in 6 and 7.
    #[arg(long)]
    pub file: PathBuf,
    /// Print one JSON object instead of a line of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct FilterArgs {
    /// Query texts: BEIR queries.jsonl (its "text") or one per line.
    #[arg(long)]
    pub queries: PathBuf,
    /// Use the first N queries.
    #[arg(long, default_value_t = 300)]
    pub limit: usize,
    /// The numeric metadata field, spread over 0..999 across the documents, that the filters
    /// select on.
    #[arg(long, default_value = "bucket")]
    pub field: String,
    /// Results per query.
    #[arg(short, default_value_t = 10)]
    pub k: usize,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// The data directory to search (read, never written) and its search settings.
    #[command(flatten)]
    pub engine: super::EngineArgs,
}

#[derive(Args, Debug)]
pub struct AnnArgs {
    /// Use the vectors of this data directory.
    #[arg(long, conflicts_with_all = ["synthetic", "base"])]
    pub data_dir: Option<PathBuf>,
    /// Use the vectors of this .fvecs file (numbered from 0, scaled to unit length).
    #[arg(long, conflicts_with = "synthetic")]
    pub base: Option<PathBuf>,
    /// Use N random unit vectors instead.
    #[arg(long, value_name = "N")]
    pub synthetic: Option<usize>,
    /// Length of the synthetic vectors.
    #[arg(long, default_value_t = 384)]
    pub dim: usize,
    /// Seed of the synthetic vectors.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Query vectors (.fvecs), texts (one per line, or BEIR queries.jsonl) or vectors (JSON
    /// arrays, one per line); default: vectors held out of the set.
    #[arg(long)]
    pub queries: Option<PathBuf>,
    /// Each query's true nearest neighbours as positions in the base set (.ivecs, best
    /// first, at least 10 per query); default: computed by exact search.
    #[arg(long, requires = "queries")]
    pub ground_truth: Option<PathBuf>,
    /// Vectors held out as queries when --queries is not given.
    #[arg(long, default_value_t = 1000)]
    pub holdout: usize,
    /// HNSW links per node.
    #[arg(long, default_value_t = semdex::index::HnswParams::default().m)]
    pub m: usize,
    /// HNSW build breadth.
    #[arg(long, default_value_t = semdex::index::HnswParams::default().ef_construction)]
    pub ef_construction: usize,
    /// Search breadths to sweep.
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,128,256,512")]
    pub ef: Vec<usize>,
    /// Write the index into this directory as the server does (a segment whose f32 vectors
    /// are read from its file past 256 MiB) and search the reopened copy; prints the time to
    /// open it. An index of the same vectors already there is opened instead of built.
    #[arg(long)]
    pub index_dir: Option<PathBuf>,
    /// Also measure the quantised codes alone: recall@10 of flat scans of int8 and binary
    /// codes with each query's best 10·r candidates rescored in f32, r = 1, 2, 4, 8, 16.
    #[arg(long)]
    pub quantisation: bool,
    /// Draw recall@10 against queries/s into this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Print one JSON object: {"build_s", "results": [{"ef", "recall@10", "qps"}, ...], ...}.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct QaArgs {
    /// Question set: lines of {"question": str, "answers": [str]}.
    #[arg(long)]
    pub file: PathBuf,
    #[command(flatten)]
    pub corpus: CorpusArgs,
}

#[derive(Args, Debug)]
pub struct ContextArgs {
    /// Question sets: lines of {"question": str, "answers": [str]} (repeatable).
    #[arg(long, required = true)]
    pub file: Vec<PathBuf>,
    /// Token budgets to fill.
    #[arg(long, value_delimiter = ',', default_value = "256,512,1024")]
    pub budgets: Vec<usize>,
    /// Neighbouring passages on each side of each hit.
    #[arg(long, value_delimiter = ',', default_value = "0,1")]
    pub expand: Vec<usize>,
    /// Diversity weights (0: off).
    #[arg(long, value_delimiter = ',', default_value = "0,0.5")]
    pub diversity: Vec<f32>,
    /// Documents to search, as `bench qa` takes them.
    #[command(flatten)]
    pub corpus: CorpusArgs,
}

/// A corpus ingested for question sets (`bench qa`, `bench context`).
#[derive(Args, Debug)]
pub struct CorpusArgs {
    /// Documents to search (files, folders, JSON lines); default: the seed folder.
    #[arg(long, default_value = "seeds")]
    pub corpus: Vec<PathBuf>,
    /// Data directory (default: a fresh temporary one, removed afterwards).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// The collection of the data directory to ingest the corpus into and ask (created if
    /// absent).
    #[arg(long, default_value = semdex::collections::DEFAULT_COLLECTION)]
    pub collection: String,
    /// Which retrievers answer.
    #[arg(long, default_value = "hybrid")]
    pub mode: SearchMode,
    #[command(flatten)]
    pub hybrid: super::HybridArgs,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub chunking: super::ChunkArgs,
}

impl CorpusArgs {
    /// Runs `work` on an engine holding the corpus, with the search request these arguments
    /// describe; a temporary data directory is removed afterwards.
    fn with_engine<T>(
        &self,
        global: &GlobalArgs,
        work: impl FnOnce(&semdex::engine::Engine, &SearchRequest) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let scratch = std::env::temp_dir().join(format!("semdex-bench-qa-{}", std::process::id()));
        let data_dir = self.data_dir.clone().unwrap_or_else(|| scratch.clone());
        let mut options = semdex::engine::EngineOptions::new(&data_dir);
        options.chunk = self.chunking.options();
        options.title_context = self.chunking.title_context;
        let encoder = std::sync::Arc::new(global.encoder()?);
        let result = (|| -> anyhow::Result<T> {
            let settings = semdex::collections::CollectionSettings {
                chunk_tokens: Some(options.chunk.max_tokens),
                chunk_overlap: Some(options.chunk.overlap),
            };
            let engine =
                semdex::engine::Engine::open(encoder, options, &semdex::progress::NoProgress)?;
            let catalog = semdex::storage::embedded::EmbeddedCatalog::beside_open_directory(
                &data_dir, false,
            )?;
            let engine = super::Opened {
                catalog: std::sync::Arc::new(catalog),
                default: std::sync::Arc::new(engine),
            }
            .engine(&self.collection, Some(settings))?;
            let docs =
                semdex::engine::sources::collect(&self.corpus, std::io::stdin().lock())?.documents;
            engine.ingest(docs, &super::progress_bar("ingesting", "bytes"))?;
            let request = SearchRequest {
                mode: self.mode,
                ..self.hybrid.request()
            };
            work(&engine, &request)
        })();
        if self.data_dir.is_none() {
            let _ = std::fs::remove_dir_all(&scratch);
        }
        result
    }
}

#[derive(Args, Debug)]
pub struct BeirArgs {
    /// BEIR dataset folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv).
    #[arg(long)]
    pub dataset: PathBuf,
    /// Which qrels split to evaluate.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Data directory for the ingested corpus (default: data/beir-NAME-MODE); reused when made
    /// from the same corpus and settings, so a second run does not re-embed.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Evaluate the chunked pipeline (a document scores as its best chunk) instead of whole
    /// documents truncated at 256 tokens.
    #[arg(long)]
    pub chunked: bool,
    /// Write a TREC run file per retrieval (NAME.run) into this folder, e.g. for pytrec_eval.
    #[arg(long)]
    pub runs_out: Option<PathBuf>,
    /// Retrievals to score: dense (by HNSW, and exactly as dense_exact), lexical, hybrid (by
    /// the chosen fusion, and by the other one for comparison).
    #[arg(long, value_delimiter = ',', default_value = "dense,lexical,hybrid")]
    pub mode: Vec<SearchMode>,
    /// Also score each mode grouped by document in the engine (`group_by: doc_id`, 100
    /// groups; run MODE_grouped) beside the benchmark's own best-passage aggregation
    /// (chunked corpora).
    #[arg(long)]
    pub group_by_doc: bool,
    /// Also score each mode re-ranked by maximal marginal relevance with these diversity
    /// weights (runs MODE_mmrλ; documents ranked by their first passage in that order).
    #[arg(long, value_delimiter = ',')]
    pub diversity: Vec<f32>,
    #[command(flatten)]
    pub hybrid: super::HybridArgs,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub chunking: super::ChunkArgs,
    /// With `--database-url`, the corpus goes into the collection `beir-NAME-MODE` of that
    /// database instead of the data directory.
    #[command(flatten)]
    pub database: super::DatabaseArgs,
}

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Files, directories or JSON lines to ingest (as `semdex ingest` reads them).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Only the first N documents.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Print one JSON object instead of a line of text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub chunking: super::ChunkArgs,
}

#[derive(Args, Debug)]
pub struct EncodeArgs {
    /// Passages to embed, one per line (default: passages cut from the seed article).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Target length of the generated passages, in model tokens.
    #[arg(long, default_value_t = 128)]
    pub tokens: usize,
    /// How many passages to generate (or the first N lines of --input).
    #[arg(long, default_value_t = 64)]
    pub count: usize,
    /// Batch sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    pub batch: Vec<usize>,
    /// Rounds over the short queries for the latency figure.
    #[arg(long, default_value_t = 20)]
    pub query_rounds: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn run(global: &GlobalArgs, command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Encode(args) => encode(global, args),
        BenchCommand::Ingest(args) => ingest(global, args),
        BenchCommand::Beir(args) => beir(global, args),
        BenchCommand::Ann(args) => ann(global, args),
        BenchCommand::Qa(args) => qa(global, args),
        BenchCommand::Context(args) => context(global, args),
        BenchCommand::Filter(args) => filter(global, args),
        BenchCommand::Sts(args) => sts(global, args),
    }
}

fn sts(global: &GlobalArgs, args: StsArgs) -> anyhow::Result<()> {
    let pairs = semdex::eval::sts::read_pairs(&args.file)?;
    let encoder = global.encoder()?;
    let report = semdex::eval::sts::evaluate(&encoder, &pairs, &args.file.display().to_string())?;
    if args.json {
        let mut out = serde_json::to_value(&report)?;
        out["precision"] = encoder.precision().as_str().into();
        out["kernels"] = encoder.kernels_name().into();
        println!("{out}");
    } else {
        println!(
            "{} pairs, {} precision ({} kernels): Spearman {:.4}, Pearson {:.4}",
            report.pairs,
            encoder.precision(),
            encoder.kernels_name(),
            report.spearman,
            report.pearson
        );
    }
    Ok(())
}

fn encode(global: &GlobalArgs, args: EncodeArgs) -> anyhow::Result<()> {
    let largest = args.batch.iter().copied().max().unwrap_or(1);
    // One call = one forward pass: the batch sizes measured are the batch sizes run.
    let options = EncoderOptions {
        backend: global.backend,
        precision: global.precision,
        threads: global.threads,
        max_batch_tokens: usize::MAX,
        max_batch_size: largest,
        ..EncoderOptions::default()
    };
    let encoder = Encoder::load(&global.model, options)?;
    let passages = match &args.input {
        Some(path) => std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(args.count)
            .map(str::to_string)
            .collect(),
        None => speed::passages_of_tokens(
            encoder.tokenizer(),
            include_str!("../../seeds/putin-kim-summit.txt"),
            args.tokens,
            args.count,
        )?,
    };
    let texts: Vec<&str> = passages.iter().map(String::as_str).collect();
    // Warm up: page in the weights and start the worker threads.
    encoder.embed(&texts[..texts.len().min(4)])?;
    let mut rows = Vec::new();
    for &batch in &args.batch {
        rows.push(speed::throughput(&encoder, &texts, batch)?);
    }
    let latency = speed::query_latency(&encoder, &speed::SHORT_QUERIES, args.query_rounds)?;
    if args.json {
        let out = serde_json::json!({
            "backend": encoder.backend_name(),
            "kernels": encoder.kernels_name(),
            "precision": encoder.precision().as_str(),
            "threads": encoder.threads(),
            "passages": texts.len(),
            "throughput": rows,
            "short_query": latency,
        });
        println!("{out}");
        return Ok(());
    }
    println!(
        "backend {} ({} kernels, {}) on {} threads, {} passages, mean {:.0} tokens",
        encoder.backend_name(),
        encoder.kernels_name(),
        encoder.precision(),
        encoder.threads(),
        texts.len(),
        rows.first()
            .map_or(0.0, |r| r.tokens as f64 / r.passages.max(1) as f64)
    );
    println!(
        "{:>6} {:>12} {:>12} {:>9}",
        "batch", "passages/s", "tokens/s", "seconds"
    );
    for r in &rows {
        println!(
            "{:>6} {:>12.1} {:>12.0} {:>9.2}",
            r.batch, r.passages_per_s, r.tokens_per_s, r.seconds
        );
    }
    println!(
        "short query (≤16 tokens), {} calls: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms",
        latency.calls, latency.p50_ms, latency.p90_ms, latency.p99_ms
    );
    Ok(())
}

fn ingest(global: &GlobalArgs, args: IngestArgs) -> anyhow::Result<()> {
    let mut docs =
        semdex::engine::sources::collect(&args.paths, std::io::stdin().lock())?.documents;
    if let Some(limit) = args.limit {
        docs.truncate(limit);
    }
    let scratch = std::env::temp_dir().join(format!("semdex-bench-ingest-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let mut options = semdex::engine::EngineOptions::new(&scratch);
    options.chunk = args.chunking.options();
    let encoder = std::sync::Arc::new(global.encoder()?);
    let result = semdex::eval::ingest::ingest_speed(encoder, docs, options);
    let _ = std::fs::remove_dir_all(&scratch);
    let r = result?;
    if args.json {
        println!("{}", serde_json::to_string(&r)?);
    } else {
        println!(
            "{} documents, {} chunks: encoder alone {:.1} passages/s ({:.1} s), ingest {:.1} passages/s ({:.1} s): ratio {:.3}",
            r.documents,
            r.chunks,
            r.encoder_passages_per_s,
            r.encoder_seconds,
            r.ingest_passages_per_s,
            r.ingest_seconds,
            r.ratio
        );
    }
    Ok(())
}

fn beir(global: &GlobalArgs, args: BeirArgs) -> anyhow::Result<()> {
    use semdex::eval::beir;
    let dataset = beir::load(&args.dataset, &args.split)?;
    let mode = if args.chunked { "chunked" } else { "whole" };
    let titled = if args.chunking.title_context {
        "-titled"
    } else {
        ""
    };
    // Stores do not record the precision yet: int8 vectors get a corpus of their own.
    let precision = match global.precision {
        semdex::embed::Precision::F32 => "",
        semdex::embed::Precision::Int8 => "-int8",
    };
    let data_dir = args.data_dir.clone().unwrap_or_else(|| {
        PathBuf::from("data").join(format!("beir-{}-{mode}{titled}{precision}", dataset.name))
    });
    let encoder = std::sync::Arc::new(global.encoder()?);
    let collection = format!("beir-{}-{mode}{titled}{precision}", dataset.name);
    // A database keeps the corpus in a collection of its own.
    #[cfg(feature = "postgres")]
    let in_database = match args
        .database
        .database(&encoder, semdex::index::HnswParams::default())?
    {
        Some(database) => {
            let chunk = args.chunking.options();
            let catalog = semdex::storage::postgres::PostgresCatalog::new(
                database,
                semdex::storage::ChunkSettings {
                    chunk_tokens: chunk.max_tokens,
                    chunk_overlap: chunk.overlap,
                },
            );
            // What the collection holds, so that a later run with other settings is refused
            // instead of measuring the old passages (the data directory's beir.json, for a
            // database).
            let settings = serde_json::json!({
                "chunk_tokens": chunk.max_tokens,
                "chunk_overlap": chunk.overlap,
                "whole_documents": !args.chunked,
                "title_context": args.chunking.title_context,
                "corpus_sha256": dataset.corpus_sha256,
            });
            if catalog.create_with(&collection, &settings)?.is_none() {
                let stored = catalog.settings(&collection)?;
                anyhow::ensure!(
                    stored.as_ref() == Some(&settings),
                    "collection {collection} of the database holds another corpus or other settings                      ({}); delete it (DELETE /collections/{collection}) or run with the same settings",
                    stored.unwrap_or_default()
                );
            }
            let catalog: std::sync::Arc<dyn semdex::storage::Catalog> =
                std::sync::Arc::new(catalog);
            Some((catalog, collection.clone()))
        }
        None => None,
    };
    #[cfg(not(feature = "postgres"))]
    let in_database = None;
    let options = beir::BeirOptions {
        in_database,
        data_dir: data_dir.clone(),
        chunked: args.chunked,
        chunk: args.chunking.options(),
        runs: shaped_runs(
            beir_runs(&args.mode, &args.hybrid),
            args.group_by_doc,
            &args.diversity,
        ),
        title_context: args.chunking.title_context,
    };
    tracing::info!(
        dataset = %dataset.name,
        split = %dataset.split,
        documents = dataset.corpus.len(),
        queries = dataset.qrels.len(),
        data_dir = %data_dir.display(),
        mode,
        "BEIR run"
    );
    let bar = super::progress_bar("ingesting", "bytes");
    let report = beir::run(encoder, &dataset, &options, &bar)?;
    if let Some(dir) = &args.runs_out {
        std::fs::create_dir_all(dir)?;
        for (name, rankings) in &report.rankings {
            beir::write_trec_run(
                &dir.join(format!("{name}.run")),
                rankings,
                &format!("semdex-{name}"),
            )?;
        }
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let queries = report.runs.values().next().map_or(0, |r| r.metrics.queries);
    println!(
        "{} ({} split, {} queries), {} documents as {} chunks, mode {}{}",
        report.dataset,
        report.split,
        queries,
        report.documents,
        report.chunks,
        report.mode,
        if report.ingest_seconds > 0.0 {
            format!(", ingested in {:.0} s", report.ingest_seconds)
        } else {
            ", data directory reused".into()
        }
    );
    println!(
        "{:<18} {:>9} {:>8} {:>10} {:>11} {:>8} {:>9} {:>11}",
        "retrieval",
        "nDCG@10",
        "MRR@10",
        "Recall@10",
        "Recall@100",
        "MAP@100",
        "queries/s",
        "docs in 10"
    );
    for (name, run) in &report.runs {
        let m = &run.metrics;
        println!(
            "{name:<18} {:>9.4} {:>8.4} {:>10.4} {:>11.4} {:>8.4} {:>9.0} {:>11.2}",
            m.ndcg_10,
            m.mrr_10,
            m.recall_10,
            m.recall_100,
            m.map_100,
            run.qps,
            run.distinct_docs_10
        );
    }
    Ok(())
}

/// The plain runs of the primary fusion of each mode again, grouped by document and
/// re-ranked for diversity, under `NAME_grouped` and `NAME_mmrλ`.
fn shaped_runs(
    runs: Vec<semdex::eval::beir::NamedRun>,
    group_by_doc: bool,
    diversity: &[f32],
) -> Vec<semdex::eval::beir::NamedRun> {
    use semdex::engine::{GroupBy, Shaping};
    use semdex::eval::beir::NamedRun;
    let primary: Vec<NamedRun> = runs
        .iter()
        .filter(|r| ["dense", "lexical", "hybrid"].contains(&r.name.as_str()))
        .cloned()
        .collect();
    let mut out = runs;
    for run in &primary {
        if group_by_doc {
            let mut request = run.request.clone();
            request.shape = Shaping {
                group_by: Some(GroupBy::DocId),
                ..Shaping::default()
            };
            out.push(NamedRun {
                name: format!("{}_grouped", run.name),
                request,
            });
        }
        for &weight in diversity {
            let mut request = run.request.clone();
            request.shape = Shaping {
                diversity: Some(weight),
                ..Shaping::default()
            };
            out.push(NamedRun {
                name: format!("{}_mmr{weight}", run.name),
                request,
            });
        }
    }
    out
}

/// The named retrievals `--mode` asks for.
fn beir_runs(
    modes: &[SearchMode],
    hybrid: &super::HybridArgs,
) -> Vec<semdex::eval::beir::NamedRun> {
    use semdex::eval::beir::NamedRun;
    let named = |name: &str, request: SearchRequest| NamedRun {
        name: name.to_string(),
        request,
    };
    let mut runs = Vec::new();
    for mode in modes {
        let base = SearchRequest {
            mode: *mode,
            ..hybrid.request()
        };
        match mode {
            SearchMode::Dense => {
                runs.push(named("dense", base.clone()));
                runs.push(named(
                    "dense_exact",
                    SearchRequest {
                        exact: true,
                        ..base
                    },
                ));
            }
            SearchMode::Lexical => runs.push(named("lexical", base)),
            SearchMode::Hybrid => {
                let other = match base.fusion {
                    Fusion::Convex => Fusion::Rrf,
                    Fusion::Rrf => Fusion::Convex,
                };
                runs.push(named("hybrid", base.clone()));
                // The fused lists alone, to show what late-interaction rescoring adds.
                runs.push(named(
                    "hybrid_fused",
                    SearchRequest {
                        rerank: false,
                        ..base.clone()
                    },
                ));
                runs.push(named(
                    &format!("hybrid_{}", other.as_str()),
                    SearchRequest {
                        fusion: other,
                        rerank: false,
                        ..base
                    },
                ));
            }
        }
    }
    runs
}

fn ann(global: &GlobalArgs, args: AnnArgs) -> anyhow::Result<()> {
    use semdex::eval::ann;
    let (vectors, source) = match (&args.data_dir, &args.base, args.synthetic) {
        (Some(dir), _, _) => (
            semdex::storage::embedded::store::Store::read_vectors(dir)?,
            format!("vectors of {}", dir.display()),
        ),
        (None, Some(path), _) => (
            ann::read_base(path)?,
            format!("vectors of {}", path.display()),
        ),
        (None, None, Some(n)) => (
            ann::synthetic(n, args.dim, args.seed),
            format!("{n} random unit vectors of {} dimensions", args.dim),
        ),
        (None, None, None) => {
            anyhow::bail!("give --data-dir DIR, --base FILE.fvecs or --synthetic N")
        }
    };
    let (base, queries) = match &args.queries {
        Some(path) => (vectors, read_queries(global, path)?),
        None => ann::hold_out(vectors, args.holdout),
    };
    anyhow::ensure!(
        !base.is_empty() && !queries.is_empty(),
        "no vectors or no queries"
    );
    let dimension = base[0].1.len();
    if let Some((i, q)) = queries
        .iter()
        .enumerate()
        .find(|(_, q)| q.len() != dimension)
    {
        anyhow::bail!(
            "query {} has {} dimensions; the vectors have {dimension}",
            i + 1,
            q.len()
        );
    }
    let truth = match &args.ground_truth {
        Some(path) => {
            let positions = semdex::eval::vecs::read_ivecs(path)?;
            anyhow::ensure!(
                positions.first().is_some_and(|p| p.len() >= 10),
                "{} must hold at least 10 neighbours per query",
                path.display()
            );
            ann::truth_from_positions(&base, &queries, &positions).map_err(anyhow::Error::msg)?
        }
        None => ann::exact_truth(&base, &queries, 100)?,
    };
    let options = ann::AnnOptions {
        params: semdex::index::HnswParams {
            m: args.m,
            ef_construction: args.ef_construction,
            ef_search: 1,
        },
        efs: args.ef.clone(),
        threads: global.threads.unwrap_or(1),
        index_dir: args.index_dir.clone(),
    };
    let bar = super::progress_bar("building HNSW", "vectors");
    let mut report = ann::benchmark(&base, &queries, &truth, &options, &bar)?;
    if args.quantisation {
        report.quantisation = ann::quantisation(&base, &queries, &truth, &[1, 2, 4, 8, 16]);
    }
    if let Some(path) = &args.plot {
        let title = format!(
            "semdex HNSW: {} vectors, {} queries",
            report.vectors, report.queries
        );
        semdex::eval::plot::recall_vs_qps(&report, path, &title).map_err(anyhow::Error::msg)?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "{source}: {} indexed, {} queries, dim {}; M={}, ef_construction={}; {} search thread(s), {} kernels",
        report.vectors,
        report.queries,
        report.dimension,
        report.m,
        report.ef_construction,
        report.threads,
        report.kernels
    );
    let opened = report
        .open_seconds
        .map(|s| format!(", reopened in {s:.2} s"))
        .unwrap_or_default();
    let built = match report.build_seconds {
        Some(s) => format!("build {s:.1} s on {} threads", rayon::current_num_threads()),
        None => "index of these vectors reused".into(),
    };
    println!(
        "{built}{opened}; index memory {:.1} MiB (raw vectors {:.1} MiB)",
        report.index_bytes as f64 / 1048576.0,
        report.vector_bytes as f64 / 1048576.0,
    );
    let cpu = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_default();
    println!(
        "{:>5} {:>9} {:>10} {:>11} {:>10} {:>14}",
        "ef", "recall@1", "recall@10", "recall@100", "queries/s", "per CPU-second"
    );
    println!(
        "{:>5} {:>9} {:>10.4} {:>11} {:>10.0} {:>14}",
        "exact",
        "",
        report.exact.recall_10,
        "",
        report.exact.qps,
        cpu(report.exact.cpu_qps)
    );
    for r in &report.rows {
        let wide = r.recall_100.map(|v| format!("{v:.4}")).unwrap_or_default();
        println!(
            "{:>5} {:>9.4} {:>10.4} {:>11} {:>10.0} {:>14}",
            r.ef,
            r.recall_1,
            r.recall_10,
            wide,
            r.qps,
            cpu(r.cpu_qps)
        );
    }
    if !report.quantisation.is_empty() {
        println!("flat scans of codes, best 10·r rescored in f32: recall@10");
        for q in &report.quantisation {
            println!(
                "{:>7} ({:>3} bytes)  r {:>2}  {:.4}",
                q.codes, q.bytes_per_vector, q.oversampling, q.recall_10
            );
        }
    }
    Ok(())
}

/// Query vectors from an .fvecs file, a file of JSON arrays, BEIR queries.jsonl, or plain
/// text lines; every vector scaled to unit length.
fn read_queries(global: &GlobalArgs, path: &std::path::Path) -> anyhow::Result<Vec<Vec<f32>>> {
    if path.extension().is_some_and(|e| e == "fvecs") {
        let mut vectors = semdex::eval::vecs::read_fvecs(path)?;
        for v in &mut vectors {
            semdex::embed::l2_normalize(v);
        }
        return Ok(vectors);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut vectors = Vec::new();
    let mut texts = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(serde_json::Value::Array(a)) => {
                let mut v: Vec<f32> = a
                    .iter()
                    .filter_map(|x| x.as_f64())
                    .map(|x| x as f32)
                    .collect();
                semdex::embed::l2_normalize(&mut v);
                vectors.push(v);
            }
            Ok(serde_json::Value::Object(o)) => texts.push(
                o.get("text")
                    .and_then(|t| t.as_str())
                    .unwrap_or_default()
                    .to_string(),
            ),
            _ => texts.push(line.to_string()),
        }
    }
    if !texts.is_empty() {
        let encoder = global.encoder()?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        vectors.extend(encoder.embed(&refs)?.into_iter().map(|e| e.unit));
    }
    Ok(vectors)
}

fn qa(global: &GlobalArgs, args: QaArgs) -> anyhow::Result<()> {
    let items = semdex::eval::qa::load(&args.file)?;
    let report = args.corpus.with_engine(global, |engine, request| {
        Ok(semdex::eval::qa::evaluate(engine, &items, request)?)
    })?;
    if args.corpus.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "{} questions, mode {}: hit@1 {:.3}, hit@3 {:.3}, hit@5 {:.3}, MRR@10 {:.3}",
        report.questions, report.mode, report.hit_1, report.hit_3, report.hit_5, report.mrr_10
    );
    for q in &report.missed {
        println!("  no answer in the top 5: {q}");
    }
    Ok(())
}

fn context(global: &GlobalArgs, args: ContextArgs) -> anyhow::Result<()> {
    use semdex::eval::context::{ContextOptions, evaluate};
    let sets = args
        .file
        .iter()
        .map(|path| Ok((path.display().to_string(), semdex::eval::qa::load(path)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let options = ContextOptions {
        budgets: args.budgets.clone(),
        expands: args.expand.clone(),
        diversities: args.diversity.clone(),
    };
    let reports = args.corpus.with_engine(global, |engine, request| {
        sets.iter()
            .map(|(name, items)| Ok((name.clone(), evaluate(engine, items, request, &options)?)))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    if args.corpus.json {
        let all: serde_json::Map<String, serde_json::Value> = reports
            .iter()
            .map(|(name, r)| Ok((name.clone(), serde_json::to_value(r)?)))
            .collect::<anyhow::Result<_>>()?;
        println!("{}", serde_json::Value::Object(all));
        return Ok(());
    }
    for (name, report) in &reports {
        println!(
            "{name}: {} questions, {} mode",
            report.questions, report.mode
        );
        println!(
            "{:>10} {:>7} {:>10} {:>9} {:>10}",
            "max_tokens", "expand", "diversity", "answered", "mean used"
        );
        for row in &report.rows {
            println!(
                "{:>10} {:>7} {:>10} {:>8.1}% {:>10.0}",
                row.max_tokens,
                row.expand,
                row.diversity,
                row.answered * 100.0,
                row.mean_used
            );
        }
        let h = &report.highlights;
        println!(
            "top passage holds the answer: {:.1}% (ceiling); its top highlight: {:.1}%; its first \
             sentence: {:.1}% (floor); highlight {:.0} of {:.0} bytes on average",
            h.passage * 100.0,
            h.top_highlight * 100.0,
            h.first_sentence * 100.0,
            h.highlight_bytes,
            h.passage_bytes
        );
    }
    Ok(())
}

fn filter(global: &GlobalArgs, args: FilterArgs) -> anyhow::Result<()> {
    use semdex::eval::filter;
    let text = std::fs::read_to_string(&args.queries)
        .with_context(|| format!("cannot read {}", args.queries.display()))?;
    let texts: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(
            |line| match serde_json::from_str::<serde_json::Value>(line) {
                Ok(serde_json::Value::Object(o)) => o
                    .get("text")
                    .and_then(|t| t.as_str())
                    .unwrap_or_default()
                    .to_string(),
                _ => line.to_string(),
            },
        )
        .take(args.limit)
        .collect();
    anyhow::ensure!(
        !texts.is_empty(),
        "no queries in {}",
        args.queries.display()
    );
    let engine = args.engine.open_for_reading(global)?.default;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let queries: Vec<Vec<f32>> = engine
        .encoder()
        .embed(&refs)?
        .into_iter()
        .map(|e| e.unit)
        .collect();
    let store = semdex::storage::embedded::store::Store::open(
        &args.engine.data_dir,
        &semdex::engine::model_identity(engine.encoder()),
    )?;
    let cases = filter::selectivity_cases(&args.field);
    let report = filter::benchmark(&engine, &store, &queries, &cases, args.k)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "{} passages, {} queries, k={}; latencies in ms (p50 / p90)",
        report.passages, report.queries, report.k
    );
    println!(
        "{:<6} {:>9} {:>7} {:<15} {:>15} {:>15} {:>15} {:>10}",
        "filter",
        "admitted",
        "share",
        "strategy",
        "filter (SQL)",
        "search",
        "exact",
        format!("recall@{}", report.k)
    );
    let pair = |l: &semdex::eval::speed::Latency| format!("{:.2} / {:.2}", l.p50_ms, l.p90_ms);
    for r in &report.rows {
        println!(
            "{:<6} {:>9} {:>6.2}% {:<15} {:>15} {:>15} {:>15} {:>10.4}",
            r.label,
            r.admitted,
            r.share * 100.0,
            r.strategy,
            pair(&r.filter_only),
            pair(&r.search),
            pair(&r.exact),
            r.recall
        );
    }
    Ok(())
}

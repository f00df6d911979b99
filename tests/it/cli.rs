//! The `semdex` binary's subcommands, end to end: embed, chunk, ingest, query, and the
//! offline benches on small inputs.

use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

pub fn semdex(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_semdex"));
    cmd.arg("--model")
        .arg(crate::common::model_dir())
        .args(args);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"));
    cmd
}

pub fn run_ok(cmd: &mut Command) -> String {
    let out: Output = cmd.stderr(Stdio::piped()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn embed_arguments_and_stdin() {
    let out = run_ok(&mut semdex(&["embed", "Hello world", "Second text"]));
    let lines: Vec<Vec<f32>> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].len(), 384);
    let direct = crate::common::encoder()
        .embed_one("Hello world")
        .unwrap()
        .unit;
    assert!(crate::common::cosine(&lines[0], &direct) > 0.99999);

    let mut child = semdex(&["embed"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"one\ntwo\nthree\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 3);
}

#[test]
fn kernels_and_precision_are_chosen_on_the_command_line() {
    let out = run_ok(
        semdex(&["--precision", "int8", "embed", "Hello world"]).env("SEMDEX_KERNELS", "portable"),
    );
    let int8: Vec<f32> = serde_json::from_str(out.trim()).unwrap();
    let direct = crate::common::encoder()
        .embed_one("Hello world")
        .unwrap()
        .unit;
    let c = crate::common::cosine(&int8, &direct);
    assert!((0.99..1.0).contains(&c), "int8 vs f32: {c}");

    for (env, args, wanted) in [
        ("avx9000", vec!["embed", "x"], "unknown kernel path"),
        (
            "portable",
            vec!["--precision", "int4", "embed", "x"],
            "unknown precision",
        ),
    ] {
        let out = semdex(&args)
            .env("SEMDEX_KERNELS", env)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(wanted), "{stderr}");
    }

    let forced = if semdex::embed::KernelPath::Avx2.is_supported() {
        "avx2"
    } else {
        "portable"
    };
    let out = run_ok(
        semdex(&[
            "bench",
            "encode",
            "--count",
            "4",
            "--batch",
            "2",
            "--query-rounds",
            "1",
            "--json",
        ])
        .env("SEMDEX_KERNELS", forced)
        .env("SEMDEX_PRECISION", "int8"),
    );
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["kernels"], forced);
    assert_eq!(report["precision"], "int8");
}

#[test]
fn bench_sts_correlates_cosine_with_the_gold_scores() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sts.csv");
    std::fs::write(
        &file,
        "main\tx\t2012\t1\t5.000\tA man is playing a guitar.\tA man plays the guitar.\n\
         main\tx\t2012\t2\t2.500\tA woman is slicing an onion.\tA woman is cutting a potato.\textra\n\
         main\tx\t2012\t3\t0.000\tA dog runs in the park.\tThe central bank raised interest rates.\n",
    )
    .unwrap();
    for precision in ["f32", "int8"] {
        let out = run_ok(&mut semdex(&[
            "--precision",
            precision,
            "bench",
            "sts",
            "--file",
            file.to_str().unwrap(),
            "--json",
        ]));
        let report: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report["pairs"], 3);
        assert_eq!(report["precision"], precision);
        assert!(
            (report["spearman"].as_f64().unwrap() - 1.0).abs() < 1e-9,
            "{report}"
        );
    }
    std::fs::write(&file, "only\tfour\tcolumns\there\n").unwrap();
    let out = semdex(&["bench", "sts", "--file", file.to_str().unwrap()])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(":1:"));
}

#[test]
fn chunk_prints_offsets_that_slice_the_file() {
    let out = run_ok(&mut semdex(&["chunk", "seeds/putin-kim-summit.txt"]));
    let text = crate::common::seed_article();
    let mut count = 0;
    for line in out.lines() {
        let c: Value = serde_json::from_str(line).unwrap();
        let (s, e) = (
            c["start"].as_u64().unwrap() as usize,
            c["end"].as_u64().unwrap() as usize,
        );
        assert_eq!(&text[s..e], c["text"].as_str().unwrap());
        assert!(c["tokens"].as_u64().unwrap() <= 128);
        count += 1;
    }
    assert!(count > 5);
}

#[test]
fn ingest_then_query_as_table_and_json() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path().to_str().unwrap();
    let corpus = tempfile::tempdir().unwrap();
    std::fs::write(
        corpus.path().join("a.txt"),
        "The aircraft plant builds fighter jets.",
    )
    .unwrap();
    std::fs::write(corpus.path().join("notes.jsonl"), "{\"id\": \"n1\", \"text\": \"Trains run on rails.\", \"metadata\": {\"kind\": \"note\"}}\n").unwrap();
    std::fs::write(corpus.path().join("skip.bin"), [0u8, 1, 2]).unwrap();
    run_ok(&mut semdex(&[
        "ingest",
        "--data-dir",
        dir,
        corpus.path().to_str().unwrap(),
    ]));
    let json = run_ok(&mut semdex(&[
        "query",
        "--data-dir",
        dir,
        "--json",
        "-k",
        "1",
        "railway transport",
    ]));
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["results"][0]["doc_id"], "n1");
    assert_eq!(v["results"][0]["metadata"]["kind"], "note");
    let table = run_ok(&mut semdex(&[
        "query",
        "--data-dir",
        dir,
        "-k",
        "2",
        "--meta",
        "kind=note",
        "jets",
    ]));
    assert!(table.contains("n1") && !table.contains("a.txt"), "{table}");
    let filtered = run_ok(&mut semdex(&[
        "query",
        "--data-dir",
        dir,
        "--json",
        "--filter",
        r#"{"kind": {"$in": ["note", "memo"]}}"#,
        "jets",
    ]));
    let v: Value = serde_json::from_str(&filtered).unwrap();
    assert_eq!(v["results"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["results"][0]["doc_id"], "n1");
    let none = run_ok(&mut semdex(&[
        "query",
        "--data-dir",
        dir,
        "--json",
        "--filter",
        r#"{"kind": {"$ne": "note"}}"#,
        "--meta",
        "kind=note",
        "jets",
    ]));
    let v: Value = serde_json::from_str(&none).unwrap();
    assert_eq!(
        v["results"],
        json!([]),
        "--filter and --meta must both hold"
    );
    let bad = semdex(&[
        "query",
        "--data-dir",
        dir,
        "--filter",
        r#"{"kind": {"$like": "n%"}}"#,
        "x",
    ])
    .output()
    .unwrap();
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("--filter: kind: unknown operator $like"),
        "{stderr}"
    );

    // While another process holds the directory (a running `semdex serve`), a second writer
    // fails at once naming it, and `query` still answers, read-only.
    let held = semdex::storage::embedded::store::DirLock::acquire(data.path()).unwrap();
    let refused = semdex(&["ingest", "--data-dir", dir, corpus.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!("in use by process {}", std::process::id())),
        "{stderr}"
    );
    let json = run_ok(&mut semdex(&[
        "query",
        "--data-dir",
        dir,
        "--json",
        "-k",
        "1",
        "railway transport",
    ]));
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["results"][0]["doc_id"], "n1");
    drop(held);
    let bad = semdex(&["query", "--data-dir", dir, "-k", "0", "x"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("k must be between 1 and 1000"));
}

#[test]
fn missing_model_is_one_clear_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_semdex"))
        .args(["--model", "/nonexistent/model", "embed", "x"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("missing config.json") && err.contains("models/fetch.sh"),
        "{err}"
    );
}

#[test]
fn bench_filter_reports_every_selectivity() {
    let data = tempfile::tempdir().unwrap();
    let corpus = data.path().join("corpus.jsonl");
    let words = crate::common::seed_windows(40, 12);
    let lines: Vec<String> = words
        .iter()
        .enumerate()
        .map(|(i, text)| {
            json!({"id": format!("w{i}"), "text": text, "metadata": {"bucket": i * 25}}).to_string()
        })
        .collect();
    std::fs::write(&corpus, lines.join("\n")).unwrap();
    let queries = data.path().join("queries.txt");
    std::fs::write(
        &queries,
        "Where did they meet?\nartillery shells\nspace launch\n",
    )
    .unwrap();
    let store = data.path().join("store");
    let store = store.to_str().unwrap();
    run_ok(&mut semdex(&[
        "ingest",
        "--data-dir",
        store,
        corpus.to_str().unwrap(),
    ]));
    let out = run_ok(&mut semdex(&[
        "bench",
        "filter",
        "--data-dir",
        store,
        "--queries",
        queries.to_str().unwrap(),
        "--json",
    ]));
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["passages"], 40);
    assert_eq!(report["queries"], 3);
    let rows = report["rows"].as_array().unwrap();
    let admitted: Vec<u64> = rows
        .iter()
        .map(|r| r["admitted"].as_u64().unwrap())
        .collect();
    // bucket = 25 i: all 40, the 4 under 100, and bucket 0 alone for the last two.
    assert_eq!(admitted, [40, 40, 4, 1, 1], "{report}");
    for r in rows {
        assert_eq!(r["recall"], 1.0, "{r}");
        assert!(r["search"]["p50_ms"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(
        rows[0]["strategy"], "exact",
        "a small corpus is searched exactly"
    );
    assert_eq!(rows[4]["strategy"], "exact_filtered");
}

#[test]
fn bench_qa_and_ann_on_small_inputs() {
    let qa = run_ok(&mut semdex(&[
        "bench",
        "qa",
        "--file",
        "tests/data/seed_qa.jsonl",
        "--json",
    ]));
    let report: Value = serde_json::from_str(&qa).unwrap();
    assert_eq!(report["questions"], 26);
    assert!(report["hit@3"].as_f64().unwrap() >= 0.85);

    let plot = tempfile::tempdir().unwrap();
    let svg = plot.path().join("ann.svg");
    let ann = run_ok(&mut semdex(&[
        "bench",
        "ann",
        "--synthetic",
        "3000",
        "--dim",
        "32",
        "--holdout",
        "100",
        "--ef",
        "16,64",
        "--json",
        "--plot",
        svg.to_str().unwrap(),
    ]));
    let report: Value = serde_json::from_str(&ann).unwrap();
    assert_eq!(report["vectors"], 2900);
    assert_eq!(report["results"].as_array().unwrap().len(), 2);
    assert!(report["results"][1]["recall@10"].as_f64().unwrap() > 0.9);
    assert!(report["build_s"].as_f64().unwrap() > 0.0);
    let drawn = std::fs::read_to_string(&svg).unwrap();
    assert!(drawn.starts_with("<svg") && drawn.contains("recall@10"));

    // Query vectors of the wrong length are refused, not silently scored as misses.
    let queries = plot.path().join("queries.jsonl");
    std::fs::write(&queries, "[0.1, 0.2, 0.3]\n").unwrap();
    let refused = semdex(&[
        "bench",
        "ann",
        "--synthetic",
        "500",
        "--dim",
        "32",
        "--queries",
        queries.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("query 1 has 3 dimensions"), "{err}");
}

/// A BEIR-layout folder with three obvious query/document pairs.
/// `semdex bench beir` on the data set in `dataset`, its corpus kept in `data_dir`, then `extra`.
pub fn bench_beir(dataset: &std::path::Path, data_dir: &str, extra: &[&str]) -> Command {
    let mut args = vec![
        "bench",
        "beir",
        "--dataset",
        dataset.to_str().unwrap(),
        "--data-dir",
        data_dir,
    ];
    args.extend_from_slice(extra);
    semdex(&args)
}

pub fn tiny_beir(dir: &std::path::Path) {
    let docs = [
        (
            "d1",
            "Volcanoes",
            "Magma rises through the crust and erupts as lava.",
        ),
        (
            "d2",
            "Photosynthesis",
            "Plants turn sunlight, water and carbon dioxide into sugar.",
        ),
        (
            "d3",
            "Tides",
            "The moon's gravity pulls the oceans and makes the tides.",
        ),
        (
            "d4",
            "Chess",
            "Each player starts with sixteen pieces on the board.",
        ),
    ];
    let corpus: String = docs
        .iter()
        .map(|(id, title, text)| {
            serde_json::json!({"_id": id, "title": title, "text": text}).to_string() + "\n"
        })
        .collect();
    std::fs::write(dir.join("corpus.jsonl"), corpus).unwrap();
    let queries = [
        ("q1", "how do plants make sugar from light"),
        ("q2", "why does the sea level rise and fall each day"),
        ("q3", "what comes out of an erupting volcano"),
    ];
    let queries: String = queries
        .iter()
        .map(|(id, text)| serde_json::json!({"_id": id, "text": text}).to_string() + "\n")
        .collect();
    std::fs::write(dir.join("queries.jsonl"), queries).unwrap();
    std::fs::create_dir_all(dir.join("qrels")).unwrap();
    std::fs::write(
        dir.join("qrels/test.tsv"),
        "query-id\tcorpus-id\tscore\nq1\td2\t1\nq2\td3\t1\nq3\td1\t1\n",
    )
    .unwrap();
}

#[test]
fn bench_beir_scores_and_reuses_its_data_directory() {
    let dataset = tempfile::tempdir().unwrap();
    tiny_beir(dataset.path());
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().join("beir");
    let runs = tempfile::tempdir().unwrap();
    let bench = |extra: &[&str]| {
        bench_beir(
            dataset.path(),
            data_dir.to_str().unwrap(),
            &[&["--json"], extra].concat(),
        )
    };
    let first: Value = serde_json::from_str(&run_ok(&mut bench(&[
        "--runs-out",
        runs.path().to_str().unwrap(),
    ])))
    .unwrap();
    assert_eq!(first["documents"], 4);
    assert!(first["ingest_seconds"].as_f64().unwrap() > 0.0);
    for search in ["dense", "dense_exact"] {
        assert_eq!(first[search]["queries"], 3, "{first}");
        assert_eq!(first[search]["ndcg@10"].as_f64().unwrap(), 1.0, "{first}");
        assert_eq!(first[search]["recall@100"].as_f64().unwrap(), 1.0);
    }
    // Every mode is reported under its name; q2 shares no word with its answer, so the
    // lexical run misses it and the fused runs still find it.
    for search in ["lexical", "hybrid", "hybrid_rrf"] {
        assert_eq!(first[search]["queries"], 3, "{first}");
        assert!(first[search]["qps"].as_f64().unwrap() > 0.0);
    }
    assert!(
        first["lexical"]["ndcg@10"].as_f64().unwrap() < 1.0,
        "{first}"
    );
    assert_eq!(first["hybrid"]["recall@100"].as_f64().unwrap(), 1.0);
    let run_file = std::fs::read_to_string(runs.path().join("dense_exact.run")).unwrap();
    assert!(run_file.starts_with("q1 Q0 d2 1 "), "{run_file}");
    assert!(runs.path().join("hybrid.run").is_file());

    // The second run reuses the ingested corpus and gives the same figures.
    let second: Value = serde_json::from_str(&run_ok(&mut bench(&["--mode", "dense"]))).unwrap();
    assert_eq!(second["ingest_seconds"].as_f64().unwrap(), 0.0);
    assert_eq!(
        second["dense_exact"]["ndcg@10"],
        first["dense_exact"]["ndcg@10"]
    );
    assert!(second.get("hybrid").is_none(), "only the modes asked for");

    // The same directory is refused for the chunked pipeline instead of mixing the two.
    let refused = bench(&["--chunked"]).output().unwrap();
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("beir"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
}

#[test]
fn ingest_skips_bad_files_and_documents_and_fails_at_the_end() {
    let data = tempfile::tempdir().unwrap();
    let corpus = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let root = corpus.path();
    std::fs::write(
        root.join("good.txt"),
        "The aircraft plant builds fighter jets.",
    )
    .unwrap();
    std::fs::write(root.join("big.txt"), "word ".repeat(400)).unwrap();
    std::fs::write(
        root.join("lines.jsonl"),
        format!(
            "{{\"id\": \"{}\", \"text\": \"an id over the limit\"}}\n{{\"id\": \"line\", \"text\": \"Trains run on rails.\"}}\n",
            "i".repeat(600)
        ),
    )
    .unwrap();
    std::fs::write(outside.path().join("secret.txt"), "outside the corpus").unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("elsewhere")).unwrap();
    std::os::unix::fs::symlink("/", root.join("slash")).unwrap();

    let out = semdex(&[
        "ingest",
        "--max-file-bytes",
        "1000",
        "--data-dir",
        data.path().to_str().unwrap(),
        root.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "skips make the run fail: {stderr}");
    assert!(
        stderr.contains("4 files or documents were skipped"),
        "{stderr}"
    );
    for reason in ["--max-file-bytes", "limit is 512", "not followed", "loop"] {
        assert!(stderr.contains(reason), "{reason}: {stderr}");
    }

    let engine = crate::common::engine_with(semdex::engine::EngineOptions::new(data.path()));
    let mut ids: Vec<String> = engine
        .documents(10, 0)
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    ids.sort();
    let good = format!("{}/good.txt", semdex::engine::sources::id_for_path(root));
    assert_eq!(ids, [good, "line".to_string()], "the rest was ingested");
}

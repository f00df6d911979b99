//! The encoder must reproduce sentence-transformers: cosine ≥ 0.9999 with every reference row
//! (made by the Python library, including empty, very long, non-Latin and emoji inputs).

use semdex::embed::{BackendKind, Encoder, EncoderOptions};

struct Reference {
    text: String,
    embedding: Vec<f32>,
}

fn references() -> Vec<Reference> {
    let raw = std::fs::read_to_string(crate::common::data("reference_embeddings.jsonl")).unwrap();
    raw.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            Reference {
                text: v["text"].as_str().unwrap().to_string(),
                embedding: v["embedding"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap() as f32)
                    .collect(),
            }
        })
        .collect()
}

fn check(encoder: &Encoder, texts: &[&str], refs: &[Reference]) {
    let got = encoder.embed(texts).unwrap();
    assert_eq!(got.len(), refs.len());
    let mut worst = (1.0f32, String::new());
    for (g, r) in got.iter().zip(refs) {
        let output = encoder.model_output(g);
        assert_eq!(output.len(), 384);
        let c = crate::common::cosine(output, &r.embedding);
        if c < worst.0 {
            worst = (c, r.text.chars().take(40).collect());
        }
    }
    assert!(
        worst.0 >= 0.9999,
        "{}: min cosine {} on {:?}",
        encoder.backend_name(),
        worst.0,
        worst.1
    );
}

#[test]
fn packed_backend_matches_sentence_transformers_in_one_batch() {
    let refs = references();
    assert_eq!(refs.len(), 30);
    let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
    check(&crate::common::encoder(), &texts, &refs);
}

#[test]
fn packed_backend_matches_one_input_at_a_time() {
    let refs = references();
    let encoder = crate::common::encoder();
    for r in &refs {
        check(&encoder, &[r.text.as_str()], std::slice::from_ref(r));
    }
}

#[test]
fn candle_padded_backend_matches_too() {
    let refs = references();
    let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
    let options = EncoderOptions {
        backend: BackendKind::Candle,
        ..EncoderOptions::default()
    };
    let encoder = Encoder::load(&crate::common::model_dir(), options).unwrap();
    check(&encoder, &texts, &refs);
}

#[test]
fn long_inputs_are_truncated_and_report_their_length() {
    let encoder = crate::common::encoder();
    let long = "word ".repeat(600);
    let got = encoder.embed(&[&long, "short"]).unwrap();
    assert!(got[0].truncated);
    assert_eq!(got[0].tokens, 602, "600 words + [CLS] + [SEP]");
    assert!(!got[1].truncated);
    assert_eq!(got[1].tokens, 3);
    assert_eq!(
        encoder.max_tokens(),
        256,
        "read from sentence_bert_config.json"
    );
}

#[test]
fn raw_and_unit_vectors_are_both_kept() {
    let encoder = crate::common::encoder();
    let e = encoder
        .embed_one("The norm of the pooled vector is kept.")
        .unwrap();
    let n: f32 = e.unit.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((n - 1.0).abs() < 1e-5);
    assert!(e.norm() > 0.0 && e.norm().is_finite());
    assert!(
        (e.norm() - 1.0).abs() > 1e-3,
        "the raw vector is not unit length"
    );
    for (u, r) in e.unit.iter().zip(&e.raw) {
        assert!((u * e.norm() - r).abs() < 1e-5);
    }
    assert_eq!(
        encoder.model_output(&e),
        e.unit.as_slice(),
        "all-MiniLM-L6-v2 ends with Normalize"
    );
}

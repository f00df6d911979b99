//! Retrieval metrics with trec_eval's conventions (what pytrec_eval, and so BEIR and MTEB,
//! report): graded relevance used as a linear gain, relevance ≤ 0 treated as not relevant,
//! results ranked by score with ties broken by document id in *descending* order (trec_eval's
//! `comp_sim_docno`), every query of the qrels averaged.

use std::collections::HashMap;

/// Relevance judgements: query id → document id → grade.
pub type Qrels = HashMap<String, HashMap<String, i32>>;

/// One query's retrieved documents with their scores, in any order.
pub type Ranking = Vec<(String, f32)>;

/// Sorts a ranking as trec_eval does: score descending, then document id descending.
pub fn trec_order(ranking: &mut Ranking) {
    ranking.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
}

/// nDCG@k with linear gains (trec_eval `ndcg_cut`).
pub fn ndcg_at(ranked: &[(String, f32)], judged: &HashMap<String, i32>, k: usize) -> f64 {
    let dcg: f64 = ranked
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, (doc, _))| gain(judged, doc) / (i as f64 + 2.0).log2())
        .sum();
    let mut ideal: Vec<f64> = judged
        .values()
        .filter(|&&g| g > 0)
        .map(|&g| g as f64)
        .collect();
    ideal.sort_by(|a, b| b.total_cmp(a));
    let idcg: f64 = ideal
        .iter()
        .take(k)
        .enumerate()
        .map(|(i, g)| g / (i as f64 + 2.0).log2())
        .sum();
    if idcg > 0.0 { dcg / idcg } else { 0.0 }
}

/// Recall@k: relevant documents in the top k over all relevant documents.
pub fn recall_at(ranked: &[(String, f32)], judged: &HashMap<String, i32>, k: usize) -> f64 {
    let relevant = relevant_count(judged);
    if relevant == 0 {
        return 0.0;
    }
    let found = ranked
        .iter()
        .take(k)
        .filter(|(d, _)| gain(judged, d) > 0.0)
        .count();
    found as f64 / relevant as f64
}

/// MRR@k: the reciprocal rank of the first relevant document within the top k.
pub fn reciprocal_rank_at(
    ranked: &[(String, f32)],
    judged: &HashMap<String, i32>,
    k: usize,
) -> f64 {
    ranked
        .iter()
        .take(k)
        .position(|(d, _)| gain(judged, d) > 0.0)
        .map_or(0.0, |i| 1.0 / (i as f64 + 1.0))
}

/// Average precision over the top k (trec_eval `map_cut`): precision at each relevant
/// document retrieved, summed, over all relevant documents.
pub fn average_precision_at(
    ranked: &[(String, f32)],
    judged: &HashMap<String, i32>,
    k: usize,
) -> f64 {
    let relevant = relevant_count(judged);
    if relevant == 0 {
        return 0.0;
    }
    let mut hits = 0;
    let mut sum = 0.0;
    for (i, (doc, _)) in ranked.iter().take(k).enumerate() {
        if gain(judged, doc) > 0.0 {
            hits += 1;
            sum += hits as f64 / (i as f64 + 1.0);
        }
    }
    sum / relevant as f64
}

fn gain(judged: &HashMap<String, i32>, doc: &str) -> f64 {
    judged
        .get(doc)
        .copied()
        .filter(|&g| g > 0)
        .map_or(0.0, f64::from)
}

fn relevant_count(judged: &HashMap<String, i32>) -> usize {
    judged.values().filter(|&&g| g > 0).count()
}

/// The figures `semdex bench beir` reports, averaged over the queries of the qrels.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct RetrievalMetrics {
    /// nDCG@10.
    #[serde(rename = "ndcg@10")]
    pub ndcg_10: f64,
    /// MRR@10.
    #[serde(rename = "mrr@10")]
    pub mrr_10: f64,
    /// Recall@10.
    #[serde(rename = "recall@10")]
    pub recall_10: f64,
    /// Recall@100.
    #[serde(rename = "recall@100")]
    pub recall_100: f64,
    /// MAP@100.
    #[serde(rename = "map@100")]
    pub map_100: f64,
    /// Queries averaged.
    pub queries: usize,
}

/// Scores `runs` against `qrels`: every query with at least one relevant judgement counts
/// (a query missing from `runs` scores 0). Rankings are put in trec_eval order first.
pub fn evaluate(qrels: &Qrels, runs: &HashMap<String, Ranking>) -> RetrievalMetrics {
    let mut totals = [0.0f64; 5];
    let mut queries = 0;
    let empty = Ranking::new();
    let mut ids: Vec<&String> = qrels.keys().collect();
    ids.sort();
    for qid in ids {
        let judged = &qrels[qid];
        if relevant_count(judged) == 0 {
            continue;
        }
        let mut ranked = runs.get(qid).unwrap_or(&empty).clone();
        trec_order(&mut ranked);
        totals[0] += ndcg_at(&ranked, judged, 10);
        totals[1] += reciprocal_rank_at(&ranked, judged, 10);
        totals[2] += recall_at(&ranked, judged, 10);
        totals[3] += recall_at(&ranked, judged, 100);
        totals[4] += average_precision_at(&ranked, judged, 100);
        queries += 1;
    }
    let mean = |t: f64| if queries > 0 { t / queries as f64 } else { 0.0 };
    RetrievalMetrics {
        ndcg_10: mean(totals[0]),
        mrr_10: mean(totals[1]),
        recall_10: mean(totals[2]),
        recall_100: mean(totals[3]),
        map_100: mean(totals[4]),
        queries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(pairs: &[(&str, i32)]) -> HashMap<String, i32> {
        pairs.iter().map(|(d, g)| (d.to_string(), *g)).collect()
    }

    fn ranking(docs: &[&str]) -> Ranking {
        // Strictly decreasing scores: the given order is the ranked order.
        docs.iter()
            .enumerate()
            .map(|(i, d)| (d.to_string(), 1.0 - i as f32 * 0.1))
            .collect()
    }

    #[test]
    fn ndcg_with_graded_linear_gains() {
        // Ranked: a (2), b (0), c (1). DCG = 2/log2(2) + 0 + 1/log2(4) = 2.5.
        // Ideal: 2, 1 → 2/1 + 1/log2(3) = 2.6309297535714578.
        let j = judged(&[("a", 2), ("c", 1), ("z", 0)]);
        let got = ndcg_at(&ranking(&["a", "b", "c"]), &j, 10);
        assert!((got - 2.5 / 2.630_929_753_571_457_8).abs() < 1e-12, "{got}");
        // Cut at 1: DCG 2, IDCG 2.
        assert!((ndcg_at(&ranking(&["a", "b", "c"]), &j, 1) - 1.0).abs() < 1e-12);
        // Relevance 0 is not relevant: ranking only z gives 0.
        assert_eq!(ndcg_at(&ranking(&["z"]), &j, 10), 0.0);
    }

    #[test]
    fn recall_mrr_and_map() {
        let j = judged(&[("a", 1), ("c", 1), ("e", 1)]);
        let r = ranking(&["b", "a", "d", "c"]);
        assert!((recall_at(&r, &j, 2) - 1.0 / 3.0).abs() < 1e-12);
        assert!((recall_at(&r, &j, 100) - 2.0 / 3.0).abs() < 1e-12);
        assert!((reciprocal_rank_at(&r, &j, 10) - 0.5).abs() < 1e-12);
        assert_eq!(reciprocal_rank_at(&r, &j, 1), 0.0);
        // AP: relevant at ranks 2 and 4 → (1/2 + 2/4) / 3 relevant = 1/3.
        assert!((average_precision_at(&r, &j, 100) - 1.0 / 3.0).abs() < 1e-12);
        // Cut at 3: only rank 2 counts → (1/2) / 3.
        assert!((average_precision_at(&r, &j, 3) - 1.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn ties_break_by_descending_document_id() {
        let mut r: Ranking = vec![
            ("d1".into(), 0.5),
            ("d3".into(), 0.5),
            ("d2".into(), 0.9),
            ("d0".into(), 0.5),
        ];
        trec_order(&mut r);
        let order: Vec<&str> = r.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(order, ["d2", "d3", "d1", "d0"]);
    }

    #[test]
    fn evaluate_averages_over_judged_queries() {
        let mut qrels = Qrels::new();
        qrels.insert("q1".into(), judged(&[("a", 1)]));
        qrels.insert("q2".into(), judged(&[("b", 1)]));
        qrels.insert("q3".into(), judged(&[("c", 0)])); // no relevant document: not averaged
        let mut runs = HashMap::new();
        // q1: tie between "a" and "x" at the top; descending id puts "x" first.
        runs.insert(
            "q1".to_string(),
            vec![("a".to_string(), 0.7), ("x".to_string(), 0.7)],
        );
        // q2 is missing from the run: it scores 0.
        let m = evaluate(&qrels, &runs);
        assert_eq!(m.queries, 2);
        assert!((m.mrr_10 - 0.25).abs() < 1e-12, "q1 rr = 1/2, q2 = 0");
        assert!((m.recall_10 - 0.5).abs() < 1e-12);
        let ndcg_q1 = 1.0 / 3f64.log2();
        assert!((m.ndcg_10 - ndcg_q1 / 2.0).abs() < 1e-12);
        assert!((m.map_100 - 0.25).abs() < 1e-12);
    }
}

//! BM25 in SQL over semdex's own analyzer's postings (`semdex_postings`), by tantivy's
//! formula and constants: both backends rank alike.

/// BM25's constants, tantivy's.
const BM25_K1: f64 = 1.2;
const BM25_B: f64 = 0.75;

/// One posting's BM25 term score, over `p` ([`postings_cte`]) and `totals t`: the inverse
/// document frequency times the saturated, length-normalised term frequency. N is never taken
/// below a term's frequency, so totals that drifted (see the README on upgrades) cannot make
/// the idf negative. Every operand is float8: an integer beside a decimal literal would make
/// PostgreSQL compute in `numeric`, several times slower.
pub(super) fn bm25_score() -> String {
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
pub(super) fn postings_cte(collection: &str, terms: &str) -> String {
    format!(
        "p AS (
             SELECT chunk_id, tf, length, count(*) OVER (PARTITION BY term)::float8 AS df
             FROM semdex_postings WHERE collection = {collection} AND term = ANY({terms}::text[])
         )"
    )
}

/// `totals (n, avgdl)`: a collection's BM25 statistics, from its row of `semdex_lexical_totals`.
pub(super) fn totals_cte(collection: &str) -> String {
    format!(
        "totals AS (
             SELECT passages::float8 AS n, greatest(terms::float8 / greatest(passages, 1), 1e-9) AS avgdl
             FROM semdex_lexical_totals WHERE collection = {collection}
         )"
    )
}

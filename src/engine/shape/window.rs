//! Expanding hits into windows of their document: each hit with up to `n` neighbouring
//! passages on each side, windows of one document that overlap merged into one, so that no
//! text appears twice in an answer. Windows that only touch stay apart, each in the rank of
//! its best hit: merging them would glue a document back together in its own order.

use std::collections::HashMap;

use crate::storage::ChunkSpan;

/// A hit as windowing sees it: its document and where its passage lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HitPlace<'a> {
    /// Its document.
    pub doc_id: &'a str,
    /// Its passage's position in the document.
    pub chunk_index: usize,
    /// Byte offset of its passage in the document.
    pub start: usize,
    /// One past its passage's last byte.
    pub end: usize,
}

/// A span of one document covering one or more hits and their neighbours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// The document.
    pub doc_id: String,
    /// Byte offset of the window in the document.
    pub start: usize,
    /// One past its last byte.
    pub end: usize,
    /// The first and last passage positions it covers (the hit's own when its document's
    /// passages are unknown).
    pub passages: (usize, usize),
    /// The hits inside it, as positions in the list given to [`windows`], best first.
    pub hits: Vec<usize>,
}

/// The windows of `hits` (in answer order), `n` passages on each side of each, merged where
/// they share a passage or bytes (passages cut with an overlap) within a document; in the
/// order of each window's first hit.
/// `passages` holds each document's passage spans in order; a hit whose document or passage
/// is not there (deleted meanwhile) keeps its own span.
pub fn windows(
    hits: &[HitPlace<'_>],
    passages: &HashMap<String, Vec<ChunkSpan>>,
    n: usize,
) -> Vec<Window> {
    let mut out: Vec<Window> = Vec::new();
    for (position, hit) in hits.iter().enumerate() {
        let mut window = own_window(hit, passages, n);
        window.hits.push(position);
        // Fold every window of this document that overlaps it into the first one.
        let mut merged_into: Option<usize> = None;
        let mut i = 0;
        while i < out.len() {
            let w = &out[i];
            let joins = w.doc_id == window.doc_id
                && ((w.passages.0 <= window.passages.1 && window.passages.0 <= w.passages.1)
                    || (w.start < window.end && window.start < w.end));
            if !joins {
                i += 1;
                continue;
            }
            match merged_into {
                None => {
                    absorb(&mut out[i], &window);
                    window = out[i].clone();
                    merged_into = Some(i);
                    i += 1;
                }
                Some(first) => {
                    let later = out.remove(i);
                    absorb(&mut out[first], &later);
                    window = out[first].clone();
                }
            }
        }
        if merged_into.is_none() {
            out.push(window);
        }
    }
    for w in &mut out {
        w.hits.sort_unstable();
    }
    out
}

/// One hit's window before merging.
fn own_window(hit: &HitPlace<'_>, passages: &HashMap<String, Vec<ChunkSpan>>, n: usize) -> Window {
    let spans = passages.get(hit.doc_id).map(Vec::as_slice).unwrap_or(&[]);
    let Some(at) = spans.iter().position(|s| s.index == hit.chunk_index) else {
        return Window {
            doc_id: hit.doc_id.to_string(),
            start: hit.start,
            end: hit.end,
            passages: (hit.chunk_index, hit.chunk_index),
            hits: Vec::new(),
        };
    };
    let covered = &spans[at.saturating_sub(n)..=(at + n).min(spans.len() - 1)];
    Window {
        doc_id: hit.doc_id.to_string(),
        start: covered.iter().map(|s| s.start).min().unwrap_or(hit.start),
        end: covered.iter().map(|s| s.end).max().unwrap_or(hit.end),
        passages: (
            covered.first().map_or(hit.chunk_index, |s| s.index),
            covered.last().map_or(hit.chunk_index, |s| s.index),
        ),
        hits: Vec::new(),
    }
}

/// Widens `into` to cover `other` and takes its hits.
fn absorb(into: &mut Window, other: &Window) {
    into.start = into.start.min(other.start);
    into.end = into.end.max(other.end);
    into.passages = (
        into.passages.0.min(other.passages.0),
        into.passages.1.max(other.passages.1),
    );
    into.hits.extend(other.hits.iter().copied());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(doc_len: usize) -> Vec<ChunkSpan> {
        // Passages of 10 bytes with one byte of whitespace between them.
        (0..doc_len)
            .map(|i| ChunkSpan {
                chunk_id: i as u64,
                index: i,
                start: i * 11,
                end: i * 11 + 10,
                section: Vec::new(),
                pages: None,
            })
            .collect()
    }

    fn place(doc: &str, index: usize) -> HitPlace<'_> {
        HitPlace {
            doc_id: doc,
            chunk_index: index,
            start: index * 11,
            end: index * 11 + 10,
        }
    }

    #[test]
    fn neighbours_are_added_and_overlapping_windows_merged() {
        let passages = HashMap::from([("a".to_string(), spans(10)), ("b".to_string(), spans(3))]);
        let hits = [place("a", 5), place("b", 0), place("a", 7), place("a", 1)];
        let got = windows(&hits, &passages, 1);
        assert_eq!(got.len(), 3);
        // a#5 (4..=6) and a#7 (6..=8) share passage 6: one window, first where a#5 was.
        assert_eq!(got[0].passages, (4, 8));
        assert_eq!((got[0].start, got[0].end), (44, 98));
        assert_eq!(got[0].hits, [0, 2]);
        // b#0 has no passage before it.
        assert_eq!(got[1].passages, (0, 1));
        assert_eq!(got[1].hits, [1]);
        // a#1 (0..=2) neither overlaps nor touches 4..=8.
        assert_eq!(got[2].passages, (0, 2));
        assert_eq!(got[2].hits, [3]);
    }

    #[test]
    fn a_window_bridging_two_earlier_ones_merges_all_three() {
        let passages = HashMap::from([("a".to_string(), spans(20))]);
        let hits = [place("a", 2), place("a", 10), place("a", 6)];
        let got = windows(&hits, &passages, 2);
        // 0..=4 and 8..=12 are apart; 4..=8 shares a passage with both.
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].passages, (0, 12));
        assert_eq!(got[0].hits, [0, 1, 2]);
    }

    #[test]
    fn touching_windows_stay_apart_and_unknown_passages_keep_their_span() {
        let passages = HashMap::from([("a".to_string(), spans(10))]);
        let got = windows(&[place("a", 1), place("a", 0)], &passages, 0);
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].start, got[0].end, got[1].start), (11, 21, 0));
        // Passages cut with an overlap share bytes: their windows merge.
        let overlapping = HashMap::from([(
            "a".to_string(),
            vec![
                ChunkSpan {
                    chunk_id: 0,
                    index: 0,
                    start: 0,
                    end: 12,
                    section: Vec::new(),
                    pages: None,
                },
                ChunkSpan {
                    chunk_id: 1,
                    index: 1,
                    start: 8,
                    end: 20,
                    section: Vec::new(),
                    pages: None,
                },
            ],
        )]);
        let first = HitPlace {
            doc_id: "a",
            chunk_index: 0,
            start: 0,
            end: 12,
        };
        let second = HitPlace {
            doc_id: "a",
            chunk_index: 1,
            start: 8,
            end: 20,
        };
        let got = windows(&[second, first], &overlapping, 0);
        assert_eq!(got.len(), 1);
        assert_eq!(
            (got[0].start, got[0].end, got[0].hits.clone()),
            (0, 20, vec![0, 1])
        );
        let gone = windows(&[place("z", 3)], &passages, 2);
        assert_eq!(
            (gone[0].start, gone[0].end, gone[0].passages),
            (33, 43, (3, 3))
        );
    }
}

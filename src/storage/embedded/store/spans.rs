//! Where a document's passages lie: chunk ids and byte offsets, without text or vectors.

use rusqlite::{OptionalExtension, params};

use super::{Result, Store};
use crate::storage::types::{ChunkId, ChunkSpan, pages_from_columns, section_from_json};

impl Store {
    /// The passages of a document in order, or `None` if there is no such document.
    pub fn document_chunks(&self, id: &str) -> Result<Option<Vec<ChunkSpan>>> {
        let row: Option<i64> = self
            .conn
            .prepare_cached("SELECT row FROM documents WHERE id = ?1")?
            .query_row([id], |r| r.get(0))
            .optional()?;
        let Some(row) = row else { return Ok(None) };
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, idx, start, end, section, page_first, page_last FROM chunks
             WHERE doc_row = ?1 ORDER BY idx",
        )?;
        let spans = stmt
            .query_map(params![row], |r| {
                Ok(ChunkSpan {
                    chunk_id: r.get::<_, i64>(0)? as ChunkId,
                    index: r.get::<_, i64>(1)? as usize,
                    start: r.get::<_, i64>(2)? as usize,
                    end: r.get::<_, i64>(3)? as usize,
                    section: section_from_json(r.get::<_, Option<String>>(4)?.as_deref()),
                    pages: pages_from_columns(r.get(5)?, r.get(6)?),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(spans))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::super::Store;
    use crate::storage::types::{ModelIdentity, NewChunk, NewDocument};

    #[test]
    fn spans_in_order_and_none_for_unknown_documents() {
        let dir = tempfile::tempdir().unwrap();
        let model = ModelIdentity {
            name: "test-model".into(),
            fingerprint: "abc123".into(),
            dimension: 2,
            precision: "f32".into(),
        };
        let mut store = Store::open(dir.path(), &model).unwrap();
        let text = "ab cd";
        let vector = [1.0, 0.0];
        let chunks = [(0, 0, 2), (1, 3, 5)].map(|(index, start, end)| NewChunk {
            index,
            start,
            end,
            text: &text[start..end],
            vector: &vector,
            tokens: None,
            section: &[],
            pages: None,
        });
        let written = store
            .put_document(
                &NewDocument {
                    id: "a",
                    source: None,
                    text,
                    metadata: &Map::new(),
                    content_hash: "h",
                    title: None,
                    title_in_context: false,
                    format: None,
                },
                &chunks,
            )
            .unwrap();
        let spans = store.document_chunks("a").unwrap().unwrap();
        assert_eq!(spans.len(), 2);
        assert_eq!(spans[1].chunk_id, written.added[1]);
        assert_eq!((spans[1].index, spans[1].start, spans[1].end), (1, 3, 5));
        assert_eq!(store.document_chunks("missing").unwrap(), None);
    }
}

//! The retrieval index: documents and their embeddings, in memory, searched by dot product
//! (the embedding model L2-normalises, so this is cosine similarity).

use std::sync::RwLock;

use tracing::debug;

/// One document of the index.
#[derive(Debug, Clone)]
struct Document {
    id: u64,
    text: String,
    vector: Vec<f32>,
}

/// The documents added so far.
#[derive(Debug, Default)]
pub struct Documents {
    docs: RwLock<Vec<Document>>,
}

impl Documents {
    /// True when nothing was added yet (retrieval can skip embedding the query).
    pub fn is_empty(&self) -> bool {
        self.docs.read().expect("documents").is_empty()
    }

    /// Adds documents with their vectors; returns their ids (from 1, in order).
    pub fn add(&self, items: impl IntoIterator<Item = (String, Vec<f32>)>) -> Vec<u64> {
        let mut docs = self.docs.write().expect("documents");
        items
            .into_iter()
            .map(|(text, vector)| {
                let id = docs.len() as u64 + 1;
                docs.push(Document { id, text, vector });
                id
            })
            .collect()
    }

    /// The texts of the `k` documents most similar to `query`, best first (ties: lower id).
    pub fn top_k(&self, query: &[f32], k: usize) -> Vec<String> {
        let docs = self.docs.read().expect("documents");
        let mut scored: Vec<(f32, &Document)> = docs
            .iter()
            .map(|d| (d.vector.iter().zip(query).map(|(a, b)| a * b).sum(), d))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.id.cmp(&b.1.id)));
        debug!(hits = ?scored.iter().take(k).map(|(s, d)| (d.id, *s)).collect::<Vec<_>>(), "retrieval");
        scored
            .into_iter()
            .take(k)
            .map(|(_, d)| d.text.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_matches_first_ties_by_insertion_order() {
        let docs = Documents::default();
        assert!(docs.is_empty());
        let ids = docs.add([
            ("x".to_string(), vec![1.0, 0.0]),
            ("y".to_string(), vec![0.0, 1.0]),
            ("x again".to_string(), vec![1.0, 0.0]),
        ]);
        assert_eq!(ids, vec![1, 2, 3]);
        assert_eq!(docs.top_k(&[1.0, 0.0], 2), vec!["x", "x again"]);
        assert_eq!(docs.top_k(&[0.0, 1.0], 1), vec!["y"]);
        assert_eq!(docs.top_k(&[0.0, 1.0], 10).len(), 3);
    }
}

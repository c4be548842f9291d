//! The persistent document store behind retrieval: collections, documents, their chunks and
//! the chunks' embeddings, with the embedding model's name and dimension per collection.
//!
//! [`DocumentStore`] is the small contract the pipeline uses; [`SqliteStore`] implements it
//! on an embedded SQLite database (vectors in `sqlite-vec` tables, in the same file and the
//! same transactions as the rows they belong to). A server database for a highly available
//! controller would be a second implementation. [`Chunker`] cuts texts into chunks that fit
//! the embedding model, counted by that model's own tokenizer.

mod chunker;
mod sqlite;

mod vec_ext;

pub use chunker::{Chunk, ChunkError, Chunker, TextKind};
pub use sqlite::{DB_FILE, SqliteStore, valid_collection_name};

/// The collection used when a request names none.
pub const DEFAULT_COLLECTION: &str = "default";

/// The embedding model whose vectors a collection holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbedModel {
    /// Registry name (`routes.embed`).
    pub name: String,
    /// Vector width.
    pub dimension: u32,
}

/// A collection with its counts.
#[derive(Debug, Clone, PartialEq)]
pub struct Collection {
    /// Unique name.
    pub name: String,
    /// Model its vectors come from; vectors of another model are never mixed in.
    pub model: EmbedModel,
    /// Documents stored.
    pub documents: u64,
    /// Chunks (and vectors) stored.
    pub chunks: u64,
}

/// One chunk of a document to store, with its embedding.
#[derive(Debug, Clone, PartialEq)]
pub struct NewChunk {
    /// The chunk's text.
    pub text: String,
    /// Byte range in the document's text.
    pub start: usize,
    /// End of the byte range (exclusive).
    pub end: usize,
    /// Tokens the embedding model sees for it (special tokens included).
    pub tokens: u32,
    /// Its embedding (L2-normalised).
    pub vector: Vec<f32>,
}

/// A document to store, already chunked and embedded.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDocument {
    /// Where it came from (file path, `-`, or empty).
    pub source: String,
    /// Its full text.
    pub text: String,
    /// SHA-256 of the text, hex.
    pub sha256: String,
    /// Tokens of the whole text (no special tokens).
    pub tokens: u64,
    /// Its chunks, in order.
    pub chunks: Vec<NewChunk>,
}

/// A stored document, without its text.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentRecord {
    /// Id, never reused after a delete.
    pub id: u64,
    /// Its collection.
    pub collection: String,
    /// Where it came from.
    pub source: String,
    /// Number of chunks.
    pub chunks: u32,
    /// Size of the text, bytes.
    pub bytes: u64,
    /// Tokens of the text.
    pub tokens: u64,
    /// SHA-256 of the text, hex.
    pub sha256: String,
    /// When it was stored, Unix milliseconds.
    pub created_unix_ms: i64,
}

/// What [`DocumentStore::add`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddOutcome {
    /// A new document.
    Added,
    /// The same text was already stored under this source (or, without a source, at all).
    Unchanged,
    /// The source's previous version was deleted and this one stored, in one transaction.
    Replaced,
}

impl AddOutcome {
    /// `added`, `unchanged` or `replaced`.
    pub fn as_str(self) -> &'static str {
        match self {
            AddOutcome::Added => "added",
            AddOutcome::Unchanged => "unchanged",
            AddOutcome::Replaced => "replaced",
        }
    }
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The chunk's document.
    pub document_id: u64,
    /// Position of the chunk in its document, from 0.
    pub chunk: u32,
    /// Cosine similarity with the query.
    pub score: f32,
    /// The chunk's text.
    pub text: String,
    /// The document's source.
    pub source: String,
}

/// Every vector of a collection, keyed by its chunk's (document id, position).
pub type StoredVectors = Vec<((u64, u32), Vec<f32>)>;

/// The result of [`DocumentStore::check`]: counts, and every inconsistency found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreCheck {
    /// Documents stored.
    pub documents: u64,
    /// Chunks stored.
    pub chunks: u64,
    /// Vectors stored.
    pub vectors: u64,
    /// What is inconsistent (a document whose chunk count differs from its chunks, a chunk
    /// without a vector...); empty when the store is consistent.
    pub problems: Vec<String>,
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StoreError {
    /// No collection of that name.
    #[error("unknown collection '{0}'")]
    UnknownCollection(String),
    /// No document of that id.
    #[error("unknown document {0}")]
    UnknownDocument(u64),
    /// The collection holds vectors of another embedding model: never mixed.
    #[error(
        "collection '{collection}' holds vectors of embedding model {stored} ({stored_dim} dimensions) but the embed route now uses {current} ({current_dim} dimensions); vectors of two models are never mixed: set routes.embed back to {stored}, or delete the collection (`switchyard docs rm --collection {collection}`) and add its documents again"
    )]
    ModelMismatch {
        /// The collection.
        collection: String,
        /// Model of its vectors.
        stored: String,
        /// Their width.
        stored_dim: u32,
        /// Model now configured.
        current: String,
        /// Its width.
        current_dim: u32,
    },
    /// A request the store cannot act on (bad name, wrong vector width, empty document).
    #[error("{0}")]
    Invalid(String),
    /// The data directory could not be created or written.
    #[error("data directory {path}: {message}")]
    DataDir {
        /// The directory.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The database failed.
    #[error("document store: {0}")]
    Db(String),
}

/// The store the pipeline keeps documents in. Every write is one transaction: a crash
/// leaves a document either whole or absent.
pub trait DocumentStore: Send + Sync {
    /// Every collection with its counts, by name.
    fn collections(&self) -> Result<Vec<Collection>, StoreError>;

    /// The collection named `name`, if it exists.
    fn collection(&self, name: &str) -> Result<Option<Collection>, StoreError> {
        Ok(self.collections()?.into_iter().find(|c| c.name == name))
    }

    /// The document stored under (`collection`, `source`) with this text hash, if any (so an
    /// unchanged file is not embedded again). Without a source, any document of the
    /// collection with this hash.
    fn find(
        &self,
        collection: &str,
        source: &str,
        sha256: &str,
    ) -> Result<Option<DocumentRecord>, StoreError>;

    /// Stores `doc` in `collection` (created for `model` on first use), replacing an older
    /// version of the same source. Refuses vectors of another model or width than the
    /// collection's.
    fn add(
        &self,
        collection: &str,
        model: &EmbedModel,
        doc: NewDocument,
    ) -> Result<(DocumentRecord, AddOutcome), StoreError>;

    /// Documents of `collection` (all when `None`), by id.
    fn list(&self, collection: Option<&str>) -> Result<Vec<DocumentRecord>, StoreError>;

    /// One document and its text.
    fn get(&self, id: u64) -> Result<(DocumentRecord, String), StoreError>;

    /// Deletes a document with its chunks and vectors.
    fn delete(&self, id: u64) -> Result<DocumentRecord, StoreError>;

    /// Deletes a collection and everything in it; returns the number of documents deleted.
    fn delete_collection(&self, name: &str) -> Result<u64, StoreError>;

    /// The `k` chunks of `collection` closest to `query` scoring at least `min_score`, best
    /// first. Refused when the collection's vectors come from another model than `model`.
    fn search(
        &self,
        collection: &str,
        model: &EmbedModel,
        query: &[f32],
        k: usize,
        min_score: f32,
    ) -> Result<Vec<Hit>, StoreError>;

    /// Every vector of `collection` with its chunk's (document id, position): for
    /// benchmarks and checks against a brute-force scan.
    fn vectors(&self, collection: &str) -> Result<StoredVectors, StoreError>;

    /// Checks that every document has all its chunks and every chunk its vector.
    fn check(&self) -> Result<StoreCheck, StoreError>;
}

#[cfg(test)]
mod tests;

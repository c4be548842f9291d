//! [`SqliteStore`]: the document store on an embedded SQLite database (`documents.sqlite3`
//! in the controller's data directory), WAL journal, `synchronous = FULL`. Rows live in
//! ordinary tables; each collection's vectors live in its own `sqlite-vec` table
//! (`vec0`, cosine distance, exact k-nearest-neighbour search), written in the same
//! transaction as the document they belong to.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};

mod read;
mod write;

use write::delete_in;

use super::{
    AddOutcome, Collection, DocumentRecord, DocumentStore, EmbedModel, Hit, NewDocument,
    StoreCheck, StoreError, StoredVectors,
};

/// File name of the database inside the data directory.
pub const DB_FILE: &str = "documents.sqlite3";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS collections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    embed_model TEXT NOT NULL,
    dimension INTEGER NOT NULL,
    created_unix_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS documents (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    collection_id INTEGER NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
    source TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    text TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    chunk_count INTEGER NOT NULL,
    created_unix_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS documents_by_source ON documents(collection_id, source);
CREATE INDEX IF NOT EXISTS documents_by_hash ON documents(collection_id, sha256);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    tokens INTEGER NOT NULL,
    text TEXT NOT NULL,
    UNIQUE (document_id, ordinal)
);
";

/// The embedded store. One connection behind a mutex: writes are short transactions.
pub struct SqliteStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

fn db(e: rusqlite::Error) -> StoreError {
    StoreError::Db(e.to_string())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Little-endian f32 bytes, the layout `vec0` stores.
fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn vector_from(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// Name of a collection's vector table.
fn vec_table(collection_id: i64) -> String {
    format!("vec_{collection_id}")
}

const RECORD: &str = "SELECT d.id, c.name, d.source, d.chunk_count, d.bytes, d.tokens, d.sha256, \
     d.created_unix_ms FROM documents d JOIN collections c ON c.id = d.collection_id";

fn record(row: &rusqlite::Row<'_>) -> rusqlite::Result<DocumentRecord> {
    Ok(DocumentRecord {
        id: row.get::<_, i64>(0)? as u64,
        collection: row.get(1)?,
        source: row.get(2)?,
        chunks: row.get::<_, i64>(3)? as u32,
        bytes: row.get::<_, i64>(4)? as u64,
        tokens: row.get::<_, i64>(5)? as u64,
        sha256: row.get(6)?,
        created_unix_ms: row.get(7)?,
    })
}

/// (id, model) of a collection.
fn collection_row(conn: &Connection, name: &str) -> Result<Option<(i64, EmbedModel)>, StoreError> {
    conn.query_row(
        "SELECT id, embed_model, dimension FROM collections WHERE name = ?1",
        [name],
        |r| {
            Ok((
                r.get::<_, i64>(0)?,
                EmbedModel {
                    name: r.get(1)?,
                    dimension: r.get::<_, i64>(2)? as u32,
                },
            ))
        },
    )
    .optional()
    .map_err(db)
}

fn same_model(
    collection: &str,
    stored: &EmbedModel,
    current: &EmbedModel,
) -> Result<(), StoreError> {
    if stored != current {
        return Err(StoreError::ModelMismatch {
            collection: collection.to_string(),
            stored: stored.name.clone(),
            stored_dim: stored.dimension,
            current: current.name.clone(),
            current_dim: current.dimension,
        });
    }
    Ok(())
}

/// A collection name by the API's rule (`switchyard_api::validate::collection`), and not
/// empty (the API reads empty as the default collection; the store needs the name).
pub fn valid_collection_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty() {
        return Err(StoreError::Invalid("a collection needs a name".into()));
    }
    switchyard_api::validate::collection(name).map_err(|e| StoreError::Invalid(e.message))
}

impl SqliteStore {
    /// Opens (creating it and the directory when missing) the store in `data_dir`. The
    /// error says which directory is not writable.
    pub fn open(data_dir: &Path) -> Result<SqliteStore, StoreError> {
        let dir_err = |message: String| StoreError::DataDir {
            path: data_dir.display().to_string(),
            message,
        };
        std::fs::create_dir_all(data_dir).map_err(|e| dir_err(format!("cannot create it: {e}")))?;
        // SQLite reports an unwritable directory late and vaguely: probe it first.
        let probe = data_dir.join(".write-test");
        std::fs::write(&probe, b"ok").map_err(|e| dir_err(format!("not writable: {e}")))?;
        let _ = std::fs::remove_file(&probe);
        let path = data_dir.join(DB_FILE);
        super::vec_ext::register();
        let conn = Connection::open(&path)
            .map_err(|e| dir_err(format!("cannot open {}: {e}", path.display())))?;
        Self::init(conn, path)
    }

    /// A store in memory (tests).
    pub fn in_memory() -> Result<SqliteStore, StoreError> {
        super::vec_ext::register();
        let conn = Connection::open_in_memory().map_err(db)?;
        Self::init(conn, PathBuf::from(":memory:"))
    }

    fn init(conn: Connection, path: PathBuf) -> Result<SqliteStore, StoreError> {
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half transaction (it rolls back
        // on drop), so the connection stays usable.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl DocumentStore for SqliteStore {
    fn collections(&self) -> Result<Vec<Collection>, StoreError> {
        let conn = self.conn();
        let mut st = conn
            .prepare(
                "SELECT c.name, c.embed_model, c.dimension, \
                 (SELECT COUNT(*) FROM documents d WHERE d.collection_id = c.id), \
                 (SELECT COALESCE(SUM(d.chunk_count), 0) FROM documents d WHERE d.collection_id = c.id) \
                 FROM collections c ORDER BY c.name",
            )
            .map_err(db)?;
        st.query_map([], |r| {
            Ok(Collection {
                name: r.get(0)?,
                model: EmbedModel {
                    name: r.get(1)?,
                    dimension: r.get::<_, i64>(2)? as u32,
                },
                documents: r.get::<_, i64>(3)? as u64,
                chunks: r.get::<_, i64>(4)? as u64,
            })
        })
        .map_err(db)?
        .collect::<Result<_, _>>()
        .map_err(db)
    }

    fn find(
        &self,
        collection: &str,
        source: &str,
        sha256: &str,
    ) -> Result<Option<DocumentRecord>, StoreError> {
        let conn = self.conn();
        let sql = format!(
            "{RECORD} WHERE c.name = ?1 AND d.sha256 = ?2 AND (?3 = '' OR d.source = ?3) ORDER BY d.id LIMIT 1"
        );
        conn.query_row(&sql, params![collection, sha256, source], record)
            .optional()
            .map_err(db)
    }

    fn add(
        &self,
        collection: &str,
        model: &EmbedModel,
        doc: NewDocument,
    ) -> Result<(DocumentRecord, AddOutcome), StoreError> {
        write::add(&mut self.conn(), collection, model, doc)
    }

    fn list(&self, collection: Option<&str>) -> Result<Vec<DocumentRecord>, StoreError> {
        let conn = self.conn();
        if let Some(name) = collection
            && collection_row(&conn, name)?.is_none()
        {
            return Err(StoreError::UnknownCollection(name.to_string()));
        }
        let sql = format!("{RECORD} WHERE (?1 IS NULL OR c.name = ?1) ORDER BY d.id");
        let mut st = conn.prepare(&sql).map_err(db)?;
        st.query_map([collection], record)
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)
    }

    fn get(&self, id: u64) -> Result<(DocumentRecord, String), StoreError> {
        let conn = self.conn();
        let sql = format!("{RECORD} WHERE d.id = ?1");
        let rec = conn
            .query_row(&sql, [id as i64], record)
            .optional()
            .map_err(db)?
            .ok_or(StoreError::UnknownDocument(id))?;
        let text: String = conn
            .query_row(
                "SELECT text FROM documents WHERE id = ?1",
                [id as i64],
                |r| r.get(0),
            )
            .map_err(db)?;
        Ok((rec, text))
    }

    fn delete(&self, id: u64) -> Result<DocumentRecord, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        let sql = format!("{RECORD} WHERE d.id = ?1");
        let rec = tx
            .query_row(&sql, [id as i64], record)
            .optional()
            .map_err(db)?
            .ok_or(StoreError::UnknownDocument(id))?;
        delete_in(&tx, id as i64)?;
        tx.commit().map_err(db)?;
        Ok(rec)
    }

    fn delete_collection(&self, name: &str) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        let (cid, _) = collection_row(&tx, name)?
            .ok_or_else(|| StoreError::UnknownCollection(name.to_string()))?;
        let docs: i64 = tx
            .query_row(
                "SELECT COUNT(*) FROM documents WHERE collection_id = ?1",
                [cid],
                |r| r.get(0),
            )
            .map_err(db)?;
        tx.execute_batch(&format!("DROP TABLE IF EXISTS {}", vec_table(cid)))
            .map_err(db)?;
        tx.execute("DELETE FROM collections WHERE id = ?1", [cid])
            .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(docs as u64)
    }

    fn search(
        &self,
        collection: &str,
        model: &EmbedModel,
        query: &[f32],
        k: usize,
        min_score: f32,
    ) -> Result<Vec<Hit>, StoreError> {
        read::search(&self.conn(), collection, model, query, k, min_score)
    }

    fn vectors(&self, collection: &str) -> Result<StoredVectors, StoreError> {
        read::vectors(&self.conn(), collection)
    }

    fn check(&self) -> Result<StoreCheck, StoreError> {
        read::check(&self.conn())
    }
}

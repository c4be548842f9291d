//! [`SqliteStore`]: the document store on an embedded SQLite database (`documents.sqlite3`
//! in the controller's data directory), WAL journal, `synchronous = FULL`. Rows live in
//! ordinary tables; each collection's vectors live in its own `sqlite-vec` table
//! (`vec0`, cosine distance, exact k-nearest-neighbour search), written in the same
//! transaction as the document they belong to.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{
    AddOutcome, Collection, DocumentRecord, DocumentStore, EmbedModel, Hit, NewDocument,
    StoreCheck, StoreError,
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

/// Collection names: 1–64 characters of letters, digits, `-`, `_`, `.`.
pub fn valid_collection_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "invalid collection name '{name}': use 1-64 letters, digits, '-', '_' or '.'"
        )))
    }
}

/// Deletes a document's vectors and rows (inside the caller's transaction).
fn delete_in(tx: &Transaction<'_>, id: i64) -> Result<(), StoreError> {
    let cid: i64 = tx
        .query_row(
            "SELECT collection_id FROM documents WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .map_err(db)?;
    let chunk_ids: Vec<i64> = {
        let mut st = tx
            .prepare_cached("SELECT id FROM chunks WHERE document_id = ?1")
            .map_err(db)?;
        st.query_map([id], |r| r.get(0))
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)?
    };
    let sql = format!("DELETE FROM {} WHERE chunk_id = ?1", vec_table(cid));
    let mut st = tx.prepare_cached(&sql).map_err(db)?;
    for c in chunk_ids {
        st.execute([c]).map_err(db)?;
    }
    tx.execute("DELETE FROM documents WHERE id = ?1", [id])
        .map_err(db)?;
    Ok(())
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
        valid_collection_name(collection)?;
        if doc.chunks.is_empty() {
            return Err(StoreError::Invalid(
                "a document needs at least one chunk".into(),
            ));
        }
        if let Some(c) = doc
            .chunks
            .iter()
            .find(|c| c.vector.len() != model.dimension as usize)
        {
            return Err(StoreError::Invalid(format!(
                "a vector has {} dimensions; model {} has {}",
                c.vector.len(),
                model.name,
                model.dimension
            )));
        }
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(db)?;
        let cid = match collection_row(&tx, collection)? {
            Some((id, stored)) => {
                same_model(collection, &stored, model)?;
                id
            }
            None => {
                tx.execute(
                    "INSERT INTO collections (name, embed_model, dimension, created_unix_ms) VALUES (?1, ?2, ?3, ?4)",
                    params![collection, model.name, model.dimension, now_ms()],
                )
                .map_err(db)?;
                let id = tx.last_insert_rowid();
                tx.execute_batch(&format!(
                    "CREATE VIRTUAL TABLE {} USING vec0(chunk_id INTEGER PRIMARY KEY, embedding float[{}] distance_metric=cosine)",
                    vec_table(id),
                    model.dimension
                ))
                .map_err(db)?;
                id
            }
        };
        // The same text already stored: nothing to do.
        let existing = tx
            .query_row(
                &format!("{RECORD} WHERE d.collection_id = ?1 AND d.sha256 = ?2 AND (?3 = '' OR d.source = ?3) LIMIT 1"),
                params![cid, doc.sha256, doc.source],
                record,
            )
            .optional()
            .map_err(db)?;
        if let Some(r) = existing {
            return Ok((r, AddOutcome::Unchanged));
        }
        let mut outcome = AddOutcome::Added;
        if !doc.source.is_empty() {
            let old: Vec<i64> = {
                let mut st = tx
                    .prepare("SELECT id FROM documents WHERE collection_id = ?1 AND source = ?2")
                    .map_err(db)?;
                st.query_map(params![cid, doc.source], |r| r.get(0))
                    .map_err(db)?
                    .collect::<Result<_, _>>()
                    .map_err(db)?
            };
            for id in old {
                delete_in(&tx, id)?;
                outcome = AddOutcome::Replaced;
            }
        }
        let created = now_ms();
        tx.execute(
            "INSERT INTO documents (collection_id, source, sha256, text, bytes, tokens, chunk_count, created_unix_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                cid,
                doc.source,
                doc.sha256,
                doc.text,
                doc.text.len() as i64,
                doc.tokens as i64,
                doc.chunks.len() as i64,
                created
            ],
        )
        .map_err(db)?;
        let doc_id = tx.last_insert_rowid();
        {
            let mut chunk_st = tx
                .prepare_cached(
                    "INSERT INTO chunks (document_id, ordinal, start, end, tokens, text) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(db)?;
            let vec_sql = format!(
                "INSERT INTO {}(chunk_id, embedding) VALUES (?1, ?2)",
                vec_table(cid)
            );
            let mut vec_st = tx.prepare_cached(&vec_sql).map_err(db)?;
            for (i, c) in doc.chunks.iter().enumerate() {
                chunk_st
                    .execute(params![
                        doc_id,
                        i as i64,
                        c.start as i64,
                        c.end as i64,
                        c.tokens,
                        c.text
                    ])
                    .map_err(db)?;
                let chunk_id = tx.last_insert_rowid();
                vec_st
                    .execute(params![chunk_id, vector_bytes(&c.vector)])
                    .map_err(db)?;
            }
        }
        let rec = DocumentRecord {
            id: doc_id as u64,
            collection: collection.to_string(),
            source: doc.source,
            chunks: doc.chunks.len() as u32,
            bytes: doc.text.len() as u64,
            tokens: doc.tokens,
            sha256: doc.sha256,
            created_unix_ms: created,
        };
        tx.commit().map_err(db)?;
        Ok((rec, outcome))
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
        let conn = self.conn();
        let (cid, stored) = collection_row(&conn, collection)?
            .ok_or_else(|| StoreError::UnknownCollection(collection.to_string()))?;
        same_model(collection, &stored, model)?;
        if query.len() != stored.dimension as usize {
            return Err(StoreError::Invalid(format!(
                "the query vector has {} dimensions; collection '{collection}' holds {}",
                query.len(),
                stored.dimension
            )));
        }
        if k == 0 {
            return Ok(Vec::new());
        }
        let sql = format!(
            "WITH v AS MATERIALIZED \
             (SELECT chunk_id, distance FROM {} WHERE embedding MATCH ?1 AND k = ?2) \
             SELECT v.distance, c.ordinal, c.text, d.id, d.source FROM v \
             JOIN chunks c ON c.id = v.chunk_id JOIN documents d ON d.id = c.document_id \
             ORDER BY v.distance, v.chunk_id",
            vec_table(cid)
        );
        let mut st = conn.prepare_cached(&sql).map_err(db)?;
        let hits = st
            .query_map(params![vector_bytes(query), k as i64], |r| {
                Ok(Hit {
                    score: 1.0 - r.get::<_, f64>(0)? as f32,
                    chunk: r.get::<_, i64>(1)? as u32,
                    text: r.get(2)?,
                    document_id: r.get::<_, i64>(3)? as u64,
                    source: r.get(4)?,
                })
            })
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        Ok(hits.into_iter().filter(|h| h.score >= min_score).collect())
    }

    fn vectors(&self, collection: &str) -> Result<Vec<((u64, u32), Vec<f32>)>, StoreError> {
        let conn = self.conn();
        let (cid, _) = collection_row(&conn, collection)?
            .ok_or_else(|| StoreError::UnknownCollection(collection.to_string()))?;
        let sql = format!(
            "SELECT c.document_id, c.ordinal, v.embedding FROM {} v JOIN chunks c ON c.id = v.chunk_id ORDER BY c.id",
            vec_table(cid)
        );
        let mut st = conn.prepare(&sql).map_err(db)?;
        st.query_map([], |r| {
            Ok((
                (r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u32),
                vector_from(&r.get::<_, Vec<u8>>(2)?),
            ))
        })
        .map_err(db)?
        .collect::<Result<_, _>>()
        .map_err(db)
    }

    fn check(&self) -> Result<StoreCheck, StoreError> {
        let conn = self.conn();
        let mut out = StoreCheck::default();
        let count = |sql: &str| -> Result<u64, StoreError> {
            conn.query_row(sql, [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(db)
        };
        out.documents = count("SELECT COUNT(*) FROM documents")?;
        out.chunks = count("SELECT COUNT(*) FROM chunks")?;
        let mut st = conn
            .prepare(
                "SELECT d.id, d.chunk_count, (SELECT COUNT(*) FROM chunks c WHERE c.document_id = d.id) \
                 FROM documents d",
            )
            .map_err(db)?;
        let rows: Vec<(i64, i64, i64)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .map_err(db)?
            .collect::<Result<_, _>>()
            .map_err(db)?;
        for (id, expected, found) in rows {
            if expected != found || expected == 0 {
                out.problems.push(format!(
                    "document {id}: {found} of {expected} chunks stored"
                ));
            }
        }
        let ids: Vec<(i64, String)> = {
            let mut st = conn
                .prepare("SELECT id, name FROM collections")
                .map_err(db)?;
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(db)?
                .collect::<Result<_, _>>()
                .map_err(db)?
        };
        for (cid, name) in ids {
            let t = vec_table(cid);
            let vectors = count(&format!("SELECT COUNT(*) FROM {t}"))?;
            out.vectors += vectors;
            let missing = count(&format!(
                "SELECT COUNT(*) FROM chunks c JOIN documents d ON d.id = c.document_id \
                 WHERE d.collection_id = {cid} AND c.id NOT IN (SELECT chunk_id FROM {t})"
            ))?;
            if missing > 0 {
                out.problems.push(format!(
                    "collection '{name}': {missing} chunks without a vector"
                ));
            }
            let orphans = count(&format!(
                "SELECT COUNT(*) FROM {t} WHERE chunk_id NOT IN (SELECT id FROM chunks)"
            ))?;
            if orphans > 0 {
                out.problems.push(format!(
                    "collection '{name}': {orphans} vectors without a chunk"
                ));
            }
        }
        Ok(out)
    }
}

//! The store's writes: a document (with its chunks and vectors) in one transaction.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{
    RECORD, collection_row, db, now_ms, record, same_model, valid_collection_name, vec_table,
    vector_bytes,
};
use crate::documents::{AddOutcome, DocumentRecord, EmbedModel, NewDocument, StoreError};

/// Deletes a document's vectors and rows (inside the caller's transaction).
pub(super) fn delete_in(tx: &Transaction<'_>, id: i64) -> Result<(), StoreError> {
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

/// [`crate::documents::DocumentStore::add`].
pub(super) fn add(
    conn: &mut Connection,
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

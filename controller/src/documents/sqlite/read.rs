//! The store's reads that scan vectors: k-NN search, export, consistency check.

use rusqlite::{Connection, params};

use super::{collection_row, db, same_model, vec_table, vector_bytes, vector_from};
use crate::documents::{EmbedModel, Hit, StoreCheck, StoreError, StoredVectors};

/// [`crate::documents::DocumentStore::search`].
pub(super) fn search(
    conn: &Connection,
    collection: &str,
    model: &EmbedModel,
    query: &[f32],
    k: usize,
    min_score: f32,
) -> Result<Vec<Hit>, StoreError> {
    let (cid, stored) = collection_row(conn, collection)?
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

/// [`crate::documents::DocumentStore::vectors`].
pub(super) fn vectors(conn: &Connection, collection: &str) -> Result<StoredVectors, StoreError> {
    let (cid, _) = collection_row(conn, collection)?
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

/// [`crate::documents::DocumentStore::check`].
pub(super) fn check(conn: &Connection) -> Result<StoreCheck, StoreError> {
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

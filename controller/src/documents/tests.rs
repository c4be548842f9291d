use super::*;

fn model(name: &str, dimension: u32) -> EmbedModel {
    EmbedModel {
        name: name.into(),
        dimension,
    }
}

fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn doc(source: &str, text: &str, vectors: &[&[f32]]) -> NewDocument {
    NewDocument {
        source: source.into(),
        text: text.into(),
        sha256: format!("sha-of-{text}"),
        tokens: 3,
        chunks: vectors
            .iter()
            .enumerate()
            .map(|(i, v)| NewChunk {
                text: format!("{text} #{i}"),
                start: 0,
                end: text.len(),
                tokens: 5,
                vector: unit(v),
            })
            .collect(),
    }
}

#[test]
fn documents_round_trip_through_a_reopened_file() {
    let dir = tempfile::tempdir().unwrap();
    let m = model("minilm", 3);
    let (a, b) = {
        let store = SqliteStore::open(dir.path()).unwrap();
        let (a, oa) = store
            .add(
                "notes",
                &m,
                doc("a.md", "alpha", &[&[1.0, 0.0, 0.0], &[0.9, 0.1, 0.0]]),
            )
            .unwrap();
        let (b, ob) = store
            .add("notes", &m, doc("b.md", "beta", &[&[0.0, 1.0, 0.0]]))
            .unwrap();
        assert_eq!((oa, ob), (AddOutcome::Added, AddOutcome::Added));
        (a, b)
    };
    let store = SqliteStore::open(dir.path()).unwrap();
    let listed = store.list(Some("notes")).unwrap();
    assert_eq!(listed, vec![a.clone(), b.clone()]);
    let (got, text) = store.get(a.id).unwrap();
    assert_eq!((got.chunks, text.as_str()), (2, "alpha"));
    let hits = store
        .search("notes", &m, &unit(&[0.9, 0.12, 0.0]), 2, -1.0)
        .unwrap();
    assert_eq!(hits.len(), 2);
    assert_eq!((hits[0].document_id, hits[0].chunk), (a.id, 1));
    assert_eq!((hits[1].document_id, hits[1].chunk), (a.id, 0));
    assert!(hits[0].score > hits[1].score && hits[0].score > 0.99);
    assert_eq!(hits[0].source, "a.md");
    assert_eq!(hits[0].text, "alpha #1");
    let cols = store.collections().unwrap();
    assert_eq!(cols.len(), 1);
    assert_eq!((cols[0].documents, cols[0].chunks), (2, 3));
    assert_eq!(store.check().unwrap().problems, Vec::<String>::new());
}

#[test]
fn the_score_threshold_drops_weak_matches() {
    let store = SqliteStore::in_memory().unwrap();
    let m = model("minilm", 2);
    store.add("c", &m, doc("x", "x", &[&[1.0, 0.0]])).unwrap();
    store.add("c", &m, doc("y", "y", &[&[0.0, 1.0]])).unwrap();
    let q = unit(&[1.0, 0.2]);
    assert_eq!(store.search("c", &m, &q, 5, -1.0).unwrap().len(), 2);
    let strong = store.search("c", &m, &q, 5, 0.5).unwrap();
    assert_eq!(strong.len(), 1);
    assert_eq!(strong[0].source, "x");
}

#[test]
fn delete_removes_the_document_its_chunks_and_vectors() {
    let store = SqliteStore::in_memory().unwrap();
    let m = model("minilm", 2);
    let (a, _) = store
        .add("c", &m, doc("a", "a", &[&[1.0, 0.0], &[1.0, 0.1]]))
        .unwrap();
    let (b, _) = store.add("c", &m, doc("b", "b", &[&[0.0, 1.0]])).unwrap();
    assert_eq!(store.delete(a.id).unwrap().id, a.id);
    assert_eq!(
        store.delete(a.id).unwrap_err(),
        StoreError::UnknownDocument(a.id)
    );
    assert_eq!(
        store.get(a.id).unwrap_err(),
        StoreError::UnknownDocument(a.id)
    );
    let hits = store.search("c", &m, &[1.0, 0.0], 5, -1.0).unwrap();
    assert_eq!(
        hits.iter().map(|h| h.document_id).collect::<Vec<_>>(),
        vec![b.id]
    );
    let check = store.check().unwrap();
    assert_eq!((check.documents, check.chunks, check.vectors), (1, 1, 1));
    assert!(check.problems.is_empty(), "{:?}", check.problems);
    // Ids are never reused.
    let (c, _) = store.add("c", &m, doc("c", "c", &[&[1.0, 1.0]])).unwrap();
    assert!(c.id > b.id);
}

#[test]
fn another_model_or_width_is_refused_never_mixed() {
    let store = SqliteStore::in_memory().unwrap();
    store
        .add("c", &model("minilm", 2), doc("a", "a", &[&[1.0, 0.0]]))
        .unwrap();
    let err = store
        .add("c", &model("bge", 2), doc("b", "b", &[&[1.0, 0.0]]))
        .unwrap_err();
    assert!(matches!(err, StoreError::ModelMismatch { .. }), "{err}");
    assert!(err.to_string().contains("never mixed"), "{err}");
    let err = store
        .search("c", &model("bge", 3), &[1.0, 0.0, 0.0], 3, -1.0)
        .unwrap_err();
    assert!(matches!(err, StoreError::ModelMismatch { .. }), "{err}");
    // A vector of the wrong width for the named model is refused before anything is written.
    let err = store
        .add("c", &model("minilm", 2), doc("w", "w", &[&[1.0, 0.0, 0.0]]))
        .unwrap_err();
    assert!(err.to_string().contains("3 dimensions"), "{err}");
    let err = store
        .search("c", &model("minilm", 2), &[1.0, 0.0, 0.0], 3, -1.0)
        .unwrap_err();
    assert!(err.to_string().contains("3 dimensions"), "{err}");
    assert_eq!(store.list(Some("c")).unwrap().len(), 1);
    // Another collection may use another model.
    store
        .add(
            "other",
            &model("bge", 3),
            doc("b", "b", &[&[0.0, 0.0, 1.0]]),
        )
        .unwrap();
}

#[test]
fn re_adding_a_source_is_unchanged_or_replaces_it() {
    let store = SqliteStore::in_memory().unwrap();
    let m = model("minilm", 2);
    let (a, _) = store
        .add("c", &m, doc("f.md", "v1", &[&[1.0, 0.0]]))
        .unwrap();
    let (same, o) = store
        .add("c", &m, doc("f.md", "v1", &[&[1.0, 0.0]]))
        .unwrap();
    assert_eq!((same.id, o), (a.id, AddOutcome::Unchanged));
    assert_eq!(store.find("c", "f.md", &a.sha256).unwrap(), Some(a.clone()));
    let (b, o) = store
        .add("c", &m, doc("f.md", "v2", &[&[0.0, 1.0]]))
        .unwrap();
    assert_eq!(o, AddOutcome::Replaced);
    assert_eq!(store.list(None).unwrap(), vec![b]);
    assert!(store.check().unwrap().problems.is_empty());
}

#[test]
fn unknown_collections_and_bad_names_are_errors() {
    let store = SqliteStore::in_memory().unwrap();
    let m = model("minilm", 2);
    assert_eq!(
        store.list(Some("nope")).unwrap_err(),
        StoreError::UnknownCollection("nope".into())
    );
    assert_eq!(
        store.search("nope", &m, &[1.0, 0.0], 3, -1.0).unwrap_err(),
        StoreError::UnknownCollection("nope".into())
    );
    assert_eq!(
        store.delete_collection("nope").unwrap_err(),
        StoreError::UnknownCollection("nope".into())
    );
    let err = store
        .add("bad name!", &m, doc("a", "a", &[&[1.0, 0.0]]))
        .unwrap_err();
    assert!(err.to_string().contains("invalid collection name"), "{err}");
}

#[test]
fn deleting_a_collection_removes_everything_in_it() {
    let store = SqliteStore::in_memory().unwrap();
    let m = model("minilm", 2);
    store.add("c", &m, doc("a", "a", &[&[1.0, 0.0]])).unwrap();
    store.add("c", &m, doc("b", "b", &[&[0.0, 1.0]])).unwrap();
    store
        .add("keep", &m, doc("k", "k", &[&[0.0, 1.0]]))
        .unwrap();
    assert_eq!(store.delete_collection("c").unwrap(), 2);
    assert!(store.collection("c").unwrap().is_none());
    assert_eq!(store.list(None).unwrap().len(), 1);
    // The name can be reused, with another model.
    store
        .add("c", &model("bge", 3), doc("z", "z", &[&[0.0, 0.0, 1.0]]))
        .unwrap();
    let check = store.check().unwrap();
    assert!(check.problems.is_empty(), "{:?}", check.problems);
    assert_eq!(check.vectors, 2);
}

#[test]
fn an_unwritable_data_directory_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let err = SqliteStore::open(&file.join("sub")).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("a-file/sub") && msg.contains("cannot create"),
        "{msg}"
    );
}

#[test]
fn vectors_are_exported_as_stored() {
    let store = SqliteStore::in_memory().unwrap();
    let m = model("minilm", 2);
    let (a, _) = store.add("c", &m, doc("a", "a", &[&[3.0, 4.0]])).unwrap();
    let v = store.vectors("c").unwrap();
    assert_eq!(v, vec![((a.id, 0), vec![0.6, 0.8])]);
}

//! Retrieval benchmark (issue 16): imports ~10,000 chunks through a real single-host cluster
//! (`switchyard up`: chunked by the controller, embedded by the agent's embed stage, stored in
//! the SQLite + sqlite-vec document store), then measures search latency:
//!   * end to end (`SearchDocuments`: embed the query through the cluster + search),
//!   * the store's search alone (vec0 k-NN inside SQLite) beside a brute-force scan of the
//!     same vectors in the same process, with the ratio and the store's recall@k.
//!
//!   SWITCHYARD_BIN=target/release/switchyard cargo bench -p switchyard-e2e --bench retrieval [-- CHUNKS]
//!
//! Not a test: it prints figures, on an otherwise idle machine they mean something.

use std::time::{Duration, Instant};

use switchyard_controller::documents::{DocumentStore, EmbedModel, SqliteStore};
use switchyard_e2e::{Proc, binary};
use switchyard_proto::v1::inference_client::InferenceClient;
use switchyard_proto::v1::{
    AddDocumentsRequest, DocumentInput, EmbedRequest, SearchDocumentsRequest,
};

const WORDS: &[&str] = &[
    "pump", "valve", "pressure", "station", "crew", "shift", "log", "reading", "river", "bridge",
    "kernel", "thread", "buffer", "socket", "cache", "index", "query", "vector", "cluster", "node",
    "garden", "tomato", "basil", "soil", "water", "harvest", "winter", "summer", "frost", "seed",
    "invoice", "budget", "tax", "payment", "account", "ledger", "audit", "receipt", "loan", "rate",
    "violin", "concert", "melody", "rhythm", "choir", "piano", "score", "tempo", "stage", "song",
    "engine", "brake", "wheel", "fuel", "gear", "clutch", "tyre", "oil", "battery", "mirror",
    "the", "a", "of", "and", "is", "was", "with", "for", "on", "after", "before", "because",
];

/// A deterministic pseudo-random text of `paragraphs` paragraphs on a few topics.
fn text(seed: u64, paragraphs: usize) -> String {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let topic = (seed % 6) as usize * 10;
    let mut out = String::new();
    for _ in 0..paragraphs {
        for w in 0..40 {
            let r = next() as usize;
            let word = if r.is_multiple_of(3) {
                WORDS[60 + r % 12]
            } else {
                WORDS[(topic + r % 10 + (r % 7 / 6) * 10) % 60]
            };
            out.push_str(word);
            out.push(if w % 12 == 11 { '.' } else { ' ' });
        }
        out.push_str("\n\n");
    }
    out
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// The `k` best (score, index) by dot product: the brute-force baseline.
fn brute_force(matrix: &[f32], dim: usize, q: &[f32], k: usize) -> Vec<usize> {
    let mut scored: Vec<(f32, usize)> = matrix
        .chunks_exact(dim)
        .enumerate()
        .map(|(i, v)| (v.iter().zip(q).map(|(a, b)| a * b).sum(), i))
        .collect();
    let k = k.min(scored.len());
    scored.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
    scored.truncate(k);
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().map(|(_, i)| i).collect()
}

fn main() {
    let target: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let bin = binary();
    println!("binary: {}", bin.display());
    if bin.to_string_lossy().contains("/debug/") {
        println!("warning: a debug build; set SWITCHYARD_BIN=target/release/switchyard");
    }
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let up = Proc::start(
        "up",
        &[
            "up",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--agent-listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
    )
    .expect("switchyard up");
    let url = format!("http://{}", up.field("grpc").unwrap());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = loop {
            if let Ok(c) = InferenceClient::connect(url.clone()).await {
                break c;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        // Warm up (loads the model) until the node answers.
        let warm = Instant::now();
        while c
            .embed(EmbedRequest { model: "minilm-l6-v2".into(), inputs: vec!["warm up".into()] })
            .await
            .is_err()
        {
            assert!(warm.elapsed() < Duration::from_secs(120), "{}", up.stderr());
            tokio::time::sleep(Duration::from_millis(200)).await;
        }

        // Import: one document per request, as `switchyard docs add` does.
        let (mut chunks, mut docs) = (0usize, 0u64);
        let started = Instant::now();
        while chunks < target {
            let resp = c
                .add_documents(AddDocumentsRequest {
                    collection: "bench".into(),
                    items: vec![DocumentInput { text: text(docs, 30), source: format!("doc-{docs}.md") }],
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|s| panic!("import failed: {s}"))
                .into_inner();
            chunks += resp.documents.iter().map(|d| d.chunks as usize).sum::<usize>();
            docs += 1;
        }
        let took = started.elapsed().as_secs_f64();
        println!(
            "import: {chunks} chunks in {docs} documents, {took:.1} s = {:.0} chunks/s through the embed stage",
            chunks as f64 / took
        );

        // Queries: embedded once (for the in-process comparison) and searched end to end.
        let queries: Vec<String> = (0..200).map(|i| text(1_000_000 + i, 1)[..120].to_string()).collect();
        let mut e2e = Vec::new();
        for q in &queries {
            let t = Instant::now();
            c.search_documents(SearchDocumentsRequest { query: q.clone(), k: 5, collection: "bench".into(), min_score: Some(-1.0) })
                .await
                .unwrap();
            e2e.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let vectors = c
            .embed(EmbedRequest { model: "minilm-l6-v2".into(), inputs: queries.clone() })
            .await
            .unwrap()
            .into_inner()
            .embeddings;
        println!(
            "search end to end (embed query + store), {} queries: p50 {:.2} ms, p99 {:.2} ms",
            queries.len(),
            percentile(&mut e2e.clone(), 0.5),
            percentile(&mut e2e, 0.99)
        );
        drop(up);

        // The store alone vs a brute-force scan of the same vectors.
        let store = SqliteStore::open(&data).unwrap();
        let stored = store.vectors("bench").unwrap();
        let dim = stored[0].1.len();
        let keys: Vec<(u64, u32)> = stored.iter().map(|(k, _)| *k).collect();
        let matrix: Vec<f32> = stored.iter().flat_map(|(_, v)| v.iter().copied()).collect();
        let model = EmbedModel { name: "minilm-l6-v2".into(), dimension: dim as u32 };
        let (mut store_ms, mut brute_ms, mut agree) = (Vec::new(), Vec::new(), 0usize);
        for e in &vectors {
            let t = Instant::now();
            let hits = store.search("bench", &model, &e.values, 5, -1.0).unwrap();
            store_ms.push(t.elapsed().as_secs_f64() * 1e3);
            let t = Instant::now();
            let best = brute_force(&matrix, dim, &e.values, 5);
            brute_ms.push(t.elapsed().as_secs_f64() * 1e3);
            agree += hits.iter().filter(|h| best.iter().any(|&i| keys[i] == (h.document_id, h.chunk))).count();
        }
        let (s50, s99) = (percentile(&mut store_ms.clone(), 0.5), percentile(&mut store_ms, 0.99));
        let (b50, b99) = (percentile(&mut brute_ms.clone(), 0.5), percentile(&mut brute_ms, 0.99));
        println!("over {} vectors of {dim} dimensions, k = 5, {} queries:", keys.len(), vectors.len());
        println!("  store (sqlite-vec vec0): p50 {s50:.2} ms, p99 {s99:.2} ms");
        println!("  brute-force scan (Rust): p50 {b50:.2} ms, p99 {b99:.2} ms");
        println!(
            "  store / brute force: p50 {:.2}x, p99 {:.2}x; recall@5 of the store vs brute force {:.3}",
            s50 / b50,
            s99 / b99,
            agree as f64 / (5 * vectors.len()) as f64
        );
    });
}

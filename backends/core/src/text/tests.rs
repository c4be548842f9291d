use super::*;

#[test]
fn incremental_pieces_are_whole_characters_and_add_up() {
    let path = crate::paths::models_dir().join("smollm2-135m/tokenizer.json");
    if !path.is_file() {
        eprintln!(
            "SKIP: {} not prepared (run scripts/setup.sh)",
            path.display()
        );
        return;
    }
    let tok = load_tokenizer("smollm2", &path).unwrap();
    let text = "Café ☕ naïve 日本語 — ok 🦀!";
    let ids = tok.encode(text, false).unwrap().get_ids().to_vec();
    // Byte-level BPE splits the emoji/CJK into several tokens: some steps yield nothing.
    assert!(ids.len() > text.chars().count() / 2);
    let mut dec = IncrementalDecoder::default();
    let mut out = String::new();
    let mut silent = 0;
    for n in 1..=ids.len() {
        match dec.next(&tok, &ids[..n]).unwrap() {
            Some(piece) => {
                assert!(!piece.contains('\u{FFFD}'), "{piece:?}");
                out.push_str(&piece);
            }
            None => silent += 1,
        }
    }
    assert_eq!(out, text);
    assert!(silent > 0, "expected partial characters to be held back");
}

#[test]
fn encoder_pads_per_batch_truncates_and_refuses() {
    let path = crate::paths::models_dir().join("minilm-l6-v2/tokenizer.json");
    if !path.is_file() {
        eprintln!(
            "SKIP: {} not prepared (run scripts/setup.sh)",
            path.display()
        );
        return;
    }
    let mut spec = ModelSpec {
        name: "minilm".into(),
        stage: crate::StageKind::Embed,
        onnx: "unused.onnx".into(),
        tokenizer: path,
        sha256: None,
        memory_bytes: 1,
        max_input_tokens: 8,
        overflow: OverflowPolicy::Truncate,
        labels: vec![],
        embedding_dim: Some(384),
        tier: None,
        context_tokens: None,
        chat_template: None,
        system_prompt: None,
        stop_tokens: vec![],
        max_batch: 32,
        streams: None,
        precision: Default::default(),
        also_at: Vec::new(),
        backends: vec![],
        engine: None,
        info: Default::default(),
    };
    let enc = TextEncoder::new(&spec).unwrap();
    let b = enc
        .encode(&[
            "hello".to_string(),
            "a much longer sentence here".to_string(),
        ])
        .unwrap();
    // Dynamic padding: as long as the longest row, not the JSON's fixed 128.
    assert_eq!(b.batch, 2);
    assert_eq!(b.seq, b.lengths.iter().copied().max().unwrap() as usize);
    assert_eq!(b.lengths[0], 3); // [CLS] hello [SEP]
    assert_eq!(&b.attention_mask[..b.seq][..4], &[1, 1, 1, 0]);
    let long = enc.encode(&["word ".repeat(50)]).unwrap();
    assert_eq!(long.lengths, vec![8]);
    assert_eq!(long.input_ids[7], 102, "truncation keeps [SEP] last");
    spec.overflow = OverflowPolicy::Refuse;
    let enc = TextEncoder::new(&spec).unwrap();
    let err = enc.encode(&["word ".repeat(50)]).unwrap_err();
    assert!(err.to_string().contains("at most 8"), "{err}");
    assert!(enc.encode(&[]).is_err());
    assert!(enc.encode(&[String::new()]).is_err());
}

#[test]
fn holdback_keeps_a_possible_stop_start_and_nothing_else() {
    let stops = vec!["11".to_string(), "END!".to_string(), "é!".to_string()];
    assert_eq!(stop_holdback("The number 1", &stops), 1);
    assert_eq!(stop_holdback("... EN", &stops), 2);
    assert_eq!(stop_holdback("... END", &stops), 3);
    assert_eq!(stop_holdback("cafe", &stops), 0);
    // Multi-byte: "é" is 2 bytes and a proper prefix of "é!".
    assert_eq!(stop_holdback("café", &stops), 2);
    assert_eq!(stop_holdback("anything", &[]), 0);
}

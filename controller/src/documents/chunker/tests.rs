use std::str::FromStr;

use super::*;

/// A tokenizer where every whitespace-separated word is one token and [CLS]/[SEP] are
/// added: token counts are word counts + 2, so expectations can be computed by hand.
fn words_tokenizer() -> Tokenizer {
    Tokenizer::from_str(
        r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[],
        "normalizer":null,"pre_tokenizer":{"type":"WhitespaceSplit"},
        "post_processor":{"type":"BertProcessing","sep":["[SEP]",1],"cls":["[CLS]",0]},
        "decoder":null,
        "model":{"type":"WordLevel","vocab":{"[CLS]":0,"[SEP]":1,"[UNK]":2},"unk_token":"[UNK]"}}"#,
    )
    .unwrap()
}

fn words(n: usize, prefix: &str) -> String {
    (0..n)
        .map(|i| format!("{prefix}{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn a_short_text_is_one_chunk_with_special_tokens_counted() {
    let c = Chunker::new(words_tokenizer(), 20, 4).unwrap();
    let (chunks, tokens) = c.chunks("one two three", TextKind::Prose).unwrap();
    assert_eq!(tokens, 3);
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].text, "one two three");
    assert_eq!(chunks[0].tokens, 5, "3 words + [CLS] + [SEP]");
}

#[test]
fn chunks_end_at_paragraph_breaks_when_one_is_in_reach() {
    // Two paragraphs of 10 words; a chunk holds 18 words: the cut is at the blank line,
    // not after 18 words.
    let text = format!("{}\n\n{}", words(10, "a"), words(10, "b"));
    let c = Chunker::new(words_tokenizer(), 20, 0).unwrap();
    let (chunks, _) = c.chunks(&text, TextKind::Prose).unwrap();
    assert_eq!(chunks.len(), 2, "{chunks:?}");
    assert_eq!(chunks[0].text, words(10, "a"));
    assert_eq!(chunks[1].text, words(10, "b"));
    assert_eq!(&text[chunks[1].start..chunks[1].end], chunks[1].text);
}

#[test]
fn line_breaks_win_over_spaces_and_sentences_over_words() {
    let text = format!("{}\n{} {}", words(12, "a"), words(3, "b"), words(8, "c"));
    let c = Chunker::new(words_tokenizer(), 20, 0).unwrap();
    let (chunks, _) = c.chunks(&text, TextKind::Prose).unwrap();
    assert_eq!(chunks[0].text, words(12, "a"), "cut at the newline");

    let text = format!("{} end. {}", words(12, "a"), words(12, "b"));
    let (chunks, _) = c.chunks(&text, TextKind::Prose).unwrap();
    assert!(chunks[0].text.ends_with("end."), "{:?}", chunks[0].text);
}

#[test]
fn overlap_repeats_the_last_words_of_the_previous_chunk() {
    let text = words(40, "w");
    let c = Chunker::new(words_tokenizer(), 12, 3).unwrap();
    let (chunks, _) = c.chunks(&text, TextKind::Prose).unwrap();
    assert!(chunks.len() >= 4, "{chunks:?}");
    for pair in chunks.windows(2) {
        let prev: Vec<&str> = pair[0].text.split(' ').collect();
        let next: Vec<&str> = pair[1].text.split(' ').collect();
        assert_eq!(&prev[prev.len() - 3..], &next[..3], "{pair:?}");
        assert!(pair[1].start < pair[0].end, "overlapping byte ranges");
    }
    // Every word is in some chunk, in order.
    let last: Vec<&str> = chunks.last().unwrap().text.split(' ').collect();
    assert_eq!(*last.last().unwrap(), "w39");
}

#[test]
fn nothing_is_over_the_token_limit() {
    let mut text = String::new();
    for i in 0..200 {
        text.push_str(&words(i % 17 + 1, &format!("p{i}x")));
        text.push_str(if i % 5 == 0 {
            "\n\n"
        } else if i % 3 == 0 {
            "\n"
        } else {
            ". "
        });
    }
    for (size, overlap) in [(10, 0), (16, 4), (40, 8), (128, 16)] {
        let c = Chunker::new(words_tokenizer(), size, overlap).unwrap();
        for kind in [TextKind::Prose, TextKind::Code] {
            let (chunks, _) = c.chunks(&text, kind).unwrap();
            for ch in &chunks {
                assert!(ch.tokens as usize <= size, "{size}: {ch:?}");
                assert_eq!(c.count(&ch.text).unwrap(), ch.tokens as usize);
                assert_eq!(&text[ch.start..ch.end], ch.text);
            }
            assert!(
                text.trim_end()
                    .ends_with(chunks.last().unwrap().text.as_str())
            );
        }
    }
}

#[test]
fn code_keeps_whole_lines_with_their_indentation() {
    let mut code = String::from("fn main() {\n");
    for i in 0..30 {
        code.push_str(&format!("    let v{i} = compute ( {i} ) ;\n"));
    }
    code.push_str("}\n");
    let c = Chunker::new(words_tokenizer(), 30, 8).unwrap();
    let (chunks, _) = c.chunks(&code, TextKind::Code).unwrap();
    assert!(chunks.len() > 3, "{chunks:?}");
    let lines: Vec<&str> = code.lines().collect();
    for ch in &chunks {
        for line in ch.text.lines() {
            assert!(lines.contains(&line), "a cut line: {line:?} in {ch:?}");
        }
        assert!(
            ch.start == 0 || code.as_bytes()[ch.start - 1] == b'\n',
            "{ch:?}"
        );
    }
    // Overlap comes in whole lines too.
    assert!(chunks[1].start < chunks[0].end);
}

#[test]
fn a_line_longer_than_a_chunk_is_the_only_thing_cut_inside_a_line() {
    let code = format!("short line\n{}\nlast line\n", words(50, "x"));
    let c = Chunker::new(words_tokenizer(), 20, 0).unwrap();
    let (chunks, _) = c.chunks(&code, TextKind::Code).unwrap();
    assert_eq!(chunks[0].text, "short line");
    assert!(chunks.iter().all(|ch| ch.tokens <= 20));
    let last = &chunks.last().unwrap().text;
    assert_eq!(last.lines().last(), Some("last line"), "{last:?}");
}

#[test]
fn empty_and_blank_texts_are_refused() {
    let c = Chunker::new(words_tokenizer(), 20, 0).unwrap();
    assert_eq!(
        c.chunks("", TextKind::Prose).unwrap_err(),
        ChunkError::Empty
    );
    assert_eq!(
        c.chunks(" \n\t ", TextKind::Prose).unwrap_err(),
        ChunkError::Empty
    );
}

#[test]
fn sizes_that_cannot_work_are_refused_with_the_key() {
    let e = Chunker::new(words_tokenizer(), 5, 0).unwrap_err();
    assert!(e.contains("chunk_tokens"), "{e}");
    let e = Chunker::new(words_tokenizer(), 20, 12).unwrap_err();
    assert!(e.contains("overlap_tokens"), "{e}");
}

#[test]
fn kinds_follow_the_file_extension() {
    assert_eq!(TextKind::of_source("src/main.rs"), TextKind::Code);
    assert_eq!(TextKind::of_source("deploy/Dockerfile"), TextKind::Code);
    assert_eq!(TextKind::of_source("notes/todo.md"), TextKind::Prose);
    assert_eq!(TextKind::of_source(""), TextKind::Prose);
    assert_eq!(TextKind::of_source("-"), TextKind::Prose);
}

#[test]
fn real_minilm_tokenizer_chunks_this_repository_within_its_limit() {
    let path = switchyard_backend_core::paths::models_dir().join("minilm-l6-v2/tokenizer.json");
    if !path.is_file() {
        eprintln!(
            "SKIP: {} not prepared (run scripts/setup.sh)",
            path.display()
        );
        return;
    }
    let tok = switchyard_backend_core::text::load_tokenizer("minilm", &path).unwrap();
    let c = Chunker::new(tok, 128, 16).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for (file, kind) in [
        ("README.md", TextKind::Prose),
        ("controller/src/documents/chunker.rs", TextKind::Code),
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let (chunks, tokens) = c.chunks(&text, kind).unwrap();
        assert!(tokens > 1000, "{file}: {tokens}");
        assert!(chunks.len() as u64 >= tokens / 126, "{file}");
        for ch in &chunks {
            assert!(ch.tokens <= 128, "{file}: {ch:?}");
            assert_eq!(c.count(&ch.text).unwrap(), ch.tokens as usize);
        }
        if kind == TextKind::Code {
            let lines: Vec<&str> = text.lines().collect();
            let whole = chunks
                .iter()
                .flat_map(|ch| ch.text.lines())
                .filter(|l| !lines.contains(l))
                .count();
            assert_eq!(whole, 0, "{file}: every chunk line is a whole source line");
        }
    }
}

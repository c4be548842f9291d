use super::*;

fn t(n: &str) -> Tier {
    n.parse().unwrap()
}

/// Four tiers as four noisy directions in 16 dimensions.
fn clustered(per_tier: usize) -> (Vec<Vec<f32>>, Vec<usize>) {
    let mut state = 12345u64;
    let mut noise = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    };
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for tier in 0..4 {
        for _ in 0..per_tier {
            let mut v: Vec<f32> = (0..16).map(|_| 0.6 * noise()).collect();
            v[tier * 3] += 1.0;
            xs.push(v);
            ys.push(tier);
        }
    }
    (xs, ys)
}

#[test]
fn parses_lines_with_their_numbers_and_refuses_bad_ones() {
    let ok = "{\"prompt\": \"SELECT it\", \"tier\": \"sql\"}\n\n{\"text\": \"Hallo\", \"label\": \"german\"}\n";
    let set = parse_jsonl(ok, None).unwrap();
    assert_eq!(set.tiers, [t("sql"), t("german")]);
    assert_eq!(
        (set.items[1].line, set.items[1].prompt.as_str()),
        (3, "Hallo")
    );
    assert_eq!(set.counts(), [1, 1]);
    let cases = [
        (
            "{\"prompt\": \"a\", \"tier\": \"sql\"}\nnot json",
            "line 2: not a {\"prompt\", \"tier\"} object",
        ),
        (
            "{\"prompt\": \" \", \"tier\": \"sql\"}",
            "line 1: empty prompt",
        ),
        (
            "{\"prompt\": \"a\", \"tier\": \"S Q L\"}",
            "line 1: invalid tier name",
        ),
        (
            "{\"prompt\": \"a\", \"tier\": \"sql\", \"x\": 1}",
            "line 1: not a",
        ),
        ("{\"prompt\": \"a\"}", "line 1: not a"),
        ("\n\n", "no labelled prompts"),
    ];
    for (text, want) in cases {
        let err = parse_jsonl(text, None).unwrap_err().to_string();
        assert!(err.contains(want), "{text:?}: {err}");
    }
    let err = parse_jsonl(ok, Some(&[t("sql"), t("code")]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "line 3: unknown tier 'german' (this router has: sql, code)"
    );
}

#[test]
fn fits_four_made_up_tiers_far_above_chance_and_survives_its_file() {
    let (xs, ys) = clustered(30);
    let tiers = [t("sql"), t("german"), t("math"), t("poetry")];
    let (train, test, warnings) = split_stratified(&ys, &tiers, 0.2, 1);
    assert!(warnings.is_empty());
    assert_eq!((train.len(), test.len()), (96, 24));
    for tier in 0..4 {
        assert_eq!(
            test.iter().filter(|&&i| ys[i] == tier).count(),
            6,
            "stratified"
        );
    }
    let pick = |idx: &[usize]| -> (Vec<Vec<f32>>, Vec<usize>) {
        (
            idx.iter().map(|&i| xs[i].clone()).collect(),
            idx.iter().map(|&i| ys[i]).collect(),
        )
    };
    let (tx, ty) = pick(&train);
    let head = fit_head("minilm", &tiers, &tx, &ty, &FitOptions::default())
        .unwrap()
        .seal();
    let (hx, hy) = pick(&test);
    let eval = evaluate(&head, &hx, &hy).unwrap();
    assert!(eval.accuracy >= 0.9, "held-out accuracy {}", eval.accuracy);
    assert_eq!(eval.confusion.iter().flatten().sum::<usize>(), 24);
    assert!(
        eval.per_tier
            .iter()
            .all(|s| s.support == 6 && s.recall > 0.5)
    );

    let back = RouterHead::from_json(&head.to_json()).unwrap();
    assert_eq!(back, head);
    assert_eq!(back.classify(&xs[0]).unwrap().0, t("sql"));
    let err = back.classify(&[1.0; 8]).unwrap_err().to_string();
    assert_eq!(
        err,
        "embedding dimension 8 does not match the router's 16 (embedder minilm)"
    );
    let tampered = head
        .to_json()
        .replacen("\"trained_on\": 96", "\"trained_on\": 97", 1);
    let err = RouterHead::from_json(&tampered).unwrap_err().to_string();
    assert!(err.contains("sha256 does not match"), "{err}");
}

#[test]
fn one_tier_is_refused_and_small_tiers_warn() {
    let (xs, ys) = clustered(3);
    let err = fit_head("m", &[t("sql")], &xs[..3], &ys[..3], &FitOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "a router needs at least 2 tiers; the file has 1 (sql)"
    );
    let tiers = [t("a"), t("b"), t("c"), t("d")];
    let (train, test, warnings) = split_stratified(&ys, &tiers, 0.2, 1);
    assert_eq!(warnings.len(), 4);
    assert!(
        warnings[0].contains("tier 'a' has only 3 example(s)")
            && warnings[0].contains("1 held out")
    );
    assert_eq!(train.len() + test.len(), 12);
}

use super::*;

fn msg(role: &str, content: &str) -> ChatMessage {
    ChatMessage {
        role: role.into(),
        content: content.into(),
        ..Default::default()
    }
}

#[test]
fn inputs_limits_name_the_limit() {
    let cfg = ApiConfig {
        max_inputs: 2,
        max_input_chars: 5,
        ..ApiConfig::default()
    };
    assert!(inputs(&["a".into()], "input", &cfg).is_ok());
    let e = inputs(&["a".into(), "b".into(), "c".into()], "input", &cfg).unwrap_err();
    assert!(e.message.contains("max_inputs (2)"), "{}", e.message);
    assert_eq!(e.class, ErrorClass::InvalidArgument);
    let e = inputs(&["abcdef".into()], "input", &cfg).unwrap_err();
    assert!(e.message.contains("max_input_chars (5)"), "{}", e.message);
    let e = inputs(&[], "input", &cfg).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("input"));
    let e = inputs(&["".into()], "input", &cfg).unwrap_err();
    assert!(e.message.contains("input[0]"), "{}", e.message);
}

#[test]
fn messages_need_known_roles_and_a_user() {
    let cfg = ApiConfig::default();
    assert!(messages(&[msg("system", "s"), msg("user", "u")], &cfg).is_ok());
    let e = messages(&[msg("robot", "x")], &cfg).unwrap_err();
    assert!(e.message.contains("'robot'"), "{}", e.message);
    assert!(messages(&[], &cfg).is_err());
    let e = messages(&[msg("system", "s")], &cfg).unwrap_err();
    assert!(e.message.contains("role 'user'"), "{}", e.message);
}

#[test]
fn sampling_ranges() {
    let cfg = ApiConfig {
        max_tokens: 10,
        ..ApiConfig::default()
    };
    let ok = SamplingParams {
        max_tokens: 10,
        temperature: 2.0,
        top_p: 1.0,
        seed: None,
        stop: vec!["\n".into()],
        presence_penalty: -2.0,
        frequency_penalty: 2.0,
        repeat_penalty: 1.1,
        repeat_last_n: -1,
        logit_bias: [(7, -100.0)].into_iter().collect(),
        ..Default::default()
    };
    assert!(sampling(&ok, &cfg).is_ok());
    let bad = |f: &dyn Fn(&mut SamplingParams)| {
        let mut s = ok.clone();
        f(&mut s);
        sampling(&s, &cfg).unwrap_err()
    };
    assert_eq!(
        bad(&|s| s.temperature = 2.5).param.as_deref(),
        Some("temperature")
    );
    assert_eq!(
        bad(&|s| s.temperature = f32::NAN).param.as_deref(),
        Some("temperature")
    );
    assert_eq!(bad(&|s| s.top_p = 1.5).param.as_deref(), Some("top_p"));
    let e = bad(&|s| s.max_tokens = 11);
    assert!(e.message.contains("max_tokens (10)"), "{}", e.message);
    assert_eq!(
        bad(&|s| s.stop = vec!["".into()]).param.as_deref(),
        Some("stop")
    );
    assert_eq!(
        bad(&|s| s.presence_penalty = 2.5).param.as_deref(),
        Some("presence_penalty")
    );
    assert_eq!(
        bad(&|s| s.frequency_penalty = f32::INFINITY)
            .param
            .as_deref(),
        Some("frequency_penalty")
    );
    assert_eq!(
        bad(&|s| s.repeat_penalty = -0.5).param.as_deref(),
        Some("repeat_penalty")
    );
    assert_eq!(
        bad(&|s| s.repeat_last_n = -2).param.as_deref(),
        Some("repeat_last_n")
    );
    let e = bad(&|s| {
        s.logit_bias.insert(9, 101.0);
    });
    assert!(e.message.contains("token 9"), "{}", e.message);
}

#[test]
fn documents_collections_and_searches_are_checked() {
    let cfg = ApiConfig {
        max_inputs: 2,
        max_input_chars: 10,
        ..ApiConfig::default()
    };
    // A document may be longer than max_input_chars: it is chunked before embedding.
    assert!(documents(&["a long document text"], &cfg).is_ok());
    let e = documents(&[], &cfg).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("documents"));
    let e = documents(&["a", "b", "c"], &cfg).unwrap_err();
    assert!(e.message.contains("max_inputs (2)"), "{}", e.message);
    let e = documents(&["a", " \n"], &cfg).unwrap_err();
    assert!(e.message.contains("documents[1] is empty"), "{}", e.message);

    assert!(collection("").is_ok());
    assert!(collection("notes-2024_v1.x").is_ok());
    assert_eq!(
        collection("a b").unwrap_err().param.as_deref(),
        Some("collection")
    );
    assert!(collection(&"x".repeat(65)).is_err());

    assert!(search("hello", 2, "", Some(0.5), &cfg).is_ok());
    assert_eq!(
        search(" ", 2, "", None, &cfg).unwrap_err().param.as_deref(),
        Some("query")
    );
    assert_eq!(
        search("q", 3, "", None, &cfg).unwrap_err().param.as_deref(),
        Some("k")
    );
    assert_eq!(
        search("q", 1, "", Some(1.5), &cfg)
            .unwrap_err()
            .param
            .as_deref(),
        Some("min_score")
    );
    assert!(min_score(Some(f32::NAN)).is_err());
}

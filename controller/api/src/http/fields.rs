//! Typed reads of JSON request fields with precise messages naming the field. `null` reads
//! as absent, as OpenAI does.

use serde_json::{Map, Value};

use crate::inference::ApiError;
use crate::validate::invalid;

/// JSON type name for messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The field, `None` when absent or null.
pub fn get<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

/// A required string.
pub fn req_string(obj: &Map<String, Value>, name: &str) -> Result<String, ApiError> {
    match get(obj, name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(v) => Err(invalid(
            name,
            format!("{name} must be a string, got {}", type_name(v)),
        )),
        None => Err(invalid(name, format!("{name} is required"))),
    }
}

/// An optional string.
pub fn opt_string(obj: &Map<String, Value>, name: &str) -> Result<Option<String>, ApiError> {
    match get(obj, name) {
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(invalid(
            name,
            format!("{name} must be a string, got {}", type_name(v)),
        )),
        None => Ok(None),
    }
}

/// An optional boolean.
pub fn opt_bool(obj: &Map<String, Value>, name: &str) -> Result<Option<bool>, ApiError> {
    match get(obj, name) {
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(invalid(
            name,
            format!("{name} must be a boolean, got {}", type_name(v)),
        )),
        None => Ok(None),
    }
}

/// An optional number.
pub fn opt_f64(obj: &Map<String, Value>, name: &str) -> Result<Option<f64>, ApiError> {
    match get(obj, name) {
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(v) => Err(invalid(
            name,
            format!("{name} must be a number, got {}", type_name(v)),
        )),
        None => Ok(None),
    }
}

/// An optional non-negative integer.
pub fn opt_u64(obj: &Map<String, Value>, name: &str) -> Result<Option<u64>, ApiError> {
    match get(obj, name) {
        Some(Value::Number(n)) => match n.as_u64() {
            Some(x) => Ok(Some(x)),
            None => Err(invalid(
                name,
                format!("{name} must be a non-negative integer, got {n}"),
            )),
        },
        Some(v) => Err(invalid(
            name,
            format!("{name} must be an integer, got {}", type_name(v)),
        )),
        None => Ok(None),
    }
}

/// An optional integer (negative allowed).
pub fn opt_i64(obj: &Map<String, Value>, name: &str) -> Result<Option<i64>, ApiError> {
    match get(obj, name) {
        Some(Value::Number(n)) => match n.as_i64() {
            Some(x) => Ok(Some(x)),
            None => Err(invalid(name, format!("{name} must be an integer, got {n}"))),
        },
        Some(v) => Err(invalid(
            name,
            format!("{name} must be an integer, got {}", type_name(v)),
        )),
        None => Ok(None),
    }
}

/// An optional integer ≥ 1, as u32 (values above u32::MAX saturate; the caller checks its
/// own limit).
pub fn opt_positive_u32(obj: &Map<String, Value>, name: &str) -> Result<Option<u32>, ApiError> {
    match opt_u64(obj, name)? {
        Some(0) => Err(invalid(name, format!("{name} must be at least 1"))),
        Some(x) => Ok(Some(u32::try_from(x).unwrap_or(u32::MAX))),
        None => Ok(None),
    }
}

/// A string or an array of strings (`stop`).
pub fn opt_string_or_list(obj: &Map<String, Value>, name: &str) -> Result<Vec<String>, ApiError> {
    match get(obj, name) {
        None => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(invalid(
                    name,
                    format!("{name}[{i}] must be a string, got {}", type_name(other)),
                )),
            })
            .collect(),
        Some(v) => Err(invalid(
            name,
            format!(
                "{name} must be a string or an array of strings, got {}",
                type_name(v)
            ),
        )),
    }
}

/// Text inputs: a string or an array of strings. Token arrays (`[1, 2]`, `[[1, 2]]`) are
/// refused with a message saying so: Switchyard tokenises on the agent, per model.
pub fn text_inputs(obj: &Map<String, Value>, name: &str) -> Result<Vec<String>, ApiError> {
    let token_msg = || {
        invalid(
            name,
            format!(
                "token-array {name} is not supported: send text (a string or an array of strings); Switchyard tokenises with each model's own tokenizer"
            ),
        )
    };
    match get(obj, name) {
        None => Err(invalid(name, format!("{name} is required"))),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, v) in items.iter().enumerate() {
                match v {
                    Value::String(s) => out.push(s.clone()),
                    Value::Number(_) | Value::Array(_) => return Err(token_msg()),
                    other => {
                        return Err(invalid(
                            name,
                            format!("{name}[{i}] must be a string, got {}", type_name(other)),
                        ));
                    }
                }
            }
            Ok(out)
        }
        Some(Value::Number(_)) => Err(token_msg()),
        Some(v) => Err(invalid(
            name,
            format!(
                "{name} must be a string or an array of strings, got {}",
                type_name(v)
            ),
        )),
    }
}

/// True when `v` asks for nothing (`null`, `false`, `""`, `[]`, `{}`, `0`).
pub fn asks_nothing(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(n) => n.as_f64() == Some(0.0),
    }
}

/// Refuses every field of `obj` that is not in `allowed`, naming it `{at}{field}` (param
/// and message). A field listed in `unsupported` (name, reason) is refused with its reason,
/// unless its value asks for nothing ([`asks_nothing`]): doing nothing is acting on it.
pub fn only(
    obj: &Map<String, Value>,
    at: &str,
    allowed: &[&str],
    unsupported: &[(&str, &str)],
) -> Result<(), ApiError> {
    for (key, value) in obj {
        if allowed.contains(&key.as_str()) {
            continue;
        }
        let name = format!("{at}{key}");
        match unsupported.iter().find(|(k, _)| k == key) {
            Some(_) if asks_nothing(value) => {}
            Some((_, why)) => return Err(invalid(&name, format!("{name}: {why}"))),
            None => {
                return Err(invalid(
                    &name,
                    format!(
                        "unknown field '{name}' (accepted here: {})",
                        allowed.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The retrieval asked for by field `name` of `obj` (`prefix` names it in errors, e.g.
/// `options.`): absent none, `false` refused outright (`off`: not even by a `+docs` name or
/// the tier's default), `true` the defaults, or an object of `top_k` (1..=64),
/// `collection`, `min_score` (-1..1).
pub fn retrieval(
    obj: &Map<String, Value>,
    name: &str,
    prefix: &str,
) -> Result<Option<switchyard_proto::v1::Retrieval>, ApiError> {
    use switchyard_proto::v1::Retrieval;
    let at = format!("{prefix}{name}");
    let o = match get(obj, name) {
        None => return Ok(None),
        Some(Value::Bool(false)) => {
            return Ok(Some(Retrieval {
                off: true,
                ..Retrieval::default()
            }));
        }
        Some(Value::Bool(true)) => return Ok(Some(Retrieval::default())),
        Some(Value::Object(o)) => o,
        Some(v) => {
            return Err(invalid(
                &at,
                format!(
                    "{at} must be true, false or an object, got {}",
                    type_name(v)
                ),
            ));
        }
    };
    only(
        o,
        &format!("{at}."),
        &["top_k", "collection", "min_score"],
        &[],
    )?;
    let in_it = |e: ApiError| invalid(&at, format!("{at}: {}", e.message));
    let top_k = opt_u64(o, "top_k").map_err(in_it)?.unwrap_or(0);
    if top_k > 64 {
        return Err(invalid(
            &at,
            format!("{at}.top_k must be at most 64, got {top_k}"),
        ));
    }
    let min_score = opt_f64(o, "min_score").map_err(in_it)?;
    if min_score.is_some_and(|s| !(-1.0..=1.0).contains(&s)) {
        return Err(invalid(
            &at,
            format!("{at}.min_score must be between -1 and 1"),
        ));
    }
    Ok(Some(Retrieval {
        top_k: top_k as u32,
        collection: opt_string(o, "collection")
            .map_err(in_it)?
            .unwrap_or_default(),
        min_score: min_score.map(|s| s as f32),
        off: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn retrieval_is_true_false_or_an_object_with_known_keys() {
        let body = |v: Value| json!({ "retrieval": v }).as_object().unwrap().clone();
        assert_eq!(retrieval(&Map::new(), "retrieval", "").unwrap(), None);
        assert!(
            retrieval(&body(json!(false)), "retrieval", "")
                .unwrap()
                .is_some_and(|r| r.off)
        );
        assert_eq!(
            retrieval(&body(json!(true)), "retrieval", "")
                .unwrap()
                .unwrap()
                .top_k,
            0
        );
        let r = retrieval(
            &body(json!({"top_k": 3, "collection": "docs"})),
            "retrieval",
            "",
        )
        .unwrap()
        .unwrap();
        assert_eq!((r.top_k, r.collection.as_str()), (3, "docs"));
        for (v, why) in [
            (json!("yes"), "must be true, false or an object"),
            (json!({"k": 3}), "unknown field 'options.retrieval.k'"),
            (json!({"top_k": 1000}), "at most 64"),
            (json!({"min_score": 2}), "between -1 and 1"),
        ] {
            let e = retrieval(&body(v), "retrieval", "options.").unwrap_err();
            assert!(e.message.contains(why), "{}", e.message);
        }
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn text_inputs_accept_text_and_refuse_tokens() {
        let o = obj(
            json!({"a": "x", "b": ["x", "y"], "c": [1, 2], "d": [[1]], "e": [true], "f": null}),
        );
        assert_eq!(text_inputs(&o, "a").unwrap(), vec!["x"]);
        assert_eq!(text_inputs(&o, "b").unwrap(), vec!["x", "y"]);
        assert!(
            text_inputs(&o, "c")
                .unwrap_err()
                .message
                .contains("token-array")
        );
        assert!(
            text_inputs(&o, "d")
                .unwrap_err()
                .message
                .contains("token-array")
        );
        assert!(text_inputs(&o, "e").unwrap_err().message.contains("e[0]"));
        assert!(
            text_inputs(&o, "f")
                .unwrap_err()
                .message
                .contains("required")
        );
    }

    #[test]
    fn only_names_the_unknown_or_unsupported_field() {
        let o = obj(json!({"a": 1, "tools": [], "b": 2}));
        let e = only(&o, "", &["a"], &[("tools", "no tools")]).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("b"));
        assert!(e.message.contains("unknown field 'b'"), "{}", e.message);
        let o = obj(json!({"tools": [{"type": "function"}]}));
        let e = only(&o, "x.", &[], &[("tools", "no tools")]).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("x.tools"));
        assert_eq!(e.message, "x.tools: no tools");
        let o = obj(json!({"tools": [], "n": 0, "s": "", "f": false, "z": null}));
        let empty = [("tools", ""), ("n", ""), ("s", ""), ("f", ""), ("z", "")];
        assert!(only(&o, "", &[], &empty).is_ok());
    }

    #[test]
    fn scalars_are_typed() {
        let o = obj(json!({"t": "hot", "n": -1, "m": 0, "s": ["a", 1], "ok": 5}));
        assert!(
            opt_f64(&o, "t")
                .unwrap_err()
                .message
                .contains("must be a number")
        );
        assert!(
            opt_u64(&o, "n")
                .unwrap_err()
                .message
                .contains("non-negative")
        );
        assert!(
            opt_positive_u32(&o, "m")
                .unwrap_err()
                .message
                .contains("at least 1")
        );
        assert!(
            opt_string_or_list(&o, "s")
                .unwrap_err()
                .message
                .contains("s[1]")
        );
        assert_eq!(opt_positive_u32(&o, "ok").unwrap(), Some(5));
        assert_eq!(opt_bool(&o, "absent").unwrap(), None);
    }
}

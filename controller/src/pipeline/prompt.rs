//! Prompt building: the system message (model prompt + retrieved context) and the user's
//! question.

use switchyard_proto::v1::ChatMessage;

/// The system message of a pipeline request: the model's own system prompt (if any) followed
/// by the retrieved context (if any).
pub fn system_message(system_prompt: Option<&str>, context: &[String]) -> Option<ChatMessage> {
    let mut content = system_prompt.unwrap_or_default().to_string();
    if !context.is_empty() {
        if !content.is_empty() {
            content.push_str("\n\n");
        }
        content.push_str("Use this context if it is relevant:\n");
        for c in context {
            content.push_str("- ");
            content.push_str(c);
            content.push('\n');
        }
    }
    (!content.is_empty()).then(|| ChatMessage {
        role: "system".into(),
        content,
        ..Default::default()
    })
}

pub fn last_user_message(messages: &[ChatMessage]) -> String {
    messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| m.content.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_message_joins_prompt_and_context() {
        assert_eq!(system_message(None, &[]), None);
        let m = system_message(Some("Be brief."), &[]).unwrap();
        assert_eq!(m.content, "Be brief.");
        let m = system_message(Some("Be brief."), &["doc one".into()]).unwrap();
        assert_eq!(
            m.content,
            "Be brief.\n\nUse this context if it is relevant:\n- doc one\n"
        );
        let m = system_message(None, &["a".into(), "b".into()]).unwrap();
        assert_eq!(m.content, "Use this context if it is relevant:\n- a\n- b\n");
        assert_eq!(m.role, "system");
    }
}

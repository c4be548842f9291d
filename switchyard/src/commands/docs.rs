//! `switchyard docs add`: documents for the controller's retrieval index.

use anyhow::Result;
use switchyard_proto::v1::AddDocumentsRequest;
use switchyard_proto::v1::inference_client::InferenceClient;

use super::{authorized, controller_channel};
use crate::args::{DocsAction, DocsArgs};

/// Embeds and indexes the documents; prints their ids.
pub async fn run(args: &DocsArgs) -> Result<()> {
    match &args.action {
        DocsAction::Add { texts, client } => {
            let token = &client.token;
            let mut client = InferenceClient::new(controller_channel(&client.controller).await?);
            let ids = client
                .add_documents(authorized(
                    AddDocumentsRequest {
                        documents: texts.clone(),
                    },
                    token.as_deref(),
                )?)
                .await
                .map_err(|s| {
                    anyhow::anyhow!("adding documents failed ({:?}): {}", s.code(), s.message())
                })?
                .into_inner()
                .ids;
            println!("added {} document(s): ids {:?}", ids.len(), ids);
            Ok(())
        }
    }
}

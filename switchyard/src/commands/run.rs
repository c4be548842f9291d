//! `switchyard run`: a prompt through the pipeline, with the answer and its trace.

use std::time::Duration;

use anyhow::Result;
use serde_json::json;
use switchyard_proto::v1::{PipelineRequest, PipelineResponse, SamplingParams};

use super::pipeline;
use crate::args::{Output, RunArgs};
use crate::output::{self, stage_name, table};

/// Sends the prompt and prints the answer with its trace.
pub async fn run(args: &RunArgs) -> Result<()> {
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        anyhow::bail!("--timeout must be a positive number of seconds");
    }
    let req = PipelineRequest {
        prompt: args.prompt.clone(),
        sampling: Some(SamplingParams {
            max_tokens: args.max_tokens,
            temperature: args.temperature,
            top_p: 1.0,
            ..Default::default()
        }),
        retrieve: args.retrieve,
        top_k: args.top_k.unwrap_or(0),
        explain_only: false,
        collection: args.collection.clone().unwrap_or_default(),
        min_score: args.min_score,
    };
    let resp = pipeline(
        &args.client.controller,
        req,
        Duration::from_secs_f64(args.timeout),
        args.client.token.as_deref(),
    )
    .await?;
    match args.output {
        Output::Json => output::print_json(&answer_json(&resp))?,
        Output::Table => print!("{}", answer_table(&resp)),
    }
    Ok(())
}

fn answer_json(resp: &PipelineResponse) -> serde_json::Value {
    let trace: Vec<_> = resp
        .trace
        .iter()
        .map(|t| {
            let mut v = json!({"stage": stage_name(t.stage), "model": t.model, "node": t.node, "device": t.device_id,
                   "backend": t.backend, "queue_ms": t.queue_ms, "compute_ms": t.compute_ms,
                   "retries": t.retries, "batch_size": t.batch_size, "simulated": t.simulated,
                   "precision": t.precision});
            if !t.retrieved.is_empty() {
                v["retrieved"] = t
                    .retrieved
                    .iter()
                    .map(|c| json!({"document_id": c.document_id, "chunk": c.chunk, "score": c.score}))
                    .collect();
            }
            v
        })
        .collect();
    json!({
        "tier": resp.tier, "model": resp.model, "text": resp.text,
        "context_documents": resp.context_documents,
        "retrieved": resp.retrieved.iter().map(super::docs::chunk_json).collect::<Vec<_>>(),
        "prompt_tokens": resp.prompt_tokens, "completion_tokens": resp.completion_tokens,
        "trace": trace,
    })
}

fn answer_table(resp: &PipelineResponse) -> String {
    let mut out = format!(
        "{}\n\ntier: {}   model: {}   tokens: {} prompt + {} completion\n",
        resp.text.trim(),
        resp.tier,
        resp.model,
        resp.prompt_tokens,
        resp.completion_tokens
    );
    let rows: Vec<Vec<String>> = resp
        .trace
        .iter()
        .map(|t| {
            let mut device = t.device_id.clone();
            if t.simulated {
                device.push_str(" [simulated]");
            }
            vec![
                stage_name(t.stage).to_string(),
                t.model.clone(),
                t.node.clone(),
                device,
                t.backend.clone(),
                t.precision.clone(),
                format!("{:.1}", t.queue_ms),
                format!("{:.1}", t.compute_ms),
                t.retries.to_string(),
            ]
        })
        .collect();
    out.push_str(&table::render(
        &[
            "STAGE",
            "MODEL",
            "NODE",
            "DEVICE",
            "BACKEND",
            "PRECISION",
            "QUEUE MS",
            "COMPUTE MS",
            "RETRIES",
        ],
        &rows,
    ));
    if !resp.retrieved.is_empty() {
        out.push_str("\nretrieved context:\n");
        out.push_str(&super::docs::chunks_table(&resp.retrieved));
    }
    out
}

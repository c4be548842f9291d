//! Dispatch: reaching agents ([`AgentPool`]), the one rule that classifies a failure
//! ([`Failure`]), and the one retry loop every stage runs through ([`run`]).

mod failure;
mod pool;
mod retry;

pub use failure::{Failure, Scope};
pub use pool::{AgentPool, AgentRpc, AgentService, TransportError, in_process};
pub use retry::{Attempt, AttemptContext, Failed, Observed, deadline_error, remaining, run};

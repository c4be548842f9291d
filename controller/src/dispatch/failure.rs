//! The one retry rule: what a failed attempt means for the request and for the target.
//!
//! Every error an attempt can meet — a gRPC status from the agent, a timeout, a broken
//! stream — becomes a [`Failure`] here: its class (the shared error table), its scope (what
//! it says about the cluster: nothing, one device, or the whole node) and whether another
//! device may succeed where this one failed.
//!
//! Node scope means one thing: the agent could not be reached (a transport error, connection
//! refused, a stream cut off). An agent that answers with an error about one of its devices
//! marks it so ([`switchyard_proto::errors::is_device_scoped`]): a model that fails to load
//! or compile on a GPU excludes that GPU, and the node's CPU stays eligible.

use switchyard_proto::errors::{ErrorClass, is_device_scoped};
use tonic::Status;

/// What a failure says about the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The request itself is at fault (bad input, unknown model): nothing is charged.
    Request,
    /// The device failed (runtime error, timeout, full queue): its breaker is charged and the
    /// retry goes to another device.
    Device,
    /// The node's agent is unreachable: every device of the node is charged and excluded.
    Node,
}

/// A classified failure of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// Class in the shared error table.
    pub class: ErrorClass,
    /// What is charged.
    pub scope: Scope,
    /// True when the same request may succeed on another device.
    pub retry: bool,
}

impl Failure {
    /// The rule, by error class, for a failure nobody marked (see [`Failure::from_status`]).
    pub fn of_class(class: ErrorClass) -> Failure {
        let (scope, retry) = match class {
            // The request is wrong: the same request fails everywhere.
            ErrorClass::InvalidArgument
            | ErrorClass::NotFound
            | ErrorClass::AlreadyExists
            | ErrorClass::Unauthenticated
            | ErrorClass::PermissionDenied => (Scope::Request, false),
            // Unmarked Unavailable is what the transport reports when the agent cannot be
            // reached: try another node.
            ErrorClass::Unavailable => (Scope::Node, true),
            // This device cannot serve the model, is full, slow or failed at run time: try
            // another device.
            ErrorClass::FailedPrecondition
            | ErrorClass::ResourceExhausted
            | ErrorClass::DeadlineExceeded
            | ErrorClass::Internal => (Scope::Device, true),
        };
        Failure {
            class,
            scope,
            retry,
        }
    }

    /// The rule applied to a gRPC status from an agent call: by class, except that a status
    /// the agent marked as concerning its device is never charged to the whole node (the
    /// agent answered, so it is reachable).
    pub fn from_status(status: &Status) -> Failure {
        let mut failure = Failure::of_class(ErrorClass::from_grpc(status.code()));
        if failure.scope == Scope::Node && is_device_scoped(status) {
            failure.scope = Scope::Device;
        }
        failure
    }

    /// An attempt that ran past its adaptive timeout (the request deadline still ahead).
    pub fn timed_out() -> Failure {
        Failure::of_class(ErrorClass::DeadlineExceeded)
    }

    /// The same failure met on an attached engine: the agent answered, only the engine
    /// behind it failed, so a node-wide scope narrows to that one pseudo-device (the node's
    /// own devices stay candidates for the retry).
    pub fn on_engine(self) -> Failure {
        Failure {
            scope: match self.scope {
                Scope::Node => Scope::Device,
                other => other,
            },
            ..self
        }
    }

    /// The same failure, but final: charged as usual, never retried (a sampled stream that
    /// already sent text cannot be resumed).
    pub fn final_(self) -> Failure {
        Failure {
            retry: false,
            ..self
        }
    }

    /// The devices of `node_devices` (the target's node) this failure charges, given the
    /// device that failed.
    pub fn charged<'a>(&self, device: &'a String, node_devices: &'a [String]) -> &'a [String] {
        match self.scope {
            Scope::Request => &[],
            Scope::Device => std::slice::from_ref(device),
            Scope::Node => node_devices,
        }
    }
}

#[cfg(test)]
mod tests;

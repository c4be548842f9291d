use super::*;
use tonic::Code;

/// Every class of the error table, with the scope and retry the rule must give it.
const TABLE: &[(Code, ErrorClass, Scope, bool)] = &[
    (
        Code::InvalidArgument,
        ErrorClass::InvalidArgument,
        Scope::Request,
        false,
    ),
    (Code::NotFound, ErrorClass::NotFound, Scope::Request, false),
    (
        Code::AlreadyExists,
        ErrorClass::AlreadyExists,
        Scope::Request,
        false,
    ),
    (
        Code::Unauthenticated,
        ErrorClass::Unauthenticated,
        Scope::Request,
        false,
    ),
    (
        Code::PermissionDenied,
        ErrorClass::PermissionDenied,
        Scope::Request,
        false,
    ),
    (
        Code::Unavailable,
        ErrorClass::Unavailable,
        Scope::Node,
        true,
    ),
    (Code::Cancelled, ErrorClass::Unavailable, Scope::Node, true),
    (
        Code::FailedPrecondition,
        ErrorClass::FailedPrecondition,
        Scope::Device,
        true,
    ),
    (
        Code::ResourceExhausted,
        ErrorClass::ResourceExhausted,
        Scope::Device,
        true,
    ),
    (
        Code::DeadlineExceeded,
        ErrorClass::DeadlineExceeded,
        Scope::Device,
        true,
    ),
    (Code::Internal, ErrorClass::Internal, Scope::Device, true),
    (Code::Unknown, ErrorClass::Internal, Scope::Device, true),
];

#[test]
fn from_status_gives_every_class_its_scope_and_retry() {
    for &(code, class, scope, retry) in TABLE {
        let f = Failure::from_status(&Status::new(code, "x"));
        assert_eq!(
            f,
            Failure {
                class,
                scope,
                retry
            },
            "{code:?}"
        );
    }
    // Every class of the shared table is covered above.
    for class in [
        ErrorClass::InvalidArgument,
        ErrorClass::NotFound,
        ErrorClass::AlreadyExists,
        ErrorClass::ResourceExhausted,
        ErrorClass::Unavailable,
        ErrorClass::FailedPrecondition,
        ErrorClass::DeadlineExceeded,
        ErrorClass::Unauthenticated,
        ErrorClass::PermissionDenied,
        ErrorClass::Internal,
    ] {
        assert!(TABLE.iter().any(|r| r.1 == class), "{class:?} not covered");
    }
    assert_eq!(Failure::timed_out().scope, Scope::Device);
}

#[test]
fn only_an_unreachable_agent_is_charged_to_the_node() {
    // The transport's Unavailable (connection refused, agent gone): the node.
    let unreachable = Status::unavailable("tcp connect error: Connection refused");
    assert_eq!(Failure::from_status(&unreachable).scope, Scope::Node);
    // The agent answered about one device (a model that does not compile on its GPU): that
    // device only, still retried elsewhere, same class for the client.
    let compile = ErrorClass::Unavailable.device_status("cannot compile for GPU.0");
    let f = Failure::from_status(&compile);
    assert_eq!(
        f,
        Failure {
            class: ErrorClass::Unavailable,
            scope: Scope::Device,
            retry: true
        }
    );
    // Every class the agent may mark keeps its own scope when narrower.
    for (code, class) in [
        (Code::InvalidArgument, ErrorClass::InvalidArgument),
        (Code::Internal, ErrorClass::Internal),
        (Code::FailedPrecondition, ErrorClass::FailedPrecondition),
    ] {
        let marked = class.device_status("x");
        assert_eq!(marked.code(), code);
        assert_eq!(
            Failure::from_status(&marked).scope,
            Failure::of_class(class).scope,
            "{class:?}"
        );
    }
}

#[test]
fn scope_decides_which_devices_are_charged() {
    let node = vec!["cpu".to_string(), "gpu0".to_string()];
    let dev = "gpu0".to_string();
    let of = |c| Failure::of_class(c).charged(&dev, &node).to_vec();
    assert!(of(ErrorClass::InvalidArgument).is_empty());
    assert_eq!(of(ErrorClass::Internal), vec!["gpu0".to_string()]);
    assert_eq!(of(ErrorClass::Unavailable), node);
    let f = Failure::of_class(ErrorClass::Internal).final_();
    assert!(!f.retry);
    assert_eq!(f.scope, Scope::Device, "a final failure is still charged");
}

#[test]
fn on_an_attached_engine_an_unavailable_charges_only_its_pseudo_device() {
    let f = Failure::of_class(ErrorClass::Unavailable).on_engine();
    assert_eq!((f.scope, f.retry), (Scope::Device, true));
    let node = vec!["cpu".to_string(), "endpoint:b".to_string()];
    let ep = "endpoint:b".to_string();
    assert_eq!(f.charged(&ep, &node), std::slice::from_ref(&ep));
    // Request-scoped failures stay the request's.
    let bad = Failure::of_class(ErrorClass::InvalidArgument).on_engine();
    assert_eq!((bad.scope, bad.retry), (Scope::Request, false));
}

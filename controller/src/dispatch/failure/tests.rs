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
        ErrorClass::Unauthenticated,
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
        Scope::Node,
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
        ErrorClass::Internal,
    ] {
        assert!(TABLE.iter().any(|r| r.1 == class), "{class:?} not covered");
    }
    assert_eq!(Failure::timed_out().scope, Scope::Device);
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

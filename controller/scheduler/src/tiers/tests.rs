use super::*;
use crate::{
    BreakerConfig, CircuitBreakers, ClusterView, DeviceView, LatencyConfig, LatencyStats, NodeView,
    PlacementPolicy,
};
use switchyard_backend_core::DeviceType;

const GB: u64 = 1_000_000_000;

fn t(name: &str) -> Tier {
    name.parse().unwrap()
}

fn names(order: Vec<Tier>) -> Vec<String> {
    order.into_iter().map(String::from).collect()
}

#[test]
fn built_in_orders_and_names() {
    let routes = TierRoutes::default();
    assert_eq!(
        names(routes.fallback_order(&Tier::heavy())),
        ["heavy", "code", "fast"]
    );
    assert_eq!(
        names(routes.fallback_order(&Tier::code())),
        ["code", "heavy", "fast"]
    );
    assert_eq!(
        names(routes.fallback_order(&Tier::fast())),
        ["fast", "code", "heavy"]
    );
    for n in Tier::BUILT_IN {
        assert_eq!(n.parse::<Tier>().unwrap().as_str(), n);
        assert!(t(n).is_built_in());
    }
    for bad in ["", "Fast", "-x", "a b", "x".repeat(33).as_str(), "tier!"] {
        let err = bad.parse::<Tier>().unwrap_err().to_string();
        assert!(err.contains("invalid tier name"), "{bad}: {err}");
    }
    assert!(!t("sql").is_built_in());
}

#[test]
fn user_tiers_fall_back_to_their_list_then_built_ins_then_each_other() {
    let mut routes = TierRoutes::default();
    routes.push(t("sql"), "sqlcoder");
    routes.push(t("german"), "leo");
    routes.push(t("vision"), "llava");
    routes.push(Tier::fast(), "small");
    assert_eq!(routes.models(&t("sql")), ["sqlcoder".to_string()]);
    assert!(routes.models(&Tier::heavy()).is_empty());
    assert_eq!(
        names(routes.fallback_order(&t("sql"))),
        ["sql", "fast", "code", "heavy", "german", "vision"]
    );
    routes.set_fallback(t("sql"), vec![Tier::code(), t("german")]);
    assert_eq!(
        names(routes.fallback_order(&t("sql"))),
        ["sql", "code", "german", "fast", "heavy", "vision"]
    );
    let tiers: Vec<&str> = routes.tiers().map(Tier::as_str).collect();
    assert_eq!(tiers, ["sql", "german", "vision", "fast"]);
    let json = serde_json::to_string(&t("sql")).unwrap();
    assert_eq!(json, "\"sql\"");
    assert!(serde_json::from_str::<Tier>("\"SQL\"").is_err());
}

fn view() -> ClusterView {
    // One node: a GPU with 4 GB and a CPU with 8 GB; the GPU is unhealthy later.
    let mut gpu = DeviceView::new("gpu0", DeviceType::NvidiaGpu);
    gpu.memory_total_bytes = 4 * GB;
    gpu.memory_free_bytes = 4 * GB;
    gpu.backends = vec!["ort-cuda".into()];
    let mut cpu = DeviceView::new("cpu", DeviceType::Cpu);
    cpu.memory_total_bytes = 8 * GB;
    cpu.memory_free_bytes = 8 * GB;
    cpu.backends = vec!["ort-cpu".into()];
    ClusterView::new(vec![NodeView::new("n", vec![gpu, cpu])]).unwrap()
}

#[test]
fn falls_back_when_a_tier_has_no_healthy_device() {
    let mut v = view();
    let policy = PlacementPolicy::default();
    let breakers = CircuitBreakers::new(BreakerConfig::default());
    let latency = LatencyStats::new(LatencyConfig::default());
    let mut routes = TierRoutes::default();
    routes.push(Tier::heavy(), "big");
    routes.push(Tier::code(), "coder");
    routes.push(Tier::fast(), "small");
    // big: 3 GB, CUDA only. coder: 20 GB (fits nowhere). small: 0.5 GB anywhere.
    let demand = |m: &str| match m {
        "big" => Some(ModelDemand {
            memory_bytes: 3 * GB,
            backends: Some(vec!["ort-cuda".into()]),
            precision: Default::default(),
        }),
        "coder" => Some(ModelDemand {
            memory_bytes: 20 * GB,
            backends: None,
            precision: Default::default(),
        }),
        "small" => Some(ModelDemand {
            memory_bytes: GB / 2,
            backends: None,
            precision: Default::default(),
        }),
        _ => None,
    };
    let now = Instant::now();
    let ctx = |v: &ClusterView| {
        choose_model(
            Tier::heavy(),
            &routes,
            &PlacementContext {
                view: v,
                policy: &policy,
                breakers: &breakers,
                latency: &latency,
            },
            demand,
            now,
        )
    };
    let c = ctx(&v).unwrap();
    assert_eq!((c.model.as_str(), c.tier_used), ("big", Tier::heavy()));

    v.update_device("n", "gpu0", |d| d.healthy = false);
    let c = ctx(&v).unwrap();
    assert_eq!((c.model.as_str(), c.tier_used), ("small", Tier::fast()));
    assert_eq!(c.requested, Tier::heavy());
    assert_eq!(c.placement.best().unwrap().device, "cpu");

    v.set_node_ready("n", false);
    routes.push(Tier::code(), "ghost");
    let ctx = PlacementContext {
        view: &v,
        policy: &policy,
        breakers: &breakers,
        latency: &latency,
    };
    let err = choose_model(Tier::code(), &routes, &ctx, demand, now).unwrap_err();
    let order: Vec<_> = err.tried.iter().map(|s| s.model.as_str()).collect();
    assert_eq!(order, ["coder", "ghost", "big", "small"]);
    assert_eq!(err.tried[1].why, "no registry entry");
    assert!(
        err.to_string().contains("code/coder: no eligible device"),
        "{err}"
    );
}

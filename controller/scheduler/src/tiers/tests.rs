use super::*;
use crate::{
    BreakerConfig, CircuitBreakers, ClusterView, DeviceView, LatencyConfig, LatencyStats, NodeView,
    PlacementPolicy,
};
use switchyard_backend_core::DeviceType;

const GB: u64 = 1_000_000_000;

#[test]
fn orders_and_names() {
    assert_eq!(
        fallback_order(Tier::Heavy),
        [Tier::Heavy, Tier::Code, Tier::Fast]
    );
    assert_eq!(
        fallback_order(Tier::Code),
        [Tier::Code, Tier::Heavy, Tier::Fast]
    );
    assert_eq!(
        fallback_order(Tier::Fast),
        [Tier::Fast, Tier::Code, Tier::Heavy]
    );
    for t in Tier::ALL {
        assert_eq!(t.as_str().parse::<Tier>(), Ok(t));
        assert_eq!(fallback_order(t)[0], t);
    }
    assert!(
        "huge"
            .parse::<Tier>()
            .unwrap_err()
            .to_string()
            .contains("huge")
    );
    let r: TierRoutes = toml::from_str("heavy = [\"big\"]\nfast = [\"small\"]").unwrap();
    assert_eq!(r.models(Tier::Heavy), ["big".to_string()]);
    assert!(r.models(Tier::Code).is_empty());
    assert!(toml::from_str::<TierRoutes>("huge = []").is_err());
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
    routes.push(Tier::Heavy, "big");
    routes.push(Tier::Code, "coder");
    routes.push(Tier::Fast, "small");
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
            Tier::Heavy,
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
    assert_eq!((c.model.as_str(), c.tier_used), ("big", Tier::Heavy));

    v.update_device("n", "gpu0", |d| d.healthy = false);
    let c = ctx(&v).unwrap();
    assert_eq!((c.model.as_str(), c.tier_used), ("small", Tier::Fast));
    assert_eq!(c.requested, Tier::Heavy);
    assert_eq!(c.placement.best().unwrap().device, "cpu");

    v.set_node_ready("n", false);
    routes.push(Tier::Code, "ghost");
    let ctx = PlacementContext {
        view: &v,
        policy: &policy,
        breakers: &breakers,
        latency: &latency,
    };
    let err = choose_model(Tier::Code, &routes, &ctx, demand, now).unwrap_err();
    let order: Vec<_> = err.tried.iter().map(|s| s.model.as_str()).collect();
    assert_eq!(order, ["coder", "ghost", "big", "small"]);
    assert_eq!(err.tried[1].why, "no registry entry");
    assert!(
        err.to_string().contains("code/coder: no eligible device"),
        "{err}"
    );
}

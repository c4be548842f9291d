use super::*;

#[test]
fn defaults_follow_the_issue() {
    let p = PlacementPolicy::default();
    p.validate().unwrap();
    use DeviceType::*;
    assert_eq!(p.stage_preferences.classify, vec![IntelNpu, Cpu, Ncs2]);
    assert_eq!(
        p.stage_preferences.embed,
        vec![IntelNpu, IntelGpu, NvidiaGpu, Cpu]
    );
    assert_eq!(
        p.stage_preferences.generate,
        vec![NvidiaGpu, IntelGpu, VulkanGpu, Cpu, IntelNpu]
    );
    let r = p.kind_ranks(StageKind::Classify);
    assert_eq!(r[kind_index(IntelNpu)], Some(0));
    assert_eq!(r[kind_index(Cpu)], Some(1));
    assert_eq!(
        r[kind_index(Ncs2)],
        Some(2),
        "the NCS2 after the devices that run now"
    );
    assert_eq!(r[kind_index(NvidiaGpu)], Some(3), "unlisted ranks last");
    assert!(!p.allow_simulated, "fixture devices only when asked for");
    assert!(
        p.weights.kind_step > p.weights.others_max(),
        "one kind step outweighs every other term together"
    );
}

#[test]
fn toml_overrides_and_rejects_unknown_keys() {
    let p: PlacementPolicy = toml::from_str(
        r#"
        mode = "pack"
        memory_headroom_ratio = 0.2
        allow_unlisted_kinds = false
        [stage_preferences]
        classify = ["cpu"]
        [backend_preferences]
        cpu = ["ort-cpu"]
        [weights]
        warm = 20.0
        "#,
    )
    .unwrap();
    p.validate().unwrap();
    assert_eq!(p.mode, PlacementMode::Pack);
    assert_eq!(p.stage_preferences.classify, vec![DeviceType::Cpu]);
    assert_eq!(
        p.stage_preferences.generate,
        StagePreferences::default().generate
    );
    assert_eq!(p.backend_preferences.cpu, vec!["ort-cpu".to_string()]);
    assert_eq!(p.weights.warm, 20.0);
    assert_eq!(p.weights.kind_step, 20.0);
    let r = p.kind_ranks(StageKind::Classify);
    assert_eq!(r[kind_index(DeviceType::Ncs2)], None);

    let err = toml::from_str::<PlacementPolicy>("modee = \"pack\"").unwrap_err();
    assert!(err.to_string().contains("modee"), "{err}");
    let err =
        toml::from_str::<PlacementPolicy>("[stage_preferences]\nclassify = [\"tpu\"]").unwrap_err();
    assert!(err.to_string().contains("tpu"), "{err}");
    assert!(toml::from_str::<PlacementPolicy>("[weights]\nwarmth = 1.0").is_err());
}

#[test]
fn validate_reports_the_bad_value() {
    let p = PlacementPolicy {
        memory_headroom_ratio: 1.0,
        ..Default::default()
    };
    assert_eq!(p.validate(), Err(PolicyError::Headroom(1.0)));
    let mut p = PlacementPolicy::default();
    p.weights.queue = -1.0;
    assert!(
        p.validate()
            .unwrap_err()
            .to_string()
            .contains("weights.queue")
    );
    let mut p = PlacementPolicy::default();
    p.stage_preferences.embed = vec![DeviceType::Cpu, DeviceType::Cpu];
    assert_eq!(
        p.validate(),
        Err(PolicyError::DuplicateKind {
            stage: "embed",
            kind: "cpu"
        })
    );
}

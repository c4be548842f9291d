use super::*;

fn figure() -> DeviceTops {
    DeviceTops {
        int8_tops: 46.08,
        detail: "OpenVINO DEVICE_GOPS of GPU.0: 46080 GOPS (i8)".into(),
    }
}

#[test]
fn a_device_figure_fills_an_unknown_model_and_is_noted_beside_a_catalog_one() {
    // Unknown to the catalog: the runtime's figure becomes the TOPS, labelled as such.
    let mut d = Device {
        id: "pci-0000:03:00.0".into(),
        tops: Some(Tops {
            int8_tops: 0.0,
            source: TopsSource::Unknown as i32,
            detail: "not in the catalog".into(),
        }),
        ..Default::default()
    };
    apply_device_tops(&mut d, "openvino", figure());
    let t = d.tops.clone().unwrap();
    assert_eq!(t.source(), TopsSource::DeviceProperty);
    assert_eq!(t.int8_tops, 46.08);
    assert!(t.detail.contains("DEVICE_GOPS"), "{}", t.detail);

    // A catalog figure stays; the runtime's is noted in the detail.
    let mut d = Device {
        tops: Some(Tops {
            int8_tops: 262.0,
            source: TopsSource::Catalog as i32,
            detail: "Intel Arc A770 spec sheet".into(),
        }),
        ..Default::default()
    };
    apply_device_tops(&mut d, "openvino", figure());
    let t = d.tops.unwrap();
    assert_eq!((t.source(), t.int8_tops), (TopsSource::Catalog, 262.0));
    assert!(
        t.detail
            .starts_with("Intel Arc A770 spec sheet; openvino reports 46.1 TOPS"),
        "{}",
        t.detail
    );
}

#[test]
fn no_usable_backend_is_one_note_naming_each_missing_library_once() {
    let mut set = BackendSet::default();
    let ort = "runtime library unavailable: ONNX Runtime not found (libonnxruntime.so.1*)";
    set.unavailable = vec![
        ("ort-cpu".into(), ort.into()),
        ("ort-cuda".into(), ort.into()),
        (
            "openvino".into(),
            "runtime library unavailable: OpenVINO not found".into(),
        ),
    ];
    let note = no_backend(&set).expect("a note when nothing is usable");
    assert_eq!(note.matches("ONNX Runtime not found").count(), 1, "{note}");
    assert!(note.contains("OpenVINO not found"), "{note}");
    assert!(note.starts_with("no inference backend usable"), "{note}");
}

/// A stand-in for OpenVINO on an Intel NPU (none here): the tiny probe passes, and each
/// model's own probe answers what `runs` says — what the real NPU plugin decides.
struct RecordedNpuBackend {
    runs: &'static [&'static str],
}

impl switchyard_backend_core::Backend for RecordedNpuBackend {
    fn id(&self) -> &'static str {
        "openvino"
    }
    fn probe(
        &self,
        _: &DeviceRef,
    ) -> Result<Vec<switchyard_backend_core::Precision>, switchyard_backend_core::BackendError>
    {
        Ok(vec![switchyard_backend_core::Precision::F16])
    }
    fn load(
        &self,
        spec: &switchyard_backend_core::ModelSpec,
        device: &DeviceRef,
    ) -> Result<Box<dyn switchyard_backend_core::LoadedModel>, switchyard_backend_core::BackendError>
    {
        Err(switchyard_backend_core::BackendError::DeviceUnsupported {
            backend: "openvino".into(),
            device: device.id.clone(),
            reason: format!("{} not loadable in this test", spec.name),
        })
    }
    fn probe_model(
        &self,
        spec: &switchyard_backend_core::ModelSpec,
        device: &DeviceRef,
    ) -> Result<(), switchyard_backend_core::BackendError> {
        if self.runs.contains(&spec.name.as_str()) {
            Ok(())
        } else {
            Err(switchyard_backend_core::BackendError::DeviceUnsupported {
                backend: "openvino".into(),
                device: device.id.clone(),
                reason: "NPU computes at f16 when asked for f32".into(),
            })
        }
    }
}

fn npu_after_probe(runs: &'static [&'static str], models: &ModelRegistry) -> Device {
    let mut set = BackendSet::default();
    set.push(std::sync::Arc::new(RecordedNpuBackend { runs }));
    let mut devices = vec![Device {
        id: "npu0".into(),
        kind: switchyard_proto::v1::DeviceKind::IntelNpu as i32,
        ..Default::default()
    }];
    probe_backends(&set, &mut devices, Some(models));
    devices.remove(0)
}

#[test]
fn an_npu_is_probed_with_the_registry_models_and_unusable_when_none_runs_recorded_npu() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["m.onnx", "t.json"] {
        std::fs::write(dir.path().join(f), b"x").unwrap();
    }
    let models = ModelRegistry::parse(
        "[[model]]\nname = \"enc\"\nstage = \"embed\"\nonnx = \"m.onnx\"\ntokenizer = \"t.json\"\n\
         memory_bytes = 1\nmax_input_tokens = 8\n",
        std::path::Path::new("r.toml"),
        dir.path(),
    )
    .unwrap();
    // The tiny probe passes, but the registry's model does not run: unusable, and why.
    let d = npu_after_probe(&[], &models);
    let b = &d.backends[0];
    assert!(!b.usable, "{b:?}");
    assert!(
        b.reason.contains("enc: ") && b.reason.contains("f16 when asked for f32"),
        "{}",
        b.reason
    );
    assert_eq!(b.precisions, vec!["f16".to_string()]);
    // It runs: usable.
    let d = npu_after_probe(&["enc"], &models);
    assert!(d.backends[0].usable, "{:?}", d.backends[0]);
}

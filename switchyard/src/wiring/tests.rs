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

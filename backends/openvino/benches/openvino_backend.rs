//! Placeholder benchmark target for the OpenVINO backend: it measures nothing yet.

fn main() {}

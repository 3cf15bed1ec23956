//! `deploy/crd.yaml` is what `spiffile-operator crds` prints: regenerate it
//! with `cargo run -p spiffile-operator -- crds > deploy/crd.yaml`.

#[test]
fn deploy_crd_yaml_matches_the_types() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/crd.yaml");
    let committed = std::fs::read_to_string(path).expect("deploy/crd.yaml");
    let generated = spiffile_operator::crd::crds_yaml().expect("the CRDs render");
    assert!(
        committed == generated,
        "deploy/crd.yaml drifted from the Rust types; regenerate it with\n  cargo run -p spiffile-operator -- crds > deploy/crd.yaml"
    );
}

#[test]
fn the_chart_carries_the_same_crds() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../charts/spiffile-operator/crds/crd.yaml"
    );
    let committed = std::fs::read_to_string(path).expect("charts/spiffile-operator/crds/crd.yaml");
    let generated = spiffile_operator::crd::crds_yaml().expect("the CRDs render");
    assert!(
        committed == generated,
        "the chart's CRDs drifted; copy deploy/crd.yaml to charts/spiffile-operator/crds/crd.yaml"
    );
}

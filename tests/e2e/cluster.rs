//! Issue 2 end to end: a controller and three agents as real processes on loopback.
//! `status` lists three ready nodes; `kill -9` of an agent makes it `lost` within 3 s; a
//! controller restart brings the surviving agents back to `ready` within 2 s without
//! restarting them; a duplicate node name is refused.

use std::time::Duration;

use switchyard_e2e::{Proc, run_cli, states, status_json, wait_for};

fn ready_names(grpc: &str) -> Vec<String> {
    status_json(grpc)
        .map(|nodes| {
            states(&nodes)
                .into_iter()
                .filter(|(_, s)| s == "ready")
                .map(|(n, _)| n)
                .collect()
        })
        .unwrap_or_default()
}

fn start_agent(grpc: &str, name: &str) -> Proc {
    Proc::start(
        name,
        &[
            "agent",
            "--controller",
            &format!("http://{grpc}"),
            "--node-name",
            name,
            "--agent-listen",
            "127.0.0.1:0",
        ],
    )
    .unwrap_or_else(|e| panic!("agent {name}: {e}"))
}

#[test]
fn three_agents_register_lost_on_kill_recover_after_controller_restart_and_duplicates_refused() {
    let controller = Proc::start(
        "controller",
        &[
            "controller",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ],
    )
    .expect("controller starts");
    let grpc = controller
        .field("grpc")
        .expect("grpc address in ready line");

    let mut agents: Vec<Proc> = ["node-a", "node-b", "node-c"]
        .iter()
        .map(|n| start_agent(&grpc, n))
        .collect();

    let (ready, _) = wait_for(Duration::from_secs(10), || {
        let r = ready_names(&grpc);
        (r.len() == 3).then_some(r)
    })
    .unwrap_or_else(|| panic!("3 ready nodes expected; status: {:?}", status_json(&grpc)));
    assert_eq!(ready, vec!["node-a", "node-b", "node-c"]);

    // Status JSON carries the live inventory: each agent reports at least the CPU.
    let nodes = status_json(&grpc).unwrap();
    for n in &nodes {
        let devices = n["devices"].as_array().expect("devices array");
        assert!(
            devices
                .iter()
                .any(|d| d["kind"] == "cpu" && d["memory_total_bytes"].as_u64().unwrap_or(0) > 0),
            "node {} reports no CPU device: {n}",
            n["name"]
        );
    }
    // The table form is readable and lists every node.
    let (ok, table, _) = run_cli(&["status", "--controller", &format!("http://{grpc}")]).unwrap();
    assert!(ok.success());
    assert!(table.starts_with("NODE"), "{table}");
    assert!(table.contains("3 node(s), 3 ready"), "{table}");

    // A second agent claiming a live node's name is refused and exits with a clear error.
    let dup = run_cli(&[
        "agent",
        "--controller",
        &format!("http://{grpc}"),
        "--node-name",
        "node-b",
        "--agent-listen",
        "127.0.0.1:0",
    ])
    .unwrap();
    assert!(!dup.0.success(), "duplicate agent must fail");
    assert!(
        dup.2
            .contains("node name 'node-b' is already held by a live agent"),
        "stderr: {}",
        dup.2
    );
    assert_eq!(
        ready_names(&grpc).len(),
        3,
        "the original node-b is untouched"
    );

    // kill -9 one agent: lost within 3 s.
    agents[1].kill9();
    let lost = wait_for(Duration::from_secs(3), || {
        let nodes = status_json(&grpc).ok()?;
        states(&nodes)
            .into_iter()
            .find(|(n, s)| n == "node-b" && s == "lost")
    });
    assert!(
        lost.is_some(),
        "node-b not lost within 3 s: {:?}",
        status_json(&grpc)
    );

    // Restart the controller on the same port: the surviving agents re-register by
    // themselves within 2 s.
    let mut controller = controller;
    controller.kill9();
    let controller2 = Proc::start(
        "controller-2",
        &[
            "controller",
            "--listen",
            &grpc,
            "--http-listen",
            "127.0.0.1:0",
        ],
    )
    .expect("controller restarts on the same port");
    let back = wait_for(Duration::from_secs(2), || {
        let r = ready_names(&grpc);
        (r == vec!["node-a".to_string(), "node-c".to_string()]).then_some(r)
    });
    assert!(
        back.is_some(),
        "agents not ready within 2 s after restart: {:?}\nagent-a stderr:\n{}",
        status_json(&grpc),
        agents[0].stderr()
    );
    assert!(
        agents[0].alive() && agents[2].alive(),
        "agents were not restarted"
    );
    drop(controller2);
}

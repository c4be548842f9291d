//! Where the agent runs: bare metal, a VM (Proxmox/KVM, detected through DMI), an LXC or
//! Docker container (`/run/systemd/container`, `/proc/1/environ`, `/proc/self/cgroup`,
//! `/.dockerenv`), plus hostname, OS and kernel for [`HostFacts`].

use switchyard_proto::v1::HostFacts;

use crate::fsutil::Root;

/// What the environment probe found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Environment {
    /// `bare-metal`, `proxmox-vm`, `kvm`, `vmware`, `virtualbox`, `hyper-v`, `xen`, `vm`.
    pub virtualization: String,
    /// `""`, `lxc`, `docker`, `podman`, `kubernetes`, or what systemd reports.
    pub container: String,
}

/// Detects virtualization and container.
pub fn detect(root: &Root, cpu_flags_hypervisor: bool) -> Environment {
    Environment {
        virtualization: virtualization(root, cpu_flags_hypervisor),
        container: container(root),
    }
}

fn virtualization(root: &Root, hypervisor_flag: bool) -> String {
    let dmi: Vec<String> = [
        "sys_vendor",
        "product_name",
        "product_version",
        "board_vendor",
        "bios_vendor",
        "chassis_vendor",
    ]
    .iter()
    .filter_map(|f| root.read(format!("/sys/class/dmi/id/{f}")))
    .map(|s| s.to_ascii_lowercase())
    .collect();
    let any = |needle: &str| dmi.iter().any(|v| v.contains(needle));
    if any("proxmox") {
        "proxmox-vm".into()
    } else if any("qemu") || any("kvm") {
        "kvm".into()
    } else if any("vmware") {
        "vmware".into()
    } else if any("virtualbox") || any("innotek") {
        "virtualbox".into()
    } else if any("microsoft corporation") && any("virtual") {
        "hyper-v".into()
    } else if any("xen") {
        "xen".into()
    } else if hypervisor_flag {
        // A hypervisor without DMI (e.g. Firecracker, cloud-hypervisor).
        "vm".into()
    } else {
        "bare-metal".into()
    }
}

fn container(root: &Root) -> String {
    if let Some(c) = root
        .read("/run/systemd/container")
        .filter(|c| !c.is_empty())
    {
        return normalize_container(&c);
    }
    if let Ok(env) = std::fs::read(root.path("/proc/1/environ")) {
        for var in env.split(|b| *b == 0) {
            if let Some(v) = var.strip_prefix(b"container=") {
                return normalize_container(&String::from_utf8_lossy(v));
            }
        }
    }
    if root.path("/.dockerenv").exists() {
        return "docker".into();
    }
    if let Some(cg) = root.read("/proc/self/cgroup") {
        if cg.contains("/lxc/") || cg.contains("lxc.payload") {
            return "lxc".into();
        }
        if cg.contains("kubepods") {
            return "kubernetes".into();
        }
        if cg.contains("/docker/") || cg.contains("docker-") {
            return "docker".into();
        }
    }
    String::new()
}

fn normalize_container(c: &str) -> String {
    match c.trim() {
        "lxc" | "lxc-libvirt" => "lxc".into(),
        "docker" => "docker".into(),
        "podman" | "oci" => "podman".into(),
        other => other.to_string(),
    }
}

/// Hostname, OS pretty name and kernel release.
pub fn host_facts(root: &Root, env: &Environment) -> HostFacts {
    let hostname = root
        .read("/proc/sys/kernel/hostname")
        .or_else(|| root.read("/etc/hostname"))
        .unwrap_or_default();
    let os = root
        .read("/etc/os-release")
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| std::env::consts::OS.to_string());
    let kernel = root.read("/proc/sys/kernel/osrelease").unwrap_or_default();
    HostFacts {
        hostname,
        os,
        kernel,
        virtualization: env.virtualization.clone(),
        container: env.container.clone(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (p, c) in files {
            let full = dir.path().join(p.trim_start_matches('/'));
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, c).unwrap();
        }
        dir
    }

    #[test]
    fn proxmox_and_qemu_vms() {
        let d = tree(&[
            ("/sys/class/dmi/id/sys_vendor", "QEMU\n"),
            (
                "/sys/class/dmi/id/product_name",
                "Standard PC (Q35 + ICH9, 2009)\n",
            ),
        ]);
        assert_eq!(detect(&Root::new(d.path()), true).virtualization, "kvm");
        let d = tree(&[
            ("/sys/class/dmi/id/sys_vendor", "Proxmox\n"),
            ("/sys/class/dmi/id/product_name", "VM\n"),
        ]);
        assert_eq!(
            detect(&Root::new(d.path()), true).virtualization,
            "proxmox-vm"
        );
        let d = tree(&[]);
        assert_eq!(
            detect(&Root::new(d.path()), false).virtualization,
            "bare-metal"
        );
        assert_eq!(detect(&Root::new(d.path()), true).virtualization, "vm");
    }

    #[test]
    fn containers() {
        let d = tree(&[("/proc/1/environ", "PATH=/bin\0container=lxc\0")]);
        assert_eq!(detect(&Root::new(d.path()), false).container, "lxc");
        let d = tree(&[("/proc/self/cgroup", "0::/lxc.payload.ct101/init.scope\n")]);
        assert_eq!(detect(&Root::new(d.path()), false).container, "lxc");
        let d = tree(&[("/.dockerenv", "")]);
        assert_eq!(detect(&Root::new(d.path()), false).container, "docker");
        let d = tree(&[("/proc/self/cgroup", "0::/\n")]);
        assert_eq!(detect(&Root::new(d.path()), false).container, "");
    }
}

//! Is a device node (`/dev/dri/renderD128`, `/dev/accel/accel0`, `/dev/nvidia0`,
//! `/dev/bus/usb/001/004`) usable by this process, and if not, what fixes it.
//!
//! Two checks, in order:
//! 1. Mode bits against the process identity (effective uid, gid, supplementary groups from
//!    `/proc/self/status`). Root skips this check (CAP_DAC_OVERRIDE) unless
//!    [`Identity::strict`] is set — fixtures set it so a captured `chmod 000` node is honoured
//!    even when the tests run as root.
//! 2. For real character devices, `open(O_RDWR|O_NONBLOCK)`: `EPERM` there means the device
//!    cgroup denies it (an LXC container without `lxc.cgroup2.devices.allow`), `EACCES` a
//!    permission problem (e.g. an LSM). Regular files (fixture stand-ins for device nodes) are
//!    not opened: their mode bits are the captured state.

use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};

use crate::fsutil::Root;

/// Who the discovering process is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Effective uid.
    pub uid: u32,
    /// Effective gid.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Evaluate mode bits even for root (fixtures).
    pub strict: bool,
}

impl Identity {
    /// The identity of this process, from `/proc/self/status` (uid/gid 0 and no groups when
    /// unreadable).
    pub fn current() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| -> Vec<u32> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|rest| {
                    rest.split_whitespace()
                        .filter_map(|t| t.parse().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        // "Uid: real effective saved fs"
        let uid = field("Uid:").get(1).copied().unwrap_or(0);
        let gid = field("Gid:").get(1).copied().unwrap_or(0);
        Self {
            uid,
            gid,
            groups: field("Groups:"),
            strict: false,
        }
    }

    fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

/// Outcome of checking one device node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeAccess {
    /// The node does not exist.
    Missing,
    /// Readable and writable.
    Ok,
    /// Mode bits or an LSM deny access: the remedy is group membership.
    PermissionDenied {
        /// Host path of the node.
        node: String,
        /// Human-readable fix.
        fix: String,
    },
    /// The device cgroup denies it (container without the device allowed).
    CgroupDenied {
        /// Host path of the node.
        node: String,
        /// Human-readable fix.
        fix: String,
    },
}

impl NodeAccess {
    /// The health reason for a device behind this node, `None` when usable or missing.
    pub fn reason(&self) -> Option<String> {
        match self {
            NodeAccess::Missing | NodeAccess::Ok => None,
            NodeAccess::PermissionDenied { node, fix } => Some(format!(
                "{node} is not accessible (permission denied): {fix}"
            )),
            NodeAccess::CgroupDenied { node, fix } => {
                Some(format!("{node} is blocked by the device cgroup: {fix}"))
            }
        }
    }
}

/// Conventional group, char major and LXC mount path for a node path.
fn conventions(host_path: &str) -> (&'static str, u32, &'static str) {
    if host_path.starts_with("/dev/dri/card") {
        ("video", 226, "/dev/dri")
    } else if host_path.starts_with("/dev/dri/") {
        ("render", 226, "/dev/dri")
    } else if host_path.starts_with("/dev/accel/") {
        ("render", 261, "/dev/accel")
    } else if host_path.starts_with("/dev/bus/usb/") {
        ("plugdev", 189, "/dev/bus/usb")
    } else if host_path.starts_with("/dev/nvidia") {
        ("video", 195, "/dev")
    } else {
        ("video", 0, "/dev")
    }
}

/// Name of a gid from `<root>/etc/group`.
fn group_name(root: &Root, gid: u32) -> Option<String> {
    let text = root.read("/etc/group")?;
    text.lines().find_map(|l| {
        let mut parts = l.split(':');
        let name = parts.next()?;
        let _pw = parts.next();
        let id: u32 = parts.next()?.parse().ok()?;
        (id == gid).then(|| name.to_string())
    })
}

/// The LXC lines that pass a device through.
pub fn lxc_fix(host_path: &str, major: Option<u32>) -> String {
    let (_, conv_major, mount) = conventions(host_path);
    let major = major.filter(|m| *m != 0).unwrap_or(conv_major);
    let rel = mount.trim_start_matches('/');
    if host_path.starts_with("/dev/nvidia") {
        format!(
            "add `lxc.cgroup2.devices.allow: c {major}:* rwm` (and the nvidia-uvm major) plus `lxc.mount.entry: {host_path} {} none bind,optional,create=file` on the Proxmox host",
            host_path.trim_start_matches('/')
        )
    } else {
        format!(
            "add `lxc.cgroup2.devices.allow: c {major}:* rwm` and `lxc.mount.entry: {mount} {rel} none bind,optional,create=dir` to the container config on the Proxmox host"
        )
    }
}

/// Checks one node given as a host path (resolved under `root`).
pub fn check_node(root: &Root, host_path: &str, id: &Identity) -> NodeAccess {
    let full = root.path(host_path);
    let Ok(meta) = std::fs::metadata(&full) else {
        return NodeAccess::Missing;
    };
    let (conv_group, _, _) = conventions(host_path);
    let mode = meta.mode();
    let bits = if id.uid == meta.uid() {
        (mode >> 6) & 0o7
    } else if id.in_group(meta.gid()) {
        (mode >> 3) & 0o7
    } else {
        mode & 0o7
    };
    let bits_ok = bits & 0o6 == 0o6;
    let root_bypass = id.uid == 0 && !id.strict;
    if !bits_ok && !root_bypass {
        let group = group_name(root, meta.gid())
            .filter(|g| g != "root")
            .unwrap_or_else(|| conv_group.to_string());
        return NodeAccess::PermissionDenied {
            node: host_path.to_string(),
            fix: format!(
                "mode {:04o} owner {}:{}; add the agent user to the `{group}` group (`usermod -aG {group} <agent-user>`, or `SupplementaryGroups={group}` in the systemd unit)",
                mode & 0o7777,
                meta.uid(),
                meta.gid()
            ),
        };
    }
    if meta.file_type().is_char_device() {
        let major = libc::major(meta.rdev());
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&full);
        if let Err(e) = opened {
            return match e.raw_os_error() {
                Some(libc::EPERM) => NodeAccess::CgroupDenied {
                    node: host_path.to_string(),
                    fix: lxc_fix(host_path, Some(major)),
                },
                Some(libc::EACCES) => NodeAccess::PermissionDenied {
                    node: host_path.to_string(),
                    fix: format!(
                        "open failed ({e}); add the agent user to the `{conv_group}` group or check the security policy (AppArmor/SELinux)"
                    ),
                },
                // ENXIO/ENODEV/EBUSY: the node exists but the device is gone or busy;
                // that is for the vendor library to report, not a permission problem.
                _ => NodeAccess::Ok,
            };
        }
    }
    NodeAccess::Ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn strict_mode_honours_mode_bits_even_for_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("dev/dri")).unwrap();
        let node = dir.path().join("dev/dri/renderD128");
        std::fs::write(&node, b"").unwrap();
        let root = Root::new(dir.path());
        let me = Identity {
            strict: true,
            ..Identity::current()
        };
        std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o660)).unwrap();
        assert_eq!(
            check_node(&root, "/dev/dri/renderD128", &me),
            NodeAccess::Ok
        );
        std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o000)).unwrap();
        let access = check_node(&root, "/dev/dri/renderD128", &me);
        let reason = access.reason().expect("denied");
        assert!(reason.contains("/dev/dri/renderD128"), "{reason}");
        assert!(reason.contains("`render` group"), "{reason}");
        assert_eq!(
            check_node(&root, "/dev/dri/renderD129", &me),
            NodeAccess::Missing
        );
    }

    #[test]
    fn other_users_fall_to_other_bits() {
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join("accel0");
        std::fs::write(&node, b"").unwrap();
        std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o660)).unwrap();
        let root = Root::new(dir.path());
        let stranger = Identity {
            uid: 54321,
            gid: 54321,
            groups: vec![],
            strict: false,
        };
        assert!(matches!(
            check_node(&root, "/accel0", &stranger),
            NodeAccess::PermissionDenied { .. }
        ));
    }

    #[test]
    fn lxc_fix_names_major_and_mount() {
        let f = lxc_fix("/dev/dri/renderD128", None);
        assert!(f.contains("c 226:* rwm"), "{f}");
        assert!(f.contains("lxc.mount.entry: /dev/dri dev/dri"), "{f}");
        assert!(lxc_fix("/dev/accel/accel0", None).contains("c 261:* rwm"));
        assert!(lxc_fix("/dev/bus/usb/001/004", None).contains("c 189:* rwm"));
    }
}

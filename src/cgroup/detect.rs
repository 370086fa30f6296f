//! Layout detection: cgroup v2 (unified) vs v1 (hybrid hosts such as this project's dev machine,
//! where `/sys/fs/cgroup` is a tmpfs of v1 mounts plus an empty cgroup2 at `unified`).
//!
//! Input is the root path plus the text of `/proc/self/mountinfo` (`proc(5)`), so fixtures can
//! describe any layout.

use std::path::{Path, PathBuf};

use super::{CgroupError, Hierarchy, Mode, read_file};

/// The v1 controllers podrun uses; `cpu` and `memory` are required.
const V1_CONTROLLERS: [(&str, bool); 5] = [
    ("cpu", true),
    ("cpuacct", false),
    ("devices", false),
    ("memory", true),
    ("pids", false),
];

/// One v1 hierarchy in use: its mount point and which of podrun's controllers it carries
/// (`cpu` and `cpuacct` share one entry when co-mounted as `cpu,cpuacct`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Mount {
    pub path: PathBuf,
    pub controllers: Vec<String>,
}

/// One line of mountinfo, reduced to what detection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub mount_point: PathBuf,
    pub fs_type: String,
    pub super_options: Vec<String>,
}

impl MountInfo {
    /// For a cgroup mount, its filesystem type and the options that name its hierarchy (the
    /// controllers and `name=`; not `rw`, `xattr`, `release_agent`...): what a second mount
    /// of the same hierarchy passes. `None` for any other filesystem.
    pub fn cgroup_hierarchy(&self) -> Option<(&str, String)> {
        match self.fs_type.as_str() {
            "cgroup2" => Some(("cgroup2", String::new())),
            "cgroup" => {
                let names: Vec<&str> = self
                    .super_options
                    .iter()
                    .map(String::as_str)
                    .filter(|o| {
                        o.starts_with("name=")
                            || !(o.contains('=')
                                || matches!(
                                    *o,
                                    "rw" | "ro"
                                        | "xattr"
                                        | "noprefix"
                                        | "clone_children"
                                        | "cpuset_v2_mode"
                                ))
                    })
                    .collect();
                Some(("cgroup", names.join(",")))
            }
            _ => None,
        }
    }
}

/// The cgroup hierarchy mounted at `path` (see [`MountInfo::cgroup_hierarchy`]): the first
/// cgroup or cgroup2 mount there.
pub fn cgroup_hierarchy_at(mounts: &[MountInfo], path: &Path) -> Option<(String, String)> {
    mounts
        .iter()
        .filter(|m| m.mount_point == path)
        .find_map(|m| {
            m.cgroup_hierarchy()
                .map(|(fs_type, options)| (fs_type.to_owned(), options))
        })
}

/// Parses `/proc/self/mountinfo` text; malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let mut right = right.split(' ');
            let fs_type = right.next()?.to_owned();
            let _source = right.next()?;
            let super_options = right
                .next()
                .unwrap_or("")
                .split(',')
                .map(str::to_owned)
                .collect();
            Some(MountInfo {
                mount_point: PathBuf::from(unescape(mount_point)),
                fs_type,
                super_options,
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if let Some(d) = octal {
            let v =
                u16::from(d[0] - b'0') * 64 + u16::from(d[1] - b'0') * 8 + u16::from(d[2] - b'0');
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn detect(root: &Path, mountinfo: &str) -> Result<Hierarchy, CgroupError> {
    let controllers_file = root.join("cgroup.controllers");
    if controllers_file.exists() {
        let available = read_file(&controllers_file)?;
        let have: Vec<&str> = available.split_whitespace().collect();
        let missing: Vec<&str> = ["cpu", "memory"]
            .into_iter()
            .filter(|c| !have.contains(c))
            .collect();
        if !missing.is_empty() {
            return Err(CgroupError::NoV2Controllers {
                root: root.to_owned(),
                available: available.trim().to_owned(),
                missing: missing.join(", "),
            });
        }
        return Ok(Hierarchy::v2(root));
    }

    let mounts = parse_mountinfo(mountinfo);
    let mut v1_mounts: Vec<V1Mount> = Vec::new();
    for (controller, required) in V1_CONTROLLERS {
        // `<root>/cpu` is often a symlink to `cpu,cpuacct`; compare canonical paths.
        let dir = root.join(controller);
        let canonical = dir.canonicalize().unwrap_or(dir);
        let mounted = mounts.iter().any(|m| {
            m.fs_type == "cgroup"
                && m.mount_point == canonical
                && m.super_options.iter().any(|o| o == controller)
        });
        if !mounted {
            if required {
                return Err(CgroupError::NoV1Controller {
                    root: root.to_owned(),
                    controller: controller.to_owned(),
                });
            }
            continue;
        }
        match v1_mounts.iter_mut().find(|m| m.path == canonical) {
            Some(m) => m.controllers.push(controller.to_owned()),
            None => v1_mounts.push(V1Mount {
                path: canonical,
                controllers: vec![controller.to_owned()],
            }),
        }
    }
    Ok(Hierarchy {
        mode: Mode::V1,
        root: root.to_owned(),
        v1_mounts,
    })
}

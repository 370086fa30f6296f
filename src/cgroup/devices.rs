//! Which device nodes a container may open or create: containerd's default rules (deny all,
//! then allow `/dev/null`, `zero`, `full`, `random`, `urandom`, `tty`, `console`, `ptmx` and
//! `/dev/pts/*`, each `rwm`: the `m` lets it `mknod` those and no other), or every device for a
//! `privileged` container. Kernel side: the v1 `devices` controller (`devices.deny`,
//! `devices.allow`, `Documentation/admin-guide/cgroup-v1/devices.rst`), or on v2 a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program attached to the container's cgroup, generated from the
//! rules as runc's `devicefilter` and youki's `devices` do (a few instructions per rule; no
//! crate: aya and friends bring a BPF toolchain for what is a 40-instruction program).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{CgroupError, write_file};
use crate::sys::bpf::{self, BpfInsn};

/// Who may use which devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceAccess {
    /// containerd's default rules.
    Default,
    /// `privileged: true`: every device (`a *:* rwm`).
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Char,
    Block,
}

/// One allow rule: a device type, a major and minor number (None: any), and the access
/// (`r`ead, `w`rite, `m`knod).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    pub kind: DeviceKind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: &'static str,
}

const fn char_dev(major: u32, minor: Option<u32>) -> DeviceRule {
    DeviceRule {
        kind: DeviceKind::Char,
        major: Some(major),
        minor,
        access: "rwm",
    }
}

/// containerd's `WithDefaultUnixDevices`, in its order.
pub const DEFAULT_RULES: [DeviceRule; 9] = [
    char_dev(1, Some(3)), // /dev/null
    char_dev(1, Some(8)), // /dev/random
    char_dev(1, Some(7)), // /dev/full
    char_dev(5, Some(0)), // /dev/tty
    char_dev(1, Some(5)), // /dev/zero
    char_dev(1, Some(9)), // /dev/urandom
    char_dev(5, Some(1)), // /dev/console
    char_dev(136, None),  // /dev/pts/*
    char_dev(5, Some(2)), // /dev/ptmx
];

impl DeviceRule {
    /// The rule as the v1 controller and `devices.list` write it: `c 1:3 rwm`, `c 136:* rwm`.
    pub fn v1_line(&self) -> String {
        let kind = match self.kind {
            DeviceKind::Char => 'c',
            DeviceKind::Block => 'b',
        };
        let num = |n: Option<u32>| n.map_or_else(|| "*".to_owned(), |n| n.to_string());
        format!(
            "{kind} {}:{} {}",
            num(self.major),
            num(self.minor),
            self.access
        )
    }
}

impl DeviceAccess {
    /// containerd's default rules, or every device for a `privileged` container.
    pub fn for_container(privileged: bool) -> DeviceAccess {
        if privileged {
            DeviceAccess::All
        } else {
            DeviceAccess::Default
        }
    }

    /// What `devices.list` of a v1 cgroup with these rules shows.
    pub fn v1_list(self) -> Vec<String> {
        match self {
            DeviceAccess::All => vec!["a *:* rwm".to_owned()],
            DeviceAccess::Default => DEFAULT_RULES.iter().map(DeviceRule::v1_line).collect(),
        }
    }

    /// The rules as the OCI runtime spec writes them (`linux.resources.devices`), as
    /// containerd's spec for runc has them.
    pub fn oci_rules(self) -> serde_json::Value {
        match self {
            DeviceAccess::All => serde_json::json!([{"allow": true, "access": "rwm"}]),
            DeviceAccess::Default => {
                let mut rules = vec![serde_json::json!({"allow": false, "access": "rwm"})];
                rules.extend(DEFAULT_RULES.iter().map(|r| {
                    let mut rule = serde_json::json!({
                        "allow": true,
                        "type": match r.kind { DeviceKind::Char => "c", DeviceKind::Block => "b" },
                        "access": r.access,
                    });
                    if let Some(major) = r.major {
                        rule["major"] = major.into();
                    }
                    if let Some(minor) = r.minor {
                        rule["minor"] = minor.into();
                    }
                    rule
                }));
                serde_json::Value::Array(rules)
            }
        }
    }

    /// v1: reset the cgroup `dir` (of the devices hierarchy) to deny everything, then allow
    /// the rules (or allow everything).
    pub(super) fn apply_v1(self, dir: &Path) -> Result<(), CgroupError> {
        match self {
            DeviceAccess::All => write_file(&dir.join("devices.allow"), "a"),
            DeviceAccess::Default => {
                write_file(&dir.join("devices.deny"), "a")?;
                for rule in &DEFAULT_RULES {
                    write_file(&dir.join("devices.allow"), &rule.v1_line())?;
                }
                Ok(())
            }
        }
    }

    /// v2: attach the rules' program to the cgroup `dir` unless one is attached already (the
    /// same container's earlier run: its rules do not change). Everything allowed needs none.
    pub(super) fn apply_v2(self, dir: &Path) -> Result<(), CgroupError> {
        if self == DeviceAccess::All {
            return Ok(());
        }
        let err = |err: std::io::Error| CgroupError::Write {
            path: dir.to_owned(),
            data: "a BPF_CGROUP_DEVICE filter (containerd's default devices)".into(),
            err,
        };
        let cgroup = std::fs::File::open(dir).map_err(err)?;
        use std::os::fd::AsFd;
        if bpf::device_programs_attached(cgroup.as_fd()).map_err(err)? > 0 {
            return Ok(());
        }
        let program = bpf::load_device_program(&program(&DEFAULT_RULES)).map_err(err)?;
        bpf::attach_device_program(cgroup.as_fd(), program.as_fd()).map_err(err)
    }
}

// eBPF opcodes (linux/bpf_common.h, linux/bpf.h).
const LDX_MEM_W: u8 = 0x61;
const ALU32_AND_K: u8 = 0x54;
const ALU32_RSH_K: u8 = 0x74;
const ALU32_MOV_X: u8 = 0xbc;
const ALU32_MOV_K: u8 = 0xb4;
const JMP_JNE_K: u8 = 0x55;
const JMP_EXIT: u8 = 0x95;
/// `struct bpf_cgroup_dev_ctx` (access_type = access << 16 | type, major, minor).
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> BpfInsn {
    BpfInsn {
        code,
        regs: (src << 4) | dst,
        off,
        imm,
    }
}

fn access_bits(access: &str) -> i32 {
    access.chars().fold(0, |bits, c| {
        bits | match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => 0,
        }
    })
}

/// The filter for `rules` (allow rules; anything else is denied): r2 = type, r3 = access,
/// r4 = major, r5 = minor; per rule a block that jumps to the next on a mismatch and returns 1
/// on a match; 0 at the end.
pub fn program(rules: &[DeviceRule]) -> Vec<BpfInsn> {
    let mut out = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU32_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU32_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    for rule in rules {
        // Jumps carry the index of the block's end here; fixed up below.
        let mut block: Vec<(BpfInsn, bool)> = Vec::new();
        let kind = match rule.kind {
            DeviceKind::Char => DEV_CHAR,
            DeviceKind::Block => DEV_BLOCK,
        };
        block.push((insn(JMP_JNE_K, 2, 0, 0, kind), true));
        let allowed = access_bits(rule.access);
        if allowed != ACC_READ | ACC_WRITE | ACC_MKNOD {
            block.push((insn(ALU32_MOV_X, 1, 3, 0, 0), false));
            block.push((insn(ALU32_AND_K, 1, 0, 0, !allowed), false));
            block.push((insn(JMP_JNE_K, 1, 0, 0, 0), true));
        }
        if let Some(major) = rule.major {
            block.push((insn(JMP_JNE_K, 4, 0, 0, major as i32), true));
        }
        if let Some(minor) = rule.minor {
            block.push((insn(JMP_JNE_K, 5, 0, 0, minor as i32), true));
        }
        block.push((insn(ALU32_MOV_K, 0, 0, 0, 1), false));
        block.push((insn(JMP_EXIT, 0, 0, 0, 0), false));
        let len = block.len();
        for (i, (mut ins, jumps)) in block.into_iter().enumerate() {
            if jumps {
                ins.off = (len - i - 1) as i16;
            }
            out.push(ins);
        }
    }
    out.push(insn(ALU32_MOV_K, 0, 0, 0, 0));
    out.push(insn(JMP_EXIT, 0, 0, 0, 0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a device filter on one access, as the kernel would (only the opcodes used here).
    fn run(program: &[BpfInsn], kind: i32, access: i32, major: u32, minor: u32) -> u32 {
        let ctx = [((access as u32) << 16) | kind as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = program[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => r[dst] = u64::from(ctx[(i.off / 4) as usize]),
                ALU32_AND_K => r[dst] = u64::from((r[dst] as u32) & (i.imm as u32)),
                ALU32_RSH_K => r[dst] = u64::from((r[dst] as u32) >> i.imm),
                ALU32_MOV_X => r[dst] = u64::from(r[src] as u32),
                ALU32_MOV_K => r[dst] = u64::from(i.imm as u32),
                JMP_JNE_K => {
                    if r[dst] != i.imm as i64 as u64 {
                        pc += i.off as usize;
                    }
                }
                JMP_EXIT => return r[0] as u32,
                other => panic!("opcode {other:#x}"),
            }
        }
    }

    #[test]
    fn the_default_filter_allows_what_containerd_allows() {
        let p = program(&DEFAULT_RULES);
        let rw = ACC_READ | ACC_WRITE;
        assert_eq!(run(&p, DEV_CHAR, rw, 1, 3), 1, "/dev/null");
        assert_eq!(run(&p, DEV_CHAR, ACC_MKNOD, 1, 9), 1, "mknod /dev/urandom");
        assert_eq!(run(&p, DEV_CHAR, rw, 136, 7), 1, "/dev/pts/7");
        assert_eq!(run(&p, DEV_CHAR, rw, 5, 2), 1, "/dev/ptmx");
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 1), 0, "/dev/mem");
        assert_eq!(run(&p, DEV_CHAR, ACC_READ, 1, 11), 0, "/dev/kmsg");
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 0), 0, "/dev/sda");
        assert_eq!(
            run(&p, DEV_BLOCK, ACC_MKNOD, 8, 0),
            0,
            "mknod of a block device"
        );
        assert_eq!(
            run(&p, DEV_BLOCK, ACC_READ, 1, 3),
            0,
            "a block device 1:3 is not null"
        );
    }

    #[test]
    fn partial_access_rules_check_every_bit() {
        let rules = [DeviceRule {
            kind: DeviceKind::Block,
            major: None,
            minor: None,
            access: "m",
        }];
        let p = program(&rules);
        assert_eq!(run(&p, DEV_BLOCK, ACC_MKNOD, 8, 0), 1);
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ, 8, 0), 0);
        assert_eq!(run(&p, DEV_BLOCK, ACC_READ | ACC_MKNOD, 8, 0), 0);
        assert_eq!(run(&p, DEV_CHAR, ACC_MKNOD, 8, 0), 0);
    }

    #[test]
    fn v1_lines_read_as_devices_list_prints_them() {
        assert_eq!(
            DeviceAccess::Default.v1_list(),
            [
                "c 1:3 rwm",
                "c 1:8 rwm",
                "c 1:7 rwm",
                "c 5:0 rwm",
                "c 1:5 rwm",
                "c 1:9 rwm",
                "c 5:1 rwm",
                "c 136:* rwm",
                "c 5:2 rwm"
            ]
        );
        assert_eq!(DeviceAccess::All.v1_list(), ["a *:* rwm"]);
    }
}

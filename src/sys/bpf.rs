//! The bpf(2) calls for a cgroup v2 device filter: load a `BPF_PROG_TYPE_CGROUP_DEVICE`
//! program, attach it to a cgroup, count what is attached. The program itself is made by
//! `cgroup::devices` (as runc's `devicefilter` and youki's do, from the rules); no helper
//! functions are called, so any licence string will do (runc's is "Apache").

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

/// One eBPF instruction (`struct bpf_insn`): opcode, dst and src registers (4 bits each),
/// offset, immediate.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BpfInsn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Several programs may be attached along the hierarchy; all must allow (runc attaches so).
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The `BPF_PROG_LOAD` part of `union bpf_attr` (the kernel takes a shorter attr whose tail
/// it does not know as zero).
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

#[repr(C)]
#[derive(Default)]
struct ProgQueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a #[repr(C)] prefix of `union bpf_attr` for `cmd`, valid and writable
    // for the call; the kernel reads (and for queries writes) at most size_of::<T>() bytes.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc)
}

/// Load `program` as a cgroup device filter; the kernel's verifier log is in the error.
pub fn load_device_program(program: &[BpfInsn]) -> io::Result<OwnedFd> {
    let license = c"Apache";
    let mut log = vec![0u8; 16 * 1024];
    let mut attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: program.len() as u32,
        insns: program.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        ..Default::default()
    };
    attr.prog_name[..7].copy_from_slice(b"podrun\0");
    match bpf(BPF_PROG_LOAD, &mut attr) {
        Ok(fd) => super::owned_fd(fd),
        Err(e) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let verifier = String::from_utf8_lossy(&log[..end]).trim().to_owned();
            Err(io::Error::new(
                e.kind(),
                format!("load the device filter: {e}; verifier: {verifier}"),
            ))
        }
    }
}

/// Attach device filter `program` to the cgroup directory `cgroup` (it stays attached while
/// the cgroup exists: the program's descriptor may be closed).
pub fn attach_device_program(cgroup: BorrowedFd<'_>, program: BorrowedFd<'_>) -> io::Result<()> {
    let mut attr = ProgAttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: program.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    bpf(BPF_PROG_ATTACH, &mut attr).map(|_| ())
}

/// How many device filters are attached to the cgroup directory `cgroup` itself.
pub fn device_programs_attached(cgroup: BorrowedFd<'_>) -> io::Result<u32> {
    let mut attr = ProgQueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr)?;
    Ok(attr.prog_cnt)
}

//! `podrun-pause`: the pod sandbox holder, podrun's equivalent of Kubernetes' `pause.c`.
//!
//! The supervisor creates the pod's network, UTS and IPC namespaces (unshare + sethostname in the
//! forked child) and then execs this program, whose only jobs are to keep those namespaces alive,
//! to exit 0 on SIGINT/SIGTERM and to reap any child it inherits (it is PID 1 when the pod shares
//! a PID namespace). Everything else is ignored.
//!
//! It is a freestanding static binary (no libc, no std runtime) so that it costs well under 1 MiB
//! of resident memory per pod: a std binary already touches about 1.1 MiB (measured). Signals are
//! taken synchronously with `rt_sigtimedwait` on a blocked set, so no handler and no signal
//! trampoline is needed; blocked signals are never dropped by the kernel, even for a namespace init.
#![cfg_attr(not(test), no_std)]
#![cfg_attr(not(test), no_main)]

// `cargo test --all-targets` builds every binary as a test harness, which needs std; the
// freestanding program exists only in normal builds.
#[cfg(test)]
fn main() {}

#[cfg(not(test))]
mod freestanding {
    use core::arch::global_asm;

    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    compile_error!("podrun-pause supports x86_64 and aarch64");

    const SIGINT: usize = 2;
    const SIGKILL: usize = 9;
    const SIGTERM: usize = 15;
    const SIGCHLD: usize = 17;
    const SIGSTOP: usize = 19;
    const SIG_BLOCK: usize = 0;
    const SIG_IGN: usize = 1;
    const WNOHANG: usize = 1;

    #[cfg(target_arch = "x86_64")]
    mod nr {
        pub const WRITE: usize = 1;
        pub const RT_SIGACTION: usize = 13;
        pub const RT_SIGPROCMASK: usize = 14;
        pub const WAIT4: usize = 61;
        pub const RT_SIGTIMEDWAIT: usize = 128;
        pub const EXIT_GROUP: usize = 231;
    }
    #[cfg(target_arch = "aarch64")]
    mod nr {
        pub const WRITE: usize = 64;
        pub const RT_SIGACTION: usize = 134;
        pub const RT_SIGPROCMASK: usize = 135;
        pub const WAIT4: usize = 260;
        pub const RT_SIGTIMEDWAIT: usize = 137;
        pub const EXIT_GROUP: usize = 94;
    }

    #[cfg(target_arch = "x86_64")]
    global_asm!(
        ".globl _start",
        "_start:",
        "mov rdi, rsp",
        "and rsp, -16",
        "call pause_main",
        "ud2"
    );
    #[cfg(target_arch = "aarch64")]
    global_asm!(
        ".globl _start",
        "_start:",
        "mov x0, sp",
        "bl pause_main",
        "brk #0"
    );

    /// Raw 4-argument system call. The kernel ABI is the whole contract here.
    #[cfg(target_arch = "x86_64")]
    fn syscall4(n: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
        let ret: isize;
        // SAFETY: a plain Linux system call; every pointer argument passed by callers below points
        // to live stack memory of the right size for that call.
        unsafe {
            core::arch::asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a, in("rsi") b,
                in("rdx") c, in("r10") d, lateout("rcx") _, lateout("r11") _, options(nostack));
        }
        ret
    }
    #[cfg(target_arch = "aarch64")]
    fn syscall4(n: usize, a: usize, b: usize, c: usize, d: usize) -> isize {
        let ret: isize;
        // SAFETY: as above, a plain Linux system call with valid pointer arguments.
        unsafe {
            core::arch::asm!("svc 0", in("x8") n, inlateout("x0") a as isize => ret, in("x1") b,
                in("x2") c, in("x3") d, options(nostack));
        }
        ret
    }

    fn write_err(msg: &[u8]) {
        syscall4(nr::WRITE, 2, msg.as_ptr() as usize, msg.len(), 0);
    }

    fn exit(code: usize) -> ! {
        loop {
            syscall4(nr::EXIT_GROUP, code, 0, 0, 0);
        }
    }

    /// Kernel `struct sigaction` layout for rt_sigaction (handler, flags, restorer, mask).
    #[repr(C)]
    struct KernelSigaction {
        handler: usize,
        flags: usize,
        restorer: usize,
        mask: u64,
    }

    fn bit(sig: usize) -> u64 {
        1u64 << (sig - 1)
    }

    /// True for `-v` or `-V`, like pause.c (which prints its version and exits 0).
    fn is_version_flag(arg: *const u8) -> bool {
        // SAFETY: `arg` is NUL-terminated; each byte is read only after the previous one was not NUL.
        unsafe { *arg == b'-' && matches!(*arg.add(1), b'v' | b'V') && *arg.add(2) == 0 }
    }

    /// Entry point; `sp` is the initial stack: argc, argv[0..argc], NULL, envp...
    ///
    /// # Safety
    /// Called once from `_start` with the kernel-provided initial stack pointer.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn pause_main(sp: *const usize) -> ! {
        // SAFETY: the System V initial stack holds argc followed by argc valid C-string pointers.
        let argc = unsafe { *sp };
        for i in 1..argc {
            // SAFETY: i < argc, so argv[i] is a valid NUL-terminated string.
            let arg = unsafe { *sp.add(1 + i) } as *const u8;
            if is_version_flag(arg) {
                let v = concat!("podrun-pause ", env!("CARGO_PKG_VERSION"), "\n");
                syscall4(nr::WRITE, 1, v.as_ptr() as usize, v.len(), 0);
                exit(0);
            }
        }

        // Ignore every catchable signal except the ones we wait for.
        let waited = bit(SIGINT) | bit(SIGTERM) | bit(SIGCHLD);
        for sig in 1..=64usize {
            if sig == SIGKILL
                || sig == SIGSTOP
                || waited & bit(sig) != 0
                || (32..=34).contains(&sig)
            {
                continue;
            }
            let act = KernelSigaction {
                handler: SIG_IGN,
                flags: 0,
                restorer: 0,
                mask: 0,
            };
            syscall4(nr::RT_SIGACTION, sig, &act as *const _ as usize, 0, 8);
        }
        let set: u64 = waited;
        if syscall4(
            nr::RT_SIGPROCMASK,
            SIG_BLOCK,
            &set as *const u64 as usize,
            0,
            8,
        ) < 0
        {
            write_err(b"podrun-pause: rt_sigprocmask failed\n");
            exit(1);
        }
        let mut info = core::mem::MaybeUninit::<[u64; 16]>::uninit(); // siginfo_t is 128 bytes
        loop {
            let sig = syscall4(
                nr::RT_SIGTIMEDWAIT,
                &set as *const u64 as usize,
                info.as_mut_ptr() as usize,
                0,
                8,
            );
            match sig as usize {
                SIGCHLD => while syscall4(nr::WAIT4, usize::MAX, 0, WNOHANG, 0) > 0 {},
                SIGINT => {
                    write_err(b"Shutting down, got signal: Interrupt\n");
                    exit(0)
                }
                SIGTERM => {
                    write_err(b"Shutting down, got signal: Terminated\n");
                    exit(0)
                }
                _ => {} // EINTR or a spurious wake-up: wait again.
            }
        }
    }

    // `core` is prebuilt with unwinding tables and refers to a personality routine, which is never
    // called here (panics abort); this definition only satisfies the linker.
    #[unsafe(no_mangle)]
    pub extern "C" fn rust_eh_personality() {}

    /// Freestanding `memset` (debug builds lower some stack initialisations to it). Volatile writes
    /// keep the compiler from turning this loop back into a call to itself.
    ///
    /// # Safety
    /// `dst` must be valid for `n` bytes of writes.
    #[unsafe(no_mangle)]
    pub unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
        for i in 0..n {
            // SAFETY: the caller guarantees `dst..dst+n` is writable.
            unsafe { dst.add(i).write_volatile(c as u8) };
        }
        dst
    }

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo) -> ! {
        write_err(b"podrun-pause: internal error\n");
        exit(42)
    }
}

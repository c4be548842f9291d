//! Engine processes die with the agent: the child asks the kernel for SIGKILL when its parent
//! goes (`prctl(PR_SET_PDEATHSIG)`), so an agent killed with -9 leaves no `llama-server`
//! holding memory. Unsafe code only here: the one libc call, made between fork and exec.
#![allow(unsafe_code)]

/// Makes the process `cmd` spawns get SIGKILL when the spawning thread's process exits.
pub(super) fn die_with_parent(cmd: &mut tokio::process::Command) {
    // SAFETY: the closure runs in the forked child before exec; it only calls prctl, which is
    // async-signal-safe, and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

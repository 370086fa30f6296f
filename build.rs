//! Link `podrun-pause` as a freestanding static executable (it brings its own `_start`), and
//! `podrun` and `podrun-init` as position-dependent executables: every podrun command and every
//! container start execs one of them, and a PIE of this size first applies ~22,000 relative
//! relocations (~0.3 ms, and copies of the pages they touch) before `main`.
fn main() {
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-Wl,--gc-sections",
        "-Wl,-z,norelro",
    ] {
        println!("cargo::rustc-link-arg-bin=podrun-pause={arg}");
    }
    for bin in ["podrun", "podrun-init"] {
        println!("cargo::rustc-link-arg-bin={bin}=-no-pie");
    }
    println!("cargo::rerun-if-changed=build.rs");
}

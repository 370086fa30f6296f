//! Link `podrun-pause` as a freestanding static executable (it brings its own `_start`).
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
    println!("cargo::rerun-if-changed=build.rs");
}

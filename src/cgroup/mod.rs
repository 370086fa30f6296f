//! cgroups (filled in by the cgroup work).

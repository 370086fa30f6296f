//! Manifests (filled in by the spec work).

//! When an image is pulled: a container's `imagePullPolicy` as the kubelet applies it, with
//! podrun's own rule that images of this machine's namespaces are never pulled.

use super::Reference;

/// Domains of images made on this machine (`podrun image import`), never pulled (podman treats
/// `localhost/` so).
pub const LOCAL_DOMAINS: [&str; 2] = ["podrun.local", "localhost"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Ask the registry at every container start (the default for no tag or `:latest`).
    Always,
    /// Pull only what the store lacks (the default for a tagged image).
    IfNotPresent,
    /// Never pull: the store must have it (`ErrImageNeverPull`).
    Never,
}

impl PullPolicy {
    /// The policy for `reference` by the container's `imagePullPolicy` (already defaulted by
    /// the spec); an image of a local domain is `Never` pulled.
    pub fn of(policy: &str, reference: &Reference) -> PullPolicy {
        if LOCAL_DOMAINS.contains(&reference.domain.as_str()) {
            return PullPolicy::Never;
        }
        match policy {
            "Always" => PullPolicy::Always,
            "Never" => PullPolicy::Never,
            _ => PullPolicy::IfNotPresent,
        }
    }

    /// Whether a start must ask the registry: always for `Always`, and for `IfNotPresent`
    /// when the store lacks the image.
    pub fn pulls(self, present: bool) -> bool {
        match self {
            PullPolicy::Always => true,
            PullPolicy::IfNotPresent => !present,
            PullPolicy::Never => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_images_are_never_pulled_and_the_policies_otherwise_hold() {
        let r = |s: &str| Reference::parse(s).unwrap();
        assert_eq!(
            PullPolicy::of("Always", &r("podrun.local/debug:1")),
            PullPolicy::Never
        );
        assert_eq!(
            PullPolicy::of("Always", &r("localhost/app")),
            PullPolicy::Never
        );
        assert_eq!(
            PullPolicy::of("Always", &r("nicolaka/netshoot")),
            PullPolicy::Always
        );
        assert_eq!(
            PullPolicy::of("IfNotPresent", &r("python:3.9-slim")),
            PullPolicy::IfNotPresent
        );
        assert!(PullPolicy::Always.pulls(true));
        assert!(!PullPolicy::IfNotPresent.pulls(true));
        assert!(PullPolicy::IfNotPresent.pulls(false));
        assert!(!PullPolicy::Never.pulls(false));
    }
}

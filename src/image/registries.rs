//! Where podrun pulls an image from: the containers `registries.conf` v2 format
//! (containers-registries.conf(5)), as podman, CRI-O, skopeo and buildah read it, in podrun's own
//! file (`/etc/podrun/registries.conf`; `--registries-conf` / `PODRUN_REGISTRIES_CONF` name
//! another):
//!
//! ```toml
//! [[registry]]
//! prefix = "docker.io"            # the references this entry is for (default: location)
//! location = "docker.io"          # where they are, when no mirror answers
//! insecure = false                # plain HTTP allowed (and TLS without verification)
//! blocked = false                 # refuse to pull these
//!
//! [[registry.mirror]]             # tried in order, before location
//! location = "127.0.0.1:5000"
//! insecure = true
//! ```
//!
//! The longest matching prefix wins (a prefix matches whole path components). A registry's extra
//! CA certificates are the `*.crt` files of `certs.d/<host[:port]>/` beside the file, as
//! containers-certs.d(5) lays them out. A reference no entry matches is pulled from its own
//! domain over HTTPS. Other keys of the format (`unqualified-search-registries`, aliases,
//! `pull-from-mirror`, ...) are accepted and ignored.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::reference::Reference;

/// podrun's registries file when none is named.
pub const DEFAULT_REGISTRIES_CONF: &str = "/etc/podrun/registries.conf";

#[derive(Debug, thiserror::Error)]
pub enum RegistriesError {
    #[error("read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", .path.display())]
    Parse { path: PathBuf, message: String },
    #[error("image \"{reference}\": registry \"{prefix}\" is blocked in {}", .path.display())]
    Blocked {
        reference: String,
        prefix: String,
        path: PathBuf,
    },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct FileFormat {
    #[serde(default)]
    registry: Vec<RegistryEntry>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct RegistryEntry {
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    blocked: bool,
    #[serde(default)]
    mirror: Vec<MirrorEntry>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct MirrorEntry {
    location: String,
    #[serde(default)]
    insecure: bool,
}

/// One place to try for an image: `host[:port]` and the repository path there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host[:port]` of the registry (`docker.io` as written: the client maps it to Docker
    /// Hub's API host).
    pub registry: String,
    /// The repository on that registry (`library/python`).
    pub repository: String,
    /// Plain HTTP (and TLS without verification) allowed.
    pub insecure: bool,
    /// Extra CA certificates (PEM files) for this registry.
    pub ca_files: Vec<PathBuf>,
    /// Where they are looked for (`certs.d/<host[:port]>/` beside the registries file), for an
    /// error about an untrusted certificate.
    pub certs_dir: PathBuf,
    /// A mirror (tried before the upstream).
    pub mirror: bool,
}

/// The parsed registries file (empty when it does not exist).
#[derive(Debug, Clone, Default)]
pub struct Registries {
    path: PathBuf,
    entries: Vec<RegistryEntry>,
}

impl Registries {
    /// Reads `path`; a missing file is an empty configuration (pull from each image's domain).
    pub fn load(path: &Path) -> Result<Registries, RegistriesError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(RegistriesError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        Registries::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Registries, RegistriesError> {
        let parse_err = |message: String| RegistriesError::Parse {
            path: path.to_owned(),
            message,
        };
        let file: FileFormat = toml::from_str(text).map_err(|e| parse_err(e.to_string()))?;
        for (i, r) in file.registry.iter().enumerate() {
            if r.prefix.is_none() && r.location.is_none() {
                return Err(parse_err(format!(
                    "registry[{i}]: either prefix or location must be set"
                )));
            }
        }
        Ok(Registries {
            path: path.to_owned(),
            entries: file.registry,
        })
    }

    /// Where to look for `reference`, in order: the matching entry's mirrors, then its location
    /// (or the reference's own registry when no entry matches).
    pub fn endpoints(&self, reference: &Reference) -> Result<Vec<Endpoint>, RegistriesError> {
        let name = format!("{}/{}", reference.domain, reference.path);
        let best = self
            .entries
            .iter()
            .filter_map(|e| {
                let prefix = e.prefix.as_deref().or(e.location.as_deref())?;
                prefix_matches(prefix, &name).then_some((prefix, e))
            })
            .max_by_key(|(prefix, _)| prefix.len());
        let Some((prefix, entry)) = best else {
            return Ok(vec![self.endpoint(
                &reference.domain,
                &reference.path,
                false,
                false,
            )]);
        };
        if entry.blocked {
            return Err(RegistriesError::Blocked {
                reference: reference.to_string(),
                prefix: prefix.to_owned(),
                path: self.path.clone(),
            });
        }
        let rest = name[prefix.len()..].trim_start_matches('/');
        let mut out: Vec<Endpoint> = entry
            .mirror
            .iter()
            .map(|m| self.rewritten(&m.location, rest, m.insecure, true))
            .collect();
        let location = entry.location.as_deref().unwrap_or(prefix);
        out.push(self.rewritten(location, rest, entry.insecure, false));
        Ok(out)
    }

    /// `location` (`host[:port][/path]`) with the part of the name after the prefix.
    fn rewritten(&self, location: &str, rest: &str, insecure: bool, mirror: bool) -> Endpoint {
        let location = location.trim_end_matches('/');
        let (registry, base) = location.split_once('/').unwrap_or((location, ""));
        let repository = [base, rest]
            .iter()
            .filter(|p| !p.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("/");
        self.endpoint(registry, &repository, insecure, mirror)
    }

    fn endpoint(&self, registry: &str, repository: &str, insecure: bool, mirror: bool) -> Endpoint {
        Endpoint {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            insecure,
            ca_files: self.ca_files(registry),
            certs_dir: self.certs_dir(registry),
            mirror,
        }
    }

    /// The `*.crt` files of `certs.d/<registry>/` beside the registries file, sorted.
    fn ca_files(&self, registry: &str) -> Vec<PathBuf> {
        let dir = self.certs_dir(registry);
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "crt"))
            .collect();
        files.sort();
        files
    }

    /// `certs.d/<registry>/` beside the registries file.
    fn certs_dir(&self, registry: &str) -> PathBuf {
        self.path
            .parent()
            .unwrap_or(Path::new("/"))
            .join("certs.d")
            .join(registry)
    }
}

/// A prefix matches a name at a component boundary: `docker.io` matches `docker.io/library/x`,
/// not `docker.iox/y`; `example.com/team` matches `example.com/team/app`.
fn prefix_matches(prefix: &str, name: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    name == prefix
        || name
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(text: &str) -> Registries {
        Registries::parse(text, Path::new("/nonexistent/registries.conf")).unwrap()
    }

    fn places(r: &Registries, reference: &str) -> Vec<(String, String, bool, bool)> {
        r.endpoints(&Reference::parse(reference).unwrap())
            .unwrap()
            .into_iter()
            .map(|e| (e.registry, e.repository, e.insecure, e.mirror))
            .collect()
    }

    fn place(
        registry: &str,
        repository: &str,
        insecure: bool,
        mirror: bool,
    ) -> (String, String, bool, bool) {
        (registry.into(), repository.into(), insecure, mirror)
    }

    #[test]
    fn no_entry_pulls_from_the_images_own_registry() {
        let r = conf("");
        assert_eq!(
            places(&r, "python:3.9-slim"),
            [place("docker.io", "library/python", false, false)]
        );
        assert_eq!(
            places(
                &r,
                "quay.io/team/app@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
            ),
            [place("quay.io", "team/app", false, false)]
        );
    }

    #[test]
    fn mirrors_come_first_in_order_then_the_location() {
        let r = conf(
            r#"
unqualified-search-registries = ["docker.io"]
[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "127.0.0.1:5000"
insecure = true
[[registry.mirror]]
location = "mirror.example:443/hub"
"#,
        );
        assert_eq!(
            places(&r, "nicolaka/netshoot"),
            [
                place("127.0.0.1:5000", "nicolaka/netshoot", true, true),
                place("mirror.example:443", "hub/nicolaka/netshoot", false, true),
                place("docker.io", "nicolaka/netshoot", false, false),
            ]
        );
    }

    #[test]
    fn the_longest_prefix_wins_at_component_boundaries() {
        let r = conf(
            r#"
[[registry]]
prefix = "example.com"
location = "a.example:5000"
insecure = true
[[registry]]
prefix = "example.com/team"
location = "b.example/mirrored/team"
"#,
        );
        assert_eq!(
            places(&r, "example.com/team/app:1"),
            [place("b.example", "mirrored/team/app", false, false)]
        );
        assert_eq!(
            places(&r, "example.com/other:1"),
            [place("a.example:5000", "other", true, false)]
        );
        assert_eq!(
            places(&r, "example.community/x:1"),
            [place("example.community", "x", false, false)]
        );
    }

    #[test]
    fn blocked_and_bad_files_are_errors_naming_them() {
        let r = conf("[[registry]]\nlocation = \"docker.io\"\nblocked = true\n");
        let err = r
            .endpoints(&Reference::parse("busybox").unwrap())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "image \"docker.io/library/busybox:latest\": registry \"docker.io\" is blocked in /nonexistent/registries.conf"
        );
        let err = Registries::parse("[[registry]]\ninsecure = true\n", Path::new("/x.conf"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "/x.conf: registry[0]: either prefix or location must be set"
        );
        let err = Registries::parse("[[registry]\n", Path::new("/x.conf"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/x.conf: "), "{err}");
    }

    #[test]
    fn ca_files_come_from_certs_d_beside_the_file() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("certs.d/127.0.0.1:5443");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("ca.crt"), "pem").unwrap();
        std::fs::write(dir.join("client.key"), "key").unwrap();
        let path = t.path().join("registries.conf");
        std::fs::write(&path, "[[registry]]\nlocation = \"127.0.0.1:5443\"\n").unwrap();
        let r = Registries::load(&path).unwrap();
        let e = r
            .endpoints(&Reference::parse("127.0.0.1:5443/app:1").unwrap())
            .unwrap();
        assert_eq!(e[0].ca_files, [dir.join("ca.crt")]);
        assert_eq!(e[0].certs_dir, dir);
        assert!(Registries::load(&t.path().join("missing.conf")).is_ok());
    }
}

//! Registry credentials in the Docker config format that `docker login`, `podman login`
//! (`auth.json`, containers-auth.json(5)) and Kubernetes' `kubernetes.io/dockerconfigjson`
//! Secrets share:
//!
//! ```json
//! {"auths": {"registry.example:5000": {"auth": "<base64 of user:password>"}}}
//! ```
//!
//! A key is a registry (`host[:port]`, optionally with `https://` and a `/v1/`-style path, as
//! old Docker wrote them; `index.docker.io` and `registry-1.docker.io` are `docker.io`) or a
//! registry and a repository prefix (`quay.io/team`), the most specific matching key winning.
//! The files are read in podman's order: `$REGISTRY_AUTH_FILE`, `/run/containers/0/auth.json`,
//! `~/.docker/config.json`. Credential helpers (`credHelpers`, `credsStore`) are not run.
//! A credential is never printed: its `Debug` shows the user name only.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{source_name}: not a Docker config (auths): {message}")]
    Format {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: auths.{key}.auth: {message}")]
    Entry {
        source_name: String,
        key: String,
        message: String,
    },
    #[error("read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
}

#[derive(Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The credentials of one Docker config, by normalised key, and where they came from (a file
/// path, `secret default/regcred`).
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    source: String,
    entries: Vec<(String, Credentials)>,
}

impl AuthConfig {
    /// Parses a Docker config; `source_name` says where it came from in errors (a file path,
    /// `secret default/regcred`), never its content.
    pub fn parse(json: &[u8], source_name: &str) -> Result<AuthConfig, AuthError> {
        let file: ConfigFile = serde_json::from_slice(json).map_err(|e| AuthError::Format {
            source_name: source_name.to_owned(),
            // serde_json's message names a position, not the text: safe to show.
            message: e.to_string(),
        })?;
        let mut entries = Vec::new();
        for (key, entry) in file.auths {
            let bad = |message: &str| AuthError::Entry {
                source_name: source_name.to_owned(),
                key: key.clone(),
                message: message.to_owned(),
            };
            let credentials = match (entry.auth.as_deref(), entry.username, entry.password) {
                (Some(auth), _, _) if !auth.is_empty() => {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(auth.trim())
                        .map_err(|_| bad("not base64"))?;
                    let text = String::from_utf8(decoded).map_err(|_| bad("not UTF-8"))?;
                    let (user, password) = text
                        .split_once(':')
                        .ok_or_else(|| bad("not \"user:password\" once decoded"))?;
                    Credentials {
                        username: user.to_owned(),
                        password: password.to_owned(),
                    }
                }
                (_, Some(username), Some(password)) => Credentials { username, password },
                _ => continue, // an entry for a credential helper, or empty
            };
            entries.push((normalise_key(&key), credentials));
        }
        Ok(AuthConfig {
            source: source_name.to_owned(),
            entries,
        })
    }

    /// Reads a config file; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<AuthConfig, AuthError> {
        match std::fs::read(path) {
            Ok(bytes) => AuthConfig::parse(&bytes, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AuthConfig {
                source: path.display().to_string(),
                entries: Vec::new(),
            }),
            Err(source) => Err(AuthError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The credentials for `repository` on `registry`: the longest key that is the registry or
    /// the registry with a leading part of the repository.
    pub fn lookup(&self, registry: &str, repository: &str) -> Option<&Credentials> {
        let registry = normalise_key(registry);
        let name = format!("{registry}/{repository}");
        self.entries
            .iter()
            .filter(|(key, _)| {
                *key == registry
                    || name
                        .strip_prefix(key.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
            })
            .max_by_key(|(key, _)| key.len())
            .map(|(_, c)| c)
    }
}

/// Several auth files, in order: for each registry the first file with an entry for it wins,
/// as podman reads them.
#[derive(Debug, Clone, Default)]
pub struct AuthFiles(Vec<AuthConfig>);

impl AuthFiles {
    /// Read `files` (missing ones are empty).
    pub fn load(files: &[PathBuf]) -> Result<AuthFiles, AuthError> {
        files
            .iter()
            .map(|f| AuthConfig::load(f))
            .collect::<Result<_, _>>()
            .map(AuthFiles)
    }

    /// These, after `first` (a pod's pull secrets come before the node's auth files, as the
    /// kubelet tries them).
    pub fn after(self, first: Vec<AuthConfig>) -> AuthFiles {
        AuthFiles(first.into_iter().chain(self.0).collect())
    }

    /// The credentials for `repository` on `registry` of the first file that has any.
    pub fn lookup(&self, registry: &str, repository: &str) -> Option<&Credentials> {
        self.find(registry, repository).map(|(c, _)| c)
    }

    /// As [`AuthFiles::lookup`], with where the credentials came from (a file path,
    /// `secret NAMESPACE/NAME`).
    pub fn find(&self, registry: &str, repository: &str) -> Option<(&Credentials, &str)> {
        self.0.iter().find_map(|c| {
            c.lookup(registry, repository)
                .map(|found| (found, c.source.as_str()))
        })
    }

    /// Where credentials were looked for, in order (for an error that found none).
    pub fn sources(&self) -> Vec<&str> {
        self.0.iter().map(|c| c.source.as_str()).collect()
    }
}

/// The auth files podman reads, in its order (the first with an entry wins).
pub fn default_auth_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(f) = std::env::var_os("REGISTRY_AUTH_FILE").filter(|f| !f.is_empty()) {
        files.push(PathBuf::from(f));
    }
    files.push(PathBuf::from("/run/containers/0/auth.json"));
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        files.push(Path::new(&home).join(".docker/config.json"));
    }
    files
}

/// `https://index.docker.io/v1/` -> `docker.io`; `registry.example:5000/` -> as it is.
fn normalise_key(key: &str) -> String {
    let key = key
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let key = key
        .strip_suffix("/v1/")
        .or(key.strip_suffix("/v2/"))
        .unwrap_or(key);
    let key = key.trim_end_matches('/');
    let (host, rest) = key.split_once('/').unwrap_or((key, ""));
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" => "docker.io",
        h => h,
    };
    if rest.is_empty() {
        host.to_owned()
    } else {
        format!("{host}/{rest}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    #[test]
    fn entries_are_found_by_registry_and_repository_prefix() {
        let json = format!(
            r#"{{"auths": {{
                "https://index.docker.io/v1/": {{"auth": "{}"}},
                "127.0.0.1:5000": {{"auth": "{}"}},
                "quay.io/team": {{"username": "team", "password": "t-pass"}},
                "quay.io": {{"auth": "{}"}},
                "helper.example": {{}}
            }}, "credHelpers": {{"gcr.io": "gcloud"}}}}"#,
            b64("hub:hub-pass"),
            b64("alice:s3cr:et"),
            b64("any:any-pass")
        );
        let c = AuthConfig::parse(json.as_bytes(), "test").unwrap();
        let user = |r: &str, repo: &str| c.lookup(r, repo).map(|c| c.username.clone());
        assert_eq!(user("docker.io", "library/python"), Some("hub".into()));
        assert_eq!(
            c.lookup("127.0.0.1:5000", "x").unwrap().password,
            "s3cr:et",
            "the password may hold a colon"
        );
        assert_eq!(user("quay.io", "team/app"), Some("team".into()));
        assert_eq!(user("quay.io", "teamwork/app"), Some("any".into()));
        assert_eq!(user("helper.example", "x"), None);
        assert_eq!(user("127.0.0.1:5001", "x"), None);
    }

    #[test]
    fn a_credential_is_never_printed() {
        let json = format!(
            r#"{{"auths": {{"r.example": {{"auth": "{}"}}}}}}"#,
            b64("u:hunter2")
        );
        let c = AuthConfig::parse(json.as_bytes(), "test").unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        let bad = format!(
            r#"{{"auths": {{"r.example": {{"auth": "{}"}}}}}}"#,
            b64("no-colon-hunter2")
        );
        let err = AuthConfig::parse(bad.as_bytes(), "secret default/regcred")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "secret default/regcred: auths.r.example.auth: not \"user:password\" once decoded"
        );
        let err = AuthConfig::parse(b"{\"auths\": [", "f.json")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("f.json: not a Docker config (auths): "),
            "{err}"
        );
    }

    #[test]
    fn missing_files_are_empty() {
        let t = tempfile::tempdir().unwrap();
        let c = AuthConfig::load(&t.path().join("none.json")).unwrap();
        assert!(c.lookup("docker.io", "x").is_none());
    }

    #[test]
    fn the_first_file_with_an_entry_for_the_registry_wins() {
        let t = tempfile::tempdir().unwrap();
        let entry = |user: &str, registry: &str| {
            let auth = base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                format!("{user}:secret"),
            );
            format!(r#"{{"auths": {{"{registry}": {{"auth": "{auth}"}}}}}}"#)
        };
        let first = t.path().join("first.json");
        let second = t.path().join("second.json");
        std::fs::write(&first, entry("alice", "registry.example:5000")).unwrap();
        std::fs::write(&second, entry("bob", "docker.io")).unwrap();
        let missing = t.path().join("missing.json");
        let files = AuthFiles::load(&[missing, first, second]).unwrap();
        let user = |registry: &str| files.lookup(registry, "x/y").map(|c| c.username.clone());
        assert_eq!(user("registry.example:5000").as_deref(), Some("alice"));
        let (_, source) = files.find("docker.io", "x/y").unwrap();
        assert_eq!(source, t.path().join("second.json").display().to_string());
        assert_eq!(files.sources().len(), 3, "a missing file is named too");
        assert_eq!(user("docker.io").as_deref(), Some("bob"));
        assert_eq!(user("quay.io"), None);
    }
}

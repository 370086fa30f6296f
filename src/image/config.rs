//! The OCI image config of an imported image, and the Dockerfile-style `--change` instructions
//! that set it (`podman import --change`, `docker import --change`).

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, SecondsFormat, Utc};
use oci_spec::image::{
    ConfigBuilder, HistoryBuilder, ImageConfiguration, ImageConfigurationBuilder, RootFsBuilder,
};

use super::error::{ImageError, Result};

/// What an import sets in the image config. `None`/empty leaves a field unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageConfigOverrides {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    /// `NAME=VALUE` entries in order; a later one with the same name replaces the earlier.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// `80/tcp`, `53/udp`.
    pub exposed_ports: Vec<String>,
    pub stop_signal: Option<String>,
}

pub const SUPPORTED_CHANGES: &str =
    "CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER, WORKDIR";

impl ImageConfigOverrides {
    /// Applies `--change` instructions in order.
    pub fn from_changes<S: AsRef<str>>(changes: &[S]) -> Result<ImageConfigOverrides> {
        let mut overrides = ImageConfigOverrides::default();
        for change in changes {
            overrides.apply_change(change.as_ref())?;
        }
        Ok(overrides)
    }

    /// One Dockerfile instruction: `CMD ["python3"]` (exec form) or `CMD python3 -V` (shell
    /// form: `/bin/sh -c ...`), `ENTRYPOINT ...`, `ENV K=V [K2=V2...]` or `ENV K V`,
    /// `LABEL k=v ...`, `WORKDIR /dir`, `USER uid[:gid]`, `EXPOSE 80[/tcp] ...`, `STOPSIGNAL SIG`.
    pub fn apply_change(&mut self, change: &str) -> Result<()> {
        let bad = |reason: String| ImageError::InvalidChange {
            change: change.to_owned(),
            reason,
        };
        let trimmed = change.trim();
        let (instruction, rest) = trimmed
            .split_once(char::is_whitespace)
            .map(|(i, r)| (i, r.trim()))
            .unwrap_or((trimmed, ""));
        let instruction = instruction.to_ascii_uppercase();
        if rest.is_empty() && instruction != "CMD" && instruction != "ENTRYPOINT" {
            return Err(bad(format!("{instruction} needs a value")));
        }
        match instruction.as_str() {
            "CMD" => self.cmd = Some(command_form(rest).map_err(bad)?),
            "ENTRYPOINT" => self.entrypoint = Some(command_form(rest).map_err(bad)?),
            "ENV" => {
                for (k, v) in pairs(rest).map_err(bad)? {
                    self.env
                        .retain(|e| e.split_once('=').map(|(n, _)| n) != Some(&k));
                    self.env.push(format!("{k}={v}"));
                }
            }
            "LABEL" => {
                for (k, v) in pairs(rest).map_err(bad)? {
                    self.labels.insert(k, v);
                }
            }
            "WORKDIR" => {
                if !rest.starts_with('/') {
                    return Err(bad("WORKDIR must be an absolute path".into()));
                }
                self.working_dir = Some(rest.to_owned());
            }
            "USER" => self.user = Some(rest.to_owned()),
            "EXPOSE" => {
                for port in rest.split_whitespace() {
                    let (number, proto) = port.split_once('/').unwrap_or((port, "tcp"));
                    if number.parse::<u16>().is_err() || !matches!(proto, "tcp" | "udp" | "sctp") {
                        return Err(bad(format!("invalid port {port:?}")));
                    }
                    self.exposed_ports.push(format!("{number}/{proto}"));
                }
            }
            "STOPSIGNAL" => self.stop_signal = Some(rest.to_owned()),
            other => {
                return Err(bad(format!(
                    "unknown instruction {other}; supported: {SUPPORTED_CHANGES}"
                )));
            }
        }
        Ok(())
    }
}

/// `["a","b"]` (JSON array of strings) or a shell command run by `/bin/sh -c`.
fn command_form(rest: &str) -> std::result::Result<Vec<String>, String> {
    if rest.starts_with('[') {
        return serde_json::from_str(rest)
            .map_err(|e| format!("the exec form must be a JSON array of strings: {e}"));
    }
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec!["/bin/sh".into(), "-c".into(), rest.to_owned()])
}

/// `K=V K2="v 2"` or the legacy `K V with spaces`.
fn pairs(rest: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let first = rest.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(|| "expected NAME=VALUE or NAME VALUE".to_string())?;
        return Ok(vec![(k.to_owned(), v.trim().to_owned())]);
    }
    let mut out = Vec::new();
    for word in shell_words(rest)? {
        let (k, v) = word
            .split_once('=')
            .ok_or_else(|| format!("expected NAME=VALUE, got {word:?}"))?;
        if k.is_empty() {
            return Err(format!("empty name in {word:?}"));
        }
        out.push((k.to_owned(), v.to_owned()));
    }
    Ok(out)
}

/// Splits on whitespace outside double or single quotes, removing the quotes (`\` escapes the
/// next character outside single quotes).
fn shell_words(text: &str) -> std::result::Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => word.push(c),
            (_, '\\') => {
                in_word = true;
                word.extend(chars.next());
            }
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                in_word = true;
                quote = Some(c);
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// The image config of an import: runtime settings from `overrides`, the content digest as the
/// one layer's diff_id, a creation time and one history entry saying where it came from.
pub fn image_configuration(
    overrides: &ImageConfigOverrides,
    diff_id: &str,
    created: DateTime<Utc>,
    created_by: &str,
) -> Result<ImageConfiguration> {
    let created = created.to_rfc3339_opts(SecondsFormat::Nanos, true);
    let mut config = ConfigBuilder::default();
    if let Some(v) = &overrides.entrypoint {
        config = config.entrypoint(v.clone());
    }
    if let Some(v) = &overrides.cmd {
        config = config.cmd(v.clone());
    }
    if !overrides.env.is_empty() {
        config = config.env(overrides.env.clone());
    }
    if let Some(v) = &overrides.working_dir {
        config = config.working_dir(v.clone());
    }
    if let Some(v) = &overrides.user {
        config = config.user(v.clone());
    }
    if !overrides.labels.is_empty() {
        let labels: HashMap<String, String> = overrides.labels.clone().into_iter().collect();
        config = config.labels(labels);
    }
    if !overrides.exposed_ports.is_empty() {
        config = config.exposed_ports(overrides.exposed_ports.clone());
    }
    if let Some(v) = &overrides.stop_signal {
        config = config.stop_signal(v.clone());
    }
    let build_err = |e: oci_spec::OciSpecError| ImageError::Corrupt {
        context: "cannot build the image config".into(),
        message: e.to_string(),
    };
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(vec![diff_id.to_owned()])
        .build()
        .map_err(build_err)?;
    let history = HistoryBuilder::default()
        .created(created.clone())
        .created_by(created_by.to_owned())
        .comment("imported by podrun".to_owned())
        .build()
        .map_err(build_err)?;
    ImageConfigurationBuilder::default()
        .created(created)
        .config(config.build().map_err(build_err)?)
        .rootfs(rootfs)
        .history(vec![history])
        .build()
        .map_err(build_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(c: &str) -> ImageConfigOverrides {
        ImageConfigOverrides::from_changes(&[c]).unwrap()
    }

    #[test]
    fn cmd_and_entrypoint_forms() {
        assert_eq!(
            change(r#"CMD ["python3"]"#).cmd,
            Some(vec!["python3".into()])
        );
        assert_eq!(
            change("cmd python3 -m http.server").cmd,
            Some(vec![
                "/bin/sh".into(),
                "-c".into(),
                "python3 -m http.server".into()
            ])
        );
        assert_eq!(
            change(r#"ENTRYPOINT ["/bin/sh", "-c"]"#).entrypoint,
            Some(vec!["/bin/sh".into(), "-c".into()])
        );
        assert_eq!(change("ENTRYPOINT []").entrypoint, Some(vec![]));
        assert!(
            ImageConfigOverrides::from_changes(&[r#"CMD ["a","#])
                .unwrap_err()
                .to_string()
                .contains("JSON array")
        );
    }

    #[test]
    fn env_label_workdir_user_expose() {
        let o = ImageConfigOverrides::from_changes(&[
            "ENV A=1 B=\"two words\"",
            "ENV PATH /usr/bin:/bin",
            "ENV A=3",
            "LABEL org.podrun.recipe=abc x=y",
            "WORKDIR /srv",
            "USER 1000:1000",
            "EXPOSE 80 53/udp",
            "STOPSIGNAL SIGINT",
        ])
        .unwrap();
        assert_eq!(o.env, ["B=two words", "PATH=/usr/bin:/bin", "A=3"]);
        assert_eq!(o.labels["org.podrun.recipe"], "abc");
        assert_eq!(o.working_dir.as_deref(), Some("/srv"));
        assert_eq!(o.user.as_deref(), Some("1000:1000"));
        assert_eq!(o.exposed_ports, ["80/tcp", "53/udp"]);
        assert_eq!(o.stop_signal.as_deref(), Some("SIGINT"));
    }

    #[test]
    fn bad_changes_are_named() {
        for bad in [
            "RUN apt-get",
            "WORKDIR rel",
            "ENV",
            "EXPOSE http",
            "ENV A=\"x",
        ] {
            let err = ImageConfigOverrides::from_changes(&[bad])
                .unwrap_err()
                .to_string();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn configuration_holds_the_overrides() {
        let o = change(r#"CMD ["python3"]"#);
        let c = image_configuration(&o, "sha256:abc", Utc::now(), "podrun image import x").unwrap();
        assert_eq!(
            c.config().as_ref().unwrap().cmd().as_deref(),
            Some(&["python3".to_string()][..])
        );
        assert_eq!(c.rootfs().diff_ids(), &["sha256:abc".to_string()]);
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["config"]["Cmd"][0], "python3");
        assert_eq!(json["rootfs"]["type"], "layers");
        assert!(json["created"].is_string());
    }
}

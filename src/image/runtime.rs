//! What a container runs given its image: Kubernetes' command/args rules against the image's
//! Entrypoint/Cmd, the image's Env under the container's, and the default working directory and
//! user. Pure functions, as containerd's CRI plugin computes them.

use oci_spec::image::{Config, ImageConfiguration};

use super::error::{ImageError, Result};
use crate::spec::{ContainerPlan, ResolvedProcess};

/// The PATH a container gets when neither the image nor the container sets one (containerd's
/// and runc's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn runtime(image: &ImageConfiguration) -> Option<&Config> {
    image.config().as_ref()
}

/// The argv of the container's process (Kubernetes "Define a Command and Arguments"):
///
/// | `command` | `args` | runs |
/// |---|---|---|
/// | unset | unset | image Entrypoint + image Cmd |
/// | set | unset | `command` (image Entrypoint and Cmd ignored) |
/// | unset | set | image Entrypoint + `args` |
/// | set | set | `command` + `args` |
///
/// "Set" means non-empty, as in the kubelet. An Entrypoint of `[""]` counts as none (as in
/// containerd). The container's `$(VAR)` references are expanded before this (Kubernetes expands
/// `command` and `args`, never the image's values). An empty result is [`ImageError::NoCommand`].
pub fn effective_command(
    image: &ImageConfiguration,
    command: &[String],
    args: &[String],
) -> Result<Vec<String>> {
    let argv: Vec<String> = if !command.is_empty() {
        command.iter().chain(args).cloned().collect()
    } else {
        let config = runtime(image);
        let entrypoint = config
            .and_then(|c| c.entrypoint().as_deref())
            .filter(|e| !(e.len() == 1 && e[0].is_empty()))
            .unwrap_or_default();
        let rest = if !args.is_empty() {
            args
        } else {
            config.and_then(|c| c.cmd().as_deref()).unwrap_or_default()
        };
        entrypoint.iter().chain(rest).cloned().collect()
    };
    if argv.is_empty() {
        return Err(ImageError::NoCommand);
    }
    Ok(argv)
}

/// The environment: a default PATH, then the image's `Env`, then the container's env (already
/// resolved); a later entry with the same name replaces the earlier one in place.
pub fn image_env(
    image: &ImageConfiguration,
    container_env: &[(String, String)],
) -> Vec<(String, String)> {
    let mut env = vec![("PATH".to_owned(), DEFAULT_PATH.to_owned())];
    let image_entries = runtime(image)
        .and_then(|c| c.env().as_ref())
        .into_iter()
        .flatten()
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
    for (name, value) in image_entries.chain(container_env.iter().cloned()) {
        match env.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => env.push((name, value)),
        }
    }
    env
}

/// The container's `workingDir` if set, else the image's `WorkingDir`, else `/`.
pub fn working_dir(image: &ImageConfiguration, container_working_dir: Option<&str>) -> String {
    container_working_dir
        .filter(|d| !d.is_empty())
        .or_else(|| {
            runtime(image)
                .and_then(|c| c.working_dir().as_deref())
                .filter(|d| !d.is_empty())
        })
        .unwrap_or("/")
        .to_owned()
}

/// The image's `User` (`uid`, `name`, `uid:gid`, `name:group`), if it sets one; the process
/// runs as root otherwise. [`super::resolve_user`] turns it into IDs with the image's own
/// /etc/passwd and /etc/group.
pub fn user(image: &ImageConfiguration) -> Option<&str> {
    runtime(image)
        .and_then(|c| c.user().as_deref())
        .filter(|u| !u.is_empty())
}

/// The container's process with the image applied: `resolved` is
/// [`ContainerPlan::resolve`]'s result (argv = expanded command then args, the container's env,
/// its workingDir); the result has the effective argv, the merged env and the working directory.
pub fn apply_image(
    image: &ImageConfiguration,
    container: &ContainerPlan,
    resolved: ResolvedProcess,
) -> Result<ResolvedProcess> {
    let split = container.command.len().min(resolved.argv.len());
    let (command, args) = resolved.argv.split_at(split);
    Ok(ResolvedProcess {
        argv: effective_command(image, command, args)?,
        env: image_env(image, &resolved.env),
        working_dir: Some(working_dir(image, resolved.working_dir.as_deref())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::config::{ImageConfigOverrides, image_configuration};

    fn image(changes: &[&str]) -> ImageConfiguration {
        let o = ImageConfigOverrides::from_changes(changes).unwrap();
        image_configuration(&o, "sha256:0", chrono::Utc::now(), "test").unwrap()
    }

    fn v(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    /// image, command, args, expected argv.
    type Row<'a> = (
        &'a ImageConfiguration,
        &'a [&'a str],
        &'a [&'a str],
        &'a [&'a str],
    );

    #[test]
    fn command_args_table() {
        let ep_cmd = image(&[r#"ENTRYPOINT ["/ep"]"#, r#"CMD ["--cmd"]"#]);
        let cmd_only = image(&[r#"CMD ["python3"]"#]);
        let ep_only = image(&[r#"ENTRYPOINT ["/ep"]"#]);
        let reset_ep = image(&[r#"ENTRYPOINT [""]"#, r#"CMD ["sh"]"#]);
        let nothing = image(&[]);
        #[rustfmt::skip]
        let table: &[Row] = &[
            // image, command, args, expected
            (&ep_cmd, &[], &[], &["/ep", "--cmd"]),
            (&ep_cmd, &["/c"], &[], &["/c"]),
            (&ep_cmd, &[], &["a1"], &["/ep", "a1"]),
            (&ep_cmd, &["/c"], &["a1", "a2"], &["/c", "a1", "a2"]),
            (&cmd_only, &[], &[], &["python3"]),
            (&cmd_only, &[], &["-V"], &["-V"]),
            (&cmd_only, &["python3", "-c"], &["print(1)"], &["python3", "-c", "print(1)"]),
            (&ep_only, &[], &[], &["/ep"]),
            (&ep_only, &[], &["x"], &["/ep", "x"]),
            (&reset_ep, &[], &[], &["sh"]),
            (&nothing, &["sh"], &[], &["sh"]),
            (&nothing, &[], &["sh"], &["sh"]),
        ];
        for (i, (img, command, args, want)) in table.iter().enumerate() {
            let got = effective_command(img, &v(command), &v(args)).unwrap();
            assert_eq!(got, v(want), "row {i}");
        }
        assert!(matches!(
            effective_command(&nothing, &[], &[]),
            Err(ImageError::NoCommand)
        ));
    }

    #[test]
    fn env_merging() {
        let img = image(&["ENV PATH=/opt/bin:/bin LANG=C.UTF-8 A=image"]);
        let env = image_env(
            &img,
            &[("A".into(), "container".into()), ("B".into(), "b".into())],
        );
        assert_eq!(
            env,
            vec![
                ("PATH".to_string(), "/opt/bin:/bin".to_string()),
                ("LANG".into(), "C.UTF-8".into()),
                ("A".into(), "container".into()),
                ("B".into(), "b".into()),
            ]
        );
        let plain = image_env(&image(&[]), &[]);
        assert_eq!(plain, vec![("PATH".to_string(), DEFAULT_PATH.to_string())]);
    }

    #[test]
    fn working_dir_and_user_defaults() {
        let img = image(&["WORKDIR /srv", "USER 1000:1000"]);
        assert_eq!(working_dir(&img, None), "/srv");
        assert_eq!(working_dir(&img, Some("/data")), "/data");
        assert_eq!(working_dir(&image(&[]), None), "/");
        assert_eq!(user(&img), Some("1000:1000"));
        assert_eq!(user(&image(&[])), None);
    }

    #[test]
    fn apply_image_splits_command_and_args() {
        let img = image(&[r#"ENTRYPOINT ["/ep"]"#, r#"CMD ["d"]"#, "WORKDIR /w"]);
        let mut container: ContainerPlan = serde_json::from_value(serde_json::json!({
            "name": "c", "image": "x", "image_pull_policy": "IfNotPresent",
            "command": [], "args": ["$(A)"], "working_dir": null, "env": [], "ports": [],
            "resources": {"requests": {"cpu_millis": null, "memory_bytes": null},
                          "limits": {"cpu_millis": null, "memory_bytes": null}}
        }))
        .unwrap();
        let resolved = ResolvedProcess {
            argv: v(&["expanded"]),
            env: vec![("A".into(), "expanded".into())],
            working_dir: None,
        };
        let p = apply_image(&img, &container, resolved.clone()).unwrap();
        assert_eq!(p.argv, v(&["/ep", "expanded"]));
        assert_eq!(p.working_dir.as_deref(), Some("/w"));
        assert_eq!(p.env[0].0, "PATH");
        container.command = v(&["/c"]);
        container.args = vec![];
        let resolved = ResolvedProcess {
            argv: v(&["/c"]),
            ..resolved
        };
        assert_eq!(
            apply_image(&img, &container, resolved).unwrap().argv,
            v(&["/c"])
        );
    }
}

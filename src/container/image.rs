//! What a container needs from its image: the root filesystem (a directory, the overlay's lower
//! layer) and the image config (`Env`, `Entrypoint`, `Cmd`, `WorkingDir`, `User`), and how the
//! container's own fields combine with it (the kubelet's command/args rules, containerd's env
//! and user handling).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spec::{ContainerPlan, ResolvedProcess};

/// An image as a container uses it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerImage {
    /// The reference as written in the pod (`podrun.local/debug:1`).
    pub reference: String,
    /// The image's layers, bottom first: the read-only lower directories of the container's
    /// overlay (an older record's single `rootfs` reads as one layer).
    #[serde(alias = "rootfs", deserialize_with = "one_or_many")]
    pub layers: Vec<PathBuf>,
    /// The image as `containerStatuses[].imageID` names it: `<repository>@sha256:<image ID>`
    /// (an imported image has no registry manifest, so its digest is its config's).
    #[serde(default)]
    pub image_id: String,
    /// OCI image config `Env` (`NAME=value`).
    #[serde(default)]
    pub env: Vec<String>,
    #[serde(default)]
    pub entrypoint: Vec<String>,
    #[serde(default)]
    pub cmd: Vec<String>,
    #[serde(default)]
    pub working_dir: String,
    /// `User`: empty (root), `uid`, `uid:gid`, `name` or `name:group`.
    #[serde(default)]
    pub user: String,
}

/// Find `reference` in the image store at `image_root` (short name, full name or ID prefix) and
/// take what a container needs from it: the rootfs and the OCI image config.
pub fn resolve_image(
    image_root: &Path,
    reference: &str,
) -> Result<ContainerImage, crate::image::ImageError> {
    let image = crate::image::ImageStore::open(image_root).resolve(reference)?;
    let config = image.config.config().clone().unwrap_or_default();
    let repository = image
        .names
        .iter()
        .filter_map(|n| crate::image::Reference::parse(n).ok())
        .map(|r| r.repository())
        .next()
        .or_else(|| {
            crate::image::Reference::parse(reference)
                .ok()
                .map(|r| r.repository())
        })
        .unwrap_or_default();
    Ok(ContainerImage {
        reference: reference.to_owned(),
        image_id: format!("{repository}@sha256:{}", image.id),
        layers: image.layers,
        env: config.env().clone().unwrap_or_default(),
        entrypoint: config.entrypoint().clone().unwrap_or_default(),
        cmd: config.cmd().clone().unwrap_or_default(),
        working_dir: config.working_dir().clone().unwrap_or_default(),
        user: config.user().clone().unwrap_or_default(),
    })
}

/// A list of paths, or one path (what an older podrun recorded).
pub(crate) fn one_or_many<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<PathBuf>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(PathBuf),
        Many(Vec<PathBuf>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(p) => vec![p],
        OneOrMany::Many(v) => v,
    })
}

/// The process to run (Kubernetes "Define a Command and Arguments", as containerd's CRI plugin
/// computes it):
///
/// | `command` | `args` | runs |
/// |---|---|---|
/// | unset | unset | image Entrypoint + image Cmd |
/// | set | unset | `command` (image Entrypoint and Cmd ignored) |
/// | unset | set | image Entrypoint + `args` |
/// | set | set | `command` + `args` |
///
/// "Set" means non-empty, as in the kubelet, and an Entrypoint of `[""]` counts as none (as in
/// containerd). `resolved` has the container's own argv (`$(VAR)` already expanded: Kubernetes
/// expands `command` and `args`, never the image's values), env and workingDir. The env is a
/// default PATH and HOSTNAME, then the image's `Env`, then the container's, a later entry
/// replacing an earlier one in place; the working directory is the container's, else the
/// image's.
pub fn merge_process(
    plan: &ContainerPlan,
    resolved: &ResolvedProcess,
    image: &ContainerImage,
    hostname: &str,
) -> ResolvedProcess {
    let entrypoint: &[String] = match image.entrypoint.as_slice() {
        [only] if only.is_empty() => &[],
        e => e,
    };
    let argv = if !plan.command.is_empty() {
        resolved.argv.clone()
    } else if !plan.args.is_empty() {
        entrypoint
            .iter()
            .chain(resolved.argv.iter())
            .cloned()
            .collect()
    } else {
        entrypoint.iter().chain(image.cmd.iter()).cloned().collect()
    };
    let mut env: Vec<(String, String)> = vec![
        ("PATH".into(), super::DEFAULT_PATH.into()),
        ("HOSTNAME".into(), hostname.into()),
    ];
    let image_env = image
        .env
        .iter()
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
    for (k, v) in image_env.chain(resolved.env.iter().cloned()) {
        match env.iter_mut().find(|(name, _)| *name == k) {
            Some(slot) => slot.1 = v,
            None => env.push((k, v)),
        }
    }
    let working_dir = plan
        .working_dir
        .clone()
        .or_else(|| Some(image.working_dir.clone()).filter(|d| !d.is_empty()));
    ResolvedProcess {
        argv,
        env,
        working_dir,
    }
}

/// What the runtime reports of an image's user, as the kubelet sees it: a numeric uid, or a
/// user name it cannot check (`getImageUser`; no user means root).
pub fn image_uid(image: &ContainerImage) -> (Option<i64>, String) {
    let user = image.user.split(':').next().unwrap_or("");
    if user.is_empty() {
        return (Some(0), String::new());
    }
    match user.parse::<i64>() {
        Ok(uid) => (Some(uid), String::new()),
        Err(_) => (None, user.to_owned()),
    }
}

/// The kubelet's `verifyRunAsNonRoot`.
pub fn verify_run_as_non_root(
    plan: &ContainerPlan,
    image: &ContainerImage,
    pod: &str,
) -> Result<(), String> {
    let sc = &plan.security;
    if sc.run_as_non_root != Some(true) {
        return Ok(());
    }
    if let Some(uid) = sc.run_as_user {
        if uid == 0 {
            return Err(format!(
                "container's runAsUser breaks non-root policy (pod: \"{pod}\", container: {})",
                plan.name
            ));
        }
        return Ok(());
    }
    match image_uid(image) {
        (Some(0), _) => Err(format!(
            "container has runAsNonRoot and image will run as root (pod: \"{pod}\", container: {})",
            plan.name
        )),
        (None, name) if !name.is_empty() => Err(format!(
            "container has runAsNonRoot and image has non-numeric user ({name}), cannot verify \
             user is non-root (pod: \"{pod}\", container: {})",
            plan.name
        )),
        _ => Ok(()),
    }
}

/// uid, gid and supplementary groups of the process, as containerd's `WithUser`/`WithUserID`
/// resolve them against the image's `/etc/passwd` and `/etc/group`.
pub fn resolve_user(
    image: &ContainerImage,
    run_as_user: Option<i64>,
    run_as_group: Option<i64>,
) -> Result<(u32, u32), String> {
    let passwd = image_db(image, "etc/passwd");
    let group = image_db(image, "etc/group");
    let (user, grp) = match image.user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (image.user.as_str(), None),
    };
    let uid: u32 = match run_as_user {
        Some(uid) => uid as u32,
        None if user.is_empty() => 0,
        None => id_of(&passwd, user, "user", "passwd")?,
    };
    // The primary group of the uid's passwd entry, when it has one.
    let by_uid = by_id(&passwd, uid).and_then(|(_, f)| f.get(1)?.parse::<u32>().ok());
    let gid: u32 = match (run_as_group, grp) {
        (Some(g), _) => g as u32,
        (None, Some(g)) => id_of(&group, g, "group", "group")?,
        (None, None) => by_uid.unwrap_or(0),
    };
    Ok((uid, gid))
}

/// containerd's `WithAdditionalGIDs`: the groups of the image's `/etc/group` that list the
/// user (by the name of its uid in `/etc/passwd`) as a member, other than its own group.
pub fn additional_gids(image: &ContainerImage, uid: u32) -> Vec<u32> {
    let passwd = image_db(image, "etc/passwd");
    let Some((name, _)) = by_id(&passwd, uid) else {
        return Vec::new();
    };
    let mut gids: Vec<u32> = image_db(image, "etc/group")
        .iter()
        .filter(|(group, f)| {
            group != name && f.get(1).is_some_and(|m| m.split(',').any(|u| u == name))
        })
        .filter_map(|(_, f)| f.first()?.parse().ok())
        .collect();
    gids.sort_unstable();
    gids.dedup();
    gids
}

/// `name:x:field2:field3...` lines, in the file's order, as (name, [field2, field3, ...]):
/// for passwd `[uid, gid, gecos, home, shell]`, for group `[gid, members]`.
/// `/etc/passwd` or `/etc/group` of the image (its topmost layer that has it).
fn image_db(image: &ContainerImage, name: &str) -> Vec<(String, Vec<String>)> {
    crate::image::find_in_layers(&image.layers, Path::new(name))
        .map(|p| read_db(&p))
        .unwrap_or_default()
}

pub(super) fn read_db(path: &Path) -> Vec<(String, Vec<String>)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut parts = l.split(':');
            let name = parts.next()?.to_owned();
            let _password = parts.next()?;
            Some((name, parts.map(str::to_owned).collect()))
        })
        .collect()
}

/// The fields of the first entry named `name` (runc's lookup takes the first match too).
fn by_name<'a>(db: &'a [(String, Vec<String>)], name: &str) -> Option<&'a [String]> {
    db.iter()
        .find(|(n, _)| n == name)
        .map(|(_, f)| f.as_slice())
}

/// `name` as a number, else the id of the first entry called `name` (`what`: "user" or
/// "group", `file`: "passwd" or "group", for runc's error).
fn id_of(db: &[(String, Vec<String>)], name: &str, what: &str, file: &str) -> Result<u32, String> {
    if let Ok(id) = name.parse() {
        return Ok(id);
    }
    by_name(db, name)
        .and_then(|f| f.first()?.parse().ok())
        .ok_or_else(|| format!("unable to find {what} {name}: no matching entries in {file} file"))
}

/// The first entry whose id (the field after the password) is `id`.
pub(super) fn by_id(db: &[(String, Vec<String>)], id: u32) -> Option<&(String, Vec<String>)> {
    db.iter()
        .find(|(_, f)| f.first().and_then(|u| u.parse::<u32>().ok()) == Some(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(user: &str) -> ContainerImage {
        ContainerImage {
            reference: "x".into(),
            image_id: String::new(),
            layers: vec!["/nonexistent".into()],
            env: vec!["PATH=/image/bin".into(), "LANG=C.UTF-8".into()],
            entrypoint: vec!["/entry".into()],
            cmd: vec!["serve".into()],
            working_dir: "/app".into(),
            user: user.into(),
        }
    }

    fn plan(command: &[&str], args: &[&str]) -> ContainerPlan {
        let text = format!(
            "{{apiVersion: v1, kind: Pod, metadata: {{name: p}}, spec: {{containers: [{{name: c, image: x, command: {command:?}, args: {args:?}}}]}}}}"
        );
        match crate::spec::load_str(&text, "t").unwrap().remove(0) {
            crate::spec::Object::Pod(p) => p.containers[0].clone(),
            _ => unreachable!(),
        }
    }

    fn argv(command: &[&str], args: &[&str]) -> Vec<String> {
        let p = plan(command, args);
        let resolved = ResolvedProcess {
            argv: command.iter().chain(args).map(|s| s.to_string()).collect(),
            env: vec![("LANG".into(), "en".into())],
            working_dir: None,
        };
        merge_process(&p, &resolved, &image(""), "h").argv
    }

    #[test]
    fn command_and_args_against_entrypoint_and_cmd() {
        assert_eq!(argv(&[], &[]), ["/entry", "serve"]);
        assert_eq!(argv(&[], &["debug"]), ["/entry", "debug"]);
        assert_eq!(argv(&["sh"], &[]), ["sh"]);
        assert_eq!(argv(&["sh"], &["-c", "x"]), ["sh", "-c", "x"]);
        let with = |entrypoint: &[&str], cmd: &[&str], command: &[&str], args: &[&str]| {
            let mut i = image("");
            i.entrypoint = entrypoint.iter().map(|s| s.to_string()).collect();
            i.cmd = cmd.iter().map(|s| s.to_string()).collect();
            let resolved = ResolvedProcess {
                argv: command.iter().chain(args).map(|s| s.to_string()).collect(),
                env: vec![],
                working_dir: None,
            };
            merge_process(&plan(command, args), &resolved, &i, "h").argv
        };
        // An Entrypoint of [""] resets it (containerd), so Cmd or args run alone.
        assert_eq!(with(&[""], &["sh"], &[], &[]), ["sh"]);
        assert_eq!(with(&[""], &["sh"], &[], &["-c", "x"]), ["-c", "x"]);
        // Cmd only: args replace it; nothing at all leaves nothing (apply refuses that).
        assert_eq!(with(&[], &["python3"], &[], &["-V"]), ["-V"]);
        assert!(with(&[], &[], &[], &[]).is_empty());
    }

    #[test]
    fn env_layers_and_working_dir() {
        let p = plan(&[], &[]);
        let resolved = ResolvedProcess {
            argv: vec![],
            env: vec![("LANG".into(), "en".into())],
            working_dir: None,
        };
        let m = merge_process(&p, &resolved, &image(""), "h");
        let get = |k: &str| m.env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("PATH"), Some("/image/bin"));
        assert_eq!(get("LANG"), Some("en"));
        assert_eq!(get("HOSTNAME"), Some("h"));
        assert_eq!(m.working_dir.as_deref(), Some("/app"));
    }

    #[test]
    fn run_as_non_root_like_the_kubelet() {
        let mut p = plan(&["sh"], &[]);
        p.security.run_as_non_root = Some(true);
        let err = verify_run_as_non_root(&p, &image(""), "p_default(uid)").unwrap_err();
        assert_eq!(
            err,
            "container has runAsNonRoot and image will run as root (pod: \"p_default(uid)\", container: c)"
        );
        assert!(verify_run_as_non_root(&p, &image("1000"), "p").is_ok());
        assert!(
            verify_run_as_non_root(&p, &image("app"), "p")
                .unwrap_err()
                .contains("non-numeric user (app)")
        );
        p.security.run_as_user = Some(1000);
        assert!(verify_run_as_non_root(&p, &image(""), "p").is_ok());
        p.security.run_as_user = Some(0);
        assert!(
            verify_run_as_non_root(&p, &image("1000"), "p")
                .unwrap_err()
                .contains("runAsUser breaks non-root policy")
        );
    }
}

#[cfg(test)]
mod user_tests {
    use super::*;

    #[test]
    fn users_and_groups_from_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(
            etc.join("passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            etc.join("group"),
            "root:x:0:\nwheel:x:10:root,app\napp:x:1001:\naudio:x:29:app\n",
        )
        .unwrap();
        let mut image = ContainerImage {
            reference: "x".into(),
            image_id: String::new(),
            layers: vec![dir.path().to_owned()],
            env: vec![],
            entrypoint: vec![],
            cmd: vec![],
            working_dir: String::new(),
            user: "app".into(),
        };
        assert_eq!(resolve_user(&image, None, None), Ok((1000, 1001)));
        assert_eq!(resolve_user(&image, Some(0), None), Ok((0, 0)));
        assert_eq!(resolve_user(&image, Some(1000), Some(5)), Ok((1000, 5)));
        image.user = "1000:wheel".into();
        assert_eq!(resolve_user(&image, None, None), Ok((1000, 10)));
        image.user = "nobody".into();
        assert!(
            resolve_user(&image, None, None)
                .unwrap_err()
                .contains("unable to find user nobody")
        );
        assert_eq!(additional_gids(&image, 1000), [10, 29]);
        assert_eq!(additional_gids(&image, 0), [10]);
        assert!(additional_gids(&image, 4242).is_empty());
    }

    #[test]
    fn the_first_entry_of_a_uid_is_its_home() {
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        std::fs::write(
            &passwd,
            "toor:x:0:0::/toor:/bin/sh\nadmin:x:0:0::/admin:/bin/sh\nshort:x:7\n",
        )
        .unwrap();
        let db = read_db(&passwd);
        let home = |uid| by_id(&db, uid).and_then(|(_, f)| f.get(3).cloned());
        assert_eq!(
            home(0).as_deref(),
            Some("/toor"),
            "the file's order, as runc"
        );
        assert_eq!(home(7), None);
        assert_eq!(
            by_name(&db, "admin")
                .and_then(|f| f.get(3))
                .map(String::as_str),
            Some("/admin")
        );
    }
}

//! `podrun image import|load|ls|rm|inspect|tag` and `podrun images`, shaped like podman's.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{Result, msg, table};
use crate::config::Config;
use crate::image::{
    Image, ImageArchive, ImageConfigOverrides, ImageError, ImageStore, LoadEvent, Reference,
};

#[derive(Debug, Args)]
pub struct ImageArgs {
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Create an image from a directory or a tarball (plain or gzip; "-" reads a tar from stdin)
    /// and print its ID; an OCI image layout, an OCI archive or a docker save archive is
    /// imported as the images it holds (one ID each).
    Import(ImportArgs),
    /// Load the images of an OCI archive or a docker save archive (stdin without -i).
    Load(LoadArgs),
    /// List images.
    #[command(visible_alias = "list")]
    Ls(ListArgs),
    /// Remove images: a name goes (the image with its last name); an ID removes the image.
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Show images as JSON: ID, names, config (Env, Entrypoint, Cmd, WorkingDir, User), rootfs.
    Inspect(InspectArgs),
    /// Give an image another name.
    Tag(TagArgs),
    /// Pull an image from its registry (or a mirror of it).
    Pull(PullArgs),
    /// Remove dangling images (no name), or with --all every image no pod uses, and the layers
    /// only they had.
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Every image no pod uses, not only the dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Accepted for podman's habit (podrun does not ask).
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The image (`python:3.9-slim`, `registry:5000/team/app@sha256:...`).
    pub reference: String,
    /// An auth file (Docker config.json format) instead of the usual ones
    /// (`$REGISTRY_AUTH_FILE`, `/run/containers/0/auth.json`, `~/.docker/config.json`).
    #[arg(long)]
    pub authfile: Option<std::path::PathBuf>,
    /// Only the image ID on success.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The archive (plain, gzip or zstd tar); stdin when omitted.
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<std::path::PathBuf>,
    /// The image to load from an archive of several, or the name for an unnamed one.
    #[arg(long = "ref", value_name = "NAME")]
    pub reference: Option<String>,
    /// Only the `Loaded image:` lines (no per-layer progress).
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Directory, tar or tar.gz file, or "-" for a tar on stdin (a root filesystem); or an OCI
    /// image layout directory, OCI archive or docker save archive.
    pub source: String,
    /// Name of the new image, e.g. podrun.local/debug:1 (untagged when omitted); for an
    /// archive, as --ref.
    pub name: Option<String>,
    /// For an archive: the image to import from several, or the name for an unnamed one.
    #[arg(long = "ref", value_name = "NAME")]
    pub reference: Option<String>,
    /// A Dockerfile instruction to apply: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL, USER,
    /// WORKDIR (e.g. --change 'CMD ["python3"]'); may be repeated.
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only images matching this reference (a name, short name or ID prefix).
    pub reference: Option<String>,
    /// Only the image IDs.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Full image IDs.
    #[arg(long)]
    pub no_trunc: bool,
    /// A DIGEST column: the registry manifest each name was pulled by.
    #[arg(long)]
    pub digests: bool,
    /// Output format: json.
    #[arg(short = 'o', long = "output", alias = "format")]
    pub output: Option<String>,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Image names or IDs.
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Remove an image with several names by ID, or one a pod uses.
    #[arg(short = 'f', long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Image names or IDs.
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// The image (name or ID).
    pub image: String,
    /// New names.
    #[arg(required = true)]
    pub names: Vec<String>,
}

pub fn image(cfg: &Config, args: &ImageArgs) -> Result<i32> {
    match &args.command {
        ImageCommand::Import(a) => import(cfg, a),
        ImageCommand::Load(a) => load(cfg, a),
        ImageCommand::Ls(a) => list(cfg, a),
        ImageCommand::Rm(a) => remove(cfg, a),
        ImageCommand::Prune(a) => prune(cfg, a),
        ImageCommand::Inspect(a) => inspect(cfg, a),
        ImageCommand::Tag(a) => tag(cfg, a),
        ImageCommand::Pull(a) => pull(cfg, a),
    }
}

/// `podrun pull REF`: the kubelet's `Pulling image` / `Successfully pulled image` lines.
pub fn pull(cfg: &Config, args: &PullArgs) -> Result<i32> {
    use crate::image::{AuthFiles, Reference, Registries};
    let reference = Reference::parse(&args.reference)?;
    let registries =
        Registries::load(&cfg.registries_conf).map_err(|e| super::msg(e.to_string()))?;
    let files = match &args.authfile {
        // Named on purpose: missing is a mistake, not "no credentials" (as podman says).
        Some(f) => {
            std::fs::metadata(f)
                .map_err(|e| super::msg(format!("--authfile {}: {e}", f.display())))?;
            vec![f.clone()]
        }
        None => crate::image::default_auth_files(),
    };
    let auth = AuthFiles::load(&files).map_err(|e| super::msg(e.to_string()))?;
    let quiet = args.quiet;
    if !quiet {
        eprintln!("Pulling image \"{reference}\"");
    }
    let started = std::time::Instant::now();
    let mut bars = super::pull_progress::PullProgress::new(quiet, true);
    let pulled = crate::image::ensure(
        &cfg.images(),
        &registries,
        &auth,
        &reference,
        true,
        &mut |e| bars.event(e),
    );
    drop(bars);
    let (image, _) = pulled?;
    if quiet {
        println!("sha256:{}", image.id);
    } else {
        println!(
            "Successfully pulled image \"{reference}\" in {:.3}s. Image size: {} bytes.",
            started.elapsed().as_secs_f64(),
            image.size
        );
    }
    Ok(0)
}

fn import(cfg: &Config, args: &ImportArgs) -> Result<i32> {
    let overrides = ImageConfigOverrides::from_changes(&args.changes)?;
    let store = cfg.images();
    let name = args.name.as_deref();
    if args.source != "-"
        && let Some(archive) = ImageArchive::open(&store, Path::new(&args.source))?
    {
        let reference = match (name, args.reference.as_deref()) {
            (Some(a), Some(b)) if a != b => {
                return Err(msg(format!(
                    "both NAME {a:?} and --ref {b:?} given; an archive takes one"
                )));
            }
            (a, b) => a.or(b),
        };
        if !args.changes.is_empty() {
            return Err(msg(format!(
                "--change applies to a root filesystem, not to the images of an {}",
                archive.kind()
            )));
        }
        for loaded in archive.import(&store, reference, &mut |_| {})? {
            println!("{}", loaded.image.id);
        }
        return Ok(0);
    }
    if args.reference.is_some() {
        return Err(msg(format!(
            "--ref chooses an image of an archive, and {} is a root filesystem: name it with NAME",
            args.source
        )));
    }
    let image = if args.source == "-" {
        store.import_reader(std::io::stdin().lock(), "-", name, &overrides)?
    } else {
        let source = Path::new(&args.source);
        let md = std::fs::metadata(source).map_err(|e| super::CliError::Io {
            context: format!("cannot read import source {}", source.display()),
            source: e,
        })?;
        if md.is_dir() {
            store.import_dir(source, name, &overrides)?
        } else {
            store.import_tar(source, name, &overrides)?
        }
    };
    println!("{}", image.id);
    Ok(0)
}

/// `podrun image load`: `Loaded image: NAME` per name (the ID for an unnamed image), as
/// podman's; `Copying blob` lines on stderr unless quiet.
pub fn load(cfg: &Config, args: &LoadArgs) -> Result<i32> {
    let store = cfg.images();
    let archive = match &args.input {
        Some(path) => ImageArchive::open(&store, path)?.ok_or_else(|| {
            msg(format!(
                "{}: not an OCI archive or layout, nor a docker save archive (a root filesystem \
                 is imported with podrun image import)",
                path.display()
            ))
        })?,
        None => ImageArchive::read(&store, std::io::stdin().lock(), "-")?,
    };
    let quiet = args.quiet;
    let images = archive.import(&store, args.reference.as_deref(), &mut |event| {
        let LoadEvent::Layer { digest, present } = event;
        if !quiet {
            let short = digest.strip_prefix("sha256:").unwrap_or(&digest);
            let short = &short[..12.min(short.len())];
            if present {
                eprintln!("Copying blob {short} skipped: already exists");
            } else {
                eprintln!("Copying blob {short} done");
            }
        }
    })?;
    for loaded in images {
        if loaded.names.is_empty() {
            println!("Loaded image: {}", loaded.image.digest());
        }
        for name in &loaded.names {
            println!("Loaded image: {name}");
        }
    }
    Ok(0)
}

pub fn list(cfg: &Config, args: &ListArgs) -> Result<i32> {
    let store = cfg.images();
    let mut images = store.list()?;
    if let Some(reference) = &args.reference {
        let wanted = match store.resolve(reference) {
            Ok(image) => Some(image.id),
            Err(ImageError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        images.retain(|i| Some(&i.id) == wanted.as_ref());
    }
    let id = |i: &Image| {
        if args.no_trunc {
            i.digest()
        } else {
            i.short_id().to_owned()
        }
    };
    if args.quiet {
        let mut seen = BTreeSet::new();
        for image in &images {
            if seen.insert(&image.id) {
                println!("{}", id(image));
            }
        }
        return Ok(0);
    }
    match args.output.as_deref() {
        None | Some("table") => {}
        Some("json") => {
            let docs: Vec<Value> = images.iter().map(summary).collect();
            println!("{}", serde_json::to_string_pretty(&docs).expect("json"));
            return Ok(0);
        }
        Some(other) => {
            return Err(msg(format!(
                "unknown output format {other:?}; allowed formats are: json, table"
            )));
        }
    }
    let mut header = vec!["REPOSITORY", "TAG"];
    if args.digests {
        header.push("DIGEST");
    }
    header.extend(["IMAGE ID", "CREATED", "SIZE"]);
    let mut rows = vec![header.into_iter().map(str::to_owned).collect::<Vec<_>>()];
    for image in &images {
        let names: Vec<(String, String)> = if image.names.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            image
                .names
                .iter()
                .map(|n| match Reference::parse(n) {
                    Ok(r) => (r.repository(), r.tag_or_none().to_owned()),
                    Err(_) => (n.clone(), "<none>".into()),
                })
                .collect()
        };
        for (repository, tag) in names {
            let mut row = vec![repository.clone(), tag];
            if args.digests {
                row.push(repo_digest(image, &repository));
            }
            row.extend([
                id(image),
                created_ago(image.created),
                human_size(image.size),
            ]);
            rows.push(row);
        }
    }
    table::print(&rows);
    Ok(0)
}

/// The manifest digest `repository` was pulled by (`<none>` for an image made here).
fn repo_digest(image: &Image, repository: &str) -> String {
    image
        .repo_digests
        .iter()
        .filter_map(|d| d.split_once('@'))
        .find(|(repo, _)| *repo == repository)
        .map(|(_, digest)| digest.to_owned())
        .unwrap_or_else(|| "<none>".into())
}

fn remove(cfg: &Config, args: &RmArgs) -> Result<i32> {
    let store = cfg.images();
    let mut failed = None;
    for reference in &args.images {
        match remove_one(cfg, &store, reference, args.force) {
            Ok(()) => {}
            Err(e) => {
                eprintln!("error: {e}");
                failed = Some(e);
            }
        }
    }
    Ok(if failed.is_some() { 1 } else { 0 })
}

fn remove_one(cfg: &Config, store: &ImageStore, reference: &str, force: bool) -> Result<()> {
    let image = store.resolve(reference)?;
    if !force && let Some(pod) = pod_using(cfg, store, &image.id) {
        return Err(ImageError::InUse {
            reference: reference.to_owned(),
            pod,
        }
        .into());
    }
    let removed = store.remove(reference, force)?;
    for name in &removed.untagged {
        println!("Untagged: {name}");
    }
    if let Some(id) = &removed.deleted {
        println!("Deleted: {id}");
    }
    Ok(())
}

/// A pod (`namespace/name`) with a container whose image is `id`: the image it runs (as
/// recorded when it was made; the name may have moved to a newer pull since) or names.
fn pod_using(cfg: &Config, store: &ImageStore, id: &str) -> Option<String> {
    let runs = |c: &crate::state::ContainerRecord| {
        c.image_config
            .as_ref()
            .is_some_and(|i| i.image_id.ends_with(&format!("sha256:{id}")))
    };
    cfg.store().list().into_iter().find_map(|record| {
        let uses = record.containers.iter().any(runs)
            || record
                .plan
                .containers
                .iter()
                .any(|c| store.resolve(&c.image).is_ok_and(|i| i.id == id));
        uses.then(|| format!("{}/{}", record.plan.namespace, record.plan.name))
    })
}

fn prune(cfg: &Config, args: &PruneArgs) -> Result<i32> {
    let store = cfg.images();
    let pruned = store.prune(&|image| {
        (args.all || image.names.is_empty()) && pod_using(cfg, &store, &image.id).is_none()
    })?;
    for id in pruned {
        println!("{id}");
    }
    Ok(0)
}

fn inspect(cfg: &Config, args: &InspectArgs) -> Result<i32> {
    let store = cfg.images();
    let mut docs = Vec::new();
    let mut failed = false;
    for reference in &args.images {
        match store.resolve(reference) {
            Ok(image) => docs.push(details(&image)),
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&docs).expect("json"));
    Ok(if failed { 1 } else { 0 })
}

fn tag(cfg: &Config, args: &TagArgs) -> Result<i32> {
    let store = cfg.images();
    for name in &args.names {
        store.tag(&args.image, name)?;
    }
    Ok(0)
}

/// One image of `images -o json` (podman's field names).
fn summary(image: &Image) -> Value {
    json!({
        "Id": image.id,
        "Digest": image.digest(),
        "Names": image.names,
        "RepoTags": image.names,
        "Created": image.created.timestamp(),
        "CreatedAt": image.created.to_rfc3339(),
        "Size": image.size,
        "RepoDigests": image.repo_digests,
        "Labels": image.config.config().as_ref().and_then(|c| c.labels().clone()),
    })
}

/// `image inspect`: podman's layout, the OCI config's runtime part under `Config`, and the
/// layer directories as overlay's `LowerDir` (topmost first).
fn details(image: &Image) -> Value {
    let oci = serde_json::to_value(&image.config).unwrap_or(Value::Null);
    json!({
        "Id": image.id,
        "Digest": image.digest(),
        "RepoTags": image.names,
        "RepoDigests": image.repo_digests,
        "Created": oci["created"],
        "Config": oci["config"],
        "Architecture": oci["architecture"],
        "Os": oci["os"],
        "Size": image.size,
        "RootFS": {
            "Type": oci["rootfs"]["type"],
            "Layers": oci["rootfs"]["diff_ids"],
        },
        "History": oci["history"],
        "GraphDriver": {
            "Name": "overlay",
            "Data": {"LowerDir": crate::container::overlay::encode_lowers(&image.layers)},
        },
    })
}

/// docker/podman's CREATED column: `5 seconds ago`, `About a minute ago`, `3 days ago`.
fn created_ago(created: DateTime<Utc>) -> String {
    let secs = (Utc::now() - created).num_seconds().max(0);
    let (m, h, d) = (60, 3600, 86400);
    let text = match secs {
        0 => "Less than a second".to_owned(),
        1 => "1 second".to_owned(),
        s if s < m => format!("{s} seconds"),
        s if s < 2 * m => "About a minute".to_owned(),
        s if s < h => format!("{} minutes", s / m),
        s if s < 2 * h => "About an hour".to_owned(),
        s if s < 2 * d => format!("{} hours", s / h),
        s if s < 14 * d => format!("{} days", s / d),
        s if s < 60 * d => format!("{} weeks", s / (7 * d)),
        s if s < 730 * d => format!("{} months", s / (30 * d)),
        s => format!("{} years", s / (365 * d)),
    };
    format!("{text} ago")
}

/// podman's SIZE column: three significant digits, decimal units (`812 B`, `12.3 kB`, `5.87 MB`).
fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 999.5 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    let decimals = if value >= 99.95 {
        0
    } else if value >= 9.995 {
        1
    } else {
        2
    };
    let mut number = format!("{value:.decimals$}");
    if number.contains('.') {
        number = number
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned();
    }
    format!("{number} {}", units[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rm_refuses_an_image_a_pod_uses() {
        let t = tempfile::tempdir().unwrap();
        let cfg = Config {
            root: t.path().join("state"),
            bridge: "podrun0".into(),
            pod_cidr: "10.244.0.0/24".parse().unwrap(),
            netns_dir: t.path().join("netns"),
            cgroup_root: t.path().join("cgroup"),
            cgroup_parent: "podrun".into(),
            image_root: t.path().join("images"),
            registries_conf: t.path().join("registries.conf"),
            node_name: "node".into(),
        };
        let src = t.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let store = cfg.images();
        let overrides = ImageConfigOverrides::default();
        store
            .import_dir(&src, Some("podrun.local/debug:1"), &overrides)
            .unwrap();
        let manifest = "{apiVersion: v1, kind: Pod, metadata: {name: p}, spec: {containers: \
                        [{name: c, image: 'debug:1', command: [sh]}]}}";
        let plan = match crate::spec::load_str(manifest, "test").unwrap().remove(0) {
            crate::spec::Object::Pod(plan) => plan,
            other => panic!("{other:?}"),
        };
        let record = crate::state::PodRecord {
            plan,
            network_config: cfg.network(),
            netns_dir: cfg.netns_dir.clone(),
            cgroup: None,
            node_name: cfg.node_name.clone(),
            created_at: Utc::now(),
            start_time: None,
            supervisor: None,
            phase: crate::state::Phase::Pending,
            reason: None,
            message: None,
            sandbox: None,
            containers: vec![],
            events: vec![],
            deletion: None,
            volumes: vec![],
            images: None,
        };
        cfg.store().create(&record).unwrap();
        let err = remove_one(&cfg, &store, "podrun.local/debug:1", false).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image \"podrun.local/debug:1\" is used by pod default/p; delete the pod first or use --force"
        );
        assert!(store.resolve("debug:1").is_ok());
        remove_one(&cfg, &store, "podrun.local/debug:1", true).unwrap();
        assert!(store.resolve("debug:1").is_err());
    }

    #[test]
    fn sizes_like_podman() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(812), "812 B");
        assert_eq!(human_size(12_345), "12.3 kB");
        assert_eq!(human_size(5_870_000), "5.87 MB");
        assert_eq!(human_size(1_000_000), "1 MB");
        assert_eq!(human_size(999_999), "1 MB");
        assert_eq!(human_size(150_400_000), "150 MB");
    }

    #[test]
    fn ages_like_podman() {
        let ago = |s: i64| created_ago(Utc::now() - chrono::Duration::seconds(s));
        assert_eq!(ago(1), "1 second ago");
        assert_eq!(ago(5), "5 seconds ago");
        assert_eq!(ago(90), "About a minute ago");
        assert_eq!(ago(600), "10 minutes ago");
        assert_eq!(ago(3 * 86400), "3 days ago");
        assert_eq!(ago(800 * 86400), "2 years ago");
    }
}

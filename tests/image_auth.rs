//! Issue 19, registry authentication against a real registry (Debian's docker-registry in the
//! node's namespace) over TLS with a CA this test makes (named in the registries config by
//! `certs.d/<host:port>/ca.crt` beside it):
//!
//! - htpasswd: a pod's `imagePullSecrets` naming a dockerconfigjson Secret of the same
//!   manifest pulls and runs; so do `$REGISTRY_AUTH_FILE` (before `~/.docker/config.json`) and
//!   `podrun pull --authfile`;
//! - a wrong password is `unauthorized`, naming the registry and not the password (nor the
//!   base64 auth string), even with `PODRUN_LOG=trace`, and creates nothing; no credentials is
//!   `unauthorized` too, naming where they were looked for;
//! - without the CA the pull is a TLS certificate error naming the registry and `certs.d`;
//! - the bearer-token flow: the registry's `token` auth with a small token issuer run here (in
//!   the node's network namespace), which checks the Basic credentials and signs an ES256 JWT
//!   with a certificate of the test CA in its `x5c` header.
//!
//! Everything listens on the loopback of the test's own network namespace.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::Node;
use common::registry::{Layer, Registry, TestImage, debug_rootfs, oci_layout, tar_of};

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-Pa55word";
const WRONG: &str = "not-the-Pa55word";
const REPOSITORY: &str = "auth/app";

/// The test's CA, the registry's server certificate (for 127.0.0.1) and a token-signing
/// certificate, as PEM files in `dir`.
struct TestCa {
    ca_pem: String,
    ca_file: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    signing_cert_der: Vec<u8>,
    signing_key_pkcs8: Vec<u8>,
}

impl TestCa {
    fn new(dir: &Path) -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "podrun test CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca_params, ca_key);

        let mut server = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        server
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        let server_key = KeyPair::generate().unwrap();
        let server_cert = server.signed_by(&server_key, &issuer).unwrap();

        let mut signing = CertificateParams::new(Vec::<String>::new()).unwrap();
        signing
            .distinguished_name
            .push(DnType::CommonName, "podrun test token issuer");
        let signing_key = KeyPair::generate().unwrap();
        let signing_cert = signing.signed_by(&signing_key, &issuer).unwrap();

        let file = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        TestCa {
            ca_pem: ca_cert.pem(),
            ca_file: file("ca.crt", &ca_cert.pem()),
            server_cert: file("server.crt", &server_cert.pem()),
            server_key: file("server.key", &server_key.serialize_pem()),
            signing_cert_der: signing_cert.der().to_vec(),
            signing_key_pkcs8: signing_key.serialize_der(),
        }
    }

    /// The `http:` lines of a registry serving TLS with the server certificate.
    fn registry_tls(&self) -> String {
        format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            self.server_cert.display(),
            self.server_key.display()
        )
    }
}

/// An htpasswd file (bcrypt, as docker-registry wants) with `USER:PASSWORD`.
fn htpasswd(dir: &Path) -> PathBuf {
    let hash = bcrypt::hash_with_result(PASSWORD, 5)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoY);
    let path = dir.join("htpasswd");
    std::fs::write(&path, format!("{USER}:{hash}\n")).unwrap();
    path
}

fn basic(user: &str, password: &str) -> String {
    STANDARD.encode(format!("{user}:{password}"))
}

/// A Docker config.json with `user:password` for `registry`.
fn docker_config(registry: &str, user: &str, password: &str) -> String {
    format!(
        r#"{{"auths": {{"{registry}": {{"auth": "{}"}}}}}}"#,
        basic(user, password)
    )
}

/// A node, its own image store, the test CA and an authenticating TLS registry, a registries
/// config trusting the CA for it, and a home directory of the test's (for
/// `~/.docker/config.json`).
struct Setup {
    node: Node,
    images: tempfile::TempDir,
    work: tempfile::TempDir,
    ca: TestCa,
    registry: Registry,
    conf: PathBuf,
    home: PathBuf,
}

impl Setup {
    /// `auth` is the registry config's `auth:` section, made from the work directory and the
    /// CA.
    fn new(port: u16, auth: impl FnOnce(&Path, &TestCa) -> String) -> Option<Setup> {
        let node = Node::new();
        let work = tempfile::tempdir().unwrap();
        let ca = TestCa::new(work.path());
        let extra = auth(work.path(), &ca);
        let registry = Registry::start_with_http(&node, port, &ca.registry_tls(), &extra)?;
        let conf_dir = work.path().join("etc");
        let certs = conf_dir.join("certs.d").join(registry.host());
        std::fs::create_dir_all(&certs).unwrap();
        std::fs::write(certs.join("ca.crt"), &ca.ca_pem).unwrap();
        let conf = conf_dir.join("registries.conf");
        std::fs::write(
            &conf,
            format!("[[registry]]\nlocation = \"{}\"\n", registry.host()),
        )
        .unwrap();
        let home = work.path().join("home");
        std::fs::create_dir_all(home.join(".docker")).unwrap();
        Some(Setup {
            node,
            images: tempfile::tempdir().unwrap(),
            work,
            ca,
            registry,
            conf,
            home,
        })
    }

    fn htpasswd(port: u16) -> Option<Setup> {
        Setup::new(port, |dir, _| {
            format!(
                "auth:\n  htpasswd:\n    realm: podrun-test\n    path: {}\n",
                htpasswd(dir).display()
            )
        })
    }

    fn image(&self) -> String {
        format!("{}/{REPOSITORY}:1", self.registry.host())
    }

    /// Push a one-layer image (the debug image's files, `sleep 600`) as [`Setup::image`],
    /// with the right credentials and the CA.
    fn push(&self) {
        let layout = self.work.path().join("layout");
        let base = tar_of(Some(&debug_rootfs(&self.node)), &[]);
        oci_layout(
            &layout,
            "1",
            &[TestImage {
                arch: std::env::consts::ARCH
                    .replace("x86_64", "amd64")
                    .replace("aarch64", "arm64")
                    .as_str(),
                layers: &[Layer::gzip(&base)],
                cmd: &["sleep", "600"],
            }],
        );
        let certs = self.work.path().join("skopeo-certs");
        std::fs::create_dir_all(&certs).unwrap();
        std::fs::write(certs.join("ca.crt"), &self.ca.ca_pem).unwrap();
        self.registry.push_with(
            &self.node,
            &layout,
            "1",
            REPOSITORY,
            &[
                format!("--dest-creds={USER}:{PASSWORD}"),
                format!("--dest-cert-dir={}", certs.display()),
            ],
        );
    }

    fn podrun_env(&self, args: &[&str], env: &[(&str, &str)]) -> common::Run {
        let mut all = vec![
            ("PODRUN_IMAGE_ROOT", self.images.path().to_str().unwrap()),
            ("PODRUN_REGISTRIES_CONF", self.conf.to_str().unwrap()),
            ("HOME", self.home.to_str().unwrap()),
            ("REGISTRY_AUTH_FILE", ""),
        ];
        all.extend_from_slice(env);
        self.node.podrun_env(args, &all)
    }

    fn podrun(&self, args: &[&str]) -> common::Run {
        self.podrun_env(args, &[])
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.work.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    }

    /// A Secret `regcred` of type kubernetes.io/dockerconfigjson with `user:password` for the
    /// registry, and a pod `name` pulling the image with it.
    fn manifest_with_secret(&self, name: &str, password: &str) -> String {
        let config = docker_config(&self.registry.host(), USER, password);
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: regcred}}\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: {}\n---\n\
             apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 1\n  imagePullSecrets: [{{name: regcred}}]\n  containers: [{{name: c, image: '{}'}}]\n",
            STANDARD.encode(config),
            self.image()
        )
    }

    fn wait_running(&self, pod: &str) {
        for _ in 0..200 {
            if self.podrun(&["get", "pod", pod]).stdout.contains("Running") {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{pod} never ran: {:?}",
            self.podrun(&["describe", "pod", pod])
        );
    }

    /// The store has the image (by its name).
    fn has_image(&self) -> bool {
        self.podrun(&["image", "inspect", &self.image()]).code == 0
    }

    fn tmp_is_empty(&self) -> bool {
        std::fs::read_dir(self.images.path().join("tmp"))
            .map(|mut d| d.next().is_none())
            .unwrap_or(true)
    }

    /// No log of the node's state root (the supervisors') holds any of `secrets`.
    fn assert_logs_hold_none(&self, secrets: &[&str]) {
        fn logs(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = e.path();
                if path.is_dir() {
                    logs(&path, out);
                } else if path.extension().is_some_and(|x| x == "log") {
                    out.push(path);
                }
            }
        }
        let mut files = Vec::new();
        logs(self.node.root.path(), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            for secret in secrets {
                assert!(!text.contains(secret), "{}: {text}", file.display());
            }
        }
    }

    fn finish(mut self) {
        self.registry.stop();
        self.node.assert_clean();
    }
}

/// `run` failed as unauthorized, naming the registry, and shows none of the secrets.
#[track_caller]
fn assert_unauthorized(s: &Setup, run: &common::Run, secrets: &[&str]) {
    assert_ne!(run.code, 0, "{run:?}");
    let error = run
        .stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default();
    assert!(
        error.contains("unauthorized") && error.contains(&s.registry.host()),
        "{run:?}"
    );
    assert_no_secrets(run, secrets);
}

#[track_caller]
fn assert_no_secrets(run: &common::Run, secrets: &[&str]) {
    for secret in secrets {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "{secret:?} was printed: {run:?}"
        );
    }
}

/// Every form of the test's passwords that must never be printed.
fn all_secrets() -> Vec<String> {
    vec![
        PASSWORD.to_owned(),
        WRONG.to_owned(),
        basic(USER, PASSWORD),
        basic(USER, WRONG),
    ]
}

#[test]
fn image_pull_secrets_pull_from_an_htpasswd_registry_over_tls() {
    require_root!();
    let Some(s) = Setup::htpasswd(5441) else {
        return;
    };
    s.push();
    let manifest = s.write("pod.yaml", &s.manifest_with_secret("app", PASSWORD));
    let run = s.podrun_env(&["apply", "-f", &manifest], &[("PODRUN_LOG", "trace")]);
    let secrets = all_secrets();
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_no_secrets(&run, &secrets);
    assert_eq!(run.code, 0, "{run:?}");
    s.wait_running("app");
    assert!(s.has_image());
    // What podrun shows of the pod does not hold the secret's credentials.
    for args in [
        &["inspect", "app"][..],
        &["get", "pod", "app", "-o", "json"],
        &["get", "pod", "app", "-o", "yaml"],
        &["describe", "pod", "app"],
    ] {
        assert_no_secrets(&s.podrun(args).ok(), &secrets);
    }
    s.assert_logs_hold_none(&secrets);
    // The registry let podrun's manifest request in (it had the secret's credentials).
    let log = s.registry.log();
    assert!(
        log.lines().any(|l| l.contains("msg=\"authorized request\"")
            && l.contains("http.request.method=GET")
            && l.contains("/manifests/1")
            && l.contains("useragent=oci-client")),
        "{log}"
    );
    s.podrun(&["delete", "pod", "app", "--now"]).ok();
    s.finish();
}

#[test]
fn auth_files_registry_auth_file_first_and_pull_authfile() {
    require_root!();
    let Some(s) = Setup::htpasswd(5442) else {
        return;
    };
    s.push();
    let host = s.registry.host();
    // ~/.docker/config.json is wrong, $REGISTRY_AUTH_FILE right: the first file wins.
    std::fs::write(
        s.home.join(".docker/config.json"),
        docker_config(&host, USER, WRONG),
    )
    .unwrap();
    let good = s.write("auth.json", &docker_config(&host, USER, PASSWORD));
    let image = s.image();
    let run = s.podrun_env(&["pull", &image], &[("REGISTRY_AUTH_FILE", &good)]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(s.has_image());
    s.podrun(&["image", "rm", &image]).ok();
    // Only ~/.docker/config.json: its wrong password is refused, naming the user and file.
    let run = s.podrun(&["pull", &image]);
    let secrets = all_secrets();
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    assert_unauthorized(&s, &run, &secrets);
    let config = s.home.join(".docker/config.json");
    assert!(
        run.stderr.contains(&format!("user \"{USER}\""))
            && run.stderr.contains(&config.display().to_string()),
        "{run:?}"
    );
    // --authfile instead of the usual files; a missing one is an error of its own.
    let missing = s.work.path().join("missing.json");
    let run = s.podrun(&["pull", "--authfile", missing.to_str().unwrap(), &image]);
    assert!(
        run.code != 0 && run.stderr.contains("--authfile") && !run.stderr.contains("unauthorized"),
        "{run:?}"
    );
    let run = s.podrun(&["pull", "--authfile", &good, &image]);
    assert_eq!(run.code, 0, "{run:?}");
    assert!(s.has_image());
    assert!(s.tmp_is_empty());
    s.finish();
}

#[test]
fn a_wrong_password_is_unauthorized_names_the_registry_and_prints_no_secret() {
    require_root!();
    let Some(s) = Setup::htpasswd(5443) else {
        return;
    };
    s.push();
    let secrets = all_secrets();
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    let trace = [("PODRUN_LOG", "trace")];
    // A pull secret with the wrong password: the apply fails and creates nothing.
    let manifest = s.write("pod.yaml", &s.manifest_with_secret("app", WRONG));
    let run = s.podrun_env(&["apply", "-f", &manifest], &trace);
    assert_unauthorized(&s, &run, &secrets);
    assert!(
        run.stderr.contains("secret default/regcred"),
        "the error names the secret: {run:?}"
    );
    assert_ne!(s.podrun(&["get", "pod", "app"]).code, 0);
    assert!(!s.has_image());
    assert!(s.tmp_is_empty());
    // The same through `podrun pull --authfile`.
    let wrong = s.write(
        "wrong.json",
        &docker_config(&s.registry.host(), USER, WRONG),
    );
    let run = s.podrun_env(&["pull", "--authfile", &wrong, &s.image()], &trace);
    assert_unauthorized(&s, &run, &secrets);
    assert!(!s.has_image());
    assert!(s.tmp_is_empty());
    s.finish();
}

#[test]
fn no_credentials_is_unauthorized_and_an_unknown_ca_a_certificate_error() {
    require_root!();
    let Some(s) = Setup::htpasswd(5444) else {
        return;
    };
    s.push();
    let run = s.podrun(&["pull", &s.image()]);
    assert_unauthorized(&s, &run, &[]);
    assert!(
        run.stderr
            .contains(&format!("no credentials for {}", s.registry.host())),
        "{run:?}"
    );
    // A registries config without the CA: the server's certificate is not trusted.
    let bare = s.work.path().join("bare");
    std::fs::create_dir_all(&bare).unwrap();
    let conf = bare.join("registries.conf");
    std::fs::copy(&s.conf, &conf).unwrap();
    let good = s.write(
        "auth.json",
        &docker_config(&s.registry.host(), USER, PASSWORD),
    );
    let run = s.podrun_env(
        &["pull", "--authfile", &good, &s.image()],
        &[("PODRUN_REGISTRIES_CONF", conf.to_str().unwrap())],
    );
    assert_ne!(run.code, 0);
    let certs_d = bare.join("certs.d").join(s.registry.host());
    assert!(
        run.stderr.contains("TLS")
            && run.stderr.contains("certificate")
            && run.stderr.contains(&s.registry.host())
            && run.stderr.contains(&certs_d.display().to_string()),
        "{run:?}"
    );
    assert!(!s.has_image());
    s.finish();
}

/// A token issuer for the registry's `token` auth, listening on 127.0.0.1:`port` of a node's
/// network namespace (a thread of the test that entered it): it checks the Basic credentials
/// and answers a JWT granting what the scopes asked, signed by the test CA's signing
/// certificate (in the `x5c` header, as docker-registry verifies it against its
/// `rootcertbundle`). Stopped (and its thread joined) when dropped.
struct TokenIssuer {
    stop: Arc<AtomicBool>,
    asked: Arc<Mutex<Vec<String>>>,
    issued: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const SERVICE: &str = "podrun-test-registry";
const ISSUER: &str = "podrun-test-issuer";

impl TokenIssuer {
    fn start(node: &Node, port: u16, ca: &TestCa) -> TokenIssuer {
        let netns = std::fs::File::open(format!("/proc/{}/ns/net", node.pid())).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let asked = Arc::new(Mutex::new(Vec::new()));
        let issued = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let signer = Signer {
            cert_der: ca.signing_cert_der.clone(),
            key: ring::signature::EcdsaKeyPair::from_pkcs8(
                &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &ca.signing_key_pkcs8,
                &ring::rand::SystemRandom::new(),
            )
            .unwrap(),
        };
        let (stop2, asked2, issued2) = (stop.clone(), asked.clone(), issued.clone());
        let thread = std::thread::spawn(move || {
            // This thread only: the test's other threads stay in the host's namespace.
            nix::sched::setns(netns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
            listener.set_nonblocking(true).unwrap();
            ready_tx.send(()).unwrap();
            // Bounded: a test that forgets to stop it still ends it within two minutes.
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while !stop2.load(Ordering::Relaxed) && std::time::Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => serve(stream, &signer, &asked2, &issued2),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10))
                    }
                    Err(e) => panic!("token issuer: {e}"),
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the token issuer listens");
        TokenIssuer {
            stop,
            asked,
            issued,
            thread: Some(thread),
        }
    }

    /// The users (or `-` for none, `!` for wrong credentials) of the requests so far.
    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap().clone()
    }

    /// The tokens it handed out.
    fn issued(&self) -> Vec<String> {
        self.issued.lock().unwrap().clone()
    }
}

impl Drop for TokenIssuer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Signer {
    cert_der: Vec<u8>,
    key: ring::signature::EcdsaKeyPair,
}

impl Signer {
    /// An ES256 JWT for `subject` granting `access` (`[{type, name, actions}]`).
    fn token(&self, subject: &str, access: serde_json::Value) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let header = serde_json::json!({
            "typ": "JWT", "alg": "ES256", "x5c": [STANDARD.encode(&self.cert_der)],
        });
        let claims = serde_json::json!({
            "iss": ISSUER, "sub": subject, "aud": SERVICE,
            "exp": now + 300, "nbf": now - 10, "iat": now,
            "jti": uuid::Uuid::new_v4().to_string(), "access": access,
        });
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self
            .key
            .sign(&ring::rand::SystemRandom::new(), signed.as_bytes())
            .unwrap();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

/// `%3A` -> `:` (query values).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// One HTTP/1.1 request of the issuer: `GET /token?scope=...&service=...` with Basic
/// credentials.
fn serve(
    mut stream: std::net::TcpStream,
    signer: &Signer,
    asked: &Mutex<Vec<String>>,
    issued: &Mutex<Vec<String>>,
) {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request).into_owned();
    let target = text.split_whitespace().nth(1).unwrap_or_default();
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let authorization = text
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("authorization")
                .then(|| value.trim().to_owned())
        })
        .unwrap_or_default();
    let user = match authorization.strip_prefix("Basic ") {
        Some(b) if b == basic(USER, PASSWORD) => USER.to_owned(),
        Some(_) => "!".to_owned(),
        None => "-".to_owned(),
    };
    asked.lock().unwrap().push(user.clone());
    let (status, body) = if user == USER {
        let access: Vec<serde_json::Value> = query
            .split('&')
            .filter_map(|kv| kv.strip_prefix("scope="))
            .map(percent_decode)
            .filter_map(|scope| {
                let mut parts = scope.splitn(3, ':');
                let (kind, name, actions) = (parts.next()?, parts.next()?, parts.next()?);
                Some(serde_json::json!({
                    "type": kind, "name": name,
                    "actions": actions.split(',').collect::<Vec<_>>(),
                }))
            })
            .collect();
        let token = signer.token(USER, serde_json::Value::Array(access));
        issued.lock().unwrap().push(token.clone());
        (
            "200 OK",
            serde_json::json!({"token": token, "access_token": token, "expires_in": 300})
                .to_string(),
        )
    } else {
        (
            "401 Unauthorized",
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"the issuer does not know these credentials"}]}"#.to_owned(),
        )
    };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

#[test]
fn bearer_tokens_from_the_registrys_token_issuer() {
    require_root!();
    let issuer_port = 5601;
    let Some(s) = Setup::new(5445, |_, ca| {
        format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{issuer_port}/token\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            ca.ca_file.display()
        )
    }) else {
        return;
    };
    let issuer = TokenIssuer::start(&s.node, issuer_port, &s.ca);
    s.push();
    assert!(
        issuer.asked().contains(&USER.to_owned()),
        "skopeo got a token"
    );
    let before = issuer.asked().len();
    let secrets = all_secrets();
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    // A pull secret with the right credentials: the issuer is asked, the pull works.
    let manifest = s.write("pod.yaml", &s.manifest_with_secret("app", PASSWORD));
    let run = s.podrun_env(&["apply", "-f", &manifest], &[("PODRUN_LOG", "trace")]);
    assert_eq!(run.code, 0, "{run:?}");
    let asked = issuer.asked();
    assert!(
        asked[before..].iter().all(|u| u == USER) && asked.len() > before,
        "podrun asked the issuer with the secret's credentials: {asked:?}"
    );
    // No token in the trace either.
    let issued = issuer.issued();
    assert!(issued.len() > before);
    assert_no_secrets(&run, &issued.iter().map(String::as_str).collect::<Vec<_>>());
    assert_no_secrets(&run, &secrets);
    s.wait_running("app");
    assert!(s.has_image());
    s.podrun(&["delete", "pod", "app", "--now"]).ok();
    s.podrun(&["image", "rm", &s.image()]).ok();
    // Wrong credentials: the issuer refuses them, the pull is unauthorized.
    let wrong = s.write(
        "wrong.json",
        &docker_config(&s.registry.host(), USER, WRONG),
    );
    let run = s.podrun_env(
        &["pull", "--authfile", &wrong, &s.image()],
        &[("PODRUN_LOG", "trace")],
    );
    assert_unauthorized(&s, &run, &secrets);
    assert!(run.stderr.contains("token server"), "{run:?}");
    assert_eq!(issuer.asked().last().map(String::as_str), Some("!"));
    assert!(!s.has_image());
    drop(issuer);
    s.finish();
}

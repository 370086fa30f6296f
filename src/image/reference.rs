//! Image references, parsed and normalised as docker, podman and containerd do
//! (`github.com/distribution/reference`):
//!
//! ```text
//! reference := name [ ":" tag ] [ "@" digest ]
//! name      := [domain "/"] path-component ["/" path-component]*
//! ```
//!
//! `python:3.11` is `docker.io/library/python:3.11`, a reference without tag or digest gets
//! `:latest`, the first component is a domain when it holds a `.` or `:`, is `localhost` or has
//! an upper-case letter.

use std::fmt;

use super::error::{ImageError, Result};

pub const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
pub const DEFAULT_TAG: &str = "latest";
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// A normalised reference: `domain/path[:tag][@digest]`, with `:latest` when neither is given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Reference {
    pub domain: String,
    pub path: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
    /// Whether the input named its domain (`docker.io/x`, `podrun.local/x`) rather than getting
    /// the default; short names may also match local images of any domain.
    pub explicit_domain: bool,
}

impl Reference {
    /// Parses and normalises `text`; the error names the value and the reason.
    pub fn parse(text: &str) -> Result<Reference> {
        let invalid = |reason: &str| ImageError::InvalidReference {
            reference: text.to_owned(),
            reason: reason.to_owned(),
        };
        if text.is_empty() {
            return Err(invalid("repository name must have at least one component"));
        }
        if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(
                "cannot specify 64-byte hexadecimal strings as a name",
            ));
        }
        let (name_tag, digest) = match text.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (text, None),
        };
        let (name, tag) = split_tag(name_tag);
        if let Some(digest) = digest {
            check_digest(digest).map_err(|r| invalid(&r))?;
        }
        if let Some(tag) = tag {
            check_tag(tag).map_err(|r| invalid(&r))?;
        }
        if name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(invalid(
                "repository name must not be more than 255 characters",
            ));
        }
        let (domain, path, explicit_domain) = split_domain(name);
        check_domain(&domain).map_err(|r| invalid(&r))?;
        if path.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid("repository name must be lowercase"));
        }
        for component in path.split('/') {
            check_path_component(component).map_err(|r| invalid(&r))?;
        }
        let tag = match (tag, digest) {
            (None, None) => Some(DEFAULT_TAG.to_owned()),
            (t, _) => t.map(str::to_owned),
        };
        Ok(Reference {
            domain,
            path,
            tag,
            digest: digest.map(str::to_owned),
            explicit_domain,
        })
    }

    /// `domain/path`, the REPOSITORY column.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The tag, or `<none>` for a digest-only reference.
    pub fn tag_or_none(&self) -> &str {
        self.tag.as_deref().unwrap_or("<none>")
    }

    /// The reference with its domain (and docker.io's `library/`) dropped when it is the default.
    pub fn familiar(&self) -> String {
        let mut out = if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix(OFFICIAL_REPO_PREFIX)
                .filter(|rest| !rest.contains('/'))
                .unwrap_or(&self.path)
                .to_owned()
        } else {
            self.repository()
        };
        self.push_suffix(&mut out);
        out
    }

    /// Whether this short name (no explicit domain) names `other` in some domain: its path is
    /// `other`'s path or a trailing part of it, with the same tag and digest. As podman matches
    /// local images for short names, `debug:1` finds `podrun.local/debug:1`.
    pub fn short_name_matches(&self, other: &Reference) -> bool {
        if self.explicit_domain || self.tag != other.tag || self.digest != other.digest {
            return false;
        }
        let path = self
            .path
            .strip_prefix(OFFICIAL_REPO_PREFIX)
            .filter(|_| self.domain == DEFAULT_DOMAIN)
            .unwrap_or(&self.path);
        other.path == path || other.path.ends_with(&format!("/{path}"))
    }

    fn push_suffix(&self, out: &mut String) {
        if let Some(tag) = &self.tag {
            out.push(':');
            out.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            out.push('@');
            out.push_str(digest);
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = self.repository();
        self.push_suffix(&mut out);
        f.write_str(&out)
    }
}

/// The tag is after the last `:` that follows the last `/` (a `:` before it is a port).
fn split_tag(name_tag: &str) -> (&str, Option<&str>) {
    let last_slash = name_tag.rfind('/').map_or(0, |i| i + 1);
    match name_tag[last_slash..].rfind(':') {
        Some(i) => (
            &name_tag[..last_slash + i],
            Some(&name_tag[last_slash + i + 1..]),
        ),
        None => (name_tag, None),
    }
}

fn split_domain(name: &str) -> (String, String, bool) {
    let (mut domain, mut path, explicit) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first.to_owned(), rest.to_owned(), true)
        }
        _ => (DEFAULT_DOMAIN.to_owned(), name.to_owned(), false),
    };
    if domain == LEGACY_DEFAULT_DOMAIN {
        domain = DEFAULT_DOMAIN.to_owned();
    }
    if domain == DEFAULT_DOMAIN && !path.contains('/') {
        path = format!("{OFFICIAL_REPO_PREFIX}{path}");
    }
    (domain, path, explicit)
}

fn check_domain(domain: &str) -> std::result::Result<(), String> {
    let (host, port) = match domain.find(']') {
        Some(end) if domain.starts_with('[') => match &domain[end + 1..] {
            "" => (&domain[..=end], None),
            rest => (&domain[..=end], Some(rest.strip_prefix(':').unwrap_or(""))),
        },
        _ => match domain.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (domain, None),
        },
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(format!("invalid port in domain {domain:?}"));
    }
    if host.starts_with('[') && host.ends_with(']') {
        let inner = &host[1..host.len() - 1];
        return if !inner.is_empty() && inner.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            Ok(())
        } else {
            Err(format!("invalid domain {domain:?}"))
        };
    }
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !c.starts_with('-')
            && !c.ends_with('-')
    };
    if host.split('.').all(component_ok) {
        Ok(())
    } else {
        Err(format!("invalid domain {domain:?}"))
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn check_path_component(component: &str) -> std::result::Result<(), String> {
    let bad = || Err(format!("invalid repository path component {component:?}"));
    if component.is_empty() {
        return bad();
    }
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return bad();
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-');
        if !ok {
            return bad();
        }
    }
    Ok(())
}

/// `[\w][\w.-]{0,127}`
fn check_tag(tag: &str) -> std::result::Result<(), String> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let ok = !tag.is_empty()
        && tag.len() <= 128
        && word(tag.as_bytes()[0])
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!("invalid tag {tag:?}"))
    }
}

/// `algorithm:hex`, sha256 with exactly 64 lower-case hex digits.
fn check_digest(digest: &str) -> std::result::Result<(), String> {
    let bad = |why: &str| Err(format!("invalid digest {digest:?}: {why}"));
    let Some((algorithm, hex)) = digest.split_once(':') else {
        return bad("expected ALGORITHM:HEX");
    };
    let algorithm_ok = !algorithm.is_empty()
        && algorithm.as_bytes()[0].is_ascii_alphabetic()
        && algorithm
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+._-".contains(&b));
    if !algorithm_ok {
        return bad("invalid algorithm");
    }
    if hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return bad("invalid hex");
    }
    if algorithm == "sha256" && (hex.len() != 64 || hex.bytes().any(|b| b.is_ascii_uppercase())) {
        return bad("sha256 needs 64 lower-case hex digits");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(text: &str) -> String {
        Reference::parse(text).unwrap().to_string()
    }

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalises_like_docker() {
        let cases = [
            ("python:3.11", "docker.io/library/python:3.11"),
            ("python", "docker.io/library/python:latest"),
            ("curlimages/curl:8.5.0", "docker.io/curlimages/curl:8.5.0"),
            ("docker.io/python", "docker.io/library/python:latest"),
            ("index.docker.io/python:3", "docker.io/library/python:3"),
            ("registry.example/x/y:tag", "registry.example/x/y:tag"),
            (
                "registry.example:5000/x/y",
                "registry.example:5000/x/y:latest",
            ),
            ("localhost/debug", "localhost/debug:latest"),
            ("localhost:5000/a/b:c", "localhost:5000/a/b:c"),
            ("podrun.local/debug:1", "podrun.local/debug:1"),
            (
                "podrun.local/python:3.11-slim",
                "podrun.local/python:3.11-slim",
            ),
            (
                "a_b.c-d__e--f:v1.0_x-y",
                "docker.io/library/a_b.c-d__e--f:v1.0_x-y",
            ),
            ("Registry/x", "Registry/x:latest"),
            ("[::1]:5000/x", "[::1]:5000/x:latest"),
            ("[::1]/x", "[::1]/x:latest"),
        ];
        for (input, want) in cases {
            assert_eq!(norm(input), want, "{input}");
        }
    }

    #[test]
    fn digests() {
        assert_eq!(
            norm(&format!("python@{D}")),
            format!("docker.io/library/python@{D}")
        );
        assert_eq!(
            norm(&format!("python:3@{D}")),
            format!("docker.io/library/python:3@{D}")
        );
        let r = Reference::parse(&format!("x@{D}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.tag_or_none(), "<none>");
    }

    #[test]
    fn familiar_names() {
        let f = |s: &str| Reference::parse(s).unwrap().familiar();
        assert_eq!(f("python:3.11"), "python:3.11");
        assert_eq!(f("curlimages/curl:8.5.0"), "curlimages/curl:8.5.0");
        assert_eq!(f("podrun.local/debug:1"), "podrun.local/debug:1");
    }

    #[test]
    fn invalid_references_name_the_value() {
        for bad in [
            "",
            "Python",
            "python:",
            "python:-x",
            "py thon",
            "python@sha256:123",
            "python@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
            "python@md5",
            "a//b",
            "x/-y",
            "x/y_",
            "x/y..z",
            "host:port/x",
            "-host.example/x",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            &format!("{}:1", "a".repeat(256)),
            &format!("x:{}", "a".repeat(129)),
        ] {
            let err = Reference::parse(bad).unwrap_err().to_string();
            assert!(err.contains(&format!("{bad:?}")), "{bad:?} gave {err}");
        }
    }

    #[test]
    fn short_names_match_any_domain() {
        let local = Reference::parse("podrun.local/debug:1").unwrap();
        assert!(
            Reference::parse("debug:1")
                .unwrap()
                .short_name_matches(&local)
        );
        assert!(
            !Reference::parse("debug:2")
                .unwrap()
                .short_name_matches(&local)
        );
        assert!(
            !Reference::parse("docker.io/debug:1")
                .unwrap()
                .short_name_matches(&local)
        );
        let nested = Reference::parse("podrun.local/tools/debug:1").unwrap();
        assert!(
            Reference::parse("tools/debug:1")
                .unwrap()
                .short_name_matches(&nested)
        );
        assert!(
            Reference::parse("debug:1")
                .unwrap()
                .short_name_matches(&nested)
        );
    }
}

//! The image's `User` (`uid`, `name`, `uid:gid`, `name:group`, ...) as numeric IDs, looked up in
//! the image's own /etc/passwd and /etc/group, as runc does: a numeric user missing from passwd
//! runs with gid 0; supplementary groups are the groups that list the user by name.

use std::path::Path;

use super::error::{ImageError, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// The user's home from passwd (`/` when unknown), for `HOME`.
    pub home: String,
}

/// Resolves `spec` (empty: root) against `rootfs`'s passwd and group files.
pub fn resolve_user(rootfs: &Path, spec: &str) -> Result<ExecUser> {
    let passwd = read_table(&rootfs.join("etc/passwd"));
    let group = read_table(&rootfs.join("etc/group"));
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };
    let bad = |reason: String| ImageError::User {
        user: spec.to_owned(),
        reason,
    };
    let entry = passwd
        .iter()
        .find(|f| f.len() >= 6 && (f[0] == user_part || f[2] == user_part));
    let (uid, mut gid, name, home) = match entry {
        Some(f) => (
            f[2].parse()
                .map_err(|_| bad(format!("bad uid in passwd for {user_part}")))?,
            f[3].parse()
                .map_err(|_| bad(format!("bad gid in passwd for {user_part}")))?,
            Some(f[0].clone()),
            f[5].clone(),
        ),
        None => match user_part.parse::<u32>() {
            Ok(uid) => (uid, 0, None, "/".to_owned()),
            Err(_) => {
                return Err(bad(format!(
                    "no user {user_part:?} in the image's /etc/passwd"
                )));
            }
        },
    };
    if let Some(g) = group_part.filter(|g| !g.is_empty()) {
        gid = match group
            .iter()
            .find(|f| f.len() >= 3 && (f[0] == g || f[2] == g))
        {
            Some(f) => f[2]
                .parse()
                .map_err(|_| bad(format!("bad gid in group for {g}")))?,
            None => g
                .parse()
                .map_err(|_| bad(format!("no group {g:?} in the image's /etc/group")))?,
        };
    }
    let mut additional_gids = Vec::new();
    if let (Some(name), None) = (&name, group_part) {
        for f in group.iter().filter(|f| f.len() >= 4) {
            if f[3].split(',').any(|m| m == name)
                && let Ok(g) = f[2].parse::<u32>()
                && g != gid
                && !additional_gids.contains(&g)
            {
                additional_gids.push(g);
            }
        }
    }
    Ok(ExecUser {
        uid,
        gid,
        additional_gids,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

fn read_table(path: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').map(str::to_owned).collect())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::fs::write(
            t.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            t.path().join("etc/group"),
            "root:x:0:\napp:x:1000:\nweb:x:33:app\nstaff:x:50:other,app\n",
        )
        .unwrap();
        t
    }

    #[test]
    fn users_and_groups() {
        let t = rootfs();
        let r = |s: &str| resolve_user(t.path(), s).unwrap();
        assert_eq!((r("").uid, r("").gid, r("").home.as_str()), (0, 0, "/root"));
        let app = r("app");
        assert_eq!((app.uid, app.gid), (1000, 1000));
        assert_eq!(app.additional_gids, [33, 50]);
        assert_eq!(app.home, "/home/app");
        assert_eq!(r("1000").uid, 1000);
        let custom = r("app:web");
        assert_eq!((custom.uid, custom.gid), (1000, 33));
        assert!(custom.additional_gids.is_empty());
        let numeric = r("4242");
        assert_eq!(
            (numeric.uid, numeric.gid, numeric.home.as_str()),
            (4242, 0, "/")
        );
        assert_eq!(r("4242:7").gid, 7);
        assert!(resolve_user(t.path(), "nobody-here").is_err());
        assert!(resolve_user(t.path(), "app:nogroup").is_err());
    }
}

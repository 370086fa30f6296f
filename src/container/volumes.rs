//! Pod volumes on the host side: hostPath type checks (the kubelet's `hostPathTypeChecker`
//! wording), configMap/secret files, emptyDir directories. Memory emptyDirs and the pod's
//! /dev/shm are tmpfs mounts made with the mount API and never attached on the host: the
//! supervisor holds them as detached mounts and each container's init mounts a clone (see
//! `crate::sys::fs_mount`).

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use crate::spec::ProjectedFile;

/// Check (and for the `...OrCreate` types, create) a hostPath, as the kubelet does before it
/// mounts one. `create` is false for a dry check at apply time.
pub fn check_host_path(path: &str, kind: &str, create: bool) -> Result<(), String> {
    let p = Path::new(path);
    let meta = fs::metadata(p);
    let fail = |what: &str| Err(format!("hostPath type check failed: {path} is not {what}"));
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => fail("a directory"),
            Err(_) if !create => Ok(()),
            Err(_) => fs::create_dir_all(p)
                .and_then(|_| fs::set_permissions(p, fs::Permissions::from_mode(0o755)))
                .map_err(|e| format!("create hostPath {path}: {e}")),
        },
        "Directory" => match meta {
            Ok(m) if m.is_dir() => Ok(()),
            _ => fail("a directory"),
        },
        "FileOrCreate" => match meta {
            Ok(m) if m.is_file() => Ok(()),
            Ok(_) => fail("a file"),
            Err(_) if !create => Ok(()),
            Err(_) => {
                if let Some(parent) = p.parent() {
                    fs::create_dir_all(parent).map_err(|e| format!("create {path}: {e}"))?;
                }
                fs::File::create(p)
                    .and_then(|_| fs::set_permissions(p, fs::Permissions::from_mode(0o644)))
                    .map_err(|e| format!("create hostPath {path}: {e}"))
            }
        },
        "File" => match meta {
            Ok(m) if m.is_file() => Ok(()),
            _ => fail("a file"),
        },
        "Socket" => match meta {
            Ok(m) if m.file_type().is_socket() => Ok(()),
            _ => fail("a socket file"),
        },
        "CharDevice" => match meta {
            Ok(m) if m.file_type().is_char_device() => Ok(()),
            _ => fail("a character device"),
        },
        "BlockDevice" => match meta {
            Ok(m) if m.file_type().is_block_device() => Ok(()),
            _ => fail("a block device"),
        },
        other => Err(format!("hostPath type {other} is not supported")),
    }
}

/// Write a configMap/secret volume's files under `dir` (created), each with its mode.
pub fn write_files(dir: &Path, files: &[ProjectedFile]) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    for f in files {
        let path = dir.join(&f.path);
        if !path.starts_with(dir) || f.path.split('/').any(|p| p == "..") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("file path {:?} leaves the volume", f.path),
            ));
        }
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, &f.data.0)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(f.mode & 0o777))?;
    }
    Ok(())
}

/// `subPath` below `source`, created as a directory when missing (as the kubelet does).
pub fn sub_path(source: &Path, sub: Option<&str>) -> io::Result<std::path::PathBuf> {
    let Some(sub) = sub else {
        return Ok(source.to_owned());
    };
    if sub.starts_with('/') || sub.split('/').any(|p| p == "..") {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("subPath {sub:?} must be a relative path inside the volume"),
        ));
    }
    let path = source.join(sub);
    if fs::symlink_metadata(&path).is_err() {
        fs::create_dir_all(&path)?;
    }
    // A symlink in the volume must not lead the mount out of it.
    let real = fs::canonicalize(&path)?;
    let base = fs::canonicalize(source)?;
    if !real.starts_with(&base) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("subPath {sub:?} resolves outside the volume"),
        ));
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_path_types() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap().to_owned();
        let f = dir.path().join("f");
        fs::write(&f, "x").unwrap();
        let f = f.to_str().unwrap().to_owned();
        assert!(check_host_path(&d, "Directory", false).is_ok());
        assert_eq!(
            check_host_path(&f, "Directory", false).unwrap_err(),
            format!("hostPath type check failed: {f} is not a directory")
        );
        assert!(check_host_path(&f, "File", false).is_ok());
        assert!(
            check_host_path(&d, "File", false)
                .unwrap_err()
                .ends_with("is not a file")
        );
        assert!(check_host_path(&d, "Socket", false).is_err());
        let new = format!("{d}/new/dir");
        assert!(check_host_path(&new, "DirectoryOrCreate", false).is_ok());
        assert!(!Path::new(&new).exists());
        check_host_path(&new, "DirectoryOrCreate", true).unwrap();
        assert!(Path::new(&new).is_dir());
        assert!(check_host_path(&f, "DirectoryOrCreate", true).is_err());
    }

    #[test]
    fn projected_files_and_sub_paths() {
        let dir = tempfile::tempdir().unwrap();
        let files = [ProjectedFile {
            path: "conf/app.ini".into(),
            data: k8s_openapi::ByteString(b"a=1".to_vec()),
            mode: 0o600,
        }];
        write_files(dir.path(), &files).unwrap();
        let p = dir.path().join("conf/app.ini");
        assert_eq!(fs::read(&p).unwrap(), b"a=1");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            sub_path(dir.path(), Some("x/y")).unwrap(),
            dir.path().join("x/y")
        );
        assert!(dir.path().join("x/y").is_dir());
        assert!(sub_path(dir.path(), Some("../up")).is_err());
    }
}

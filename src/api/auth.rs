//! The bearer token: 32 random bytes (hex) made on first start, kept in `<api dir>/token`
//! (mode 0600). Every request must carry `Authorization: Bearer <token>`.

use std::path::Path;

use super::{ApiError, write_private};

/// The token of `dir`, made if missing.
pub fn load_or_create(dir: &Path) -> Result<String, ApiError> {
    let path = dir.join("token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_owned();
        if t.len() >= 32 {
            return Ok(t);
        }
    }
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .map_err(|e| ApiError::io("/dev/urandom", e))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write_private(&path, token.as_bytes())?;
    Ok(token)
}

/// Whether an `Authorization` header value carries `token`. The comparison takes the same
/// time whatever prefix matches.
pub fn authorized(header: Option<&[u8]>, token: &str) -> bool {
    let Some(given) = header.and_then(|h| h.strip_prefix(b"Bearer ")) else {
        return false;
    };
    let want = token.as_bytes();
    if given.len() != want.len() {
        return false;
    }
    given
        .iter()
        .zip(want)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_only_the_exact_token() {
        assert!(authorized(Some(b"Bearer abc"), "abc"));
        assert!(!authorized(Some(b"Bearer abd"), "abc"));
        assert!(!authorized(Some(b"Bearer ab"), "abc"));
        assert!(!authorized(Some(b"Basic abc"), "abc"));
        assert!(!authorized(None, "abc"));
    }
}

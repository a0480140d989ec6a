//! The `Accept` header: which format a client prefers.

/// The quality (`q`) an `Accept` header gives each of `media` (0 where it lists none of it),
/// in the order of `media`. Media types compare without case; parameters other than `q` are
/// ignored.
pub fn qualities<const N: usize>(accept: &[u8], media: [&str; N]) -> [f32; N] {
    let accept = String::from_utf8_lossy(accept).to_ascii_lowercase();
    let mut q = [0.0f32; N];
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let m = parts.next().unwrap_or("");
        let v = parts
            .filter_map(|p| p.strip_prefix("q="))
            .find_map(|v| v.parse::<f32>().ok())
            .unwrap_or(1.0);
        if let Some(i) = media.iter().position(|&x| x == m) {
            q[i] = q[i].max(v);
        }
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qualities_by_media_type() {
        let a = b"Application/JSON;q=0.5, text/plain;version=0.0.4, */*;q=0.1";
        assert_eq!(
            qualities(a, ["application/json", "text/plain", "text/html"]),
            [0.5, 1.0, 0.0]
        );
        assert_eq!(qualities(b"", ["application/json"]), [0.0]);
        assert_eq!(
            qualities(
                b"application/json;q=0.2,application/json;q=0.7",
                ["application/json"]
            ),
            [0.7]
        );
    }
}

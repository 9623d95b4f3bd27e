//! How an uploader knows an object is the file it sent: the size, and the ETag S3-compatible
//! servers compute from the bytes they stored: the MD5 of the object for a single PUT, and for
//! a multipart upload the MD5 of the parts' MD5s followed by `-<parts>`. Computing the same
//! from the local file and comparing proves the stored bytes, without downloading them.
use md5::{Digest as _, Md5};

/// The ETag a server gives the bytes when they are uploaded in parts of `part_size` (a single
/// PUT when they fit in one part).
pub fn expected_etag(bytes: &[u8], part_size: usize) -> String {
    if bytes.len() <= part_size {
        return hex(&Md5::digest(bytes));
    }
    let mut outer = Md5::new();
    let mut parts = 0;
    for part in bytes.chunks(part_size) {
        outer.update(Md5::digest(part));
        parts += 1;
    }
    format!("{}-{parts}", hex(&outer.finalize()))
}

/// Whether a server's ETag (quoted or not, any case) is the one expected.
pub fn etag_matches(server: &str, expected: &str) -> bool {
    server.trim_matches('"').eq_ignore_ascii_case(expected)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_put_etag_is_the_md5() {
        // md5("hello") as every S3 server reports it.
        assert_eq!(
            expected_etag(b"hello", 8),
            "5d41402abc4b2a76b9719d911017c592"
        );
        assert!(etag_matches(
            "\"5D41402ABC4B2A76B9719D911017C592\"",
            &expected_etag(b"hello", 8)
        ));
    }

    #[test]
    fn multipart_etag_counts_the_parts() {
        let etag = expected_etag(&[7u8; 20], 8);
        assert!(etag.ends_with("-3"), "{etag}");
        assert_ne!(etag, expected_etag(&[7u8; 20], 10));
    }
}

//! Vectors as SQLite blobs: little-endian f32, whatever the host's byte order.

/// Encodes a vector as little-endian f32 bytes.
pub fn vector_to_blob(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Decodes little-endian f32 bytes; `None` if the length is not a multiple of 4.
pub fn blob_to_vector(blob: &[u8]) -> Option<Vec<f32>> {
    if !blob.len().is_multiple_of(4) {
        return None;
    }
    Some(
        blob.chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_length() {
        let v = vec![1.5f32, -0.0, f32::MIN_POSITIVE, 3.0e-8];
        assert_eq!(blob_to_vector(&vector_to_blob(&v)).unwrap(), v);
        assert_eq!(vector_to_blob(&[1.0]), 1.0f32.to_le_bytes().to_vec());
        assert!(blob_to_vector(&[0, 0, 0]).is_none());
    }
}

//! Reading the JSON document in tests (serde_json with key order kept).

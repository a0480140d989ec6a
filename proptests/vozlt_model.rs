//! Placeholder replaced by the model test of zones with time queues and status codes.
#[test]
fn placeholder() {}

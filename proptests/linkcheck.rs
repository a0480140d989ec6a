#[allow(dead_code, unused_imports)]
#[path = "../src/conf/mod.rs"]
mod conf;
#[allow(dead_code, unused_imports)]
#[path = "../src/render/mod.rs"]
mod render;
#[allow(dead_code, unused_imports)]
#[path = "../src/stats/mod.rs"]
mod stats;
#[allow(dead_code, unused_imports)]
#[path = "../src/view.rs"]
mod view;
use stats::{HeapRegion, Zone};
#[test]
fn links() {
    let mut r = HeapRegion::new(1 << 20);
    let z = unsafe { Zone::create(r.base(), r.len(), 11, 1, 0) }.unwrap();
    assert_eq!(z.snapshot().entries.len(), 2);
}

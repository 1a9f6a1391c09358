//! Host tier: the init runs real pods as root in real namespaces.

mod common;

use common::*;
use pod1_manifest::events::Phase;

#[test]
fn exit_zero_and_logs() {
    let o = run(&pod(vec![sh("a", "echo hello; echo oops >&2; printf partial")]));
    check(&o);
    assert_eq!(o.stdout("a"), ["hello", "partial"]);
    assert_eq!(o.logs("a"), ["hello", "oops", "partial"]);
    assert_eq!(o.exits("a"), [(0, None)]);
    assert_eq!(o.pod_exit(), (Phase::Succeeded, 0));
}

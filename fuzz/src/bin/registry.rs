//! afl target `registry`: see `pod1_fuzz::registry`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        pod1_fuzz::registry::registry(data);
    });
}

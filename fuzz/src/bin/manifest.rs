//! afl target `manifest`: see `pod1_fuzz::manifest`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        pod1_fuzz::manifest::run(data);
    });
}

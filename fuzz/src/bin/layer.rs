//! afl target `layer`: see `pod1_fuzz::image`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        pod1_fuzz::image::layer(data);
    });
}

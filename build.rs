//! Embeds the OpenAPI document (`src/http/openapi.json`, generated from the REST types by a unit
//! test and checked in, pretty-printed for review) gzip-compressed: 200 KB of indented JSON
//! become about 15 KB in the binary, which must stay under 15 MB. `http::openapi` serves the
//! bytes as they are to clients that accept gzip and inflates them for the rest.

use std::io::Write;

fn main() {
    let source = "src/http/openapi.json";
    println!("cargo::rerun-if-changed={source}");
    let text = std::fs::read(source).expect("reads src/http/openapi.json");
    let doc: serde_json::Value =
        serde_json::from_slice(&text).expect("src/http/openapi.json is JSON");
    let compact = serde_json::to_vec(&doc).expect("serializes the document");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&compact).expect("compresses in memory");
    let bytes = gz.finish().expect("compresses in memory");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out.join("openapi.json.gz"), bytes).expect("writes to OUT_DIR");
}

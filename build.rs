//! Embeds what the server serves from files gzip-compressed: the OpenAPI document
//! (`src/http/openapi.json`, generated from the REST types by a unit test and checked in
//! pretty-printed for review; compacted first), the widget, the demo page and the console (its
//! page, modules, service worker, manifest and icons). About 400 KB of text become about 90 KB in the binary, which must stay
//! under 15 MB. `http::embedded` serves the bytes as they are to clients that accept gzip and
//! inflates them once for the rest. Each file lands in OUT_DIR as `<name with / as ->.gz`.

use std::io::Write;
use std::path::Path;

fn main() {
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let openapi = "src/http/openapi.json";
    println!("cargo::rerun-if-changed={openapi}");
    let text = std::fs::read(openapi).expect("reads src/http/openapi.json");
    let doc: serde_json::Value =
        serde_json::from_slice(&text).expect("src/http/openapi.json is JSON");
    let compact = serde_json::to_vec(&doc).expect("serializes the document");
    write_gz(&out, "openapi.json", &compact);

    println!("cargo::rerun-if-changed=widget");
    for file in [
        "widget/widget.js",
        "widget/demo.html",
        "widget/console.html",
    ] {
        embed(&out, file);
    }
    let mut modules: Vec<_> = std::fs::read_dir("widget/console")
        .expect("reads widget/console")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| ["js", "webmanifest", "svg", "png"].iter().any(|k| x == *k))
        })
        .collect();
    modules.sort();
    for m in modules {
        embed(&out, m.to_str().expect("file names are UTF-8"));
    }
}

fn embed(out: &Path, file: &str) {
    println!("cargo::rerun-if-changed={file}");
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("reads {file}: {e}"));
    let name = file.trim_start_matches("widget/").replace('/', "-");
    write_gz(out, &name, &bytes);
}

fn write_gz(out: &Path, name: &str, bytes: &[u8]) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(bytes).expect("compresses in memory");
    let compressed = gz.finish().expect("compresses in memory");
    std::fs::write(out.join(format!("{name}.gz")), compressed).expect("writes to OUT_DIR");
}

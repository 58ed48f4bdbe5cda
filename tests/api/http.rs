//! HTTP done properly for the static files and REST: compression, entity tags and revalidation,
//! a versioned widget URL that may be cached for a year.

use crate::helpers::*;

async fn get(url: String, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    tokio::time::timeout(WAIT, req.send())
        .await
        .expect("an answer")
        .unwrap()
}

/// The widget comes compressed when the client accepts it, with an ETag that a revalidation
/// answers with 304, and a Link to its versioned URL, which is immutable for a year.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_files_are_compressed_tagged_and_versioned() {
    let app = spawn_app(Backend::Memory, config(&[])).await;
    let base = format!("http://{}", app.addr);
    let plain = get(format!("{base}/widget.js"), &[]).await;
    assert_eq!(plain.status(), 200);
    assert!(plain.headers().get("content-encoding").is_none());
    let etag = plain.headers()["etag"].to_str().unwrap().to_owned();
    let link = plain.headers()["link"].to_str().unwrap().to_owned();
    let size = plain.bytes().await.unwrap().len();

    let gz = get(format!("{base}/widget.js"), &[("accept-encoding", "gzip")]).await;
    assert_eq!(gz.headers()["content-encoding"], "gzip");
    assert_eq!(gz.headers()["etag"].to_str().unwrap(), etag);
    let body = gz.bytes().await.unwrap();
    assert_eq!(&body[..2], &[0x1f, 0x8b], "a gzip stream");
    assert!(body.len() * 2 < size, "{} of {size} bytes", body.len());

    let again = get(format!("{base}/widget.js"), &[("if-none-match", &etag)]).await;
    assert_eq!(again.status(), 304);
    assert!(again.bytes().await.unwrap().is_empty());

    let path = link
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_owned();
    let versioned = get(format!("{base}{path}"), &[]).await;
    assert_eq!(versioned.status(), 200);
    assert_eq!(
        versioned.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(versioned.bytes().await.unwrap().len(), size);
    assert_eq!(
        get(format!("{base}/widget/0123456789abcdef.js"), &[])
            .await
            .status(),
        404
    );

    let console = get(format!("{base}/console/"), &[]).await;
    let tag = console.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(console.headers()["x-frame-options"], "DENY");
    let revalidated = get(format!("{base}/console/"), &[("if-none-match", &tag)]).await;
    assert_eq!(revalidated.status(), 304);

    // REST too: a large JSON answer comes with brotli when asked; a small one is left alone.
    let doc = get(
        format!("{base}/v1/openapi.json"),
        &[("accept-encoding", "br")],
    )
    .await;
    assert_eq!(doc.headers()["content-encoding"], "br");
    let small = get(
        format!("{base}/healthz"),
        &[("accept-encoding", "gzip, br")],
    )
    .await;
    assert!(small.headers().get("content-encoding").is_none());
    app.stop().await;
}

//! Files in chats: images and PDFs both ways over HTTP, shown to those who may read the chat
//! and nobody else, kept on the ticket and erased with the visitor.

use serde_json::{Value, json};

use crate::all_stores;
use crate::helpers::*;

all_stores!(
    files_travel_both_ways_to_those_allowed,
    bad_files_are_refused
);

pub const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR-not-a-real-picture-but-its-signature";
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n";

/// Sends a file into a conversation with a bearer credential (a visitor token or an agent's
/// API token), from the site's origin; returns the status and the JSON body.
pub async fn send_file(
    app: &TestApp,
    conv: &str,
    bearer: &str,
    query: &str,
    body: &[u8],
    origin: Option<&str>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/conversations/{conv}/attachments?{query}",
            app.addr
        ))
        .bearer_auth(bearer)
        .body(body.to_vec());
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    let resp = tokio::time::timeout(WAIT, req.send())
        .await
        .expect("upload timed out")
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// How many events of a watched conversation (`GET /v1/conversations/{id}`) carry a file.
pub fn file_events(watched: &Value) -> usize {
    watched["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["attachment"].is_object())
        .count()
}

/// Fetches a file: status, headers and bytes.
async fn fetch(
    app: &TestApp,
    id: &str,
    bearer: &str,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let resp = reqwest::Client::new()
        .get(format!("http://{}/v1/attachments/{id}", app.addr))
        .bearer_auth(bearer)
        .header("origin", ORIGIN)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.bytes().await.unwrap().to_vec())
}

/// A visitor sends an image and the agent a PDF: each arrives as a message with its file, is
/// fetched by the other side with its own credentials (and by supervisors), never by another
/// agent or visitor; a retry stores nothing twice; the ticket keeps the files, and erasing the
/// visitor erases them.
async fn files_travel_both_ways_to_those_allowed(backend: Backend) {
    let cfg = config(&[alice(3), boris(3)]);
    let app = spawn_app(backend, cfg).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let _boris = agent_client(&app, "boris", "away").await;
    let (mut v, welcome, conv) = chat_with_hello(
        &app,
        &mut alice,
        json!({"name": "Vera"}),
        "m1",
        "Here is the error I get",
    )
    .await;
    let vtoken = welcome["token"].as_str().unwrap().to_owned();
    let vid = welcome["visitor_id"].as_str().unwrap().to_owned();

    // The widget's preflight from the site's origin is allowed; a foreign one is not.
    let client = reqwest::Client::new();
    let url = format!("http://{}/v1/conversations/{conv}/attachments", app.addr);
    let pre = client
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", ORIGIN)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status().as_u16(), 204);
    assert_eq!(pre.headers()["access-control-allow-origin"], ORIGIN);
    let pre = client
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "https://evil.test")
        .send()
        .await
        .unwrap();
    assert_eq!(pre.status().as_u16(), 403);

    // The visitor's image: stored, acknowledged, and the agent's console gets the message.
    let (status, sent) = send_file(
        &app,
        &conv,
        &vtoken,
        "client_id=f1&name=C%3A%5Cshots%5Cerror.png",
        PNG,
        Some(ORIGIN),
    )
    .await;
    assert_eq!(status, 201, "{sent}");
    assert_eq!(sent["conversation"], conv.as_str());
    let file = sent["attachment"].clone();
    assert_eq!(file["name"], "error.png", "the path is dropped");
    assert_eq!(file["content_type"], "image/png");
    assert_eq!(file["size"], PNG.len());
    let id = file["id"].as_str().unwrap().to_owned();
    let ev = alice
        .wait_for("the file message", |m| {
            m["type"] == "event" && m["event"]["attachment"]["id"] == id.as_str()
        })
        .await;
    assert_eq!(ev["event"]["seq"], sent["seq"]);
    assert_eq!(ev["event"]["author"], "visitor");
    assert_eq!(ev["event"]["author_name"], "Vera");
    assert_eq!(ev["event"]["text"], "error.png");
    // A retry (the widget lost the answer) stores neither the file nor the message again.
    let (status, again) = send_file(
        &app,
        &conv,
        &vtoken,
        "client_id=f1&name=error.png",
        PNG,
        None,
    )
    .await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again["seq"], sent["seq"]);
    assert_eq!(again["attachment"]["id"], id.as_str());

    // Alice (the chat's agent) fetches it: the bytes, inert.
    let (status, headers, bytes) = fetch(&app, &id, &token("alice")).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, PNG);
    assert_eq!(headers["content-type"], "image/png");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("sandbox")
    );
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline")
    );
    // Boris has nothing to do with this chat; another visitor neither. Supervisors may.
    assert_eq!(fetch(&app, &id, &token("boris")).await.0, 404);
    let (_, other) = visitor(&app, json!({})).await;
    assert_eq!(
        fetch(&app, &id, other["token"].as_str().unwrap()).await.0,
        404
    );
    assert_eq!(fetch(&app, &id, ADMIN_TOKEN).await.0, 200);
    assert_eq!(fetch(&app, &id, "v1.test.someone.forged").await.0, 401);

    // Alice answers with a PDF; the visitor gets it and downloads it (not shown inline).
    let (status, reply) = send_file(
        &app,
        &conv,
        &token("alice"),
        "client_id=a1&name=invoice%20%E2%84%9642.pdf",
        PDF,
        None,
    )
    .await;
    assert_eq!(status, 201, "{reply}");
    let pdf = reply["attachment"]["id"].as_str().unwrap().to_owned();
    let ev = v
        .wait_for("the agent's file", |m| {
            m["type"] == "event" && m["event"]["attachment"]["id"] == pdf.as_str()
        })
        .await;
    assert_eq!(ev["event"]["author_name"], "Alice Moreau");
    assert_eq!(ev["event"]["attachment"]["content_type"], "application/pdf");
    let (status, headers, bytes) = fetch(&app, &pdf, &vtoken).await;
    assert_eq!(status, 200);
    assert_eq!(bytes, PDF);
    assert_eq!(headers["access-control-allow-origin"], ORIGIN);
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(disposition.starts_with("attachment"), "{disposition}");
    assert!(
        disposition.contains("UTF-8''invoice%20%E2%84%9642.pdf"),
        "{disposition}"
    );
    // Only the chat's agent sends files into it.
    let (status, body) = send_file(&app, &conv, &token("boris"), "client_id=b1", PNG, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("not_owner"))
    );

    // Closed: the ticket keeps both files, and no more can be sent.
    alice
        .send(json!({"type": "close", "conversation": conv, "reason": "resolved"}))
        .await;
    let closed = alice
        .wait_for("closed", |m| {
            m["type"] == "closed" && m["conversation"] == conv.as_str()
        })
        .await;
    let ticket = closed["ticket"].as_str().unwrap().to_owned();
    let (status, t) = admin_get(&app, &format!("/v1/tickets/{ticket}")).await;
    assert_eq!(status, 200, "{t}");
    let files: Vec<&str> = t["transcript"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["attachment"]["id"].as_str())
        .collect();
    assert_eq!(files, [id.as_str(), pdf.as_str()]);
    let (status, body) = send_file(&app, &conv, &vtoken, "client_id=f2", PNG, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conversation_closed"))
    );
    // The chat's last agent still opens its files from the inbox.
    assert_eq!(fetch(&app, &id, &token("alice")).await.0, 200);

    // Erasing the visitor erases their files.
    let resp = client
        .delete(format!("http://{}/v1/visitors/{vid}", app.addr))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(fetch(&app, &id, ADMIN_TOKEN).await.0, 404);
    assert_eq!(fetch(&app, &pdf, ADMIN_TOKEN).await.0, 404);
    app.stop().await;
}

/// Markup under an image's name, files over the limit, requests from foreign pages, bad
/// credentials and other people's chats each get their own status and code; the chat goes on.
async fn bad_files_are_refused(backend: Backend) {
    let mut cfg = config(&[alice(3)]);
    cfg.attachments.max_bytes = 1024;
    cfg.attachments.max_per_conversation = 1;
    let app = spawn_app(backend, cfg).await;
    let mut alice = agent_client(&app, "alice", "online").await;
    let (mut v, welcome, conv) = chat_with_hello(&app, &mut alice, json!({}), "m1", "hello").await;
    let vtoken = welcome["token"].as_str().unwrap().to_owned();

    let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>";
    let html = b"<!DOCTYPE html><script>alert(1)</script>";
    for (body, name) in [
        (&svg[..], "x.svg"),
        (&html[..], "x.png"),
        (&b""[..], "empty.png"),
    ] {
        let (status, err) = send_file(
            &app,
            &conv,
            &vtoken,
            &format!("client_id=c-{name}&name={name}"),
            body,
            None,
        )
        .await;
        assert_eq!(status, 415, "{name}: {err}");
        assert_eq!(err["error"]["code"], "unsupported_type");
    }
    let big = [PNG, &[0u8; 1024][..]].concat();
    let (status, err) = send_file(&app, &conv, &vtoken, "client_id=big", &big, None).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (413, Some("too_large"))
    );
    let (status, err) = send_file(
        &app,
        &conv,
        &vtoken,
        "client_id=o1",
        PNG,
        Some("https://evil.test"),
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, _) = send_file(&app, &conv, "v1.test.x.bad", "client_id=t1", PNG, None).await;
    assert_eq!(status, 401);
    let (status, err) = send_file(&app, &conv, &vtoken, "", PNG, None).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (400, Some("bad_request"))
    );
    // Someone else's conversation is not found for this visitor.
    let (_, other) = visitor(&app, json!({})).await;
    let (status, _) = send_file(
        &app,
        &conv,
        other["token"].as_str().unwrap(),
        "client_id=x1",
        PNG,
        None,
    )
    .await;
    assert_eq!(status, 404);
    // The admin token reaches every site but owns no chat.
    let (status, _) = send_file(&app, &conv, ADMIN_TOKEN, "client_id=x2", PNG, None).await;
    assert_eq!(status, 403);

    // One file per conversation here: the second is refused, a retry of the first is not.
    let (status, first) = send_file(&app, &conv, &vtoken, "client_id=ok1", PNG, None).await;
    assert_eq!(status, 201, "{first}");
    let (status, err) = send_file(&app, &conv, &vtoken, "client_id=ok2", PNG, None).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (409, Some("too_many_files"))
    );
    let (status, again) = send_file(&app, &conv, &vtoken, "client_id=ok1", PNG, None).await;
    assert_eq!((status, &again["seq"]), (201, &first["seq"]));

    // Nothing of the refused ones reached the chat, which goes on.
    say(&mut v, "m2", "still here").await;
    let (status, watched) = admin_get(&app, &format!("/v1/conversations/{conv}")).await;
    assert_eq!(status, 200, "{watched}");
    assert_eq!(
        file_events(&watched),
        1,
        "a refused file left a message: {watched}"
    );
    app.stop().await;
}

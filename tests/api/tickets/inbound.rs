//! Email replies back into their ticket: an answer goes out with a reply address of the
//! ticket's; the visitor's reply, sent by a real SMTP client to the SMTP listener (or posted
//! raw to `POST /v1/inbound/email`), joins the ticket with its file, the quoted conversation
//! trimmed, the ticket open again and the department told.

use lettre::message::{Attachment, MultiPart, SinglePart, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::*;

all_stores!(an_email_reply_joins_its_ticket_with_its_file);
crate::both_backends!(reply_addresses_cannot_be_made_up, the_listener_is_bounded);

const PNG: &[u8] = &[
    0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, b'I', b'H', b'D', b'R', 0, 0, 0,
    1, 0, 0, 0, 1, 8, 6, 0, 0, 0, 0x1f, 0x15, 0xc4, 0x89,
];

/// A site that answers by email and takes replies at `support@replies.shop.test`, with the
/// SMTP listener on a free port; a sales agent beside Alice.
async fn mail_app(backend: Backend) -> (TestApp, SmtpSink) {
    let sink = SmtpSink::start().await;
    let mut cfg = config(&[alice(2), agent("sam", "Sam Sales", &["sales"], 2)]);
    cfg.sites[0].smtp_url = Some(sink.url.clone());
    cfg.sites[0].email_from = Some("Test shop <support@shop.test>".into());
    cfg.sites[0].email_inbound = Some("support@replies.shop.test".into());
    cfg.inbound_smtp_listen = Some("127.0.0.1:0".parse().unwrap());
    (spawn_app(backend, cfg).await, sink)
}

/// The listener, as a mail server would reach it.
fn smtp_client(app: &TestApp) -> AsyncSmtpTransport<Tokio1Executor> {
    let at = app.smtp.expect("the SMTP listener is on");
    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(at.ip().to_string())
        .port(at.port())
        .build()
}

/// An offline message answered from the inbox: the ticket and the reply address the answer
/// carried (`Reply-To`).
async fn answered(app: &TestApp, sink: &mut SmtpSink) -> (String, String) {
    let (_v, id) = offline_ticket(app, "nina@example.com").await;
    let (status, t) = answer_by_email(app, &id, "Yes, we do: 5 days to Tromsø.").await;
    assert_eq!(status, 200, "{t}");
    let mail = sink.next().await;
    let reply_to = mail
        .data
        .lines()
        .find_map(|l| l.strip_prefix("Reply-To: "))
        .unwrap_or_else(|| panic!("the answer has a Reply-To: {}", mail.data))
        .trim()
        .to_owned();
    assert!(
        reply_to.starts_with(&format!("support+{id}.")) && reply_to.ends_with("@replies.shop.test"),
        "{reply_to}"
    );
    (id, reply_to)
}

/// The visitor's reply, sent through the SMTP listener by lettre: its new text (the quote
/// trimmed) and its picture join the ticket, which is open again; a console watching the site
/// hears it; an agent of the department may open the file, one of another may not; the same
/// message posted again (a relay's retry) is filed once.
async fn an_email_reply_joins_its_ticket_with_its_file(backend: Backend) {
    let (app, mut sink) = mail_app(backend).await;
    let (id, reply_to) = answered(&app, &mut sink).await;
    let (status, _) = admin(
        app.addr,
        "PUT",
        &format!("/v1/tickets/{id}/follow-up"),
        Some(json!({"status": "solved"})),
    )
    .await;
    assert_eq!(status, 200);
    let mut alice = agent_client(&app, "alice", "offline").await;
    alice
        .send(json!({"type": "watch_visitors", "on": true}))
        .await;
    alice.wait_type("visitors").await;

    let message = Message::builder()
        .from("Nina <nina@example.com>".parse().unwrap())
        .to(reply_to.parse().unwrap())
        .subject("Re: your message to test")
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain(
                    "Great, please send it.\r\nMy receipt is attached.\r\n\r\nOn Mon, 7 Dec 2026 at 09:00, Test shop <support@shop.test> wrote:\r\n> Yes, we do: 5 days to Tromsø.\r\n".to_owned(),
                ))
                .singlepart(
                    Attachment::new("receipt.png".into())
                        .body(PNG.to_vec(), ContentType::parse("image/png").unwrap()),
                ),
        )
        .unwrap();
    let raw = message.formatted();
    smtp_client(&app)
        .send(message)
        .await
        .expect("the listener takes the reply");

    let heard = alice
        .wait_for("email reply", |m| {
            m["type"] == "offline_message" && m["email_reply"] == true
        })
        .await;
    assert_eq!(heard["ticket"], id.as_str());
    assert_eq!(heard["name"], "Nina");
    assert_eq!(
        heard["text"],
        "Great, please send it.\nMy receipt is attached."
    );

    let t = ticket(&app, &id).await;
    assert_eq!(t["follow_up"], "open", "a reply opens the ticket again");
    let got = t["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        (&got["kind"], &got["reason"], &got["note"]),
        (
            &json!("email_received"),
            &json!("nina@example.com"),
            &json!("Great, please send it.\nMy receipt is attached.")
        ),
        "{got}"
    );
    let files = got["attachments"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{got}");
    assert_eq!(
        (&files[0]["name"], &files[0]["content_type"]),
        (&json!("receipt.png"), &json!("image/png"))
    );
    let file = format!("/v1/attachments/{}", files[0]["id"].as_str().unwrap());
    let (status, _) = http_get(app.addr, &file, Some(&token("alice"))).await;
    assert_eq!(status, 200, "an agent of the ticket's department opens it");
    let (status, _) = http_get(app.addr, &file, Some(&token("sam"))).await;
    assert_eq!(status, 404, "an agent of another department does not");

    // The same message again, from a relay: filed once.
    let resp = reqwest::Client::new()
        .post(format!("http://{}/v1/inbound/email", app.addr))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "message/rfc822")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let filed: Value = resp.json().await.unwrap();
    assert_eq!(
        (&filed["ticket"], &filed["duplicate"]),
        (&json!(id), &json!(true)),
        "{filed}"
    );
    let again = ticket(&app, &id).await;
    let received = again["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["kind"] == "email_received")
        .count();
    assert_eq!(received, 1);
    app.stop().await;
}

/// Only the server makes reply addresses: a changed tag, another mailbox or a plain address
/// is refused at RCPT by the listener and 404 by REST; REST wants an admin and a message.
async fn reply_addresses_cannot_be_made_up(backend: Backend) {
    let (app, mut sink) = mail_app(backend).await;
    let (id, reply_to) = answered(&app, &mut sink).await;
    let (local, domain) = reply_to.split_once('@').unwrap();
    let forged_tag = format!(
        "{}.0000000000000000@{domain}",
        local.rsplit_once('.').unwrap().0
    );
    let other_ticket = format!(
        "support+01ARZ3NDEKTSV4RRFFQ69G5FAV.{}@{domain}",
        local.rsplit_once('.').unwrap().1
    );
    for to in [
        forged_tag.as_str(),
        other_ticket.as_str(),
        "support@replies.shop.test",
        "root@localhost",
    ] {
        let m = Message::builder()
            .from("mallory@example.com".parse().unwrap())
            .to(to.parse().unwrap())
            .subject("x")
            .body("injected".to_owned())
            .unwrap();
        let err = smtp_client(&app).send(m).await.expect_err(to);
        assert!(err.is_permanent(), "{to}: {err}");
    }
    let t = ticket(&app, &id).await;
    assert!(
        t["history"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["kind"] != "email_received"),
        "{t}"
    );

    let post = |token: Option<&'static str>, body: &'static str| {
        let addr = app.addr;
        async move {
            let mut req = reqwest::Client::new()
                .post(format!("http://{addr}/v1/inbound/email"))
                .header("content-type", "message/rfc822")
                .body(body);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.unwrap();
            (
                resp.status().as_u16(),
                resp.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let plain =
        "From: mallory@example.com\r\nTo: support@replies.shop.test\r\nSubject: x\r\n\r\nhi\r\n";
    assert_eq!(post(None, plain).await.0, 401);
    assert_eq!(
        post(Some("token-for-alice-0123456789"), plain).await.0,
        403,
        "an agent is no mail relay"
    );
    let (status, body) = post(Some(ADMIN_TOKEN), plain).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (404, &json!("not_found")),
        "{body}"
    );
    let (status, body) = post(Some(ADMIN_TOKEN), "not a message at all").await;
    assert_eq!(status, 422, "{body}");
    app.stop().await;
}

/// The SMTP listener speaks only what it must, and holds nothing it should not: commands out
/// of order, a size over the limit and a line over 4 KiB are refused (the last by closing).
async fn the_listener_is_bounded(backend: Backend) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let (app, _sink) = mail_app(backend).await;
    let stream = tokio::net::TcpStream::connect(app.smtp.unwrap())
        .await
        .unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    let mut next = async || {
        tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("an answer in time")
            .unwrap()
    };
    assert!(next().await.unwrap().starts_with("220 "));
    for (say, expect) in [
        ("RCPT TO:<a@b.c>", "503 "),
        ("DATA", "503 "),
        ("HELP", "502 "),
        ("MAIL FROM:<a@b.c> SIZE=999999999999", "552 "),
        ("MAIL FROM:<a@b.c>", "250 "),
        (
            "RCPT TO:<support+01ARZ3NDEKTSV4RRFFQ69G5FAV.0000000000000000@replies.shop.test>",
            "550 ",
        ),
    ] {
        write
            .write_all(format!("{say}\r\n").as_bytes())
            .await
            .unwrap();
        let got = next().await.unwrap();
        assert!(got.starts_with(expect), "{say}: {got}");
    }
    write
        .write_all(format!("NOOP {}\r\n", "x".repeat(5000)).as_bytes())
        .await
        .unwrap();
    assert_eq!(
        next().await,
        None,
        "a line over the limit closes the session"
    );

    // 32 sessions at once; the 33rd is told to come back later and closed.
    let mut held = Vec::new();
    for _ in 0..32 {
        let s = tokio::net::TcpStream::connect(app.smtp.unwrap())
            .await
            .unwrap();
        let mut lines = BufReader::new(s).lines();
        let banner = tokio::time::timeout(WAIT, lines.next_line())
            .await
            .unwrap()
            .unwrap();
        assert!(banner.unwrap().starts_with("220 "));
        held.push(lines);
    }
    let s = tokio::net::TcpStream::connect(app.smtp.unwrap())
        .await
        .unwrap();
    let mut lines = BufReader::new(s).lines();
    let refused = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap();
    assert!(
        refused.unwrap().starts_with("421 "),
        "over the session limit"
    );
    drop(held);
    app.stop().await;
}

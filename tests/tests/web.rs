//! The supervisors' web forms against a real server: what every form shares.

use outpost_test_kit as kit;

/// The routes of the forms staff pages post (every `post(pages::…)`, and log-out), read from
/// the web's router so that a new form is held to the same rule without being listed here.
fn staff_forms() -> Vec<String> {
    let router = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sync-server/src/web/mod.rs"),
    )
    .unwrap();
    router
        .split(".route(")
        .skip(1)
        .filter(|r| r.contains("post(pages::") || r.contains("post(auth::log_out)"))
        .map(|r| r.trim_start().split('"').nth(1).unwrap().to_owned())
        .collect()
}

/// A form without the session's token, with another token, or sent from another site is
/// sent back to its page with the reason and changes nothing; with the token it goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_staff_form_is_refused_without_its_token_and_changes_nothing() {
    let server = kit::demo(5).start();
    let web = server.web_session("sup.north1").await;
    let forms = staff_forms();
    assert!(forms.len() >= 12, "{forms:?}");
    let written = || {
        server
            .state()
            .store
            .read(|c| c.row_count("audit_log"))
            .unwrap()
    };
    let before = written();
    // The handlers never run, so any id will do: the check comes first.
    let id = uuid::Uuid::now_v7().to_string();
    for form in &forms {
        let path = form.replace("{id}", &id);
        let upload = path.ends_with("/openimis") || path.ends_with("/statement");
        let attempts: [(Option<&str>, Option<&str>, &str); 3] = [
            (None, None, "the form has expired"),
            (Some("not-the-sessions-token"), None, "the form has expired"),
            (
                Some(&web.csrf),
                Some("https://elsewhere.example"),
                "sent from another site",
            ),
        ];
        for (token, origin, reason) in attempts {
            let mut req = web
                .http
                .post(server.url(&path))
                .header("cookie", &web.cookie);
            if let Some(origin) = origin {
                req = req.header("origin", origin);
            }
            let token_field = token.map(|t| format!("&_csrf={t}")).unwrap_or_default();
            req = if upload {
                let boundary = "kit-boundary";
                let mut body = format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.csv\"\r\n\r\na,b\r\n"
                );
                if let Some(t) = token {
                    body.push_str(&format!(
                        "--{boundary}\r\nContent-Disposition: form-data; name=\"_csrf\"\r\n\r\n{t}\r\n"
                    ));
                }
                body.push_str(&format!("--{boundary}--\r\n"));
                req.header(
                    "content-type",
                    format!("multipart/form-data; boundary={boundary}"),
                )
                .body(body)
            } else {
                req.header("content-type", "application/x-www-form-urlencoded")
                    .body(format!(
                        "reason=x&text=x&status=CLOSED&verdict=approve&key=k&plan=CT-HH&cycle=c\
                         &agent=a&holding=MWK&direction=issue&quantity=1&assignment=N{token_field}"
                    ))
            };
            if token.is_none() && origin.is_none() {
                // The header htmx sends stands for no form's missing field.
                req = req.header("x-csrf-token", &web.csrf);
            }
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 303, "{path} {token:?} {origin:?}");
            let to = r.headers()["location"].to_str().unwrap().to_owned();
            assert!(to.starts_with('/') && !to.starts_with("//"), "{path}: {to}");
            let shown: String = url_decoded(&to);
            assert!(shown.contains(reason), "{path} {token:?}: {shown}");
        }
    }
    assert_eq!(written(), before, "a refused form wrote something");
    // With its token the form goes through: log-out ends the session.
    let r = web
        .post_form("/logout", &format!("_csrf={}", web.csrf))
        .await;
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        "/login",
        "logged out"
    );
    let (_, page) = web.page("/").await;
    assert!(!page.contains(&web.csrf), "the session is gone");
}

fn url_decoded(s: &str) -> String {
    let s = s.replace('+', " ");
    let mut out = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

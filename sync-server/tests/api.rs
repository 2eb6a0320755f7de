//! The JSON API against a real `outpost-server` process on a loopback port.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::{Command, Stdio},
};

use outpost_proto::wire;
use outpost_test_kit::{self as kit, TestServer};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

const PASSWORD: &str = outpost_server::demo::DEMO_PASSWORD;

/// The server binary cargo built for these tests, serving the demo programme from a data
/// directory of its own (the test kit's); stopped on drop.
struct Server(TestServer);

impl std::ops::Deref for Server {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.0
    }
}

impl Server {
    fn start(households: usize) -> Server {
        Server(
            kit::demo(households)
                .binary_at(env!("CARGO_BIN_EXE_outpost-server"))
                .start(),
        )
    }

    /// A new token for a demo user at each call (the kit's own keeps one per user).
    async fn token(&self, username: &str) -> String {
        let code = self.code(username).await;
        let r = self
            .http
            .post(self.url("/api/v1/auth/token"))
            .json(&json!({ "username": username, "password": PASSWORD, "code": code }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK, "login {username}");
        r.json::<Value>().await.unwrap()["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    async fn post(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }

    async fn upload(&self, token: &str, path: &str, body: &[u8]) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        (r.status(), r.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn health_is_open_and_every_other_documented_route_needs_a_token() {
    let s = Server::start(5);
    let r = s.http.get(s.url("/api/v1/health")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let health: Value = r.json().await.unwrap();
    assert_eq!(health["status"], "ok");
    assert!(
        health["time"].as_str().unwrap().ends_with('Z'),
        "times carry a zone"
    );

    let doc: Value = serde_json::from_str(outpost_server::api::OPENAPI).unwrap();
    let open = [
        "/api/v1/health",
        "/api/v1/openapi.json",
        "/api/v1/auth/token",
    ];
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .replace("{id}", "00000000-0000-4000-8000-000000000000")
            .replace("{code}", "CT-HH");
        for method in ops.as_object().unwrap().keys() {
            let request = match method.as_str() {
                "get" => s.http.get(s.url(&concrete)),
                "post" => s.http.post(s.url(&concrete)).json(&json!({})),
                other => panic!("undocumented method {other}"),
            };
            let status = request.send().await.unwrap().status();
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is documented but not routed for {method}"
            );
            if path.starts_with("/sync/") {
                // Signed device requests, not bearer tokens: checked in tests/tests/sync.rs.
                assert_ne!(
                    status,
                    StatusCode::NOT_FOUND,
                    "{method} {path} is documented but not routed"
                );
            } else if open.contains(&path.as_str()) {
                assert_ne!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
                assert_ne!(
                    status,
                    StatusCode::NOT_FOUND,
                    "{method} {path} is documented but not routed"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {path} without a token"
                );
                let forged = s
                    .http
                    .get(s.url(&concrete))
                    .bearer_auth("forged-token")
                    .send()
                    .await
                    .unwrap();
                assert!(
                    matches!(
                        forged.status(),
                        StatusCode::UNAUTHORIZED | StatusCode::METHOD_NOT_ALLOWED
                    ),
                    "{path}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 20, "only {checked} operations checked");

    let wrong = s
        .http
        .post(s.url("/api/v1/auth/token"))
        .json(&json!({"username": "admin", "password": "not the password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let unknown = s
        .http
        .get(s.url("/api/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}

/// The routes `router::router` registers, read from its source (axum cannot list them), with
/// their methods, in the document's spelling.
fn routed() -> BTreeMap<String, BTreeSet<String>> {
    let source = include_str!("../src/router.rs");
    let body = source
        .split("pub fn router(")
        .nth(1)
        .and_then(|s| s.split("\n}\n").next())
        .unwrap();
    let mut routes: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for call in body.split(".route(").skip(1) {
        // The call's own text, up to its closing parenthesis.
        let mut depth = 1;
        let end = call
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .unwrap()
            .0;
        let (path, handlers) = call[..end].split_once(',').unwrap();
        let path = path.trim();
        let path = match path.strip_prefix("wire::path::") {
            Some("HELLO") => wire::path::HELLO.to_owned(),
            Some("ENROL") => wire::path::ENROL.to_owned(),
            Some("REPLICA") => wire::path::REPLICA.to_owned(),
            Some("PUSH") => wire::path::PUSH.to_owned(),
            Some("CHANGES") => wire::path::CHANGES.to_owned(),
            Some(other) => panic!("unknown wire path {other}"),
            None => path.trim_matches('"').to_owned(),
        };
        let methods = routes.entry(path).or_default();
        for method in ["get", "post", "put", "patch", "delete", "any"] {
            let called = format!("{method}(");
            let mut rest = handlers;
            while let Some(at) = rest.find(&called) {
                let before = rest[..at].chars().last();
                if before.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':')) {
                    methods.insert(method.to_owned());
                }
                rest = &rest[at + called.len()..];
            }
        }
    }
    routes
}

#[test]
fn the_openapi_document_lists_every_route_and_only_routes_with_their_methods() {
    let routes = routed();
    assert!(routes.len() > 40, "only {} routes read", routes.len());
    let doc: Value = serde_json::from_str(outpost_server::api::OPENAPI).unwrap();
    let documented: BTreeMap<String, BTreeSet<String>> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(path, ops)| {
            (
                path.clone(),
                ops.as_object().unwrap().keys().cloned().collect(),
            )
        })
        .collect();
    // The one catch-all: any other /sync path, answered in the protocol's format.
    let catch_all = "/sync/{*rest}";
    assert_eq!(routes[catch_all], BTreeSet::from(["any".to_owned()]));
    for (path, methods) in &routes {
        if path == catch_all {
            continue;
        }
        assert_eq!(
            documented.get(path),
            Some(methods),
            "router: {path} {methods:?}; the document says otherwise"
        );
    }
    for (path, methods) in &documented {
        assert_eq!(
            routes.get(path),
            Some(methods),
            "document: {path} {methods:?}; the router says otherwise"
        );
    }
}

#[test]
fn every_route_that_changes_something_is_classified_for_api_clients() {
    use outpost_server::users::permissions::{PERSONS_ONLY, client_permission};
    let post = reqwest::Method::POST;
    for (path, methods) in routed() {
        if !path.starts_with("/api/") || !methods.contains("post") {
            continue;
        }
        let classified = client_permission(&post, &path).is_some();
        let persons_only = PERSONS_ONLY.contains(&path.as_str());
        assert!(
            classified != persons_only,
            "POST {path}: name the permission a client needs for it, or list it as persons only"
        );
    }
}

#[tokio::test]
async fn each_user_sees_only_their_area() {
    let s = Server::start(40);
    let admin = s.token("admin").await;
    let south = s.token("sup.south1").await;
    let agent = s.token("agent.n-mz").await;

    let (_, all) = s.get(&admin, "/api/v1/individuals?limit=500").await;
    let (_, mine) = s.get(&south, "/api/v1/individuals?limit=500").await;
    let all = all.as_array().unwrap();
    let mine = mine.as_array().unwrap();
    assert!(!mine.is_empty() && mine.len() < all.len());
    assert!(
        mine.iter()
            .all(|p| p["location"].as_str().unwrap().starts_with("S-"))
    );

    let northerner = all
        .iter()
        .find(|p| p["location"].as_str().unwrap().starts_with("N-"))
        .unwrap();
    let (status, _) = s
        .get(
            &south,
            &format!("/api/v1/individuals/{}", northerner["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a southern supervisor read a northern person"
    );
    let household = northerner["household"]["group_id"].as_str().unwrap();
    let (status, _) = s
        .get(&south, &format!("/api/v1/households/{household}"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = s
        .get(&admin, &format!("/api/v1/households/{household}"))
        .await;
    assert_eq!(status, StatusCode::OK);

    let (_, payrolls) = s.get(&agent, "/api/v1/payrolls").await;
    let payrolls = payrolls.as_array().unwrap();
    assert!(!payrolls.is_empty());
    assert!(
        payrolls
            .iter()
            .all(|p| p["location"].as_str().unwrap().starts_with("N-MZ")),
        "{payrolls:?}"
    );
    let (_, bens) = s
        .get(&south, "/api/v1/beneficiaries?plan=CT-HH&limit=500")
        .await;
    assert!(
        bens.as_array()
            .unwrap()
            .iter()
            .all(|b| b["location"].as_str().unwrap().starts_with("S-"))
    );
    let (_, locations) = s.get(&south, "/api/v1/locations").await;
    assert!(
        locations
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["path"].as_str().unwrap().starts_with('S'))
    );

    // Roles: a supervisor cannot import or generate; an agent cannot change a status.
    let (status, _) = s
        .upload(
            &south,
            "/api/v1/imports/individuals",
            b"first_name,last_name,dob,id\n",
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Supervisors generate payrolls (for their area; someone else approves); agents do not.
    let (status, _) = s
        .post(
            &agent,
            "/api/v1/payrolls/generate",
            json!({"plan": "CT-HH", "cycle": s.cycle}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let b = &bens.as_array().unwrap()[0];
    let path = format!("/api/v1/beneficiaries/{}/status", b["id"].as_str().unwrap());
    let (status, _) = s
        .post(&agent, &path, json!({"status": "SUSPENDED", "reason": "x"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A northern supervisor cannot change a southern beneficiary.
    let north = s.token("sup.north1").await;
    let (status, _) = s
        .post(&north, &path, json!({"status": "SUSPENDED", "reason": "x"}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn import_through_the_api_all_or_nothing_then_partial_then_again() {
    let s = Server::start(3);
    let admin = s.token("admin").await;
    let (_, before) = s.get(&admin, "/api/v1/individuals?limit=500").await;
    let before = before.as_array().unwrap().len();

    let file = "first_name,last_name,dob,id,location_name,group_code,individual_role,recipient_info,disability
Aïssata,Diallo,1985-04-02,API-1,N-MZ-01,API-HH,HEAD,1,yes
محمد,حسن,2015-09-30,API-2,N-MZ-01,API-HH,SON,,no
Bad,Date,1990-02-30,API-3,N-MZ-01,,,,
";
    let path = "/api/v1/imports/individuals?plan=CT-HH&status=ACTIVE";
    let (status, body) = s.upload(&admin, path, file.as_bytes()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["code"], "import_rejected");
    assert_eq!(body["error"]["rows"][0]["row"], 4);
    assert_eq!(body["error"]["rows"][0]["column"], "dob");
    let (_, after) = s.get(&admin, "/api/v1/individuals?limit=500").await;
    assert_eq!(
        after.as_array().unwrap().len(),
        before,
        "a rejected file wrote people"
    );

    let (status, body) = s
        .upload(&admin, &format!("{path}&partial=true"), file.as_bytes())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["created"].as_u64(),
            body["beneficiaries_created"].as_u64()
        ),
        (Some(2), Some(1))
    );
    assert!(body["rejected_csv"].as_str().unwrap().contains("Bad,Date"));

    let (_, again) = s
        .upload(&admin, &format!("{path}&partial=true"), file.as_bytes())
        .await;
    assert_eq!(
        (
            again["created"].as_u64(),
            again["updated"].as_u64(),
            again["unchanged"].as_u64()
        ),
        (Some(0), Some(0), Some(2))
    );

    let (_, found) = s.get(&admin, "/api/v1/individuals?q=API-HH").await;
    let names: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["first_name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"Aïssata") && names.contains(&"محمد"),
        "{names:?}"
    );

    // Latin-1 bytes are refused as a whole with a clear reason.
    let latin1 = b"first_name,last_name,dob,id\nJos\xe9,Ruiz,1990-01-01,L1\n";
    let (status, body) = s
        .upload(&admin, "/api/v1/imports/individuals", latin1)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "bad_file");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("UTF-8"),
        "{body}"
    );

    // One person through the JSON API goes through the same checks.
    let (status, body) = s
        .post(&admin, "/api/v1/individuals", json!({"external_id": "API-9", "first_name": "Zoë", "last_name": "Ng",
            "dob": "2001-01-01", "location": "S-NS-01", "extra": {"disability": "perhaps"}, "plan": "CT-HH"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["fields"][0]["field"], "disability");
    let (status, body) = s
        .post(
            &admin,
            "/api/v1/individuals",
            json!({"external_id": "API-9", "first_name": "Zoë", "last_name": "Ng",
            "dob": "2001-01-01", "location": "S-NS-01"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["first_name"], "Zoë");
}

#[tokio::test]
async fn lifecycle_and_generation_through_the_api() {
    let s = Server::start(20);
    let admin = s.token("admin").await;
    let sup = s.token("sup.north1").await;
    let (_, bens) = s
        .get(&sup, "/api/v1/beneficiaries?plan=CT-HH&status=ACTIVE")
        .await;
    let id = bens[0]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/beneficiaries/{id}/status");

    // An office change waits for four eyes: 202 with its task, applied once another
    // supervisor approves it (the maker cannot).
    let checker = s.token("sup.north2").await;
    let approve = |task: Value| {
        let decision = format!("/api/v1/tasks/{}/decision", task["id"].as_str().unwrap());
        let (sup, checker) = (sup.clone(), checker.clone());
        let s = &s;
        async move {
            let (status, body) = s.post(&sup, &decision, json!({"verdict": "APPROVE"})).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "the maker approves: {body}");
            let (status, body) = s
                .post(&checker, &decision, json!({"verdict": "APPROVE"}))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["status"], "APPROVED");
        }
    };
    let (status, task) = s
        .post(
            &sup,
            &path,
            json!({"status": "SUSPENDED", "reason": "not seen at verification"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{task}");
    assert_eq!(task["kind"], "OFFICE_STATUS_CHANGE");
    let (_, detail) = s.get(&sup, &format!("/api/v1/beneficiaries/{id}")).await;
    assert_eq!(
        detail["status"], "ACTIVE",
        "nothing changes before approval"
    );
    let (status, body) = s
        .post(&sup, &path, json!({"status": "GRADUATED", "reason": "x"}))
        .await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "one waiting change at a time: {body}"
    );
    approve(task).await;
    let (status, body) = s
        .post(&sup, &path, json!({"status": "ENROLLED", "reason": "x"}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "transition_refused");
    let (status, task) = s
        .post(
            &sup,
            &path,
            json!({"status": "GRADUATED", "reason": "found work"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{task}");
    approve(task).await;
    let (status, _) = s
        .post(
            &sup,
            &path,
            json!({"status": "ACTIVE", "reason": "came back"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "GRADUATED is terminal");
    let (_, detail) = s.get(&sup, &format!("/api/v1/beneficiaries/{id}")).await;
    let history: Vec<&str> = detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["to"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["ACTIVE", "SUSPENDED", "GRADUATED"]);
    assert_eq!(detail["history"][2]["by"], "user:sup.north1");

    // The demo generated the cycle already: running again adds nothing.
    let (status, report) = s
        .post(
            &admin,
            "/api/v1/payrolls/generate",
            json!({"plan": "CT-HH", "cycle": s.cycle}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["entitlements_created"], 0);
    let (_, payrolls) = s.get(&admin, "/api/v1/payrolls?plan=CT-HH").await;
    let p = &payrolls[0];
    assert_eq!(p["status"], "PENDING_APPROVAL");
    let (_, ents) = s
        .get(
            &admin,
            &format!(
                "/api/v1/payrolls/{}/entitlements",
                p["id"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(
        ents.as_array().unwrap().len() as i64,
        p["entitlements"].as_i64().unwrap()
    );
    assert!(
        ents.as_array()
            .unwrap()
            .iter()
            .all(|e| e["currency"] == "MWK" && e["amount_minor"].as_i64().unwrap() > 0)
    );

    // Bad input: a clear error, nothing changed.
    let (status, body) = s
        .post(
            &admin,
            "/api/v1/payrolls/generate",
            json!({"plan": "CT-HH", "cycle": "1999-01"}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = s
        .post(
            &admin,
            "/api/v1/cycles",
            json!({"code": "X", "start_date": "2026-12-31", "end_date": "2026-12-01"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = s
        .post(&admin, "/api/v1/plans", json!({"code": "BAD"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("missing field"),
        "{body}"
    );

    let (_, audit) = s.get(&admin, "/api/v1/audit?limit=5").await;
    assert_eq!(audit["chain_intact"], true);
    let (status, _) = s.get(&sup, "/api/v1/audit").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[test]
fn the_cli_imports_all_or_nothing_and_writes_rejected_rows_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_outpost-server");
    let data = dir.path().join("data");
    let run = |args: &[&str]| {
        Command::new(bin)
            .arg("--data")
            .arg(&data)
            .args(args)
            .output()
            .unwrap()
    };
    let locations = dir.path().join("locations.csv");
    std::fs::write(&locations, "code,name,level,parent_code\nR,Region,REGION,\nD,District,DISTRICT,R\nV,Village,VILLAGE,D\n").unwrap();
    assert!(
        run(&["import", "locations", locations.to_str().unwrap()])
            .status
            .success()
    );

    let file = dir.path().join("people.csv");
    std::fs::write(&file, "first_name,last_name,dob,id,location_name\nAda,Obi,1990-01-01,C1,V\nBad,Row,not-a-date,C2,V\n").unwrap();
    let out = run(&["import", "individuals", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("row 3, dob"), "{stderr}");
    let db = rusqlite::Connection::open(data.join("registry.db")).unwrap();
    let people = |db: &rusqlite::Connection| {
        db.query_row("SELECT count(*) FROM individuals", [], |r| {
            r.get::<_, i64>(0)
        })
        .unwrap()
    };
    assert_eq!(people(&db), 0, "a refused file wrote people");

    let rejects = dir.path().join("rejects.csv");
    let out = run(&[
        "import",
        "individuals",
        file.to_str().unwrap(),
        "--partial",
        "--rejects",
        rejects.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(people(&db), 1);
    let rejected = std::fs::read_to_string(&rejects).unwrap();
    assert!(
        rejected.contains("Bad,Row") && !rejected.contains("Ada"),
        "{rejected}"
    );
}

#[tokio::test]
async fn an_xlsx_upload_imports_like_its_csv() {
    let s = Server::start(2);
    let admin = s.token("admin").await;
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    let header = [
        "first_name",
        "last_name",
        "dob",
        "id",
        "location_name",
        "group_code",
        "individual_role",
        "recipient_info",
    ];
    for (c, h) in header.iter().enumerate() {
        sheet.write_string(0, c as u16, *h).unwrap();
    }
    let rows = [
        [
            "Hélène",
            "Kaboré",
            "1979-03-04",
            "X-1",
            "S-CK-01",
            "XHH",
            "HEAD",
            "1",
        ],
        [
            "سلمى",
            "Kaboré",
            "2012-07-08",
            "X-2",
            "S-CK-01",
            "XHH",
            "DAUGHTER",
            "",
        ],
    ];
    for (r, row) in rows.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            sheet.write_string(r as u32 + 1, c as u16, *v).unwrap();
        }
    }
    let bytes = book.save_to_buffer().unwrap();
    let (status, body) = s
        .upload(&admin, "/api/v1/imports/individuals", &bytes)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["created"].as_u64(),
            body["households_created"].as_u64()
        ),
        (Some(2), Some(1))
    );
    let (_, found) = s.get(&admin, "/api/v1/individuals?q=XHH").await;
    let names: Vec<&str> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["first_name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(
        names.contains(&"Hélène") && names.contains(&"سلمى"),
        "{names:?}"
    );
}

#[test]
fn the_cli_enrols_lists_revokes_devices_and_prints_cards() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_outpost-server");
    let data = dir.path().join("data");
    let run = |args: &[&str]| {
        let out = Command::new(bin)
            .arg("--data")
            .arg(&data)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert!(run(&["demo", "--households", "30"]).0);

    let (ok, out, err) = run(&[
        "enrol-code",
        "--agent",
        "agent.n-mz",
        "--assignment",
        "N-MZ-01",
    ]);
    assert!(ok, "{err}");
    let enrolment: Value = serde_json::from_str(&out).unwrap();
    assert!(
        enrolment["qr_payload"]
            .as_str()
            .unwrap()
            .starts_with("outpost:enrol?code=")
    );
    let (ok, _, err) = run(&[
        "enrol-code",
        "--agent",
        "agent.n-mz",
        "--assignment",
        "S-CK",
    ]);
    assert!(!ok && err.contains("outside agent.n-mz's area"), "{err}");

    let (ok, out, _) = run(&["devices"]);
    assert!(ok);
    assert_eq!(out.trim(), "[]", "no device has enrolled yet");
    let (ok, _, err) = run(&[
        "revoke",
        &uuid::Uuid::now_v7().to_string(),
        "--reason",
        "lost",
    ]);
    assert!(!ok && err.contains("not found"), "{err}");

    let pdf = dir.path().join("cards.pdf");
    let (ok, out, err) = run(&[
        "cards",
        "--plan",
        "CT-HH",
        "--area",
        "N-MZ-01",
        "--out",
        pdf.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("card(s) written"), "{out}");
    assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF"));
    // The key signing the cards is a private file beside the database, not in it.
    let key = data.join("programme-key.p8");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // Printing again issues nothing new: the same cards in force.
    let (_, again, _) = run(&[
        "cards",
        "--plan",
        "CT-HH",
        "--area",
        "N-MZ-01",
        "--out",
        pdf.to_str().unwrap(),
    ]);
    assert_eq!(again, out);
}

#[tokio::test]
async fn tasks_and_reconciliation_over_the_api_keep_four_eyes_and_area() {
    let s = Server::start(20);
    let north = s.token("sup.north2").await;
    let south = s.token("sup.south1").await;
    // The demo's timesheets were approved; its CFW payroll waits for two approvers.
    let (status, tasks) = s.get(&north, "/api/v1/tasks?kind=PAYROLL_APPROVAL").await;
    assert_eq!(status, StatusCode::OK, "{tasks}");
    let task = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["summary"].as_str().unwrap().starts_with("CFW-ROADS"))
        .expect("the north's cash-for-work payroll waits")
        .clone();
    let id = task["id"].as_str().unwrap();
    // The south's supervisor sees no northern task and cannot decide it.
    let (_, theirs) = s.get(&south, "/api/v1/tasks").await;
    assert!(
        theirs
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["id"] != task["id"])
    );
    let decide = |token: &str, body: Value| {
        s.http
            .post(s.url(&format!("/api/v1/tasks/{id}/decision")))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let r = decide(&south, json!({ "verdict": "APPROVE" }))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Money needs the second factor; a wrong code is refused.
    let r = decide(&north, json!({ "verdict": "APPROVE" }))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = decide(&north, json!({ "verdict": "APPROVE", "code": "12345" }))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let code = s.code("sup.north2").await;
    let r = decide(&north, json!({ "verdict": "APPROVE", "code": code }))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["outcome"]["Pending"]["approvals"], 1, "{body}");
    let r = decide(
        &north,
        json!({ "verdict": "REJECT", "reason": "changed my mind" }),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT, "one decision per person");

    // A northern payroll's reconciliation, and a resolution that needs a reason.
    let (_, payrolls) = s.get(&north, "/api/v1/payrolls?status=APPROVED").await;
    let p = payrolls.as_array().unwrap()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, rec) = s
        .get(
            &north,
            &format!("/api/v1/payrolls/{p}/reconciliation?limit=5"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rec}");
    assert_eq!(
        rec["lines"].as_array().unwrap().len().min(5),
        rec["lines"].as_array().unwrap().len()
    );
    assert_eq!(rec["totals"]["by_status"]["UNPAID"], rec["totals"]["lines"]);
    let (status, _) = s
        .get(&south, &format!("/api/v1/payrolls/{p}/reconciliation"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let r = s
        .http
        .post(s.url(&format!("/api/v1/payrolls/{p}/resolutions")))
        .bearer_auth(&north)
        .json(&json!({ "key": "PAID_TWICE:none", "reason": "" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

/// An expiry `days` from now, as the API takes it.
fn in_days(days: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::days(days)).to_rfc3339()
}

#[tokio::test]
async fn api_clients_act_with_their_permissions_and_area_until_expired_or_revoked() {
    let s = Server::start(20);
    let admin = s.token("admin").await;

    // Created by an administrator: the secret is answered once, only its hash is kept.
    let (status, created) = s
        .post(
            &admin,
            "/api/v1/clients",
            json!({"name": "bank-feed", "role": "SUPERVISOR", "permissions": ["read"],
                   "area": "S", "expires_at": in_days(30)}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let reader = created["secret"].as_str().unwrap().to_owned();
    assert!(reader.starts_with("opc_"));
    assert_eq!(created["client"]["state"], "ACTIVE");
    assert_eq!(created["client"]["created_by"], "user:admin");
    assert_eq!(created["client"]["owner"], "admin");
    let reader_id = created["client"]["id"].as_str().unwrap().to_owned();

    // It acts as a southern supervisor: reads its area only.
    let (status, me) = s.get(&reader, "/api/v1/me").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (me["username"].as_str(), me["area"].as_str()),
        (Some("bank-feed"), Some("S"))
    );
    let (status, people) = s.get(&reader, "/api/v1/individuals?limit=500").await;
    assert_eq!(status, StatusCode::OK);
    let people = people.as_array().unwrap();
    assert!(!people.is_empty());
    assert!(
        people
            .iter()
            .all(|p| p["location"].as_str().unwrap().starts_with("S-"))
    );

    // Read only: every change is refused, whatever its role would allow.
    let (status, body) = s
        .post(
            &reader,
            "/api/v1/payrolls/generate",
            json!({"plan": "CT-HH", "cycle": s.cycle}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("registry")
    );

    // An admin client with registry rights in the north still cannot make accounts, clients
    // or enrolment codes, nor take a person's decision.
    let (_, created) = s
        .post(
            &admin,
            "/api/v1/clients",
            json!({"name": "north-sync", "role": "ADMIN", "permissions": ["read", "registry"],
                   "area": "N", "expires_at": in_days(90)}),
        )
        .await;
    let writer = created["secret"].as_str().unwrap().to_owned();
    let new_user = json!({"username": "x.client", "display_name": "X", "role": "SUPERVISOR",
                          "area": "N", "password": "long enough password"});
    let (status, _) = s.post(&writer, "/api/v1/users", new_user.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = s
        .post(
            &writer,
            "/api/v1/clients",
            json!({"name": "child", "role": "SUPERVISOR", "permissions": ["read"],
                   "area": "N", "expires_at": in_days(10)}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = s
        .post(
            &writer,
            "/api/v1/devices/enrolments",
            json!({"agent": "agent.n-mz", "assignment": "N-MZ-01"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = s
        .post(
            &writer,
            "/api/v1/tasks/00000000-0000-4000-8000-000000000000/decision",
            json!({"verdict": "APPROVE"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // What it may do, it does in its own name, inside its area.
    let (status, body) = s
        .post(
            &writer,
            "/api/v1/payrolls/generate",
            json!({"plan": "CT-HH", "cycle": s.cycle}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // An accounts client makes clients inside its area only, never beyond its own
    // permissions or expiry; person accounts it cannot make at all (a person it made would
    // choose a password, take persons-only decisions and outlive the client).
    let (_, created) = s
        .post(
            &admin,
            "/api/v1/clients",
            json!({"name": "north-hr", "role": "ADMIN", "permissions": ["read", "accounts"],
                   "area": "N", "expires_at": in_days(60)}),
        )
        .await;
    let hr = created["secret"].as_str().unwrap().to_owned();
    let (status, body) = s.post(&hr, "/api/v1/users", new_user).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, _) = s
        .post(
            &hr,
            "/api/v1/users",
            json!({"username": "y.client", "display_name": "Y", "role": "SUPERVISOR",
                   "area": "S", "password": "long enough password"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a user outside its area");
    let child = |name: &str, perms: Value, area: Option<&str>, days: i64| {
        let mut body = json!({"name": name, "role": "SUPERVISOR", "permissions": perms,
                              "expires_at": in_days(days)});
        if let Some(area) = area {
            body["area"] = json!(area);
        }
        body
    };
    for (body, why) in [
        (child("c1", json!(["read"]), None, 10), "a national client"),
        (
            child("c2", json!(["read"]), Some("S"), 10),
            "another region",
        ),
        (
            child("c3", json!(["registry"]), Some("N"), 10),
            "a permission it lacks",
        ),
        (
            child("c4", json!(["read"]), Some("N"), 100),
            "outliving its creator",
        ),
    ] {
        let (status, _) = s.post(&hr, "/api/v1/clients", body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{why}");
    }
    let (status, body) = s
        .post(
            &hr,
            "/api/v1/clients",
            child("c5", json!(["read"]), Some("N-MZ"), 10),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        body["client"]["owner"], "admin",
        "a client's client answers to the same person"
    );
    // Listed by area: the north's administrator client sees the north's clients only.
    let (status, listed) = s.get(&hr, "/api/v1/clients").await;
    assert_eq!(status, StatusCode::OK);
    let mut names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["c5", "north-hr", "north-sync"]);

    // Expiry is required, in the future and at most a year ahead.
    for (days, why) in [(-1, "in the past"), (400, "beyond a year")] {
        let (status, _) = s
            .post(
                &admin,
                "/api/v1/clients",
                child("late", json!(["read"]), Some("N"), days),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{why}");
    }
    let (status, _) = s
        .post(
            &admin,
            "/api/v1/clients",
            json!({"name": "no-expiry", "role": "SUPERVISOR", "permissions": ["read"]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    // Revoked: refused at once, like an unknown token; revoking again is a conflict.
    let revoke = format!("/api/v1/clients/{reader_id}/revoke");
    let (status, _) = s.post(&hr, &revoke, json!({"reason": "not mine"})).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a southern client, for a northern admin"
    );
    let (status, body) = s
        .post(&admin, &revoke, json!({"reason": "contract ended"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["state"], "REVOKED");
    let (status, _) = s.get(&reader, "/api/v1/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = s.post(&admin, &revoke, json!({"reason": "again"})).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Expired: the clock passing is the stored expiry moved behind it.
    let db = rusqlite::Connection::open(s.data().join("registry.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    db.execute(
        "UPDATE api_clients SET expires_at = '2000-01-01T00:00:00.000Z' WHERE name = 'north-sync'",
        [],
    )
    .unwrap();
    let (status, _) = s.get(&writer, "/api/v1/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (_, listed) = s.get(&admin, "/api/v1/clients").await;
    let states: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["state"].as_str().unwrap()))
        .collect();
    assert!(states.contains(&("north-sync", "EXPIRED")), "{states:?}");
    assert!(states.contains(&("bank-feed", "REVOKED")), "{states:?}");
    // Revoking a client revokes the clients it made.
    let hr_id = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "north-hr")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = s
        .post(
            &admin,
            &format!("/api/v1/clients/{hr_id}/revoke"),
            json!({"reason": "moved"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, listed) = s.get(&admin, "/api/v1/clients").await;
    let c5 = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "c5")
        .unwrap();
    assert_eq!(c5["state"], "REVOKED");
    assert_eq!(
        c5["revoke_reason"],
        "its creator, client 'north-hr', was revoked"
    );
    let (status, _) = s.get(&hr, "/api/v1/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Audited, a client's own work in its name.
    let (_, audit) = s.get(&admin, "/api/v1/audit?limit=500").await;
    let entries: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["actor"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    for entry in [
        ("user:admin", "client.create"),
        ("user:admin", "client.revoke"),
        ("client:north-hr", "client.create"),
    ] {
        assert!(entries.contains(&entry), "{entry:?} in {entries:?}");
    }
    assert!(
        !entries.contains(&("client:north-hr", "user.create")),
        "no client makes a person"
    );
}

/// What a client makes counts as its owner's for four eyes: the administrator behind a
/// client cannot approve the payroll, the status change or the timesheet it made; another
/// supervisor can. A client stops working while its owner's account is disabled.
#[tokio::test]
async fn the_person_behind_an_api_client_cannot_approve_what_it_made() {
    let s = Server::start(20);
    let admin = s.token("admin").await;
    let checker = s.token("sup.north2").await;
    let (status, created) = s
        .post(
            &admin,
            "/api/v1/clients",
            json!({"name": "north-ops", "role": "ADMIN", "permissions": ["read", "registry"],
                   "area": "N", "expires_at": in_days(30)}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let ops = created["secret"].as_str().unwrap().to_owned();

    // A payroll it generates (for a cycle of its own: the demo's is generated already).
    let next =
        outpost_server::demo::cycle_of(outpost_server::demo::today() + chrono::Months::new(1));
    let (status, body) = s
        .post(
            &ops,
            "/api/v1/cycles",
            json!({"code": next.code, "start_date": next.start_date, "end_date": next.end_date}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = s
        .post(
            &ops,
            "/api/v1/payrolls/generate",
            json!({"plan": "CT-HH", "cycle": next.code}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, tasks) = s.get(&admin, "/api/v1/tasks?kind=PAYROLL_APPROVAL").await;
    let task = tasks
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["maker"] == "client:north-ops")
        .expect("the client's payroll waits for approval")
        .clone();
    let decision = format!("/api/v1/tasks/{}/decision", task["id"].as_str().unwrap());
    let code = s.code("admin").await;
    let (status, body) = s
        .post(
            &admin,
            &decision,
            json!({"verdict": "APPROVE", "code": code}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the owner approves: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("four eyes"),
        "{body}"
    );
    let code = s.code("sup.north2").await;
    let (status, body) = s
        .post(
            &checker,
            &decision,
            json!({"verdict": "APPROVE", "code": code}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A status change it asks for.
    let (_, bens) = s
        .get(&ops, "/api/v1/beneficiaries?plan=CT-HH&status=ACTIVE")
        .await;
    let id = bens[0]["id"].as_str().unwrap().to_owned();
    let (status, task) = s
        .post(
            &ops,
            &format!("/api/v1/beneficiaries/{id}/status"),
            json!({"status": "SUSPENDED", "reason": "not seen at verification"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{task}");
    let decision = format!("/api/v1/tasks/{}/decision", task["id"].as_str().unwrap());
    let (status, body) = s
        .post(&admin, &decision, json!({"verdict": "APPROVE"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the owner approves: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("four eyes"),
        "{body}"
    );
    let (status, body) = s
        .post(&checker, &decision, json!({"verdict": "APPROVE"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "APPROVED");

    // A timesheet it records.
    let (_, workers) = s
        .get(&ops, "/api/v1/beneficiaries?plan=CFW-ROADS&status=ACTIVE")
        .await;
    let worker = workers[0]["id"].as_str().unwrap().to_owned();
    let (status, body) = s
        .post(
            &ops,
            "/api/v1/timesheets",
            json!({"project": "ROAD-N-MZ", "beneficiary_id": worker, "work_date": "2001-01-01",
                   "day_hundredths": 100}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let decision = format!(
        "/api/v1/timesheets/{}/decision",
        body["id"].as_str().unwrap()
    );
    let (status, body) = s
        .post(&admin, &decision, json!({"status": "APPROVED"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the owner decides: {body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("four eyes"),
        "{body}"
    );
    let (status, body) = s
        .post(&checker, &decision, json!({"status": "APPROVED"}))
        .await;
    assert!(status.is_success(), "{status} {body}");

    // Its owner disabled: the client is refused like an unknown token, until re-enabled.
    let db = rusqlite::Connection::open(s.data().join("registry.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    let set_disabled = |on: bool| {
        db.execute(
            "UPDATE users SET disabled = ?1 WHERE username = 'admin'",
            [on],
        )
        .unwrap()
    };
    set_disabled(true);
    let (status, _) = s.get(&ops, "/api/v1/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    set_disabled(false);
    let (status, _) = s.get(&ops, "/api/v1/me").await;
    assert_eq!(status, StatusCode::OK);
}

/// A person's token is random text: the rare one that starts like a client secret is still
/// the person's.
#[tokio::test]
async fn a_person_token_that_looks_like_a_client_secret_still_works() {
    use ring::digest::{SHA256, digest};
    let s = Server::start(5);
    let token = "opc_a-person-token-by-chance";
    let db = rusqlite::Connection::open(s.data().join("registry.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
    db.execute(
        "INSERT INTO api_tokens (token_hash, user_id, created_at, expires_at)
         SELECT ?1, id, '2026-01-01T00:00:00Z', '2999-01-01T00:00:00Z' FROM users
         WHERE username = 'sup.north1'",
        [digest(&SHA256, token.as_bytes()).as_ref().to_vec()],
    )
    .unwrap();
    let (status, me) = s.get(token, "/api/v1/me").await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["username"], "sup.north1");
    let (status, _) = s.get("opc_nobody", "/api/v1/me").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[test]
fn the_cli_creates_lists_and_revokes_api_clients() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_outpost-server");
    let run = |args: &[&str]| {
        let out = Command::new(bin)
            .arg("--data")
            .arg(dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["demo", "--households", "3"]);
    let expires = in_days(7);
    let created: Value = serde_json::from_str(&run(&[
        "client",
        "create",
        "ledger",
        "--role",
        "admin",
        "--permission",
        "read",
        "--permission",
        "registry",
        "--area",
        "N",
        "--expires-at",
        &expires,
        "--owner",
        "admin",
    ]))
    .unwrap();
    assert!(created["secret"].as_str().unwrap().starts_with("opc_"));
    assert_eq!(created["client"]["owner"], "admin");
    // The owner is a person who can answer for it: an administrator whose area holds it.
    for owner in ["sup.north1", "nobody"] {
        let out = Command::new(bin)
            .arg("--data")
            .arg(dir.path())
            .args([
                "client",
                "create",
                "other",
                "--role",
                "admin",
                "--permission",
                "read",
            ])
            .args(["--expires-at", &expires, "--owner", owner])
            .output()
            .unwrap();
        assert!(!out.status.success(), "owned by {owner}");
    }
    assert_eq!(
        created["client"]["permissions"],
        json!(["read", "registry"])
    );
    let id = created["client"]["id"].as_str().unwrap();
    run(&["client", "revoke", id, "--reason", "test"]);
    let listed: Value = serde_json::from_str(&run(&["client", "list"])).unwrap();
    assert_eq!(listed[0]["state"], "REVOKED");
    assert!(
        !run(&["client", "list"]).contains("opc_"),
        "the secret is shown once"
    );
}

/// A token costs the password and a fresh authenticator code, for every role; a paused name
/// gets none; a reset (over the API by an administrator, or with the CLI) ends the account's
/// tokens and takes effect at once.
#[tokio::test]
async fn a_token_needs_a_fresh_code_and_a_reset_ends_the_accounts_tokens() {
    let s = Server::start(20);
    let ask = |body: Value| {
        let r = s.http.post(s.url("/api/v1/auth/token")).json(&body).send();
        async move {
            let r = r.await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let message = |v: &Value| {
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };

    // A password alone buys nothing, for a supervisor or a field agent.
    for user in ["sup.north1", "agent.n-mz"] {
        let (status, body) = ask(json!({ "username": user, "password": PASSWORD })).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{user}: {body}");
        assert!(message(&body).contains("code"), "{body}");
    }
    let (status, body) =
        ask(json!({ "username": "sup.north1", "password": PASSWORD, "code": "12345x" })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let code = s.code("sup.north1").await;
    let (status, body) =
        ask(json!({ "username": "sup.north1", "password": PASSWORD, "code": code })).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let north = body["token"].as_str().unwrap().to_owned();
    // An overheard code is not replayed.
    let (status, body) =
        ask(json!({ "username": "sup.north1", "password": PASSWORD, "code": code })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(message(&body).contains("already used"), "{body}");

    // Only an administrator resets, and the reset ends the account's tokens.
    let reset = |token: &str, user: &str, body: Value| {
        s.http
            .post(s.url(&format!("/api/v1/users/{user}/reset-login")))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let south = s.token("sup.south1").await;
    let r = reset(&south, "sup.north1", json!({ "totp": true }))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let admin = s.token("admin").await;
    let r = reset(&admin, "sup.north1", json!({})).await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "nothing to reset"
    );
    assert_eq!(s.get(&north, "/api/v1/me").await.0, StatusCode::OK);
    let r = reset(&admin, "sup.north1", json!({ "totp": true }))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        s.get(&north, "/api/v1/me").await.0,
        StatusCode::UNAUTHORIZED
    );
    let code = s.code("sup.north1").await;
    let (status, body) =
        ask(json!({ "username": "sup.north1", "password": PASSWORD, "code": code })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(message(&body).contains("log in once on the web"), "{body}");

    // The CLI resets a password while the server runs.
    let mut cli = Command::new(env!("CARGO_BIN_EXE_outpost-server"))
        .args(["--data", s.data().to_str().unwrap()])
        .args(["reset-login", "sup.south1", "--password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    cli.stdin
        .take()
        .unwrap()
        .write_all(b"a new password for south\n")
        .unwrap();
    assert!(cli.wait().unwrap().success());
    assert_eq!(
        s.get(&south, "/api/v1/me").await.0,
        StatusCode::UNAUTHORIZED
    );
    let code = s.code("sup.south1").await;
    let (status, _) =
        ask(json!({ "username": "sup.south1", "password": PASSWORD, "code": code })).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = ask(json!({
        "username": "sup.south1", "password": "a new password for south", "code": code
    }))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Five wrong passwords pause the name on this endpoint too, the right one included.
    for _ in 0..5 {
        let _ =
            ask(json!({ "username": "sup.north3", "password": "guess", "code": "000000" })).await;
    }
    let code = s.code("sup.north3").await;
    let (status, body) =
        ask(json!({ "username": "sup.north3", "password": PASSWORD, "code": code })).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(message(&body).contains("paused"), "{body}");
}

/// The log-in page shows only messages the server chose: not a link's text, and the same one
/// for a known and an unknown name.
#[tokio::test]
async fn the_login_page_shows_only_the_servers_own_messages() {
    let s = Server::start(5);
    let http = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for query in [
        "error=Your+account+is+blocked%3A+call+0999",
        "ok=Your+account+is+blocked%3A+call+0999",
        "error=Your+account+is+blocked%3A+call+0999&sig=AAAA",
    ] {
        let page = http
            .get(s.url(&format!("/login?{query}")))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!page.contains("call 0999"), "{query}");
    }
    let mut answers = Vec::new();
    for name in ["admin", "nobody.at.all"] {
        let r = http
            .post(s.url("/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("username={name}&password=guess"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        answers.push(r.headers()["location"].to_str().unwrap().to_owned());
    }
    // The answers carry their time and its signature (`at`, `sig`): alike but for those.
    let unstamped = |location: &str| -> String {
        location
            .split('&')
            .filter(|p| !p.starts_with("at=") && !p.starts_with("sig="))
            .collect::<Vec<_>>()
            .join("&")
    };
    assert_eq!(
        unstamped(&answers[0]),
        unstamped(&answers[1]),
        "known and unknown names answer alike"
    );
    assert!(answers[0].contains("&sig="), "{}", answers[0]);
    let page = http
        .get(s.url(&answers[0]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("not right"), "{page}");
}

/// A message the server signed shows only on the page it was made for and in the browser
/// it was made for: a message that echoes input (here, a language name) cannot be replayed
/// on the log-in page, nor a log-in page's message in a browser with another session.
#[tokio::test]
async fn a_signed_message_does_not_show_on_another_page_or_in_another_session() {
    let s = Server::start(5);
    let http = Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = |r: reqwest::Response| r.headers()["location"].to_str().unwrap().to_owned();
    let page = |path: String, cookie: Option<&'static str>| {
        let mut r = http.get(s.url(&path));
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        async move { r.send().await.unwrap().text().await.unwrap() }
    };
    // Made for "/" (a bad language choice) and replayed on the log-in page.
    let to_home = answer(
        http.post(s.url("/language"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("lang=xx")
            .send()
            .await
            .unwrap(),
    );
    let (path, query) = to_home.split_once('?').unwrap();
    assert_eq!(path, "/");
    assert!(query.contains("sig="), "{query}");
    let shown = page(format!("/login?{query}"), None).await;
    assert!(!shown.contains("not a language"), "{shown}");
    // Made for the log-in page with no session: shown there, not with someone's session.
    let to_login = answer(
        http.post(s.url("/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("username=admin&password=guess")
            .send()
            .await
            .unwrap(),
    );
    assert!(page(to_login.clone(), None).await.contains("not right"));
    let elsewhere = page(to_login, Some("outpost_session=someone-elses-session")).await;
    assert!(!elsewhere.contains("not right"), "{elsewhere}");
}

#[test]
fn the_cli_finds_people_registered_twice_without_ids_and_keeps_decided_pairs_decided() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_outpost-server");
    let data = dir.path().join("data");
    let run = |args: &[&str]| {
        let out = Command::new(bin)
            .arg("--data")
            .arg(&data)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let locations = dir.path().join("locations.csv");
    std::fs::write(
        &locations,
        "code,name,level,parent_code\nR,Region,REGION,\nD,District,DISTRICT,R\nV1,One,VILLAGE,D\nV2,Two,VILLAGE,D\n",
    )
    .unwrap();
    run(&["import", "locations", locations.to_str().unwrap()]);

    // A registry of distinct people (namesakes among them: same names, other birthday and
    // village), then a second file with two of them again: names swapped and unaccented with
    // day and month swapped, and a typo in the family name.
    let given = [
        "Chikondi", "Tiyamike", "Mphatso", "Grace", "Yohane", "Hélène", "Kondwani", "Esther",
    ];
    let family = ["Banda", "Phiri", "Mwale", "Tembo", "Chirwa", "Nyirenda"];
    let mut first = String::from("first_name,last_name,dob,id,location_name\n");
    let mut n = 0;
    for (g, given) in given.iter().enumerate() {
        for (f, family) in family.iter().enumerate() {
            n += 1;
            let village = if (g + f) % 2 == 0 { "V1" } else { "V2" };
            first.push_str(&format!(
                "{given},{family},{}-{:02}-{:02},A{n},{village}\n",
                1950 + (g * 7 + f * 3) % 50,
                1 + (g + f * 5) % 12,
                1 + (g * 3 + f) % 12
            ));
        }
    }
    // The namesake of Hélène Banda: another birthday, another village.
    first.push_str("Hélène,Banda,1971-11-23,A99,V2\n");
    let file = dir.path().join("first.csv");
    std::fs::write(&file, &first).unwrap();
    run(&["import", "individuals", file.to_str().unwrap()]);
    let helene = first
        .lines()
        .find(|l| l.starts_with("Hélène,Banda,"))
        .unwrap()
        .to_owned();
    let grace = first
        .lines()
        .find(|l| l.starts_with("Grace,Nyirenda,"))
        .unwrap()
        .to_owned();
    let date = |line: &str| line.split(',').nth(2).unwrap().to_owned();
    let village = |line: &str| line.split(',').nth(4).unwrap().to_owned();
    let (hy, hm, hd) = {
        let d = date(&helene);
        let p: Vec<&str> = d.split('-').collect();
        (p[0].to_owned(), p[1].to_owned(), p[2].to_owned())
    };
    let second = format!(
        "first_name,last_name,dob,id,location_name\nBanda,Helene,{hy}-{hd}-{hm},B1,{}\nGrace,Nyirendda,{},B2,{}\n",
        village(&helene),
        date(&grace),
        village(&grace)
    );
    let file = dir.path().join("second.csv");
    std::fs::write(&file, second).unwrap();
    run(&["import", "individuals", file.to_str().unwrap()]);

    let json = dir.path().join("dedup.json");
    let out = run(&["dedup", "--json", json.to_str().unwrap()]);
    assert!(out.contains("2 likely duplicate(s), 2 new"), "{out}");
    let found: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let pairs: Vec<(String, String)> = found["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let mut ids = [
                c["first"]["external_id"].as_str().unwrap().to_owned(),
                c["second"]["external_id"].as_str().unwrap().to_owned(),
            ];
            ids.sort();
            (ids[0].clone(), ids[1].clone())
        })
        .collect();
    let id = |line: &str| line.split(',').nth(3).unwrap().to_owned();
    assert!(pairs.contains(&(id(&helene), "B1".to_owned())), "{pairs:?}");
    assert!(pairs.contains(&(id(&grace), "B2".to_owned())), "{pairs:?}");
    // The evidence says why, field by field, in words.
    let helene_pair = found["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["first"]["external_id"] == "B1" || c["second"]["external_id"] == "B1")
        .unwrap();
    let findings: Vec<&str> = helene_pair["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["finding"].as_str().unwrap())
        .collect();
    assert!(
        findings
            .iter()
            .any(|f| f.contains("swapped between the two records")),
        "{findings:?}"
    );
    assert!(
        findings
            .iter()
            .any(|f| f.ends_with("day and month swapped")),
        "{findings:?}"
    );
    assert!(helene_pair["probability"].as_f64().unwrap() >= 0.85);

    // A second run refreshes the open pairs; a pair decided distinct (as review will record
    // it) is never proposed again.
    let db = rusqlite::Connection::open(data.join("registry.db")).unwrap();
    db.execute(
        "UPDATE dedup_candidates SET status = 'DISTINCT'
          WHERE first_id = (SELECT id FROM individuals WHERE external_id = 'B2')
             OR second_id = (SELECT id FROM individuals WHERE external_id = 'B2')",
        [],
    )
    .unwrap();
    let out = run(&["dedup", "--json", json.to_str().unwrap()]);
    assert!(
        out.contains("0 new, 0 reopened, 1 still open, 1 decided before"),
        "{out}"
    );
    let found: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(found["candidates"].as_array().unwrap().len(), 1);
    let audited: i64 = db
        .query_row(
            "SELECT count(*) FROM audit_log WHERE action = 'dedup.run'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(audited, 2);

    // A corrected record no longer matches: its open pair is withdrawn, not left listed.
    let corrected = dir.path().join("corrected.csv");
    std::fs::write(
        &corrected,
        "first_name,last_name,dob,id,location_name\nZebedee,Kachingwe,1931-02-03,B1,V2\n",
    )
    .unwrap();
    run(&["import", "individuals", corrected.to_str().unwrap()]);
    let out = run(&["dedup", "--json", json.to_str().unwrap()]);
    assert!(
        out.contains("0 new, 0 reopened, 0 still open, 1 decided before")
            && out.contains("1 open pair(s) no longer found, withdrawn"),
        "{out}"
    );
    let found: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(found["candidates"].as_array().unwrap().is_empty());
    let statuses: Vec<String> = db
        .prepare("SELECT status FROM dedup_candidates ORDER BY status")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(statuses, ["DISTINCT", "WITHDRAWN"]);

    // Bad input changes nothing.
    let out = Command::new(bin)
        .arg("--data")
        .arg(&data)
        .args(["dedup", "--threshold", "1.5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a probability"));
}

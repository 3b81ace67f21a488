//! Nothing secret in anything the engine writes: scenarios present tokens every way
//! (header, query, subprotocol, message, HTTP bearer), servers echo them back in frames,
//! HTTP bodies, error text and stored state, and every output — stdout, stderr, GitHub
//! annotations, JUnit, JSON, HTML — is searched for the raw values.

mod common;

use common::{fresh, run_engine_async, start_server, Suite, DATABASE_URL};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An HTTP server that answers every request with 401 and the request itself (request
/// line, headers, body) as the response body: a server that echoes credentials.
async fn start_echoing_http_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    let addr = listener.local_addr().expect("local addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // Read the head (and whatever body came with it); requests here are small.
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 401 Unauthorized\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    request.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.write_all(&request).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    format!("127.0.0.1:{}", addr.port())
}

/// A port nothing listens on.
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind port 0");
    listener.local_addr().expect("local addr").port()
}

struct Secrets {
    /// Declared in `secrets:`, also the JWT signing secret.
    signing: String,
    /// Declared in `secrets:`, one character.
    short: &'static str,
    /// Declared in `secrets:`, given by the process environment.
    extra: &'static str,
    /// The password of the database URL.
    db_password: String,
    /// The password of a WebSocket URL (not declared anywhere).
    url_password: String,
    /// A token presented as is (not a JWT, not declared).
    opaque: String,
    /// A JWT signing secret given in a step.
    step_signing: String,
}

impl Secrets {
    fn fresh() -> Self {
        let id = fresh();
        Secrets {
            signing: format!("signing_{id}"),
            short: "Ω",
            extra: "zQ!",
            db_password: format!("dbpw{id}"),
            url_password: format!("urlpw{id}"),
            opaque: format!("opaque{id}"),
            step_signing: format!("stepkey{id}"),
        }
    }

    fn all(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("signing secret", &self.signing),
            ("short secret", self.short),
            ("secret from the process env", self.extra),
            ("database URL password", &self.db_password),
            ("WebSocket URL password", &self.url_password),
            ("opaque presented token", &self.opaque),
            ("signing secret given in a step", &self.step_signing),
            // Any JWT: every token minted here is one.
            ("a JWT", "eyJ"),
        ]
    }
}

fn write_suite(ws: &str, http: &str, closed: u16, s: &Secrets) -> Suite {
    let suite = Suite::new(ws, "");
    let db_url = DATABASE_URL.replace("postgres@", &format!("postgres:{}@", s.db_password));
    suite.spec(
        "engine.yaml",
        &format!(
            "env:\n  WS_URL: {ws}\n  HTTP_ECHO: {http}\n  CLOSED: \"{closed}\"\n  DATABASE_URL: \"{db_url}\"\n  REDIS_URL: {redis_url}\n  SIGNING: {signing}\n  SHORT: {short}\n  OPAQUE: {opaque}\n  URL_PASSWORD: {url_password}\nsecrets: [SIGNING, SHORT, EXTRA]\nauth:\n  jwt: {{ secret: \"{{{{ env.SIGNING }}}}\" }}\ndatabases:\n  default: \"{{{{ env.DATABASE_URL }}}}\"\ntimeouts: {{ step: 2s, scenario: 20s }}\n",
            signing = s.signing,
            redis_url = common::REDIS_URL,
            short = s.short,
            opaque = s.opaque,
            url_password = s.url_password,
        ),
    );
    // Passes: a JWT offered as a subprotocol comes back in `hello`; one sent in an auth
    // message is echoed; declared secrets and the database URL are echoed in frames.
    suite.spec(
        "a_passes.yaml",
        "name: passes with tokens and secrets in frames\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/subprotocols\", authenticate: { jwt: { claims: { sub: u1 } }, as: subprotocol } }\n  - expect: { event: hello }\n  - connect: { name: echo, url: \"{{ env.WS_URL }}/echo\" }\n  - authenticate: { on: echo, jwt: { claims: { sub: u2 } } }\n  - expect: { on: echo, event: echo }\n  - send: { on: echo, json: { type: say, all: \"{{ env.SIGNING }} {{ env.SHORT }} {{ env.EXTRA }} {{ env.DATABASE_URL }}\" } }\n  - expect: { on: echo, event: echo }\n",
    );
    // Fails while the server echoes an opaque token, a step's signing secret and every
    // declared secret: the failure shows received frames and the spec line.
    suite.spec(
        "b_fails_on_echo.yaml",
        &format!("name: fails on echoed secrets\nsteps:\n  - connect: {{ url: \"{{{{ env.WS_URL }}}}/echo\", authenticate: {{ token: \"{{{{ env.OPAQUE }}}}\", as: message }} }}\n  - authenticate: {{ jwt: {{ secret: {step}, claims: {{ sub: u3 }} }} }}\n  - send: {{ json: {{ type: say, all: \"{{{{ env.SIGNING }}}} {{{{ env.SHORT }}}} {{{{ env.EXTRA }}}} {{{{ env.OPAQUE }}}} {step}\" }} }}\n  - expect: {{ event: echo, match: {{ body: {{ type: other, key: {step} }} }}, within: 200ms }}\n", step = s.step_signing),
    );
    // An HTTP server that echoes the bearer token and query back in its error body.
    suite.spec(
        "c_http_echo.yaml",
        "name: http body echoes the bearer token\nsteps:\n  - http: { url: \"http://{{ env.HTTP_ECHO }}/login\", bearer: { jwt: { claims: { sub: u4 } } }, status: 200 }\n",
    );
    suite.spec(
        "d_http_echo_opaque.yaml",
        "name: http body echoes an opaque bearer token\nsteps:\n  - http: { url: \"http://{{ env.HTTP_ECHO }}/me\", bearer: { token: \"{{ env.OPAQUE }}\" } }\n",
    );
    // A handshake refused with a body that echoes the Authorization header.
    suite.spec(
        "e_handshake_echo.yaml",
        "name: handshake refusal echoes the header\nsteps:\n  - connect: { url: \"ws://{{ env.HTTP_ECHO }}/ws\", authenticate: { jwt: { claims: { sub: u5 } } } }\n",
    );
    // A connection error that names the URL: its password and a query token.
    suite.spec(
        "f_query_token.yaml",
        "name: connection error names a URL with a password and a token\nsteps:\n  - connect: { url: \"ws://user:{{ env.URL_PASSWORD }}@127.0.0.1:{{ env.CLOSED }}/ws\", authenticate: { token: \"{{ env.OPAQUE }}\", as: query }, within: 2s }\n",
    );
    // Postgres's error text quotes a secret.
    suite.spec(
        "g_sql_error.yaml",
        "name: a server error quotes a secret\nsteps:\n  - sql: { query: 'SELECT * FROM \"no_such_table_{{ env.SIGNING }}_{{ env.SHORT }}\"' }\n",
    );
    // A state assertion reads a secret back from Redis: what it found is reported.
    suite.spec(
        "h_redis_holds_a_secret.yaml",
        &format!("name: redis holds a secret\nsteps:\n  - redis: {{ command: [SET, \"redaction:{key}\", \"{{{{ env.SIGNING }}}}\"] }}\n  - assert_redis: {{ key: \"redaction:{key}\", string: \"{{{{ env.SIGNING }}}}\" }}\nteardown:\n  - redis: [DEL, \"redaction:{key}\"]\n", key = fresh()),
    );
    suite
}

#[tokio::test]
async fn no_output_holds_a_secret_or_a_token() {
    let ws = start_server().await;
    let http = start_echoing_http_server().await;
    let closed = closed_port().await;
    let secrets = Secrets::fresh();
    let suite = write_suite(&ws, &http, closed, &secrets);
    let out = tempfile::tempdir().unwrap();
    let junit = out.path().join("junit.xml");
    let json = out.path().join("report.json");
    let html = out.path().join("report.html");
    let (code, stdout, stderr) = run_engine_async(
        vec![
            "run".into(),
            suite.path().display().to_string(),
            "--junit".into(),
            junit.display().to_string(),
            "--json".into(),
            json.display().to_string(),
            "--html".into(),
            html.display().to_string(),
            // Passing scenarios' frames too.
            "--report-frames".into(),
            "all".into(),
        ],
        vec![
            ("GITHUB_ACTIONS".into(), "true".into()),
            ("EXTRA".into(), secrets.extra.into()),
        ],
    )
    .await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let junit = std::fs::read_to_string(&junit).unwrap();
    let json = std::fs::read_to_string(&json).unwrap();
    let html = std::fs::read_to_string(&html).unwrap();
    // The scenarios did what they are for: the secrets reached the outputs' sources.
    assert!(stdout.contains("2 passed, 6 failed"), "{stdout}\n{stderr}");
    for expected in [
        "relation \"no_such_table_***_***\" does not exist",
        "HTTP 401",
        "authorization: Bearer ***",
        "ws://user:***@127.0.0.1",
        "?token=***",
        "::error file=",
    ] {
        assert!(
            stdout.contains(expected),
            "`{expected}` not in stdout:\n{stdout}"
        );
    }
    let report: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    let frames: Vec<String> = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["attempts"][0]["frames"].as_array().unwrap().clone())
        .map(|f| f["data"].as_str().unwrap().to_string())
        .collect();
    assert!(
        frames.iter().any(|f| f.contains(r#""protocols":"***""#)),
        "the subprotocol token's echo was not recorded: {frames:?}"
    );
    assert!(
        frames.iter().any(|f| f.contains(r#""token":"***""#)),
        "the auth message was not recorded: {frames:?}"
    );
    assert!(
        frames
            .iter()
            .any(|f| f.contains("*** *** *** postgres://postgres:***@")),
        "the echoed secrets were not recorded: {frames:?}"
    );
    let seen = report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "redis holds a secret")
        .map(|s| s["attempts"][0]["steps"][1]["observations"][0].clone())
        .unwrap();
    assert_eq!(
        (&seen["expected"]["string"], &seen["actual"]),
        (&serde_json::json!("***"), &serde_json::json!("***")),
        "what the assertion saw is reported, redacted: {seen}"
    );
    assert!(
        html.contains(r#""observations":[{"store":"redis""#),
        "the HTML report embeds the same data"
    );
    for (what, value) in secrets.all() {
        for (output, text) in [
            ("stdout", &stdout),
            ("stderr", &stderr),
            ("JUnit", &junit),
            ("JSON", &json),
            ("HTML", &html),
        ] {
            assert!(
                !text.contains(value),
                "the {what} `{value}` is in {output}:\n{text}"
            );
        }
    }
}

//! The HTML report in a real browser: a run with a failing, a flaky and a passing
//! scenario against the in-process WebSocket server, `--html`, then headless Chromium
//! (Debian's, installed by `scripts/browser.sh` where missing) opens the page, finds the
//! failure first and open, its failing frame highlighted and pretty-printed, the flaky
//! scenario's attempts side by side, filters that work, and no request leaving the
//! file. Screenshots go to `target/html-report/` for people to look at.

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::path::PathBuf;
use std::time::Duration;

use browser::Browser;
use common::{fresh, redis, run_engine_async, start_server, Suite};

const RENDER_DEADLINE: Duration = Duration::from_secs(10);

fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")));
    target.join("html-report")
}

/// A failing, a flaky (fails once: a counter must read 2) and a passing scenario.
fn specs(suite: &Suite, counter: &str) {
    suite.spec(
        "b/fails.yaml",
        "name: an echo that never matches\ntags: [echo]\nids: { u: user }\nsteps:\n  - connect: { name: tab, url: \"{{ env.WS_URL }}/echo\" }\n  - send: { on: tab, json: { type: say, who: \"{{ ids.u }}\", secret: \"{{ env.SECRET }}\" } }\n  - expect: { on: tab, event: echo, match: { body: { type: other } }, within: 300ms }\n",
    );
    suite.spec(
        "c/flaky.yaml",
        &format!("name: a counter that reads 2 on the second try\nsteps:\n  - redis: {{ command: [INCR, \"{counter}\"] }}\n  - assert_redis: {{ key: \"{counter}\", string: \"2\" }}\n"),
    );
    suite.spec(
        "a/passes.yaml",
        "name: a greeting and an echo\ntags: [smoke, echo]\nsteps:\n  - connect: { url: \"{{ env.WS_URL }}/echo\" }\n  - expect: { event: hello }\n  - send: { json: { type: say, n: 2 } }\n  - expect: { event: echo, match: { body: { n: 2 } } }\n",
    );
}

#[tokio::test]
async fn the_html_report_shows_the_failure_first_with_its_failing_frame_in_chromium() {
    let url = start_server().await;
    let suite = Suite::new(&url, "");
    let counter = format!("html-report-test:{}", fresh());
    specs(&suite, &counter);
    let out = tempfile::tempdir().unwrap();
    let page = out.path().join("report.html");
    let (code, stdout, stderr) = run_engine_async(
        vec![
            "run".into(),
            suite.path().display().to_string(),
            "--retries".into(),
            "1".into(),
            "--html".into(),
            page.display().to_string(),
        ],
        vec![],
    )
    .await;
    let _: () = redis::cmd("DEL")
        .arg(&counter)
        .query_async(&mut redis().await)
        .await
        .unwrap();
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("FLAKY"), "{stdout}");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("test-secret-value"),
        "a secret reached the page"
    );

    let mut browser = Browser::launch(1400, 1000)
        .await
        .expect("headless Chromium");
    browser
        .call("Network.enable", serde_json::json!({}))
        .await
        .unwrap();
    browser
        .open(&format!("file://{}", page.display()))
        .await
        .unwrap();
    browser
        .wait_for("document.body.dataset.rendered === 'true'", RENDER_DEADLINE)
        .await
        .unwrap();

    // Failed first and open, then flaky, then passed.
    let order = browser
        .eval("[...document.querySelectorAll('li.scenario')].map(li => li.dataset.verdict + (li.firstChild.open ? ':open' : ''))")
        .await
        .unwrap();
    assert_eq!(
        order,
        serde_json::json!(["failed:open", "flaky", "passed"]),
        "failures come first, open"
    );

    // The failing frame: highlighted, open, pretty-printed, taken by no step.
    let failing = browser
        .eval(
            "(() => { const li = document.querySelector('li.scenario'); \
             const frames = li.querySelectorAll('details.frame.failed'); \
             const f = frames[frames.length - 1]; \
             return { count: frames.length, open: f.open, text: f.querySelector('pre').textContent, \
                      marks: li.querySelectorAll('.mark.failed').length, \
                      failure: li.querySelector('.failure pre').textContent }; })()",
        )
        .await
        .unwrap();
    assert_eq!(failing["count"], 2, "one per attempt: {failing}");
    assert_eq!(failing["open"], true);
    assert_eq!(failing["marks"], 2, "the timeline marks it too");
    let text = failing["text"].as_str().unwrap();
    assert!(
        text.contains("\"type\": \"echo\"") && text.contains("\n  \"body\": {"),
        "pretty-printed echo frame: {text}"
    );
    assert!(!text.contains("test-secret-value") && text.contains("***"));
    assert!(failing["failure"]
        .as_str()
        .unwrap()
        .contains("no `echo` matching"));

    // Clicking its mark on the timeline brings the frame into view.
    browser
        .eval("document.querySelector('li.scenario .mark.failed').click()")
        .await
        .unwrap();
    browser
        .wait_for(
            "(() => { const r = document.querySelector('li.scenario details.frame.failed').getBoundingClientRect(); \
             return r.top >= 0 && r.bottom <= innerHeight; })()",
            RENDER_DEADLINE,
        )
        .await
        .expect("the failing frame scrolled into view");
    browser.eval("scrollTo(0, 0)").await.unwrap();
    browser
        .screenshot(&screenshots().join("failure-first.png"), true)
        .await
        .unwrap();

    // The flaky scenario's two attempts side by side, with what Redis held each time.
    browser
        .eval("document.querySelectorAll('li.scenario')[1].querySelector('summary').click()")
        .await
        .unwrap();
    browser
        .wait_for(
            "document.querySelectorAll('li.scenario')[1].querySelectorAll('section.attempt').length",
            RENDER_DEADLINE,
        )
        .await
        .expect("opening the flaky scenario draws its attempts");
    let flaky = browser
        .eval(
            "(() => { const d = document.querySelectorAll('li.scenario')[1].firstChild; \
             const attempts = [...d.querySelectorAll('section.attempt')]; \
             return attempts.map(a => ({ status: a.className, top: a.getBoundingClientRect().top, \
                 actual: a.querySelector('.observation pre.actual').textContent })); })()",
        )
        .await
        .unwrap();
    let attempts = flaky.as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{flaky}");
    assert_eq!(attempts[0]["status"], "attempt failed");
    assert_eq!(attempts[1]["status"], "attempt passed");
    assert_eq!(attempts[0]["top"], attempts[1]["top"], "side by side");
    assert_eq!(attempts[0]["actual"], "\"1\"");
    assert_eq!(attempts[1]["actual"], "\"2\"");
    browser
        .eval("document.querySelectorAll('li.scenario')[1].scrollIntoView()")
        .await
        .unwrap();
    browser
        .screenshot(&screenshots().join("flaky-side-by-side.png"), true)
        .await
        .unwrap();

    // Filters: text search, then the failed toggle.
    let shown = browser
        .eval(
            "(() => { const s = document.getElementById('search'); s.value = 'greeting'; \
             s.dispatchEvent(new Event('input')); \
             const bySearch = [...document.querySelectorAll('li.scenario')].filter(li => !li.hidden).map(li => li.dataset.verdict); \
             s.value = ''; s.dispatchEvent(new Event('input')); \
             const box = document.getElementById('show-failed'); box.checked = false; box.dispatchEvent(new Event('change')); \
             const byVerdict = [...document.querySelectorAll('li.scenario')].filter(li => !li.hidden).map(li => li.dataset.verdict); \
             const t = document.getElementById('tag'); t.value = 'smoke'; t.dispatchEvent(new Event('input')); \
             const byTag = [...document.querySelectorAll('li.scenario')].filter(li => !li.hidden).map(li => li.dataset.verdict); \
             return { bySearch, byVerdict, byTag }; })()",
        )
        .await
        .unwrap();
    assert_eq!(
        shown,
        serde_json::json!({"bySearch": ["passed"], "byVerdict": ["flaky", "passed"], "byTag": ["passed"]})
    );

    // Nothing was fetched but the file itself.
    browser.eval("1").await.unwrap();
    let requests: Vec<String> = browser
        .events("Network.requestWillBeSent")
        .iter()
        .filter_map(|e| e["params"]["request"]["url"].as_str().map(str::to_string))
        .collect();
    assert!(!requests.is_empty(), "requests are seen");
    assert!(
        requests.iter().all(|u| u.starts_with("file://")),
        "{requests:?}"
    );
}

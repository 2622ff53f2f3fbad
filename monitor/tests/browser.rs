//! `elstream ui` in a real Chromium: the Demo program started with the
//! default config shows up by itself; its views fill and their figures equal
//! ghc-events' on a capture of the same run; control from the page reaches
//! the program; uploads, a cut log and the compare view.

mod common;

use common::*;
use testkit::{check_bytes, event_sequence_bytes};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_appears_and_its_views_match_ghc_events() {
    let (ui, b, demo, _) = demo_in_page(&["16", "30", "5000"], None, &[]).await;
    let c = &b.client;
    let (counts, capture) = demo.finish();
    let judged = check_bytes(&capture);
    judged.assert_ok();
    let pairs = gc_pairs(&event_sequence_bytes(&capture));
    assert!(pairs > 0);
    let spans = counts["rounds"] * counts["workers"];
    // Figures once the page has the whole run.
    let js = "const g = document.querySelector('#gc-count').dataset.count; \
              const w = document.querySelector(\"#span-table tr[data-name='work']\"); \
              return [Number(g), w ? Number(w.dataset.count) : -1, \
                      Number(document.querySelector('#markers-count').dataset.markers)];";
    let want = serde_json::json!([pairs, spans, counts["markers"]]);
    let got = wait_js(
        c,
        js,
        "GC pauses, spans and markers equal the capture's",
        |v| *v == want,
    )
    .await;
    assert_eq!(got, want);
    assert_eq!(counts["markers"], judged.markers.len() as u64);
    // HEC timeline and activity graph: 2 capabilities, both drawn with activity.
    let tl = c
        .execute(
            "const t = document.querySelector('#timeline').dataset; return [t.caps, t.filledCaps];",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(tl, serde_json::json!(["2", "2"]));
    // The activity graph's pixels: green (running) present in its strip.
    let green = c
        .execute(
            "const c = document.querySelector('#timeline'); const d = c.getContext('2d') \
             .getImageData(0, 0, c.width, Math.floor(60 * (window.devicePixelRatio || 1))).data; \
             let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i+1] > 120 && d[i] < 80) n++; return n;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        green.as_u64().unwrap() > 50,
        "activity graph drawn: {green}"
    );
    // Threads view: every labelled thread with its label, and finished
    // exactly where ghc-events shows the thread finishing.
    let want = labels_by_ghc_events(&capture);
    // Demo's own labels (9.6+ labels its I/O and timer manager threads too).
    let ours = want
        .iter()
        .filter(|(_, l, _)| l.starts_with("worker ") || l == "demo main")
        .count();
    assert_eq!(
        ours as u64,
        spans + 1,
        "workers and main labelled: {want:?}"
    );
    let js = "return [...document.querySelectorAll('#thread-table tbody tr')] \
              .filter((r) => r.dataset.label) \
              .map((r) => [Number(r.dataset.id), r.dataset.label, r.dataset.state]);";
    let rows = wait_js(c, js, "the labelled threads", |v| {
        v.as_array().is_some_and(|a| a.len() == want.len())
    })
    .await;
    let got: Vec<(u32, String, bool)> = serde_json::from_value::<Vec<(u32, String, String)>>(rows)
        .unwrap()
        .into_iter()
        .map(|(id, l, s)| (id, l, s == "finished"))
        .collect();
    assert_eq!(got, want);
    let shot = save_screenshot(c, "live-demo").await;
    assert_not_blank(&shot);
    b.client.clone().close().await.unwrap();
    drop(ui);
}

/// (thread, label, finished) of every labelled thread, by id, from
/// `ghc-events show` of `log`: "thread N has label \"L\"" and
/// "stopping thread N (thread finished)".
fn labels_by_ghc_events(log: &[u8]) -> Vec<(u32, String, bool)> {
    let dir = testkit::TempDir::new("ui-labels");
    let path = dir.join("capture.eventlog");
    std::fs::write(&path, log).unwrap();
    let out = std::process::Command::new("ghc-events")
        .arg("show")
        .arg(&path)
        .output()
        .expect("ghc-events show");
    assert!(out.status.success(), "ghc-events show failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut labels = std::collections::BTreeMap::new();
    let mut finished = std::collections::HashSet::new();
    for line in text.lines() {
        if let Some((_, rest)) = line.split_once(": thread ") {
            if let Some((id, label)) = rest.split_once(" has label \"") {
                let label = label.strip_suffix('"').unwrap_or(label);
                labels.insert(id.parse::<u32>().unwrap(), label.to_string());
            }
        }
        if let Some((_, rest)) = line.split_once(": stopping thread ") {
            if let Some(id) = rest.strip_suffix(" (thread finished)") {
                finished.insert(id.parse::<u32>().unwrap());
            }
        }
    }
    labels
        .into_iter()
        .map(|(id, l)| (id, l, finished.contains(&id)))
        .collect()
}

/// `-hT`, with the automatic samples off where the RTS has the switch (9.2+),
/// so samples in the stream come from the page's census request.
fn heap_rts() -> Vec<&'static str> {
    let mut v = vec!["-hT"];
    if testkit::ghc().numeric() >= (9, 2, 0) {
        v.push("--no-automatic-heap-samples");
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_from_the_page_reaches_the_program() {
    // A periodic flush, so the page sees the run while it runs (9.0.2).
    let (ui, b, demo, li) = demo_in_page(&["150", "40", "3000"], Some("100ms"), &heap_rts()).await;
    let c = &b.client;
    // A few rounds in, switch the scheduler class off from the page.
    wait_js(
        c,
        "return Number(document.querySelector('#markers-count').dataset.markers || 0)",
        "markers",
        |v| v.as_u64().unwrap_or(0) >= 3,
    )
    .await;
    c.find(fantoccini::Locator::Css("#classes input[data-class='s']"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    click(c, "#classes-apply").await;
    let reply =
        "const r = document.querySelector('#control-reply').dataset; return [r.command, r.status];";
    wait_js(c, reply, "classes reply", |v| {
        *v == serde_json::json!(["classes =gpu", "ok"])
    })
    .await;
    click(c, "button[data-cmd='flush']").await;
    wait_js(c, reply, "flush reply", |v| {
        *v == serde_json::json!(["flush", "ok"])
    })
    .await;
    // Heap profiling: the shim's commands. On 9.2+ a census on request puts
    // heap samples in the stream (automatic ones are off); on 9.0.2 it is
    // refused with the reason and the page says "unavailable".
    click(c, "button[data-cmd='heap-profile on']").await;
    wait_js(c, reply, "heap profile reply", |v| {
        *v == serde_json::json!(["heap-profile on", "ok"])
    })
    .await;
    click(c, "button[data-cmd='heap-census']").await;
    let census = wait_js(c, reply, "heap census reply", |v| v[0] == "heap-census").await;
    let text = c
        .find(fantoccini::Locator::Css("#control-reply"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let census_ok = testkit::ghc().numeric() >= (9, 2, 0);
    if census_ok {
        assert_eq!(census[1], "ok", "{text}");
    } else {
        assert_eq!(census[1], "unavailable", "{text}");
        assert!(text.contains("GHC < 9.2"), "{text}");
    }
    // Snapshot from the page: a download.
    click(c, "#snapshot").await;
    let snap = wait_js(
        c,
        "const r = document.querySelector('#control-reply').dataset; return [r.command, r.status, Number(r.bytes || 0)];",
        "snapshot",
        |v| v[0] == "snapshot",
    )
    .await;
    assert_eq!(snap[1], "ok", "{snap}");
    assert!(snap[2].as_u64().unwrap() > 1000);
    // The same endpoint's bytes parse (ghc-events), and a POST without the page's Origin is refused.
    let id = c
        .execute(
            &format!("return Number(document.querySelector(\"{li}\").dataset.id)"),
            vec![],
        )
        .await
        .unwrap()
        .as_u64()
        .unwrap();
    let path = format!("/api/sessions/{id}/snapshot");
    let (st, _, body) = http(ui.port, "POST", &path, &[("Origin", &origin(ui.port))], b"");
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&body));
    check_bytes(&body).assert_prefix_ok();
    let (st, _, _) = http(
        ui.port,
        "POST",
        &path,
        &[("Origin", "http://evil.example")],
        b"",
    );
    assert_eq!(st, 403);
    let (st, _, _) = http(ui.port, "POST", &path, &[], b"");
    assert_eq!(st, 403);
    let shot = save_screenshot(c, "control").await;
    assert_not_blank(&shot);

    let (counts, capture) = demo.finish();
    let seq = event_sequence_bytes(&capture);
    let runs: Vec<u64> = seq.iter().filter(|e| e.2 == 1).map(|e| e.0).collect();
    assert!(!runs.is_empty(), "RunThread before the switch");
    let last_run = *runs.iter().max().unwrap();
    let judged = check_bytes(&capture);
    judged.assert_ok();
    // Markers keep coming (class u is on) long after the last RunThread.
    let marker_times: Vec<u64> = seq.iter().filter(|e| e.2 == 58).map(|e| e.0).collect();
    let after = marker_times.iter().filter(|&&t| t > last_run).count();
    assert!(
        after >= 5,
        "markers after the last RunThread: {after} of {}",
        counts["markers"]
    );
    if census_ok {
        assert!(
            judged.count(162) >= 1,
            "heap samples after the census: {:?}",
            judged.per_type
        );
    }
    b.client.clone().close().await.unwrap();
    drop(ui);
}

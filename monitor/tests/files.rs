//! Saved logs in `elstream ui`, in a real Chromium: a `-hT` log written by
//! Demo uploaded through the page draws the heap profile with the bands
//! ghc-events reports; a cut copy renders up to the cut; the compare view
//! shows both runs' figures.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::*;
use testkit::{check, example, run_to_l_file, TempDir};

/// Demo with `+RTS -l -hT` into a file (no streaming).
fn ht_log(dir: &TempDir) -> std::path::PathBuf {
    let log = dir.join("demo-hT.eventlog");
    // Census times follow the RTS's own clock (CPU time, not wall): on a
    // loaded box a second of wall can be little of it, so sample often.
    run_to_l_file(
        &example("Demo"),
        &["20", "10", "8000"],
        &["-hT", "-i0.001"],
        &log,
        dir.path(),
    );
    log
}

/// The heap profile labels ghc-events shows ("heap prof sample N, residency R, label L").
fn ghc_events_bands(log: &std::path::Path) -> BTreeSet<String> {
    let out = Command::new("ghc-events")
        .arg("show")
        .arg(log)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("heap prof sample"))
        .filter_map(|l| l.split_once(", label ").map(|x| x.1.to_string()))
        .collect()
}

async fn upload(c: &fantoccini::Client, path: &std::path::Path) -> u64 {
    let before = c
        .execute(
            "return document.querySelector('#upload-state').dataset.id || ''",
            vec![],
        )
        .await
        .unwrap();
    let input = c.find(fantoccini::Locator::Css("#upload")).await.unwrap();
    input.send_keys(&path.display().to_string()).await.unwrap();
    let id = wait_js(
        c,
        "return document.querySelector('#upload-state').dataset.id || ''",
        "the upload",
        |v| v.as_str().is_some_and(|s| !s.is_empty()) && *v != before,
    )
    .await;
    id.as_str().unwrap().parse().unwrap()
}

fn totals(port: u16, id: u64) -> serde_json::Value {
    let (st, _, body) = http(port, "GET", &format!("/api/sessions/{id}/totals"), &[], b"");
    assert_eq!(st, 200);
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_render_profile_cut_logs_and_compare() {
    let dir = TempDir::new("ui-files");
    let log = ht_log(&dir);
    check(&log).assert_ok();
    let bands = ghc_events_bands(&log);
    let samples = check(&log).count(162);
    assert!(samples >= 5, "heap profile samples: {samples}");
    assert!(bands.len() > 3, "-hT bands: {bands:?}");
    let bytes = std::fs::read(&log).unwrap();
    let cut = dir.join("cut.eventlog");
    std::fs::write(&cut, &bytes[..bytes.len() / 2 + 7]).unwrap();
    let cut_judged = check(&cut);

    let ui = start_ui(&["--no-discover"]);
    let b = browser().await;
    let c = &b.client;
    c.goto(&format!("http://127.0.0.1:{}/", ui.port))
        .await
        .unwrap();

    // The -hT log: every band ghc-events lists, the stacked area drawn.
    let full = upload(c, &log).await;
    let shown = wait_js(
        c,
        "return Number(document.querySelector('#prof-count').dataset.bands || 0)",
        "heap profile bands",
        |v| v.as_u64().unwrap_or(0) > 0,
    )
    .await;
    assert_eq!(shown.as_u64().unwrap() as usize, bands.len());
    let t = totals(ui.port, full);
    assert_eq!(t["heap_prof_samples"].as_u64().unwrap(), samples);
    let got: BTreeSet<String> = t["bands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, bands);
    let drawn = c
        .execute(
            "return document.querySelector('#prof-plot').dataset.bands",
            vec![],
        )
        .await
        .unwrap();
    for name in drawn.as_str().unwrap().split('|') {
        assert!(
            name == "other" || bands.contains(name),
            "stacked band {name}"
        );
    }
    let area = c
        .execute(
            "const cv = document.querySelector('#prof-plot canvas'); const d = cv.getContext('2d') \
             .getImageData(0, 0, cv.width, cv.height).data; let n = 0; \
             for (let i = 0; i < d.length; i += 4) if (d[i+3] > 0 && !(d[i] > 240 && d[i+1] > 240 && d[i+2] > 240)) n++; return n;",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        area.as_u64().unwrap() > 2000,
        "stacked area painted: {area}"
    );
    assert_not_blank(&save_screenshot(c, "heap-profile-upload").await);

    // The cut copy: up to the cut, said so.
    let part = upload(c, &cut).await;
    let want = cut_judged.markers.len() as u64;
    wait_js(
        c,
        "return Number(document.querySelector('#markers-count').dataset.markers || -1)",
        "the cut log's markers",
        |v| v.as_u64() == Some(want),
    )
    .await;
    let tc = totals(ui.port, part);
    assert_eq!(tc["health"]["events"].as_u64().unwrap(), cut_judged.events);
    assert!(tc["health"]["truncated"].is_u64() && tc["health"]["error"].is_null());
    let health = c
        .find(fantoccini::Locator::Css("#health"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(health.contains("log cut"), "{health}");

    // Compare the two.
    c.execute(
        &format!(
            "document.querySelector('#cmp-a').value = '{full}'; document.querySelector('#cmp-b').value = '{part}';"
        ),
        vec![],
    )
    .await
    .unwrap();
    click(c, "#cmp-go").await;
    let row = wait_js(
        c,
        "const r = document.querySelector(\"#compare tr[data-row='GC pauses']\"); \
         return r ? [...r.querySelectorAll('td')].map(td => td.textContent).slice(1) : null;",
        "the compare table",
        |v| v.is_array(),
    )
    .await;
    let want = serde_json::json!([
        t["gc_pauses"]["count"].to_string(),
        tc["gc_pauses"]["count"].to_string()
    ]);
    assert_eq!(row, want);
    let span_row = c
        .execute(
            "const r = document.querySelector(\"#compare tr[data-row='span work']\"); \
             return r ? [...r.querySelectorAll('td')].map(td => td.textContent).slice(1) : null;",
            vec![],
        )
        .await
        .unwrap();
    let n = |t: &serde_json::Value| t["spans"][0]["count"].as_u64().unwrap();
    assert!(
        span_row[0]
            .as_str()
            .unwrap()
            .starts_with(&format!("{} ×", n(&t))),
        "{span_row}"
    );
    assert!(
        span_row[1]
            .as_str()
            .unwrap()
            .starts_with(&format!("{} ×", n(&tc))),
        "{span_row}"
    );
    assert_not_blank(&save_screenshot(c, "compare").await);
    b.client.clone().close().await.unwrap();
}

//! A week of ISS passes for Oslo: `outpost::passes::predict` against Skyfield doing the same in
//! the same run (benches/passes_skyfield.py), and a check that both find the same passes.
//!
//!     cargo bench --bench passes              # needs the Skyfield venv (scripts/bench.sh makes it)
//!
//! The TLE is tests/fixtures/passes/iss-2023-09-18.tle; the observer is Oslo (59.9139 N,
//! 10.7522 E, 20 m); the window is 7 days from 2023-09-18T12:00:00Z; minimum elevation 10 deg, sun
//! limit -6 deg (the defaults). Skyfield runs from $OUTPOST_BENCH_PYTHON (default
//! ~/.cache/outpost/bench-venv/bin/python, with skyfield and skyfield-data; offline).
//! Skyfield is timed three ways: visibility on a one-second grid between rise and set (how the
//! reference passes were made), visibility edges found by sampling every 10 s and root finding
//! (`find_discrete`: Outpost's own method), and `find_events` alone (no visibility at all: less
//! work than Outpost does). Each side's time excludes its start-up (process, imports, ephemeris
//! load); the best and the median of 10 (Rust) and 5 (Skyfield) runs are reported, and the ratio
//! of the medians. Both sides give each visible pass its magnitude at the brightest moment (the
//! same model; Skyfield's in numpy on a one-second grid, with DE421's sun): the check compares them,
//! and Skyfield's time spent on magnitudes is printed.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::*;
use outpost::passes::{Observer, Pass, PassOptions, predict};
use serde_json::Value;
use std::time::Instant;

const LAT: f64 = 59.9139;
const LON: f64 = 10.7522;
const ALT_M: f64 = 20.0;
const FROM: &str = "2023-09-18T12:00:00Z";
const DAYS: i64 = 7;

fn secs(v: &Value) -> Vec<f64> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
}

fn time_of(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

/// Checks that both found the same passes; describes how close they are.
fn compare(ours: &[Pass], theirs: &[Value]) -> String {
    assert_eq!(ours.len(), theirs.len(), "Rust found {} passes, Skyfield {}", ours.len(), theirs.len());
    let (mut worst_event, mut worst_window, mut visible, mut differ) = (0i64, 0i64, 0, 0);
    let mut worst_magnitude = 0.0_f64;
    for (a, b) in ours.iter().zip(theirs) {
        for (ours_t, key) in [(a.rise.time, "rise"), (a.culmination.time, "culmination"), (a.set.time, "set")] {
            worst_event = worst_event.max((ours_t - time_of(&b[key]["time"])).num_seconds().abs());
        }
        if a.visible != b["visible"].as_bool().unwrap() {
            println!(
                "visibility differs for the pass rising {}: Rust {}, Skyfield {}",
                a.rise.time, a.visible, b["visible"]
            );
            differ += 1;
        } else if a.visible {
            visible += 1;
            worst_window = worst_window
                .max((a.visible_from.unwrap() - time_of(&b["visible_from"])).num_seconds().abs())
                .max((a.visible_to.unwrap() - time_of(&b["visible_to"])).num_seconds().abs());
            if let (Some(ours), Some(theirs)) = (a.magnitude, b["magnitude"].as_f64()) {
                worst_magnitude = worst_magnitude.max((ours - theirs).abs());
            } else {
                panic!("a visible pass without a magnitude: Rust {:?}, Skyfield {}", a.magnitude, b["magnitude"]);
            }
        }
    }
    assert!(worst_event <= 2, "rise/culmination/set differ by {worst_event} s");
    assert!(worst_magnitude <= 0.11, "magnitudes differ by {worst_magnitude:.1}");
    format!(
        "\n    same {} passes ({visible} visible in both, {differ} differ); rise/culmination/set within {worst_event} s, visible windows within {worst_window} s, magnitudes within {worst_magnitude:.1}",
        ours.len()
    )
}

fn main() {
    println!("machine: {}", machine());
    let tle_path = manifest_dir().join("tests/fixtures/passes/iss-2023-09-18.tle");
    let tle = outpost::sources::tle_parse::parse_tle(&std::fs::read(&tle_path).unwrap()).unwrap();
    let observer = Observer { latitude: LAT, longitude: LON, altitude_m: ALT_M };
    let from: DateTime<Utc> = FROM.parse().unwrap();
    let to = from + Duration::days(DAYS);
    let opts = PassOptions::default();

    // Rust, in process.
    let mut rust = Vec::new();
    let mut ours: Vec<Pass> = Vec::new();
    for _ in 0..10 {
        let t0 = Instant::now();
        ours = predict(&tle, observer, from, to, opts).unwrap();
        rust.push(t0.elapsed().as_secs_f64());
    }

    // Skyfield, the same week, right after.
    let python = home_tool("OUTPOST_BENCH_PYTHON", "bench-venv/bin/python");
    let out = std::process::Command::new(python)
        .arg(manifest_dir().join("benches/passes_skyfield.py"))
        .arg(&tle_path)
        .args([LAT.to_string(), LON.to_string(), ALT_M.to_string(), FROM.to_owned(), DAYS.to_string(), "5".into()])
        .args([opts.min_elevation_deg.to_string(), opts.sun_limit_deg.to_string()])
        .output()
        .expect("the Skyfield venv runs (scripts/bench.sh creates it)");
    assert!(out.status.success(), "passes_skyfield.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let sky: Value = serde_json::from_slice(&out.stdout).unwrap();

    let (r_best, r_med, _) = stats_ms(rust.iter().map(|s| s * 1e3).collect());
    println!(
        "outpost::passes::predict (release): best {r_best:7.2} ms, median {r_med:7.2} ms (10 runs), {} passes",
        ours.len()
    );
    for (mode, what) in [
        ("grid", "Skyfield: find_events + visibility on a 1 s grid (the reference method) + magnitudes"),
        ("refined", "Skyfield: find_events + visibility edges by find_discrete (Outpost's method) + magnitudes"),
        ("none", "Skyfield: find_events alone (no visibility: less work than Outpost)"),
    ] {
        let (best, med, _) = stats_ms(secs(&sky[mode]["times_s"]).iter().map(|s| s * 1e3).collect());
        let check = match sky[mode]["passes"].as_array() {
            Some(theirs) => {
                let (_, mag_med, _) = stats_ms(secs(&sky[mode]["mag_s"]).iter().map(|s| s * 1e3).collect());
                format!("{}; of the median run, {mag_med:.1} ms on magnitudes", compare(&ours, theirs))
            }
            None => String::new(),
        };
        println!(
            "{what}:\n    best {best:7.1} ms, median {med:7.1} ms (5 runs); ratio of medians {:.0}x{check}",
            med / r_med
        );
    }
    println!("Skyfield start-up (imports, DE421), not timed above: {:.0} ms", sky["setup_s"].as_f64().unwrap() * 1e3);
    println!("done: {}", load());
}

//! The importer against the cost of merely reading the JSON: `serde_json::from_slice::<IgnoredAny>`
//! over the same bytes, on the Box document and the largest corpus documents.
//!
//! `GRANARY_OPENAPI_CORPUS=DIR` (set by `cargo xtask bench openapi`) adds the 5 largest
//! documents under DIR; without it the JSON fixtures of this crate are measured instead.
//!
//! After criterion's own report, a table gives per document the median time of each side and
//! the median of their ratios, measured in pairs: each round times the importer and the
//! baseline back to back (alternating which goes first), so that load from other processes
//! on a shared machine hits both sides alike (goal: a ratio of at most 1.2).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, black_box};
use serde::de::IgnoredAny;

const SAMPLES: usize = 10;
const ROUNDS: usize = 21;
const LARGEST: usize = 5;

struct Row {
    name: String,
    bytes: usize,
    importer: Duration,
    baseline: Duration,
    ratio: f64,
}

fn main() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut documents = vec![fixtures.join("box.json")];
    match std::env::var_os("GRANARY_OPENAPI_CORPUS") {
        Some(dir) => documents.extend(largest(Path::new(&dir), LARGEST)),
        None => documents.extend(
            json_files(&fixtures)
                .into_iter()
                .filter(|p| !p.ends_with("box.json")),
        ),
    }

    let mut criterion = Criterion::default()
        .sample_size(SAMPLES)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    let mut rows = Vec::new();
    for path in &documents {
        let Ok(bytes) = std::fs::read(path) else {
            eprintln!("skipped {}: cannot read it", path.display());
            continue;
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if let Err(e) = granary_openapi::parse(&bytes) {
            eprintln!("skipped {name}: the importer rejects it: {e}");
            continue;
        }
        let mut group = criterion.benchmark_group("openapi");
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.sampling_mode(SamplingMode::Flat);
        group.bench_function(BenchmarkId::new("importer", &name), |b| {
            b.iter(|| granary_openapi::parse(black_box(&bytes)).is_ok())
        });
        group.bench_function(BenchmarkId::new("ignored_any", &name), |b| {
            b.iter(|| serde_json::from_slice::<IgnoredAny>(black_box(&bytes)).is_ok())
        });
        group.finish();
        rows.push(paired(name, &bytes));
    }
    criterion.final_summary();
    print_table(&rows);
}

fn importer(bytes: &[u8]) -> bool {
    granary_openapi::parse(black_box(bytes)).is_ok()
}

fn baseline(bytes: &[u8]) -> bool {
    serde_json::from_slice::<IgnoredAny>(black_box(bytes)).is_ok()
}

/// Times `iters` runs of `f`.
fn time(iters: u32, bytes: &[u8], f: fn(&[u8]) -> bool) -> Duration {
    let started = Instant::now();
    for _ in 0..iters {
        black_box(f(bytes));
    }
    started.elapsed() / iters
}

/// The paired measurement: `ROUNDS` rounds, each timing both sides back to back.
fn paired(name: String, bytes: &[u8]) -> Row {
    // Enough iterations per timing to last about 2 ms.
    let single = time(1, bytes, baseline).max(Duration::from_nanos(50));
    let iters = u32::try_from(Duration::from_millis(2).as_nanos() / single.as_nanos())
        .unwrap_or(u32::MAX)
        .clamp(1, 100_000);
    let (mut imp, mut base, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (i, b) = if round % 2 == 0 {
            let i = time(iters, bytes, importer);
            (i, time(iters, bytes, baseline))
        } else {
            let b = time(iters, bytes, baseline);
            (time(iters, bytes, importer), b)
        };
        ratios.push(i.as_secs_f64() / b.as_secs_f64().max(f64::MIN_POSITIVE));
        imp.push(i);
        base.push(b);
    }
    imp.sort();
    base.sort();
    ratios.sort_by(f64::total_cmp);
    Row {
        name,
        bytes: bytes.len(),
        importer: imp.get(ROUNDS / 2).copied().unwrap_or_default(),
        baseline: base.get(ROUNDS / 2).copied().unwrap_or_default(),
        ratio: ratios.get(ROUNDS / 2).copied().unwrap_or_default(),
    }
}

fn print_table(rows: &[Row]) {
    println!();
    println!(
        "openapi bench: importer vs serde_json::from_slice::<IgnoredAny>, {ROUNDS} paired rounds (medians)"
    );
    println!(
        "{:<40} {:>10} {:>14} {:>14} {:>7}",
        "document", "size", "importer", "ignored_any", "ratio"
    );
    for row in rows {
        println!(
            "{:<40} {:>10} {:>14} {:>14} {:>7.2}",
            row.name,
            size(row.bytes),
            format!("{:.3?}", row.importer),
            format!("{:.3?}", row.baseline),
            row.ratio
        );
    }
}

fn size(bytes: usize) -> String {
    if bytes >= 1_000_000 {
        format!("{:.1} MB", bytes as f64 / 1e6)
    } else {
        format!("{:.1} kB", bytes as f64 / 1e3)
    }
}

/// The `n` largest `.json` files under `dir`, largest first.
fn largest(dir: &Path, n: usize) -> Vec<PathBuf> {
    let mut files = Vec::new();
    walk(dir, &mut files);
    let mut sized: Vec<(u64, PathBuf)> = files
        .into_iter()
        .filter_map(|p| std::fs::metadata(&p).ok().map(|m| (m.len(), p)))
        .collect();
    sized.sort_by_key(|(len, _)| std::cmp::Reverse(*len));
    sized.into_iter().take(n).map(|(_, p)| p).collect()
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            walk(&path, out);
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

//! The toolkit against hand-written tokio-postgres (one client, statements prepared once: the
//! floor), interleaved in one process on the same table. Ratios measured in the same run are
//! what count; absolute numbers on a 2-core machine are noisy.
//!
//! `cargo bench -p toolkit-bench` (uses `DATABASE_URL` when set, else a throwaway cluster).
//! `BENCH_PASSES` (default 7: medians of fewer passes move by several percent on a shared VM)
//! sets the number of interleaved passes. `BENCH_SUBSCRIBER=record` installs a subscriber that
//! records every span and event of the toolkit; `--no-default-features` builds the toolkit
//! without its `tracing` feature (see BENCHMARKS.md, "Tracing overhead").

mod alloc;
mod queries;
mod raw;
mod replicas;
mod stats;
mod subscriber;
mod tracing_overhead;
mod workloads;

use stats::{fmt_dur, fmt_rate, median, Run};
use toolkit::testing::TestDatabase;

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

/// What one workload measured over all passes.
struct Row {
    name: &'static str,
    unit: &'static str,
    raw: Vec<Run>,
    kit: Vec<Run>,
    raw_label: &'static str,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let passes: usize = std::env::var("BENCH_PASSES")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(7);
    if std::env::var("BENCH_ONLY").is_ok_and(|only| only == "replicas") {
        // A primary and a standby of its own, so not part of the default run.
        return replicas::run(passes).await;
    }
    let recording = subscriber::install_from_env()?;
    let tdb = TestDatabase::create().await?;
    println!("benchmark database: {} ({passes} passes)", tdb.settings());
    println!(
        "toolkit tracing: {}",
        match (cfg!(feature = "tracing"), recording) {
            (false, _) => "compiled out (--no-default-features)",
            (true, false) => "compiled in, no subscriber",
            (true, true) => "compiled in, recording subscriber",
        }
    );
    let mut bench = workloads::Bench::new(&tdb).await?;

    let mut rows: Vec<Row> = Vec::new();
    let mut memory: Vec<(&'static str, usize, usize)> = Vec::new();
    for pass in 0..passes {
        eprintln!("pass {}/{passes}", pass + 1);
        // Alternate which side goes first so warm caches do not favour one of them.
        let raw_first = pass % 2 == 0;
        for (index, outcome) in bench.pass(raw_first).await?.into_iter().enumerate() {
            if rows.len() <= index {
                rows.push(Row {
                    name: outcome.name,
                    unit: outcome.unit,
                    raw: vec![],
                    kit: vec![],
                    raw_label: outcome.raw_label,
                });
            }
            rows[index].raw.push(outcome.raw);
            rows[index].kit.push(outcome.kit);
            if let Some((raw, kit)) = outcome.memory {
                memory.push((outcome.name, raw, kit));
            }
        }
    }

    println!();
    println!(
        "{:<28} {:>10} {:>10} {:>7} {:>13} {:>19} {:>19}",
        "workload", "raw", "toolkit", "ratio", "ratio min-max", "raw p50/p99", "toolkit p50/p99"
    );
    for row in &rows {
        let mut ratios: Vec<f64> = row
            .kit
            .iter()
            .zip(&row.raw)
            .map(|(k, r)| k.rate / r.rate)
            .collect();
        let min = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let max = ratios.iter().copied().fold(0.0, f64::max);
        let ratio = median(&mut ratios);
        let mut raw_rates: Vec<f64> = row.raw.iter().map(|r| r.rate).collect();
        let mut kit_rates: Vec<f64> = row.kit.iter().map(|r| r.rate).collect();
        let last_raw = row.raw.last().cloned().unwrap_or_default();
        let last_kit = row.kit.last().cloned().unwrap_or_default();
        println!(
            "{:<28} {:>10} {:>10} {:>7.3} {:>13} {:>19} {:>19}",
            format!("{} ({}){}", row.name, row.unit, row.raw_label),
            fmt_rate(median(&mut raw_rates)),
            fmt_rate(median(&mut kit_rates)),
            ratio,
            format!("{min:.2}-{max:.2}"),
            format!(
                "{}/{}",
                fmt_dur(last_raw.percentile(0.5)),
                fmt_dur(last_raw.percentile(0.99))
            ),
            format!(
                "{}/{}",
                fmt_dur(last_kit.percentile(0.5)),
                fmt_dur(last_kit.percentile(0.99))
            ),
        );
    }
    if recording {
        println!(
            "\nrecorded {} spans and {} events",
            subscriber::SPANS.load(std::sync::atomic::Ordering::Relaxed),
            subscriber::EVENTS.load(std::sync::atomic::Ordering::Relaxed)
        );
    }
    for name in ["select_all", "stream"] {
        let of: Vec<(usize, usize)> = memory
            .iter()
            .filter(|m| m.0 == name)
            .map(|m| (m.1, m.2))
            .collect();
        let Some(&(raw, kit)) = of.last() else {
            continue;
        };
        let mut ratios: Vec<f64> = of.iter().map(|&(r, k)| k as f64 / r as f64).collect();
        let rows = match name {
            "stream" => queries::STREAM_ROWS,
            _ => workloads::SELECT_ALL_ROWS,
        };
        println!(
            "\npeak heap, {name} of {rows} rows: raw {:.1} MiB, toolkit {:.1} MiB, ratio {:.3} (median of passes)",
            raw as f64 / 1048576.0,
            kit as f64 / 1048576.0,
            median(&mut ratios)
        );
    }
    Ok(())
}

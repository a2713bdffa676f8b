//! glyco-ml: evaluate the detectors, make training features, benchmark.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use glyco_ml::{Models, bench, data, eval, featurize, tune};

#[derive(Parser)]
#[command(
    name = "glyco-ml",
    version,
    about = "glyco on-device anomaly detection: evaluate, featurise, benchmark"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Score forecasts, predicted lows and fault detection against AR2 and
    /// fixed thresholds. Without a file: the held-out virtual patients.
    Eval {
        /// A CGM CSV file (subject_id, timestamp, glucose_mg_dl[, fault][, source]).
        #[arg(long, conflicts_with = "nightscout")]
        csv: Option<PathBuf>,
        /// A Nightscout entries JSON export.
        #[arg(long)]
        nightscout: Option<PathBuf>,
        /// Directory with detector.json and the ONNX models.
        #[arg(long)]
        models: Option<PathBuf>,
        /// Also write the table to this file.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Override the predicted-low operating point: the probability that
        /// glucose is below 70 mg/dL in 30 minutes at which the hub warns.
        #[arg(long)]
        low_probability: Option<f32>,
    },
    /// Measure the combination's priors and exponent and choose the
    /// predicted-low operating point on the validation patients; writes them
    /// into detector.json.
    Tune {
        /// Validation CSV (never the evaluation patients).
        #[arg(long, default_value = "ml/data/validation.csv")]
        csv: PathBuf,
        /// Directory with detector.json and the ONNX models (updated in place).
        #[arg(long)]
        models: Option<PathBuf>,
        /// Largest false predicted lows per patient-day accepted on validation.
        #[arg(long, default_value_t = 1.0)]
        max_false_per_day: f64,
        /// Print what would be chosen without writing detector.json.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write training features (for ml/training/train.py) for a CSV file.
    Features {
        #[arg(long)]
        csv: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Node behaviour: the hub's model and fixed-threshold rules on
    /// generated normal traffic with injected misbehaviour (recall, time to
    /// detect, false findings per device-week, cost).
    BehaviourEval {
        #[arg(long, default_value_t = 20)]
        seeds: u64,
        /// Seeds start here (the defaults are the evaluation seeds; tune on others).
        #[arg(long, default_value_t = 1)]
        first_seed: u64,
        /// Weeks of clean traffic per hub.
        #[arg(long, default_value_t = 4)]
        weeks: u32,
        /// CUSUM alarm level (scales).
        #[arg(long)]
        threshold: Option<f32>,
        /// Also write the table to this file.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Per-reading latency, per-patient memory and model load time.
    Bench {
        #[arg(long, default_value_t = 5000)]
        readings: usize,
        #[arg(long, default_value_t = 10)]
        load_runs: usize,
        #[arg(long)]
        models: Option<PathBuf>,
        /// Measure with the learned model alone (the per-patient combination off).
        #[arg(long)]
        learned_only: bool,
    },
}

fn default_eval_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join("eval.csv")
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Eval {
            csv,
            nightscout,
            models,
            out,
            low_probability,
        } => {
            let models_dir = models.unwrap_or_else(Models::bundled_dir);
            let mut models = Models::load_dir(&models_dir)
                .with_context(|| format!("loading models from {}", models_dir.display()))?;
            if let Some(probability) = low_probability {
                let current = models.predicted_low();
                models.set_predicted_low(glyco_ml::PredictedLowSettings {
                    probability,
                    ..current
                })?;
            }
            let models = Arc::new(models);
            let dataset = match (csv, nightscout) {
                (_, Some(path)) => data::load_nightscout(&path)?,
                (Some(path), None) => data::load_csv(&path)?,
                (None, None) => {
                    let path = default_eval_file();
                    if !path.exists() {
                        bail!(
                            "{} is missing; generate the held-out patients first:\n  ml/.venv/bin/python ml/training/generate.py --split eval --days 4 --seed 7 --out ml/data/eval.csv",
                            path.display()
                        );
                    }
                    data::load_csv(&path)?
                }
            };
            if dataset.readings() == 0 {
                bail!("no glucose readings in the input");
            }
            let report = eval::evaluate(&dataset, &models)?;
            let table = eval::render(&report);
            print!("{table}");
            if let Some(out) = out {
                std::fs::write(&out, &table)
                    .with_context(|| format!("writing {}", out.display()))?;
            }
        }
        Command::BehaviourEval {
            seeds,
            first_seed,
            weeks,
            threshold,
            out,
        } => {
            let mut settings = glyco_ml::behaviour::BehaviourSettings::default();
            if let Some(threshold) = threshold {
                settings.threshold = threshold;
            }
            let config = glyco_ml::behaviour::eval::EvalConfig {
                first_seed,
                seeds,
                clean_weeks: weeks,
                settings,
                time_events: true,
            };
            let started = std::time::Instant::now();
            let report = glyco_ml::behaviour::eval::evaluate(&config);
            let table = glyco_ml::behaviour::eval::render(&report);
            print!("{table}");
            eprintln!("evaluated in {:.1} s", started.elapsed().as_secs_f64());
            if let Some(out) = out {
                std::fs::write(&out, &table)
                    .with_context(|| format!("writing {}", out.display()))?;
            }
        }
        Command::Tune {
            csv,
            models,
            max_false_per_day,
            dry_run,
        } => {
            let dir = models.unwrap_or_else(Models::bundled_dir);
            let loaded = Models::load_dir(&dir)
                .with_context(|| format!("loading models from {}", dir.display()))?;
            let validation = data::load_csv(&csv)?;
            let tuned = tune::tune(&validation, loaded, max_false_per_day)?;
            for (prior_weight, forgetting, shrinkage, rmse) in &tuned.tried {
                println!(
                    "prior weight {prior_weight}, forgetting {forgetting}, shrinkage {shrinkage}: combined 30-min RMSE {rmse:.2} mg/dL"
                );
            }
            let c = &tuned.combination;
            let rmse = glyco_ml::combine::rmse_of(&c.prior_error_moments);
            println!(
                "component RMSE (learned, AR2, last value, damped trend, personal): 30 min {:.1?}, 60 min {:.1?}",
                rmse[0], rmse[1]
            );
            let weights = c
                .prior_error_moments
                .map(|m| glyco_ml::combine::optimal_weights(&m, c.shrinkage));
            println!(
                "chosen: prior weight {}, forgetting {}, shrinkage {}, starting weights 30 min {:.2?}, 60 min {:.2?}, combined prior {:.1?} mg/dL, predicted low at P >= {:.2}",
                c.prior_weight,
                c.forgetting,
                c.shrinkage,
                weights[0],
                weights[1],
                c.prior_combined_rmse_mg_dl,
                tuned.predicted_low.probability
            );
            print!(
                "\nvalidation patients at these settings:\n\n{}",
                eval::render(&tuned.report)
            );
            if !dry_run {
                let path = dir.join("detector.json");
                let current =
                    std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                std::fs::write(&path, tune::updated_config(&current, &tuned)?)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("wrote {}", path.display());
            }
        }
        Command::Features { csv, out } => {
            let dataset = data::load_csv(&csv)?;
            let file = File::create(&out).with_context(|| format!("creating {}", out.display()))?;
            let mut writer = BufWriter::new(file);
            let rows = featurize::write_features(&dataset, &mut writer)?;
            writer.flush()?;
            eprintln!("wrote {rows} feature rows to {}", out.display());
        }
        Command::Bench {
            readings,
            load_runs,
            models,
            learned_only,
        } => {
            let dir = models.unwrap_or_else(Models::bundled_dir);
            let report = bench::run(&dir, readings, load_runs, !learned_only)?;
            let mode = if report.combine {
                "combination on"
            } else {
                "learned model alone"
            };
            println!(
                "model load (both models, optimise + plan): median {:.2} ms over {} runs",
                report.load_median.as_secs_f64() * 1e3,
                report.load_runs
            );
            let (p50, p99) = report.per_reading;
            println!(
                "per reading, {mode}: p50 {:.1} µs, p99 {:.1} µs over {} readings",
                p50.as_secs_f64() * 1e6,
                p99.as_secs_f64() * 1e6,
                report.readings
            );
            println!(
                "patient state, {mode}: {} bytes (accounted)",
                report.state_bytes
            );
            if let Some(bytes) = report.resident_bytes {
                println!(
                    "resident memory, {mode}: {bytes} bytes per patient ({} monitors with full histories)",
                    bench::MONITORS
                );
            }
        }
    }
    Ok(())
}

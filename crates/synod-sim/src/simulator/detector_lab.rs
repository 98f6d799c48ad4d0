//! `synod lab detector`: detection time versus false-suspicion rate for the ◇P and
//! phi-accrual detectors of `synod_core::protocols::detector`, under several heartbeat delay
//! distributions, including a heavy-tailed Pareto one (LLM latencies are heavy tailed).
//!
//! One trial: a peer sends a heartbeat every `heartbeat_ms`; each arrives after a delay drawn
//! from the distribution (so heartbeats can overtake each other); the detector is ticked every
//! `tick_ms`. For `warmup_ms` the peer is alive, so every suspicion is false; then it crashes
//! and the time to the first suspicion is the detection time.

use super::network::Delay;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;
use synod_core::protocols::NodeId;
use synod_core::protocols::detector::{
    DetectorInput, DetectorOutput, EventuallyPerfect, EventuallyPerfectConfig, FailureDetector,
    PhiAccrual, PhiAccrualConfig,
};
use synod_core::rng::SeededRng;

/// Builds a fresh detector for one trial.
type MakeDetector = Box<dyn Fn() -> Box<dyn FailureDetector>>;

/// Settings of the lab.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabConfig {
    /// Heartbeat period.
    pub heartbeat_ms: u64,
    /// Mean heartbeat delay of every distribution.
    pub mean_delay_ms: u64,
    /// Detector clock period.
    pub tick_ms: u64,
    /// Time alive before the crash (false suspicions are counted here).
    pub warmup_ms: u64,
    /// Trials per point (different seeds).
    pub trials: u64,
    /// ◇P initial timeouts tried.
    pub timeouts_ms: Vec<u64>,
    /// ◇P timeout increment on a false suspicion.
    pub increment_ms: u64,
    /// Phi thresholds tried.
    pub thresholds: Vec<f64>,
    /// Seed.
    pub seed: u64,
}

impl Default for LabConfig {
    fn default() -> Self {
        LabConfig {
            heartbeat_ms: 100,
            mean_delay_ms: 30,
            tick_ms: 5,
            warmup_ms: 120_000,
            trials: 10,
            timeouts_ms: vec![110, 150, 200, 300, 500],
            increment_ms: 50,
            thresholds: vec![0.5, 1.0, 2.0, 4.0, 8.0],
            seed: 1,
        }
    }
}

/// One point: a detector setting under one distribution.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectorPoint {
    /// "eventually-perfect" or "phi-accrual".
    pub detector: String,
    /// "timeout 200 ms" or "phi > 8".
    pub setting: String,
    /// Delay distribution.
    pub distribution: String,
    /// Mean time from crash to suspicion, ms.
    pub detection_ms_mean: f64,
    /// Worst detection time over the trials, ms.
    pub detection_ms_max: f64,
    /// False suspicions per minute while the peer was alive.
    pub false_per_min: f64,
}

/// The lab's result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectorReport {
    /// Settings used.
    pub config: LabConfig,
    /// Every point.
    pub points: Vec<DetectorPoint>,
}

/// Runs one trial: (false suspicions, detection time ms).
fn trial(
    detector: &mut dyn FailureDetector,
    delay: &Delay,
    cfg: &LabConfig,
    rng: &mut SeededRng,
) -> (u64, f64) {
    let peer = NodeId(1);
    let mut arrivals: Vec<u64> = (1..=cfg.warmup_ms / cfg.heartbeat_ms)
        .map(|k| k * cfg.heartbeat_ms + delay.sample(rng))
        .collect();
    arrivals.sort_unstable();
    let crash_ms = cfg.warmup_ms;
    // Heartbeats sent before the crash may still arrive after it.
    let mut out = Vec::new();
    let mut false_suspicions = 0;
    let mut next = 0;
    let mut t = 0;
    let horizon = crash_ms + 600_000;
    while t <= horizon {
        while next < arrivals.len() && arrivals[next] <= t {
            detector.step(arrivals[next], DetectorInput::Heartbeat(peer), &mut out);
            next += 1;
        }
        detector.step(t, DetectorInput::Tick, &mut out);
        for o in out.drain(..) {
            if let DetectorOutput::Suspect(_) = o {
                if t < crash_ms || next < arrivals.len() {
                    false_suspicions += 1;
                } else {
                    return (false_suspicions, (t - crash_ms) as f64);
                }
            }
        }
        // A suspicion raised before the last heartbeat arrived is false; once all are in,
        // a standing suspicion is a detection.
        if t >= crash_ms && next == arrivals.len() && detector.is_suspected(peer) {
            return (false_suspicions, (t - crash_ms) as f64);
        }
        t += cfg.tick_ms;
    }
    (false_suspicions, (horizon - crash_ms) as f64)
}

/// Runs the lab.
pub fn run(cfg: &LabConfig) -> DetectorReport {
    let mut points = Vec::new();
    for (name, delay) in lab_delays(cfg.mean_delay_ms) {
        let mut settings: Vec<(String, String, MakeDetector)> = Vec::new();
        for &t in &cfg.timeouts_ms {
            let inc = cfg.increment_ms;
            settings.push((
                "eventually-perfect".into(),
                format!("timeout {t} ms"),
                Box::new(move || {
                    Box::new(EventuallyPerfect::new(
                        EventuallyPerfectConfig {
                            timeout_initial_ms: t,
                            increment_ms: inc,
                            timeout_max_ms: 60_000,
                        },
                        [NodeId(1)],
                        0,
                    ))
                }),
            ));
        }
        for &th in &cfg.thresholds {
            let hb = cfg.heartbeat_ms as f64;
            settings.push((
                "phi-accrual".into(),
                format!("phi > {th}"),
                Box::new(move || {
                    Box::new(PhiAccrual::new(
                        PhiAccrualConfig {
                            threshold: th,
                            window_max: 200,
                            std_min_ms: 5.0,
                            first_interval_ms: hb,
                            pause_ms: 0.0,
                        },
                        [NodeId(1)],
                        0,
                    ))
                }),
            ));
        }
        for (detector, setting, make) in settings {
            let mut rng = SeededRng::derive(cfg.seed, &format!("{name}/{detector}/{setting}"));
            let mut falses = 0;
            let mut det = Vec::new();
            for _ in 0..cfg.trials {
                let mut d = make();
                let (f, t) = trial(d.as_mut(), &delay, cfg, &mut rng);
                falses += f;
                det.push(t);
            }
            let minutes = (cfg.warmup_ms * cfg.trials) as f64 / 60_000.0;
            points.push(DetectorPoint {
                detector,
                setting,
                distribution: name.to_string(),
                detection_ms_mean: det.iter().sum::<f64>() / det.len().max(1) as f64,
                detection_ms_max: det.iter().copied().fold(0.0, f64::max),
                false_per_min: falses as f64 / minutes,
            });
        }
    }
    DetectorReport {
        config: cfg.clone(),
        points,
    }
}

/// The distributions of the lab, with mean `mean_ms`.
pub fn lab_delays(mean_ms: u64) -> Vec<(&'static str, Delay)> {
    Delay::families(mean_ms)
}

impl fmt::Display for DetectorReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "heartbeat every {} ms, mean delay {} ms, {} trials × {} s alive, then a crash",
            self.config.heartbeat_ms,
            self.config.mean_delay_ms,
            self.config.trials,
            self.config.warmup_ms / 1000
        )?;
        writeln!(
            f,
            "{:<12} {:<20} {:<16} {:>14} {:>13} {:>14}",
            "delays", "detector", "setting", "detect mean", "detect max", "false / min"
        )?;
        for p in &self.points {
            writeln!(
                f,
                "{:<12} {:<20} {:<16} {:>11.0} ms {:>10.0} ms {:>14.3}",
                p.distribution,
                p.detector,
                p.setting,
                p.detection_ms_mean,
                p.detection_ms_max,
                p.false_per_min
            )?;
        }
        Ok(())
    }
}

/// Draws the trade-off, one panel per distribution, as a PNG.
pub fn plot(report: &DetectorReport, path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let root = BitMapBackend::new(path, (1200, 900)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut names: Vec<&str> = report
        .points
        .iter()
        .map(|p| p.distribution.as_str())
        .collect();
    names.dedup();
    let panels = root.split_evenly((2, 2));
    for (panel, name) in panels.iter().zip(names) {
        let pts: Vec<&DetectorPoint> = report
            .points
            .iter()
            .filter(|p| p.distribution == name)
            .collect();
        let xmax = pts.iter().map(|p| p.detection_ms_mean).fold(1.0, f64::max) * 1.1;
        let ymax = pts.iter().map(|p| p.false_per_min).fold(0.1, f64::max) * 1.1;
        let mut chart = ChartBuilder::on(panel)
            .caption(format!("{name} delays"), ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..xmax, 0f64..ymax)?;
        chart
            .configure_mesh()
            .x_desc("mean detection time (ms)")
            .y_desc("false suspicions per minute")
            .draw()?;
        for (detector, label, color) in [
            ("eventually-perfect", "◇P (timeout grows)", RED),
            ("phi-accrual", "phi accrual", BLUE),
        ] {
            let series: Vec<(f64, f64)> = pts
                .iter()
                .filter(|p| p.detector == detector)
                .map(|p| (p.detection_ms_mean, p.false_per_min))
                .collect();
            chart
                .draw_series(LineSeries::new(series.clone(), color.stroke_width(2)))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart.draw_series(series.iter().map(|p| Circle::new(*p, 4, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

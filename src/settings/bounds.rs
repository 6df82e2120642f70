//! The allowed range of every numeric setting, written once and used twice: by the command
//! line (clap value parsers, so `--threshold 7` is refused with the flag named) and by the
//! settings file (so `threshold = 7` is refused with the key named). A value outside its range
//! is an error, never clamped or ignored.

use std::fmt::Display;
use std::str::FromStr;

use crate::model::Threads;

/// A closed range of a numeric setting, with what a value means when that needs saying.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    pub min: f64,
    /// `f64::INFINITY` for "no upper limit".
    pub max: f64,
    /// Whether `min` itself is allowed (`false` for "a positive number").
    pub min_allowed: bool,
    /// Said after the range, e.g. "(1 = no smoothing)".
    pub note: &'static str,
}

impl Bounds {
    const fn new(min: f64, max: f64) -> Bounds {
        Bounds {
            min,
            max,
            min_allowed: true,
            note: "",
        }
    }

    const fn at_least(min: f64) -> Bounds {
        Bounds::new(min, f64::INFINITY)
    }

    const fn positive(max: f64) -> Bounds {
        Bounds {
            min: 0.0,
            max,
            min_allowed: false,
            note: "",
        }
    }

    const fn note(self, note: &'static str) -> Bounds {
        Bounds { note, ..self }
    }

    /// Refuses NaN, infinities and values outside the range, saying the range and the value.
    pub fn check(&self, value: f64) -> Result<(), String> {
        let low_ok = if self.min_allowed {
            value >= self.min
        } else {
            value > self.min
        };
        if value.is_finite() && low_ok && value <= self.max {
            return Ok(());
        }
        Err(self.problem(&value.to_string()))
    }

    /// "must be between 0 and 1 (got 7)" and the like.
    fn problem(&self, got: &str) -> String {
        let range = match (self.min_allowed, self.max.is_finite()) {
            (true, true) => format!("must be between {} and {}", self.min, self.max),
            (true, false) => format!("must be at least {}", self.min),
            (false, true) => format!("must be above {} and at most {}", self.min, self.max),
            (false, false) => format!("must be above {}", self.min),
        };
        let note = if self.note.is_empty() {
            String::new()
        } else {
            format!(" {}", self.note)
        };
        format!("{range}{note} (got {got})")
    }
}

/// Numbers a setting can hold.
pub trait Number: FromStr + Display + Copy + Send + Sync + 'static {
    fn as_f64(self) -> f64;
}

macro_rules! number {
    ($($t:ty),*) => {$(
        impl Number for $t {
            fn as_f64(self) -> f64 {
                self as f64
            }
        }
    )*};
}
number!(f32, f64, u8, u32, u64, usize);

/// Checks a value read from somewhere other than the command line (the settings file).
pub fn check<T: Number>(value: T, bounds: &Bounds) -> Result<T, String> {
    bounds.check(value.as_f64()).map(|()| value)
}

/// A clap value parser for a number within `bounds`: clap names the flag and the value, this
/// says the range.
pub fn flag<T: Number>(bounds: Bounds) -> impl Fn(&str) -> Result<T, String> + Clone {
    move |s: &str| {
        let v: T = s.trim().parse().map_err(|_| {
            format!(
                "not a number; {}",
                bounds.problem(s).trim_end_matches(&format!(" (got {s})"))
            )
        })?;
        check(v, &bounds)
    }
}

/// A `--threads` value: `auto` ([`Threads::auto`]: measured, from 1 up to every core) or a
/// count within [`THREADS`].
pub fn threads_flag(s: &str) -> Result<Threads, String> {
    if s.trim() == "auto" {
        return Ok(Threads::auto());
    }
    flag::<usize>(THREADS)(s)
        .map(Threads::Fixed)
        .map_err(|e| e.replacen("not a number;", "not a number or `auto`;", 1))
}

/// Ranges of the settings of `run` (flags and settings file alike).
pub const THRESHOLD: Bounds = Bounds::new(0.0, 1.0);
pub const SMOOTH: Bounds = Bounds::new(1.0, 1000.0).note("(1 = no smoothing)");
pub const CONFIRM: Bounds = Bounds::new(1.0, 1000.0).note("(1 = publish every decision)");
pub const TOP: Bounds = Bounds::new(1.0, 1000.0);
pub const THREADS: Bounds = Bounds::new(1.0, 256.0);
pub const FPS: Bounds = Bounds::positive(1000.0);
pub const FRAMES: Bounds = Bounds::at_least(1.0);
/// At most 5000: each entry holds its embedding in memory, and so may each labelled or
/// discarded one (about 10 KB a pair with a 1280-wide backbone: 50 MB at 5000).
pub const REVIEW_KEEP: Bounds = Bounds::new(0.0, 5000.0).note("(0 = no review queue)");
pub const REVIEW_MEGABYTES: Bounds = Bounds::new(1.0, 1_000_000.0);
pub const PROBABILITY: Bounds = Bounds::new(0.0, 1.0);
pub const REVIEW_EVERY: Bounds = Bounds::new(0.0, 1e9).note("(0 = no ordinary frames)");
pub const DUPLICATE: Bounds = Bounds::positive(1.0);

/// Ranges of the other commands' numeric flags.
pub const JOBS: Bounds = THREADS;
pub const COUNT: Bounds = Bounds::new(1.0, 1_000_000.0);
pub const COUNTDOWN: Bounds = Bounds::new(0.0, 3600.0);
pub const FOLDS: Bounds = Bounds::new(2.0, 100.0).note("(--folds 0 turns cross-validation off)");
pub const ALPHA: Bounds = Bounds::positive(1e9);
pub const ROUNDS: Bounds = Bounds::new(1.0, 100_000.0);
pub const LOOP_FRAMES: Bounds = Bounds::new(0.0, 1_000_000.0).note("(0 = skip the loop)");
pub const UNFREEZE: Bounds = Bounds::new(0.0, 1000.0);
pub const EPOCHS: Bounds = Bounds::new(1.0, 10_000.0);
pub const BATCH: Bounds = Bounds::new(1.0, 4096.0);
pub const AUGMENT: Bounds = Bounds::new(0.0, 64.0);
pub const PATIENCE: Bounds = Bounds::new(1.0, 10_000.0);
pub const LEARNING_RATE: Bounds = Bounds::positive(10.0);
pub const WEIGHT_DECAY: Bounds = Bounds::new(0.0, 1.0);
pub const CROP_AREA: Bounds = Bounds::new(0.05, 1.0);
pub const VAL_SPLIT: Bounds = Bounds::new(0.0, 0.9).note("(0 = no validation split)");
pub const LABEL_SMOOTHING: Bounds = Bounds::new(0.0, 0.5);
pub const MIX: Bounds = Bounds::new(0.0, 1.0);
pub const STEPS: Bounds = Bounds::new(1.0, 100_000.0);
pub const TV: Bounds = Bounds::new(0.0, 1e6);
pub const DREAM_LR: Bounds = Bounds::positive(255.0);
pub const JITTER: Bounds = Bounds::new(0.0, 64.0);
pub const EVERY: Bounds = Bounds::new(1.0, 100_000.0);
pub const UNTIL: Bounds = Bounds::positive(1.0);
pub const STEP_LEVELS: Bounds = Bounds::new(1.0, 255.0);
pub const MAX_CHANNELS: Bounds = Bounds::new(1.0, 4096.0);
pub const CLASSIFY_TOP: Bounds = TOP;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_bound_says_its_range_and_the_value() {
        assert_eq!(
            check(7.0f32, &THRESHOLD).unwrap_err(),
            "must be between 0 and 1 (got 7)"
        );
        assert_eq!(
            check(f32::NAN, &THRESHOLD).unwrap_err(),
            "must be between 0 and 1 (got NaN)"
        );
        assert_eq!(
            check(0usize, &SMOOTH).unwrap_err(),
            "must be between 1 and 1000 (1 = no smoothing) (got 0)"
        );
        assert_eq!(
            check(0u64, &FRAMES).unwrap_err(),
            "must be at least 1 (got 0)"
        );
        assert_eq!(
            check(-1.0f64, &FPS).unwrap_err(),
            "must be above 0 and at most 1000 (got -1)"
        );
        assert_eq!(check(0.5f32, &THRESHOLD), Ok(0.5));
        assert_eq!(check(1usize, &SMOOTH), Ok(1));
    }

    #[test]
    fn flag_parsers_refuse_what_is_not_a_number() {
        assert_eq!(threads_flag("4"), Ok(Threads::Fixed(4)));
        assert_eq!(threads_flag("auto"), Ok(Threads::auto()));
        assert_eq!(
            threads_flag("many").unwrap_err(),
            "not a number or `auto`; must be between 1 and 256"
        );
        assert_eq!(
            threads_flag("0").unwrap_err(),
            "must be between 1 and 256 (got 0)"
        );
        let threads = flag::<usize>(THREADS);
        assert_eq!(threads("4"), Ok(4));
        assert_eq!(
            threads("0").unwrap_err(),
            "must be between 1 and 256 (got 0)"
        );
        assert_eq!(
            threads("four").unwrap_err(),
            "not a number; must be between 1 and 256"
        );
        assert_eq!(
            threads("-1").unwrap_err(),
            "not a number; must be between 1 and 256"
        );
        let fps = flag::<f64>(FPS);
        assert_eq!(
            fps("inf").unwrap_err(),
            "must be above 0 and at most 1000 (got inf)"
        );
    }
}

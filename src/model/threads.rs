//! How many threads run each picture: a count the user fixed, or [`Threads::Auto`], which
//! times the pictures and keeps whichever count is fastest now.
//!
//! Why measure instead of picking: more threads make one picture faster only while the other
//! cores are free. Beside a competing load (a Pi that also runs Home Assistant or a recorder,
//! a build on the same VM) a picture split across cores waits for the share that landed on the
//! busy core: on a 2-core AMD EPYC beside a `nice -n 10` busy loop, 2 threads cost the camera
//! loop 5-20% of its frames/s, while on the quiet machine they gained 20% (docs/performance.md).
//! No fixed count is right on every machine at every moment, so [`Tuner`] tries each candidate
//! count for a few pictures, keeps the fastest, and tries again every [`KEEP`] pictures, or as
//! soon as the pictures it keeps timing get much slower or faster (the load changed).

use std::fmt;

/// Threads per picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// Always this many (1 = on the caller's thread only).
    Fixed(usize),
    /// Measured: 1, 2, 4, ... up to `most`, whichever is fastest at the moment.
    Auto { most: usize },
}

impl Threads {
    /// [`Threads::Auto`] up to every core this process may use.
    pub fn auto() -> Threads {
        Threads::Auto {
            most: std::thread::available_parallelism().map_or(1, |n| n.get()),
        }
    }

    /// The counts it may run with, fewest first: the fixed count, or 1, 2, 4, ... and `most`.
    pub fn candidates(self) -> Vec<usize> {
        match self {
            Threads::Fixed(n) => vec![n.max(1)],
            Threads::Auto { most } => {
                let most = most.max(1);
                let mut counts: Vec<usize> =
                    std::iter::successors(Some(1usize), |n| n.checked_mul(2))
                        .take_while(|n| *n < most)
                        .collect();
                counts.push(most);
                counts
            }
        }
    }
}

impl From<usize> for Threads {
    fn from(n: usize) -> Threads {
        Threads::Fixed(n.max(1))
    }
}

impl fmt::Display for Threads {
    /// `1 thread`, `4 threads`, `1-4 threads (measured)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Threads::Fixed(1) | Threads::Auto { most: 1 } => f.write_str("1 thread"),
            Threads::Fixed(n) => write!(f, "{n} threads"),
            Threads::Auto { most } => write!(f, "1-{most} threads (measured)"),
        }
    }
}

/// Pictures not timed after a change of count (the pool's threads wake, caches refill).
pub const SETTLE: usize = 2;
/// Pictures timed per candidate when trying; their median is compared.
pub const TRY: usize = 9;
/// Pictures run on the chosen count before all are tried again (30 s at 30 frames/s): the
/// trying costs [`SETTLE`] + [`TRY`] pictures per other candidate, about 1% of the time.
pub const KEEP: usize = 900;
/// Pictures run on the first choice before the second round of trying: the first round runs
/// while the process is cold (first runs of each pool's threads, fresh buffers), which made a
/// quiet 2-core EPYC choose 1 thread over 2 that were 35% faster (`bench.py`, 2026-12-02).
pub const FIRST_KEEP: usize = 60;
/// Pictures whose median is compared with what the chosen count took when it was chosen.
pub const WINDOW: usize = 30;
/// A median this many times slower or faster than expected means the load changed: try again.
pub const CHANGED: f64 = 1.3;
/// More threads are chosen only when they take at most this share of fewer threads' time:
/// threads that barely help keep cores busy that the rest of the device could use.
pub const WORTH: f64 = 0.95;

/// The measuring half of [`Threads::Auto`]: told how long each picture took, it says which
/// count runs the next. It reads no clock, so tests drive it with made-up times.
#[derive(Debug, Clone)]
pub struct Tuner {
    counts: Vec<usize>,
    /// Index into `counts` of the count running now.
    current: usize,
    phase: Phase,
    /// Choices made so far (the first is kept only [`FIRST_KEEP`] pictures).
    choices: usize,
}

#[derive(Debug, Clone)]
enum Phase {
    /// Timing `counts[current]`; candidates are tried from the most threads down, so
    /// `medians` fills from the end.
    Trying {
        settled: usize,
        times: Vec<f64>,
        medians: Vec<f64>,
    },
    /// Running the chosen count; `expected` is its median when it was chosen.
    Keeping {
        expected: f64,
        recent: Vec<f64>,
        pictures: usize,
    },
}

/// A choice made by [`Tuner::record`], for the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub threads: usize,
    /// Each candidate's median seconds per picture, fewest threads first.
    pub medians: Vec<(usize, f64)>,
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} thread(s) per picture (median", self.threads)?;
        for (i, (n, secs)) in self.medians.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep} {:.1} ms on {n}", secs * 1e3)?;
        }
        f.write_str(")")
    }
}

impl Tuner {
    /// Chooses among `counts` (ascending, at least one); starts by trying the most.
    pub fn new(counts: Vec<usize>) -> Tuner {
        assert!(!counts.is_empty(), "a tuner needs a count to choose");
        let mut tuner = Tuner {
            current: 0,
            choices: 0,
            counts,
            phase: Phase::Keeping {
                expected: 0.0,
                recent: Vec::new(),
                pictures: 0,
            },
        };
        tuner.start_trying();
        tuner
    }

    /// Index (into the counts it was made with) of the count the next picture runs on.
    pub fn current(&self) -> usize {
        self.current
    }

    /// Threads the next picture runs on.
    pub fn threads(&self) -> usize {
        self.counts[self.current]
    }

    fn start_trying(&mut self) {
        self.current = self.counts.len() - 1;
        self.phase = Phase::Trying {
            settled: 0,
            times: Vec::with_capacity(TRY),
            medians: vec![f64::NAN; self.counts.len()],
        };
    }

    /// Records that a picture run on `counts[index]` took `secs`; a result from a count no
    /// longer running (a picture that started before a change) is ignored. Returns the choice
    /// when one was just made.
    pub fn record(&mut self, index: usize, secs: f64) -> Option<Choice> {
        if index != self.current || !secs.is_finite() || secs < 0.0 {
            return None;
        }
        if self.counts.len() == 1 {
            return None;
        }
        match &mut self.phase {
            Phase::Trying {
                settled,
                times,
                medians,
            } => {
                if *settled < SETTLE {
                    *settled += 1;
                    return None;
                }
                times.push(secs);
                if times.len() < TRY {
                    return None;
                }
                medians[self.current] = median(times);
                if self.current > 0 {
                    self.current -= 1;
                    *settled = 0;
                    times.clear();
                    return None;
                }
                let chosen = choose(medians);
                let choice = Choice {
                    threads: self.counts[chosen],
                    medians: self
                        .counts
                        .iter()
                        .copied()
                        .zip(medians.iter().copied())
                        .collect(),
                };
                self.current = chosen;
                self.choices += 1;
                self.phase = Phase::Keeping {
                    expected: medians[chosen],
                    recent: Vec::with_capacity(WINDOW),
                    pictures: 0,
                };
                Some(choice)
            }
            Phase::Keeping {
                expected,
                recent,
                pictures,
            } => {
                *pictures += 1;
                recent.push(secs);
                let keep = if self.choices == 1 { FIRST_KEEP } else { KEEP };
                let mut again = *pictures >= keep;
                if recent.len() == WINDOW {
                    let now = median(recent);
                    recent.clear();
                    again |= now > *expected * CHANGED || now * CHANGED < *expected;
                }
                if again {
                    self.start_trying();
                }
                None
            }
        }
    }
}

/// The fewest threads whose median no larger count beats by the [`WORTH`] margin.
fn choose(medians: &[f64]) -> usize {
    let mut best = 0;
    for (i, m) in medians.iter().enumerate().skip(1) {
        if *m < medians[best] * WORTH {
            best = i;
        }
    }
    best
}

fn median(times: &mut [f64]) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `tuner` pictures that take `time(threads)` until it has run `pictures` of them;
    /// returns how many ran on each count and the choices made.
    fn drive(
        tuner: &mut Tuner,
        pictures: usize,
        mut time: impl FnMut(usize) -> f64,
    ) -> (std::collections::BTreeMap<usize, usize>, Vec<Choice>) {
        let mut ran = std::collections::BTreeMap::new();
        let mut choices = Vec::new();
        for _ in 0..pictures {
            let (i, n) = (tuner.current(), tuner.threads());
            *ran.entry(n).or_insert(0) += 1;
            choices.extend(tuner.record(i, time(n)));
        }
        (ran, choices)
    }

    #[test]
    fn candidates_are_powers_of_two_and_the_most() {
        assert_eq!(Threads::Auto { most: 1 }.candidates(), [1]);
        assert_eq!(Threads::Auto { most: 2 }.candidates(), [1, 2]);
        assert_eq!(Threads::Auto { most: 4 }.candidates(), [1, 2, 4]);
        assert_eq!(Threads::Auto { most: 6 }.candidates(), [1, 2, 4, 6]);
        assert_eq!(Threads::Fixed(3).candidates(), [3]);
        assert_eq!(Threads::from(0), Threads::Fixed(1));
        assert_eq!(
            Threads::Auto { most: 4 }.to_string(),
            "1-4 threads (measured)"
        );
        assert_eq!(Threads::Fixed(1).to_string(), "1 thread");
        assert_eq!(Threads::Fixed(2).to_string(), "2 threads");
    }

    #[test]
    fn tries_the_most_first_then_keeps_the_fastest() {
        let mut tuner = Tuner::new(vec![1, 2, 4]);
        assert_eq!(tuner.threads(), 4);
        // A quiet 4-core machine: 2 threads are best.
        let times = |n: usize| match n {
            1 => 0.020,
            2 => 0.011,
            _ => 0.012,
        };
        let (ran, choices) = drive(&mut tuner, 3 * (SETTLE + TRY), times);
        assert_eq!(ran, [(1, 11), (2, 11), (4, 11)].into());
        assert_eq!(
            choices,
            [Choice {
                threads: 2,
                medians: vec![(1, 0.020), (2, 0.011), (4, 0.012)]
            }]
        );
        assert_eq!(
            choices[0].to_string(),
            "2 thread(s) per picture (median 20.0 ms on 1, 11.0 ms on 2, 12.0 ms on 4)"
        );
        // It keeps 2 for FIRST_KEEP pictures (the first round ran cold), tries again, keeps 2
        // for KEEP pictures, then tries again and, nothing having changed, keeps 2.
        let (ran, choices) = drive(&mut tuner, FIRST_KEEP, times);
        assert_eq!(ran, [(2, FIRST_KEEP)].into());
        assert!(choices.is_empty());
        let (ran, choices) = drive(&mut tuner, 3 * (SETTLE + TRY), times);
        assert_eq!(ran, [(1, 11), (2, 11), (4, 11)].into());
        assert_eq!(choices[0].threads, 2);
        let (ran, choices) = drive(&mut tuner, KEEP, times);
        assert_eq!(ran, [(2, KEEP)].into());
        assert!(choices.is_empty());
        let (ran, choices) = drive(&mut tuner, 3 * (SETTLE + TRY), times);
        assert_eq!(ran, [(1, 11), (2, 11), (4, 11)].into());
        assert_eq!(choices[0].threads, 2);
    }

    #[test]
    fn more_threads_must_be_worth_it() {
        // The first choice between 1 thread at 10 ms and 2 threads at `two` seconds.
        let choose = |two: f64| {
            let mut tuner = Tuner::new(vec![1, 2]);
            let (_, choices) = drive(&mut tuner, 2 * (SETTLE + TRY), |n| {
                if n == 1 {
                    0.0100
                } else {
                    two
                }
            });
            choices[0].threads
        };
        // 2 threads 3% faster than 1: not worth a second busy core.
        assert_eq!(choose(0.0097), 1);
        // 10% faster: worth it.
        assert_eq!(choose(0.0090), 2);
    }

    #[test]
    fn a_load_that_arrives_sends_it_back_to_fewer_threads_within_a_window() {
        let mut tuner = Tuner::new(vec![1, 2]);
        let quiet = |n: usize| if n == 1 { 0.015 } else { 0.010 };
        let (_, choices) = drive(&mut tuner, 2 * (SETTLE + TRY) + 100, quiet);
        assert_eq!(choices[0].threads, 2);
        assert_eq!(tuner.threads(), 2);
        // A busy loop starts on the other core: 2 threads now take twice as long, 1 is hardly
        // touched. Within one window of noticing and one round of trying it is on 1 thread.
        let loaded = |n: usize| if n == 1 { 0.016 } else { 0.030 };
        let (_, choices) = drive(&mut tuner, 2 * WINDOW + 2 * (SETTLE + TRY), loaded);
        assert_eq!(choices.len(), 1, "{choices:?}");
        assert_eq!(choices[0].threads, 1);
        assert_eq!(tuner.threads(), 1);
        // And it stays there while the load lasts (tries again only every KEEP pictures).
        let (ran, _) = drive(&mut tuner, KEEP, loaded);
        assert!(ran[&1] >= KEEP - 2 * (SETTLE + TRY), "{ran:?}");
    }

    #[test]
    fn noise_below_the_change_margin_does_not_make_it_try_again() {
        let mut tuner = Tuner::new(vec![1, 2]);
        let mut k = 0u32;
        // Alternating +-10% around each count's time: a window's median and a try's can differ
        // by 1.1 / 0.9 = 1.22, under CHANGED.
        let mut time = |n: usize| {
            k += 1;
            let wobble = if k.is_multiple_of(2) { 1.1 } else { 0.9 };
            (if n == 1 { 0.020 } else { 0.010 }) * wobble
        };
        let (_, choices) = drive(&mut tuner, 2 * (2 * (SETTLE + TRY)) + FIRST_KEEP, &mut time);
        assert_eq!(choices.len(), 2, "the first choice and the warm second one");
        let (_, choices) = drive(&mut tuner, KEEP - 1, &mut time);
        assert!(choices.is_empty(), "{choices:?}");
        assert_eq!(tuner.threads(), 2);
    }

    #[test]
    fn stale_and_bad_times_are_ignored_and_one_candidate_never_changes() {
        let mut tuner = Tuner::new(vec![1, 2]);
        assert_eq!(tuner.current(), 1);
        for _ in 0..100 {
            assert_eq!(tuner.record(0, 0.001), None); // from a picture on the old count
            assert_eq!(tuner.record(1, f64::NAN), None);
            assert_eq!(tuner.record(1, -1.0), None);
        }
        assert_eq!(tuner.current(), 1, "nothing valid was recorded");
        let mut one = Tuner::new(vec![3]);
        let (ran, choices) = drive(&mut one, 50, |_| 0.01);
        assert_eq!(ran, [(3, 50)].into());
        assert!(choices.is_empty());
    }
}

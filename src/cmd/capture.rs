//! `edge-tl capture`: save what the camera sees as training pictures for one label.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;

use super::args::SourceArgs;
use edge_tl::dataset::capture::{label_dir, save_sample};
use edge_tl::settings::bounds::{self, flag};
use edge_tl::source::{Feed, Next};

#[derive(Debug, Args)]
pub struct Flags {
    /// What the camera is looking at (becomes the label folder)
    #[arg(long, short = 'l')]
    label: String,
    /// Pictures to take
    #[arg(long, short = 'n', default_value_t = 20, value_parser = flag::<u64>(bounds::COUNT))]
    count: u64,
    /// Time between pictures (e.g. 500ms, 2s; at most an hour)
    #[arg(long, default_value = "500ms", value_parser = interval)]
    interval: Duration,
    /// Seconds to count down before the first picture
    #[arg(long, default_value_t = 0, value_parser = flag::<u64>(bounds::COUNTDOWN))]
    countdown: u64,
    /// Dataset folder (one sub-folder per label)
    #[arg(long, short = 'd', value_name = "DIR", default_value = "dataset")]
    data: PathBuf,
    #[command(flatten)]
    source: SourceArgs,
}

/// `--interval`: a duration from 0 to an hour.
fn interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| format!("{e}; write e.g. 500ms or 2s"))?;
    if d > Duration::from_secs(3600) {
        return Err(format!("must be at most 1h (got {s})"));
    }
    Ok(d)
}

pub fn run(args: Flags) -> anyhow::Result<ExitCode> {
    // A bad label fails before the camera is touched.
    let dir = label_dir(&args.data, &args.label)?;
    let stop = super::stop_flag()?;
    let source = args.source.open()?;
    eprintln!(
        "capturing {} pictures of {:?} from {}",
        args.count,
        args.label,
        source.describe()
    );
    let feed = Feed::spawn(source, stop.clone());
    for left in (1..=args.countdown).rev() {
        eprintln!("{left}...");
        sleep_unless_stopped(Duration::from_secs(1), &stop);
    }
    let bar = super::progress("captured").0;
    bar.set_length(args.count);
    let mut saved = 0u64;
    let mut next_due = Instant::now();
    let mut ended = false;
    while saved < args.count && !stop.load(Ordering::SeqCst) {
        sleep_unless_stopped(next_due.saturating_duration_since(Instant::now()), &stop);
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let frame = match feed.next(Duration::from_secs(10)) {
            Next::Frame(f) => f,
            Next::Timeout => {
                bar.suspend(|| eprintln!("warning: no frame for 10 s; still waiting"));
                continue;
            }
            Next::Ended => {
                ended = true;
                break;
            }
            Next::Failed(e) => return Err(e).context("capturing"),
        };
        match save_sample(&dir, &frame, saved + 1) {
            Ok(path) => {
                saved += 1;
                bar.set_position(saved);
                bar.set_message(path.display().to_string());
                next_due = Instant::now() + args.interval;
            }
            // A damaged frame is skipped; the next one is taken at once.
            Err(e) => {
                bar.suspend(|| eprintln!("warning: {}; frame not saved", edge_tl::error::chain(&e)))
            }
        }
    }
    bar.finish_and_clear();
    let total = edge_tl::dataset::visible_entries(&dir)
        .with_context(|| format!("counting the pictures in {}", dir.display()))?
        .len();
    eprintln!(
        "saved {saved} pictures in {} ({total} there now){}",
        dir.display(),
        if ended {
            "; the source ended"
        } else if saved < args.count {
            "; stopped"
        } else {
            ""
        }
    );
    eprintln!(
        "next: capture the other labels, then `edge-tl train --data {} --out home.head`",
        args.data.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn sleep_unless_stopped(d: Duration, stop: &std::sync::atomic::AtomicBool) {
    let until = Instant::now() + d;
    while !stop.load(Ordering::SeqCst) {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

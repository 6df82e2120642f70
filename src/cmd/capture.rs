//! `edge-tl capture`: save what the camera sees as training pictures for one label.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::cli::SourceArgs;
use edge_tl::dataset::capture::{label_dir, save_sample};
use edge_tl::source::{Feed, Next};

pub struct CaptureArgs {
    pub label: String,
    pub count: u64,
    pub interval: Duration,
    pub countdown: u64,
    pub data: PathBuf,
    pub source: SourceArgs,
}

pub fn run(args: CaptureArgs) -> anyhow::Result<ExitCode> {
    // A bad label fails before the camera is touched.
    let dir = label_dir(&args.data, &args.label)?;
    let stop = super::stop_flag()?;
    let source = super::open_source(&args.source)?;
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
    let bar = super::progress("captured");
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
            Err(e) => bar.suspend(|| eprintln!("warning: {e:#}; frame not saved")),
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

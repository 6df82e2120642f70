//! systemd's service protocol for `Type=notify` units: `READY=1` once the loop is running (the
//! model is loaded and the camera open), then `WATCHDOG=1` from the loop itself at half the
//! unit's `WatchdogSec`, so a hung inference loop stops the pings and systemd restarts the
//! service. Outside systemd (no `NOTIFY_SOCKET`) there is no notifier.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

pub struct SystemdNotify {
    ready_sent: bool,
    /// Ping interval: half of `WATCHDOG_USEC`, when the watchdog is on for this process.
    watchdog_every: Option<Duration>,
    last_ping: Option<Instant>,
    warned: bool,
}

impl SystemdNotify {
    /// The notifier, when running under systemd with a notification socket.
    pub fn from_env() -> Option<SystemdNotify> {
        std::env::var_os("NOTIFY_SOCKET")?;
        let mut usec = 0;
        let watchdog_every = sd_notify::watchdog_enabled(false, &mut usec)
            .then(|| Duration::from_micros(usec / 2).max(Duration::from_millis(10)));
        Some(SystemdNotify {
            ready_sent: false,
            watchdog_every,
            last_ping: None,
            warned: false,
        })
    }

    fn send(&mut self, states: &[NotifyState]) {
        if let Err(e) = sd_notify::notify(false, states) {
            if !self.warned {
                log::warn!("cannot notify systemd: {e}");
                self.warned = true;
            }
        }
    }
}

impl SystemdNotify {
    /// Called on every turn of the loop: `READY=1` the first time, then watchdog pings.
    pub fn tick(&mut self) {
        if !self.ready_sent {
            self.send(&[NotifyState::Ready, NotifyState::Status("classifying")]);
            self.ready_sent = true;
        }
        if let Some(every) = self.watchdog_every {
            if self.last_ping.is_none_or(|t| t.elapsed() >= every) {
                self.send(&[NotifyState::Watchdog]);
                self.last_ping = Some(Instant::now());
            }
        }
    }
}

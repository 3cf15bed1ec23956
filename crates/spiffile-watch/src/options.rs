//! How a [`Watched`](crate::Watched) follows its files.

use std::time::Duration;

/// Default [`WatchOptions::poll_interval`].
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// Largest accepted [`WatchOptions::poll_interval`]; longer values are clamped.
pub const MAX_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Smallest accepted [`WatchOptions::poll_interval`]; shorter values are clamped.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(10);
/// Default [`WatchOptions::retry_delay`].
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_millis(5);

/// How a [`Watched`](crate::Watched) follows its files. Builder style:
///
/// ```
/// use std::time::Duration;
/// use spiffile_watch::WatchOptions;
///
/// let options = WatchOptions::new()
///     .poll_interval(Duration::from_millis(500))
///     .use_notify(true)
///     .max_size(64 * 1024);
/// assert_eq!(options.current_poll_interval(), Duration::from_millis(500));
///
/// // Manual mode: nothing in the background, `reload()` on demand.
/// assert!(!WatchOptions::manual().is_following());
/// ```
#[derive(Debug, Clone)]
pub struct WatchOptions {
    follow: bool,
    poll_interval: Duration,
    use_notify: bool,
    retry_delay: Duration,
    max_size: u64,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            follow: true,
            poll_interval: DEFAULT_POLL_INTERVAL,
            use_notify: true,
            retry_delay: DEFAULT_RETRY_DELAY,
            max_size: u64::MAX,
        }
    }
}

impl WatchOptions {
    /// The defaults: follow the files in the background, poll every second,
    /// use file-system events, retry a bad file after 5 ms (doubling up to
    /// the poll interval), no size limit.
    pub fn new() -> Self {
        Self::default()
    }

    /// Manual mode: the same as `WatchOptions::new().follow(false)`.
    pub fn manual() -> Self {
        Self::default().follow(false)
    }

    /// Whether the files are followed in the background (default `true`).
    ///
    /// With `false` (manual mode) nothing runs in the background and nothing
    /// is watched: the value changes only when
    /// [`Watched::reload`](crate::Watched::reload) is called, with the same
    /// generation, status and failure bookkeeping as when following.
    #[must_use]
    pub fn follow(mut self, enabled: bool) -> Self {
        self.follow = enabled;
        self
    }

    /// How often the files' metadata is checked even without any event.
    ///
    /// This bounds the delay to notice a change when events are disabled,
    /// unavailable or missed. Default 1 s; clamped to
    /// [`MIN_POLL_INTERVAL`]..=[`MAX_POLL_INTERVAL`] (10 ms ..= 2 s).
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval.clamp(MIN_POLL_INTERVAL, MAX_POLL_INTERVAL);
        self
    }

    /// Whether to use file-system events (`notify`: inotify, FSEvents, ...).
    ///
    /// Default `true`. With `false`, polling alone detects changes. If the
    /// process-wide watcher cannot be created, a warning is logged and the
    /// value falls back to polling.
    #[must_use]
    pub fn use_notify(mut self, enabled: bool) -> Self {
        self.use_notify = enabled;
        self
    }

    /// First retry delay after a failed read or parse (default 5 ms); each
    /// further failure doubles it, up to the poll interval. Clamped to
    /// 1 ms ..= the poll interval.
    #[must_use]
    pub fn retry_delay(mut self, delay: Duration) -> Self {
        self.retry_delay = delay;
        self
    }

    /// The largest file accepted, in bytes (default: no limit); for a
    /// directory source, the limit of each file in it. A larger file is
    /// refused from its size alone, before any byte is read, and treated
    /// like any other unreadable file.
    #[must_use]
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = bytes;
        self
    }

    /// Whether the files are followed in the background (`false`: manual
    /// mode).
    pub fn is_following(&self) -> bool {
        self.follow
    }

    /// The largest file accepted.
    pub fn current_max_size(&self) -> u64 {
        self.max_size
    }

    /// The configured poll interval.
    pub fn current_poll_interval(&self) -> Duration {
        self.poll_interval
    }

    /// Whether file-system events are requested.
    pub fn notify_enabled(&self) -> bool {
        self.use_notify
    }

    /// The effective first retry delay.
    pub fn current_retry_delay(&self) -> Duration {
        self.retry_delay
            .clamp(Duration::from_millis(1), self.poll_interval)
    }
}

//! in.mpathd's tuning constants (mpd_defs.h, mpd_tables.h), in nanoseconds where they are times.

/// Consecutive lost probes that declare a failure (`NUM_PROBE_FAILS`).
pub const NUM_PROBE_FAILS: u32 = 5;
/// Consecutive acknowledged probes that declare a repair (`NUM_PROBE_REPAIRS`).
pub const NUM_PROBE_REPAIRS: u32 = 10;
/// Slots in the per-instance probe history (`PROBE_STATS_COUNT` = 10 × 5 + 2).
pub const PROBE_STATS_COUNT: usize = 52;
/// Most targets probed per instance (`MAX_PROBE_TARGETS`).
pub const MAX_PROBE_TARGETS: usize = 5;
/// Fewest active targets wanted (`MIN_PROBE_TARGETS`).
pub const MIN_PROBE_TARGETS: usize = 3;
/// Start-up quiet period during which lost probes do not count (`FAILURE_DETECTION_QP`).
pub const FAILURE_DETECTION_QP_NS: u64 = 40_000_000_000;
/// The FDT is not lowered sooner than this after it was raised (`MIN_SETTLING_TIME`).
pub const MIN_SETTLING_TIME_NS: u64 = 60_000_000_000;
/// Factor for raising and lowering the FDT (`NEXT_FDT_MULTIPLE`).
pub const NEXT_FDT_MULTIPLE: u64 = 2;
/// Lower the FDT once CRTT < probe interval / this (`LOWER_FDT_TRIGGER`).
pub const LOWER_FDT_TRIGGER: u64 = 4;
/// An outlier target's peers must have CRTT ≤ interval / this (`EXCEPTION_FACTOR`).
pub const EXCEPTION_FACTOR: u64 = 2;
/// Link-ups per minute beyond which repair is held back (`LINK_UP_PERMIN`).
pub const LINK_UP_PERMIN: usize = 2;
/// The window of the link-flap detector.
pub const LINK_FLAP_WINDOW_NS: u64 = 60_000_000_000;
/// Probes per FDT: the interval is FDT / (`NUM_PROBE_FAILS` + 2).
pub const PROBES_PER_FDT: u64 = NUM_PROBE_FAILS as u64 + 2;
/// A resting router target climbs one step back per this (`MIN_RECOVERY_TIME`).
pub const MIN_RECOVERY_TIME_NS: u64 = 60_000_000_000;

/// A probe due within interval / this of a wake-up is sent at that wake-up (not in in.mpathd,
/// whose timers have 1 ms granularity anyway): at FDT 1 s a probe goes up to 9 ms early, at FDT
/// 10 ms up to 90 µs.
pub const SEND_SLACK_DIVISOR: u64 = 16;

/// The shortest span of suspect RTT samples that may raise the FDT: one probe interval at
/// in.mpathd's lowest FDT (`MIN_FAILURE_DETECTION_TIME`, 100 ms, / 7). in.mpathd counts two
/// suspect samples in a row (`MAXDEFERREDRTT` = 1), which at its intervals (14 ms and up) is a
/// slowness that lasted; ipmpd's groups go down to FDT 10 ms (1.4 ms apart), where one stall of the
/// host of a few milliseconds makes two probes in a row late and the raise would then hold for
/// `MIN_SETTLING_TIME`. Below this interval the suspects are held back until they have lasted this
/// long; at and above it the rule is in.mpathd's.
pub const MIN_SUSPECT_SPAN_NS: u64 = 100_000_000 / PROBES_PER_FDT;

/// Highest FDT a raise may reach (10 minutes): far beyond any network that still answers, and far
/// below any overflow of the time arithmetic (no such cap in in.mpathd).
pub const MAX_FDT_NS: u64 = 600_000_000_000;

//! The group file parser on any text: it never panics, every problem names a line of the file,
//! and what it keeps is within the limits the BPF maps and the engine take.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (file, problems) = ipmpd::config::group_file::parse(&text);
    let lines = text.lines().count().max(1);
    for p in &problems {
        assert!(p.line >= 1 && p.line <= lines + 1, "line {} of {lines}", p.line);
    }
    assert!(file.interfaces.len() <= agent_common::MAX_TRACKED);
    for g in &file.groups {
        if let Some(ms) = g.fdt_ms {
            assert!((10..=ipmpd::config::mpathd_defaults::MAX_FDT_MS).contains(&ms));
        }
    }
});

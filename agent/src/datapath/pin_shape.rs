//! Pinned maps left by another build are adopted only when they have the shape this build's
//! programs declare: map type, key size, value size and number of entries.
//!
//! The loader reuses a pinned map by its path without comparing it with the object's declaration.
//! A map of another shape (an upgrade that added or removed a counter) would let the programs and
//! userspace disagree on where each counter is, and a per-CPU read sized for the new value would
//! overrun its buffer. So such pins are dropped and the datapath starts from scratch, as after
//! any other pin it cannot adopt.

use std::{collections::HashMap, fmt, path::Path};

use aya::maps::MapInfo;

/// What the kernel needs to agree on for a map to be shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapShape {
    /// `bpf_map_type`.
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
}

impl fmt::Display for MapShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "type {}, key {} bytes, value {} bytes, {} entries",
            self.map_type, self.key_size, self.value_size, self.max_entries
        )
    }
}

/// The shapes of the maps `object` (an eBPF ELF file) declares, by name.
///
/// # Errors
/// When the object does not parse.
pub fn declared(object: &[u8]) -> Result<HashMap<String, MapShape>, aya_obj::ParseError> {
    let parsed = aya_obj::Object::parse(object)?;
    Ok(parsed
        .maps
        .into_iter()
        .map(|(name, m)| {
            let shape = MapShape {
                map_type: m.map_type(),
                key_size: m.key_size(),
                value_size: m.value_size(),
                max_entries: m.max_entries(),
            };
            (name, shape)
        })
        .collect())
}

/// The shape of the map pinned at `path`; `Ok(None)` when nothing is pinned there.
///
/// # Errors
/// Something is pinned there that the kernel does not describe as a map.
pub fn pinned(path: &Path) -> Result<Option<MapShape>, String> {
    if !path.exists() {
        return Ok(None);
    }
    let info = MapInfo::from_pin(path).map_err(|e| e.to_string())?;
    let map_type = info.map_type().map_err(|e| e.to_string())? as u32;
    Ok(Some(MapShape {
        map_type,
        key_size: info.key_size(),
        value_size: info.value_size(),
        max_entries: info.max_entries(),
    }))
}

/// Why the pins cannot be adopted, for the first map (in `names`' order) whose pin differs from
/// its declaration in `declared`; `None` when every pin present matches. A map not pinned yet is
/// no obstacle (the loader creates it).
pub fn first_mismatch(
    names: &[&str],
    declared: &HashMap<String, MapShape>,
    pinned: impl Fn(&str) -> Result<Option<MapShape>, String>,
) -> Option<String> {
    names.iter().find_map(|&name| {
        let want = declared.get(name);
        match (pinned(name), want) {
            (Ok(None), _) => None,
            (Err(e), _) => Some(format!("{name}: the pin is not a readable map ({e})")),
            (Ok(Some(_)), None) => Some(format!("{name}: this build declares no such map")),
            (Ok(Some(got)), Some(want)) => (got != *want)
                .then(|| format!("{name}: pinned with {got}, this build declares {want}")),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const COUNTERS: MapShape = MapShape {
        map_type: 5,
        key_size: 4,
        value_size: 80,
        max_entries: 4096,
    };

    fn declared_counters() -> HashMap<String, MapShape> {
        HashMap::from([("IFACE_COUNTERS".to_string(), COUNTERS)])
    }

    #[test]
    fn a_pin_of_the_declared_shape_or_none_at_all_is_adopted() {
        let d = declared_counters();
        assert_eq!(
            first_mismatch(&["IFACE_COUNTERS"], &d, |_| Ok(Some(COUNTERS))),
            None
        );
        assert_eq!(first_mismatch(&["IFACE_COUNTERS"], &d, |_| Ok(None)), None);
    }

    #[test]
    fn a_pin_of_another_value_size_is_refused_with_both_shapes() {
        let d = declared_counters();
        let older = MapShape {
            value_size: 88,
            ..COUNTERS
        };
        let why = first_mismatch(&["IFACE_COUNTERS"], &d, |_| Ok(Some(older))).unwrap();
        assert_eq!(
            why,
            "IFACE_COUNTERS: pinned with type 5, key 4 bytes, value 88 bytes, 4096 entries, \
             this build declares type 5, key 4 bytes, value 80 bytes, 4096 entries"
        );
        for other in [
            MapShape {
                map_type: 1,
                ..COUNTERS
            },
            MapShape {
                key_size: 8,
                ..COUNTERS
            },
            MapShape {
                max_entries: 1024,
                ..COUNTERS
            },
        ] {
            assert!(first_mismatch(&["IFACE_COUNTERS"], &d, |_| Ok(Some(other))).is_some());
        }
    }

    #[test]
    fn an_unreadable_pin_or_an_undeclared_map_is_refused() {
        let d = declared_counters();
        let why = first_mismatch(&["IFACE_COUNTERS"], &d, |_| Err("not a map".into())).unwrap();
        assert!(why.contains("not a readable map (not a map)"), "{why}");
        let why = first_mismatch(&["GONE"], &d, |_| Ok(Some(COUNTERS))).unwrap();
        assert_eq!(why, "GONE: this build declares no such map");
    }

    #[test]
    fn this_builds_object_declares_every_pinned_map() {
        let d = declared(crate::datapath::OBJECT).expect("the embedded object parses");
        for name in crate::datapath::PINNED_MAPS {
            assert!(d.contains_key(name), "{name} declared: {d:?}");
        }
        let counters = d[agent_common::names::IFACE_COUNTERS];
        assert_eq!(
            counters.value_size as usize,
            size_of::<agent_common::counters::IfaceCounters>()
        );
        assert_eq!(d[agent_common::names::PROBES_STAMPED].max_entries, 1);
    }
}

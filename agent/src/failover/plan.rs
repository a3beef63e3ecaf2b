//! Where each data address of a group lives: on an active member, spread evenly, moving as
//! little as possible. Pure: the active set and the current placement in, moves out.

use std::collections::BTreeMap;

use crate::ip::Prefix;

/// One data address moving from one member to another (`from` is `None` when it is not
/// configured anywhere yet).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub addr: Prefix,
    pub from: Option<String>,
    pub to: String,
}

/// Placement of a group's data addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Placement {
    /// Data address (by position in the group's list) → member holding it.
    pub at: BTreeMap<usize, String>,
}

/// The moves that put every data address on an active member, evenly spread.
///
/// - With no active member nothing moves: nothing is gained by removing addresses.
/// - An address on a member that is still active stays, unless that member holds more than its
///   share while another active member holds less (repair rebalancing).
/// - Members are filled in the order given (the group file's order), so the result is
///   deterministic.
#[must_use]
pub fn plan(addresses: &[Prefix], active: &[String], current: &Placement) -> Vec<Move> {
    if active.is_empty() || addresses.is_empty() {
        return Vec::new();
    }
    let n = addresses.len();
    let (base, extra) = (n / active.len(), n % active.len());
    let mut load: Vec<Vec<usize>> = vec![Vec::new(); active.len()];
    let mut homeless = Vec::new();
    for (i, _) in addresses.iter().enumerate() {
        match current
            .at
            .get(&i)
            .and_then(|m| active.iter().position(|a| a == m))
        {
            Some(m) => load[m].push(i),
            None => homeless.push(i),
        }
    }
    // Nobody keeps more than base + 1, and only `extra` members may keep base + 1: a member
    // already holding the remainder keeps it, so a restart or a repair moves no more than needed.
    for held in &mut load {
        while held.len() > base + 1 {
            homeless.extend(held.pop());
        }
    }
    let mut at_cap = load.iter().filter(|h| h.len() == base + 1).count();
    for held in load.iter_mut().rev() {
        if at_cap <= extra {
            break;
        }
        if held.len() == base + 1 {
            homeless.extend(held.pop());
            at_cap -= 1;
        }
    }
    homeless.sort_unstable();
    let mut moves = Vec::new();
    for i in homeless {
        // Fill members below base first, then hand out the remainder in order.
        let below = (0..active.len()).find(|&m| load[m].len() < base);
        let m = below.or_else(|| {
            if at_cap < extra {
                (0..active.len()).find(|&m| load[m].len() == base)
            } else {
                None
            }
        });
        let Some(m) = m else { break };
        if load[m].len() == base {
            at_cap += 1;
        }
        load[m].push(i);
        moves.push(Move {
            addr: addresses[i],
            from: current.at.get(&i).cloned(),
            to: active[m].clone(),
        });
    }
    moves
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(n: u8) -> Vec<Prefix> {
        (0..n)
            .map(|i| Prefix {
                addr: [192, 0, 2, 100 + i].into(),
                len: 24,
            })
            .collect()
    }

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    fn apply(p: &mut Placement, a: &[Prefix], moves: &[Move]) {
        for m in moves {
            let i = a.iter().position(|x| *x == m.addr).unwrap();
            p.at.insert(i, m.to.clone());
        }
    }

    #[test]
    fn first_placement_spreads_evenly() {
        let a = addrs(4);
        let moves = plan(&a, &names(&["h0", "h1"]), &Placement::default());
        let to: Vec<&str> = moves.iter().map(|m| m.to.as_str()).collect();
        assert_eq!(to, ["h0", "h0", "h1", "h1"]);
        assert!(moves.iter().all(|m| m.from.is_none()));
    }

    #[test]
    fn a_failed_members_addresses_move_and_nothing_else_does() {
        let a = addrs(4);
        let mut p = Placement::default();
        let moves = plan(&a, &names(&["h0", "h1"]), &p);
        apply(&mut p, &a, &moves);
        let moves = plan(&a, &names(&["h1"]), &p);
        assert_eq!(moves.len(), 2);
        assert!(
            moves
                .iter()
                .all(|m| m.from.as_deref() == Some("h0") && m.to == "h1")
        );
    }

    #[test]
    fn repair_rebalances() {
        let a = addrs(4);
        let mut p = Placement::default();
        let moves = plan(&a, &names(&["h1"]), &p);
        apply(&mut p, &a, &moves);
        let moves = plan(&a, &names(&["h0", "h1"]), &p);
        assert_eq!(moves.len(), 2, "two of h1's four go back: {moves:?}");
        assert!(moves.iter().all(|m| m.to == "h0"));
    }

    #[test]
    fn without_an_active_member_addresses_stay() {
        let a = addrs(2);
        let mut p = Placement::default();
        let moves = plan(&a, &names(&["h0"]), &p);
        apply(&mut p, &a, &moves);
        assert_eq!(plan(&a, &[], &p), vec![]);
    }

    #[test]
    fn whoever_holds_the_remainder_keeps_it() {
        let a = addrs(1);
        let mut p = Placement::default();
        p.at.insert(0, "h1".into());
        assert_eq!(
            plan(&a, &names(&["h0", "h1"]), &p),
            vec![],
            "one address on h1 stays on h1"
        );
        let a = addrs(3);
        let mut p = Placement::default();
        for i in 0..3 {
            p.at.insert(i, "h1".into());
        }
        let moves = plan(&a, &names(&["h0", "h1"]), &p);
        assert_eq!(moves.len(), 1, "h1 keeps two, h0 gets one: {moves:?}");
    }

    #[test]
    fn a_stable_placement_is_left_alone() {
        let a = addrs(3);
        let mut p = Placement::default();
        let act = names(&["h0", "h1"]);
        let moves = plan(&a, &act, &p);
        apply(&mut p, &a, &moves);
        assert_eq!(plan(&a, &act, &p), vec![]);
    }
}

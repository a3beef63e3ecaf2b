//! Where each data address of a group lives: on an active member, spread evenly, moving as
//! little as possible. Pure: the active set and the current placement in, moves out.

use std::collections::BTreeMap;

use crate::config::group_file::Prefix;

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
    let share = |member: usize| n / active.len() + usize::from(member < n % active.len());
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
    // Members over their share give up their last addresses.
    for (m, held) in load.iter_mut().enumerate() {
        while held.len() > share(m) {
            if let Some(i) = held.pop() {
                homeless.push(i);
            }
        }
    }
    homeless.sort_unstable();
    let mut moves = Vec::new();
    for i in homeless {
        let Some(m) = (0..active.len()).find(|&m| load[m].len() < share(m)) else {
            break;
        };
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
    fn a_stable_placement_is_left_alone() {
        let a = addrs(3);
        let mut p = Placement::default();
        let act = names(&["h0", "h1"]);
        let moves = plan(&a, &act, &p);
        apply(&mut p, &a, &moves);
        assert_eq!(plan(&a, &act, &p), vec![]);
    }
}

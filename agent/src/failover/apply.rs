//! Carrying out address moves through the [`Kernel`] seam: add on the new member first, then
//! delete from the old one, so the address is never absent.

use super::{kernel::Kernel, plan::Move};
use crate::netlink::NetlinkError;

/// The outcome of one move.
#[derive(Debug)]
pub struct Applied {
    pub mv: Move,
    /// Interface index of the new home, for the announcements.
    pub to_ifindex: u32,
    pub result: Result<(), NetlinkError>,
}

/// Carries out `moves`: add on the new member, then delete from the old one. A failed add leaves
/// the address where it was.
pub fn execute(
    ops: &mut dyn Kernel,
    moves: &[Move],
    ifindex_of: impl Fn(&str) -> Option<u32>,
) -> Vec<Applied> {
    moves
        .iter()
        .filter_map(|mv| {
            let to = ifindex_of(&mv.to)?;
            let mut result = ops.add_address(to, mv.addr);
            if result.is_ok()
                && let Some(from) = mv.from.as_deref().and_then(&ifindex_of)
                && from != to
            {
                result = ops.del_address(from, mv.addr);
            }
            Some(Applied {
                mv: mv.clone(),
                to_ifindex: to,
                result,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{failover::kernel::FakeKernel, ip::Prefix};

    fn idx(name: &str) -> Option<u32> {
        match name {
            "h0" => Some(2),
            "h1" => Some(3),
            "bad" => Some(99),
            _ => None,
        }
    }

    #[test]
    fn add_before_delete_and_a_failed_add_keeps_the_old_home() {
        let a = Prefix {
            addr: [192, 0, 2, 100].into(),
            len: 24,
        };
        let mut f = FakeKernel::default();
        let done = execute(
            &mut f,
            &[Move {
                addr: a,
                from: Some("h0".into()),
                to: "h1".into(),
            }],
            idx,
        );
        assert_eq!(
            f.log,
            ["add 192.0.2.100/24 on 3", "del 192.0.2.100/24 on 2"]
        );
        assert!(done[0].result.is_ok());
        let mut f = FakeKernel {
            refuse_on: vec![99],
            ..FakeKernel::default()
        };
        let done = execute(
            &mut f,
            &[Move {
                addr: a,
                from: Some("h0".into()),
                to: "bad".into(),
            }],
            idx,
        );
        assert!(f.log.is_empty(), "no delete after a failed add");
        assert!(done[0].result.is_err());
    }
}

//! Which program takes probe replies on which interface: XDP, or TC ingress where XDP costs the
//! device more than it saves (veth), chosen from `--reply-hook` and what the kernel has.

use super::{DatapathError, TcAttach, choice};

/// Which program takes probe replies on which interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyHook {
    /// `ipmpd_xdp_reply`, at XDP, everywhere.
    #[default]
    Xdp,
    /// `ipmpd_tc_reply`, a TCX link on the ingress hook, everywhere (`--reply-hook tc`).
    TcIngress,
    /// `ipmpd_tc_reply` on veth, `ipmpd_xdp_reply` on every other device: the default where
    /// the kernel has TCX. On a veth, native XDP moves every packet the peer sends onto a NAPI
    /// queue of its own, which costs a TCP flow a few per cent; elsewhere XDP runs before the
    /// kernel builds a packet buffer, the cheapest and earliest place.
    TcIngressOnVeth,
}

impl ReplyHook {
    /// Short name for logs and events.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Xdp => "xdp",
            Self::TcIngress => "tc_ingress",
            Self::TcIngressOnVeth => "tc_ingress_on_veth",
        }
    }

    /// What `choice` makes of a kernel whose TC programs attach as `tc`.
    ///
    /// # Errors
    /// `--reply-hook tc` where TCX is not in use.
    pub fn choose(choice: choice::ReplyChoice, tc: &TcAttach) -> Result<Self, DatapathError> {
        match (choice, tc) {
            (choice::ReplyChoice::Xdp, _)
            | (choice::ReplyChoice::Auto, TcAttach::Clsact { .. }) => Ok(Self::Xdp),
            (choice::ReplyChoice::Auto, TcAttach::Tcx) => Ok(Self::TcIngressOnVeth),
            (choice::ReplyChoice::Tc, TcAttach::Tcx) => Ok(Self::TcIngress),
            (choice::ReplyChoice::Tc, TcAttach::Clsact { reason }) => {
                Err(DatapathError::ReplyHookNeedsTcx {
                    reason: reason.clone(),
                })
            }
        }
    }

    /// Whether replies on a device are taken at TC ingress; `kind` says what kind of device it
    /// is (`IFLA_INFO_KIND`; `None` for a NIC), which only the default where TCX is in use
    /// looks at.
    pub fn at_tc_ingress(self, kind: Option<&str>) -> bool {
        match self {
            Self::Xdp => false,
            Self::TcIngress => true,
            Self::TcIngressOnVeth => kind == Some("veth"),
        }
    }

    /// Whether [`Self::at_tc_ingress`] depends on the device's kind.
    pub(super) fn needs_kind(self) -> bool {
        self == Self::TcIngressOnVeth
    }

    /// Whether any interface may have replies taken at TC ingress.
    pub(super) fn uses_tc(self) -> bool {
        self != Self::Xdp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use choice::ReplyChoice;

    fn clsact() -> TcAttach {
        TcAttach::Clsact {
            reason: "the kernel has no TCX".into(),
        }
    }

    #[test]
    fn by_default_veth_gets_tc_ingress_where_tcx_is_and_xdp_where_it_is_not() {
        let hook = ReplyHook::choose(ReplyChoice::Auto, &TcAttach::Tcx).unwrap();
        assert_eq!(hook, ReplyHook::TcIngressOnVeth);
        assert!(hook.needs_kind());
        assert!(hook.at_tc_ingress(Some("veth")));
        assert!(!hook.at_tc_ingress(None), "a NIC keeps XDP");
        assert!(!hook.at_tc_ingress(Some("bridge")));
        let hook = ReplyHook::choose(ReplyChoice::Auto, &clsact()).unwrap();
        assert_eq!(hook, ReplyHook::Xdp);
        assert!(!hook.at_tc_ingress(Some("veth")));
    }

    #[test]
    fn a_forced_choice_holds_for_every_device_and_tc_without_tcx_is_refused() {
        let xdp = ReplyHook::choose(ReplyChoice::Xdp, &TcAttach::Tcx).unwrap();
        assert!(!xdp.needs_kind() && !xdp.at_tc_ingress(Some("veth")));
        let tc = ReplyHook::choose(ReplyChoice::Tc, &TcAttach::Tcx).unwrap();
        assert!(!tc.needs_kind() && tc.at_tc_ingress(None));
        let err = ReplyHook::choose(ReplyChoice::Tc, &clsact()).unwrap_err();
        assert!(
            err.to_string().contains("the kernel has no TCX")
                && err.to_string().contains("--reply-hook xdp"),
            "{err}"
        );
    }
}

//! `ipmpd detach`: take ipmpd's programs off every interface and remove its pins. A stopped
//! daemon leaves its datapath attached on purpose (the next start adopts it without losing a
//! packet); this is how an operator removes it for good.

use anyhow::Context as _;

/// Arguments of `ipmpd detach`.
#[derive(Debug, clap::Args)]
pub struct DetachArgs {
    /// Instance name (pins under /sys/fs/bpf/ipmpd/INSTANCE/); default: the default instance.
    #[arg(long, value_parser = crate::datapath::parse_instance)]
    pub instance: Option<String>,
}

/// Runs `ipmpd detach`.
///
/// # Errors
/// When a pin cannot be removed (no privilege).
pub fn run(args: &DetachArgs) -> anyhow::Result<()> {
    if crate::datapath::grace::Expedite::for_instance(args.instance.as_deref()).recover() {
        println!("put back /sys/kernel/rcu_expedited, which a stopped ipmpd had left set");
    }
    let dir = crate::datapath::pin_dir(args.instance.as_deref());
    let done = crate::datapath::detach_instance(args.instance.as_deref())
        .with_context(|| format!("cannot remove {} (run as root)", dir.display()))?;
    if done.expedited > 0 {
        println!(
            "RCU grace periods expedited for {} TCX detachments; /sys/kernel/rcu_expedited put back",
            done.expedited
        );
    }
    if done.existed {
        println!("detached ipmpd's programs and removed {}", dir.display());
    } else {
        println!("nothing to detach: {} does not exist", dir.display());
    }
    Ok(())
}

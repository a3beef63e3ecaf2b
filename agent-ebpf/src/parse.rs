//! Bounds-checked header walking shared by the XDP and TC programs.
//!
//! Both programs see a frame as `[start, end)` and need the same answers: where the L3 header starts
//! (after at most one VLAN tag), which family it is, and where the ICMP header starts.

use core::mem::size_of;

pub const ETH_HLEN: usize = 14;
pub const ETH_P_IP: u16 = 0x0800;
pub const ETH_P_IPV6: u16 = 0x86dd;
pub const ETH_P_8021Q: u16 = 0x8100;
pub const ETH_P_8021AD: u16 = 0x88a8;
pub const IPPROTO_ICMP: u8 = 1;
pub const IPPROTO_ICMPV6: u8 = 58;
const IPV6_HLEN: usize = 40;
/// IPv6 extension headers walked before giving up; probes carry none, so 4 is plenty.
const MAX_IPV6_EXT: usize = 4;

/// A pointer to a `T` at `offset` when the whole `T` lies inside the frame.
#[inline(always)]
pub fn ptr_at<T>(start: usize, end: usize, offset: usize) -> Option<*const T> {
    if start + offset + size_of::<T>() > end {
        return None;
    }
    Some((start + offset) as *const T)
}

/// Reads a `T` (unaligned) at `offset` when it lies inside the frame.
#[inline(always)]
pub fn read<T: Copy>(start: usize, end: usize, offset: usize) -> Option<T> {
    // SAFETY: ptr_at checked that the bytes are inside the frame; read_unaligned has no alignment need.
    ptr_at::<T>(start, end, offset).map(|p| unsafe { core::ptr::read_unaligned(p) })
}

/// What the L2/L3 walk found.
pub struct L4 {
    /// 4 or 6.
    pub family: u8,
    /// Offset of the ICMP header from the frame start.
    pub l4_off: usize,
    /// Offset of the L3 header from the frame start.
    pub l3_off: usize,
    /// VLAN id when one tag was present.
    pub vlan: Option<u16>,
    /// TTL / hop limit.
    pub hop_limit: u8,
}

/// Why a frame is not an ICMP/ICMPv6 frame we look at.
pub enum Skip {
    /// Not IP, not ICMP, a fragment, or cut short: none of our business.
    NotIcmp,
    /// IPv6 with a routing header: in.mpathd refuses such replies.
    RoutingHeader,
}

/// Walks Ethernet, one optional VLAN tag, IPv4 (with options) or IPv6 (with up to
/// [`MAX_IPV6_EXT`] extension headers) down to an ICMP/ICMPv6 header.
#[inline(always)]
pub fn to_icmp(start: usize, end: usize) -> Result<L4, Skip> {
    let mut proto = u16::from_be(read::<u16>(start, end, 12).ok_or(Skip::NotIcmp)?);
    let mut l3_off = ETH_HLEN;
    let mut vlan = None;
    if proto == ETH_P_8021Q || proto == ETH_P_8021AD {
        let tci = u16::from_be(read::<u16>(start, end, ETH_HLEN).ok_or(Skip::NotIcmp)?);
        vlan = Some(tci & 0x0fff);
        proto = u16::from_be(read::<u16>(start, end, ETH_HLEN + 2).ok_or(Skip::NotIcmp)?);
        l3_off += 4;
    }
    match proto {
        ETH_P_IP => {
            let vihl = read::<u8>(start, end, l3_off).ok_or(Skip::NotIcmp)?;
            if vihl >> 4 != 4 {
                return Err(Skip::NotIcmp);
            }
            let ihl = usize::from(vihl & 0x0f) * 4;
            if ihl < 20 {
                return Err(Skip::NotIcmp);
            }
            let frag = u16::from_be(read::<u16>(start, end, l3_off + 6).ok_or(Skip::NotIcmp)?);
            // A fragment (MF set or a non-zero offset) cannot be matched whole: let the stack have it.
            if frag & 0x3fff != 0 {
                return Err(Skip::NotIcmp);
            }
            let ttl = read::<u8>(start, end, l3_off + 8).ok_or(Skip::NotIcmp)?;
            let protocol = read::<u8>(start, end, l3_off + 9).ok_or(Skip::NotIcmp)?;
            if protocol != IPPROTO_ICMP {
                return Err(Skip::NotIcmp);
            }
            Ok(L4 {
                family: 4,
                l4_off: l3_off + ihl,
                l3_off,
                vlan,
                hop_limit: ttl,
            })
        }
        ETH_P_IPV6 => {
            // Version 6 or not IPv6 at all (found by the TestRun mutation test).
            let version = read::<u8>(start, end, l3_off).ok_or(Skip::NotIcmp)?;
            if version >> 4 != 6 {
                return Err(Skip::NotIcmp);
            }
            let mut next = read::<u8>(start, end, l3_off + 6).ok_or(Skip::NotIcmp)?;
            let hop_limit = read::<u8>(start, end, l3_off + 7).ok_or(Skip::NotIcmp)?;
            let mut off = l3_off + IPV6_HLEN;
            for _ in 0..MAX_IPV6_EXT {
                match next {
                    IPPROTO_ICMPV6 => {
                        return Ok(L4 {
                            family: 6,
                            l4_off: off,
                            l3_off,
                            vlan,
                            hop_limit,
                        });
                    }
                    // Hop-by-hop options, destination options: skip (length in 8-octet units).
                    0 | 60 => {
                        // One 2-byte read (next header, length): 1-byte reads at a variable
                        // offset compile to a bounds check the verifier cannot use.
                        let [nh, len] = read::<[u8; 2]>(start, end, off).ok_or(Skip::NotIcmp)?;
                        next = nh;
                        // Bounded: at most 2 KiB per header, so the verifier can follow `off`.
                        off += (usize::from(len) + 1) * 8;
                    }
                    43 => return Err(Skip::RoutingHeader),
                    _ => return Err(Skip::NotIcmp),
                }
            }
            if next == IPPROTO_ICMPV6 {
                return Ok(L4 {
                    family: 6,
                    l4_off: off,
                    l3_off,
                    vlan,
                    hop_limit,
                });
            }
            Err(Skip::NotIcmp)
        }
        _ => Err(Skip::NotIcmp),
    }
}

//! The flag arguments of `nat_uac_test` and `fix_nated_sdp` (OpenSIPS
//! 3.4 names, comma-separated, as `fixup_named_flags` reads them; the
//! numbers of OpenSIPS 1.x/2.x are taken too, as corpus configs still
//! write `nat_uac_test("19")`), and the private-address test.

use std::net::Ipv4Addr;

/// `nat_uac_test` tests by bit (nathelper.c NAT_UAC_TEST_*).
pub const C_1918: u32 = 0x01;
pub const V_RCVD: u32 = 0x02;
pub const V_1918: u32 = 0x04;
pub const S_1918: u32 = 0x08;
pub const RPORT: u32 = 0x10;
pub const C_RCVD: u32 = 0x20;
pub const C_RPORT: u32 = 0x40;
pub const RFC_6333: u32 = 0x80;

/// Their 3.x names, bit 0 first.
pub use crate::sip::args::NAT_UAC_TEST_FLAGS as UAC_TEST_NAMES;

/// `fix_nated_sdp` actions by bit.
pub const ADD_ADIRECTION: u32 = 0x01;
pub const FIX_MEDIP: u32 = 0x02;
pub const ADD_ANORTPPROXY: u32 = 0x04;
pub const FIX_ORGIP: u32 = 0x08;
pub const FORCE_NULL_ADDR: u32 = 0x10;

pub use crate::sip::args::FIX_NATED_SDP_FLAGS as SDP_NAMES;

pub use crate::sip::args::named_flags as parse;

/// ip.c `ip_addr_is_1918`: an IPv4 address in RFC 1918 space, RFC 6598
/// shared space (100.64/10), loopback (127/8), and with `rfc_6333` the
/// DS-Lite range 192.0.0.0/29. Anything that is not an IPv4 literal is
/// not private.
pub fn is_private(host: &str, rfc_6333: bool) -> bool {
    let Ok(ip) = host.trim().parse::<Ipv4Addr>() else {
        return false;
    };
    let a = u32::from(ip);
    let nets: &[(u32, u32)] = &[
        (0x0a00_0000, 8),
        (0xac10_0000, 12),
        (0xc0a8_0000, 16),
        (0x6440_0000, 10),
        (0x7f00_0000, 8),
    ];
    let within = |(net, len): (u32, u32)| a & (u32::MAX << (32 - len)) == net;
    nets.iter().copied().any(within) || (rfc_6333 && within((0xc000_0000, 29)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("1", UAC_TEST_NAMES), Ok(C_1918));
        assert_eq!(parse("19", UAC_TEST_NAMES), Ok(C_1918 | V_RCVD | RPORT));
        assert_eq!(parse(" 23 ", UAC_TEST_NAMES), Ok(23));
        assert_eq!(
            parse("private-contact, diff-ip-src-via,diff-port-src-via", UAC_TEST_NAMES),
            Ok(C_1918 | V_RCVD | RPORT)
        );
        assert_eq!(
            parse("private-contact,private-sdp,private-via,diff-ip-src-via,diff-port-src-via,diff-ip-src-contact,diff-port-src-contact", UAC_TEST_NAMES),
            Ok(0x7f)
        );
        assert!(parse("private", UAC_TEST_NAMES).is_err());
        assert!(parse("Private-Contact", UAC_TEST_NAMES).is_err());
        assert!(parse("256", UAC_TEST_NAMES).is_err());
        assert_eq!(parse("10", SDP_NAMES), Ok(FIX_MEDIP | FIX_ORGIP));
        assert_eq!(parse("rewrite-origin-ip", SDP_NAMES), Ok(FIX_ORGIP));
        assert!(parse("32", SDP_NAMES).is_err());
    }

    #[test]
    fn private_ranges() {
        for h in ["10.0.0.1", "172.16.5.5", "172.31.255.255", "192.168.1.1", "100.64.0.1", "100.127.255.255", "127.0.0.2"] {
            assert!(is_private(h, false), "{h}");
        }
        for h in ["172.32.0.1", "100.128.0.1", "8.8.8.8", "192.0.0.1", "example.com", "::1", "[fd00::1]"] {
            assert!(!is_private(h, false), "{h}");
        }
        assert!(is_private("192.0.0.7", true));
        assert!(!is_private("192.0.0.8", true));
    }
}

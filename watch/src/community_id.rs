//! Community ID v1 (https://github.com/corelight/community-id-spec).
//!
//! Zeek, Suricata, Arkime and Elastic all compute this hash of a flow's
//! endpoints, so a SIEM can join our alerts with the sensors' own records
//! by one string, whichever direction each tool saw the flow in.

use std::net::IpAddr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha1::{Digest, Sha1};

use fedsoc_datasets::read::live::FlowKey;

/// IP protocol numbers the specification treats specially.
const ICMP: u8 = 1;
const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP6: u8 = 58;
const SCTP: u8 = 132;

/// ICMP types whose request and reply form one two-way flow, each with its
/// counterpart (the spec's table, taken from Zeek's `ICMP4_counterpart`).
fn icmp4_counterpart(icmp_type: u8) -> Option<u8> {
    Some(match icmp_type {
        8 => 0,   // echo request → echo reply
        0 => 8,   // echo reply → echo request
        13 => 14, // timestamp → timestamp reply
        14 => 13,
        15 => 16, // information request → information reply
        16 => 15,
        10 => 9, // router solicitation → router advertisement
        9 => 10,
        17 => 18, // address mask request → address mask reply
        18 => 17,
        _ => return None,
    })
}

/// The ICMPv6 counterpart table (Zeek's `ICMP6_counterpart`).
fn icmp6_counterpart(icmp_type: u8) -> Option<u8> {
    Some(match icmp_type {
        128 => 129, // echo request → echo reply
        129 => 128,
        130 => 131, // multicast listener query → report
        131 => 130,
        133 => 134, // router solicitation → router advertisement
        134 => 133,
        135 => 136, // neighbour solicitation → neighbour advertisement
        136 => 135,
        139 => 140, // node information query ("who are you") → reply
        140 => 139,
        144 => 145, // home agent address discovery request → reply
        145 => 144,
        _ => return None,
    })
}

/// The Community ID v1 of one flow, as `"1:" + base64(sha1(...))`.
///
/// For TCP, UDP and SCTP, `src_port` and `dst_port` are the ports. For ICMP
/// (`proto` 1) and ICMPv6 (58) the caller passes the ICMP **type** as
/// `src_port` and the **code** as `dst_port`, as Zeek logs them; they are
/// mapped to the spec's port equivalents here (a request and its reply
/// hash alike; a one-way message such as "time exceeded" keeps its
/// direction). For any other protocol, or when either port is `None`, the
/// hash covers the addresses and protocol only, as the spec does for
/// port-less protocols (a TCP flow without ports therefore gets an ID no
/// sensor would compute; [`of_flow`] never asks for one).
///
/// `seed` is the spec's seed, 0 unless every sensor of the SOC is
/// configured with another.
pub fn community_id_v1(
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    src_port: Option<u16>,
    dst_port: Option<u16>,
    seed: u16,
) -> String {
    let src_bytes = addr_bytes(src);
    let dst_bytes = addr_bytes(dst);
    let src_addr = &src_bytes.0[..src_bytes.1];
    let dst_addr = &dst_bytes.0[..dst_bytes.1];

    let ports = match (src_port, dst_port) {
        (Some(sp), Some(dp)) => Some(icmp_ports(proto, sp, dp).unwrap_or((sp, dp, false))),
        _ => None,
    };

    // Endpoint ordering: the smaller (address, port) first, comparing the
    // network-order bytes; a one-way ICMP message is never flipped.
    let (a, b, ports) = match ports {
        Some((sp, dp, one_way)) => {
            if one_way || (src_addr, sp) < (dst_addr, dp) {
                (src_addr, dst_addr, Some((sp, dp)))
            } else {
                (dst_addr, src_addr, Some((dp, sp)))
            }
        }
        None => {
            if src_addr < dst_addr {
                (src_addr, dst_addr, None)
            } else {
                (dst_addr, src_addr, None)
            }
        }
    };

    let mut hasher = Sha1::new();
    hasher.update(seed.to_be_bytes());
    hasher.update(a);
    hasher.update(b);
    hasher.update([proto, 0]);
    if let Some((sp, dp)) = ports {
        hasher.update(sp.to_be_bytes());
        hasher.update(dp.to_be_bytes());
    }
    let digest = hasher.finalize();

    let mut id = String::with_capacity(2 + 28);
    id.push_str("1:");
    STANDARD.encode_string(digest, &mut id);
    id
}

/// The Community ID (seed 0) of a live flow. `None` when the key lacks an
/// address, a TCP/UDP/SCTP port or the ICMP type, when the addresses mix
/// IPv4 and IPv6, or when the transport is not one the spec covers by name
/// (a decimal protocol number is taken as that protocol).
pub fn of_flow(key: &FlowKey) -> Option<String> {
    let (src, dst) = (key.src_ip?, key.dst_ip?);
    if src.is_ipv4() != dst.is_ipv4() {
        return None;
    }
    let t = key.transport.as_str();
    let proto = if t.eq_ignore_ascii_case("tcp") {
        TCP
    } else if t.eq_ignore_ascii_case("udp") {
        UDP
    } else if t.eq_ignore_ascii_case("sctp") {
        SCTP
    } else if t.eq_ignore_ascii_case("icmp") {
        // Zeek logs ICMPv6 as "icmp" too: the addresses tell them apart.
        if src.is_ipv4() { ICMP } else { ICMP6 }
    } else if t.eq_ignore_ascii_case("ipv6-icmp")
        || t.eq_ignore_ascii_case("icmpv6")
        || t.eq_ignore_ascii_case("icmp6")
    {
        ICMP6
    } else if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        t.parse::<u8>().ok()?
    } else {
        return None;
    };

    let (sp, dp) = match proto {
        TCP | UDP | SCTP => (key.src_port?, key.dst_port?),
        ICMP | ICMP6 => {
            let icmp_type = key.icmp_type?;
            // The code is hashed only for one-way types; a two-way type
            // hashes its counterpart instead, so a missing code is fine.
            let code = match key.icmp_code {
                Some(code) => code,
                None if icmp_ports(proto, icmp_type.into(), 0).is_some_and(|p| !p.2) => 0,
                None => return None,
            };
            (u16::from(icmp_type), u16::from(code))
        }
        other => return Some(community_id_v1(src, dst, other, None, None, 0)),
    };
    Some(community_id_v1(src, dst, proto, Some(sp), Some(dp), 0))
}

/// ICMP type/code to (src port, dst port, one-way), per the spec; `None`
/// for protocols that are not ICMP.
fn icmp_ports(proto: u8, icmp_type: u16, code: u16) -> Option<(u16, u16, bool)> {
    let counterpart = match proto {
        ICMP => icmp4_counterpart,
        ICMP6 => icmp6_counterpart,
        _ => return None,
    };
    let mapped = u8::try_from(icmp_type).ok().and_then(counterpart);
    Some(match mapped {
        Some(other) => (icmp_type, u16::from(other), false),
        None => (icmp_type, code, true),
    })
}

/// An address in network byte order, without allocating.
fn addr_bytes(addr: IpAddr) -> ([u8; 16], usize) {
    let mut out = [0u8; 16];
    match addr {
        IpAddr::V4(v4) => {
            out[..4].copy_from_slice(&v4.octets());
            (out, 4)
        }
        IpAddr::V6(v6) => {
            out.copy_from_slice(&v6.octets());
            (out, 16)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    struct Vector {
        proto: u8,
        src: &'static str,
        dst: &'static str,
        ports: Option<(u16, u16)>,
        seed0: &'static str,
        seed1: &'static str,
    }

    const V6_A: &str = "fe80:0001:0203:0405:0607:0809:0A0B:0C0D";
    const V6_B: &str = "fe80:1011:1213:1415:1617:1819:1A1B:1C1D";

    /// The tables of corelight/community-id-spec `baseline/README.md`
    /// ("Default settings" and "A custom seed=1 value"); for ICMP the
    /// ports column is the type and code.
    const README_TABLE: &[Vector] = &[
        Vector {
            proto: 6,
            src: "1.2.3.4",
            dst: "5.6.7.8",
            ports: Some((1122, 3344)),
            seed0: "1:wCb3OG7yAFWelaUydu0D+125CLM=",
            seed1: "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk=",
        },
        Vector {
            proto: 6,
            src: "5.6.7.8",
            dst: "1.2.3.4",
            ports: Some((3344, 1122)),
            seed0: "1:wCb3OG7yAFWelaUydu0D+125CLM=",
            seed1: "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk=",
        },
        Vector {
            proto: 17,
            src: "1.2.3.4",
            dst: "5.6.7.8",
            ports: Some((1122, 3344)),
            seed0: "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=",
            seed1: "1:OShq+iKDAMVouh/4bMxB9Sz4amw=",
        },
        Vector {
            proto: 17,
            src: "5.6.7.8",
            dst: "1.2.3.4",
            ports: Some((3344, 1122)),
            seed0: "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=",
            seed1: "1:OShq+iKDAMVouh/4bMxB9Sz4amw=",
        },
        Vector {
            proto: 132,
            src: "1.2.3.4",
            dst: "5.6.7.8",
            ports: Some((1122, 3344)),
            seed0: "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=",
            seed1: "1:uitchpn5MMGAQKBJh7bIr/bAr7s=",
        },
        Vector {
            proto: 132,
            src: "5.6.7.8",
            dst: "1.2.3.4",
            ports: Some((3344, 1122)),
            seed0: "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=",
            seed1: "1:uitchpn5MMGAQKBJh7bIr/bAr7s=",
        },
        // ICMP echo request, its reply, and a one-way "time exceeded".
        Vector {
            proto: 1,
            src: "1.2.3.4",
            dst: "5.6.7.8",
            ports: Some((8, 0)),
            seed0: "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=",
            seed1: "1:9pr4ZGTICiuZoIh90RRYE2RyXpU=",
        },
        Vector {
            proto: 1,
            src: "5.6.7.8",
            dst: "1.2.3.4",
            ports: Some((0, 0)),
            seed0: "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=",
            seed1: "1:9pr4ZGTICiuZoIh90RRYE2RyXpU=",
        },
        Vector {
            proto: 1,
            src: "1.2.3.4",
            dst: "5.6.7.8",
            ports: Some((11, 0)),
            seed0: "1:f/YiSyWqczrTgfUCZlBUnvHRcPk=",
            seed1: "1:1DD7cWGC/Yg91YGsQeni8du3pIA=",
        },
        // ICMPv6 echo request, its reply, and a one-way type 146.
        Vector {
            proto: 58,
            src: V6_A,
            dst: V6_B,
            ports: Some((128, 0)),
            seed0: "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=",
            seed1: "1:IO27GQzPuCtNnwFvjWALMHu5tJE=",
        },
        Vector {
            proto: 58,
            src: V6_B,
            dst: V6_A,
            ports: Some((129, 0)),
            seed0: "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=",
            seed1: "1:IO27GQzPuCtNnwFvjWALMHu5tJE=",
        },
        Vector {
            proto: 58,
            src: V6_A,
            dst: V6_B,
            ports: Some((146, 0)),
            seed0: "1:fYC8+pz24E+EhANP1EZhpX0Dw10=",
            seed1: "1:Cv4IKJe56BNkF0MBW2YxQ3Nwc3s=",
        },
        // RSVP: a port-less protocol, IPv4 and IPv6.
        Vector {
            proto: 46,
            src: "1.2.3.4",
            dst: "5.6.7.8",
            ports: None,
            seed0: "1:ikv3kmf89luf73WPz1jOs49S768=",
            seed1: "1:/buhqeOmaRCopOZFy9HnoJd5XW8=",
        },
        Vector {
            proto: 46,
            src: "5.6.7.8",
            dst: "1.2.3.4",
            ports: None,
            seed0: "1:ikv3kmf89luf73WPz1jOs49S768=",
            seed1: "1:/buhqeOmaRCopOZFy9HnoJd5XW8=",
        },
        Vector {
            proto: 46,
            src: V6_A,
            dst: V6_B,
            ports: None,
            seed0: "1:wQ/2mwrnXP4lmJcHdGL5ePjR+e0=",
            seed1: "1:j6EyyfBzL4vWKHFXgUqb5Az3OxM=",
        },
        Vector {
            proto: 46,
            src: V6_B,
            dst: V6_A,
            ports: None,
            seed0: "1:wQ/2mwrnXP4lmJcHdGL5ePjR+e0=",
            seed1: "1:j6EyyfBzL4vWKHFXgUqb5Az3OxM=",
        },
    ];

    #[test]
    fn spec_readme_tables_default_seed_and_seed_1() {
        for v in README_TABLE {
            let (sp, dp) = v.ports.unzip();
            let (src, dst) = (ip(v.src), ip(v.dst));
            assert_eq!(
                community_id_v1(src, dst, v.proto, sp, dp, 0),
                v.seed0,
                "seed 0: proto {} {} → {} {:?}",
                v.proto,
                v.src,
                v.dst,
                v.ports
            );
            assert_eq!(
                community_id_v1(src, dst, v.proto, sp, dp, 1),
                v.seed1,
                "seed 1: proto {} {} → {} {:?}",
                v.proto,
                v.src,
                v.dst,
                v.ports
            );
        }
    }

    /// corelight/community-id-spec `baseline/baseline_deflt.json` (seed 0)
    /// and `baseline/baseline_seed1.json` (seed 1): flows of the spec's
    /// `pcaps/combined.pcap.gz`. For ICMP its `sport`/`dport` are already
    /// the port equivalents: for two-way types the second is the
    /// counterpart type, which the mapping ignores in favour of its own,
    /// and for one-way types they are the type and code, so they can be
    /// passed as type and code.
    /// Protocol, source, destination, ports, ID with seed 0, ID with seed 1.
    type BaselineRow = (
        u8,
        &'static str,
        &'static str,
        Option<(u16, u16)>,
        &'static str,
        &'static str,
    );

    #[rustfmt::skip]
    const BASELINE_JSON: &[BaselineRow] = &[
        (58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", Some((135, 136)), "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=", "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY="),
        (58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", Some((136, 135)), "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=", "1:kHa1FhMYIT6Ym2Vm2AOtoOARDzY="),
        (58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", Some((135, 136)), "1:zavyT/cezQr1fmImYCwYnMXbgck=", "1:2hSqmsDZ2kdcY9kbiUzOEBic0iM="),
        (58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", Some((136, 135)), "1:zavyT/cezQr1fmImYCwYnMXbgck=", "1:2hSqmsDZ2kdcY9kbiUzOEBic0iM="),
        (58, "3ffe:501:1800:2345::2", "3ffe:507:0:1:200:86ff:fe05:80da", Some((3, 0)), "1:2ObVBgIn28oZvibYZhZMBgh7WdQ=", "1:lVEtCZpYu84Xqaa++3lXFyuu2n4="),
        (58, "3ffe:501:410:0:2c0:dfff:fe47:33e", "3ffe:507:0:1:200:86ff:fe05:80da", Some((1, 4)), "1:hLZd0XGWojozrvxqE0dWB1iM6R0=", "1:W8MHwXpWzpoSTD+cGcaJr4u0ys8="),
        (58, "3ffe:507:0:1:200:86ff:fe05:80da", "3ffe:501:0:1001::2", Some((128, 129)), "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=", "1:GfZxjAkDk2MkegpBYHV6tadtFXQ="),
        (58, "3ffe:501:0:1001::2", "3ffe:507:0:1:200:86ff:fe05:80da", Some((129, 128)), "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg=", "1:GfZxjAkDk2MkegpBYHV6tadtFXQ="),
        (58, "fe80::200:86ff:fe05:80da", "ff02::2", Some((133, 134)), "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0=", "1:L7Ka0ZMYu+J3bL4ulW2PrqyXNo8="),
        (58, "fe80::260:97ff:fe07:69ea", "ff02::1", Some((134, 133)), "1:pkvHqCL88/tg1k4cPigmZXUtL00=", "1:K/ee5UCqAMAQXDorP5nSa2CGLjc="),
        (1, "192.168.0.89", "192.168.0.1", Some((8, 0)), "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "1:03g6IloqVBdcZlPyX8r0hgoE7kA="),
        (1, "192.168.0.1", "192.168.0.89", Some((0, 8)), "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=", "1:03g6IloqVBdcZlPyX8r0hgoE7kA="),
        (1, "10.0.0.1", "10.0.0.2", Some((11, 0)), "1:YHxtAirCG//0OzkcVAukqKQN9xM=", "1:XjUibYHaafLQ3pxQeiMI8g25q20="),
        (6, "2001:470:e5bf:dead:4957:2174:e82c:4887", "2607:f8b0:400c:c03::1a", Some((63943, 25)), "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=", "1:eJYTW6AOzFLlSUoESovMjnu7rMw="),
        (6, "2607:f8b0:400c:c03::1a", "2001:470:e5bf:dead:4957:2174:e82c:4887", Some((25, 63943)), "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=", "1:eJYTW6AOzFLlSUoESovMjnu7rMw="),
        (132, "192.168.170.8", "192.168.170.56", Some((7, 7)), "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=", "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg="),
        (132, "192.168.170.56", "192.168.170.8", Some((7, 7)), "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=", "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg="),
        (6, "128.232.110.120", "66.35.250.204", Some((34855, 80)), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "1:3V71V58M3Ksw/yuFALMcW0LAHvc="),
        (6, "66.35.250.204", "128.232.110.120", Some((80, 34855)), "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "1:3V71V58M3Ksw/yuFALMcW0LAHvc="),
        (17, "192.168.1.52", "8.8.8.8", Some((54585, 53)), "1:d/FP5EW3wiY1vCndhwleRRKHowQ=", "1:Q9We8WO3piVF8yEQBNJF4uiSVrI="),
        (17, "8.8.8.8", "192.168.1.52", Some((53, 54585)), "1:d/FP5EW3wiY1vCndhwleRRKHowQ=", "1:Q9We8WO3piVF8yEQBNJF4uiSVrI="),
        (46, "10.1.12.1", "10.1.12.2", None, "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=", "1:rYir8gphR31noO9iDRQmF/BteEI="),
        (46, "10.1.12.2", "10.1.12.1", None, "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw=", "1:rYir8gphR31noO9iDRQmF/BteEI="),
    ];

    #[test]
    fn spec_baseline_json_default_seed_and_seed_1() {
        for &(proto, src, dst, ports, seed0, seed1) in BASELINE_JSON {
            let (sp, dp) = ports.unzip();
            let (s, d) = (ip(src), ip(dst));
            assert_eq!(
                community_id_v1(s, d, proto, sp, dp, 0),
                seed0,
                "seed 0: {proto} {src} → {dst} {ports:?}"
            );
            assert_eq!(
                community_id_v1(s, d, proto, sp, dp, 1),
                seed1,
                "seed 1: {proto} {src} → {dst} {ports:?}"
            );
        }
    }

    fn key(transport: &str, src: &str, dst: &str) -> FlowKey {
        FlowKey {
            src_ip: Some(ip(src)),
            dst_ip: Some(ip(dst)),
            transport: transport.to_string(),
            ..FlowKey::default()
        }
    }

    #[test]
    fn of_flow_maps_transports_to_the_spec_values() {
        // Same baseline vectors, reached through a live flow's key.
        let mut tcp = key("tcp", "66.35.250.204", "128.232.110.120");
        tcp.src_port = Some(80);
        tcp.dst_port = Some(34855);
        assert_eq!(
            of_flow(&tcp).as_deref(),
            Some("1:LQU9qZlK+B5F3KDmev6m5PMibrg=")
        );

        let mut udp = key("UDP", "192.168.1.52", "8.8.8.8");
        udp.src_port = Some(54585);
        udp.dst_port = Some(53);
        assert_eq!(
            of_flow(&udp).as_deref(),
            Some("1:d/FP5EW3wiY1vCndhwleRRKHowQ=")
        );

        let mut sctp = key("sctp", "1.2.3.4", "5.6.7.8");
        sctp.src_port = Some(1122);
        sctp.dst_port = Some(3344);
        assert_eq!(
            of_flow(&sctp).as_deref(),
            Some("1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=")
        );

        // Zeek's "icmp" with IPv4 addresses is ICMP; the reply's code is
        // not needed for a two-way type.
        let mut echo_reply = key("icmp", "5.6.7.8", "1.2.3.4");
        echo_reply.icmp_type = Some(0);
        assert_eq!(
            of_flow(&echo_reply).as_deref(),
            Some("1:crodRHL2FEsHjbv3UkRrfbs4bZ0=")
        );

        // Zeek's "icmp" with IPv6 addresses, and EVE's "ipv6-icmp", are
        // ICMPv6.
        for transport in ["icmp", "ipv6-icmp", "icmpv6"] {
            let mut echo6 = key(transport, V6_A, V6_B);
            echo6.icmp_type = Some(128);
            echo6.icmp_code = Some(0);
            assert_eq!(
                of_flow(&echo6).as_deref(),
                Some("1:0bf7hyMJUwt3fMED7z8LIfRpBeo="),
                "{transport}"
            );
        }

        // A protocol logged by number is hashed without ports.
        let rsvp = key("46", "1.2.3.4", "5.6.7.8");
        assert_eq!(
            of_flow(&rsvp).as_deref(),
            Some("1:ikv3kmf89luf73WPz1jOs49S768=")
        );
    }

    #[test]
    fn of_flow_is_none_when_the_key_is_incomplete() {
        let mut tcp = key("tcp", "1.2.3.4", "5.6.7.8");
        tcp.src_port = Some(1122);
        assert_eq!(of_flow(&tcp), None, "missing responder port");

        let mut no_addr = key("tcp", "1.2.3.4", "5.6.7.8");
        no_addr.src_port = Some(1);
        no_addr.dst_port = Some(2);
        no_addr.dst_ip = None;
        assert_eq!(of_flow(&no_addr), None, "missing address");

        let mut mixed = key("udp", "1.2.3.4", V6_B);
        mixed.src_port = Some(1);
        mixed.dst_port = Some(2);
        assert_eq!(of_flow(&mixed), None, "IPv4 with IPv6");

        assert_eq!(
            of_flow(&key("unknown_transport", "1.2.3.4", "5.6.7.8")),
            None
        );
        assert_eq!(of_flow(&key("", "1.2.3.4", "5.6.7.8")), None);
        assert_eq!(of_flow(&key("999", "1.2.3.4", "5.6.7.8")), None);

        // ICMP: a one-way type needs its code, any type needs the type.
        let mut unreachable = key("icmp", "1.2.3.4", "5.6.7.8");
        unreachable.icmp_type = Some(3);
        assert_eq!(of_flow(&unreachable), None, "one-way type without code");
        unreachable.icmp_code = Some(1);
        assert!(of_flow(&unreachable).is_some());
        let mut no_type = key("icmp", "1.2.3.4", "5.6.7.8");
        no_type.icmp_code = Some(0);
        assert_eq!(of_flow(&no_type), None, "no ICMP type");
    }

    #[test]
    fn one_way_icmp_keeps_its_direction() {
        let (a, b) = (ip("1.2.3.4"), ip("5.6.7.8"));
        // Time exceeded (11) is one-way: swapping the endpoints gives
        // another ID, unlike an echo request and its reply.
        assert_ne!(
            community_id_v1(a, b, ICMP, Some(11), Some(0), 0),
            community_id_v1(b, a, ICMP, Some(11), Some(0), 0)
        );
        assert_eq!(
            community_id_v1(a, b, ICMP, Some(8), Some(0), 0),
            community_id_v1(b, a, ICMP, Some(0), Some(0), 0)
        );
    }
}

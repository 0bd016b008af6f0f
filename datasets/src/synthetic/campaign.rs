//! Attack families, the campaign→countries table, and the generator of
//! attack flows.
//!
//! Each family is shaped after how it shows up in a flow log: distinct from
//! benign traffic in feature space, but not trivially (every family shares
//! some feature ranges with some benign service).
//!
//! - `scan`: many tiny S0/REJ flows, no payload, to random (sometimes
//!   common) ports.
//! - `flood`: huge packet counts in seconds (SYN, UDP, ICMP, HTTP floods).
//! - `bruteforce`: repeated small, uniform SSH/RDP login flows, mostly RSTO.
//! - `exfiltration`: very large `bytes_out` over HTTPS or DNS tunnels at
//!   non-standard ports.
//! - `c2`: beaconing implants: small flows of near-constant size and
//!   duration to a rare port, one fixed port and rhythm per implant.

use rand::Rng;

use super::sample::{log_normal, pick, uniform};
use super::service::{Proto, Shape, tcp_complete};
use crate::record::FlowRecord;

/// The attack families of the synthetic telemetry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttackFamily {
    Scan,
    Flood,
    Bruteforce,
    Exfiltration,
    C2,
}

impl AttackFamily {
    pub const ALL: [AttackFamily; 5] = [
        AttackFamily::Scan,
        AttackFamily::Flood,
        AttackFamily::Bruteforce,
        AttackFamily::Exfiltration,
        AttackFamily::C2,
    ];

    /// The `FlowRecord::label` of the family.
    pub fn label(self) -> &'static str {
        match self {
            AttackFamily::Scan => "scan",
            AttackFamily::Flood => "flood",
            AttackFamily::Bruteforce => "bruteforce",
            AttackFamily::Exfiltration => "exfiltration",
            AttackFamily::C2 => "c2",
        }
    }

    pub(crate) fn index(self) -> u8 {
        self as u8
    }
}

/// One attack campaign and the SOCs (country codes) whose constituency it hits.
#[derive(Debug)]
pub struct Campaign {
    pub family: AttackFamily,
    pub description: &'static str,
    pub countries: &'static [&'static str],
}

impl Campaign {
    /// Whether the campaign hits the SOC with this country code.
    pub fn hits(&self, code: &str) -> bool {
        self.countries.contains(&code)
    }
}

/// The campaign→countries table (see the `synthetic` module doc).
static CAMPAIGNS: [Campaign; 5] = [
    Campaign {
        family: AttackFamily::Scan,
        description: "internet-wide reconnaissance of exposed infrastructure",
        countries: &["de", "nl", "pl", "ee"],
    },
    Campaign {
        family: AttackFamily::Flood,
        description: "hacktivist DDoS against public portals",
        countries: &["fr", "nl", "se", "ee"],
    },
    Campaign {
        family: AttackFamily::Bruteforce,
        description: "credential stuffing against exposed SSH and RDP",
        countries: &["de", "it", "es", "pl"],
    },
    Campaign {
        family: AttackFamily::Exfiltration,
        description: "espionage data theft over HTTPS and DNS tunnels",
        countries: &["fr", "it", "se"],
    },
    Campaign {
        family: AttackFamily::C2,
        description: "implant beaconing to command-and-control servers",
        countries: &["de", "es", "se", "ee"],
    },
];

/// All campaigns, one per attack family.
pub fn campaigns() -> &'static [Campaign] {
    &CAMPAIGNS
}

/// The campaigns hitting the SOC with country code `code`.
pub fn campaigns_hitting(code: &str) -> impl Iterator<Item = &'static Campaign> + '_ {
    CAMPAIGNS.iter().filter(move |c| c.hits(code))
}

const COMMON_PORTS: &[(u16, f64)] = &[
    (22, 1.0),
    (23, 1.0),
    (80, 1.0),
    (443, 1.0),
    (445, 1.0),
    (3389, 1.0),
    (8080, 1.0),
    (1433, 1.0),
    (3306, 1.0),
    (5900, 1.0),
];

/// Ports C2 frameworks are commonly left listening on.
const RARE_PORTS: &[(u16, f64)] = &[
    (4444, 1.0),
    (50050, 1.0),
    (31337, 1.0),
    (6667, 1.0),
    (1337, 1.0),
    (9001, 1.0),
    (7443, 1.0),
    (2083, 1.0),
    (8880, 1.0),
    (60001, 1.0),
];

/// The fixed rhythm of one C2 implant.
#[derive(Clone, Copy, Debug)]
struct Beacon {
    port: u16,
    service: &'static str,
    duration_s: f64,
    bytes_out: f64,
    bytes_in: f64,
}

/// Generates flows of one family; holds the per-campaign parameters (the
/// C2 implants) drawn once when the campaign starts.
pub(crate) struct AttackGenerator {
    family: AttackFamily,
    implants: Vec<Beacon>,
}

impl AttackGenerator {
    /// A campaign of `family`; `implants` C2 beacons (at least one) when it is C2.
    pub(crate) fn new<R: Rng>(rng: &mut R, family: AttackFamily, implants: usize) -> Self {
        let implants = if family == AttackFamily::C2 {
            (0..implants.max(1))
                .map(|_| Beacon {
                    port: pick(rng, RARE_PORTS),
                    service: if rng.random_bool(0.6) {
                        "https"
                    } else {
                        "other"
                    },
                    duration_s: log_normal(rng, 0.8, 0.4),
                    bytes_out: log_normal(rng, 350.0, 0.3),
                    bytes_in: log_normal(rng, 180.0, 0.4),
                })
                .collect()
        } else {
            Vec::new()
        };
        AttackGenerator { family, implants }
    }

    /// One attack flow.
    pub(crate) fn flow<R: Rng>(&self, rng: &mut R) -> FlowRecord {
        let label = self.family.label();
        let (shape, proto, service, state, port) = match self.family {
            AttackFamily::Scan => scan(rng),
            AttackFamily::Flood => flood(rng),
            AttackFamily::Bruteforce => bruteforce(rng),
            AttackFamily::Exfiltration => exfiltration(rng),
            AttackFamily::C2 => {
                let beacon = self.implants[rng.random_range(0..self.implants.len())];
                c2(rng, beacon)
            }
        };
        shape.into_record(proto, service, state, port, label)
    }
}

type Flow = (Shape, Proto, &'static str, &'static str, u16);

fn scan<R: Rng>(rng: &mut R) -> Flow {
    let port = if rng.random_bool(0.3) {
        pick(rng, COMMON_PORTS)
    } else {
        rng.random_range(1..=65535)
    };
    if rng.random_bool(0.15) {
        let probe = if rng.random_bool(0.5) {
            0.0
        } else {
            f64::from(rng.random_range(1u8..=40))
        };
        let shape = Shape {
            duration_s: 0.0,
            bytes_out: probe,
            bytes_in: 0.0,
            packets_out: 1.0,
            packets_in: 0.0,
        };
        return (shape, Proto::Udp, "other", "S0", port);
    }
    let state = pick(rng, &[("S0", 0.6), ("REJ", 0.37), ("RSTO", 0.03)]);
    let shape = match state {
        "S0" => {
            let syns = if rng.random_bool(0.8) { 1.0 } else { 2.0 };
            Shape {
                duration_s: (syns - 1.0) * uniform(rng, 0.9, 1.1),
                bytes_out: 0.0,
                bytes_in: 0.0,
                packets_out: syns,
                packets_in: 0.0,
            }
        }
        "REJ" => Shape {
            duration_s: log_normal(rng, 0.0008, 0.8),
            bytes_out: 0.0,
            bytes_in: 0.0,
            packets_out: 1.0,
            packets_in: 1.0,
        },
        _ => Shape {
            duration_s: log_normal(rng, 0.001, 0.8),
            bytes_out: 0.0,
            bytes_in: 0.0,
            packets_out: 2.0,
            packets_in: 1.0,
        },
    };
    (shape, Proto::Tcp, "other", state, port)
}

fn flood<R: Rng>(rng: &mut R) -> Flow {
    let duration_s = log_normal(rng, 2.0, 0.6);
    match pick(rng, &[(0u8, 0.35), (1, 0.35), (2, 0.1), (3, 0.2)]) {
        0 => {
            let syns = log_normal(rng, 8000.0, 0.8).round().max(100.0);
            let shape = Shape {
                duration_s,
                bytes_out: 0.0,
                bytes_in: 0.0,
                packets_out: syns,
                packets_in: 0.0,
            };
            (
                shape,
                Proto::Tcp,
                "other",
                "S0",
                pick(rng, &[(80, 0.5), (443, 0.5)]),
            )
        }
        1 => {
            let packets = log_normal(rng, 20e3, 0.9).round().max(100.0);
            let (port, service) = pick(
                rng,
                &[((53, "dns"), 0.3), ((123, "ntp"), 0.2), ((0, "other"), 0.5)],
            );
            let port = if port == 0 {
                rng.random_range(1024..=65535)
            } else {
                port
            };
            let bytes_out = (packets * uniform(rng, 28.0, 512.0)).round();
            let shape = Shape {
                duration_s,
                bytes_out,
                bytes_in: 0.0,
                packets_out: packets,
                packets_in: 0.0,
            };
            (shape, Proto::Udp, service, "S0", port)
        }
        2 => {
            let packets = log_normal(rng, 15e3, 0.8).round().max(100.0);
            let replies = (packets * uniform(rng, 0.3, 1.0)).round();
            let size = uniform(rng, 56.0, 1400.0).round();
            let shape = Shape {
                duration_s,
                bytes_out: packets * size,
                bytes_in: replies * size,
                packets_out: packets,
                packets_in: replies,
            };
            (shape, Proto::Icmp, "other", "OTH", 0)
        }
        _ => {
            let requests = log_normal(rng, 3000.0, 0.7).round().max(50.0);
            let responses = (requests * uniform(rng, 0.8, 1.2)).round();
            let shape = Shape {
                duration_s: duration_s * 1.5,
                bytes_out: (requests * uniform(rng, 200.0, 400.0)).round(),
                bytes_in: (responses * uniform(rng, 300.0, 1200.0)).round(),
                packets_out: requests + 3.0,
                packets_in: responses + 2.0,
            };
            let (port, service) = pick(rng, &[((80, "http"), 0.5), ((443, "https"), 0.5)]);
            (shape, Proto::Tcp, service, "SF", port)
        }
    }
}

fn bruteforce<R: Rng>(rng: &mut R) -> Flow {
    let state = pick(rng, &[("RSTO", 0.7), ("SF", 0.2), ("RSTR", 0.1)]);
    let (port, service, out, inn, dur, segment) = if rng.random_bool(0.6) {
        let port = if rng.random_bool(0.9) { 22 } else { 2222 };
        (port, "ssh", 2200.0, 3000.0, 2.5, 100.0)
    } else {
        (3389, "rdp", 3500.0, 9000.0, 1.8, 400.0)
    };
    let bytes_out = log_normal(rng, out, 0.15).round();
    let bytes_in = log_normal(rng, inn, 0.15).round();
    let shape = tcp_complete(bytes_out, bytes_in, log_normal(rng, dur, 0.3), segment);
    (shape, Proto::Tcp, service, state, port)
}

fn exfiltration<R: Rng>(rng: &mut R) -> Flow {
    if rng.random_bool(0.7) {
        let port = match pick(rng, &[(0u8, 0.3), (1, 0.2), (2, 0.5)]) {
            0 => 8443,
            1 => 4443,
            _ => rng.random_range(1024..=65535),
        };
        let bytes_out = log_normal(rng, 40e6, 1.0).round();
        let bytes_in = log_normal(rng, 60e3, 0.8).round();
        let shape = tcp_complete(bytes_out, bytes_in, log_normal(rng, 600.0, 0.8), 1448.0);
        let state = if rng.random_bool(0.9) { "SF" } else { "RSTO" };
        (shape, Proto::Tcp, "https", state, port)
    } else {
        // DNS tunnel: many ~200-byte queries with small answers.
        let port = if rng.random_bool(0.4) {
            5353
        } else {
            rng.random_range(1024..=65535)
        };
        let bytes_out = log_normal(rng, 3e6, 0.8).round();
        let packets_out = (bytes_out / uniform(rng, 120.0, 230.0)).ceil().max(1.0);
        let packets_in = (packets_out * uniform(rng, 0.9, 1.0)).round();
        let shape = Shape {
            duration_s: log_normal(rng, 900.0, 0.7),
            bytes_out,
            bytes_in: (packets_in * uniform(rng, 80.0, 160.0)).round(),
            packets_out,
            packets_in,
        };
        (shape, Proto::Udp, "dns", "SF", port)
    }
}

fn c2<R: Rng>(rng: &mut R, beacon: Beacon) -> Flow {
    let jitter = |rng: &mut R| uniform(rng, 0.95, 1.05);
    let bytes_out = (beacon.bytes_out * jitter(rng)).round();
    let bytes_in = (beacon.bytes_in * jitter(rng)).round();
    let shape = tcp_complete(bytes_out, bytes_in, beacon.duration_s * jitter(rng), 1448.0);
    let state = if rng.random_bool(0.97) { "SF" } else { "RSTR" };
    (shape, Proto::Tcp, beacon.service, state, beacon.port)
}

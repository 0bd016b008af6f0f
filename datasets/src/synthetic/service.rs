//! Benign traffic: per-service flow shapes and the generator of one benign
//! flow for a country.
//!
//! Sizes are log-normal (heavy-tailed) with correlated directions and a
//! duration correlated with size; packet counts follow from bytes and a
//! per-service segment size plus TCP handshake/ACK overhead, so bytes and
//! packets stay consistent. Protocol, service and port always agree
//! (dns→udp/53, https→tcp/443, …). Most flows complete (`SF`); a few are
//! rejected, reset or unanswered, as on any real network.

use rand::Rng;

use super::country::Country;
use super::sample::{log_normal, log_normal_at, normal, pick, segments, uniform};
use crate::record::{FlowRecord, NORMAL};

/// Application protocols of the synthetic telemetry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Service {
    Http,
    Https,
    Dns,
    Ssh,
    Smtp,
    Rdp,
    Smb,
    Ntp,
    Ldap,
    /// Anything without a recognised application protocol.
    Other,
}

impl Service {
    pub const ALL: [Service; 10] = [
        Service::Http,
        Service::Https,
        Service::Dns,
        Service::Ssh,
        Service::Smtp,
        Service::Rdp,
        Service::Smb,
        Service::Ntp,
        Service::Ldap,
        Service::Other,
    ];

    /// The `FlowRecord::service` string.
    pub fn name(self) -> &'static str {
        match self {
            Service::Http => "http",
            Service::Https => "https",
            Service::Dns => "dns",
            Service::Ssh => "ssh",
            Service::Smtp => "smtp",
            Service::Rdp => "rdp",
            Service::Smb => "smb",
            Service::Ntp => "ntp",
            Service::Ldap => "ldap",
            Service::Other => "other",
        }
    }
}

/// Transport protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Proto {
    Tcp,
    Udp,
    Icmp,
}

impl Proto {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Icmp => "icmp",
        }
    }
}

/// The typical shape of one service's flows (before country scaling).
struct Profile {
    proto: Proto,
    ports: &'static [(u16, f64)],
    out_median: f64,
    out_sigma: f64,
    in_median: f64,
    in_sigma: f64,
    dur_median: f64,
    dur_sigma: f64,
    /// Typical payload bytes per data packet.
    segment: f64,
}

fn profile(service: Service) -> Profile {
    let p = |proto,
             ports,
             out_median,
             out_sigma,
             in_median,
             in_sigma,
             dur_median,
             dur_sigma,
             segment| Profile {
        proto,
        ports,
        out_median,
        out_sigma,
        in_median,
        in_sigma,
        dur_median,
        dur_sigma,
        segment,
    };
    use Proto::*;
    #[rustfmt::skip]
    let profile = match service {
        Service::Http => p(Tcp, &[(80, 0.85), (8080, 0.15)], 450.0, 0.6, 12e3, 1.4, 0.4, 1.0, 1200.0),
        Service::Https => p(Tcp, &[(443, 1.0)], 1100.0, 0.8, 35e3, 1.6, 1.5, 1.3, 1300.0),
        Service::Dns => p(Udp, &[(53, 1.0)], 70.0, 0.2, 160.0, 0.4, 0.015, 0.8, 512.0),
        Service::Ssh => p(Tcp, &[(22, 1.0)], 3500.0, 1.2, 6000.0, 1.5, 45.0, 1.5, 120.0),
        Service::Smtp => p(Tcp, &[(25, 0.6), (587, 0.4)], 25e3, 1.5, 900.0, 0.5, 2.0, 0.9, 1300.0),
        Service::Rdp => p(Tcp, &[(3389, 1.0)], 60e3, 1.2, 600e3, 1.4, 400.0, 1.3, 600.0),
        Service::Smb => p(Tcp, &[(445, 1.0)], 15e3, 1.8, 120e3, 2.0, 8.0, 1.5, 1300.0),
        Service::Ntp => p(Udp, &[(123, 1.0)], 48.0, 0.0, 48.0, 0.0, 0.01, 0.6, 48.0),
        Service::Ldap => p(Tcp, &[(389, 0.8), (636, 0.2)], 900.0, 0.8, 2500.0, 1.0, 0.08, 1.0, 1300.0),
        // Ports of "other" are drawn by `other_endpoint`.
        Service::Other => p(Tcp, &[], 2000.0, 2.0, 5000.0, 2.2, 3.0, 2.0, 1000.0),
    };
    profile
}

/// Services of machine-driven night traffic (updates, backups, resolvers).
const NIGHT_MIX: &[(Service, f64)] = &[
    (Service::Dns, 0.30),
    (Service::Https, 0.30),
    (Service::Smb, 0.15),
    (Service::Ntp, 0.15),
    (Service::Smtp, 0.05),
    (Service::Other, 0.05),
];

/// Share of night flows that are machine traffic rather than the country mix.
const NIGHT_MACHINE_SHARE: f64 = 0.6;

/// Miscellaneous well-known ports of "other" traffic (ftp, pop3, imap, syslog, snmp, …).
const OTHER_WELL_KNOWN: &[(u16, f64)] = &[
    (21, 1.0),
    (110, 1.0),
    (143, 1.0),
    (993, 1.0),
    (995, 1.0),
    (514, 1.0),
    (161, 1.0),
];

const TCP_STATES: &[(&str, f64)] = &[
    ("SF", 0.92),
    ("RSTO", 0.025),
    ("RSTR", 0.025),
    ("S0", 0.015),
    ("REJ", 0.008),
    ("SH", 0.004),
    ("OTH", 0.003),
];
const UDP_STATES: &[(&str, f64)] = &[("SF", 0.95), ("S0", 0.04), ("OTH", 0.01)];

/// Numeric part of a flow, before it becomes a [`FlowRecord`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Shape {
    pub duration_s: f64,
    pub bytes_out: f64,
    pub bytes_in: f64,
    pub packets_out: f64,
    pub packets_in: f64,
}

impl Shape {
    pub(crate) fn into_record(
        self,
        proto: Proto,
        service: &str,
        state: &str,
        port: u16,
        label: &str,
    ) -> FlowRecord {
        FlowRecord {
            duration_s: self.duration_s,
            bytes_out: self.bytes_out,
            bytes_in: self.bytes_in,
            packets_out: self.packets_out,
            packets_in: self.packets_in,
            protocol: proto.name().to_string(),
            service: service.to_string(),
            conn_state: state.to_string(),
            dst_port: port,
            label: Some(label.to_string()),
        }
    }
}

/// A completed TCP exchange: data segments plus handshake, FIN and ACKs.
pub(crate) fn tcp_complete(bytes_out: f64, bytes_in: f64, duration_s: f64, segment: f64) -> Shape {
    let data_out = segments(bytes_out, segment);
    let data_in = segments(bytes_in, segment);
    Shape {
        duration_s,
        bytes_out,
        bytes_in,
        packets_out: data_out + (data_in / 2.0).ceil() + 3.0,
        packets_in: data_in + (data_out / 2.0).ceil() + 2.0,
    }
}

/// A TCP flow in `state`, truncating the complete exchange as that state implies.
pub(crate) fn tcp_in_state<R: Rng>(rng: &mut R, state: &str, full: Shape, segment: f64) -> Shape {
    match state {
        "RSTO" | "RSTR" => {
            let cut = uniform(rng, 0.05, 1.0);
            let out = (full.bytes_out * cut).round();
            let inn = (full.bytes_in * cut).round();
            tcp_complete(out, inn, full.duration_s * cut, segment)
        }
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
        "SH" => Shape {
            duration_s: log_normal(rng, 0.002, 0.8),
            bytes_out: 0.0,
            bytes_in: 0.0,
            packets_out: 2.0,
            packets_in: 0.0,
        },
        "OTH" => {
            // Picked up mid-stream: no handshake seen.
            let mut s = full;
            s.packets_out = (s.packets_out - 3.0).max(1.0);
            s.packets_in = (s.packets_in - 2.0).max(0.0);
            s
        }
        _ => full,
    }
}

/// Protocol and port of an "other" flow.
fn other_endpoint<R: Rng>(rng: &mut R) -> (Proto, u16) {
    let proto = pick(
        rng,
        &[(Proto::Tcp, 0.7), (Proto::Udp, 0.25), (Proto::Icmp, 0.05)],
    );
    if proto == Proto::Icmp {
        return (proto, 0);
    }
    let u = rng.random::<f64>();
    let port = if u < 0.5 {
        rng.random_range(1024..49152)
    } else if u < 0.8 {
        pick(rng, OTHER_WELL_KNOWN)
    } else {
        rng.random_range(49152..=65535)
    };
    (proto, port)
}

/// One benign flow of `country`'s constituency.
pub(crate) fn benign_flow<R: Rng>(rng: &mut R, country: &Country) -> FlowRecord {
    let night = !rng.random_bool(country.office_share);
    let service = if night && rng.random_bool(NIGHT_MACHINE_SHARE) {
        pick(rng, NIGHT_MIX)
    } else {
        pick(rng, country.service_mix)
    };
    let p = profile(service);
    let (proto, port) = if service == Service::Other {
        other_endpoint(rng)
    } else {
        (p.proto, pick(rng, p.ports))
    };
    // Nightly backups and updates move more data for longer.
    let bulk = night && matches!(service, Service::Smb | Service::Https | Service::Other);
    let (vol, slow) = if bulk { (3.0, 2.5) } else { (1.0, 1.0) };

    // Correlated draws: answers scale with requests, time with size.
    let z_out = normal(rng);
    let z_in = 0.6 * z_out + 0.8 * normal(rng);
    let z_dur = 0.5 * z_in + 0.866 * normal(rng);
    let scale = country.volume_scale * vol;
    let bytes_out = log_normal_at(p.out_median * scale, p.out_sigma, z_out)
        .round()
        .max(1.0);
    let bytes_in = log_normal_at(p.in_median * scale, p.in_sigma, z_in)
        .round()
        .max(1.0);
    let duration = log_normal_at(
        p.dur_median * country.duration_scale * slow,
        p.dur_sigma,
        z_dur,
    );

    let (shape, state) = match proto {
        Proto::Tcp => {
            let state = pick(rng, TCP_STATES);
            let full = tcp_complete(bytes_out, bytes_in, duration, p.segment);
            (tcp_in_state(rng, state, full, p.segment), state)
        }
        Proto::Udp => {
            let state = pick(rng, UDP_STATES);
            let answered = state != "S0";
            let shape = Shape {
                duration_s: if answered { duration } else { 0.0 },
                bytes_out,
                bytes_in: if answered { bytes_in } else { 0.0 },
                packets_out: segments(bytes_out, p.segment).max(1.0),
                packets_in: if answered {
                    segments(bytes_in, p.segment).max(1.0)
                } else {
                    0.0
                },
            };
            (shape, state)
        }
        Proto::Icmp => {
            // Echo request/reply pings.
            let pings = f64::from(rng.random_range(1u8..=4));
            let replies = if rng.random_bool(0.9) { pings } else { 0.0 };
            let shape = Shape {
                duration_s: (pings - 1.0) + log_normal(rng, 0.02, 0.8),
                bytes_out: pings * 56.0,
                bytes_in: replies * 56.0,
                packets_out: pings,
                packets_in: replies,
            };
            (shape, "OTH")
        }
    };
    shape.into_record(proto, service.name(), state, port, NORMAL)
}

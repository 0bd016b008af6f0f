//! Country profiles: what benign traffic looks like at each national SOC.
//!
//! Profiles differ in service mix (the main non-IID axis of the
//! federation), per-flow volume, duration and time of day. Time of day is
//! not a record field; it shows up as the share of *night* flows, which are
//! dominated by machine traffic (DNS, NTP, updates, SMB backups) and move
//! more data for longer than office-hours flows.

use super::service::Service;
use Service::*;

/// The benign-traffic profile of one national SOC's constituency.
#[derive(Debug)]
pub struct Country {
    /// ISO 3166-1 alpha-2 code, lower case.
    pub code: &'static str,
    pub name: &'static str,
    /// What the constituency is like, and so why its mix looks as it does.
    pub character: &'static str,
    /// Relative weights of the services of office-hours traffic.
    pub service_mix: &'static [(Service, f64)],
    /// Multiplier on the median bytes of every flow.
    pub volume_scale: f64,
    /// Multiplier on the median duration of every flow.
    pub duration_scale: f64,
    /// Share of flows in office hours; the rest is night traffic.
    pub office_share: f64,
}

/// The eight SOCs of the default synthetic federation.
#[rustfmt::skip]
static COUNTRIES: [Country; 8] = [
    Country {
        code: "de",
        name: "Germany",
        character: "industrial Windows estates: heavy SMB, RDP and LDAP",
        service_mix: &[
            (Https, 0.22), (Http, 0.05), (Dns, 0.15), (Ssh, 0.04), (Smtp, 0.04),
            (Rdp, 0.12), (Smb, 0.22), (Ntp, 0.03), (Ldap, 0.10), (Other, 0.03),
        ],
        volume_scale: 1.3,
        duration_scale: 1.0,
        office_share: 0.85,
    },
    Country {
        code: "fr",
        name: "France",
        character: "web-heavy public administration portals",
        service_mix: &[
            (Https, 0.50), (Http, 0.15), (Dns, 0.14), (Ssh, 0.02), (Smtp, 0.05),
            (Rdp, 0.02), (Smb, 0.04), (Ntp, 0.02), (Ldap, 0.03), (Other, 0.03),
        ],
        volume_scale: 1.2,
        duration_scale: 0.9,
        office_share: 0.75,
    },
    Country {
        code: "it",
        name: "Italy",
        character: "mail-centric ministries: a large SMTP share",
        service_mix: &[
            (Https, 0.28), (Http, 0.08), (Dns, 0.16), (Ssh, 0.03), (Smtp, 0.20),
            (Rdp, 0.05), (Smb, 0.08), (Ntp, 0.03), (Ldap, 0.05), (Other, 0.04),
        ],
        volume_scale: 1.0,
        duration_scale: 1.1,
        office_share: 0.8,
    },
    Country {
        code: "es",
        name: "Spain",
        character: "legacy plain-HTTP services and late working hours",
        service_mix: &[
            (Https, 0.30), (Http, 0.22), (Dns, 0.15), (Ssh, 0.03), (Smtp, 0.07),
            (Rdp, 0.06), (Smb, 0.07), (Ntp, 0.02), (Ldap, 0.04), (Other, 0.04),
        ],
        volume_scale: 0.9,
        duration_scale: 1.3,
        office_share: 0.65,
    },
    Country {
        code: "nl",
        name: "Netherlands",
        character: "internet exchange and hosting infrastructure: DNS and NTP heavy, high volume",
        service_mix: &[
            (Https, 0.18), (Http, 0.04), (Dns, 0.42), (Ssh, 0.06), (Smtp, 0.03),
            (Rdp, 0.01), (Smb, 0.02), (Ntp, 0.18), (Ldap, 0.02), (Other, 0.04),
        ],
        volume_scale: 1.6,
        duration_scale: 0.7,
        office_share: 0.6,
    },
    Country {
        code: "pl",
        name: "Poland",
        character: "operator networks: much SSH administration and custom services",
        service_mix: &[
            (Https, 0.26), (Http, 0.08), (Dns, 0.16), (Ssh, 0.16), (Smtp, 0.04),
            (Rdp, 0.04), (Smb, 0.08), (Ntp, 0.03), (Ldap, 0.03), (Other, 0.12),
        ],
        volume_scale: 0.8,
        duration_scale: 1.2,
        office_share: 0.8,
    },
    Country {
        code: "se",
        name: "Sweden",
        character: "cloud-first agencies: HTTPS dominant, long-lived sessions, little SMB",
        service_mix: &[
            (Https, 0.58), (Http, 0.03), (Dns, 0.16), (Ssh, 0.05), (Smtp, 0.02),
            (Rdp, 0.01), (Smb, 0.01), (Ntp, 0.04), (Ldap, 0.02), (Other, 0.08),
        ],
        volume_scale: 1.1,
        duration_scale: 1.6,
        office_share: 0.7,
    },
    Country {
        code: "ee",
        name: "Estonia",
        character: "small e-government: HTTPS plus LDAP/ID-card authentication around the clock",
        service_mix: &[
            (Https, 0.36), (Http, 0.04), (Dns, 0.18), (Ssh, 0.04), (Smtp, 0.03),
            (Rdp, 0.03), (Smb, 0.03), (Ntp, 0.05), (Ldap, 0.18), (Other, 0.06),
        ],
        volume_scale: 0.6,
        duration_scale: 1.0,
        office_share: 0.55,
    },
];

/// The SOCs of the synthetic federation, in site order.
pub fn countries() -> &'static [Country] {
    &COUNTRIES
}

/// The country of SOC number `site` (wrapping: site 8 is a second German SOC
/// with its own random stream).
pub fn country_for_site(site: usize) -> &'static Country {
    &COUNTRIES[site % COUNTRIES.len()]
}

//! The features an [`EncoderSpec`](super::EncoderSpec) can name: numeric
//! ones derived from a record's counts, categorical ones read from its
//! strings. Column names in a spec must be one of these.

use crate::record::FlowRecord;

/// Durations below this count as this, so rates of single-packet flows
/// (duration 0) stay finite; 1 ms is about the timestamp resolution of flow
/// exporters.
pub const MIN_RATE_DURATION_S: f64 = 0.001;

/// Numeric features derived from a [`FlowRecord`]; all are >= 0 for valid records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumericFeature {
    Duration,
    BytesOut,
    BytesIn,
    PacketsOut,
    PacketsIn,
    /// Mean payload per originator packet (0 without packets).
    BytesPerPacketOut,
    /// Mean payload per responder packet (0 without packets).
    BytesPerPacketIn,
    /// Bytes per second, both directions.
    ByteRate,
    /// Packets per second, both directions.
    PacketRate,
}

impl NumericFeature {
    pub const ALL: [NumericFeature; 9] = [
        NumericFeature::Duration,
        NumericFeature::BytesOut,
        NumericFeature::BytesIn,
        NumericFeature::PacketsOut,
        NumericFeature::PacketsIn,
        NumericFeature::BytesPerPacketOut,
        NumericFeature::BytesPerPacketIn,
        NumericFeature::ByteRate,
        NumericFeature::PacketRate,
    ];

    /// The column name in an encoder spec.
    pub fn name(self) -> &'static str {
        match self {
            NumericFeature::Duration => "duration",
            NumericFeature::BytesOut => "bytes_out",
            NumericFeature::BytesIn => "bytes_in",
            NumericFeature::PacketsOut => "packets_out",
            NumericFeature::PacketsIn => "packets_in",
            NumericFeature::BytesPerPacketOut => "bytes_per_packet_out",
            NumericFeature::BytesPerPacketIn => "bytes_per_packet_in",
            NumericFeature::ByteRate => "byte_rate",
            NumericFeature::PacketRate => "packet_rate",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The raw (untransformed) value for `r`.
    pub fn value(self, r: &FlowRecord) -> f64 {
        let per_packet =
            |bytes: f64, packets: f64| if packets > 0.0 { bytes / packets } else { 0.0 };
        let seconds = r.duration_s.max(MIN_RATE_DURATION_S);
        match self {
            NumericFeature::Duration => r.duration_s,
            NumericFeature::BytesOut => r.bytes_out,
            NumericFeature::BytesIn => r.bytes_in,
            NumericFeature::PacketsOut => r.packets_out,
            NumericFeature::PacketsIn => r.packets_in,
            NumericFeature::BytesPerPacketOut => per_packet(r.bytes_out, r.packets_out),
            NumericFeature::BytesPerPacketIn => per_packet(r.bytes_in, r.packets_in),
            NumericFeature::ByteRate => (r.bytes_out + r.bytes_in) / seconds,
            NumericFeature::PacketRate => (r.packets_out + r.packets_in) / seconds,
        }
    }
}

/// Categorical features of a [`FlowRecord`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CategoricalFeature {
    Protocol,
    Service,
    ConnState,
    /// [`port_class`] of the destination port.
    PortClass,
}

impl CategoricalFeature {
    pub const ALL: [CategoricalFeature; 4] = [
        CategoricalFeature::Protocol,
        CategoricalFeature::Service,
        CategoricalFeature::ConnState,
        CategoricalFeature::PortClass,
    ];

    /// The column name in an encoder spec.
    pub fn name(self) -> &'static str {
        match self {
            CategoricalFeature::Protocol => "protocol",
            CategoricalFeature::Service => "service",
            CategoricalFeature::ConnState => "conn_state",
            CategoricalFeature::PortClass => "port_class",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The category of `r` (matched case-sensitively against vocabularies).
    pub fn value(self, r: &FlowRecord) -> &str {
        match self {
            CategoricalFeature::Protocol => &r.protocol,
            CategoricalFeature::Service => &r.service,
            CategoricalFeature::ConnState => &r.conn_state,
            CategoricalFeature::PortClass => port_class(r.dst_port),
        }
    }
}

/// IANA port range: "well_known" (0–1023), "registered" (1024–49151) or
/// "ephemeral" (49152–65535). Categorical because port numbers carry no
/// magnitude, but the range says whether a service is standard.
pub fn port_class(port: u16) -> &'static str {
    match port {
        0..=1023 => "well_known",
        1024..=49151 => "registered",
        _ => "ephemeral",
    }
}

//! The auditor's side of the audit trail: verify a log and replay every
//! round from its entries and blobs.

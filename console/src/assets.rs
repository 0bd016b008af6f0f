//! The stylesheet and the live-refresh script, compiled into the binary
//! so the console fetches nothing from elsewhere (the CSP allows only
//! 'self').

pub const CSS: &str = include_str!("../assets/console.css");
pub const JS: &str = include_str!("../assets/console.js");

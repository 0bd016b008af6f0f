//! fedsoc-audit

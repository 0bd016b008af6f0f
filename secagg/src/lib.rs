//! fedsoc-secagg

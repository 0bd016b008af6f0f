//! Community ID v1 (https://github.com/corelight/community-id-spec).
